import activationGradWgsl from '../../shaders/activation-grad.wgsl?raw';
import { HearthError } from '../core/errors.ts';
import { grid1d, type Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import { expectShape, floatDType, kernelPipeline, uniforms } from './common.ts';

/** The activations with a gradient: matmul's fused ones, less the identity. */
export type DifferentiableActivation = 'relu' | 'gelu' | 'silu';
const ACT_CODE: Record<DifferentiableActivation, number> = { relu: 1, gelu: 2, silu: 3 };

/**
 * dx = dy ⊙ act′(x), where x is the activation's input (the pre-activation) and dy = ∂L/∂act(x).
 * gelu is the tanh form of `matmul` (its argument clamped to ±15, where the gradient is then 0);
 * relu′(0) = 0. f32 or f16 (x and dy alike); returns a new tensor shaped like x.
 *
 * @example
 * const dPre = await activationBackward(rec, preActivation, dOut, 'gelu');
 */
export async function activationBackward(
  rec: Recorder,
  x: GpuTensor,
  dy: GpuTensor,
  act: DifferentiableActivation,
  opts: { readonly label?: string } = {},
): Promise<GpuTensor> {
  const K = 'activationBackward';
  const ctx = rec.ctx;
  const dtype = floatDType(K, x, dy);
  if (!Object.hasOwn(ACT_CODE, act)) {
    throw new HearthError(
      'input/invalid',
      `${K}: activation must be one of ${Object.keys(ACT_CODE).join(', ')}; got ${JSON.stringify(act)}.`,
      { details: { kernel: K, act } },
    );
  }
  expectShape(K, dy, x.shape, 'dy');
  const out = emptyTensor(ctx, x.shape, dtype, opts.label ?? 'activationBackward.dx');
  const pipeline = await kernelPipeline(ctx, 'activation-grad', activationGradWgsl, dtype, {
    ACT: ACT_CODE[act],
  });
  rec.dispatch({
    pipeline,
    uniforms: uniforms([x.numel]),
    buffers: [x.buffer, dy.buffer, out.buffer],
    workgroups: grid1d(ctx, Math.ceil(x.numel / 256)),
  });
  return out;
}
