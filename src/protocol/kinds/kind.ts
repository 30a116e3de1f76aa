// What one job kind is, on the protocol layer: how its manifest, its shards' work (what a lease
// carries, blobs by hash) and its worker shards (with bytes) are parsed; which blobs and tensors
// a job names; what one shard of it is worth in FLOPs; how work becomes a shard with bytes. Each
// kind is one module in this folder, registered in ./index.ts; nothing outside this folder
// branches on a kind's name.
import type { ManifestBase, TensorBlob } from '../manifest.ts';
import type { BlobGetter, ShardContext } from '../work.ts';

/** The fields every worker shard has, parsed once before its kind's own fields. */
export interface ShardHead {
  readonly v: 1;
  readonly id: string;
  readonly job: string;
  readonly budgetMs?: number;
}

/** A tensor a manifest names, with the path of the field that names it (for errors at submit). */
export interface NamedTensor {
  readonly path: string;
  readonly tensor: TensorBlob;
}

/**
 * One job kind's protocol module.
 *
 * @example
 * const wgsl: ProtocolKind<WgslManifest, WgslWork, WgslShard> = { kind: 'wgsl', … };
 */
export interface ProtocolKind<M extends { readonly kind: string }, W, S> {
  readonly kind: M['kind'];
  /** Manifest fields this kind reads beyond the common ones (manifest.ts COMMON_KEYS). */
  readonly manifestKeys: readonly string[];
  /** Whether `flopsPerShard` must be declared: true when the hub cannot count a shard's work. */
  readonly flopsRequired: boolean;
  /**
   * The kind's manifest from the untrusted object, given the common fields already checked,
   * the raw honeypot list (if any) and the declared FLOPs (if any).
   */
  parseManifest(
    o: Readonly<Record<string, unknown>>,
    base: ManifestBase,
    honeypots: readonly unknown[] | undefined,
    declaredFlops: number | undefined,
  ): M;
  /** A lease's work for this kind (the `kind` field already checked). */
  parseWork(o: Readonly<Record<string, unknown>>, path: string): W;
  /** The blobs one piece of work names. */
  workBlobs(work: W): string[];
  /** Every blob the job's shards and honeypots name (what volunteers will fetch). */
  manifestBlobs(m: M): string[];
  /** Every tensor the manifest names, for checks against the uploaded bytes at submit. */
  manifestTensors(m: M): NamedTensor[];
  /** FLOPs credited for one validated shard (a full one without `work`). */
  flops(m: M, work?: W): number;
  /** The lease context a shard of this job needs beside its work (WGSL: the kernel). */
  shardContext(m: M): Pick<ShardContext, 'kernel' | 'outputs'>;
  /** The worker Shard (with bytes) a piece of work describes, its blobs fetched through `blobs`. */
  shardFromWork(work: W, ctx: ShardContext, blobs: BlobGetter): Promise<S>;
  /** The kind's own fields of a worker shard (the head already checked). */
  parseShard(o: Readonly<Record<string, unknown>>, head: ShardHead): S;
  /** The shard's input buffers, transferred (not copied) to the worker. */
  transferables(shard: S): ArrayBuffer[];
}
