// Content-addressed blob cache (model files, input batches, parameters) in IndexedDB, bounded
// by a byte budget with least-recently-used eviction. A blob's key is the SHA-256 of its bytes,
// checked on the way in and again on the way out: a byte flipped on disk never reaches a kernel.
import { HearthError } from '../core/errors.ts';
import { isSha256Hex, sha256Hex } from '../core/hash.ts';
import {
  type BlobEntry,
  type HearthDB,
  inTransaction,
  isQuotaError,
  quotaSettled,
  storageEstimate,
  toStoreError,
} from './db.ts';

/** Anything that can hand out blobs by their SHA-256: this cache, peers, the hub. */
export interface BlobSource {
  /** The blob's bytes, or null when this source does not have it (or has only a bad copy). */
  get(sha256: string): Promise<Uint8Array | null>;
}

export interface BlobCacheOptions {
  /** Most bytes of blobs kept; older blobs are evicted to make room. Default 512 MiB. */
  readonly budgetBytes?: number;
  /**
   * Told when `get` found an entry whose bytes no longer match their hash (the entry has been
   * deleted and `get` answers null). For logs and telemetry; errors it throws are ignored.
   */
  readonly onCorrupt?: (error: HearthError) => void;
  /**
   * Fault-injection seam, for tests only: runs inside the write transaction of `put`, just before
   * the bytes are stored (attempt 0, then 1 on the retry). Throwing aborts that transaction
   * exactly as the browser's own QuotaExceededError would. It is a seam, not a mock: eviction,
   * the retry and the transactions all run on the real IndexedDB. It exists because a real quota
   * failure needs a small quota set over the DevTools protocol for a whole origin (done in the
   * store's Playwright test), which cannot pick which attempt fails or share a page with others.
   */
  readonly beforeWrite?: (attempt: number) => void;
}

export interface BlobCacheUsage {
  /** Bytes of all cached blobs. */
  readonly bytes: number;
  readonly count: number;
  readonly budgetBytes: number;
}

export const DEFAULT_BLOB_BUDGET = 512 * 1024 * 1024;

/**
 * The volunteer's blob cache: bytes by SHA-256 (64 lowercase hex digits), persistent across
 * reloads, shared by the page and the compute worker.
 *
 * - `put` hashes the bytes and refuses them ('blob/corrupt') when they do not match the hash the
 *   caller expected; a blob larger than the whole budget is refused ('input/invalid').
 * - `get` re-hashes what it reads. A corrupted entry is deleted and answered as a miss (null),
 *   so that a chain of {@link BlobSource}s falls through to a peer or the hub for a good copy;
 *   `onCorrupt` hears about it.
 * - When a put would take the cache over its budget, least-recently-used blobs (by put or get)
 *   are evicted first. When the browser itself refuses for lack of quota (QuotaExceededError),
 *   least-recently-used blobs worth at least the new blob's size are evicted, and once the
 *   browser's usage reflects it (or after a short pause when nothing was left to evict) the
 *   write is retried once; after that `put` fails with 'store/quota', naming the bytes needed.
 *   Nothing is thrown but HearthErrors.
 *
 * @example
 * const cache = new BlobCache(await openHearthDB(), { budgetBytes: 256 * 2 ** 20 });
 * const sha = await cache.put(modelBytes, { sha256: shard.model }); // throws 'blob/corrupt' on a mismatch
 * const bytes = await cache.get(sha); // Uint8Array, or null when absent or corrupted
 */
export class BlobCache implements BlobSource {
  readonly budgetBytes: number;
  readonly #db: HearthDB;
  readonly #onCorrupt: ((error: HearthError) => void) | undefined;
  readonly #beforeWrite: ((attempt: number) => void) | undefined;

  constructor(db: HearthDB, options: BlobCacheOptions = {}) {
    const budget = options.budgetBytes ?? DEFAULT_BLOB_BUDGET;
    if (!Number.isSafeInteger(budget) || budget <= 0) {
      throw new HearthError(
        'input/invalid',
        `BlobCache budgetBytes: expected a positive whole number of bytes, got ${String(budget)}.`,
        { details: { budgetBytes: budget } },
      );
    }
    this.budgetBytes = budget;
    this.#db = db;
    this.#onCorrupt = options.onCorrupt;
    this.#beforeWrite = options.beforeWrite;
  }

