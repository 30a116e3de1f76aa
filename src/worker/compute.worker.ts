// The compute worker: a dedicated module worker that owns the WebGPU device, the ONNX sessions
// and a handle on the blob cache, exposed to the page with comlink (see client.ts).
import { expose, transfer } from 'comlink';
import { GpuRuntime } from '../gpu/context.ts';
import { runOnnx } from '../onnx/run.ts';
import { releaseSessions } from '../onnx/session.ts';
import { BlobCache } from '../store/blob-cache.ts';
import { CheckpointStore } from '../store/checkpoints.ts';
import { type HearthDB, openHearthDB } from '../store/db.ts';
import type { ComputeWorkerApi } from './api.ts';
import { installHearthErrorTransfer } from './comlink-errors.ts';
import { ComputeEngine } from './engine.ts';

installHearthErrorTransfer();

let dbName: string | undefined;
let db: Promise<HearthDB> | null = null;
let cache: Promise<BlobCache> | null = null;
let checkpoints: Promise<CheckpointStore> | null = null;
const hearthDB = () => (db ??= openHearthDB(dbName));
function blobCache(): Promise<BlobCache> {
  cache ??= hearthDB().then((d) => new BlobCache(d));
  return cache;
}
function checkpointStore(): Promise<CheckpointStore> {
  checkpoints ??= hearthDB().then((d) => new CheckpointStore(d));
  return checkpoints;
}

const engine = new ComputeEngine({
  runtime: new GpuRuntime({ onUncapturedError: (e) => console.error(`[hearth worker] ${e.message}`) }),
  blobs: { get: async (sha256) => (await blobCache()).get(sha256) },
  onnx: (shard, model, opts) => runOnnx(shard, model, opts),
  // Training shards save their inner loop here, so that a reload resumes rather than restarts.
  checkpoints: {
    load: async (shard) => (await checkpointStore()).load(shard),
    save: async (shard, step, state) => (await checkpointStore()).save(shard, step, state),
    clear: async (shard) => (await checkpointStore()).clear(shard),
  },
});

const api: ComputeWorkerApi = {
  async configure(opts) {
    if (db) throw new Error('configure() must come before the first use of the database');
    dbName = opts.dbName;
  },
  probe: () => engine.probe(),
  async runShard(shard, onProgress) {
    const result = await engine.runShard(shard, onProgress);
    return transfer(
      result,
      result.outputs.map((o) => o.data),
    );
  },
  cancel: async (shardId) => engine.cancel(shardId),
  putBlob: async (bytes, sha256) => (await blobCache()).put(bytes, sha256 ? { sha256 } : {}),
  async dispose() {
    await engine.dispose();
    await releaseSessions();
  },
};

expose(api);
