import adamwWgsl from '../../shaders/adamw.wgsl?raw';
import { HearthError } from '../core/errors.ts';
import { grid1d, type Recorder } from '../gpu/recorder.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { expectDType, expectShape, kernelPipeline, uniforms } from './common.ts';

export interface AdamWOptions {
  /** Learning rate, ≥ 0. */
  readonly lr: number;
  /** Decay of the first moment, in [0, 1). */
  readonly beta1: number;
  /** Decay of the second moment, in [0, 1). */
  readonly beta2: number;
  /** Added to √v̂, > 0. */
  readonly eps: number;
  /** Decoupled weight decay λ (θ shrinks by lr·λ·θ each step), ≥ 0. */
  readonly weightDecay: number;
  /** 1 for the first step: the bias corrections use it. */
  readonly step: number;
}

/**
 * One AdamW step (Loshchilov & Hutter: weight decay decoupled from the gradient), updating
 * `params` and the moments `m` and `v` in place; all four f32 tensors of one shape, `grads`
 * read only. Matches PyTorch's `torch.optim.AdamW` with `amsgrad: false`.
 *
 * @example
 * await adamw(rec, w, dw, mW, vW, { lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step });
 */
export async function adamw(
  rec: Recorder,
  params: GpuTensor,
  grads: GpuTensor,
  m: GpuTensor,
  v: GpuTensor,
  opts: AdamWOptions,
): Promise<void> {
  const K = 'adamw';
  const ctx = rec.ctx;
  const named = [
    ['params', params],
    ['grads', grads],
    ['m', m],
    ['v', v],
  ] as const;
  for (const [name, t] of named) {
    if (t.isReleased) {
      throw new HearthError('input/invalid', `${K}: ${name} ${t} was already released.`, {
        details: { kernel: K, name },
      });
    }
    expectDType(K, t, ['f32'], name);
    expectShape(K, t, params.shape, name);
  }
  const buffers = new Set(named.map(([, t]) => t.buffer));
  if (buffers.size !== named.length) {
    throw new HearthError(
      'input/invalid',
      `${K}: params, grads, m and v must be four different buffers (the step writes params, m and v in place).`,
      { details: { kernel: K } },
    );
  }
  const { lr, beta1, beta2, eps, weightDecay, step } = opts;
  const bad = (what: string, value: number) =>
    new HearthError('input/invalid', `${K}: ${what}, got ${value}.`, { details: { kernel: K, value } });
  if (!(Number.isFinite(lr) && lr >= 0)) throw bad('lr must be a finite number ≥ 0', lr);
  if (!(beta1 >= 0 && beta1 < 1)) throw bad('beta1 must be in [0, 1)', beta1);
  if (!(beta2 >= 0 && beta2 < 1)) throw bad('beta2 must be in [0, 1)', beta2);
  if (!(Number.isFinite(eps) && eps > 0)) throw bad('eps must be a finite number > 0', eps);
  if (!(Number.isFinite(weightDecay) && weightDecay >= 0))
    throw bad('weightDecay must be a finite number ≥ 0', weightDecay);
  if (!(Number.isInteger(step) && step >= 1))
    throw bad('step must be an integer ≥ 1 (the first step is 1)', step);

  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  const pipeline = await kernelPipeline(ctx, 'adamw', adamwWgsl, 'f32');
  rec.dispatch({
    pipeline,
    uniforms: uniforms([
      params.numel,
      { f: beta1 },
      { f: 1 - beta1 },
      { f: beta2 },
      { f: 1 - beta2 },
      { f: eps },
      { f: 1 - lr * weightDecay },
      { f: lr / bc1 },
      { f: 1 / Math.sqrt(bc2) },
    ]),
    buffers: [params.buffer, grads.buffer, m.buffer, v.buffer],
    workgroups: grid1d(ctx, Math.ceil(params.numel / 256)),
  });
}
