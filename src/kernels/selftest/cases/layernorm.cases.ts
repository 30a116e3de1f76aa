import { at } from '../../../core/at.ts';
import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import { layernorm, layernormWithStats } from '../../../kernels/layernorm.ts';
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
import { layernormRef } from '../reference-forward.ts';

/** Mean and variance are f32 tree sums (~√C·ε relative); y is O(few), rstd up to ~1/√eps. */
const LAYERNORM_F32: Tolerance = { rtol: 1e-5, atol: 1e-5 };
/** The statistics alone: the same sums, divided by C. */
const LAYERNORM_STATS_F32: Tolerance = { rtol: 1e-5, atol: 1e-6 };
/** f16 output: 11 bits of values up to ~6. */
const LAYERNORM_F16: Tolerance = { rtol: 2e-3, atol: 4e-3 };

interface Ln {
  shape: number[];
  eps?: number;
  lo?: number;
  hi?: number;
}

function layernormCase(name: string, c: Ln, seed: number): KernelCase {
  return {
    name: `layernorm ${name} ${c.shape.join('×')}`,
    async run(ctx) {
      const C = at(c.shape, c.shape.length - 1, 'case shape');
      const rows = c.shape.slice(0, -1).reduce((u, v) => u * v, 1);
      const X = randn(seed, rows * C, c.lo ?? -2, c.hi ?? 2);
      const G = randn(seed + 1, C, 0.5, 1.5);
      const B = randn(seed + 2, C, -1, 1);
      const eps = c.eps ?? 1e-5;
      const { outputs } = await runKernel(
        ctx,
        [
          { data: X, shape: c.shape },
          { data: G, shape: [C] },
          { data: B, shape: [C] },
        ],
        async (rec, x, g, b) => {
          const r = await layernormWithStats(rec, x, g, b, c.eps === undefined ? {} : { eps: c.eps });
          assertShape(r.y, c.shape, 'layernorm y');
          assertShape(r.mean, [rows], 'layernorm mean');
          assertShape(r.rstd, [rows], 'layernorm rstd');
          if (r.mean.dtype !== 'f32' || r.rstd.dtype !== 'f32') throw new Error('stats must be f32');
          return [r.y, r.mean, r.rstd];
        },
      );
      const want = layernormRef(X, G, B, C, eps);
      assertClose(outputs[0] as Float32Array, want.y, LAYERNORM_F32, `layernorm ${name} y`);
      assertClose(outputs[1] as Float32Array, want.mean, LAYERNORM_STATS_F32, `layernorm ${name} mean`);
      assertClose(outputs[2] as Float32Array, want.rstd, LAYERNORM_F32, `layernorm ${name} rstd`);
    },
  };
}

export const cases: KernelCase[] = [
  layernormCase('one element per row', { shape: [3, 1] }, 1),
  layernormCase('one row', { shape: [45] }, 2),
  layernormCase('odd rows', { shape: [37, 67] }, 3),
  layernormCase('leading dims', { shape: [2, 3, 5, 129] }, 4),
  layernormCase('long rows', { shape: [3, 3000] }, 5),
  layernormCase('exactly one workgroup wide', { shape: [4, 256] }, 6),
  // A large offset: a one-pass E[x²] − E[x]² would cancel catastrophically here.
  layernormCase('offset 1000, small spread', { shape: [5, 300], lo: 999, hi: 1001 }, 7),
  layernormCase('eps 0.1', { shape: [6, 50], eps: 0.1 }, 8),
  {
    name: 'layernorm without stats matches layernormWithStats',
    async run(ctx) {
      const [R, C] = [7, 93];
      const X = randn(9, R * C);
      const G = randn(10, C);
      const B = randn(11, C);
      const { outputs } = await runKernel(
        ctx,
        [
          { data: X, shape: [R, C] },
          { data: G, shape: [C] },
          { data: B, shape: [C] },
        ],
        async (rec, x, g, b) => [await layernorm(rec, x, g, b), (await layernormWithStats(rec, x, g, b)).y],
      );
      assertClose(outputs[0] as Float32Array, layernormRef(X, G, B, C, 1e-5).y, LAYERNORM_F32, 'layernorm');
      assertClose(outputs[0] as Float32Array, outputs[1] as Float32Array, { rtol: 0, atol: 0 }, 'same bits');
    },
  },
  {
    name: 'layernorm is bit-identical across runs',
    async run(ctx) {
      const C = 3000;
      const X = randn(20, 4 * C, -5, 5);
      const G = randn(21, C);
      const B = randn(22, C);
      await assertDeterministic(
        async () =>
          (
            await runKernel(
              ctx,
              [
                { data: X, shape: [4, C] },
                { data: G, shape: [C] },
                { data: B, shape: [C] },
              ],
              async (rec, x, g, b) => {
                const r = await layernormWithStats(rec, x, g, b);
                return [r.y, r.mean, r.rstd];
              },
            )
          ).outputs,
        'layernorm 4×3000',
      );
    },
  },
  {
    name: 'layernorm rejects gamma or beta of the wrong length',
    async run(ctx) {
      const inputs = (g: number, b: number) => [
        { data: randn(1, 12), shape: [3, 4] },
        { data: randn(2, g), shape: [g] },
        { data: randn(3, b), shape: [b] },
      ];
      await assertRejects(
        () => runKernel(ctx, inputs(5, 4), (rec, x, g, b) => layernorm(rec, x, g, b)),
        'tensor/shape',
        ['layernorm', 'gamma', 'shape [4]', 'got [5]'],
        'layernorm gamma [5] for C=4',
      );
      await assertRejects(
        () =>
          runKernel(ctx, inputs(4, 3), async (rec, x, g, b) => (await layernormWithStats(rec, x, g, b)).y),
        'tensor/shape',
        ['layernorm', 'beta', 'shape [4]', 'got [3]'],
        'layernorm beta [3] for C=4',
      );
    },
  },
  {
    name: 'layernorm f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      const [R, C] = [5, 301];
      const X = toF16Array(randn(30, R * C, -3, 3));
      const G = toF16Array(randn(31, C, 0.5, 1.5));
      const B = toF16Array(randn(32, C));
      const { outputs } = await runKernel(
        ctx,
        [
          { data: X, shape: [R, C] },
          { data: G, shape: [C] },
          { data: B, shape: [C] },
        ],
        async (rec, x, g, b) => {
          const r = await layernormWithStats(rec, x, g, b);
          return [r.y, r.mean, r.rstd];
        },
      );
      const want = layernormRef(fromF16Array(X), fromF16Array(G), fromF16Array(B), C, 1e-5);
      assertClose(fromF16Array(outputs[0] as Uint16Array), want.y, LAYERNORM_F16, 'layernorm f16 y');
      // The statistics stay f32 and see exactly the f16 inputs: f32 accuracy.
      assertClose(outputs[1] as Float32Array, want.mean, LAYERNORM_STATS_F32, 'layernorm f16 mean');
      assertClose(outputs[2] as Float32Array, want.rstd, LAYERNORM_F32, 'layernorm f16 rstd');
    },
  },
];
