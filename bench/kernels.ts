// bench: Hearth's kernels against onnxruntime-web's WebGPU EP, on one adapter and one device
//
// Each op runs as a Hearth kernel and as a one-node ONNX model in onnxruntime-web (WebGPU EP,
// running in this Node process on the same Dawn GPUDevice). Outputs are compared (allclose)
// before anything is timed. Inputs live on the GPU on both sides and outputs stay there, so a
// timed iteration is: record/run the op, submit, wait until the GPU is idle. The last line
// printed is one JSON object with the ratios (ORT time / Hearth time; above 1 means Hearth is
// faster).
import type { GpuContext } from '../src/gpu/context.ts';
import { Recorder } from '../src/gpu/recorder.ts';
import { type GpuTensor, readTensor, uploadTensor } from '../src/gpu/tensor.ts';
import { causalAttention } from '../src/kernels/attention.ts';
import { layernorm } from '../src/kernels/layernorm.ts';
import { matmul } from '../src/kernels/matmul.ts';
import { softmax } from '../src/kernels/softmax.ts';
import { acquireDawn, dawnGpu } from '../src/node/dawn.ts';
import { ONNX_TYPE, onnxModel, value } from '../test/onnx/model-builder.ts';
import { loadOrtWebGpu, type OrtModule } from './lib/ort-node.ts';
import { OrtOp } from './lib/ort-op.ts';
import { table, timePair } from './lib/timing.ts';

const f32 = (name: string, shape: readonly (number | string)[]) => value(name, 'float', shape);

const QUICK = process.argv.includes('--quick');
/** `--only=attention` (a comma list of ops): run those rows only. */
const ONLY = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const TIMING = { reps: QUICK ? 3 : 5, targetMs: QUICK ? 150 : 400, maxIters: 50, warmups: 2 };

interface Case {
  readonly op: string;
  readonly key: 'matmul' | 'softmax' | 'layernorm' | 'attention';
  readonly shape: string;
  /** FLOPs (compute-bound ops) or bytes moved (memory-bound ops) per iteration. */
  readonly work: { readonly flops: number } | { readonly bytes: number };
  readonly tol: { readonly rtol: number; readonly atol: number };
  readonly note?: string;
  /** Builds both sides; returns a runner per side and the outputs in Hearth's layout. */
  setup(ctx: GpuContext, ort: OrtModule): Promise<Sides>;
}

interface Sides {
  hearth(): Promise<GpuTensor>;
  ort: OrtOp;
  ortOutput(): Promise<Float32Array>;
  release(): void;
}

interface Row {
  readonly c: Case;
  readonly hearthMs: number | null;
  readonly ortMs: number | null;
  readonly maxErr: number | null;
  readonly status: string;
}

