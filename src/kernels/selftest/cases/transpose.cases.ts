import { at } from '../../../core/at.ts';
import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import { transpose } from '../../../kernels/transpose.ts';
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
import { transposeRef } from '../reference-forward.ts';

/** A transpose moves values without arithmetic: the bits must survive. */
const TRANSPOSE_EXACT: Tolerance = { rtol: 0, atol: 0 };

function transposeCase(shape: number[], perm: number[] | undefined, seed: number): KernelCase {
  const rank = shape.length;
  const p = perm ?? [...Array(rank - 2).keys(), rank - 1, rank - 2];
  return {
    name: `transpose ${shape.join('×')} ${perm ? `perm [${perm}]` : 'last two axes'}`,
    async run(ctx) {
      const X = randn(
        seed,
        shape.reduce((u, v) => u * v, 1),
      );
      const { outputs } = await runKernel(ctx, [{ data: X, shape }], async (rec, x) => {
        const y = await transpose(rec, x, perm);
        assertShape(
          y,
          p.map((a) => at(shape, a, 'case shape')),
          'transpose',
        );
        return y;
      });
      assertClose(
        outputs[0] as Float32Array,
        transposeRef(X, shape, p),
        TRANSPOSE_EXACT,
        `transpose ${shape}`,
      );
    },
  };
}

export const cases: KernelCase[] = [
  transposeCase([1, 1], undefined, 1),
  transposeCase([67, 45], undefined, 2),
  transposeCase([3, 5, 37], undefined, 3),
  transposeCase([1, 129], undefined, 4),
  transposeCase([2, 7, 3, 11], [0, 2, 1, 3], 5),
  transposeCase([2, 7, 3, 11], [3, 1, 0, 2], 6),
  transposeCase([2, 7, 3, 11], [0, 1, 2, 3], 7),
  transposeCase([5, 1, 9, 1, 4], [4, 2, 0, 3, 1], 8),
  transposeCase([2, 3, 2, 5, 3, 2], [5, 3, 1, 4, 0, 2], 9),
  transposeCase([3, 2, 2, 3, 2, 2, 3, 2], [7, 5, 3, 1, 6, 4, 2, 0], 10),
  // Nine axes, but 2 and 3 stay adjacent: eight after merging.
  transposeCase([3, 2, 2, 3, 2, 2, 3, 2, 2], [8, 6, 2, 3, 0, 7, 5, 4, 1], 12),
  transposeCase([37], [0], 11),
  {
    name: 'transpose is bit-identical across runs',
    async run(ctx) {
      const X = randn(20, 3 * 3000);
      await assertDeterministic(
        async () =>
          (await runKernel(ctx, [{ data: X, shape: [3, 3000] }], async (rec, x) => transpose(rec, x)))
            .outputs,
        'transpose 3×3000',
      );
    },
  },
  {
    name: 'transpose rejects a bad permutation',
    async run(ctx) {
      const x = [{ data: randn(1, 24), shape: [2, 3, 4] }];
      for (const perm of [
        [0, 1],
        [0, 1, 1],
        [0, 1, 3],
        [-1, 0, 1],
      ]) {
        await assertRejects(
          () => runKernel(ctx, x, (rec, t) => transpose(rec, t, perm)),
          'tensor/shape',
          ['transpose', `permutation [${perm.join(', ')}]`, '[2, 3, 4]'],
          `transpose perm [${perm}]`,
        );
      }
      await assertRejects(
        () => runKernel(ctx, [{ data: randn(2, 5), shape: [5] }], (rec, t) => transpose(rec, t)),
        'tensor/shape',
        ['transpose', 'last two axes', '[5]'],
        'transpose of a vector without a permutation',
      );
      await assertRejects(
        () =>
          runKernel(ctx, [{ data: randn(3, 2 ** 9), shape: Array(9).fill(2) }], (rec, t) =>
            transpose(rec, t, [8, 6, 4, 2, 0, 7, 5, 3, 1]),
          ),
        'tensor/shape',
        ['transpose', '9 separate axes', 'at most 8'],
        'transpose of 9 unmergeable axes',
      );
    },
  },
  {
    name: 'transpose f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      const shape = [3, 5, 7];
      const X = toF16Array(randn(30, 105));
      const { outputs } = await runKernel(ctx, [{ data: X, shape }], (rec, x) =>
        transpose(rec, x, [2, 0, 1]),
      );
      const want = transposeRef(fromF16Array(X), shape, [2, 0, 1]);
      assertClose(fromF16Array(outputs[0] as Uint16Array), want, TRANSPOSE_EXACT, 'transpose f16');
    },
  },
];
