import { at } from '../../../core/at.ts';
import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import { activationBackward } from '../../../kernels/activation-grad.ts';
import {
  assertClose,
  assertRejects,
  assertShape,
  type KernelCase,
  randInts,
  randn,
  runKernel,
  type Tolerance,
} from '../harness.ts';
import {
  actDerivative,
  actForward,
  finiteDiff,
  type GradAct,
  pick,
  sampleIndices,
} from '../reference-backward.ts';

/** One product of f32 values with exp/tanh-free (gelu) or exp-based (silu) derivatives: a few ulp. */
const ACT_GRAD_F32: Tolerance = { rtol: 1e-5, atol: 2e-6 };
/** Finite differences (h = 1e-4, float64) of a smooth function: error ~h², far below f32's. */
const ACT_GRAD_FD: Tolerance = { rtol: 1e-5, atol: 1e-5 };
/** f16 inputs and output: 11 bits on derivatives up to ~1.1 times |dy| ≤ 1. */
const ACT_GRAD_F16: Tolerance = { rtol: 2e-3, atol: 2e-3 };

const FD_H = 1e-4;

/** Where the activation has a kink (relu at 0, gelu's clamp at |u| = 15), finite differences don't apply. */
function nearKink(x: number, a: GradAct): boolean {
  if (a === 'relu') return Math.abs(x) < 4 * FD_H;
  if (a === 'gelu') return Math.abs(0.7978845608028654 * (x + 0.044715 * x ** 3)) > 14.9 && Math.abs(x) < 7;
  return false;
}

function gradCase(act: GradAct, shape: number[], seed: number, range = 8): KernelCase {
  return {
    name: `activationBackward ${act} ${shape.join('×')}`,
    async run(ctx) {
      const n = shape.reduce((a, b) => a * b, 1);
      // ±8 reaches past gelu's clamp (|x| ≳ 6.5) and silu's flat tails.
      const X = randn(seed, n, -range, range);
      const dY = randn(seed + 1, n);
      const { outputs, shapes } = await runKernel(
        ctx,
        [
          { data: X, shape },
          { data: dY, shape },
        ],
        (rec, x, dy) => activationBackward(rec, x, dy, act),
      );
      if (shapes[0]?.join() !== shape.join()) throw new Error(`shape [${shapes[0]}], expected [${shape}]`);
      const got = outputs[0] as Float32Array;
      const want = Float64Array.from(X, (x, i) => (dY[i] as number) * actDerivative(x, act)); // dY is n long
      assertClose(got, want, ACT_GRAD_F32, `${act}′ vs float64`);
      // Independently: ∂/∂x of L = Σ dy ⊙ act(x), by central differences on a few elements.
      const idx = sampleIndices(seed + 2, n, 12).filter((i) => !nearKink(at(X, i, 'X'), act));
      const loss = (x: Float64Array) => {
        let s = 0;
        for (let i = 0; i < n; i++) s += (dY[i] as number) * actForward(x[i] as number, act); // all n long
        return s;
      };
      assertClose(
        pick(got, idx),
        finiteDiff(loss, X, idx, FD_H),
        ACT_GRAD_FD,
        `${act}′ vs finite differences`,
      );
    },
  };
}

export const cases: KernelCase[] = [
  gradCase('relu', [1], 1),
  gradCase('gelu', [1], 2),
  gradCase('silu', [1], 3),
  gradCase('relu', [1031], 4),
  gradCase('gelu', [1031], 5),
  gradCase('silu', [1031], 6),
  gradCase('gelu', [37, 29], 7, 3),
  gradCase('silu', [3, 5, 67], 8, 30),
  {
    name: 'activationBackward gelu at and past the clamp',
    async run(ctx) {
      // The forward's tanh argument is clamped to ±15 (|x| ≥ ~6.56): the gradient is then exactly
      // 0.5·(1 + tanh(±15)), i.e. 1 or 0 to f32 — and finite, even for huge |x|.
      const X = Float32Array.from([-1e30, -100, -7, -6.5, 0, 6.5, 7, 100, 1e30]);
      const dY = new Float32Array(X.length).fill(1);
      const { outputs } = await runKernel(
        ctx,
        [
          { data: X, shape: [X.length] },
          { data: dY, shape: [X.length] },
        ],
        (rec, x, dy) => activationBackward(rec, x, dy, 'gelu'),
      );
      const want = Float64Array.from(X, (x) => actDerivative(x, 'gelu'));
      assertClose(outputs[0] as Float32Array, want, ACT_GRAD_F32, 'gelu′ at the clamp');
    },
  },
  {
    name: 'activationBackward rejects a dy of another shape',
    async run(ctx) {
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 6), shape: [2, 3] },
              { data: randn(2, 6), shape: [3, 2] },
            ],
            (rec, x, dy) => activationBackward(rec, x, dy, 'relu'),
          ),
        'tensor/shape',
        ['activationBackward', 'dy must have shape [2, 3]', 'got [3, 2]'],
        'activationBackward dy [3,2] for x [2,3]',
      );
    },
  },
  {
    name: 'activationBackward rejects integer inputs and unknown activations',
    async run(ctx) {
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randInts(1, 4, 5), shape: [4] },
              { data: randn(2, 4), shape: [4] },
            ],
            (rec, x, dy) => activationBackward(rec, x, dy, 'relu'),
          ),
        'tensor/dtype',
        ['activationBackward', 'i32'],
        'activationBackward with i32 x',
      );
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 4), shape: [4] },
              { data: randn(2, 4), shape: [4] },
            ],
            (rec, x, dy) => activationBackward(rec, x, dy, 'tanh' as GradAct),
          ),
        'input/invalid',
        ['activation must be one of relu, gelu, silu', '"tanh"'],
        'activationBackward tanh',
      );
    },
  },
  {
    name: 'activationBackward f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      for (const act of ['relu', 'gelu', 'silu'] as const) {
        const n = 301;
        const X = toF16Array(randn(40, n, -8, 8));
        const dY = toF16Array(randn(41, n));
        const { outputs } = await runKernel(
          ctx,
          [
            { data: X, shape: [n] },
            { data: dY, shape: [n] },
          ],
          async (rec, x, dy) => {
            const dx = await activationBackward(rec, x, dy, act);
            assertShape(dx, [n], 'f16 dx');
            if (dx.dtype !== 'f16') throw new Error(`dx is ${dx.dtype}, expected f16`);
            return dx;
          },
        );
        const x64 = fromF16Array(X);
        const dy64 = fromF16Array(dY);
        const want = Float64Array.from(x64, (x, i) => (dy64[i] as number) * actDerivative(x, act)); // same length
        assertClose(fromF16Array(outputs[0] as Uint16Array), want, ACT_GRAD_F16, `${act}′ f16`);
      }
    },
  },
];
