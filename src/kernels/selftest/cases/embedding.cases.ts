import { at } from '../../../core/at.ts';
import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import { embedding, embeddingBackward } from '../../../kernels/embedding.ts';
import {
  assertClose,
  assertDeterministic,
  assertRejects,
  assertShape,
  type KernelCase,
  randInts,
  randn,
  runKernel,
  type Tolerance,
} from '../harness.ts';
import {
  dot,
  embeddingForward,
  embeddingGradRef,
  finiteDiff,
  pick,
  sampleIndices,
} from '../reference-backward.ts';

/** A gather copies values: exact. */
const EMBEDDING_EXACT: Tolerance = { rtol: 0, atol: 0 };
/** dTable rows are f32 sums of the dy rows of their tokens: ~count·ε. */
const EMBEDDING_GRAD_F32 = (maxCount: number): Tolerance => ({
  rtol: 1e-5,
  atol: 1e-6 * Math.max(maxCount, 1),
});
/** L = Σ dy ⊙ embedding(table) is linear in the table: central differences are exact but for rounding. */
const EMBEDDING_FD = (maxCount: number): Tolerance => ({ rtol: 1e-5, atol: 2e-6 * Math.max(maxCount, 1) });
const EMBEDDING_GRAD_F16 = (maxCount: number): Tolerance => ({
  rtol: 2e-3,
  atol: 1e-3 * Math.sqrt(Math.max(maxCount, 1)),
});

/** The most tokens any one id has: the longest sum in the gradient. */
function maxCount(ids: Int32Array, V: number): number {
  const counts = new Map<number, number>();
  for (const id of ids) if (id >= 0 && id < V) counts.set(id, (counts.get(id) ?? 0) + 1);
  return Math.max(1, ...counts.values());
}

interface Em {
  V: number;
  D: number;
  idShape: number[];
  /** Replace these token positions' ids with these (out-of-range) values. */
  bad?: [number, number][];
  /** Draw ids from [0, idRange) instead of [0, V): concentrates tokens on few rows. */
  idRange?: number;
}

function ids(c: Em, seed: number): Int32Array {
  const n = c.idShape.reduce((a, b) => a * b, 1);
  const out = randInts(seed, n, c.idRange ?? c.V);
  for (const [t, v] of c.bad ?? []) out[t] = v;
  return out;
}

function gatherCase(name: string, c: Em, seed: number): KernelCase {
  return {
    name: `embedding ${name}`,
    async run(ctx) {
      const table = randn(seed, c.V * c.D);
      const I = ids(c, seed + 1);
      const { outputs } = await runKernel(
        ctx,
        [
          { data: table, shape: [c.V, c.D] },
          { data: I, shape: c.idShape },
        ],
        async (rec, t, i) => {
          const out = await embedding(rec, t, i);
          assertShape(out, [...c.idShape, c.D], 'embedding output');
          return out;
        },
      );
      assertClose(outputs[0] as Float32Array, embeddingForward(table, I, c.V, c.D), EMBEDDING_EXACT, name);
    },
  };
}

function gradCase(name: string, c: Em, seed: number): KernelCase {
  return {
    name: `embeddingBackward ${name}`,
    async run(ctx) {
      const I = ids(c, seed);
      const dY = randn(seed + 1, I.length * c.D);
      const { outputs } = await runKernel(
        ctx,
        [
          { data: I, shape: c.idShape },
          { data: dY, shape: [...c.idShape, c.D] },
        ],
        async (rec, i, dy) => {
          const out = await embeddingBackward(rec, i, dy, c.V);
          assertShape(out, [c.V, c.D], 'dTable');
          return out;
        },
      );
      const got = outputs[0] as Float32Array;
      const most = maxCount(I, c.V);
      assertClose(got, embeddingGradRef(I, dY, c.V, c.D), EMBEDDING_GRAD_F32(most), `${name} dTable`);
      // Independently: finite differences of L = Σ dy ⊙ embedding(table, ids), on a few table
      // entries, plus every entry of the row of the first token's id.
      const table = randn(seed + 2, c.V * c.D);
      const idx = sampleIndices(seed + 3, c.V * c.D, 10);
      const first = at(I, 0, 'ids');
      if (first >= 0 && first < c.V) for (let d = 0; d < c.D; d++) idx.push(first * c.D + d);
      const fd = finiteDiff((t) => dot(dY, embeddingForward(t, I, c.V, c.D)), table, idx, 1e-3);
      assertClose(pick(got, idx), fd, EMBEDDING_FD(most), `${name} dTable vs finite differences`);
    },
  };
}

