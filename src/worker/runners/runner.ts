// What one job kind is, in the compute worker: how a parsed shard of that kind runs on this
// device. One module per kind in this folder, registered in ./index.ts; the engine (engine.ts)
// does what every kind shares — parse, budget, cancel, hash, result.
import type { GpuRuntime } from '../../gpu/context.ts';
import type { HostTensor, OnnxBackend, OnnxShard, ShardProgress } from '../../protocol/shard.ts';
import type { BlobSource } from '../../store/blob-cache.ts';

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

/** What the engine gives a runner. */
export interface RunnerEnv {
  readonly runtime: GpuRuntime;
  readonly blobs: BlobSource;
  readonly onnx?: OnnxRunner;
  readonly signal: AbortSignal;
  readonly onProgress?: (p: ShardProgress) => void;
}

/** What a runner returns: outputs (hashed by the engine), the backend and the device that ran it. */
export interface RunnerOutput {
  readonly outputs: { name: string; tensor: HostTensor }[];
  readonly backend: OnnxBackend;
  readonly device: string;
}

/** One kind's runner. */
export type KindRunner<S> = (shard: S, env: RunnerEnv) => Promise<RunnerOutput>;