  /**
   * Stores `bytes` under their SHA-256 and returns it. With `sha256`, the bytes must hash to it
   * ('blob/corrupt' otherwise, nothing stored). Putting a blob that is already cached rewrites
   * it (healing a damaged copy) and makes it the most recently used.
   */
  async put(bytes: Uint8Array | ArrayBuffer, options: { sha256?: string } = {}): Promise<string> {
    const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const declared = options.sha256;
    if (declared !== undefined && !isSha256Hex(declared)) {
      throw new HearthError(
        'input/invalid',
        `BlobCache.put: expected sha256 as 64 lowercase hex digits, got ${JSON.stringify(declared)}.`,
        { details: { sha256: declared } },
      );
    }
    const size = view.byteLength;
    if (size > this.budgetBytes) {
      throw new HearthError(
        'input/invalid',
        `BlobCache.put: the blob is ${size} bytes, larger than the whole cache budget of ${this.budgetBytes} bytes; raise budgetBytes or keep it out of the cache.`,
        { details: { size, budgetBytes: this.budgetBytes, ...(declared ? { sha256: declared } : {}) } },
      );
    }
    const sha = await sha256Hex(view);
    if (declared !== undefined && sha !== declared) {
      throw new HearthError(
        'blob/corrupt',
        `BlobCache.put: the ${size} bytes hash to ${sha}, not the expected ${declared}; they were not stored.`,
        { details: { expected: declared, got: sha, size } },
      );
    }
    // A view onto part of a buffer (or onto shared memory) would clone the whole buffer.
    const whole =
      view.buffer instanceof ArrayBuffer &&
      view.byteOffset === 0 &&
      view.byteLength === view.buffer.byteLength;
    const buffer = whole ? (view.buffer as ArrayBuffer) : view.slice().buffer;

    let evictedForQuota = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#write(sha, buffer, size, attempt);
        return sha;
      } catch (e) {
        if (!isQuotaError(e)) throw toStoreError(`BlobCache.put ${sha}`, e, { sha256: sha, size });
        if (attempt === 0) {
          const before = (await storageEstimate()).usage;
          evictedForQuota = await this.#evictForQuota(sha, size);
          await quotaSettled(evictedForQuota > 0 ? before : undefined);
          continue;
        }
        throw await quotaError(sha, size, evictedForQuota, e);
      }
    }
  }

  /**
   * The blob's bytes, re-verified against `sha256`, or null when it is not cached. A cached copy
   * that fails verification is deleted, reported to `onCorrupt`, and answered as null.
   */
  async get(sha256: string): Promise<Uint8Array | null> {
    checkSha(sha256, 'get');
    let entry: BlobEntry | undefined;
    let buffer: ArrayBuffer | undefined;
    try {
      const tx = this.#db.transaction(['blobs', 'blob-bytes'], 'readonly');
      [entry, buffer] = await inTransaction(tx, () =>
        Promise.all([tx.objectStore('blobs').get(sha256), tx.objectStore('blob-bytes').get(sha256)]),
      );
    } catch (e) {
      throw toStoreError(`BlobCache.get ${sha256}`, e, { sha256 });
    }
    if (!entry && !buffer) return null;
    const got = buffer instanceof ArrayBuffer ? await sha256Hex(buffer) : undefined;
    if (!entry || got !== sha256) {
      await this.#remove(sha256).catch(() => undefined);
      this.#reportCorrupt(sha256, entry, buffer, got);
      return null;
    }
    await this.#touch(sha256);
    return new Uint8Array(buffer as ArrayBuffer);
  }

  /** Whether a blob is cached (without reading or verifying its bytes). */
  async has(sha256: string): Promise<boolean> {
    checkSha(sha256, 'has');
    try {
      return (await this.#db.count('blobs', sha256)) > 0;
    } catch (e) {
      throw toStoreError(`BlobCache.has ${sha256}`, e, { sha256 });
    }
  }

  /** Removes a blob; resolves to whether it was cached. */
  async delete(sha256: string): Promise<boolean> {
    checkSha(sha256, 'delete');
    try {
      return await this.#remove(sha256);
    } catch (e) {
      throw toStoreError(`BlobCache.delete ${sha256}`, e, { sha256 });
    }
  }

  /** Bytes and number of cached blobs, with the budget they live under. */
  async usage(): Promise<BlobCacheUsage> {
    try {
      const entries = await this.#db.getAll('blobs');
      let bytes = 0;
      for (const e of entries) bytes += e.size;
      return { bytes, count: entries.length, budgetBytes: this.budgetBytes };
    } catch (e) {
      throw toStoreError('BlobCache.usage', e);
    }
  }

  /** Removes every cached blob. */
  async clear(): Promise<void> {
    try {
      const tx = this.#db.transaction(['blobs', 'blob-bytes'], 'readwrite');
      await inTransaction(tx, () =>
        Promise.all([tx.objectStore('blobs').clear(), tx.objectStore('blob-bytes').clear()]),
      );
    } catch (e) {
      throw toStoreError('BlobCache.clear', e);
    }
  }

  // One transaction: evict for the budget, stamp, store. Atomic against other tabs and workers
  // sharing the database, so their puts cannot overshoot the budget together.
  async #write(sha: string, buffer: ArrayBuffer, size: number, attempt: number): Promise<void> {
    const tx = this.#db.transaction(['blobs', 'blob-bytes'], 'readwrite', { durability: 'relaxed' });
    const meta = tx.objectStore('blobs');
    const data = tx.objectStore('blob-bytes');
    await inTransaction(tx, async () => {
      const byAge = await meta.index('by-last-used').getAll(); // oldest first
      let total = 0;
      for (const e of byAge) if (e.sha256 !== sha) total += e.size;
      for (const e of byAge) {
        if (total + size <= this.budgetBytes) break;
        if (e.sha256 === sha) continue;
        await Promise.all([meta.delete(e.sha256), data.delete(e.sha256)]);
        total -= e.size;
      }
      const lastUsed = stamp(byAge.at(-1)?.lastUsed);
      this.#beforeWrite?.(attempt);
      await Promise.all([meta.put({ sha256: sha, size, lastUsed }), data.put(buffer, sha)]);
    });
  }

  // After a QuotaExceededError: evict least-recently-used blobs worth at least `size` bytes.
  async #evictForQuota(sha: string, size: number): Promise<number> {
    try {
      const tx = this.#db.transaction(['blobs', 'blob-bytes'], 'readwrite');
      const meta = tx.objectStore('blobs');
      const data = tx.objectStore('blob-bytes');
      return await inTransaction(tx, async () => {
        let freed = 0;
        for (const e of await meta.index('by-last-used').getAll()) {
          if (freed >= size) break;
          if (e.sha256 === sha) continue;
          await Promise.all([meta.delete(e.sha256), data.delete(e.sha256)]);
          freed += e.size;
        }
        return freed;
      });
    } catch {
      return 0;
    }
  }

  async #touch(sha: string): Promise<void> {
    try {
      const tx = this.#db.transaction('blobs', 'readwrite', { durability: 'relaxed' });
      const meta = tx.objectStore('blobs');
      await inTransaction(tx, async () => {
        const [entry, newest] = await Promise.all([
          meta.get(sha),
          meta.index('by-last-used').openCursor(null, 'prev'),
        ]);
        if (entry) await meta.put({ ...entry, lastUsed: stamp(newest?.value.lastUsed) });
      });
    } catch {
      // Recency is a hint: a failed touch must not fail a read that already succeeded.
    }
  }

  async #remove(sha: string): Promise<boolean> {
    const tx = this.#db.transaction(['blobs', 'blob-bytes'], 'readwrite');
    const meta = tx.objectStore('blobs');
    const data = tx.objectStore('blob-bytes');
    return inTransaction(tx, async () => {
      const existed = (await meta.count(sha)) + (await data.count(sha)) > 0;
      await Promise.all([meta.delete(sha), data.delete(sha)]);
      return existed;
    });
  }

  #reportCorrupt(
    sha: string,
    entry: BlobEntry | undefined,
    buffer: ArrayBuffer | undefined,
    got: string | undefined,
  ): void {
    if (!this.#onCorrupt) return;
    const what = !entry
      ? 'its bookkeeping entry was missing'
      : !(buffer instanceof ArrayBuffer)
        ? 'its bytes were missing'
        : `its ${buffer.byteLength} bytes hash to ${got}`;
    const error = new HearthError(
      'blob/corrupt',
      `BlobCache: the cached copy of ${sha} was damaged (${what}); it was deleted and will be fetched again.`,
      { details: { sha256: sha, got: got ?? null } },
    );
    try {
      this.#onCorrupt(error);
    } catch {
      // A listener's failure is not the reader's.
    }
  }
}

