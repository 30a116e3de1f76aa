// One ONNX shard: check the shard against the model, run it on the best backend there is, and
// hand back host tensors, stopping as soon as the shard is cancelled or over its budget.
import type { InferenceSession, Tensor } from 'onnxruntime-web';
import { at } from '../core/at.ts';
import { HearthError, isHearthError } from '../core/errors.ts';
import { BYTES_PER_ELEMENT, numel } from '../core/tensor.ts';
import type { HostTensor, OnnxBackend, OnnxShard, ShardProgress } from '../protocol/shard.ts';
import { backendsFor, noteWebgpuFailed } from './backend.ts';
import { sessionRunError } from './errors.ts';
import { getSession, type ModelSource, type OnnxSession, type OnnxSessionValue } from './session.ts';
import { dtypeForOrtType, fromOrtTensor, isSupportedOrtType, toOrtTensor } from './tensor.ts';

export interface RunOnnxOptions {
  /** Aborting rejects with the signal's reason when it is a HearthError, else 'shard/cancelled'. */
  readonly signal?: AbortSignal;
  /** Phases in order: 'compile' (hash check and session), 'run', 'read' (one step per output). */
  readonly onProgress?: (p: ShardProgress) => void;
  /** Wall-clock budget from the call, ms; with the shard's own `budgetMs` the smaller one holds. */
  readonly budgetMs?: number;
}

export interface OnnxRunResult {
  readonly outputs: { name: string; tensor: HostTensor }[];
  /** The backend that computed the outputs. */
  readonly backend: OnnxBackend;
}

/** Watches the abort signal and the budget; `race` rejects as soon as either fires. */
class Guard {
  private readonly t0 = performance.now();
  private readonly shard: string;
  private readonly signal: AbortSignal | undefined;
  private readonly budgetMs: number | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onAbort = () => this.fire(this.abortError());
  private fail: ((e: HearthError) => void) | undefined;
  private readonly fired: Promise<never>;
  private error: HearthError | null = null;

  constructor(shard: string, signal: AbortSignal | undefined, budgetMs: number | undefined) {
    this.shard = shard;
    this.signal = signal;
    this.budgetMs = budgetMs;
    this.fired = new Promise<never>((_, reject) => {
      this.fail = reject;
    });
    this.fired.catch(() => undefined);
    signal?.addEventListener('abort', this.onAbort, { once: true });
    if (budgetMs !== undefined) this.timer = setTimeout(() => this.fire(this.timeoutError()), budgetMs);
  }

  private abortError(): HearthError {
    const reason: unknown = this.signal?.reason;
    return reason instanceof HearthError
      ? reason
      : new HearthError('shard/cancelled', `Shard ${this.shard} was cancelled.`, {
          details: { shard: this.shard },
          ...(reason === undefined ? {} : { cause: reason }),
        });
  }

  private timeoutError(): HearthError {
    return new HearthError(
      'shard/timeout',
      `Shard ${this.shard} ran past its budget of ${this.budgetMs} ms and was stopped.`,
      { details: { shard: this.shard, budgetMs: this.budgetMs } },
    );
  }

  private fire(e: HearthError): void {
    if (this.error) return;
    this.error = e;
    this.fail?.(e);
  }

  /** Throws if the shard was cancelled or is over budget (also when a timer could not fire). */
  check(): void {
    if (!this.error && this.signal?.aborted) this.fire(this.abortError());
    if (!this.error && this.budgetMs !== undefined && performance.now() - this.t0 > this.budgetMs) {
      this.fire(this.timeoutError());
    }
    if (this.error) throw this.error;
  }

  /** Settles with `p`, or rejects as soon as the shard is cancelled or over budget. */
  race<T>(p: Promise<T>): Promise<T> {
    this.check();
    p.catch(() => undefined);
    return Promise.race([p, this.fired]);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
  }
}

function invalid(message: string, details: Record<string, unknown>): HearthError {
  return new HearthError('input/invalid', message, { details });
}

/** The shard's input `name`, which the model needs: 'input/invalid' naming it when absent. */
function inputOf(shard: OnnxShard, name: string): HostTensor {
  const t = shard.inputs[name];
  if (!t) {
    throw invalid(
      `shard.inputs: ONNX model ${shard.model.slice(0, 12)}… needs input "${name}", and the shard does not give it.`,
      { path: 'shard.inputs', input: name },
    );
  }
  return t;
}

function fmtShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Checks the shard's inputs and requested outputs against what the model declares: every
 * input present and no stranger, dtypes Hearth can feed, shapes that fit the fixed dimensions
 * and agree on symbolic ones. Returns the output names to fetch.
 */
