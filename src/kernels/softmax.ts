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
 * Returns a new tensor of x's shape. Deterministic: fixed-order reductions, no atomics.
 *
 * @example
 * const probs = await softmax(rec, scores); // [B, H, T, T], over the last T
 */
export async function softmax(rec: Recorder, x: GpuTensor, opts: SoftmaxOptions = {}): Promise<GpuTensor> {
  const ctx = rec.ctx;
  const dtype = floatDType('softmax', x);
  const C = x.shape[x.shape.length - 1];
  if (C === undefined) {
    throw shapeError('softmax', `x needs at least 1 dimension, got ${shapeToString(x.shape)}.`, {
      shape: x.shape,
    });
  }
  const rows = leading(x.shape, 1);
  const out = emptyTensor(ctx, x.shape, dtype, opts.label ?? 'softmax.out');
  if (rows * C === 0) return out;
  const lanes = rowLanes(C);
  const pipeline = await kernelPipeline(ctx, 'softmax', softmaxWgsl, dtype, { LANES: lanes }, rowEntry(C));
  rec.dispatch({
    pipeline,
    uniforms: uniforms([rows, C, 0, 0]),
    buffers: [x.buffer, out.buffer],
    workgroups: grid1d(ctx, Math.ceil(rows / (ROW_WG / lanes))),
  });
  return out;
}

/** Workgroup size of the row kernels (softmax, layernorm): WG in their shaders. */
export const ROW_WG = 64;

/**
 * Invocations per row for the row kernels: a power of two from 1 to ROW_WG that gives each
 * about 64 elements (16 at C = 1024), so workgroups hold ROW_WG / lanes rows. See the trade-off
 * note in shaders/softmax.wgsl.
 */
export function rowLanes(C: number): number {
  let lanes = 1;
  while (lanes < ROW_WG && lanes * 2 * 64 <= C) lanes *= 2;
  return lanes;
}

/** The vec4 entry point where every row starts 16-byte aligned (C % 4 == 0), else scalar. */
export function rowEntry(C: number): 'main' | 'main4' {
  return C % 4 === 0 ? 'main4' : 'main';
}
