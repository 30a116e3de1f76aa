import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import { matmulBackward } from '../../../kernels/matmul-grad.ts';
import {
  assertClose,
  assertDeterministic,
  assertRejects,
  type KernelCase,
  randn,
  runKernel,
  type Tolerance,
} from '../harness.ts';
import {
  dot,
  finiteDiff,
  type MmDims,
  matmulForward,
  matmulGradRef,
  pick,
  sampleIndices,
} from '../reference-backward.ts';

/** f32 sums of `n` products of values in [-1, 1] (n = the reduced length): as for matmul. */
const MATMUL_GRAD_F32 = (n: number): Tolerance => ({ rtol: 1e-5, atol: 2e-6 * Math.max(n, 1) });
/** f16 storage of inputs and outputs (11 bits); the sums are f32. */
const MATMUL_GRAD_F16 = (n: number): Tolerance => ({ rtol: 2e-3, atol: 1e-3 * Math.sqrt(Math.max(n, 1)) });
/** L = Σ dC ⊙ C is linear in each operand: central differences are exact but for rounding. */
const FD_H = 1e-3;

interface Mg {
  M: number;
  N: number;
  K: number;
  /** Batch of A (and dC); B is batched too unless broadcastB. */
  batch?: number;
  broadcastB?: boolean;
  /** A 2-D and broadcast over B's batch instead. */
  broadcastA?: boolean;
  transA?: boolean;
  transB?: boolean;
  bias?: boolean;
}

function dims(c: Mg): MmDims {
  const batch = c.batch ?? 1;
  return {
    M: c.M,
    N: c.N,
    K: c.K,
    batch,
    transA: !!c.transA,
    transB: !!c.transB,
    strideA: c.broadcastA ? 0 : c.M * c.K,
    strideB: c.broadcastB ? 0 : c.K * c.N,
  };
}

function shapes(c: Mg): { a: number[]; b: number[]; dC: number[] } {
  const a = c.transA ? [c.K, c.M] : [c.M, c.K];
  const b = c.transB ? [c.N, c.K] : [c.K, c.N];
  const lead = c.batch ? [c.batch] : [];
  return {
    a: c.broadcastA ? a : [...lead, ...a],
    b: c.broadcastB ? b : [...lead, ...b],
    dC: [...lead, c.M, c.N],
  };
}

function gradCase(name: string, c: Mg, seed: number): KernelCase {
  return {
    name: `matmulBackward ${name}`,
    async run(ctx) {
      const s = shapes(c);
      const o = dims(c);
      const size = (sh: number[]) => sh.reduce((x, y) => x * y, 1);
      const A = randn(seed, size(s.a));
      const B = randn(seed + 1, size(s.b));
      const dC = randn(seed + 2, size(s.dC));
      const { outputs, shapes: got } = await runKernel(
        ctx,
        [
          { data: A, shape: s.a },
          { data: B, shape: s.b },
          { data: dC, shape: s.dC },
        ],
        async (rec, a, b, dc) => {
          const r = await matmulBackward(rec, a, b, dc, {
            transA: !!c.transA,
            transB: !!c.transB,
            withBias: !!c.bias,
          });
          if (!c.bias && r.dBias) throw new Error('dBias without withBias');
          return r.dBias ? [r.dA, r.dB, r.dBias] : [r.dA, r.dB];
        },
      );
      if (got[0]?.join() !== s.a.join()) throw new Error(`dA shape [${got[0]}], expected [${s.a}]`);
      if (got[1]?.join() !== s.b.join()) throw new Error(`dB shape [${got[1]}], expected [${s.b}]`);
      const want = matmulGradRef(A, B, dC, o, A.length, B.length);
      const batch = o.batch;
      // dA sums over N (and the batch if A was broadcast), dB over M (and the batch if B was).
      const tolA = MATMUL_GRAD_F32(c.N * (c.broadcastA ? batch : 1));
      const tolB = MATMUL_GRAD_F32(c.M * (c.broadcastB ? batch : 1));
      const tolBias = MATMUL_GRAD_F32(c.M * batch);
      const dA = outputs[0] as Float32Array;
      const dB = outputs[1] as Float32Array;
      assertClose(dA, want.dA, tolA, `${name} dA`);
      assertClose(dB, want.dB, tolB, `${name} dB`);
      const bias = c.bias ? randn(seed + 3, c.N) : undefined;
      if (c.bias) {
        if (got[2]?.join() !== String(c.N)) throw new Error(`dBias shape [${got[2]}], expected [${c.N}]`);
        assertClose(outputs[2] as Float32Array, want.dBias, tolBias, `${name} dBias`);
      }
      // Independently of the analytic reference: finite differences of L = Σ dC ⊙ C.
      const ia = sampleIndices(seed + 4, A.length, 6);
      const ib = sampleIndices(seed + 5, B.length, 6);
      const fdA = finiteDiff((x) => dot(dC, matmulForward(x, B, o, bias)), A, ia, FD_H);
      const fdB = finiteDiff((x) => dot(dC, matmulForward(A, x, o, bias)), B, ib, FD_H);
      assertClose(pick(dA, ia), fdA, tolA, `${name} dA vs finite differences`);
      assertClose(pick(dB, ib), fdB, tolB, `${name} dB vs finite differences`);
      if (c.bias && bias) {
        const ic = sampleIndices(seed + 6, c.N, 4);
        const fdBias = finiteDiff((x) => dot(dC, matmulForward(A, B, o, x)), bias, ic, FD_H);
        assertClose(
          pick(outputs[2] as Float32Array, ic),
          fdBias,
          tolBias,
          `${name} dBias vs finite differences`,
        );
      }
    },
  };
}

