import colsumWgsl from '../../shaders/colsum.wgsl?raw';
import type { Shape } from '../core/tensor.ts';
import { shapeToString } from '../core/tensor.ts';
import { grid1d, type Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import { expectShape, floatDType, kernelPipeline, matrixDims, shapeError, uniforms } from './common.ts';
import { matmul } from './matmul.ts';

/** Rows one workgroup of the column-sum kernel adds before the partial sums meet again. */
const CHUNK = 256;

/**
 * Column sums of `x` read as a row-major [rows, cols] matrix, into a new tensor of `shape`
 * (rows·cols must not exceed x's size). Sums run in a fixed order — 16 lanes per column over
 * chunks of 256 rows, a fixed tree, then the chunks' partials the same way — so the result is
 * the same bits on every run. f16 inputs take one pass over all rows so that no partial sum is
 * rounded to f16. Used for bias gradients and by other backward kernels.
 *
 * @example
 * const dBias = await sumRows(rec, dC, M, N, [N], 'dBias'); // dC [M, N] → [N]
 */
export async function sumRows(
  rec: Recorder,
  x: GpuTensor,
  rows: number,
  cols: number,
  shape: Shape,
  label: string,
): Promise<GpuTensor> {
  const ctx = rec.ctx;
  const dtype = floatDType('sumRows', x);
  if (rows * cols > x.numel || shape.reduce((a, b) => a * b, 1) !== cols) {
    throw shapeError(
      'sumRows',
      `cannot sum ${rows} rows of ${cols} from ${x} into ${shapeToString(shape)}.`,
      {
        rows,
        cols,
        shape,
      },
    );
  }
  const out = emptyTensor(ctx, shape, dtype, label);
  if (cols === 0) return out;
  const pipeline = await kernelPipeline(ctx, 'colsum', colsumWgsl, dtype);
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  const colBlocks = Math.ceil(cols / 16);
  const [gx, gy] = grid1d(ctx, colBlocks);
  let src = x.buffer;
  let r = rows;
  for (;;) {
    const chunk = dtype === 'f16' ? Math.max(r, 1) : Math.max(CHUNK, Math.ceil(r / maxDim));
    const chunks = Math.max(1, Math.ceil(r / chunk));
    const dst = chunks === 1 ? out : emptyTensor(ctx, [chunks, cols], dtype, `${label}:partial`);
    rec.dispatch({
      pipeline,
      uniforms: uniforms([r, cols, chunk, colBlocks]),
      buffers: [src, dst.buffer],
      workgroups: [gx, gy, chunks],
    });
    if (chunks === 1) return out;
    // Read by the next dispatch of this recording: back to the pool once the GPU is done.
    rec.releaseAfterSubmit(dst.buffer);
    src = dst.buffer;
    r = chunks;
  }
}

export interface MatmulBackwardOptions {
  /** A was used transposed: it is stored [.., K, M]. */
  readonly transA?: boolean;
  /** B was used transposed: it is stored [.., N, K]. */
  readonly transB?: boolean;
  /** The forward added a bias [N]: also return its gradient. */
  readonly withBias?: boolean;
}

export interface MatmulGradients {
  /** Same shape as A. Summed over the batch where A was broadcast (2-D A, batched B). */
  readonly dA: GpuTensor;
  /** Same shape as B. Summed over the batch where B was broadcast (batched A, 2-D B). */
  readonly dB: GpuTensor;
  /** [N], the column sums of dC over every row of every batch; only with `withBias`. */
  readonly dBias?: GpuTensor;
}

/**
 * Gradients of C = op(A)·op(B) (+ bias) with respect to A, B (and the bias), given dC = ∂L/∂C,
 * for the shapes `matmul` accepts (2-D, or batched with a 2-D operand broadcast). Built on
 * `matmul` (d op(A) = dC·op(B)ᵀ, d op(B) = op(A)ᵀ·dC) and a fixed-order column sum, so every
 * output is the same bits on every run. Activations are not included: apply
 * `activationBackward` to dC first.
 *
 * @example
 * const { dA, dB, dBias } = await matmulBackward(rec, x, w, dy, { withBias: true });
 */
export async function matmulBackward(
  rec: Recorder,
  a: GpuTensor,
  b: GpuTensor,
  dC: GpuTensor,
  opts: MatmulBackwardOptions = {},
): Promise<MatmulGradients> {
  const K = 'matmulBackward';
  floatDType(K, a, b, dC);
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw shapeError(
      K,
      `operands need at least 2 dimensions, got ${shapeToString(a.shape)} and ${shapeToString(b.shape)}.`,
      { a: a.shape, b: b.shape },
    );
  }
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const [M, Ka] = matrixDims(K, a.shape, transA, 'a');
  const [Kb, N] = matrixDims(K, b.shape, transB, 'b');
  if (Ka !== Kb) {
    throw shapeError(
      K,
      `inner dimensions differ: A ${shapeToString(a.shape)}${transA ? 'ᵀ' : ''} has K=${Ka}, B ${shapeToString(b.shape)}${transB ? 'ᵀ' : ''} has K=${Kb}.`,
      { a: a.shape, b: b.shape },
    );
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  if (batchA.length > 0 && batchB.length > 0 && batchA.join() !== batchB.join()) {
    throw shapeError(
      K,
      `batch dimensions do not match: ${shapeToString(batchA)} vs ${shapeToString(batchB)}.`,
      {
        a: a.shape,
        b: b.shape,
      },
    );
  }
  const batchDims = batchA.length > 0 ? batchA : batchB;
  const batch = batchDims.reduce((x, y) => x * y, 1);
  expectShape(K, dC, [...batchDims, M, N], 'dC');

  // A broadcast operand's gradient is the sum of its per-batch gradients.
  const reduceBatch = async (perBatch: GpuTensor, like: GpuTensor, label: string) => {
    rec.releaseAfterSubmit(perBatch.buffer);
    return sumRows(rec, perBatch, batch, like.numel, like.shape, label);
  };

  let dA: GpuTensor;
  const dAof = () =>
    transA
      ? matmul(rec, b, dC, { transA: transB, transB: true, label: 'matmulBackward.dA' })
      : matmul(rec, dC, b, { transB: !transB, label: 'matmulBackward.dA' });
  if (batchA.length === 0 && batchB.length > 0) dA = await reduceBatch(await dAof(), a, 'matmulBackward.dA');
  else dA = await dAof();

  let dB: GpuTensor;
  if (batchB.length === 0 && batchA.length > 0 && !transA) {
    // Rows of A and dC line up across the batch: fold it into M, and the matmul sums over it.
    const a2 = a.reshape([batch * M, Ka]);
    const dC2 = dC.reshape([batch * M, N]);
    dB = transB
      ? await matmul(rec, dC2, a2, { transA: true, label: 'matmulBackward.dB' })
      : await matmul(rec, a2, dC2, { transA: true, label: 'matmulBackward.dB' });
  } else {
    const dBof = () =>
      transB
        ? matmul(rec, dC, a, { transA: true, transB: transA, label: 'matmulBackward.dB' })
        : matmul(rec, a, dC, { transA: !transA, label: 'matmulBackward.dB' });
    if (batchB.length === 0 && batchA.length > 0)
      dB = await reduceBatch(await dBof(), b, 'matmulBackward.dB');
    else dB = await dBof();
  }

  if (!opts.withBias) return { dA, dB };
  const rows = dC.numel / Math.max(N, 1);
  const dBias = await sumRows(rec, dC, N === 0 ? 0 : rows, N, [N], 'matmulBackward.dBias');
  return { dA, dB, dBias };
}
