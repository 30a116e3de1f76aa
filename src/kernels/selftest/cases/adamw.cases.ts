import type { GpuTensor } from '../../../gpu/tensor.ts';
import { adamw } from '../../../kernels/adamw.ts';
import { assertClose, assertRejects, type KernelCase, randn, runKernel, type Tolerance } from '../harness.ts';
import { type AdamWRefOptions, adamwRef } from '../reference-backward.ts';

/**
 * f32 state against a float64 run of the same steps: each step moves θ by at most ~lr, with
 * relative f32 error in m, √v and the division; v is relative-exact to a few ulp.
 */
const ADAMW_PARAMS_F32 = (lr: number): Tolerance => ({ rtol: 1e-6, atol: 1e-6 + 4e-6 * lr });
/** m = β1·m + (1 − β1)·g can cancel: f32 error is relative to its terms (≤ ~0.2), not to m. */
const ADAMW_M_F32: Tolerance = { rtol: 2e-6, atol: 3e-8 };
/** v adds non-negative terms: relative error only. */
const ADAMW_V_F32: Tolerance = { rtol: 2e-6, atol: 1e-12 };

type Hyper = Omit<AdamWRefOptions, 'step'>;
const DEFAULTS: Hyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

function adamwCase(
  name: string,
  shape: number[],
  hyper: Partial<Hyper>,
  firstStep: number,
  seed: number,
): KernelCase {
  return {
    name: `adamw ${name} ${shape.join('×')}`,
    async run(ctx) {
      const h = { ...DEFAULTS, ...hyper };
      const n = shape.reduce((a, b) => a * b, 1);
      const P = randn(seed, n, -2, 2);
      // Moments as a run already under way would have them (v ≥ 0), zero for a first step.
      const M = firstStep === 1 ? new Float32Array(n) : randn(seed + 1, n, -0.1, 0.1);
      const V = firstStep === 1 ? new Float32Array(n) : randn(seed + 2, n, 0, 0.01);
      // Three steps, each with its own gradient; some gradients tiny, some large.
      const grads = [0, 1, 2].map((s) =>
        randn(seed + 3 + s, n, -1, 1).map((g, i) => (i % 7 === 3 ? g * 1e-6 : g)),
      );
      const { outputs } = await runKernel(
        ctx,
        [
          { data: P, shape },
          { data: M, shape },
          { data: V, shape },
          ...grads.map((g) => ({ data: g, shape })),
        ],
        async (rec, p, m, v, ...gs) => {
          for (const [s, g] of gs.entries()) await adamw(rec, p, g, m, v, { ...h, step: firstStep + s });
          return [p, m, v] as GpuTensor[];
        },
      );
      const p64 = Float64Array.from(P);
      const m64 = Float64Array.from(M);
      const v64 = Float64Array.from(V);
      for (const [s, g] of grads.entries()) adamwRef(p64, g, m64, v64, { ...h, step: firstStep + s });
      assertClose(outputs[0] as Float32Array, p64, ADAMW_PARAMS_F32(h.lr), `${name} params after 3 steps`);
      assertClose(outputs[1] as Float32Array, m64, ADAMW_M_F32, `${name} m after 3 steps`);
      assertClose(outputs[2] as Float32Array, v64, ADAMW_V_F32, `${name} v after 3 steps`);
    },
  };
}

function inputs(shapes: number[][]) {
  return shapes.map((shape, i) => ({
    data: randn(
      i + 1,
      shape.reduce((a, b) => a * b, 1),
    ),
    shape,
  }));
}

