// The writer thread of a JournaledStore: a worker (sqlite-writer.mjs) with its own connection to
// the hub's SQLite file runs each group commit's writes in one synced transaction, so that the
// statements and the fsync of a commit leave the event loop, which meanwhile serves the next
// messages (the last profile of the hub put ~half its main thread in SQLite). A group is posted
// and its promise resolves once it is on disk: a result is still acknowledged only then
// (DESIGN.md invariant 2). A change that must be durable when it returns (a submit, a cancel)
// blocks on `Atomics.wait` until the worker has committed it and everything posted before it,
// as pg-channel.ts does for PostgreSQL. Groups run in the order they were posted.
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { type Deferred, deferred } from '../core/deferred.ts';
import { HearthError } from '../core/errors.ts';
import { type SqliteStore, WRITE_SQL, type WriteName } from './sqlite-store.ts';

/** One statement of a group: a WRITE_SQL name and its parameters. */
export interface WriteOp {
  readonly sql: WriteName;
  readonly params: readonly unknown[];
  /** Run (in order) when this statement changed no row: an insert that met an existing row. */
  readonly unchanged?: readonly WriteOp[];
}

/** How long a change that must be durable waits for the writer before the store gives up. */
export const WRITER_TIMEOUT_MS = 60_000;

type Reply = { readonly id: number; readonly error?: string };

/** Where a JournaledStore's group commits go: a thread of their own, or the main connection. */
export interface GroupWriter {
  /** Runs `ops` in one synced transaction after every group posted before; resolves once on disk. */
  post(ops: readonly WriteOp[]): Promise<void>;
  /** Runs `ops` and returns once they (and every group posted before) are on disk; throws what failed. */
  run(ops: readonly WriteOp[]): void;
  close(): void;
}

/** The writer without a thread: each group runs on the main connection, on the event loop. */
export class InlineWriter implements GroupWriter {
  readonly #disk: SqliteStore;
  constructor(disk: SqliteStore) {
    this.#disk = disk;
  }
  post(ops: readonly WriteOp[]): Promise<void> {
    try {
      this.#disk.runWrites(ops);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }
  run(ops: readonly WriteOp[]): void {
    this.#disk.runWrites(ops);
  }
  close(): void {}
}

/**
 * The writer thread and its two ways in: `post` (a group commit: a promise) and `run` (blocks).
 *
 * @example
 * const w = new SqliteWriter('hub.db');
 * await w.post([{ sql: 'putVolunteer', params: ['v1', '{"id":"v1"}'] }]);
 * w.close();
 */
export class SqliteWriter implements GroupWriter {
  readonly #worker: Worker;
  /** The synchronous way: `run`'s answers, read with receiveMessageOnPort. */
  readonly #port: MessagePort;
  readonly #flag = new Int32Array(new SharedArrayBuffer(4));
  readonly #waiting = new Map<number, Deferred<void>>();
  #next = 0;
  #closed = false;

  /** `path`: a file whose schema is current (the main thread's SqliteStore migrated it). */
  constructor(path: string) {
    const { port1, port2 } = new MessageChannel();
    this.#port = port1 as unknown as MessagePort;
    this.#worker = new Worker(new URL('./sqlite-writer.mjs', import.meta.url), {
      workerData: { path, sql: WRITE_SQL, port: port2, flag: this.#flag.buffer },
      transferList: [port2],
    });
    // Only a group in flight keeps the process alive.
    this.#worker.unref();
    this.#worker.on('message', (m: Reply) => {
      const d = this.#waiting.get(m.id);
      if (!d) return;
      this.#waiting.delete(m.id);
      if (this.#waiting.size === 0) this.#worker.unref();
      if (m.error !== undefined) d.reject(new Error(m.error));
      else d.resolve();
    });
    this.#worker.on('error', (e) => {
      for (const d of this.#waiting.values()) d.reject(e);
      this.#waiting.clear();
    });
  }

  /** Runs `ops` in one synced transaction after every group posted before; resolves once on disk. */
  post(ops: readonly WriteOp[]): Promise<void> {
    if (this.#closed) return Promise.reject(closed());
    const id = ++this.#next;
    const d = deferred<void>();
    this.#waiting.set(id, d);
    this.#worker.ref();
    this.#send({ id, ops, reply: 'async' });
    return d.promise;
  }

  /**
   * Runs `ops` like `post` and blocks until they (and every group posted before) are on disk;
   * throws what failed. The promises of earlier groups still settle from the event loop.
   */
  run(ops: readonly WriteOp[]): void {
    if (this.#closed) throw closed();
    this.#call({ id: ++this.#next, ops, reply: 'sync' });
  }

  /** Waits for everything posted, closes the worker's connection and lets the thread end. */
  close(): void {
    if (this.#closed) return;
    try {
      this.#call({ id: ++this.#next, close: true, reply: 'sync' });
    } finally {
      this.#closed = true;
      void this.#worker.terminate();
    }
  }

  #send(m: object): void {
    (this.#port as unknown as { postMessage(m: unknown): void }).postMessage(m);
  }

  #call(m: { id: number; reply: 'sync'; ops?: readonly WriteOp[]; close?: true }): void {
    Atomics.store(this.#flag, 0, 0);
    this.#send(m);
    const end = Date.now() + WRITER_TIMEOUT_MS;
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) {
        throw new HearthError(
          'store/failed',
          `The hub's SQLite writer did not answer within ${WRITER_TIMEOUT_MS / 1000} s (another process may hold the file's write lock).`,
        );
      }
      Atomics.wait(this.#flag, 0, 0, left);
      const got = receiveMessageOnPort(this.#port as never) as { message: Reply } | undefined;
      if (!got) continue;
      if (got.message.error !== undefined) throw new Error(got.message.error);
      return;
    }
  }
}

const closed = () => new HearthError('store/failed', "The hub's SQLite writer is closed.");
