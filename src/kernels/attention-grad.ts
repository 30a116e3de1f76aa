import attentionGradWgsl from '../../shaders/attention-grad.wgsl?raw';
import { HearthError } from '../core/errors.ts';
import { shapeToString } from '../core/tensor.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import { ATTENTION_MAX_HEAD_DIM, type AttentionOptions } from './attention.ts';
import { floatDType, kernelPipeline, sameShape, shapeError, uniforms } from './common.ts';

/** Rows (queries, then keys) per workgroup: one invocation each. */
const WG = 64;

export interface AttentionGradients {
  readonly dq: GpuTensor;
  readonly dk: GpuTensor;
  readonly dv: GpuTensor;
}

/**
 * Gradients of `causalAttention` with respect to q, k and v, given its inputs, its output `o`
 * and dO = ∂L/∂o, all [B, H, T, D] (D ≤ 128), with the forward's `scale` (default 1/√D). The
 * probabilities are recomputed from each query row's log-sum-exp (FlashAttention-2's backward):
 * nothing of size [T, T] is stored. Two dispatches in one recording, every sum in a fixed order
 * and no atomics, so the gradients are the same bits on every run of one adapter. Returns new
 * tensors shaped like q.
 *
 * @example
 * const o = await causalAttention(rec, q, k, v);
 * const { dq, dk, dv } = await causalAttentionBackward(rec, q, k, v, o, dO);
 */
export async function causalAttentionBackward(
  rec: Recorder,
  q: GpuTensor,
  k: GpuTensor,
  v: GpuTensor,
  o: GpuTensor,
  dO: GpuTensor,
  opts: AttentionOptions = {},
): Promise<AttentionGradients> {
  const KERNEL = 'causalAttentionBackward';
  const ctx = rec.ctx;
  const dtype = floatDType(KERNEL, q, k, v, o, dO);
  if (q.shape.length !== 4) {
    throw shapeError(KERNEL, `q must have shape [B, H, T, D], got ${shapeToString(q.shape)}.`, {
      q: q.shape,
    });
  }
  for (const [name, t] of [
    ['k', k],
    ['v', v],
    ['o', o],
    ['dO', dO],
  ] as const) {
    if (!sameShape(t.shape, q.shape)) {
      throw shapeError(
        KERNEL,
        `${name} must have the shape of q ${shapeToString(q.shape)}, got ${shapeToString(t.shape)}.`,
        { name, q: q.shape, [name]: t.shape },
      );
    }
  }
  const [B, H, T, D] = q.shape as [number, number, number, number];
  if (D > ATTENTION_MAX_HEAD_DIM) {
    throw shapeError(
      KERNEL,
      `head dimension D=${D} exceeds the limit of ${ATTENTION_MAX_HEAD_DIM}; split the heads further.`,
      { D, limit: ATTENTION_MAX_HEAD_DIM },
    );
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) {
    throw new HearthError('input/invalid', `${KERNEL}: scale must be a finite number, got ${scale}.`, {
      details: { kernel: KERNEL, scale },
    });
  }
  const label = opts.label ?? 'attention';
  const dq = emptyTensor(ctx, q.shape, dtype, `${label}.dq`);
  const dk = emptyTensor(ctx, q.shape, dtype, `${label}.dk`);
  const dv = emptyTensor(ctx, q.shape, dtype, `${label}.dv`);
  if (B * H * T * D === 0) return { dq, dk, dv };
  const bh = B * H;
  const blocks = Math.ceil(T / WG);
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (bh > maxDim || blocks > maxDim) {
    throw new HearthError(
      'gpu/limit',
      `${KERNEL} over B·H=${bh} heads and ${blocks} row blocks exceeds this device's ${maxDim} ` +
        'workgroups per dimension (maxComputeWorkgroupsPerDimension); split the batch.',
      { details: { kernel: KERNEL, bh, blocks, limit: maxDim } },
    );
  }
  const constants = { WG, DP4: Math.ceil(D / 4) };
  const rows = await kernelPipeline(ctx, 'attention-grad', attentionGradWgsl, dtype, constants, 'rows');
  const cols = await kernelPipeline(ctx, 'attention-grad', attentionGradWgsl, dtype, constants, 'cols');
  const stats = emptyTensor(ctx, [bh, T, 2], 'f32', `${label}.stats`);
  rec.releaseAfterSubmit(stats.buffer);
  const u = uniforms([bh, T, D, blocks, { f: scale }, 0, 0, 0]);
  const buffers = [
    q.buffer,
    k.buffer,
    v.buffer,
    o.buffer,
    dO.buffer,
    stats.buffer,
    dq.buffer,
    dk.buffer,
    dv.buffer,
  ];
  rec.dispatch({ pipeline: rows, uniforms: u, buffers, workgroups: [blocks, bh] });
  rec.dispatch({ pipeline: cols, uniforms: u, buffers, workgroups: [blocks, bh] });
  return { dq, dk, dv };
}
