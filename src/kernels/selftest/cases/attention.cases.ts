import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import { causalAttention } from '../../../kernels/attention.ts';
import {
  assertClose,
  assertDeterministic,
  assertRejects,
  assertShape,
  type KernelCase,
  randn,
  runKernel,
  type Tolerance,
} from '../harness.ts';
import { causalAttentionRef } from '../reference-attention.ts';

/**
 * f32: each score is a D-term dot product rounded in f32, so its absolute error grows with the
 * score's magnitude; a softmax turns an absolute score error δ into a relative weight error δ,
 * and the output mixes values in [-1, 1]. Measured on SwiftShader: 1.4e-7 with scores ≲ 11,
 * 8e-6 with scores up to 3600 — an order of magnitude or more under these bounds.
 */
const ATTN_F32 = (maxScore: number): Tolerance => ({ rtol: 1e-5, atol: 1e-6 + 2 ** -24 * maxScore });
/** f16 storage rounds q, k, v and the output to 11 bits; the arithmetic stays f32. */
const ATTN_F16: Tolerance = { rtol: 4e-3, atol: 2e-3 };

interface Attn {
  B: number;
  H: number;
  T: number;
  D: number;
  scale?: number;
  /** Inputs are uniform in [-range, range). */
  range?: number;
}

/** The largest |q·k·scale| the case can meet, for the tolerance. */
function maxScore(q: Float32Array, k: Float32Array, c: Attn): number {
  const scale = Math.abs(c.scale ?? 1 / Math.sqrt(c.D));
  let qm = 0;
  let km = 0;
  for (const x of q) qm = Math.max(qm, Math.abs(x));
  for (const x of k) km = Math.max(km, Math.abs(x));
  return Math.max(1, qm * km * c.D * scale);
}

function attnInputs(c: Attn, seed: number) {
  const n = c.B * c.H * c.T * c.D;
  const r = c.range ?? 1;
  const shape = [c.B, c.H, c.T, c.D];
  return {
    q: randn(seed, n, -r, r),
    k: randn(seed + 1, n, -r, r),
    v: randn(seed + 2, n),
    shape,
  };
}

function attnCase(name: string, c: Attn, seed: number): KernelCase {
  return {
    name: `attention ${name}`,
    async run(ctx) {
      const { q, k, v, shape } = attnInputs(c, seed);
      const { outputs, shapes } = await runKernel(
        ctx,
        [
          { data: q, shape },
          { data: k, shape },
          { data: v, shape },
        ],
        (rec, qt, kt, vt) =>
          causalAttention(rec, qt, kt, vt, c.scale === undefined ? {} : { scale: c.scale }),
      );
      if (shapes[0]?.join() !== shape.join()) throw new Error(`shape [${shapes[0]}], expected [${shape}]`);
      const want = causalAttentionRef(q, k, v, c);
      assertClose(outputs[0] as Float32Array, want, ATTN_F32(maxScore(q, k, c)), `attention ${name}`);
    },
  };
}

function rejectCase(name: string, shapes: number[][], code: string, parts: string[]): KernelCase {
  return {
    name: `attention rejects ${name}`,
    async run(ctx) {
      await assertRejects(
        () =>
          runKernel(
            ctx,
            shapes.map((s, i) => ({
              data: randn(
                i,
                s.reduce((a, b) => a * b, 1),
              ),
              shape: s,
            })),
            (rec, q, k, v) => causalAttention(rec, q, k, v),
          ),
        code,
        parts,
        `attention ${name}`,
      );
    },
  };
}

