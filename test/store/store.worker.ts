// Runs in a dedicated module worker: the compute worker's view of the same database.
import { sha256Hex } from '../../src/core/hash.ts';
import { BlobCache, openHearthDB, ResultOutbox } from '../../src/store/index.ts';

export type StoreWorkerRequest =
  | { op: 'write'; db: string; bytes: ArrayBuffer; shard: string }
  | { op: 'read'; db: string; sha256: string };
export type StoreWorkerReply =
  | { ok: true; sha256?: string; got?: ArrayBuffer | null; isWorker: boolean }
  | { ok: false; error: string };

self.onmessage = async (ev: MessageEvent<StoreWorkerRequest>) => {
  const req = ev.data;
  const isWorker = typeof (self as unknown as { document?: unknown }).document === 'undefined';
  try {
    const db = await openHearthDB(req.db);
    try {
      if (req.op === 'write') {
        const sha256 = await new BlobCache(db).put(req.bytes);
        const data = req.bytes.slice(0);
        await new ResultOutbox(db).add({
          v: 1,
          shard: req.shard,
          job: 'job-w',
          kind: 'wgsl',
          outputs: [{ name: 'y', dtype: 'u32', shape: [data.byteLength / 4], data, sha256 }],
          backend: 'webgpu',
          device: 'worker',
          ms: 1,
        });
        postMessage({ ok: true, sha256, isWorker } satisfies StoreWorkerReply);
      } else {
        const bytes = await new BlobCache(db).get(req.sha256);
        const got = bytes ? bytes.slice().buffer : null;
        if (got && (await sha256Hex(got)) !== req.sha256) throw new Error('hash mismatch after get');
        postMessage({ ok: true, got, isWorker } satisfies StoreWorkerReply);
      }
    } finally {
      db.close();
    }
  } catch (e) {
    postMessage({ ok: false, error: String(e) } satisfies StoreWorkerReply);
  }
};