/** Mulberry32-based uniform values in [-1, 1): the same inputs on every run. */
function uniform(seed: number, n: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

function matmulCase(N: number): Case {
  return {
    op: 'matmul',
    key: 'matmul',
    shape: `${N}×${N}×${N}`,
    work: { flops: 2 * N ** 3 },
    tol: { rtol: 1e-4, atol: 2e-6 * N },
    async setup(ctx, ort) {
      const A = uniform(1, N * N);
      const B = uniform(2, N * N);
      const a = uploadTensor(ctx, A, [N, N], 'bench:A');
      const b = uploadTensor(ctx, B, [N, N], 'bench:B');
      const model = onnxModel({
        nodes: [{ opType: 'MatMul', inputs: ['A', 'B'], outputs: ['C'] }],
        inputs: [f32('A', [N, N]), f32('B', [N, N])],
        outputs: [f32('C', [N, N])],
        opsets: { '': 13 },
      });
      const op = await OrtOp.create(
        ort,
        ctx,
        model,
        { A: { data: A, dims: [N, N] }, B: { data: B, dims: [N, N] } },
        { C: [N, N] },
      );
      return {
        hearth: () => hearthRun(ctx, (rec) => matmul(rec, a, b)),
        ort: op,
        ortOutput: () => op.read('C'),
        release: () => {
          for (const t of [a, b]) t.release();
        },
      };
    },
  };
}

function softmaxCase(R: number, C: number): Case {
  return {
    op: 'softmax',
    key: 'softmax',
    shape: `${R}×${C}, last axis`,
    work: { bytes: 2 * 4 * R * C },
    tol: { rtol: 1e-5, atol: 1e-7 },
    async setup(ctx, ort) {
      const X = uniform(3, R * C).map((x) => 4 * x);
      const x = uploadTensor(ctx, X, [R, C], 'bench:X');
      const model = onnxModel({
        nodes: [{ opType: 'Softmax', inputs: ['X'], outputs: ['Y'], attributes: { axis: -1 } }],
        inputs: [f32('X', [R, C])],
        outputs: [f32('Y', [R, C])],
        opsets: { '': 13 },
      });
      const op = await OrtOp.create(ort, ctx, model, { X: { data: X, dims: [R, C] } }, { Y: [R, C] });
      return {
        hearth: () => hearthRun(ctx, (rec) => softmax(rec, x)),
        ort: op,
        ortOutput: () => op.read('Y'),
        release: () => x.release(),
      };
    },
  };
}

function layernormCase(R: number, C: number): Case {
  const eps = 1e-5;
  return {
    op: 'layernorm',
    key: 'layernorm',
    shape: `${R}×${C}, eps ${eps}`,
    work: { bytes: 4 * (2 * R * C + 2 * C) },
    tol: { rtol: 1e-4, atol: 1e-5 },
    async setup(ctx, ort) {
      const X = uniform(4, R * C).map((x) => 3 * x + 0.5);
      const G = uniform(5, C).map((x) => 1 + 0.5 * x);
      const Bt = uniform(6, C);
      const x = uploadTensor(ctx, X, [R, C], 'bench:X');
      const g = uploadTensor(ctx, G, [C], 'bench:gamma');
      const b = uploadTensor(ctx, Bt, [C], 'bench:beta');
      const model = onnxModel({
        nodes: [
          {
            opType: 'LayerNormalization',
            inputs: ['X', 'Scale', 'B'],
            outputs: ['Y'],
            attributes: { axis: -1, epsilon: { float: eps } },
          },
        ],
        inputs: [f32('X', [R, C]), f32('Scale', [C]), f32('B', [C])],
        outputs: [f32('Y', [R, C])],
        opsets: { '': 17 },
      });
      const op = await OrtOp.create(
        ort,
        ctx,
        model,
        { X: { data: X, dims: [R, C] }, Scale: { data: G, dims: [C] }, B: { data: Bt, dims: [C] } },
        { Y: [R, C] },
      );
      return {
        hearth: () => hearthRun(ctx, (rec) => layernorm(rec, x, g, b, { eps })),
        ort: op,
        ortOutput: () => op.read('Y'),
        release: () => {
          for (const t of [x, g, b]) t.release();
        },
      };
    },
  };
}

/** [B, H, T, D] → [B, T, H·D] (Hearth's layout to ORT's) and back. */
function bhtdToBthd(
  x: Float32Array,
  B: number,
  H: number,
  T: number,
  D: number,
  inverse = false,
): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let t = 0; t < T; t++)
        for (let d = 0; d < D; d++) {
          const i = ((b * H + h) * T + t) * D + d;
          const j = ((b * T + t) * H + h) * D + d;
          if (inverse) out[i] = x[j]!;
          else out[j] = x[i]!;
        }
  return out;
}

