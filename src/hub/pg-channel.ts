// A synchronous door to PostgreSQL. The store interface is synchronous (store.ts: a state change
// runs inside `transaction(fn)` with no await, as better-sqlite3's transactions do), and every
// PostgreSQL client for Node is asynchronous. Rather than rewrite the Scheduler, its parts, the
// ledger and the control plane around promises, a worker thread (pg-worker.mjs) owns the
// connections and the main thread blocks on `Atomics.wait` until the worker has the answer.
// A transaction therefore holds the event loop for its round trips, as a SQLite transaction holds
// it for its statements; writes are buffered by the store and sent with the next read or the
// COMMIT, so a change costs about one round trip per read it makes, plus one.
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { deferred } from '../core/deferred.ts';
import { HearthError } from '../core/errors.ts';

/** One statement of a batch: what to run and what to bring back. */
export interface Statement {
  readonly sql: string;
  readonly params?: readonly unknown[];
  /** rows: the rows; count: how many rows it changed; none: nothing (a write). */
  readonly want: 'rows' | 'count' | 'none';
  /** Several statements in one string, no parameters (a migration file): the simple protocol. */
  readonly simple?: boolean;
}

/** A PostgreSQL error as the worker reports it. */
export interface PgFailure {
  readonly message: string;
  readonly code?: string;
  readonly detail?: string;
}

type Reply = { results: unknown[] } | { error: PgFailure };
type AsyncReply =
  | { id: number; ok?: true; results?: unknown[]; error?: PgFailure }
  | { op: 'notify'; channel: string; payload: string };

/** How long the main thread waits for one batch before it gives up (a dead server, a lock held). */
export const PG_CALL_TIMEOUT_MS = 30_000;

/** Whether a PostgreSQL error is a conflict between hubs that a retry of the change would clear. */
export const isConflict = (f: PgFailure): boolean => f.code === '40P01' || f.code === '40001';

/**
 * The worker and its two ways in: `run` blocks until a batch is answered; `request` is a promise
 * (a synced commit, LISTEN), and `onNotify` hears NOTIFY payloads.
 *
 * @example
 * const pg = new PgChannel('postgres://hearth@127.0.0.1:5432/hearth');
 * const [rows] = pg.run([{ sql: 'SELECT 1 AS one', want: 'rows' }]);
 * pg.close();
 */
export class PgChannel {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #flag = new Int32Array(new SharedArrayBuffer(4));
  readonly #url: string;
  /** Requests in flight: how to settle each (a Deferred, so an unawaited failure is not unhandled). */
  readonly #waiting = new Map<number, { resolve(results: unknown[]): void; reject(e: unknown): void }>();
  readonly #listeners = new Set<(channel: string, payload: string) => void>();
  #next = 0;
  #closed = false;