export const cases: KernelCase[] = [
  gatherCase('1×1 table, one token', { V: 1, D: 1, idShape: [1] }, 1),
  gatherCase('37×19 table, [5, 13] ids', { V: 37, D: 19, idShape: [5, 13] }, 2),
  gatherCase('256×3 table, 1000 ids', { V: 256, D: 3, idShape: [1000] }, 3),
  gatherCase(
    'ids outside [0, V) give zero rows',
    {
      V: 10,
      D: 7,
      idShape: [2, 6],
      bad: [
        [0, -1],
        [5, 10],
        [11, 2 ** 31 - 1],
      ],
    },
    4,
  ),
  gradCase('V 1, one token', { V: 1, D: 1, idShape: [1] }, 10),
  gradCase('V 200, 3 tokens (most rows zero)', { V: 200, D: 6, idShape: [3] }, 11),
  gradCase('V 37, [4, 9] tokens', { V: 37, D: 19, idShape: [4, 9] }, 12),
  // 1000 tokens on 5 ids: long runs per row; 1024 sort slots = a local sort, a global step, a merge.
  gradCase('1000 tokens on 5 ids', { V: 50, D: 7, idShape: [1000], idRange: 5 }, 13),
  // 1500 tokens pad to 2048: two merge stages of the bitonic network in memory.
  gradCase('V 256, [3, 500] tokens', { V: 256, D: 5, idShape: [3, 500] }, 14),
  gradCase(
    'ids outside [0, V) are ignored',
    {
      V: 20,
      D: 4,
      idShape: [700],
      bad: [
        [0, -1],
        [1, 20],
        [2, -2147483648],
        [699, 2147483647],
        [300, 25],
      ],
    },
    15,
  ),
  {
    name: 'embeddingBackward sums each row in token order (equal to a serial f32 sum)',
    async run(ctx) {
      // The documented order: dTable[v] = ((dy[t0] + dy[t1]) + dy[t2]) + … over v's tokens
      // t0 < t1 < …, each addition rounded to f32 — so a serial f32 loop gives the same bits.
      const [V, D, T] = [6, 5, 900];
      const I = randInts(70, T, V);
      const dY = randn(71, T * D, -1, 1).map((x, i) => (i % 3 === 0 ? x * 1e4 : x));
      const { outputs } = await runKernel(
        ctx,
        [
          { data: I, shape: [T] },
          { data: dY, shape: [T, D] },
        ],
        (rec, i, dy) => embeddingBackward(rec, i, dy, V),
      );
      const serial = new Float32Array(V * D);
      // I is T long and dY T·D; every id is in [0, V).
      for (let t = 0; t < T; t++) {
        const row = (I[t] as number) * D;
        for (let d = 0; d < D; d++) {
          serial[row + d] = Math.fround((serial[row + d] as number) + (dY[t * D + d] as number));
        }
      }
      assertClose(
        outputs[0] as Float32Array,
        serial,
        EMBEDDING_EXACT,
        'dTable vs serial f32 sum in token order',
      );
    },
  },
  {
    name: 'embeddingBackward is bit-identical across runs',
    async run(ctx) {
      const I = randInts(30, 1500, 40);
      const dY = randn(31, 1500 * 33);
      await assertDeterministic(
        async () =>
          (
            await runKernel(
              ctx,
              [
                { data: I, shape: [1500] },
                { data: dY, shape: [1500, 33] },
              ],
              async (rec, i, dy) => embeddingBackward(rec, i, dy, 40),
            )
          ).outputs,
        'embeddingBackward 1500 tokens, V 40, D 33',
      );
    },
  },
  {
    name: 'embedding rejects ids that are not i32 and tables that are not [V, D]',
    async run(ctx) {
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 12), shape: [4, 3] },
              { data: Float32Array.from([0, 1]), shape: [2] },
            ],
            (rec, t, i) => embedding(rec, t, i),
          ),
        'tensor/dtype',
        ['embedding', 'ids must be i32', 'got f32'],
        'embedding with f32 ids',
      );
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 12), shape: [12] },
              { data: Int32Array.from([0, 1]), shape: [2] },
            ],
            (rec, t, i) => embedding(rec, t, i),
          ),
        'tensor/shape',
        ['embedding', 'table must be [V, D]', 'got [12]'],
        'embedding with a 1-D table',
      );
    },
  },
  {
    name: 'embeddingBackward rejects a dy of the wrong shape, non-i32 ids and a bad V',
    async run(ctx) {
      const inputs = (dyShape: number[], idData: Int32Array | Uint32Array = Int32Array.from([1, 2, 3])) => [
        { data: idData, shape: [3] },
        {
          data: randn(
            2,
            dyShape.reduce((a, b) => a * b, 1),
          ),
          shape: dyShape,
        },
      ];
      await assertRejects(
        () => runKernel(ctx, inputs([4, 5]), (rec, i, dy) => embeddingBackward(rec, i, dy, 10)),
        'tensor/shape',
        ['embeddingBackward', 'dy must be [...ids.shape, D] = [3, D]', 'got [4, 5]'],
        'embeddingBackward dy [4, 5] for 3 ids',
      );
      await assertRejects(
        () =>
          runKernel(ctx, inputs([3, 5], Uint32Array.from([1, 2, 3])), (rec, i, dy) =>
            embeddingBackward(rec, i, dy, 10),
          ),
        'tensor/dtype',
        ['embeddingBackward', 'ids must be i32', 'got u32'],
        'embeddingBackward u32 ids',
      );
      await assertRejects(
        () => runKernel(ctx, inputs([3, 5]), (rec, i, dy) => embeddingBackward(rec, i, dy, 0)),
        'input/invalid',
        ['embeddingBackward', 'V (the vocabulary size) must be a positive integer', 'got 0'],
        'embeddingBackward V = 0',
      );
    },
  },
  {
    name: 'embedding and embeddingBackward f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      const [V, D, T] = [45, 17, 600];
      const table = toF16Array(randn(60, V * D));
      const I = randInts(61, T, V);
      const dY = toF16Array(randn(62, T * D));
      const { outputs } = await runKernel(
        ctx,
        [
          { data: table, shape: [V, D] },
          { data: I, shape: [T] },
          { data: dY, shape: [T, D] },
        ],
        async (rec, t, i, dy) => [await embedding(rec, t, i), await embeddingBackward(rec, i, dy, V)],
      );
      const f = (i: number) => fromF16Array(outputs[i] as Uint16Array);
      assertClose(f(0), embeddingForward(fromF16Array(table), I, V, D), EMBEDDING_EXACT, 'f16 gather');
      assertClose(
        f(1),
        embeddingGradRef(I, fromF16Array(dY), V, D),
        EMBEDDING_GRAD_F16(maxCount(I, V)),
        'f16 dTable',
      );
    },
  },
];