export const cases: KernelCase[] = [
  attnCase('T=1 (output is v)', { B: 1, H: 1, T: 1, D: 8 }, 100),
  attnCase('T odd 1×2×37×16', { B: 1, H: 2, T: 37, D: 16 }, 101),
  attnCase('T past a tile 1×2×50×64', { B: 1, H: 2, T: 50, D: 64 }, 102),
  attnCase('D=1 1×1×20×1', { B: 1, H: 1, T: 20, D: 1 }, 103),
  attnCase('D odd 1×1×29×7', { B: 1, H: 1, T: 29, D: 7 }, 104),
  attnCase('D odd 1×1×23×33', { B: 1, H: 1, T: 23, D: 33 }, 105),
  attnCase('B,H>1 2×3×19×24', { B: 2, H: 3, T: 19, D: 24 }, 106),
  attnCase('D=128 1×2×40×128', { B: 1, H: 2, T: 40, D: 128 }, 107),
  attnCase('long T 1×1×200×32', { B: 1, H: 1, T: 200, D: 32 }, 108),
  attnCase('many query blocks, B,H>1 2×2×131×20', { B: 2, H: 2, T: 131, D: 20 }, 111),
  attnCase('scale 0.5 1×1×33×16', { B: 1, H: 1, T: 33, D: 16, scale: 0.5 }, 109),
  attnCase('large scores (|q·k·scale| to 3600) 1×2×45×16', { B: 1, H: 2, T: 45, D: 16, range: 30 }, 110),
  {
    name: 'attention empty T=0',
    async run(ctx) {
      const { shapes } = await runKernel(
        ctx,
        [0, 1, 2].map(() => ({ data: new Float32Array(0), shape: [1, 2, 0, 8] })),
        (rec, q, k, v) => causalAttention(rec, q, k, v),
      );
      if (shapes[0]?.join() !== '1,2,0,8') throw new Error(`shape [${shapes[0]}], expected [1,2,0,8]`);
    },
  },
  {
    name: 'attention is bit-identical across runs',
    async run(ctx) {
      const { q, k, v, shape } = attnInputs({ B: 2, H: 2, T: 70, D: 40 }, 120);
      await assertDeterministic(
        async () =>
          (
            await runKernel(
              ctx,
              [
                { data: q, shape },
                { data: k, shape },
                { data: v, shape },
              ],
              (rec, qt, kt, vt) => causalAttention(rec, qt, kt, vt),
            )
          ).outputs,
        'attention 2×2×70×40',
      );
    },
  },
  rejectCase(
    'k of another shape',
    [
      [1, 2, 5, 8],
      [1, 2, 6, 8],
      [1, 2, 5, 8],
    ],
    'tensor/shape',
    ['k must have the shape of q', '[1, 2, 5, 8]', '[1, 2, 6, 8]'],
  ),
  rejectCase(
    'v of another shape',
    [
      [1, 2, 5, 8],
      [1, 2, 5, 8],
      [1, 1, 5, 8],
    ],
    'tensor/shape',
    ['v must have the shape of q', '[1, 1, 5, 8]'],
  ),
  rejectCase(
    '3-D q',
    [
      [2, 5, 8],
      [2, 5, 8],
      [2, 5, 8],
    ],
    'tensor/shape',
    ['[B, H, T, D]', '[2, 5, 8]'],
  ),
  rejectCase(
    'D over 128',
    [
      [1, 1, 2, 129],
      [1, 1, 2, 129],
      [1, 1, 2, 129],
    ],
    'tensor/shape',
    ['D=129', '128'],
  ),
  {
    name: 'attention rejects mixed dtypes',
    async run(ctx) {
      const shape = [1, 1, 4, 8];
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 32), shape },
              { data: toF16Array(randn(2, 32)), shape },
              { data: randn(3, 32), shape },
            ],
            (rec, q, k, v) => causalAttention(rec, q, k, v),
          ),
        'tensor/dtype',
        ['f32 or all f16', 'f32, f16, f32'],
        'attention f32/f16/f32',
      );
    },
  },
  {
    name: 'attention f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      const c = { B: 1, H: 2, T: 37, D: 24 };
      const { q, k, v, shape } = attnInputs(c, 130);
      const [qh, kh, vh] = [q, k, v].map((x) => toF16Array(x)) as [Uint16Array, Uint16Array, Uint16Array];
      const { outputs } = await runKernel(
        ctx,
        [
          { data: qh, shape },
          { data: kh, shape },
          { data: vh, shape },
        ],
        async (rec, qt, kt, vt) => {
          const out = await causalAttention(rec, qt, kt, vt);
          assertShape(out, shape, 'attention f16');
          return out;
        },
      );
      const want = causalAttentionRef(fromF16Array(qh), fromF16Array(kh), fromF16Array(vh), c);
      assertClose(fromF16Array(outputs[0] as Uint16Array), want, ATTN_F16, 'attention f16');
    },
  },
];
