import type { ShardProgress, ShardResult } from '../protocol/shard.ts';
import type { CapabilityReport } from './probe.ts';

/** What the compute worker exposes over comlink. */
export interface ComputeWorkerApi {
  /** Settings that must precede everything else (tests give each worker its own database). */
  configure(opts: { dbName?: string }): Promise<void>;
  /** Acquire the GPU and measure it. The page calls this only after the volunteer's yes. */
  probe(): Promise<CapabilityReport>;
  /** Run one shard; input tensors' buffers are transferred, outputs come back transferred. */
  runShard(shard: unknown, onProgress?: (p: ShardProgress) => void): Promise<ShardResult>;
  /** Stop a running shard at its next step (it rejects with 'shard/cancelled'). */
  cancel(shardId: string): Promise<boolean>;
  /** Store model or input bytes in the worker's blob cache; resolves with their SHA-256. */
  putBlob(bytes: Uint8Array, sha256?: string): Promise<string>;
  /** Release the device and every cached session. */
  dispose(): Promise<void>;
}
