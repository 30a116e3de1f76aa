// The work a lease carries: what the hub's planner decided one shard is, with its tensors named by
// SHA-256 (the bytes travel on the data plane). Each kind's work is defined by its module
// (protocol/kinds/); parseShardWork and shardFromWork in kinds/index.ts dispatch to it. What is
// here is what every kind shares: where bytes come from and how a tensor blob becomes a tensor.
import { HearthError } from '../core/errors.ts';
import type { TensorBlob } from './manifest.ts';
import { type HostTensor, tensorBytes } from './shard.ts';

export type { ShardWork } from './kinds/index.ts';
export type { OnnxWork } from './kinds/onnx.ts';
export type { WgslWork } from './kinds/wgsl.ts';

/** Verified bytes by SHA-256 (a BlobFetcher in a tab, the blob folder on the hub). */
export interface BlobGetter {
  get(sha256: string): Promise<Uint8Array>;
}

/** What a shard needs besides its work: ids, the WGSL job's kernel, the ONNX job's outputs. */
export interface ShardContext {
  readonly shard: string;
  readonly job: string;
  readonly kernel?: { readonly source: string; readonly entryPoint?: string };
  readonly outputs?: readonly string[];
  readonly budgetMs?: number;
}

/** A tensor blob's bytes as a HostTensor, checked against the size its dtype and shape need. */
export async function tensorOf(blob: TensorBlob, blobs: BlobGetter, path: string): Promise<HostTensor> {
  const bytes = await blobs.get(blob.sha256);
  const want = tensorBytes(blob.dtype, blob.shape);
  if (bytes.byteLength !== want) {
    throw new HearthError(
      'input/invalid',
      `${path}: ${blob.dtype}[${blob.shape.join(', ')}] needs ${want} bytes, blob ${blob.sha256} has ${bytes.byteLength}.`,
      { details: { path, expected: want, got: bytes.byteLength } },
    );
  }
  return { dtype: blob.dtype, shape: [...blob.shape], data: ownBuffer(bytes) };
}

/** An ArrayBuffer holding exactly these bytes (the worker takes it by transfer). */
export function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer as ArrayBuffer;
}
