import { at } from '../../../core/at.ts';
import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import { softmaxCrossEntropy } from '../../../kernels/cross-entropy.ts';
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
import { crossEntropyMean, crossEntropyRef, finiteDiff, pick, sampleIndices } from '../reference-backward.ts';

/** Per-row loss: f32 max, exp and log over V terms; the loss is O(log V + logit range). */
const CE_LOSS_F32: Tolerance = { rtol: 1e-5, atol: 1e-5 };
/** Gradient entries are probabilities / n: relative f32 error, absolute scaled by the mean's 1/n. */
const CE_GRAD_F32 = (n: number): Tolerance => ({ rtol: 1e-5, atol: 1e-6 / Math.max(n, 1) });
/** Finite differences (float64, h = 1e-4) of the mean loss: O(h²) error, below f32's. */
const CE_FD = (n: number): Tolerance => ({ rtol: 1e-4, atol: 2e-6 / Math.max(n, 1) });
/** f16 logits and outputs: 11 bits. */
const CE_LOSS_F16: Tolerance = { rtol: 2e-3, atol: 4e-3 };
const CE_GRAD_F16 = (n: number): Tolerance => ({ rtol: 4e-3, atol: 1e-3 / Math.max(n, 1) });

interface Ce {
  rows: number;
  V: number;
  /** Logits drawn from [-scale, scale]. */
  scale?: number;
  /** Every this-many-th row gets the ignore index. */
  ignoreEvery?: number;
  ignoreIndex?: number;
  /** Leading shape of logits instead of [rows]. */
  lead?: number[];
}

function ceCase(name: string, c: Ce, seed: number): KernelCase {
  return {
    name: `softmaxCrossEntropy ${name}`,
    async run(ctx) {
      const { rows, V } = c;
      const scale = c.scale ?? 4;
      const X = randn(seed, rows * V, -scale, scale);
      const targets = randInts(seed + 1, rows, V);
      const ignore = c.ignoreIndex ?? -1;
      if (c.ignoreEvery) for (let r = 0; r < rows; r += c.ignoreEvery) targets[r] = ignore;
      const lead = c.lead ?? [rows];
      const { outputs } = await runKernel(
        ctx,
        [
          { data: X, shape: [...lead, V] },
          { data: targets, shape: lead },
        ],
        async (rec, x, t) => {
          const r = await softmaxCrossEntropy(
            rec,
            x,
            t,
            c.ignoreIndex === undefined ? {} : { ignoreIndex: ignore },
          );
          assertShape(r.loss, lead, 'loss');
          assertShape(r.dlogits, [...lead, V], 'dlogits');
          return [r.loss, r.dlogits];
        },
      );
      const want = crossEntropyRef(X, targets, rows, V, ignore);
      const dl = outputs[1] as Float32Array;
      assertClose(outputs[0] as Float32Array, want.loss, CE_LOSS_F32, `${name} loss`);
      assertClose(dl, want.dlogits, CE_GRAD_F32(want.count), `${name} dlogits`);
      // Independently: finite differences of the mean loss, at a few logits (and each row's target).
      const idx = sampleIndices(seed + 2, rows * V, 10);
      for (const r of sampleIndices(seed + 3, rows, 3)) {
        const t = at(targets, r, 'targets');
        if (t >= 0) idx.push(r * V + t);
      }
      const fd = finiteDiff((x) => crossEntropyMean(x, targets, rows, V, ignore), X, idx);
      assertClose(pick(dl, idx), fd, CE_FD(want.count), `${name} dlogits vs finite differences`);
    },
  };
}

