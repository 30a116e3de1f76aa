import embeddingWgsl from '../../shaders/embedding.wgsl?raw';
import { at } from '../core/at.ts';
import { HearthError } from '../core/errors.ts';
import { shapeToString } from '../core/tensor.ts';
import { grid1d, type Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import { expectDType, floatDType, kernelPipeline, sameShape, shapeError, uniforms } from './common.ts';

const KERNEL = 'embedding';
/** Elements one workgroup sorts in workgroup memory (the shader's tile). */
const SORT_BLOCK = 512;

/**
 * Looks up rows of `table` [V, D] for the token ids (i32, any shape [...]): returns [..., D].
 * An id outside [0, V) gives a row of zeros (ids live on the GPU, so the kernel checks them
 * there and never reads out of bounds).
 *
 * @example
 * const h = await embedding(rec, wte, tokenIds); // [batch, seq] → [batch, seq, D]
 */
export async function embedding(rec: Recorder, table: GpuTensor, ids: GpuTensor): Promise<GpuTensor> {
  const K = 'embedding';
  const ctx = rec.ctx;
  const dtype = floatDType(K, table);
  expectDType(K, ids, ['i32'], 'ids');
  if (table.shape.length !== 2) {
    throw shapeError(K, `table must be [V, D], got ${shapeToString(table.shape)}.`, { table: table.shape });
  }
  const [V, D] = table.shape as [number, number];
  const out = emptyTensor(ctx, [...ids.shape, D], dtype, 'embedding.out');
  const pipeline = await kernelPipeline(ctx, KERNEL, embeddingWgsl, dtype, undefined, 'gather');
  rec.dispatch({
    pipeline,
    uniforms: uniforms([ids.numel, 0, 0, 0, D, V]),
    buffers: [table.buffer, ids.buffer, out.buffer],
    workgroups: grid1d(ctx, Math.ceil(out.numel / 256)),
  });
  return out;
}

/**
 * Gradient of `embedding` with respect to its table: dTable [V, D], where row v is the sum of
 * dy's rows for the tokens whose id is v (ids outside [0, V) are ignored; rows no token chose
 * are 0). Deterministic without atomics: the tokens are sorted by (id, position) with a
 * bitonic network, and each row's sum runs over its tokens in order of position, so the result
 * is the same bits on every run. Cost O(T·log²T + V·D + T·D) for T tokens.
 *
 * @example
 * const dWte = await embeddingBackward(rec, tokenIds, dh, vocabSize);
 */
export async function embeddingBackward(
  rec: Recorder,
  ids: GpuTensor,
  dy: GpuTensor,
  V: number,
): Promise<GpuTensor> {
  const K = 'embeddingBackward';
  const ctx = rec.ctx;
  expectDType(K, ids, ['i32'], 'ids');
  const dtype = floatDType(K, dy);
  if (!Number.isInteger(V) || V < 1 || V >= 2 ** 31) {
    throw new HearthError(
      'input/invalid',
      `${K}: V (the vocabulary size) must be a positive integer, got ${V}.`,
      {
        details: { kernel: K, V },
      },
    );
  }
  if (dy.shape.length !== ids.shape.length + 1 || !sameShape(dy.shape.slice(0, -1), ids.shape)) {
    throw shapeError(
      K,
      `dy must be [...ids.shape, D] = [${[...ids.shape, 'D'].join(', ')}], got ${shapeToString(dy.shape)}.`,
      { ids: ids.shape, dy: dy.shape },
    );
  }
  const D = at(dy.shape, dy.shape.length - 1, 'dy shape'); // rank ids + 1, checked above
  const T = ids.numel;
  const N = Math.max(SORT_BLOCK, 2 ** Math.ceil(Math.log2(Math.max(T, 1))));
  const dTable = emptyTensor(ctx, [V, D], dtype, 'embeddingBackward.dTable');
  const pairs = emptyTensor(ctx, [N, 2], 'u32', 'embeddingBackward:pairs');
  rec.releaseAfterSubmit(pairs.buffer);
  const pipe = (entry: string) => kernelPipeline(ctx, KERNEL, embeddingWgsl, dtype, undefined, entry);
  const [local, global, merge, accumulate] = await Promise.all([
    pipe('sort_local'),
    pipe('sort_global'),
    pipe('sort_merge'),
    pipe('accumulate'),
  ]);
  const params = (j: number, k: number) => uniforms([T, N, j, k, D, V]);
  const blocks = grid1d(ctx, N / SORT_BLOCK);
  rec.dispatch({
    pipeline: local,
    uniforms: params(0, 0),
    buffers: [ids.buffer, pairs.buffer],
    workgroups: blocks,
  });
  for (let k = 2 * SORT_BLOCK; k <= N; k *= 2) {
    for (let j = k / 2; j >= SORT_BLOCK; j /= 2) {
      rec.dispatch({
        pipeline: global,
        uniforms: params(j, k),
        buffers: [pairs.buffer],
        workgroups: grid1d(ctx, N / 2 / 256),
      });
    }
    rec.dispatch({ pipeline: merge, uniforms: params(0, k), buffers: [pairs.buffer], workgroups: blocks });
  }
  rec.dispatch({
    pipeline: accumulate,
    uniforms: params(0, 0),
    buffers: [pairs.buffer, dy.buffer, dTable.buffer],
    workgroups: grid1d(ctx, Math.ceil((V * D) / 256)),
  });
  return dTable;
}
