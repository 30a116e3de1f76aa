import { at } from '../../../core/at.ts';
import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import { softmax } from '../../../kernels/softmax.ts';
import {
  assertClose,
  assertDeterministic,
  assertShape,
  type KernelCase,
  randn,
  runKernel,
  type Tolerance,
} from '../harness.ts';
import { softmaxRef } from '../reference-forward.ts';

/**
 * WGSL's exp is allowed 3 + 2·|x| ulp, so a probability of e^−20 may be off by ~40 ulp;
 * the row sum adds ~√C·ε. Outputs are in [0, 1], hence the small absolute term.
 */
const SOFTMAX_F32: Tolerance = { rtol: 1e-5, atol: 1e-7 };
/** f16 output: 11 bits. */
const SOFTMAX_F16: Tolerance = { rtol: 2e-3, atol: 1e-5 };

function softmaxCase(name: string, shape: number[], seed: number, lo = -3, hi = 3): KernelCase {
  return {
    name: `softmax ${name} ${shape.join('×')}`,
    async run(ctx) {
      const X = randn(
        seed,
        shape.reduce((u, v) => u * v, 1),
        lo,
        hi,
      );
      const { outputs } = await runKernel(ctx, [{ data: X, shape }], async (rec, x) => {
        const y = await softmax(rec, x);
        assertShape(y, shape, 'softmax');
        return y;
      });
      const got = outputs[0] as Float32Array;
      assertClose(
        got,
        softmaxRef(X, at(shape, shape.length - 1, 'case shape')),
        SOFTMAX_F32,
        `softmax ${name}`,
      );
    },
  };
}

export const cases: KernelCase[] = [
  softmaxCase('single element', [1], 1),
  softmaxCase('one row', [37], 2),
  softmaxCase('odd rows', [45, 67], 3),
  softmaxCase('leading dims', [2, 3, 5, 129], 4),
  softmaxCase('long rows', [3, 3000], 5),
  softmaxCase('exactly one workgroup wide', [4, 256], 6),
  softmaxCase('large magnitudes ±80', [7, 300], 7, -80, 80),
  softmaxCase('large positive 60…90', [5, 33], 8, 60, 90),
  {
    name: 'softmax of a row with a dominant element and −1e30 entries',
    async run(ctx) {
      // exp(x) alone overflows at 89 and underflows at −104: only max subtraction survives this.
      const X = new Float32Array([1000, 0, -1e30, 999, -1e30, 998.5, 1000, -5]);
      const { outputs } = await runKernel(ctx, [{ data: X, shape: [1, 8] }], (rec, x) => softmax(rec, x));
      assertClose(outputs[0] as Float32Array, softmaxRef(X, 8), SOFTMAX_F32, 'softmax extreme');
    },
  },
  {
    name: 'softmax rows sum to 1',
    async run(ctx) {
      const C = 1000;
      const X = randn(9, 6 * C, -10, 10);
      const { outputs } = await runKernel(ctx, [{ data: X, shape: [6, C] }], (rec, x) => softmax(rec, x));
      const y = outputs[0] as Float32Array;
      const sums = Array.from({ length: 6 }, (_, r) =>
        y.subarray(r * C, (r + 1) * C).reduce((u, v) => u + v, 0),
      );
      assertClose(sums, new Array(6).fill(1), { rtol: 0, atol: 1e-5 }, 'softmax row sums');
    },
  },
  {
    name: 'softmax is bit-identical across runs',
    async run(ctx) {
      const X = randn(20, 4 * 3000, -8, 8);
      await assertDeterministic(
        async () =>
          (await runKernel(ctx, [{ data: X, shape: [4, 3000] }], async (rec, x) => softmax(rec, x))).outputs,
        'softmax 4×3000',
      );
    },
  },
  {
    name: 'softmax f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      const X = toF16Array(randn(30, 5 * 301, -8, 8));
      const { outputs } = await runKernel(ctx, [{ data: X, shape: [5, 301] }], (rec, x) => softmax(rec, x));
      assertClose(
        fromF16Array(outputs[0] as Uint16Array),
        softmaxRef(fromF16Array(X), 301),
        SOFTMAX_F16,
        'softmax f16',
      );
    },
  },
];