export const cases: KernelCase[] = [
  ceCase('1×1 (loss 0, gradient 0)', { rows: 1, V: 1 }, 1),
  ceCase('7×33', { rows: 7, V: 33 }, 2),
  ceCase('1000×17', { rows: 1000, V: 17 }, 3),
  ceCase('5×256 wide', { rows: 5, V: 256 }, 4),
  ceCase('3×4×67 (batch × sequence)', { rows: 12, V: 67, lead: [3, 4] }, 5),
  // Logits up to ±80: exp would overflow f32 without the max subtracted.
  ceCase('9×41 large logits', { rows: 9, V: 41, scale: 80 }, 6),
  ceCase('30×19 default ignoreIndex −1 on every 4th row', { rows: 30, V: 19, ignoreEvery: 4 }, 7),
  ceCase(
    '25×13 ignoreIndex 3 (a real class) on every 3rd row',
    { rows: 25, V: 13, ignoreEvery: 3, ignoreIndex: 3 },
    8,
  ),
  {
    name: 'softmaxCrossEntropy: every row ignored gives zero loss and gradient',
    async run(ctx) {
      const [rows, V] = [6, 10];
      const { outputs } = await runKernel(
        ctx,
        [
          { data: randn(1, rows * V), shape: [rows, V] },
          { data: new Int32Array(rows).fill(-100), shape: [rows] },
        ],
        (rec, x, t) => softmaxCrossEntropy(rec, x, t, { ignoreIndex: -100 }).then((r) => [r.loss, r.dlogits]),
      );
      assertClose(outputs[0] as Float32Array, new Float64Array(rows), { rtol: 0, atol: 0 }, 'loss');
      assertClose(outputs[1] as Float32Array, new Float64Array(rows * V), { rtol: 0, atol: 0 }, 'dlogits');
    },
  },
  {
    name: 'softmaxCrossEntropy: a target outside [0, V) gives NaN loss and zero gradient for its row only',
    async run(ctx) {
      const [rows, V] = [5, 8];
      const X = randn(3, rows * V);
      const targets = Int32Array.from([2, 8, -1, -7, 1_000_000]);
      const { outputs } = await runKernel(
        ctx,
        [
          { data: X, shape: [rows, V] },
          { data: targets, shape: [rows] },
        ],
        (rec, x, t) => softmaxCrossEntropy(rec, x, t).then((r) => [r.loss, r.dlogits]),
      );
      const loss = outputs[0] as Float32Array;
      const dl = outputs[1] as Float32Array;
      const want = crossEntropyRef(X, targets, rows, V);
      // Rows 1, 3, 4 are out of range (they count in the mean: 4 rows not ignored); row 2 is ignored.
      if (want.count !== 4) throw new Error(`reference count ${want.count}`);
      for (const r of [1, 3, 4]) {
        if (!Number.isNaN(loss[r])) throw new Error(`row ${r}: loss ${loss[r]}, expected NaN`);
      }
      assertClose(
        [at(loss, 0, 'loss'), at(loss, 2, 'loss')],
        [at(want.loss, 0, 'reference loss'), 0],
        CE_LOSS_F32,
        'in-range and ignored rows',
      );
      assertClose(dl, want.dlogits, CE_GRAD_F32(4), 'dlogits (zero on the bad rows)');
    },
  },
  {
    name: 'softmaxCrossEntropy is bit-identical across runs',
    async run(ctx) {
      const [rows, V] = [300, 211];
      const X = randn(50, rows * V, -5, 5);
      const targets = randInts(51, rows, V);
      targets[7] = -1;
      await assertDeterministic(
        async () =>
          (
            await runKernel(
              ctx,
              [
                { data: X, shape: [rows, V] },
                { data: targets, shape: [rows] },
              ],
              (rec, x, t) => softmaxCrossEntropy(rec, x, t).then((r) => [r.loss, r.dlogits]),
            )
          ).outputs,
        'softmaxCrossEntropy 300×211',
      );
    },
  },
  {
    name: 'softmaxCrossEntropy rejects targets of the wrong length or dtype',
    async run(ctx) {
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 12), shape: [4, 3] },
              { data: randInts(2, 3, 3), shape: [3] },
            ],
            (rec, x, t) => softmaxCrossEntropy(rec, x, t).then((r) => [r.loss, r.dlogits]),
          ),
        'tensor/shape',
        ['softmaxCrossEntropy', 'targets', 'must have shape [4]', 'got [3]'],
        'softmaxCrossEntropy 3 targets for 4 rows',
      );
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 12), shape: [4, 3] },
              { data: randn(2, 4), shape: [4] },
            ],
            (rec, x, t) => softmaxCrossEntropy(rec, x, t).then((r) => [r.loss, r.dlogits]),
          ),
        'tensor/dtype',
        ['softmaxCrossEntropy', 'targets must be i32', 'got f32'],
        'softmaxCrossEntropy f32 targets',
      );
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 12), shape: [12] },
              { data: randInts(2, 1, 3), shape: [1] },
            ],
            (rec, x, t) => softmaxCrossEntropy(rec, x, t).then((r) => [r.loss, r.dlogits]),
          ),
        'tensor/shape',
        ['logits must be [rows, V]', 'got [12]'],
        'softmaxCrossEntropy 1-D logits',
      );
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 12), shape: [4, 3] },
              { data: randInts(2, 4, 3), shape: [4] },
            ],
            (rec, x, t) =>
              softmaxCrossEntropy(rec, x, t, { ignoreIndex: 0.5 }).then((r) => [r.loss, r.dlogits]),
          ),
        'input/invalid',
        ['ignoreIndex must be a 32-bit integer', '0.5'],
        'softmaxCrossEntropy ignoreIndex 0.5',
      );
    },
  },
  {
    name: 'softmaxCrossEntropy f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      const [rows, V] = [37, 75];
      const X = toF16Array(randn(60, rows * V, -6, 6));
      const targets = randInts(61, rows, V);
      const { outputs } = await runKernel(
        ctx,
        [
          { data: X, shape: [rows, V] },
          { data: targets, shape: [rows] },
        ],
        (rec, x, t) => softmaxCrossEntropy(rec, x, t).then((r) => [r.loss, r.dlogits]),
      );
      const want = crossEntropyRef(fromF16Array(X), targets, rows, V);
      assertClose(fromF16Array(outputs[0] as Uint16Array), want.loss, CE_LOSS_F16, 'f16 loss');
      assertClose(fromF16Array(outputs[1] as Uint16Array), want.dlogits, CE_GRAD_F16(rows), 'f16 dlogits');
    },
  },
];
