import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import { matmul } from '../../../kernels/matmul.ts';
import {
  assertClose,
  assertDeterministic,
  assertRejects,
  type KernelCase,
  randn,
  runKernel,
  type Tolerance,
} from '../harness.ts';
import { type Act, matmulRef } from '../reference.ts';

/** f32 accumulation of K products of values in [-1, 1]: error grows about like √K·ε·K. */
const MATMUL_F32 = (K: number): Tolerance => ({ rtol: 1e-5, atol: 2e-6 * K });
/** f16 storage rounds inputs and outputs to 11 bits; the sum is still f32. */
const MATMUL_F16 = (K: number): Tolerance => ({ rtol: 2e-3, atol: 1e-3 * Math.sqrt(K) });

interface Mm {
  M: number;
  N: number;
  K: number;
  batch?: number;
  broadcastB?: boolean;
  transA?: boolean;
  transB?: boolean;
  bias?: boolean;
  act?: Act;
}

function mmCase(name: string, c: Mm, seed: number): KernelCase {
  return {
    name: `matmul ${name}`,
    async run(ctx) {
      const batch = c.batch ?? 1;
      const A = randn(seed, batch * c.M * c.K);
      const B = randn(seed + 1, (c.broadcastB ? 1 : batch) * c.K * c.N);
      const bias = randn(seed + 2, c.N);
      const aShape = c.transA ? [c.K, c.M] : [c.M, c.K];
      const bShape = c.transB ? [c.N, c.K] : [c.K, c.N];
      const inputs = [
        { data: A, shape: c.batch ? [batch, ...aShape] : aShape },
        { data: B, shape: c.batch && !c.broadcastB ? [batch, ...bShape] : bShape },
        { data: bias, shape: [c.N] },
      ];
      const { outputs, shapes } = await runKernel(ctx, inputs, (rec, a, b, bi) =>
        matmul(rec, a, b, {
          transA: !!c.transA,
          transB: !!c.transB,
          ...(c.bias ? { bias: bi } : {}),
          activation: c.act ?? 'none',
        }),
      );
      const { bias: withBias, ...dims } = c;
      const want = matmulRef(A, B, {
        ...dims,
        batch,
        strideB: c.broadcastB ? 0 : c.K * c.N,
        ...(withBias ? { bias } : {}),
      });
      const expected = c.batch ? [batch, c.M, c.N] : [c.M, c.N];
      if (shapes[0]?.join() !== expected.join()) throw new Error(`shape ${shapes[0]} != ${expected}`);
      assertClose(outputs[0] as Float32Array, want, MATMUL_F32(c.K), `matmul ${name}`);
    },
  };
}

export const cases: KernelCase[] = [
  mmCase('1×1×1', { M: 1, N: 1, K: 1 }, 1),
  mmCase('awkward 67×45×33', { M: 67, N: 45, K: 33 }, 2),
  mmCase('tall-skinny 130×3×7', { M: 130, N: 3, K: 7 }, 3),
  mmCase('long K 5×9×1031', { M: 5, N: 9, K: 1031 }, 4),
  mmCase('exact tiles 128×64×32', { M: 128, N: 64, K: 32 }, 5),
  mmCase('Aᵀ 33×65×17', { M: 33, N: 65, K: 17, transA: true }, 6),
  mmCase('Bᵀ 19×70×40', { M: 19, N: 70, K: 40, transB: true }, 7),
  mmCase('AᵀBᵀ 23×29×31', { M: 23, N: 29, K: 31, transA: true, transB: true }, 8),
  mmCase('bias+relu 37×66×21', { M: 37, N: 66, K: 21, bias: true, act: 'relu' }, 9),
  mmCase('bias+gelu 40×33×50', { M: 40, N: 33, K: 50, bias: true, act: 'gelu' }, 10),
  mmCase('silu 17×18×19', { M: 17, N: 18, K: 19, act: 'silu' }, 11),
  mmCase('batched 3×21×34×13', { batch: 3, M: 21, N: 34, K: 13 }, 12),
  mmCase('batched, B broadcast 4×9×70×11', { batch: 4, M: 9, N: 70, K: 11, broadcastB: true }, 13),
  {
    name: 'matmul is bit-identical across runs',
    async run(ctx) {
      const A = randn(20, 70 * 300);
      const B = randn(21, 300 * 90);
      await assertDeterministic(
        async () =>
          (
            await runKernel(
              ctx,
              [
                { data: A, shape: [70, 300] },
                { data: B, shape: [300, 90] },
              ],
              (rec, a, b) => matmul(rec, a, b),
            )
          ).outputs,
        'matmul 70×90×300',
      );
    },
  },
  {
    name: 'matmul rejects mismatched inner dimensions',
    async run(ctx) {
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 6), shape: [2, 3] },
              { data: randn(2, 8), shape: [4, 2] },
            ],
            (rec, a, b) => matmul(rec, a, b),
          ),
        'tensor/shape',
        ['inner dimensions differ', 'K=3', 'K=4'],
        'matmul [2,3]×[4,2]',
      );
    },
  },
  {
    name: 'matmul f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      const [M, N, K] = [35, 47, 61];
      const A = toF16Array(randn(30, M * K));
      const B = toF16Array(randn(31, K * N));
      const { outputs } = await runKernel(
        ctx,
        [
          { data: A, shape: [M, K] },
          { data: B, shape: [K, N] },
        ],
        (rec, a, b) => matmul(rec, a, b),
      );
      const want = matmulRef(fromF16Array(A), fromF16Array(B), { M, N, K });
      assertClose(fromF16Array(outputs[0] as Uint16Array), want, MATMUL_F16(K), 'matmul f16');
    },
  },
];
