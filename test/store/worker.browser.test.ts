// The page and a dedicated worker share one database: what one writes, the other reads.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobCache, type HearthDB, ResultOutbox } from '../../src/store/index.ts';
import { bytesOf, freshDb } from './helpers.ts';
import type { StoreWorkerReply, StoreWorkerRequest } from './store.worker.ts';

const worker = new Worker(new URL('./store.worker.ts', import.meta.url), { type: 'module' });
afterAll(() => worker.terminate());

function ask(req: StoreWorkerRequest): Promise<StoreWorkerReply> {
  return new Promise((resolve) => {
    worker.onmessage = (ev: MessageEvent<StoreWorkerReply>) => resolve(ev.data);
    worker.postMessage(req);
  });
}

let db: HearthDB;
let name: string;
let dispose: () => Promise<void>;

beforeEach(async () => {
  ({ db, name, dispose } = await freshDb());
});
afterEach(async () => {
  await dispose();
});

describe('store in a dedicated worker', () => {
  it('a blob and a result written by the worker are read by the page', async () => {
    const bytes = bytesOf(256, 1);
    const r = await ask({ op: 'write', db: name, bytes: bytes.slice().buffer, shard: 'job-w/0' });
    if (!r.ok) throw new Error(r.error);
    expect(r.isWorker).toBe(true);
    expect(await new BlobCache(db).get(r.sha256!)).toEqual(bytes);
    const [pending] = await new ResultOutbox(db).pending();
    expect(pending?.shard).toBe('job-w/0');
    expect(new Uint8Array(pending!.outputs[0]!.data)).toEqual(bytes);
  });

  it('a blob written by the page is read by the worker', async () => {
    const bytes = bytesOf(512, 2);
    const sha256 = await new BlobCache(db).put(bytes);
    const r = await ask({ op: 'read', db: name, sha256 });
    if (!r.ok) throw new Error(r.error);
    expect(new Uint8Array(r.got!)).toEqual(bytes);
  });
});
