import crossEntropyWgsl from '../../shaders/cross-entropy.wgsl?raw';
import { HearthError } from '../core/errors.ts';
import { shapeToString } from '../core/tensor.ts';
import { grid1d, type Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import {
  expectDType,
  expectShape,
  floatDType,
  kernelPipeline,
  leading,
  shapeError,
  uniforms,
} from './common.ts';
import { ROW_WG, rowLanes } from './softmax.ts';

export interface CrossEntropyOptions {
  /** Rows whose target is this value add no loss and no gradient, and are not counted in the mean. Default −1. */
  readonly ignoreIndex?: number;
  readonly label?: string;
}

export interface CrossEntropyResult {
  /** Per-row loss, shaped like `targets`: 0 for ignored rows, NaN for a target outside [0, V). */
  readonly loss: GpuTensor;
  /** ∂(mean loss)/∂logits, shaped like `logits`: (softmax − onehot) / (rows not ignored). */
  readonly dlogits: GpuTensor;
}

const QUIET_NAN_BITS = 0x7fc00000;

/**
 * Softmax cross-entropy of `logits` [..., V] against class indices `targets` (i32, [...]),
 * with the gradient of the mean loss over the rows that are not ignored. Numerically stable
 * (max-subtracted log-sum-exp); every sum runs in a fixed order, so the outputs are the same
 * bits on every run.
 *
 * Targets live on the GPU, so their values are checked there: a target outside [0, V) that is
 * not `ignoreIndex` is never used as an index; its row's loss is NaN (so the mistake shows in
 * the loss) and its gradient is 0. It still counts in the mean's denominator.
 *
 * @example
 * const { loss, dlogits } = await softmaxCrossEntropy(rec, logits, targets, { ignoreIndex: -100 });
 */
export async function softmaxCrossEntropy(
  rec: Recorder,
  logits: GpuTensor,
  targets: GpuTensor,
  opts: CrossEntropyOptions = {},
): Promise<CrossEntropyResult> {
  const K = 'softmaxCrossEntropy';
  const ctx = rec.ctx;
  const dtype = floatDType(K, logits);
  expectDType(K, targets, ['i32'], 'targets');
  const V = logits.shape.length < 2 ? undefined : logits.shape[logits.shape.length - 1];
  if (V === undefined || V < 1) {
    throw shapeError(
      K,
      `logits must be [rows, V] (or [..., V]) with V ≥ 1, got ${shapeToString(logits.shape)}.`,
      { logits: logits.shape },
    );
  }
  expectShape(K, targets, logits.shape.slice(0, -1), 'targets (one class index per row of logits)');
  const ignoreIndex = opts.ignoreIndex ?? -1;
  if (!Number.isInteger(ignoreIndex) || ignoreIndex < -(2 ** 31) || ignoreIndex >= 2 ** 31) {
    throw new HearthError(
      'input/invalid',
      `${K}: ignoreIndex must be a 32-bit integer, got ${ignoreIndex}.`,
      {
        details: { kernel: K, ignoreIndex },
      },
    );
  }
  const rows = leading(logits.shape, 1);
  const label = opts.label ?? 'softmaxCrossEntropy';
  const loss = emptyTensor(ctx, targets.shape, dtype, `${label}.loss`);
  const dlogits = emptyTensor(ctx, logits.shape, dtype, `${label}.dlogits`);
  const count = emptyTensor(ctx, [1], 'u32', `${label}.count`);
  rec.releaseAfterSubmit(count.buffer);
  const lanes = rowLanes(V);
  const [countPipeline, mainPipeline] = await Promise.all([
    kernelPipeline(ctx, 'cross-entropy', crossEntropyWgsl, dtype, undefined, 'count'),
    kernelPipeline(ctx, 'cross-entropy', crossEntropyWgsl, dtype, { LANES: lanes }, 'main'),
  ]);
  const params = uniforms([rows, V, ignoreIndex, QUIET_NAN_BITS]);
  rec.dispatch({
    pipeline: countPipeline,
    uniforms: params,
    buffers: [targets.buffer, count.buffer],
    workgroups: [1],
  });
  rec.dispatch({
    pipeline: mainPipeline,
    uniforms: params,
    buffers: [logits.buffer, targets.buffer, count.buffer, loss.buffer, dlogits.buffer],
    workgroups: grid1d(ctx, Math.ceil(rows / (ROW_WG / lanes))),
  });
  return { loss, dlogits };
}
