import layernormWgsl from '../../shaders/layernorm.wgsl?raw';
import { HearthError } from '../core/errors.ts';
import { shapeToString } from '../core/tensor.ts';
import { grid1d, type Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import { expectShape, floatDType, kernelPipeline, leading, shapeError, uniforms } from './common.ts';
import { ROW_WG, rowEntry, rowLanes } from './softmax.ts';

export interface LayernormOptions {
  /** Added to the variance before the square root. Default 1e-5. */
  readonly eps?: number;
  /** Label of the output buffer. */
  readonly label?: string;
}

export interface LayernormResult {
  /** The normalised output, x's shape and dtype. */
  readonly y: GpuTensor;
  /** Each row's mean, shape [rows] (rows = product of x's leading dims), always f32. */
  readonly mean: GpuTensor;
  /** Each row's 1/√(var + eps), shape [rows], always f32. */
  readonly rstd: GpuTensor;
}

/**
 * Layer normalisation over the last axis, returning the per-row statistics the backward pass
 * needs: y = (x − mean)·rstd·gamma + beta with rstd = 1/√(var + eps) (biased variance). gamma
 * and beta have shape [C]. Deterministic: fixed-order reductions, no atomics.
 *
 * @example
 * const { y, mean, rstd } = await layernormWithStats(rec, x, gamma, beta, { eps: 1e-5 });
 */
export async function layernormWithStats(
  rec: Recorder,
  x: GpuTensor,
  gamma: GpuTensor,
  beta: GpuTensor,
  opts: LayernormOptions = {},
): Promise<LayernormResult> {
  const ctx = rec.ctx;
  const dtype = floatDType('layernorm', x, gamma, beta);
  const eps = opts.eps ?? 1e-5;
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0) {
    throw new HearthError('input/invalid', `layernorm: eps must be a finite number ≥ 0, got ${eps}.`, {
      details: { kernel: 'layernorm', eps },
    });
  }
  const C = x.shape[x.shape.length - 1];
  if (C === undefined || C === 0) {
    throw shapeError(
      'layernorm',
      `x ${shapeToString(x.shape)} needs a non-empty last axis to normalise over.`,
      { shape: x.shape },
    );
  }
  expectShape('layernorm', gamma, [C], 'gamma');
  expectShape('layernorm', beta, [C], 'beta');
  const rows = leading(x.shape, 1);
  const label = opts.label ?? 'layernorm.out';
  const y = emptyTensor(ctx, x.shape, dtype, label);
  const mean = emptyTensor(ctx, [rows], 'f32', `${label}:mean`);
  const rstd = emptyTensor(ctx, [rows], 'f32', `${label}:rstd`);
  if (rows > 0) {
    const lanes = rowLanes(C);
    const pipeline = await kernelPipeline(
      ctx,
      'layernorm',
      layernormWgsl,
      dtype,
      { LANES: lanes },
      rowEntry(C),
    );
    rec.dispatch({
      pipeline,
      uniforms: uniforms([rows, C, { f: eps }, 0]),
      buffers: [x.buffer, gamma.buffer, beta.buffer, y.buffer, mean.buffer, rstd.buffer],
      workgroups: grid1d(ctx, Math.ceil(rows / (ROW_WG / lanes))),
    });
  }
  return { y, mean, rstd };
}

/**
 * Layer normalisation over the last axis: y = (x − mean)/√(var + eps)·gamma + beta, gamma and
 * beta of shape [C]. Returns a new tensor of x's shape; see {@link layernormWithStats} for the
 * statistics.
 *
 * @example
 * const h = await layernorm(rec, x, gamma, beta); // x [B, T, C]
 */
export async function layernorm(
  rec: Recorder,
  x: GpuTensor,
  gamma: GpuTensor,
  beta: GpuTensor,
  opts: LayernormOptions = {},
): Promise<GpuTensor> {
  const { y, mean, rstd } = await layernormWithStats(rec, x, gamma, beta, opts);
  // The same pipeline writes the statistics either way; their buffers go back once the GPU is done.
  rec.releaseAfterSubmit(mean.buffer);
  rec.releaseAfterSubmit(rstd.buffer);
  return y;
}