function checkShard(shard: OnnxShard, s: OnnxSession): string[] {
  const model = `ONNX model ${shard.model.slice(0, 12)}…`;
  const byName = new Map(s.inputs.map((i) => [i.name, i]));
  const names = s.inputs.map((i) => i.name).join(', ');
  for (const name of Object.keys(shard.inputs)) {
    if (!byName.has(name)) {
      throw invalid(`shard.inputs.${name}: ${model} has no input named "${name}" (its inputs: ${names}).`, {
        path: `shard.inputs.${name}`,
        input: name,
        modelInputs: s.inputs.map((i) => i.name),
      });
    }
  }
  const symbols = new Map<string, { size: number; input: string }>();
  for (const info of s.inputs) {
    checkInput(model, info, inputOf(shard, info.name), symbols);
  }
  const outNames = s.outputs.map((o) => o.name);
  const fetches = shard.outputs ? [...shard.outputs] : outNames;
  const seen = new Set<string>();
  for (const [i, name] of fetches.entries()) {
    const info = s.outputs.find((o) => o.name === name);
    if (!info) {
      throw invalid(
        `shard.outputs[${i}]: ${model} has no output named "${name}" (its outputs: ${outNames.join(', ')}).`,
        { path: `shard.outputs[${i}]`, output: name, modelOutputs: outNames },
      );
    }
    if (seen.has(name)) {
      throw invalid(`shard.outputs[${i}]: output "${name}" is asked for twice.`, {
        path: `shard.outputs[${i}]`,
        output: name,
      });
    }
    seen.add(name);
    if (info.type !== 'unknown' && !isSupportedOrtType(info.type)) {
      throw new HearthError(
        'onnx/unsupported',
        `${model}: output "${name}" has element type ${info.type}, which Hearth cannot return (float32, float16, int32, uint32, int64 as i32).`,
        { details: { model: shard.model, output: name, dtype: info.type } },
      );
    }
  }
  return fetches;
}

function checkInput(
  model: string,
  info: OnnxSessionValue,
  t: HostTensor,
  symbols: Map<string, { size: number; input: string }>,
): void {
  const name = info.name;
  const bytes = numel(t.shape) * BYTES_PER_ELEMENT[t.dtype];
  if (t.data.byteLength !== bytes) {
    throw invalid(
      `shard.inputs.${name}: ${t.dtype}${fmtShape(t.shape)} needs ${bytes} bytes of data, got ${t.data.byteLength}.`,
      { path: `shard.inputs.${name}.data`, input: name, expected: bytes, got: t.data.byteLength },
    );
  }
  if (info.type !== 'unknown') {
    const want = dtypeForOrtType(info.type);
    if (!want) {
      throw new HearthError(
        'onnx/unsupported',
        `${model}: input "${name}" has element type ${info.type}, which Hearth cannot feed (float32, float16, int32, uint32, and int64 from i32).`,
        { details: { input: name, dtype: info.type } },
      );
    }
    if (want !== t.dtype) {
      throw invalid(
        `shard.inputs.${name}: ${model} takes ${info.type} for "${name}"; give ${want}, not ${t.dtype}.`,
        { path: `shard.inputs.${name}.dtype`, input: name, expected: want, got: t.dtype },
      );
    }
  }
  // An empty declared shape means "unknown" as well as "scalar": ORT checks those at run time.
  if (info.shape.length === 0) return;
  const wrong = (why: string) =>
    new HearthError(
      'onnx/run',
      `${model}: input "${name}" has the wrong shape: the model expects ${fmtShape(info.shape)}, the shard gives ${fmtShape(t.shape)} (${why}).`,
      { details: { input: name, expected: info.shape, got: t.shape } },
    );
  if (info.shape.length !== t.shape.length) {
    throw wrong(`rank ${t.shape.length}, not ${info.shape.length}`);
  }
  info.shape.forEach((d, i) => {
    const size = at(t.shape, i, `input "${name}" shape`); // same rank, checked above
    if (typeof d === 'number') {
      if (d >= 0 && d !== size) throw wrong(`dimension ${i} is ${size}, not ${d}`);
    } else if (d) {
      const prior = symbols.get(d);
      if (prior && prior.size !== size) {
        throw wrong(
          `dimension ${i} ("${d}") is ${size}, while input "${prior.input}" makes it ${prior.size}`,
        );
      }
      symbols.set(d, { size, input: name });
    }
  });
}

/** Errors that another backend cannot fix: the shard's own, or the caller's. */
function final(e: unknown): boolean {
  return (
    isHearthError(e) &&
    (e.code === 'shard/cancelled' ||
      e.code === 'shard/timeout' ||
      e.code === 'input/invalid' ||
      e.code === 'blob/corrupt')
  );
}

