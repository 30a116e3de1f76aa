// Training shards save their state every few steps so that a reload resumes rather than
// restarts. Only the latest checkpoint of a shard is worth its disk space.
import { HearthError } from '../core/errors.ts';
import { describe } from '../protocol/validate.ts';
import { type Checkpoint, type CheckpointState, type HearthDB, inTransaction, toStoreError } from './db.ts';

/**
 * The latest checkpoint of each shard. A save replaces the shard's previous checkpoint in the
 * same transaction, so a crash leaves either the old or the new one, never a mix. State values
 * are ArrayBuffers (tensors, stored natively by structured clone), numbers or strings.
 *
 * @example
 * const checkpoints = new CheckpointStore(await openHearthDB());
 * await checkpoints.save(shard.id, 40, { params: theta.buffer, m: adamM.buffer, loss: 2.31 });
 * const cp = await checkpoints.load(shard.id); // { shard, step: 40, state, savedAt } or null
 * await checkpoints.clear(shard.id); // once the result is in the outbox
 */
export class CheckpointStore {
  readonly #db: HearthDB;

  constructor(db: HearthDB) {
    this.#db = db;
  }

  /** Saves `state` at `step` as the shard's checkpoint, replacing the one before it. */
  async save(shard: string, step: number, state: CheckpointState): Promise<void> {
    const id = shardId(shard, 'save');
    if (!Number.isSafeInteger(step) || step < 0) {
      throw new HearthError(
        'input/invalid',
        `CheckpointStore.save ${id}: step must be a whole number ≥ 0, got ${describe(step)}.`,
        { details: { shard: id, path: 'step' } },
      );
    }
    checkState(id, state);
    const checkpoint: Checkpoint = { shard: id, step, state: { ...state }, savedAt: Date.now() };
    try {
      const tx = this.#db.transaction('checkpoints', 'readwrite', { durability: 'strict' });
      await inTransaction(tx, () => tx.objectStore('checkpoints').put(checkpoint));
    } catch (e) {
      throw toStoreError(`CheckpointStore.save ${id} at step ${step}`, e, { shard: id, step });
    }
  }

  /** The shard's latest checkpoint, or null when it has none. */
  async load(shard: string): Promise<Checkpoint | null> {
    const id = shardId(shard, 'load');
    try {
      return (await this.#db.get('checkpoints', id)) ?? null;
    } catch (e) {
      throw toStoreError(`CheckpointStore.load ${id}`, e, { shard: id });
    }
  }

  /** Forgets the shard's checkpoint (when the shard is done or abandoned). */
  async clear(shard: string): Promise<void> {
    const id = shardId(shard, 'clear');
    try {
      await this.#db.delete('checkpoints', id);
    } catch (e) {
      throw toStoreError(`CheckpointStore.clear ${id}`, e, { shard: id });
    }
  }
}

function shardId(v: unknown, op: string): string {
  if (typeof v !== 'string' || v.length === 0) {
    throw new HearthError(
      'input/invalid',
      `CheckpointStore.${op}: the shard id must be a non-empty string, got ${describe(v)}.`,
      { details: { path: 'shard' } },
    );
  }
  return v;
}

function checkState(shard: string, state: unknown): void {
  if (typeof state !== 'object' || state === null || Array.isArray(state) || state instanceof ArrayBuffer) {
    throw new HearthError(
      'input/invalid',
      `CheckpointStore.save ${shard}: state must be an object of named values, got ${describe(state)}.`,
      { details: { shard, path: 'state' } },
    );
  }
  for (const [key, value] of Object.entries(state)) {
    if (value instanceof ArrayBuffer || typeof value === 'number' || typeof value === 'string') continue;
    const hint = ArrayBuffer.isView(value)
      ? ' (store a typed array as an ArrayBuffer: view.slice().buffer)'
      : '';
    throw new HearthError(
      'input/invalid',
      `CheckpointStore.save ${shard}: state.${key} must be an ArrayBuffer, a number or a string, got ${describe(value)}${hint}.`,
      { details: { shard, path: `state.${key}` } },
    );
  }
}