function attentionCase(B: number, H: number, T: number, D: number): Case {
  return {
    op: 'attention',
    key: 'attention',
    shape: `B${B} H${H} T${T} D${D}, causal`,
    // QKᵀ and P·V over the causal half: 2 FLOPs per multiply-add, T(T+1)/2 pairs, D each.
    work: { flops: 2 * 2 * B * H * D * ((T * (T + 1)) / 2) },
    tol: { rtol: 1e-4, atol: 2e-6 },
    note: 'ORT: com.microsoft GroupQueryAttention (causal; q/k/v as [B,T,H·D], also writes present K/V)',
    async setup(ctx, ort) {
      const n = B * H * T * D;
      const [Q, K, V] = [uniform(7, n), uniform(8, n), uniform(9, n)];
      const shape = [B, H, T, D];
      const q = uploadTensor(ctx, Q, shape, 'bench:q');
      const k = uploadTensor(ctx, K, shape, 'bench:k');
      const v = uploadTensor(ctx, V, shape, 'bench:v');
      const hid = H * D;
      const model = onnxModel({
        nodes: [
          {
            opType: 'GroupQueryAttention',
            domain: 'com.microsoft',
            inputs: ['Q', 'K', 'V', '', '', 'seqlens_k', 'total_sequence_length'],
            outputs: ['Y', 'present_key', 'present_value'],
            attributes: { num_heads: H, kv_num_heads: H, scale: { float: 1 / Math.sqrt(D) } },
          },
        ],
        inputs: [
          f32('Q', [B, T, hid]),
          f32('K', [B, T, hid]),
          f32('V', [B, T, hid]),
          { name: 'seqlens_k', elemType: ONNX_TYPE.int32, shape: [B] },
          { name: 'total_sequence_length', elemType: ONNX_TYPE.int32, shape: [] },
        ],
        outputs: [f32('Y', [B, T, hid]), f32('present_key', shape), f32('present_value', shape)],
        opsets: { '': 17, 'com.microsoft': 1 },
      });
      const op = await OrtOp.create(
        ort,
        ctx,
        model,
        {
          Q: { data: bhtdToBthd(Q, B, H, T, D), dims: [B, T, hid] },
          K: { data: bhtdToBthd(K, B, H, T, D), dims: [B, T, hid] },
          V: { data: bhtdToBthd(V, B, H, T, D), dims: [B, T, hid] },
          seqlens_k: { data: new Int32Array(B).fill(T - 1), dims: [B], cpu: true },
          total_sequence_length: { data: Int32Array.of(T), dims: [], cpu: true },
        },
        { Y: [B, T, hid], present_key: shape, present_value: shape },
      );
      return {
        hearth: () => hearthRun(ctx, (rec) => causalAttention(rec, q, k, v)),
        ort: op,
        ortOutput: async () => bhtdToBthd(await op.read('Y'), B, H, T, D, true),
        release: () => {
          for (const t of [q, k, v]) t.release();
        },
      };
    },
  };
}

/** One Hearth iteration: record the op, submit, wait for the GPU; the caller owns the output. */
async function hearthRun(ctx: GpuContext, op: (rec: Recorder) => Promise<GpuTensor>): Promise<GpuTensor> {
  const rec = new Recorder(ctx, 'bench');
  const out = await op(rec);
  await rec.submit();
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array, tol: Case['tol']): { max: number; ok: boolean } {
  let max = 0;
  let ok = a.length === b.length;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - b[i]!);
    if (!(e <= tol.atol + tol.rtol * Math.abs(b[i]!))) ok = false;
    max = Math.max(max, Number.isFinite(e) ? e : Number.POSITIVE_INFINITY);
  }
  return { max, ok };
}

async function verifyAndTime(ctx: GpuContext, ort: OrtModule, c: Case): Promise<Row> {
  const sides = await c.setup(ctx, ort);
  try {
    const h = await sides.hearth();
    const got = (await readTensor(h)) as Float32Array;
    h.release();
    await sides.ort.run();
    const want = await sides.ortOutput();
    const { max, ok } = maxAbsDiff(got, want, c.tol);
    if (!ok) return { c, hearthMs: null, ortMs: null, maxErr: max, status: 'MISMATCH: not timed' };
    const t = await timePair(
      async () => (await sides.hearth()).release(),
      () => sides.ort.run(),
      TIMING,
    );
    return { c, hearthMs: t.aMs, ortMs: t.bMs, maxErr: max, status: `${t.iters} it × ${t.reps}` };
  } finally {
    sides.release();
    await sides.ort.release();
  }
}

/**
 * Verifies, then times, on the shared device. Where the two disagree on a device with the
 * `subgroups` feature, the case runs again on a second device of the same adapter without it
 * (both sides again share that device): onnxruntime-web's flash attention assumes subgroups of
 * at least 16 lanes and is wrong on SwiftShader's 4-lane ones, while its other path is right.
 */
async function runCase(
  ctx: GpuContext,
  ort: OrtModule,
  c: Case,
  plain: () => Promise<GpuContext>,
): Promise<Row> {
  const r = await verifyAndTime(ctx, ort, c);
  if (r.hearthMs !== null || !ctx.features.subgroups) return r;
  const again = await verifyAndTime(await plain(), ort, c);
  const note = `outputs differed by ${r.maxErr?.toExponential(1)} on the device with subgroups; timed on one without`;
  return {
    ...again,
    status: `${again.status} (no subgroups)`,
    c: { ...c, note: [c.note, note].filter(Boolean).join('; ') },
  };
}