async function runOn(
  shard: OnnxShard,
  s: OnnxSession,
  fetches: string[],
  guard: Guard,
  progress: (phase: ShardProgress['phase'], done: number, total: number) => void,
): Promise<{ name: string; tensor: HostTensor }[]> {
  progress('run', 0, 1);
  const results = await guard.race(
    s.exclusive(async (session: InferenceSession) => {
      // A run queued behind others starts only if the shard is still wanted.
      guard.check();
      const feeds: Record<string, Tensor> = {};
      try {
        for (const info of s.inputs)
          feeds[info.name] = toOrtTensor(s.ort, inputOf(shard, info.name), info.type);
        return await session.run(feeds, fetches);
      } catch (e) {
        throw isHearthError(e) ? e : sessionRunError(e, shard.model, s.backend);
      } finally {
        for (const t of Object.values(feeds)) t.dispose();
      }
    }),
  );
  try {
    // The wasm EP runs synchronously, so the timer may not have had a turn: check the clock.
    guard.check();
    progress('run', 1, 1);
    const outputs: { name: string; tensor: HostTensor }[] = [];
    for (const [i, name] of fetches.entries()) {
      progress('read', i, fetches.length);
      const t = results[name];
      if (!t) throw sessionRunError(new Error(`no output "${name}" came back`), shard.model, s.backend);
      outputs.push({ name, tensor: await fromOrtTensor(t, name) });
    }
    progress('read', fetches.length, fetches.length);
    return outputs;
  } finally {
    for (const t of Object.values(results)) t.dispose();
  }
}

/**
 * Runs one ONNX shard: `modelBytes` (or what its loader returns, read only when no session is
 * cached) must hash to `shard.model`. With `backend: 'auto'` (the
 * default) it runs on WebGPU where there is an adapter and falls back to wasm when creating or
 * running the session there fails; the result says which backend ran.
 *
 * Rejects with a HearthError, never a raw ORT string: 'blob/corrupt', 'onnx/model',
 * 'onnx/unsupported', 'onnx/run' (also for an input of the wrong shape), 'input/invalid'
 * (missing or unknown input, unknown output, wrong dtype), 'gpu/unavailable',
 * 'shard/cancelled' or 'shard/timeout', as soon as the signal fires or the budget runs out.
 * A run that ORT cannot interrupt finishes in the background, and the next call into
 * onnxruntime-web waits for it (see session.ts).
 *
 * @example
 * const { outputs, backend } = await runOnnx(
 *   { v: 1, kind: 'onnx', id: 'job7/3', job: 'job7', model: sha, inputs: { x: { dtype: 'f32', shape: [8, 16], data } } },
 *   modelBytes,
 *   { signal: controller.signal, budgetMs: 30_000 },
 * );
 * const y = new Float32Array(outputs[0].tensor.data);
 */
export async function runOnnx(
  shard: OnnxShard,
  modelBytes: ModelSource,
  opts: RunOnnxOptions = {},
): Promise<OnnxRunResult> {
  const budgets = [opts.budgetMs, shard.budgetMs].filter((b): b is number => b !== undefined);
  const guard = new Guard(shard.id, opts.signal, budgets.length ? Math.min(...budgets) : undefined);
  const progress = (phase: ShardProgress['phase'], done: number, total: number) =>
    opts.onProgress?.({ shard: shard.id, phase, done, total });
  try {
    guard.check();
    const backends = await guard.race(backendsFor(shard));
    let webgpuError: unknown;
    for (const [i, backend] of backends.entries()) {
      // Another backend may cope with what failed on WebGPU, never with the shard's own faults.
      const fallBack = (e: unknown) => {
        if (i === backends.length - 1 || final(e)) throw e;
        webgpuError = e;
      };
      progress('compile', 0, 1);
      let s: OnnxSession;
      try {
        s = await guard.race(getSession(shard.model, modelBytes, backend));
      } catch (e) {
        fallBack(e);
        continue;
      }
      progress('compile', 1, 1);
      // Input errors show here, before any run, and are the same on every backend.
      const fetches = checkShard(shard, s);
      let outputs: { name: string; tensor: HostTensor }[];
      try {
        try {
          outputs = await runOn(shard, s, fetches, guard, progress);
        } catch (e) {
          // Evicted from the cache between getSession and the run: take the new one, once.
          if (!(isHearthError(e, 'onnx/run') && e.details.released)) throw e;
          s = await guard.race(getSession(shard.model, modelBytes, backend));
          outputs = await runOn(shard, s, fetches, guard, progress);
        }
      } catch (e) {
        fallBack(e);
        continue;
      }
      if (webgpuError !== undefined) noteWebgpuFailed(shard.model);
      return { outputs, backend };
    }
    throw webgpuError;
  } finally {
    guard.dispose();
  }
}
