import layernormGradWgsl from '../../shaders/layernorm-grad.wgsl?raw';
import { shapeToString } from '../core/tensor.ts';
import { grid1d, type Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import {
  expectDType,
  expectShape,
  floatDType,
  kernelPipeline,
  leading,
  sameShape,
  shapeError,
  uniforms,
} from './common.ts';
import { sumRows } from './matmul-grad.ts';
import { ROW_WG, rowLanes } from './softmax.ts';

/** Rows per partial sum of dgamma/dbeta; more rows take a second, equally fixed-order pass. */
const CHUNK = 256;

export interface LayernormGradients {
  /** Shaped like x. */
  readonly dx: GpuTensor;
  /** [D]: Σ over rows of dy·(x − mean)·rstd. */
  readonly dgamma: GpuTensor;
  /** [D]: Σ over rows of dy. */
  readonly dbeta: GpuTensor;
}

/**
 * Backward of layer normalisation over the last dimension, y = (x − mean)·rstd·gamma + beta,
 * from the forward's per-row statistics `mean` and `rstd` (f32, one per row: shaped like x
 * without its last dimension, or [rows]). x, gamma and dy are f32 (or all f16). Every sum runs
 * in a fixed order (no atomics), so the outputs are the same bits on every run.
 *
 * @example
 * const { y, mean, rstd } = await layernormWithStats(rec, x, gamma, beta);
 * const { dx, dgamma, dbeta } = await layernormBackward(rec, x, gamma, dy, mean, rstd);
 */
export async function layernormBackward(
  rec: Recorder,
  x: GpuTensor,
  gamma: GpuTensor,
  dy: GpuTensor,
  mean: GpuTensor,
  rstd: GpuTensor,
): Promise<LayernormGradients> {
  const K = 'layernormBackward';
  const ctx = rec.ctx;
  const dtype = floatDType(K, x, gamma, dy);
  expectDType(K, mean, ['f32'], 'mean');
  expectDType(K, rstd, ['f32'], 'rstd');
  const D = x.shape[x.shape.length - 1];
  if (D === undefined) throw shapeError(K, 'x must have at least one dimension.', { x: x.shape });
  const rows = leading(x.shape, 1);
  expectShape(K, gamma, [D], 'gamma');
  expectShape(K, dy, x.shape, 'dy');
  for (const [name, t] of [
    ['mean', mean],
    ['rstd', rstd],
  ] as const) {
    if (!sameShape(t.shape, x.shape.slice(0, -1)) && !sameShape(t.shape, [rows])) {
      throw shapeError(
        K,
        `${name} must have one value per row of x: shape ${shapeToString(x.shape.slice(0, -1))} or [${rows}], got ${shapeToString(t.shape)}.`,
        { name, x: x.shape, got: t.shape },
      );
    }
  }

  const dx = emptyTensor(ctx, x.shape, dtype, 'layernormBackward.dx');
  // f16 partials would round every chunk's sum to f16: one chunk of all rows instead.
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  const chunk = dtype === 'f16' ? Math.max(rows, 1) : Math.max(CHUNK, Math.ceil(rows / maxDim));
  const chunks = Math.max(1, Math.ceil(rows / chunk));
  const colBlocks = Math.ceil(D / 16);
  const partShape = chunks === 1 ? [D] : [chunks, D];
  const gpart = emptyTensor(
    ctx,
    partShape,
    dtype,
    chunks === 1 ? 'layernormBackward.dgamma' : 'dgamma:partial',
  );
  const bpart = emptyTensor(
    ctx,
    partShape,
    dtype,
    chunks === 1 ? 'layernormBackward.dbeta' : 'dbeta:partial',
  );
  const lanes = rowLanes(D);
  const rowGroups = Math.ceil(rows / (ROW_WG / lanes));
  const pipeline = await kernelPipeline(ctx, 'layernorm-grad', layernormGradWgsl, dtype, { LANES: lanes });
  rec.dispatch({
    pipeline,
    uniforms: uniforms([rows, D, chunk, colBlocks, chunks]),
    buffers: [
      x.buffer,
      gamma.buffer,
      dy.buffer,
      mean.buffer,
      rstd.buffer,
      dx.buffer,
      gpart.buffer,
      bpart.buffer,
    ],
    workgroups: grid1d(ctx, rowGroups + colBlocks * chunks),
  });
  if (chunks === 1) return { dx, dgamma: gpart, dbeta: bpart };
  rec.releaseAfterSubmit(gpart.buffer);
  rec.releaseAfterSubmit(bpart.buffer);
  const dgamma = await sumRows(rec, gpart, chunks, D, [D], 'layernormBackward.dgamma');
  const dbeta = await sumRows(rec, bpart, chunks, D, [D], 'layernormBackward.dbeta');
  return { dx, dgamma, dbeta };
}
