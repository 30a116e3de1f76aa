// Training leases in progress, kept so that a reload resumes them. A training shard runs for
// minutes and checkpoints its inner loop (store/checkpoints.ts, written by the compute worker);
// the checkpoint is only worth something if the reloaded page knows which shard to run again,
// with which work. That is this list: the lease message, noted before the shard starts and
// forgotten, with its checkpoint, once its result is in the outbox or the shard is given up.
import { HearthError } from '../core/errors.ts';
import { describe } from '../protocol/validate.ts';
import { type HearthDB, inTransaction, toStoreError, type UnfinishedEntry } from './db.ts';

export type { UnfinishedEntry } from './db.ts';

export interface UnfinishedLeasesOptions {
  /** Leases kept at most; the oldest go first (default 4: a tab runs one shard at a time). */
  readonly max?: number;
  /** Older entries are dropped when listed, ms (default 24 h: their shards are long judged). */
  readonly maxAgeMs?: number;
  readonly now?: () => number;
}

/**
 * The leases this device was computing when it last stopped.
 *
 * @example
 * const unfinished = new UnfinishedLeases(await openHearthDB());
 * await unfinished.remember(lease.shard, lease, hubUrl); // before the shard starts
 * await unfinished.forget(lease.shard);                 // result in the outbox: lease and checkpoint go
 * for (const u of await unfinished.list()) resume(u.lease); // after a reload
 */
export class UnfinishedLeases {
  readonly #db: HearthDB;
  readonly #max: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;

  constructor(db: HearthDB, opts: UnfinishedLeasesOptions = {}) {
    this.#db = db;
    this.#max = opts.max ?? 4;
    this.#maxAgeMs = opts.maxAgeMs ?? 24 * 3600_000;
    this.#now = opts.now ?? Date.now;
  }

  /** Notes a lease (any structured-cloneable message) under its shard id, dropping the oldest past `max`. */
  async remember(shard: string, lease: unknown, hub: string): Promise<void> {
    const id = shardId(shard, 'remember');
    try {
      const tx = this.#db.transaction(['unfinished', 'checkpoints'], 'readwrite', { durability: 'strict' });
      await inTransaction(tx, async () => {
        const store = tx.objectStore('unfinished');
        await store.put({ shard: id, lease, hub, savedAt: this.#now() });
        const all = await store.getAll();
        all.sort((a, b) => a.savedAt - b.savedAt);
        for (const old of all.slice(0, Math.max(0, all.length - this.#max))) {
          await store.delete(old.shard);
          await tx.objectStore('checkpoints').delete(old.shard);
        }
      });
    } catch (e) {
      throw toStoreError(`UnfinishedLeases.remember ${id}`, e, { shard: id });
    }
  }

  /** The leases still noted, oldest first; entries past `maxAgeMs` are forgotten on the way. */
  async list(): Promise<UnfinishedEntry[]> {
    let all: UnfinishedEntry[];
    try {
      all = await this.#db.getAll('unfinished');
    } catch (e) {
      throw toStoreError('UnfinishedLeases.list', e);
    }
    const cutoff = this.#now() - this.#maxAgeMs;
    const stale = all.filter((u) => u.savedAt < cutoff);
    for (const u of stale) await this.forget(u.shard);
    return all.filter((u) => u.savedAt >= cutoff).sort((a, b) => a.savedAt - b.savedAt);
  }

  /** Forgets a lease and its shard's checkpoint, in one transaction. */
  async forget(shard: string): Promise<void> {
    const id = shardId(shard, 'forget');
    try {
      const tx = this.#db.transaction(['unfinished', 'checkpoints'], 'readwrite');
      await inTransaction(tx, async () => {
        await tx.objectStore('unfinished').delete(id);
        await tx.objectStore('checkpoints').delete(id);
      });
    } catch (e) {
      throw toStoreError(`UnfinishedLeases.forget ${id}`, e, { shard: id });
    }
  }
}

function shardId(v: unknown, op: string): string {
  if (typeof v !== 'string' || v.length === 0) {
    throw new HearthError(
      'input/invalid',
      `UnfinishedLeases.${op}: the shard id must be a non-empty string, got ${describe(v)}.`,
      { details: { path: 'shard' } },
    );
  }
  return v;
}
