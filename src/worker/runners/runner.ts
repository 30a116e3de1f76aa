// What one job kind is, in the compute worker: how a parsed shard of that kind runs on this
// device. One module per kind in this folder, registered in ./index.ts; the engine (engine.ts)
// does what every kind shares — parse, budget, cancel, hash, result.
import type { GpuRuntime } from '../../gpu/context.ts';
import type { HostTensor, OnnxBackend, OnnxShard, ShardProgress } from '../../protocol/shard.ts';
import type { BlobSource } from '../../store/blob-cache.ts';
import type { Checkpoint, CheckpointState } from '../../store/db.ts';

// Where model bytes come from: the IndexedDB blob cache in a tab, anything keyed by SHA-256
// elsewhere — the store's BlobSource, one definition for the worker and the data plane.
export type { BlobSource } from '../../store/blob-cache.ts';

/** Runs one ONNX shard (src/onnx); injected so the engine does not pick an onnxruntime build. */
export type OnnxRunner = (
  shard: OnnxShard,
  /** Reads the model's bytes; called only when no session for it is cached. */
  model: () => Promise<Uint8Array>,
  opts: { signal: AbortSignal; onProgress?: (p: ShardProgress) => void },
) => Promise<{ outputs: { name: string; tensor: HostTensor }[]; backend: OnnxBackend }>;

/**
 * Where long shards keep their latest state so that a reload resumes them (the tab's
 * IndexedDB: store/checkpoints.ts). Keyed by shard id.
 */
export interface ShardCheckpoints {
  load(shard: string): Promise<Checkpoint | null>;
  save(shard: string, step: number, state: CheckpointState): Promise<void>;
  clear(shard: string): Promise<void>;
}

/** What the engine gives a runner. */
export interface RunnerEnv {
  readonly runtime: GpuRuntime;
  readonly blobs: BlobSource;
  readonly onnx?: OnnxRunner;
  readonly signal: AbortSignal;
  readonly onProgress?: (p: ShardProgress) => void;
  /** Checkpoints of long shards (training); without it a shard restarts from its beginning. */
  readonly checkpoints?: ShardCheckpoints;
  /** The least time between two checkpoints of one shard, ms (default `CHECKPOINT_EVERY_MS`). */
  readonly checkpointEveryMs?: number;
}

/**
 * Default least time between checkpoints: each costs a read of θ and AdamW's moments from the
 * device and a durable IndexedDB write (3 × 4 bytes per parameter), so a reload loses at most
 * this much work.
 */
export const CHECKPOINT_EVERY_MS = 10_000;

/** What a runner returns: outputs (hashed by the engine), the backend and the device that ran it. */
export interface RunnerOutput {
  readonly outputs: { name: string; tensor: HostTensor }[];
  readonly backend: OnnxBackend;
  readonly device: string;
}

/** One kind's runner. */
export type KindRunner<S> = (shard: S, env: RunnerEnv) => Promise<RunnerOutput>;
