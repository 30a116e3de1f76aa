import softmaxWgsl from '../../shaders/softmax.wgsl?raw';
import { shapeToString } from '../core/tensor.ts';
import { grid1d, type Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import { floatDType, kernelPipeline, leading, shapeError, uniforms } from './common.ts';

export interface SoftmaxOptions {
  /** Label of the output buffer. */
  readonly label?: string;
}

/**
 * Softmax over the last axis, numerically stable (each row's max is subtracted before exp).
 * Returns a new tensor of x's shape. Deterministic: fixed-order tree reductions.
 *
 * @example
 * const probs = await softmax(rec, scores); // [B, H, T, T], over the last T
 */
export async function softmax(rec: Recorder, x: GpuTensor, opts: SoftmaxOptions = {}): Promise<GpuTensor> {
  const ctx = rec.ctx;
  const dtype = floatDType('softmax', x);
  if (x.shape.length < 1) {
    throw shapeError('softmax', `x needs at least 1 dimension, got ${shapeToString(x.shape)}.`, {
      shape: x.shape,
    });
  }
  const C = x.shape[x.shape.length - 1]!;
  const rows = leading(x.shape, 1);
  const out = emptyTensor(ctx, x.shape, dtype, opts.label ?? 'softmax.out');
  if (rows * C === 0) return out;
  const pipeline = await kernelPipeline(ctx, 'softmax', softmaxWgsl, dtype);
  rec.dispatch({
    pipeline,
    uniforms: uniforms([rows, C, 0, 0]),
    buffers: [x.buffer, out.buffer],
    workgroups: grid1d(ctx, rows),
  });
  return out;
}
