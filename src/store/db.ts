// The volunteer's one IndexedDB database. Everything here uses only `indexedDB` and `crypto`,
// both of which exist in pages and in dedicated workers, so the compute worker can open the
// same database as the page (IndexedDB serialises their transactions).
import { type DBSchema, type IDBPDatabase, type IDBPTransaction, openDB, type StoreNames } from 'idb';
import { at } from '../core/at.ts';
import { HearthError } from '../core/errors.ts';
import type { ShardResult } from '../protocol/shard.ts';

export const HEARTH_DB_NAME = 'hearth';
/** Bump with a new entry in MIGRATIONS whenever the schema changes. */
export const HEARTH_DB_VERSION = 2;

/** A cached blob's bookkeeping, apart from its bytes so that LRU scans never read megabytes. */
export interface BlobEntry {
  readonly sha256: string;
  readonly size: number;
  /** Logical time of the last put or get: strictly increasing across the database. */
  readonly lastUsed: number;
}

export interface OutboxEntry {
  /** Auto-incremented: the primary key's order is the insertion order. */
  readonly seq?: number;
  readonly shard: string;
  readonly result: ShardResult;
  readonly addedAt: number;
}

/** A value in a checkpoint's state: tensors as raw bytes, scalars, small strings. */
export type CheckpointValue = ArrayBuffer | number | string;
export type CheckpointState = Readonly<Record<string, CheckpointValue>>;

/** The latest saved state of one shard. */
export interface Checkpoint {
  readonly shard: string;
  readonly step: number;
  readonly state: CheckpointState;
  /** Wall-clock time of the save (ms since the epoch). */
  readonly savedAt: number;
}

/**
 * A lease whose shard was being computed when the page went away (store/unfinished.ts): the
 * lease message as the hub sent it (control protocol, checked again before use).
 */
export interface UnfinishedEntry {
  readonly shard: string;
  readonly lease: unknown;
  /** The hub it came from. */
  readonly hub: string;
  readonly savedAt: number;
}

export interface HearthSchema extends DBSchema {
  blobs: { key: string; value: BlobEntry; indexes: { 'by-last-used': number } };
  'blob-bytes': { key: string; value: ArrayBuffer };
  outbox: { key: number; value: OutboxEntry; indexes: { 'by-shard': string } };
  checkpoints: { key: string; value: Checkpoint };
  unfinished: { key: string; value: UnfinishedEntry };
}

export type HearthDB = IDBPDatabase<HearthSchema>;
type UpgradeTx = IDBPTransaction<HearthSchema, StoreNames<HearthSchema>[], 'versionchange'>;

// MIGRATIONS[v] takes a database at version v to version v + 1. Never edit a shipped entry:
// volunteers' browsers hold databases at every old version.
const MIGRATIONS: ReadonlyArray<(db: HearthDB, tx: UpgradeTx) => void> = [
  (db) => {
    const blobs = db.createObjectStore('blobs', { keyPath: 'sha256' });
    blobs.createIndex('by-last-used', 'lastUsed');
    db.createObjectStore('blob-bytes');
    const outbox = db.createObjectStore('outbox', { keyPath: 'seq', autoIncrement: true });
    outbox.createIndex('by-shard', 'shard', { unique: true });
    db.createObjectStore('checkpoints', { keyPath: 'shard' });
  },
  // 2: training leases in progress, so that a reload resumes them from their checkpoints.
  (db) => {
    db.createObjectStore('unfinished', { keyPath: 'shard' });
  },
];

/**
 * Opens (creating or upgrading as needed) Hearth's IndexedDB database. Works in a page and in a
 * dedicated worker. One connection can be shared by a BlobCache, a ResultOutbox and a
 * CheckpointStore.
 *
 * When a newer version of Hearth in another tab needs to upgrade the schema, this connection
 * closes itself so that the upgrade is not blocked; later calls on it fail with 'store/failed'
 * and the page should reload.
 *
 * @example
 * const db = await openHearthDB();
 * const cache = new BlobCache(db, { budgetBytes: 256 * 2 ** 20 });
 * const outbox = new ResultOutbox(db);
 */