export const cases: KernelCase[] = [
  adamwCase('single parameter', [1], {}, 1, 1),
  adamwCase('odd size', [1031], {}, 1, 2),
  adamwCase('matrix, weight decay 0.1, lr 3e-2', [37, 29], { weightDecay: 0.1, lr: 3e-2, beta2: 0.95 }, 1, 3),
  adamwCase('no weight decay', [5, 7, 3], { weightDecay: 0 }, 1, 4),
  // Late in training the bias corrections are ~1 and the moments carry over.
  adamwCase('steps 1000–1002', [513], { lr: 1e-2, weightDecay: 0.05 }, 1000, 5),
  {
    name: 'adamw: a zero gradient with zero moments only decays the parameters',
    async run(ctx) {
      const n = 9;
      const P = randn(1, n);
      const { outputs } = await runKernel(
        ctx,
        [
          { data: P, shape: [n] },
          { data: new Float32Array(n), shape: [n] },
          { data: new Float32Array(n), shape: [n] },
          { data: new Float32Array(n), shape: [n] },
        ],
        async (rec, p, g, m, v) => {
          await adamw(rec, p, g, m, v, { ...DEFAULTS, lr: 0.1, weightDecay: 0.5, step: 1 });
          return [p, m, v];
        },
      );
      assertClose(
        outputs[0] as Float32Array,
        Float64Array.from(P, (x) => x * 0.95),
        { rtol: 1e-7, atol: 0 },
        'θ·(1 − lr·λ)',
      );
      assertClose(outputs[1] as Float32Array, new Float64Array(n), { rtol: 0, atol: 0 }, 'm');
      assertClose(outputs[2] as Float32Array, new Float64Array(n), { rtol: 0, atol: 0 }, 'v');
    },
  },
  {
    name: 'adamw rejects mismatched shapes, f16 state, shared buffers and bad hyperparameters',
    async run(ctx) {
      const step = (edit: Partial<AdamWRefOptions> = {}) => ({ ...DEFAULTS, step: 1, ...edit });
      await assertRejects(
        () =>
          runKernel(
            ctx,
            inputs([
              [4, 3],
              [4, 3],
              [3, 4],
              [4, 3],
            ]),
            async (rec, p, g, m, v) => {
              await adamw(rec, p, g, m, v, step());
              return p;
            },
          ),
        'tensor/shape',
        ['adamw', 'm must have shape [4, 3]', 'got [3, 4]'],
        'adamw m [3, 4] for params [4, 3]',
      );
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: new Uint16Array(4), shape: [4] },
              { data: new Uint16Array(4), shape: [4] },
              { data: new Uint16Array(4), shape: [4] },
              { data: new Uint16Array(4), shape: [4] },
            ],
            async (rec, p, g, m, v) => {
              await adamw(rec, p, g, m, v, step());
              return p;
            },
          ),
        'tensor/dtype',
        ['adamw', 'params must be f32', 'got f16'],
        'adamw f16',
      );
      await assertRejects(
        () =>
          runKernel(ctx, inputs([[5], [5], [5]]), async (rec, p, g, m) => {
            await adamw(rec, p, g, m, m, step());
            return p;
          }),
        'input/invalid',
        ['adamw', 'four different buffers'],
        'adamw with m and v the same tensor',
      );
      for (const [edit, message] of [
        [{ step: 0 }, 'step must be an integer ≥ 1'],
        [{ step: 1.5 }, 'step must be an integer ≥ 1'],
        [{ beta1: 1 }, 'beta1 must be in [0, 1)'],
        [{ beta2: Number.NaN }, 'beta2 must be in [0, 1)'],
        [{ eps: 0 }, 'eps must be a finite number > 0'],
        [{ lr: -1 }, 'lr must be a finite number ≥ 0'],
        [{ weightDecay: Number.POSITIVE_INFINITY }, 'weightDecay must be a finite number ≥ 0'],
      ] as const) {
        await assertRejects(
          () =>
            runKernel(ctx, inputs([[5], [5], [5], [5]]), async (rec, p, g, m, v) => {
              await adamw(rec, p, g, m, v, step(edit));
              return p;
            }),
          'input/invalid',
          ['adamw', message],
          `adamw ${JSON.stringify(edit)}`,
        );
      }
    },
  },
];
