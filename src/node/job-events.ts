// Live job progress for pages and the CLI, over one channel per job: `GET /v1/jobs/:id/events`
// answers `text/event-stream` and writes a `progress` event (the same JSON as `GET /v1/jobs/:id`)
// at once and after every change the hub makes to the job — a result acknowledged or judged, a
// failure reported, leases expired, a cancel — never more often than every `minIntervalMs`.
// When the job is done, failed or cancelled the last event is written and the stream ends.
//
// Server-sent events rather than the volunteers' WebSocket: a researcher's page reads them with
// `fetch` (which can carry the token in `Authorization`, unlike `EventSource`), through any proxy
// that passes HTTP, and a reconnect is a new GET.
import type { ServerResponse } from 'node:http';
import { httpError } from './http.ts';

export interface JobEventsOptions {
  /** Fewest ms between two events of one job (default 200): a burst of results is one event. */
  readonly minIntervalMs?: number;
  /** A comment line this often keeps proxies from closing an idle stream (default 15 s). */
  readonly keepAliveMs?: number;
  /** Open streams across the hub (default 256); one more is refused with 503. */
  readonly maxStreams?: number;
  /** Told of every change, to pass on to the other hubs on the same database (hub-news.ts). */
  readonly relay?: (job?: string) => void;
}

interface Stream {
  readonly res: ServerResponse;
  readonly snapshot: () => { readonly status: string };
}

/**
 * Who watches which job, and when to tell them.
 *
 * @example
 * events.watch(job, res, () => scheduler.progress(job)); // in the route
 * events.changed(job);                                   // wherever the job changes
 */
export class JobEvents {
  readonly #streams = new Map<string, Set<Stream>>();
  readonly #due = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #last = new Map<string, number>();
  readonly #minMs: number;
  readonly #keepAliveMs: number;
  readonly #max: number;
  #open = 0;

  readonly #relay: ((job?: string) => void) | undefined;

  constructor(opts: JobEventsOptions = {}) {
    this.#relay = opts.relay;
    this.#minMs = opts.minIntervalMs ?? 200;
    this.#keepAliveMs = opts.keepAliveMs ?? 15_000;
    this.#max = opts.maxStreams ?? 256;
  }

  /** Streams open now. */
  get open(): number {
    return this.#open;
  }

  /** Answers `res` as an event stream of `job`, starting with its progress now. */
  watch(job: string, res: ServerResponse, snapshot: () => { readonly status: string }): void {
    if (this.#open >= this.#max) {
      throw httpError(
        'http/closing',
        `${this.#open} event streams are open: the limit is ${this.#max}; poll GET /v1/jobs/:id.`,
        {
          status: 503,
        },
      );
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // Proxies that buffer (nginx) would hold the events back.
      'x-accel-buffering': 'no',
    });
    const stream: Stream = { res, snapshot };
    if (!this.#write(stream)) return;
    this.#open++;
    let set = this.#streams.get(job);
    if (!set) this.#streams.set(job, (set = new Set()));
    set.add(stream);
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), this.#keepAliveMs);
    keepAlive.unref();
    res.on('close', () => {
      clearInterval(keepAlive);
      this.#open--;
      set.delete(stream);
      if (set.size === 0 && this.#streams.get(job) === set) this.#streams.delete(job);
    });
  }

  /**
   * The hub changed `job` (every watched job when undefined: a sweep, a failure report whose job
   * the caller does not know): its watchers hear of it within `minIntervalMs`.
   */
  changed(job?: string): void {
    this.heard(job);
    this.#relay?.(job);
  }

  /** Another hub on the same database changed `job` (as `changed`, and not relayed again). */
  heard(job?: string): void {
    if (job === undefined) {
      for (const j of this.#streams.keys()) this.heard(j);
      return;
    }
    if (!this.#streams.has(job) || this.#due.has(job)) return;
    const wait = Math.max(0, (this.#last.get(job) ?? 0) + this.#minMs - Date.now());
    const t = setTimeout(() => {
      this.#due.delete(job);
      this.#last.set(job, Date.now());
      for (const s of this.#streams.get(job) ?? []) this.#write(s);
      if (!this.#streams.has(job)) this.#last.delete(job);
    }, wait);
    t.unref();
    this.#due.set(job, t);
  }

  /** Ends every stream (the hub is closing). */
  close(): void {
    for (const t of this.#due.values()) clearTimeout(t);
    this.#due.clear();
    for (const set of this.#streams.values()) for (const s of set) s.res.end();
  }

  /** Writes one progress event; ends the stream after a final one. False when it ended. */
  #write(s: Stream): boolean {
    let p: { readonly status: string };
    try {
      p = s.snapshot();
    } catch {
      s.res.end();
      return false;
    }
    s.res.write(`event: progress\ndata: ${JSON.stringify(p)}\n\n`);
    if (p.status === 'running') return true;
    s.res.end();
    return false;
  }
}
