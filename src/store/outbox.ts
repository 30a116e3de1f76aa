// Results wait here between "computed" and "the hub acknowledged it", so that a crash, a closed
// tab or a dropped connection never loses credit for work done (DESIGN.md invariant 2).
import { HearthError } from '../core/errors.ts';
import type { ShardResult } from '../protocol/shard.ts';
import { describe } from '../protocol/validate.ts';
import { type HearthDB, inTransaction, isQuotaError, quotaSettled, toStoreError } from './db.ts';

/**
 * The durable queue of results not yet acknowledged by the hub. Write a result here BEFORE
 * sending it; remove it only when the hub acknowledges it. After a reload, `pending()` lists
 * what still has to be sent. Results are stored by structured clone, so their tensors stay
 * ArrayBuffers (no JSON, no base64). Writes use strict durability: when `add` resolves, the
 * result is on disk. A write the browser refuses for quota is retried once after a short pause,
 * then fails with 'store/quota' (free space, e.g. by clearing the blob cache, and add again).
 *
 * @example
 * const outbox = new ResultOutbox(await openHearthDB());
 * await outbox.add(result);            // first, durably
 * hub.send(result);
 * // …when the hub says it has it:
 * await outbox.ack(result.shard);
 * // …on start-up, resend what is left:
 * for (const r of await outbox.pending()) hub.send(r);
 */
export class ResultOutbox {
  readonly #db: HearthDB;

  constructor(db: HearthDB) {
    this.#db = db;
  }

  /**
   * Queues a result. Idempotent by shard id: when a result for the same shard is already
   * queued, the first one stays (it may already be on its way) and this resolves to false.
   */
  async add(result: ShardResult): Promise<boolean> {
    const shard = shardId(result?.shard, 'add', 'result.shard');
    for (let attempt = 0; ; attempt++) {
      try {
        const tx = this.#db.transaction('outbox', 'readwrite', { durability: 'strict' });
        const store = tx.objectStore('outbox');
        return await inTransaction(tx, async () => {
          if ((await store.index('by-shard').count(shard)) > 0) return false;
          await store.add({ shard, result, addedAt: Date.now() });
          return true;
        });
      } catch (e) {
        // A refusal for quota can be transient (see quotaSettled): a result is worth one retry.
        if (attempt === 0 && isQuotaError(e)) {
          await quotaSettled(undefined);
          continue;
        }
        throw toStoreError(`ResultOutbox.add ${shard}`, e, { shard });
      }
    }
  }

  /** Results not yet acknowledged, oldest first. */
  async pending(): Promise<ShardResult[]> {
    try {
      return (await this.#db.getAll('outbox')).map((e) => e.result);
    } catch (e) {
      throw toStoreError('ResultOutbox.pending', e);
    }
  }

  /** Whether a result for this shard is waiting. */
  async has(shard: string): Promise<boolean> {
    const id = shardId(shard, 'has', 'shard');
    try {
      return (await this.#db.countFromIndex('outbox', 'by-shard', id)) > 0;
    } catch (e) {
      throw toStoreError(`ResultOutbox.has ${id}`, e, { shard: id });
    }
  }

  /** Number of results waiting. */
  async size(): Promise<number> {
    try {
      return await this.#db.count('outbox');
    } catch (e) {
      throw toStoreError('ResultOutbox.size', e);
    }
  }

  /**
   * The hub acknowledged the result for this shard: forget it. Resolves to whether it was
   * queued (an acknowledgement that arrives twice is harmless).
   */
  async ack(shard: string): Promise<boolean> {
    const id = shardId(shard, 'ack', 'shard');
    try {
      const tx = this.#db.transaction('outbox', 'readwrite', { durability: 'strict' });
      const store = tx.objectStore('outbox');
      return await inTransaction(tx, async () => {
        const key = await store.index('by-shard').getKey(id);
        if (key === undefined) return false;
        await store.delete(key);
        return true;
      });
    } catch (e) {
      throw toStoreError(`ResultOutbox.ack ${id}`, e, { shard: id });
    }
  }
}

function shardId(v: unknown, op: string, path: string): string {
  if (typeof v !== 'string' || v.length === 0) {
    throw new HearthError(
      'input/invalid',
      `ResultOutbox.${op}: ${path} must be a non-empty string, got ${describe(v)}.`,
      {
        details: { path },
      },
    );
  }
  return v;
}
