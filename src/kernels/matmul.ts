import matmulWgsl from '../../shaders/matmul.wgsl?raw';
import { shapeToString } from '../core/tensor.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import { floatDType, kernelPipeline, matrixDims, shapeError, uniforms } from './common.ts';

export type Activation = 'none' | 'relu' | 'gelu' | 'silu';
const ACT_CODE: Record<Activation, number> = { none: 0, relu: 1, gelu: 2, silu: 3 };

export interface MatmulOptions {
  /** Use Aᵀ: A is stored [.., K, M]. */
  readonly transA?: boolean;
  /** Use Bᵀ: B is stored [.., N, K]. */
  readonly transB?: boolean;
  /** Added to every row of the product: shape [N]. */
  readonly bias?: GpuTensor;
  /** Applied after the bias. gelu is the tanh form (GPT-2's). */
  readonly activation?: Activation;
  readonly label?: string;
}

const TILE = 64;

/**
 * C = act(op(A)·op(B) + bias) for A [..., M, K] and B [..., K, N] (2-D or batched with equal
 * batch dims; a 2-D operand broadcasts over the other's batch). Returns a new tensor
 * [..., M, N]. Deterministic: the same inputs give the same bits on the same adapter.
 *
 * @example
 * const y = await matmul(rec, x, w, { bias: b, activation: 'gelu' });
 */
export async function matmul(
  rec: Recorder,
  a: GpuTensor,
  b: GpuTensor,
  opts: MatmulOptions = {},
): Promise<GpuTensor> {
  const ctx = rec.ctx;
  const dtype = opts.bias ? floatDType('matmul', a, b, opts.bias) : floatDType('matmul', a, b);
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw shapeError(
      'matmul',
      `operands need at least 2 dimensions, got ${shapeToString(a.shape)} and ${shapeToString(b.shape)}.`,
      {
        a: a.shape,
        b: b.shape,
      },
    );
  }
  const [M, Ka] = matrixDims('matmul', a.shape, !!opts.transA, 'a');
  const [Kb, N] = matrixDims('matmul', b.shape, !!opts.transB, 'b');
  if (Ka !== Kb) {
    throw shapeError(
      'matmul',
      `inner dimensions differ: A ${shapeToString(a.shape)}${opts.transA ? 'ᵀ' : ''} has K=${Ka}, B ${shapeToString(b.shape)}${opts.transB ? 'ᵀ' : ''} has K=${Kb}.`,
      { a: a.shape, b: b.shape },
    );
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const batchDims = batchA.length >= batchB.length ? batchA : batchB;
  const batch = batchDims.reduce((x, y) => x * y, 1);
  const nA = batchA.reduce((x, y) => x * y, 1);
  const nB = batchB.reduce((x, y) => x * y, 1);
  if (
    (nA !== batch && batchA.length > 0) ||
    (nB !== batch && batchB.length > 0) ||
    (batchA.length > 0 && batchB.length > 0 && batchA.join() !== batchB.join())
  ) {
    throw shapeError(
      'matmul',
      `batch dimensions do not match: ${shapeToString(batchA)} vs ${shapeToString(batchB)}.`,
      {
        a: a.shape,
        b: b.shape,
      },
    );
  }
  if (opts.bias && (opts.bias.shape.length !== 1 || opts.bias.shape[0] !== N)) {
    throw shapeError('matmul', `bias must have shape [${N}], got ${shapeToString(opts.bias.shape)}.`, {
      bias: opts.bias.shape,
    });
  }
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (Math.ceil(N / TILE) > maxDim || Math.ceil(M / TILE) > maxDim || batch > maxDim) {
    throw shapeError(
      'matmul',
      `[${M}×${N}] × batch ${batch} is over this device's dispatch grid; split the batch.`,
      {
        M,
        N,
        batch,
      },
    );
  }
  const out = emptyTensor(ctx, [...batchDims, M, N], dtype, opts.label ?? 'matmul.out');
  const pipeline = await kernelPipeline(ctx, 'matmul', matmulWgsl, dtype, {
    TRANS_A: opts.transA ? 1 : 0,
    TRANS_B: opts.transB ? 1 : 0,
    HAS_BIAS: opts.bias ? 1 : 0,
    ACT: ACT_CODE[opts.activation ?? 'none'],
  });
  rec.dispatch({
    pipeline,
    uniforms: uniforms([M, N, Ka, batch, batchA.length ? M * Ka : 0, batchB.length ? Ka * N : 0, M * N, 0]),
    // Without a bias the binding still exists in the layout; A stands in and is never read.
    buffers: [a.buffer, b.buffer, (opts.bias ?? a).buffer, out.buffer],
    workgroups: [Math.ceil(N / TILE), Math.ceil(M / TILE), batch],
  });
  return out;
}
