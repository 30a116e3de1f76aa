import transposeWgsl from '../../shaders/transpose.wgsl?raw';
import { at } from '../core/at.ts';
import { shapeToString } from '../core/tensor.ts';
import { grid1d, type Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import { floatDType, kernelPipeline, shapeError, uniforms } from './common.ts';

/** Axes the shader can index after merging; the uniform holds two vec4s of sizes and strides. */
const MAX_RANK = 8;
const WG = 256;

export interface TransposeOptions {
  /** Label of the output buffer. */
  readonly label?: string;
}

/**
 * The smallest equivalent problem: size-1 axes dropped, and output axes that come from
 * consecutive input axes merged. Returns the output sizes and, for each, the input stride.
 */
function collapsePermutation(
  shape: readonly number[],
  perm: readonly number[],
): { shape: number[]; stride: number[] } {
  // The input axes of size > 1, numbered 0… in input order.
  const inShape: number[] = [];
  const newIndex = new Map<number, number>();
  shape.forEach((d, a) => {
    if (d === 1) return;
    newIndex.set(a, inShape.length);
    inShape.push(d);
  });
  // Runs of output positions whose input axes are consecutive become one axis: kept axes
  // from…to (inclusive), and the input stride of the run, filled in below.
  const groups: { from: number; to: number; stride: number }[] = [];
  for (const axis of perm) {
    const a = newIndex.get(axis);
    if (a === undefined) continue;
    const last = groups[groups.length - 1];
    if (last && last.to + 1 === a) last.to = a;
    else groups.push({ from: a, to: a, stride: 0 });
  }
  const size = (g: { from: number; to: number }) =>
    inShape.slice(g.from, g.to + 1).reduce((u, d) => u * d, 1);
  // Strides in input order: the innermost run (highest axes) has stride 1.
  let s = 1;
  for (const g of [...groups].sort((g, h) => h.from - g.from)) {
    g.stride = s;
    s *= size(g);
  }
  return { shape: groups.map(size), stride: groups.map((g) => g.stride) };
}

/**
 * Permutes x's axes: output axis i is input axis perm[i]. Without perm, swaps the last two
 * axes. Returns a new, contiguous tensor.
 *
 * @example
 * const kT = await transpose(rec, k);                  // [B, H, T, D] → [B, H, D, T]
 * const heads = await transpose(rec, q, [0, 2, 1, 3]); // [B, T, H, D] → [B, H, T, D]
 */
export async function transpose(
  rec: Recorder,
  x: GpuTensor,
  perm?: readonly number[],
  opts: TransposeOptions = {},
): Promise<GpuTensor> {
  const ctx = rec.ctx;
  const dtype = floatDType('transpose', x);
  const rank = x.shape.length;
  if (!perm && rank < 2) {
    throw shapeError(
      'transpose',
      `without a permutation it swaps the last two axes, but x ${shapeToString(x.shape)} has ${rank}.`,
      { shape: x.shape },
    );
  }
  const p = perm ?? [...Array(rank - 2).keys(), rank - 1, rank - 2];
  const seen = new Set<number>();
  for (const a of p) {
    if (!Number.isInteger(a) || a < 0 || a >= rank || seen.has(a)) break;
    seen.add(a);
  }
  if (p.length !== rank || seen.size !== rank) {
    throw shapeError(
      'transpose',
      `permutation [${p.join(', ')}] is not a permutation of the ${rank} axes of ${shapeToString(x.shape)}: give each of 0…${rank - 1} once.`,
      { perm: p, shape: x.shape },
    );
  }
  const c = collapsePermutation(x.shape, p);
  if (c.shape.length > MAX_RANK) {
    throw shapeError(
      'transpose',
      `permutation [${p.join(', ')}] of ${shapeToString(x.shape)} moves ${c.shape.length} separate axes; at most ${MAX_RANK} are supported.`,
      { perm: p, shape: x.shape },
    );
  }
  const out = emptyTensor(
    ctx,
    p.map((a) => at(x.shape, a, 'x shape')), // p is a permutation of x's axes, checked above
    dtype,
    opts.label ?? 'transpose.out',
  );
  const n = x.numel;
  if (n === 0) return out;
  const pad = (v: number[]) => [...v, ...Array(MAX_RANK - v.length).fill(0)];
  const pipeline = await kernelPipeline(ctx, 'transpose', transposeWgsl, dtype);
  rec.dispatch({
    pipeline,
    uniforms: uniforms([n, c.shape.length, 0, 0, ...pad(c.shape), ...pad(c.stride)]),
    buffers: [x.buffer, out.buffer],
    workgroups: grid1d(ctx, Math.ceil(n / WG)),
  });
  return out;
}
