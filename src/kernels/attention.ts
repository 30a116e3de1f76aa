import attentionWgsl from '../../shaders/attention.wgsl?raw';
import { HearthError } from '../core/errors.ts';
import { shapeToString } from '../core/tensor.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import { floatDType, kernelPipeline, sameShape, shapeError, uniforms } from './common.ts';

export interface AttentionOptions {
  /** Multiplies every score q·k before the softmax. Default 1/√D. */
  readonly scale?: number;
  readonly label?: string;
}

/** The largest head dimension the fused kernel holds in workgroup memory. */
export const ATTENTION_MAX_HEAD_DIM = 128;

/** Query rows per workgroup: one invocation each. */
const ROWS = 64;

/**
 * Keys per tile: the largest of 32, 16, 8, 4 whose K and V tiles ([BK, DP] f32 each) fit the
 * device's workgroup memory; 0 when none does.
 */
function keysPerTile(DP: number, limit: number): number {
  for (const BK of [32, 16, 8, 4]) if (2 * BK * DP * 4 <= limit) return BK;
  return 0;
}

/**
 * Causal self-attention: out[b, h, t] = Σ_{s≤t} softmax_s(q_t·k_s·scale) · v_s for q, k, v of
 * shape [B, H, T, D] (D ≤ 128). One fused kernel (flash-attention style): the [T, T] scores are
 * never stored, the softmax runs online in f32, and the result is the same bits on every run.
 * Returns a new tensor [B, H, T, D].
 *
 * @example
 * const y = await causalAttention(rec, q, k, v); // scale 1/√D
 */
export async function causalAttention(
  rec: Recorder,
  q: GpuTensor,
  k: GpuTensor,
  v: GpuTensor,
  opts: AttentionOptions = {},
): Promise<GpuTensor> {
  const ctx = rec.ctx;
  const dtype = floatDType('causalAttention', q, k, v);
  if (q.shape.length !== 4) {
    throw shapeError(
      'causalAttention',
      `q must have shape [B, H, T, D], got ${shapeToString(q.shape)} (${q.shape.length} dimensions).`,
      { q: q.shape },
    );
  }
  for (const [name, t] of [
    ['k', k],
    ['v', v],
  ] as const) {
    if (!sameShape(t.shape, q.shape)) {
      throw shapeError(
        'causalAttention',
        `${name} must have the shape of q ${shapeToString(q.shape)}, got ${shapeToString(t.shape)}.`,
        { name, q: q.shape, [name]: t.shape },
      );
    }
  }
  const [B, H, T, D] = q.shape as [number, number, number, number];
  if (D > ATTENTION_MAX_HEAD_DIM) {
    throw shapeError(
      'causalAttention',
      `head dimension D=${D} exceeds the limit of ${ATTENTION_MAX_HEAD_DIM}; split the heads further.`,
      { D, limit: ATTENTION_MAX_HEAD_DIM },
    );
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) {
    throw new HearthError('input/invalid', `causalAttention: scale must be a finite number, got ${scale}.`, {
      details: { kernel: 'causalAttention', scale },
    });
  }
  const label = opts.label ?? 'attention.out';
  if (B * H * T * D === 0) return emptyTensor(ctx, [B, H, T, D], dtype, label);

  const DP = Math.ceil(D / 4) * 4;
  const limit = ctx.limits.maxComputeWorkgroupStorageSize;
  const BK = keysPerTile(DP, limit);
  if (BK === 0) {
    throw new HearthError(
      'gpu/limit',
      `causalAttention with D=${D} needs ${2 * 4 * DP * 4} bytes of workgroup memory; this device ` +
        `allows ${limit} (maxComputeWorkgroupStorageSize). Use a smaller head dimension.`,
      { details: { kernel: 'causalAttention', D, limit } },
    );
  }
  const blocks = Math.ceil(T / ROWS);
  const bh = B * H;
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (bh > maxDim || blocks > maxDim) {
    throw new HearthError(
      'gpu/limit',
      `causalAttention over B·H=${bh} heads and ${blocks} query blocks exceeds this device's ${maxDim} ` +
        'workgroups per dimension (maxComputeWorkgroupsPerDimension); split the batch.',
      { details: { kernel: 'causalAttention', bh, blocks, limit: maxDim } },
    );
  }
  const pipeline = await kernelPipeline(ctx, 'attention', attentionWgsl, dtype, {
    BQ: ROWS,
    BK,
    DP4: DP / 4,
  });
  const out = emptyTensor(ctx, [B, H, T, D], dtype, label);
  rec.dispatch({
    pipeline,
    uniforms: uniforms([bh, T, D, blocks, { f: scale }, 0, 0, 0]),
    buffers: [q.buffer, k.buffer, v.buffer, out.buffer],
    workgroups: [blocks, bh],
  });
  return out;
}