export async function openHearthDB(name: string = HEARTH_DB_NAME): Promise<HearthDB> {
  if (typeof indexedDB === 'undefined') {
    throw new HearthError(
      'store/failed',
      'IndexedDB is not available here (a private window, or a context without storage): Hearth cannot cache blobs or keep results across reloads.',
      { details: { name } },
    );
  }
  try {
    return await openDB<HearthSchema>(name, HEARTH_DB_VERSION, {
      upgrade(db, oldVersion, _newVersion, tx) {
        for (let v = oldVersion; v < HEARTH_DB_VERSION; v++)
          at(MIGRATIONS, v, 'IndexedDB migrations')(db, tx);
      },
      blocking(_current, _blocked, event) {
        // Another tab wants a newer schema (or to delete the database): step aside.
        (event.target as IDBDatabase).close();
      },
    });
  } catch (e) {
    throw toStoreError(`opening the IndexedDB database "${name}"`, e);
  }
}

/**
 * Asks the browser to keep this origin's storage under storage pressure (page only: workers
 * have no `navigator.storage.persist`). Without it, the browser may clear the cache and the
 * outbox of unsent results when the disk fills up. Resolves to whether storage is persistent.
 */
export async function requestPersistentStorage(): Promise<boolean> {
  const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
  if (!storage || typeof storage.persist !== 'function') return false;
  try {
    return (await storage.persisted()) || (await storage.persist());
  } catch {
    return false;
  }
}

/** This site's storage use and quota as the browser reports them (empty where it cannot). */
export async function storageEstimate(): Promise<{ usage?: number; quota?: number }> {
  try {
    const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
    return (await storage?.estimate?.()) ?? {};
  } catch {
    return {};
  }
}

/**
 * Waits for the browser's quota bookkeeping to catch up before a write refused for quota is
 * retried. Chromium updates a site's usage asynchronously (tens of ms) after deletes commit and
 * after it refuses a transaction; a retry before that is refused again, whatever was freed.
 * With `before` (the usage before deletes), polls the reported usage until it drops below it,
 * for at most `maxMs`; otherwise waits a fixed pause.
 */
export async function quotaSettled(before: number | undefined, maxMs = 1000): Promise<void> {
  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  if (before === undefined) return sleep(QUOTA_RETRY_PAUSE_MS);
  for (const end = Date.now() + maxMs; Date.now() < end; ) {
    const { usage } = await storageEstimate();
    if (usage === undefined) return sleep(QUOTA_RETRY_PAUSE_MS);
    if (usage < before) return;
    await sleep(25);
  }
}

const QUOTA_RETRY_PAUSE_MS = 250;

/** True for the browser's "storage quota exceeded" failures. */
export function isQuotaError(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const name = (e as { name?: unknown }).name;
  // Firefox has used its own name for the same condition.
  return name === 'QuotaExceededError' || name === 'NS_ERROR_DOM_QUOTA_REACHED';
}

/** Turns an IndexedDB failure into a HearthError ('store/quota' or 'store/failed'). */
export function toStoreError(what: string, e: unknown, details: Record<string, unknown> = {}): HearthError {
  if (e instanceof HearthError) return e;
  const name = (e as { name?: unknown } | null)?.name;
  const message = (e as { message?: unknown } | null)?.message;
  if (isQuotaError(e)) {
    return new HearthError(
      'store/quota',
      `${what}: the browser's storage quota for this site is used up. Free disk space or clear this site's data, then try again.`,
      { cause: e, details },
    );
  }
  const closed = name === 'InvalidStateError';
  return new HearthError(
    'store/failed',
    closed
      ? `${what}: the database connection is closed (another tab may have upgraded Hearth): reload the page.`
      : `${what}: IndexedDB failed (${String(name ?? 'Error')}: ${String(message ?? e)}).`,
    { cause: e, details },
  );
}

/**
 * Runs `work` inside `tx` and resolves once the transaction has committed. If anything fails,
 * the transaction is aborted and the most telling error is thrown: the transaction's own error
 * (e.g. QuotaExceededError, reported at commit) rather than a request's generic AbortError.
 */
export async function inTransaction<T>(
  // biome-ignore lint/suspicious/noExplicitAny: any store list and mode
  tx: IDBPTransaction<HearthSchema, any, any>,
  work: () => Promise<T>,
): Promise<T> {
  // Attach the handler now: the transaction may abort while `work` awaits something else.
  const done: Promise<unknown> = tx.done.then(
    () => undefined,
    (e: unknown) => e ?? new DOMException('The transaction was aborted.', 'AbortError'),
  );
  let value: T;
  try {
    value = await work();
  } catch (e) {
    try {
      tx.abort();
    } catch {
      // Already finished or aborted.
    }
    const txError = await done;
    const generic = (e as { name?: unknown } | null)?.name === 'AbortError';
    throw generic && txError !== undefined ? txError : e;
  }
  const txError = await done;
  if (txError !== undefined) throw txError;
  return value;
}