function rate(c: Case, ms: number | null): string {
  if (ms === null) return '–';
  if ('flops' in c.work) return `${(c.work.flops / ms / 1e6).toFixed(2)} GFLOP/s`;
  return `${(c.work.bytes / ms / 1e6).toFixed(2)} GB/s`;
}

const fmt = (ms: number | null) => (ms === null ? '–' : ms.toFixed(2));
const ratioOf = (r: Row) => (r.hearthMs && r.ortMs ? r.ortMs / r.hearthMs : null);
const round = (x: number | null) => (x === null ? null : Math.round(x * 1000) / 1000);

async function main(): Promise<void> {
  const t0 = performance.now();
  const ctx = await acquireDawn();
  const ort = await loadOrtWebGpu(dawnGpu());
  const cases = [
    matmulCase(256),
    matmulCase(512),
    softmaxCase(1024, 1024),
    layernormCase(1024, 768),
    attentionCase(1, 8, 256, 64),
  ];
  if (ONLY) cases.splice(0, cases.length, ...cases.filter((c) => ONLY.includes(c.op)));
  console.log(`adapter: ${ctx.adapter.summary}`);
  if (ctx.adapter.isFallbackAdapter) {
    console.log('(a CPU fallback adapter: these are emulation timings, not GPU performance)');
  }
  const second: { ctx?: Promise<GpuContext> } = {};
  const plain = () => (second.ctx ??= acquireDawn({ disableFeatures: ['subgroups'] }));
  const rows: Row[] = [];
  let failed = false;
  for (const c of cases) {
    process.stdout.write(`  ${c.op} ${c.shape} … `);
    try {
      const r = await runCase(ctx, ort, c, plain);
      rows.push(r);
      failed ||= r.hearthMs === null;
      console.log(r.status);
    } catch (e) {
      failed = true;
      const msg = e instanceof Error ? e.message.split('\n')[0]! : String(e);
      rows.push({ c, hearthMs: null, ortMs: null, maxErr: null, status: `FAILED: ${msg}` });
      console.log(`FAILED: ${msg}`);
    }
  }

  const matmulRatios = rows.filter((r) => r.c.key === 'matmul').map(ratioOf);
  const matmulGeo =
    matmulRatios.length && matmulRatios.every((x) => x !== null)
      ? Math.exp(matmulRatios.reduce((s, x) => s + Math.log(x!), 0) / matmulRatios.length)
      : null;
  const single = (key: Case['key']) => {
    const r = rows.find((x) => x.c.key === key);
    return r ? ratioOf(r) : null;
  };

  const header = [
    'op',
    'shape',
    'Hearth ms',
    'ORT ms',
    'Hearth rate',
    'ORT rate',
    'ratio',
    'max |Δ|',
    'runs',
  ];
  const body = rows.map((r) => {
    const ratio = ratioOf(r);
    return [
      r.c.op,
      r.c.shape,
      fmt(r.hearthMs),
      fmt(r.ortMs),
      rate(r.c, r.hearthMs),
      rate(r.c, r.ortMs),
      ratio === null ? '–' : ratio.toFixed(2),
      r.maxErr === null ? '–' : r.maxErr.toExponential(1),
      r.status,
    ];
  });
  body.push([
    'matmul',
    'geometric mean of the sizes above',
    '',
    '',
    '',
    '',
    matmulGeo?.toFixed(2) ?? '–',
    '',
    '',
  ]);
  console.log('');
  console.log(table([header, ...body]));
  console.log('');
  console.log('ratio = ORT ms / Hearth ms (above 1: Hearth is faster); matmul_vs_ort is the geometric mean.');
  console.log(
    'Both sides: inputs already on the GPU, outputs left there (ORT: pre-allocated gpu-buffer outputs),',
  );
  console.log(
    `each iteration waits for the GPU; median of ${TIMING.reps} interleaved repetitions after ${TIMING.warmups} warm-ups.`,
  );
  for (const r of rows) if (r.c.note) console.log(`${r.c.op}: ${r.c.note}`);
  console.log(`total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  ctx.destroy();
  if (second.ctx) (await second.ctx).destroy();
  console.log(
    JSON.stringify({
      adapter: ctx.adapter.summary,
      matmul_vs_ort: round(matmulGeo),
      softmax_vs_ort: round(single('softmax')),
      layernorm_vs_ort: round(single('layernorm')),
      attention_vs_ort: round(single('attention')),
    }),
  );
  process.exitCode = failed ? 1 : 0;
}

await main();
