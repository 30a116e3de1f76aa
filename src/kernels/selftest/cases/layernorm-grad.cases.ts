import { at } from '../../../core/at.ts';
import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import type { HostArray } from '../../../gpu/tensor.ts';
import { layernormBackward } from '../../../kernels/layernorm-grad.ts';
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
import {
  dot,
  finiteDiff,
  layernormForward,
  layernormGradRef,
  pick,
  sampleIndices,
} from '../reference-backward.ts';

const EPS = 1e-5;
/** dx: two f32 sums over D per row, scaled by rstd (≈1.7 for x in ±1; up to 1/√eps for D = 1). */
const LN_DX_F32 = (D: number): Tolerance => ({ rtol: 1e-4, atol: 2e-6 * Math.max(D, 8) });
/** dgamma, dbeta: f32 sums over the rows of values up to ~|x̂| ≤ √D. */
const LN_DPARAM_F32 = (rows: number): Tolerance => ({ rtol: 1e-5, atol: 2e-6 * Math.max(rows, 8) });
/** Finite differences (float64, h = 1e-4) of L = Σ dy ⊙ layernorm(x): O(h²·rstd³) error. */
const LN_FD = (rows: number, D: number): Tolerance => ({ rtol: 2e-4, atol: 4e-6 * Math.max(rows, D, 8) });
/** f16 inputs and outputs (11 bits); sums in f32. */
const LN_F16: Tolerance = { rtol: 4e-3, atol: 4e-3 };

interface Lg {
  shape: number[];
  /** x drawn from [lo, hi). */
  lo?: number;
  hi?: number;
}

/** The forward's statistics in float64, rounded to f32 as a GPU forward would hand them over. */
function stats(X: Float32Array, rows: number, D: number) {
  const { mean, rstd } = layernormForward(X, new Float64Array(D).fill(1), new Float64Array(D), rows, D, EPS);
  return { mean: Float32Array.from(mean), rstd: Float32Array.from(rstd) };
}

function lnCase(name: string, c: Lg, seed: number): KernelCase {
  return {
    name: `layernormBackward ${name} ${c.shape.join('×')}`,
    async run(ctx) {
      const D = at(c.shape, c.shape.length - 1, 'case shape');
      const rows = c.shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const X = randn(seed, rows * D, c.lo ?? -1, c.hi ?? 1);
      const G = randn(seed + 1, D, 0.5, 1.5);
      const Bt = randn(seed + 2, D);
      const dY = randn(seed + 3, rows * D);
      const { mean, rstd } = stats(X, rows, D);
      const { outputs } = await runKernel(
        ctx,
        [
          { data: X, shape: c.shape },
          { data: G, shape: [D] },
          { data: dY, shape: c.shape },
          { data: mean, shape: c.shape.slice(0, -1) },
          { data: rstd, shape: [rows] },
        ],
        async (rec, x, g, dy, mu, rs) => {
          const r = await layernormBackward(rec, x, g, dy, mu, rs);
          assertShape(r.dx, c.shape, 'dx');
          assertShape(r.dgamma, [D], 'dgamma');
          assertShape(r.dbeta, [D], 'dbeta');
          return [r.dx, r.dgamma, r.dbeta];
        },
      );
      const [dx, dgamma, dbeta] = outputs as [Float32Array, Float32Array, Float32Array];
      const want = layernormGradRef(X, G, dY, mean, rstd, rows, D);
      assertClose(dx, want.dx, LN_DX_F32(D), `${name} dx`);
      assertClose(dgamma, want.dgamma, LN_DPARAM_F32(rows), `${name} dgamma`);
      assertClose(dbeta, want.dbeta, LN_DPARAM_F32(rows), `${name} dbeta`);
      // Independently: finite differences of L = Σ dy ⊙ layernorm(x; gamma, beta), whose own
      // statistics move with x (so this also checks the terms that come through mean and rstd).
      const L = (x: ArrayLike<number>, g: ArrayLike<number>, b: ArrayLike<number>) =>
        dot(dY, layernormForward(x, g, b, rows, D, EPS).y);
      const tol = LN_FD(rows, D);
      const ix = sampleIndices(seed + 4, rows * D, 8);
      const ip = sampleIndices(seed + 5, D, 4);
      assertClose(
        pick(dx, ix),
        finiteDiff((x) => L(x, G, Bt), X, ix),
        tol,
        `${name} dx vs finite differences`,
      );
      assertClose(
        pick(dgamma, ip),
        finiteDiff((g) => L(X, g, Bt), G, ip),
        tol,
        `${name} dgamma vs finite differences`,
      );
      assertClose(
        pick(dbeta, ip),
        finiteDiff((b) => L(X, G, b), Bt, ip),
        tol,
        `${name} dbeta vs finite differences`,
      );
    },
  };
}