  constructor(url: string, opts: { readonly applicationName?: string } = {}) {
    this.#url = redact(url);
    const { port1, port2 } = new MessageChannel();
    this.#port = port1 as unknown as MessagePort;
    this.#worker = new Worker(new URL('./pg-worker.mjs', import.meta.url), {
      workerData: {
        url,
        port: port2,
        flag: this.#flag.buffer,
        applicationName: opts.applicationName ?? 'hearth-hub',
      },
      transferList: [port2],
    });
    // Only a request in flight keeps the process alive (a hub's server does otherwise).
    this.#worker.unref();
    this.#worker.on('message', (m: AsyncReply) => {
      if ('op' in m) {
        for (const l of this.#listeners) l(m.channel, m.payload);
        return;
      }
      const d = this.#waiting.get(m.id);
      if (!d) return;
      this.#waiting.delete(m.id);
      if (this.#waiting.size === 0) this.#worker.unref();
      if (m.error) d.reject(this.#error(m.error, 'a background request'));
      else d.resolve(m.results ?? []);
    });
    this.#worker.on('error', (e) => {
      for (const d of this.#waiting.values()) d.reject(e);
      this.#waiting.clear();
    });
  }

  /** The server's address without its password, for messages. */
  get url(): string {
    return this.#url;
  }

  /** Runs statements in order on the channel's one connection and returns what each brought. */
  run(stmts: readonly Statement[]): unknown[] {
    if (this.#closed) {
      throw new HearthError('store/failed', 'the PostgreSQL store is closed; open a new one.', {
        details: { url: this.#url },
      });
    }
    Atomics.store(this.#flag, 0, 0);
    (this.#port as unknown as { postMessage(m: unknown): void }).postMessage({ stmts });
    const end = Date.now() + PG_CALL_TIMEOUT_MS;
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) {
        throw new HearthError(
          'store/unavailable',
          `PostgreSQL at ${this.#url} did not answer within ${PG_CALL_TIMEOUT_MS / 1000} s; check that the server is up and that no session holds a lock for long.`,
          { details: { url: this.#url } },
        );
      }
      Atomics.wait(this.#flag, 0, 0, left);
      const got = receiveMessageOnPort(this.#port as never) as { message: Reply } | undefined;
      if (!got) continue;
      const reply = got.message;
      if ('error' in reply) throw this.#error(reply.error, stmts.at(-1)?.sql ?? '');
      return reply.results;
    }
  }

  /**
   * Runs statements in order after every batch before it, like `run`, without waiting: resolves
   * once they ran, rejects with what failed. Batches sent later run after this one.
   */
  post(stmts: readonly Statement[]): Promise<void> {
    const d = deferred<void>();
    this.#enqueue(stmts, { resolve: () => d.resolve(), reject: (e) => d.reject(e) });
    return d.promise;
  }

  /** As `post`, resolving with what each statement brought (as `run` returns it). */
  ask(stmts: readonly Statement[]): Promise<unknown[]> {
    const d = deferred<unknown[]>();
    this.#enqueue(stmts, d);
    return d.promise;
  }

  #enqueue(
    stmts: readonly Statement[],
    d: { resolve(results: unknown[]): void; reject(e: unknown): void },
  ): void {
    if (this.#closed) {
      d.reject(new HearthError('store/failed', 'the PostgreSQL store is closed.'));
      return;
    }
    const id = ++this.#next;
    this.#waiting.set(id, d);
    this.#worker.ref();
    (this.#port as unknown as { postMessage(m: unknown): void }).postMessage({ id, stmts });
  }

  /** A synced commit: resolves once every commit made before it is durable. */
  sync(): Promise<void> {
    return this.#request({ op: 'sync' });
  }

  /** Hears `NOTIFY channel` from every hub on the database (LISTEN on its own connection). */
  listen(channel: string, fn: (payload: string) => void): Promise<void> {
    this.#listeners.add((c, p) => {
      if (c === channel) fn(p);
    });
    return this.#request({ op: 'listen', channel });
  }

  /** NOTIFY, off the main thread's connection: resolves once the server took it. */
  notify(channel: string, payload: string): Promise<void> {
    return this.#request({ op: 'notify', channel, payload });
  }

  /** Ends the connections and the worker. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const d of this.#waiting.values()) {
      d.reject(
        new HearthError('store/failed', 'the PostgreSQL store was closed before a commit was confirmed.'),
      );
    }
    this.#waiting.clear();
    // Terminating ends the worker's sockets; the server rolls back whatever they had open.
    void this.#worker.terminate();
  }

  #request(m: { op: string; channel?: string; payload?: string }): Promise<void> {
    if (this.#closed)
      return Promise.reject(new HearthError('store/failed', 'the PostgreSQL store is closed.'));
    const id = ++this.#next;
    const d = deferred<void>();
    this.#waiting.set(id, { resolve: () => d.resolve(), reject: (e) => d.reject(e) });
    this.#worker.ref();
    this.#worker.postMessage({ ...m, id });
    return d.promise;
  }

  #error(f: PgFailure, what: string): HearthError {
    const conflict = isConflict(f);
    return new HearthError(
      conflict ? 'store/conflict' : 'store/failed',
      conflict
        ? `PostgreSQL at ${this.#url}: ${f.message} (another hub changed the same records at once); try the change again.`
        : `PostgreSQL at ${this.#url}: ${f.message}${f.detail ? ` (${f.detail})` : ''}.`,
      { details: { url: this.#url, ...(f.code ? { sqlstate: f.code } : {}), statement: what.slice(0, 200) } },
    );
  }
}

/** A connection URL without its password. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured PostgreSQL URL';
  }
}