export const cases: KernelCase[] = [
  gradCase('1×1×1 with bias', { M: 1, N: 1, K: 1, bias: true }, 1),
  gradCase('37×19×21 with bias', { M: 37, N: 19, K: 21, bias: true }, 2),
  gradCase('Aᵀ 33×17×45', { M: 33, N: 17, K: 45, transA: true }, 3),
  gradCase('Bᵀ 20×31×9 with bias', { M: 20, N: 31, K: 9, transB: true, bias: true }, 4),
  gradCase('AᵀBᵀ 13×27×70', { M: 13, N: 27, K: 70, transA: true, transB: true }, 5),
  // 1000 rows: dBias takes two passes of the column sum (4 chunks of 256 rows, then their sum).
  gradCase('1000 rows 1000×7×5 with bias', { M: 1000, N: 7, K: 5, bias: true }, 6),
  gradCase('batched 3×11×13×17', { batch: 3, M: 11, N: 13, K: 17, bias: true }, 7),
  // B broadcast: dB folds the batch into M (one matmul sums over it).
  gradCase('batched A, 2-D B 4×9×23×11', { batch: 4, M: 9, N: 23, K: 11, broadcastB: true, bias: true }, 8),
  gradCase(
    'batched A, 2-D Bᵀ 3×10×6×19',
    { batch: 3, M: 10, N: 6, K: 19, broadcastB: true, transB: true },
    9,
  ),
  // Aᵀ batched with B broadcast cannot fold: per-batch dB, then a fixed-order sum over the batch.
  gradCase('batched Aᵀ, 2-D B 5×7×12×8', { batch: 5, M: 7, N: 12, K: 8, broadcastB: true, transA: true }, 10),
  gradCase('2-D A, batched B 3×14×9×10', { batch: 3, M: 14, N: 9, K: 10, broadcastA: true }, 11),
  gradCase(
    '2-D Aᵀ, batched Bᵀ 2×8×15×6',
    { batch: 2, M: 8, N: 15, K: 6, broadcastA: true, transA: true, transB: true },
    12,
  ),
  {
    name: 'matmulBackward is bit-identical across runs (dA, dB, dBias over 1000 rows)',
    async run(ctx) {
      const [M, N, K] = [1000, 40, 30];
      const A = randn(20, M * K);
      const B = randn(21, K * N);
      const dC = randn(22, M * N);
      await assertDeterministic(
        async () =>
          (
            await runKernel(
              ctx,
              [
                { data: A, shape: [M, K] },
                { data: B, shape: [K, N] },
                { data: dC, shape: [M, N] },
              ],
              async (rec, a, b, dc) => {
                const r = await matmulBackward(rec, a, b, dc, { withBias: true });
                if (!r.dBias) throw new Error('no dBias with withBias');
                return [r.dA, r.dB, r.dBias];
              },
            )
          ).outputs,
        'matmulBackward 1000×40×30',
      );
    },
  },
  {
    name: 'matmulBackward rejects a dC of the wrong shape',
    async run(ctx) {
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 6), shape: [2, 3] },
              { data: randn(2, 12), shape: [3, 4] },
              { data: randn(3, 6), shape: [2, 3] },
            ],
            (rec, a, b, dc) => matmulBackward(rec, a, b, dc).then((r) => [r.dA, r.dB]),
          ),
        'tensor/shape',
        ['matmulBackward', 'dC must have shape [2, 4]', 'got [2, 3]'],
        'matmulBackward dC [2,3] for C [2,4]',
      );
    },
  },
  {
    name: 'matmulBackward rejects mismatched inner and batch dimensions',
    async run(ctx) {
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 6), shape: [2, 3] },
              { data: randn(2, 8), shape: [4, 2] },
              { data: randn(3, 4), shape: [2, 2] },
            ],
            (rec, a, b, dc) => matmulBackward(rec, a, b, dc).then((r) => [r.dA, r.dB]),
          ),
        'tensor/shape',
        ['inner dimensions differ', 'K=3', 'K=4'],
        'matmulBackward [2,3]×[4,2]',
      );
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 12), shape: [2, 2, 3] },
              { data: randn(2, 18), shape: [3, 3, 2] },
              { data: randn(3, 8), shape: [2, 2, 2] },
            ],
            (rec, a, b, dc) => matmulBackward(rec, a, b, dc).then((r) => [r.dA, r.dB]),
          ),
        'tensor/shape',
        ['batch dimensions do not match', '[2] vs [3]'],
        'matmulBackward batch 2 vs 3',
      );
    },
  },
  {
    name: 'matmulBackward f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      const [M, N, K] = [45, 23, 31];
      const A = toF16Array(randn(30, M * K));
      const B = toF16Array(randn(31, K * N));
      const dC = toF16Array(randn(32, M * N));
      const { outputs } = await runKernel(
        ctx,
        [
          { data: A, shape: [M, K] },
          { data: B, shape: [K, N] },
          { data: dC, shape: [M, N] },
        ],
        async (rec, a, b, dc) => {
          const r = await matmulBackward(rec, a, b, dc, { withBias: true });
          if (!r.dBias) throw new Error('no dBias with withBias');
          return [r.dA, r.dB, r.dBias];
        },
      );
      const o = dims({ M, N, K });
      const want = matmulGradRef(fromF16Array(A), fromF16Array(B), fromF16Array(dC), o, M * K, K * N);
      const f = (i: number) => fromF16Array(outputs[i] as Uint16Array);
      assertClose(f(0), want.dA, MATMUL_GRAD_F16(N), 'f16 dA');
      assertClose(f(1), want.dB, MATMUL_GRAD_F16(M), 'f16 dB');
      assertClose(f(2), want.dBias, MATMUL_GRAD_F16(M), 'f16 dBias');
    },
  },
];
