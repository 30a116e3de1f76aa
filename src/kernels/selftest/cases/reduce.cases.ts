import { at } from '../../../core/at.ts';
import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import { type ReduceOp, reduce } from '../../../kernels/reduce.ts';
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
import { reduceRef } from '../reference-forward.ts';

/** f32 sum of n values in [-1, 1]: serial folds of n/256 then an 8-level tree, error ~ √n·ε. */
const SUM_F32 = (n: number): Tolerance => ({ rtol: 1e-5, atol: 1e-6 * Math.sqrt(n) });
/** The sum's tolerance divided by n. */
const MEAN_F32 = (n: number): Tolerance => ({ rtol: 1e-5, atol: 1e-6 / Math.sqrt(n) });
/** max picks one of its inputs: exact. */
const MAX_F32: Tolerance = { rtol: 0, atol: 0 };
/** f16 inputs are exact; the f32 result is rounded to 11 bits on the way out. */
const REDUCE_F16 = (n: number): Tolerance => ({ rtol: 1e-3, atol: 1e-3 * Math.sqrt(n) });

const TOL: Record<ReduceOp, (n: number) => Tolerance> = { sum: SUM_F32, mean: MEAN_F32, max: () => MAX_F32 };

function reduceCase(op: ReduceOp, shape: number[], axis: number, seed: number): KernelCase {
  return {
    name: `reduce ${op} ${shape.join('×')} axis ${axis}`,
    async run(ctx) {
      const X = randn(
        seed,
        shape.reduce((u, v) => u * v, 1),
      );
      const ax = axis < 0 ? axis + shape.length : axis;
      const outShape = shape.filter((_, i) => i !== ax);
      const { outputs } = await runKernel(ctx, [{ data: X, shape }], async (rec, x) => {
        const y = await reduce(rec, x, { op, axis });
        assertShape(y, outShape, `reduce ${op}`);
        return y;
      });
      const n = at(shape, ax, 'case shape');
      assertClose(
        outputs[0] as Float32Array,
        reduceRef(X, shape, axis, op),
        TOL[op](n),
        `reduce ${op} ${shape}`,
      );
    },
  };
}

export const cases: KernelCase[] = [
  reduceCase('sum', [1], 0, 1),
  reduceCase('sum', [37, 45], -1, 2),
  reduceCase('sum', [37, 45], 0, 3),
  reduceCase('sum', [3, 3000], 1, 4),
  reduceCase('sum', [5, 7, 3, 11], 1, 5),
  reduceCase('sum', [4, 1, 9], 1, 6),
  reduceCase('max', [1, 1], 0, 7),
  reduceCase('max', [6, 257], -1, 8),
  reduceCase('max', [300, 5], 0, 9),
  reduceCase('max', [3, 9, 13], 1, 10),
  reduceCase('mean', [2, 3000], -1, 11),
  reduceCase('mean', [129, 7], 0, 12),
  reduceCase('mean', [2, 6, 5, 17], 2, 13),
  reduceCase('sum', [3000, 3], 0, 15),
  reduceCase('max', [2, 3000, 2], 1, 16),
  reduceCase('mean', [256, 200], 0, 17),
  reduceCase('sum', [3, 0], 1, 18),
  {
    name: 'reduce sum of large values',
    async run(ctx) {
      // All the same sign, so no cancellation hides a badly ordered sum.
      const X = randn(14, 4 * 999, 1000, 2000);
      const { outputs } = await runKernel(ctx, [{ data: X, shape: [4, 999] }], (rec, x) =>
        reduce(rec, x, { op: 'sum', axis: 1 }),
      );
      assertClose(
        outputs[0] as Float32Array,
        reduceRef(X, [4, 999], 1, 'sum'),
        { rtol: 1e-6, atol: 0 },
        'big sum',
      );
    },
  },
  {
    name: 'reduce is bit-identical across runs',
    async run(ctx) {
      const X = randn(20, 5 * 3000);
      await assertDeterministic(
        async () =>
          (
            await runKernel(ctx, [{ data: X, shape: [5, 3000] }], async (rec, x) => [
              await reduce(rec, x, { op: 'sum', axis: 1 }),
              await reduce(rec, x, { op: 'mean', axis: -1 }),
              await reduce(rec, x, { op: 'sum', axis: 0 }),
            ])
          ).outputs,
        'reduce 5×3000',
      );
    },
  },
  {
    name: 'reduce rejects an axis out of range',
    async run(ctx) {
      for (const axis of [2, -3, 0.5]) {
        await assertRejects(
          () =>
            runKernel(ctx, [{ data: randn(1, 6), shape: [2, 3] }], (rec, x) =>
              reduce(rec, x, { op: 'sum', axis }),
            ),
          'tensor/shape',
          ['reduce', `axis ${axis}`, '[2, 3]', 'out of range'],
          `reduce axis ${axis}`,
        );
      }
      await assertRejects(
        () =>
          runKernel(ctx, [{ data: new Float32Array(0), shape: [2, 0] }], (rec, x) =>
            reduce(rec, x, { op: 'max', axis: 1 }),
          ),
        'tensor/shape',
        ['reduce', 'max', 'empty'],
        'reduce max over an empty axis',
      );
    },
  },
  {
    name: 'reduce f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      const shape = [3, 301];
      const X = toF16Array(randn(30, 3 * 301));
      const { outputs } = await runKernel(ctx, [{ data: X, shape }], async (rec, x) => [
        await reduce(rec, x, { op: 'sum', axis: 1 }),
        await reduce(rec, x, { op: 'max', axis: 0 }),
      ]);
      const x = fromF16Array(X);
      const got = outputs.map((o) => fromF16Array(o as Uint16Array));
      assertClose(at(got, 0, 'outputs'), reduceRef(x, shape, 1, 'sum'), REDUCE_F16(301), 'reduce sum f16');
      assertClose(at(got, 1, 'outputs'), reduceRef(x, shape, 0, 'max'), REDUCE_F16(3), 'reduce max f16');
    },
  },
];
