// The kernel self-test (src/kernels/selftest/): every kernel on seeded inputs against a float64
// reference. Shared by the Node (Dawn) and browser-worker (Chromium) test runs and by `npm run
// demo` — which is why it lives in src/ (src never imports test/): cases are plain async
// functions that throw on failure, so the same code runs under all three.
import { at } from '../../core/at.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { Recorder } from '../../gpu/recorder.ts';
import { type GpuTensor, type HostArray, readTensor, uploadTensor } from '../../gpu/tensor.ts';

export interface KernelCase {
  readonly name: string;
  /** Resolves when the case passed, with `{ skip }` when it cannot run here (the reason). */
  readonly run: (ctx: GpuContext) => Promise<undefined | { skip: string }>;
}

/** Mulberry32: a small seeded generator, so every run draws the same "random" inputs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi), as f32. */
export function randn(seed: number, n: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

export function randInts(seed: number, n: number, max: number): Int32Array {
  const r = rng(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * max);
  return out;
}

export interface Tolerance {
  readonly rtol: number;
  readonly atol: number;
}

/**
 * Throws unless |got − want| ≤ atol + rtol·|want| everywhere, with matching lengths. NaN or an
 * infinity in `got` always fails (poisoned outputs are NaN), whatever `want` holds. Returns the
 * worst absolute error, for tests that report it.
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance,
  what: string,
): number {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length}, expected ${want.length}`);
  const bad: string[] = [];
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i] as number; // i < want.length = got.length
    const w = want[i] as number;
    const err = Math.abs(g - w);
    if (!Number.isFinite(g) || !(err <= tol.atol + tol.rtol * Math.abs(w))) {
      if (bad.length < 5) bad.push(`[${i}] got ${g}, want ${w}`);
      worst = Number.isFinite(err) ? Math.max(worst, err) : Number.POSITIVE_INFINITY;
    } else {
      worst = Math.max(worst, err);
    }
  }
  if (bad.length) {
    throw new Error(
      `${what}: mismatch (rtol ${tol.rtol}, atol ${tol.atol}, worst |err| ${worst}): ${bad.join('; ')}`,
    );
  }
  return worst;
}

export function assertBitEqual(a: HostArray, b: HostArray, what: string): void {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (x.length !== y.length) throw new Error(`${what}: byte lengths differ (${x.length} vs ${y.length})`);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) throw new Error(`${what}: runs differ at byte ${i}: not bit-identical`);
  }
}

export function assertShape(t: GpuTensor, shape: readonly number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${what}: shape [${t.shape}], expected [${shape}]`);
  }
}

/** Throws unless `fn` rejects with a HearthError of `code` whose message contains each of `parts`. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  code: string,
  parts: string[],
  what: string,
): Promise<void> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  if (!err) throw new Error(`${what}: expected a ${code} error, but it succeeded`);
  const e = err as { name?: string; code?: string; message?: string };
  if (e.name !== 'HearthError' || e.code !== code)
    throw new Error(`${what}: expected ${code}, got ${e.name}/${e.code}: ${e.message}`);
  for (const p of parts)
    if (!e.message?.includes(p)) throw new Error(`${what}: message lacks "${p}": ${e.message}`);
}

/** A host tensor for runKernel to upload. */
export interface KernelInput {
  readonly data: HostArray;
  readonly shape: readonly number[];
}

/**
 * Uploads inputs, records what `body` does, submits, reads back every returned tensor and
 * releases all GPU memory it touched. `body` gets one tensor per input, in order: with the
 * inputs written as a list (or a tuple), its parameters are typed one for one.
 */
export async function runKernel<const I extends readonly KernelInput[]>(
  ctx: GpuContext,
  inputs: I,
  body: (rec: Recorder, ...ts: { -readonly [K in keyof I]: GpuTensor }) => Promise<GpuTensor | GpuTensor[]>,
): Promise<{ outputs: HostArray[]; shapes: (readonly number[])[] }> {
  const ts = inputs.map((x, i) => uploadTensor(ctx, x.data, x.shape, `input${i}`));
  const rec = new Recorder(ctx, 'test');
  let outs: GpuTensor[] = [];
  try {
    // One tensor per input, in order: map keeps the length of the inputs.
    const r = await body(rec, ...(ts as { -readonly [K in keyof I]: GpuTensor }));
    outs = Array.isArray(r) ? r : [r];
    await rec.submit();
    const outputs = await Promise.all(outs.map((t) => readTensor(t)));
    return { outputs, shapes: outs.map((t) => t.shape) };
  } finally {
    for (const t of [...ts, ...outs]) t.release();
  }
}

/** Runs `fn` twice and demands bit-identical outputs: replica validation depends on it. */
export async function assertDeterministic(run: () => Promise<HostArray[]>, what: string): Promise<void> {
  const a = await run();
  const b = await run();
  if (a.length !== b.length) throw new Error(`${what}: ${a.length} outputs, then ${b.length}`);
  for (const [i, x] of a.entries()) assertBitEqual(x, at(b, i, `${what} outputs`), `${what} output ${i}`);
}

/** Float64 copy of any array (references compute in double precision). */
export function f64(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x as ArrayLike<number>);
}
