// BlobCache on Chromium's real IndexedDB (vitest browser mode: this file runs in a real page).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type HearthError, isHearthError } from '../../src/core/errors.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import { BlobCache, type BlobSource, type HearthDB } from '../../src/store/index.ts';
import { bytesOf, freshDb } from './helpers.ts';

let db: HearthDB;
let dispose: () => Promise<void>;

beforeEach(async () => {
  ({ db, dispose } = await freshDb());
});
afterEach(async () => {
  await dispose();
});

async function rejection(p: Promise<unknown>): Promise<HearthError> {
  try {
    await p;
  } catch (e) {
    if (isHearthError(e)) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

function quotaExceeded(): DOMException {
  return new DOMException('injected: quota exceeded', 'QuotaExceededError');
}

describe('BlobCache', () => {
  it('round-trips bytes under their SHA-256, verified on the way in', async () => {
    const cache = new BlobCache(db);
    const bytes = bytesOf(10_000, 1);
    const want = await sha256Hex(bytes);
    expect(await cache.put(bytes, { sha256: want })).toBe(want);
    expect(await cache.put(bytesOf(100, 2))).toBe(await sha256Hex(bytesOf(100, 2)));

    const got = await cache.get(want);
    expect(got).toBeInstanceOf(Uint8Array);
    expect(got).toEqual(bytes);
    expect(await cache.has(want)).toBe(true);
    expect(await cache.usage()).toEqual({ bytes: 10_100, count: 2, budgetBytes: cache.budgetBytes });
  });

  it('answers null for a blob it does not have', async () => {
    const cache = new BlobCache(db);
    const sha = await sha256Hex(bytesOf(8, 3));
    expect(await cache.get(sha)).toBeNull();
    expect(await cache.has(sha)).toBe(false);
    expect(await cache.delete(sha)).toBe(false);
  });

  it('refuses a put whose declared hash does not match, and stores nothing', async () => {
    const cache = new BlobCache(db);
    const bytes = bytesOf(1000, 4);
    const wrong = await sha256Hex(bytesOf(1000, 5));
    const err = await rejection(cache.put(bytes, { sha256: wrong }));
    expect(err.code).toBe('blob/corrupt');
    expect(err.details).toMatchObject({ expected: wrong, got: await sha256Hex(bytes) });
    expect(err.message).toContain(wrong);
    expect(await cache.has(wrong)).toBe(false);
    expect(await cache.usage()).toMatchObject({ bytes: 0, count: 0 });
  });

  it('refuses malformed hashes with input/invalid', async () => {
    const cache = new BlobCache(db);
    expect((await rejection(cache.put(bytesOf(4, 1), { sha256: 'ABC' }))).code).toBe('input/invalid');
    expect((await rejection(cache.get('not-a-hash'))).code).toBe('input/invalid');
    expect((await rejection(cache.has('E'.repeat(64)))).code).toBe('input/invalid');
    expect(() => new BlobCache(db, { budgetBytes: 0 })).toThrow(/budgetBytes/);
  });

  it('stores only the bytes a Uint8Array view covers', async () => {
    const cache = new BlobCache(db);
    const big = bytesOf(4096, 6);
    const view = big.subarray(1000, 1100);
    const sha = await cache.put(view);
    expect(sha).toBe(await sha256Hex(view));
    const got = await cache.get(sha);
    expect(got?.byteLength).toBe(100);
    expect(got?.buffer.byteLength).toBe(100);
    expect(got).toEqual(view.slice());
  });

  it('evicts least-recently-used blobs to stay within its budget; a get counts as a use', async () => {
    const cache = new BlobCache(db, { budgetBytes: 3000 });
    const a = await cache.put(bytesOf(1000, 10));
    const b = await cache.put(bytesOf(1000, 11));
    const c = await cache.put(bytesOf(1000, 12));
    expect(await cache.usage()).toMatchObject({ bytes: 3000, count: 3 });

    // a is the oldest, but reading it makes b the least recently used.
    expect(await cache.get(a)).not.toBeNull();
    const d = await cache.put(bytesOf(1000, 13));
    expect(await cache.has(b)).toBe(false);
    for (const sha of [a, c, d]) expect(await cache.has(sha)).toBe(true);

    // A 2000-byte blob needs two slots: c then a go (d was written after a's read).
    const e = await cache.put(bytesOf(2000, 14));
    expect(await cache.has(c)).toBe(false);
    expect(await cache.has(a)).toBe(false);
    expect(await cache.has(d)).toBe(true);
    expect(await cache.has(e)).toBe(true);
    expect(await cache.usage()).toMatchObject({ bytes: 3000, count: 2 });
  });

  it('re-putting a cached blob does not evict others to make room for itself', async () => {
    const cache = new BlobCache(db, { budgetBytes: 2000 });
    const a = await cache.put(bytesOf(1000, 20));
    const b = await cache.put(bytesOf(1000, 21));
    expect(await cache.put(bytesOf(1000, 20))).toBe(a);
    expect(await cache.has(b)).toBe(true);
    expect(await cache.usage()).toMatchObject({ bytes: 2000, count: 2 });
    // …and it became the most recently used: b goes first now.
    await cache.put(bytesOf(1000, 22));
    expect(await cache.has(b)).toBe(false);
    expect(await cache.has(a)).toBe(true);
  });

  it('refuses a single blob larger than the whole budget, evicting nothing', async () => {
    const cache = new BlobCache(db, { budgetBytes: 1000 });
    const small = await cache.put(bytesOf(500, 30));
    const err = await rejection(cache.put(bytesOf(1001, 31)));
    expect(err.code).toBe('input/invalid');
    expect(err.message).toMatch(/1001 bytes.*budget of 1000 bytes/);
    expect(err.details).toMatchObject({ size: 1001, budgetBytes: 1000 });
    expect(await cache.has(small)).toBe(true);
  });

  it('detects an entry whose bytes were corrupted on disk, deletes it and answers a miss', async () => {
    const reports: HearthError[] = [];
    const cache = new BlobCache(db, { onCorrupt: (e) => reports.push(e) });
    const bytes = bytesOf(5000, 40);
    const sha = await cache.put(bytes);

    // Flip one byte of the stored copy behind the cache's back.
    const stored = await db.get('blob-bytes', sha);
    expect(stored).toBeInstanceOf(ArrayBuffer);
    const damaged = new Uint8Array(stored!.slice(0));
    damaged[1234]! ^= 0x01;
    await db.put('blob-bytes', damaged.buffer, sha);

    expect(await cache.get(sha)).toBeNull();
    expect(reports).toHaveLength(1);
    expect(reports[0]!.code).toBe('blob/corrupt');
    expect(reports[0]!.details).toMatchObject({ sha256: sha, got: await sha256Hex(damaged) });
    // The bad copy is gone, so the next source in line (a peer, the hub) is asked…
    expect(await cache.has(sha)).toBe(false);
    expect(await db.get('blob-bytes', sha)).toBeUndefined();
    expect(await cache.usage()).toMatchObject({ bytes: 0, count: 0 });
    // …and a good copy can be cached again.
    await cache.put(bytes, { sha256: sha });
    expect(await cache.get(sha)).toEqual(bytes);
  });

  it('treats an entry whose bytes vanished as corrupt, and a throwing listener does not break get', async () => {
    const cache = new BlobCache(db, {
      onCorrupt: () => {
        throw new Error('listener bug');
      },
    });
    const sha = await cache.put(bytesOf(64, 41));
    await db.delete('blob-bytes', sha);
    expect(await cache.get(sha)).toBeNull();
    expect(await cache.has(sha)).toBe(false);
  });

  it('deletes and clears', async () => {
    const cache = new BlobCache(db);
    const a = await cache.put(bytesOf(10, 50));
    const b = await cache.put(bytesOf(10, 51));
    expect(await cache.delete(a)).toBe(true);
    expect(await cache.has(a)).toBe(false);
    expect(await cache.has(b)).toBe(true);
    await cache.clear();
    expect(await cache.usage()).toMatchObject({ bytes: 0, count: 0 });
  });

  it('is a BlobSource, and two caches on one database (page and worker) see the same blobs', async () => {
    const writer = new BlobCache(db);
    const reader: BlobSource = new BlobCache(db);
    const sha = await writer.put(bytesOf(300, 60));
    expect(await reader.get(sha)).toEqual(bytesOf(300, 60));
  });

  // The quota seam: `beforeWrite` throws the same DOMException the browser raises, inside the real
  // write transaction; eviction and the retry run on the real IndexedDB. A real QuotaExceededError
  // (Chromium with a small quota set over CDP) is tested in quota.node.test.ts.
  it('on QuotaExceededError evicts older blobs and retries once', async () => {
    let failures = 1;
    const attempts: number[] = [];
    const cache = new BlobCache(db, {
      beforeWrite: (attempt) => {
        attempts.push(attempt);
        if (failures-- > 0) throw quotaExceeded();
      },
    });
    // An empty cache has nothing to evict: the retry comes after a pause, and succeeds here.
    const first = await cache.put(bytesOf(700, 70));
    expect(attempts).toEqual([0, 1]);
    expect(await cache.has(first)).toBe(true);

    attempts.length = 0;
    const a = await cache.put(bytesOf(700, 71));
    const b = await cache.put(bytesOf(700, 72));
    failures = 1;
    const c = await cache.put(bytesOf(1000, 73));
    expect(attempts).toEqual([0, 0, 0, 1]);
    // The least recently used blobs, first then a, were evicted to free at least 1000 bytes;
    // b was spared, c is stored.
    expect(await cache.has(first)).toBe(false);
    expect(await cache.has(a)).toBe(false);
    expect(await cache.has(b)).toBe(true);
    expect(await cache.get(c)).toEqual(bytesOf(1000, 73));
    expect(await cache.usage()).toMatchObject({ bytes: 1700, count: 2 });
  });

  it('fails with store/quota naming the bytes needed when the retry fails too', async () => {
    let block = false;
    const cache = new BlobCache(db, {
      beforeWrite: () => {
        if (block) throw quotaExceeded();
      },
    });
    const a = await cache.put(bytesOf(400, 80));
    block = true;
    const err = await rejection(cache.put(bytesOf(900, 81)));
    expect(err.code).toBe('store/quota');
    expect(err.details).toMatchObject({ needed: 900, evicted: 400 });
    expect(err.message).toContain('900 bytes');
    expect((err.cause as DOMException).name).toBe('QuotaExceededError');
    expect(await cache.has(a)).toBe(false);
    expect(await cache.usage()).toMatchObject({ bytes: 0, count: 0 });
  });

  it('turns other write failures into store/failed, with nothing half-written', async () => {
    const cache = new BlobCache(db, {
      beforeWrite: () => {
        throw new DOMException('injected: disk error', 'UnknownError');
      },
    });
    const err = await rejection(cache.put(bytesOf(10, 90)));
    expect(err.code).toBe('store/failed');
    expect(err.message).toContain('UnknownError');
    expect(await db.count('blobs')).toBe(0);
    expect(await db.count('blob-bytes')).toBe(0);
  });
});