function lnInputs(rows: number, D: number, seed: number): { data: HostArray; shape: number[] }[] {
  const X = randn(seed, rows * D);
  const { mean, rstd } = stats(X, rows, D);
  return [
    { data: X, shape: [rows, D] },
    { data: randn(seed + 1, D, 0.5, 1.5), shape: [D] },
    { data: randn(seed + 2, rows * D), shape: [rows, D] },
    { data: mean, shape: [rows] },
    { data: rstd, shape: [rows] },
  ];
}

export const cases: KernelCase[] = [
  lnCase('single element', { shape: [1, 1] }, 1),
  lnCase('odd', { shape: [7, 33] }, 2),
  lnCase('one row', { shape: [1, 129] }, 3),
  lnCase('3-D', { shape: [3, 5, 29] }, 4),
  lnCase('wide rows', { shape: [4, 256] }, 5),
  // 1000 rows: dgamma/dbeta take 4 partial chunks of 256 rows, then a second summing pass.
  lnCase('1000 rows', { shape: [1000, 24] }, 6),
  lnCase('x offset in [3, 8)', { shape: [9, 45], lo: 3, hi: 8 }, 7),
  {
    name: 'layernormBackward is bit-identical across runs',
    async run(ctx) {
      await assertDeterministic(
        async () =>
          (
            await runKernel(ctx, lnInputs(1000, 40, 30), async (rec, x, g, dy, mu, rs) => {
              const r = await layernormBackward(rec, x, g, dy, mu, rs);
              return [r.dx, r.dgamma, r.dbeta];
            })
          ).outputs,
        'layernormBackward 1000×40',
      );
    },
  },
  {
    name: 'layernormBackward rejects mismatched gamma, dy and statistics',
    async run(ctx) {
      const run = (edit: (ins: ReturnType<typeof lnInputs>) => void) => () => {
        const ins = lnInputs(4, 6, 40);
        edit(ins);
        return runKernel(ctx, ins, async (rec, x, g, dy, mu, rs) => {
          const r = await layernormBackward(rec, x, g, dy, mu, rs);
          return [r.dx, r.dgamma, r.dbeta];
        });
      };
      await assertRejects(
        run((ins) => (ins[1] = { data: randn(1, 5), shape: [5] })),
        'tensor/shape',
        ['layernormBackward', 'gamma must have shape [6]', 'got [5]'],
        'gamma [5] for D = 6',
      );
      await assertRejects(
        run((ins) => (ins[2] = { data: randn(1, 24), shape: [6, 4] })),
        'tensor/shape',
        ['layernormBackward', 'dy must have shape [4, 6]', 'got [6, 4]'],
        'dy [6, 4] for x [4, 6]',
      );
      await assertRejects(
        run((ins) => (ins[4] = { data: randn(1, 3, 0.5, 1), shape: [3] })),
        'tensor/shape',
        ['layernormBackward', 'rstd must have one value per row of x', 'got [3]'],
        'rstd [3] for 4 rows',
      );
      await assertRejects(
        run((ins) => (ins[3] = { data: new Int32Array(4), shape: [4] })),
        'tensor/dtype',
        ['layernormBackward', 'mean must be f32', 'got i32'],
        'i32 mean',
      );
    },
  },
  {
    name: 'layernormBackward f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      const [rows, D] = [300, 37];
      const X = toF16Array(randn(50, rows * D));
      const G = toF16Array(randn(51, D, 0.5, 1.5));
      const dY = toF16Array(randn(52, rows * D));
      const x32 = fromF16Array(X);
      const { mean, rstd } = stats(x32, rows, D);
      const { outputs } = await runKernel(
        ctx,
        [
          { data: X, shape: [rows, D] },
          { data: G, shape: [D] },
          { data: dY, shape: [rows, D] },
          { data: mean, shape: [rows] },
          { data: rstd, shape: [rows] },
        ],
        async (rec, x, g, dy, mu, rs) => {
          const r = await layernormBackward(rec, x, g, dy, mu, rs);
          return [r.dx, r.dgamma, r.dbeta];
        },
      );
      const want = layernormGradRef(x32, fromF16Array(G), fromF16Array(dY), mean, rstd, rows, D);
      const f = (i: number) => fromF16Array(outputs[i] as Uint16Array);
      assertClose(f(0), want.dx, LN_F16, 'f16 dx');
      // Sums over 300 rows of f16 products: scale the absolute part with √rows.
      const sums: Tolerance = { rtol: LN_F16.rtol, atol: LN_F16.atol * Math.sqrt(rows) };
      assertClose(f(1), want.dgamma, sums, 'f16 dgamma');
      assertClose(f(2), want.dbeta, sums, 'f16 dbeta');
    },
  },
];