function checkSha(sha256: unknown, op: string): void {
  if (!isSha256Hex(sha256)) {
    throw new HearthError(
      'input/invalid',
      `BlobCache.${op}: expected a SHA-256 as 64 lowercase hex digits, got ${JSON.stringify(sha256)}.`,
      { details: { sha256 } },
    );
  }
}

// Recency stamps are wall-clock ms, pushed forward when needed so that they strictly increase
// even for puts and gets in the same millisecond (which keeps eviction order exact).
function stamp(newest: number | undefined): number {
  const now = Date.now();
  return newest !== undefined && newest >= now ? newest + 1 : now;
}

async function quotaError(sha: string, size: number, evicted: number, cause: unknown): Promise<HearthError> {
  const estimate = await storageEstimate();
  const after =
    evicted > 0
      ? `even after evicting ${evicted} bytes of older blobs`
      : 'and no older blobs were left to evict';
  const known =
    estimate.usage !== undefined && estimate.quota !== undefined
      ? ` (this site uses ${estimate.usage} of its ${estimate.quota}-byte quota)`
      : '';
  return new HearthError(
    'store/quota',
    `BlobCache.put ${sha}: the browser refused to store ${size} bytes for lack of storage quota, ${after}${known}. Free disk space, clear this site's data or lower the cache budget.`,
    {
      cause,
      details: {
        sha256: sha,
        needed: size,
        evicted,
        ...(estimate.usage !== undefined ? { usage: estimate.usage } : {}),
        ...(estimate.quota !== undefined ? { quota: estimate.quota } : {}),
      },
    },
  );
}
