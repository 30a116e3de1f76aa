import { proxy, type Remote, releaseProxy, transfer, wrap } from 'comlink';
import { shardTransferables } from '../protocol/kinds/index.ts';
import type { Shard, ShardProgress, ShardResult } from '../protocol/shard.ts';
import type { ComputeWorkerApi } from './api.ts';
import { installHearthErrorTransfer } from './comlink-errors.ts';
import type { CapabilityReport } from './probe.ts';

/** The page's handle on the compute worker. Creating it starts the worker but no GPU work. */
export interface ComputeWorker {
  probe(): Promise<CapabilityReport>;
  /** Runs a shard. Its input ArrayBuffers are transferred to the worker (detached here). */
  runShard(shard: Shard, onProgress?: (p: ShardProgress) => void): Promise<ShardResult>;
  cancel(shardId: string): Promise<boolean>;
  putBlob(bytes: Uint8Array, sha256?: string): Promise<string>;
  /** Disposes the worker's device and terminates it. */
  terminate(): Promise<void>;
}

function inputBuffers(shard: Shard): ArrayBuffer[] {
  return [...new Set(shardTransferables(shard))].filter((b) => b.byteLength > 0);
}

/**
 * Starts the compute worker (a module worker) and returns a typed handle. HearthErrors thrown
 * in the worker arrive as HearthErrors.
 *
 * @example
 * const worker = startComputeWorker();
 * const caps = await worker.probe();             // after consent only
 * const result = await worker.runShard(shard, (p) => meter.update(p));
 */
export function startComputeWorker(opts: { dbName?: string } = {}): ComputeWorker {
  installHearthErrorTransfer();
  const worker = new Worker(new URL('./compute.worker.ts', import.meta.url), {
    type: 'module',
    name: 'hearth-compute',
  });
  const remote: Remote<ComputeWorkerApi> = wrap<ComputeWorkerApi>(worker);
  const ready = opts.dbName ? remote.configure({ dbName: opts.dbName }) : Promise.resolve();
  return {
    probe: () => ready.then(() => remote.probe()),
    runShard: (shard, onProgress) =>
      ready.then(() =>
        remote.runShard(transfer(shard, inputBuffers(shard)), onProgress ? proxy(onProgress) : undefined),
      ) as Promise<ShardResult>,
    cancel: (id) => remote.cancel(id),
    putBlob: (bytes, sha256) => ready.then(() => remote.putBlob(bytes, sha256)),
    async terminate() {
      try {
        await remote.dispose();
      } finally {
        remote[releaseProxy]();
        worker.terminate();
      }
    },
  };
}
