// What one hub tells the others on the same database (PostgreSQL's LISTEN/NOTIFY, through the
// store's `news`), so that no in-memory state of a hub goes stale while another hub changes the
// store. A hub keeps three kinds of such state, and each is handled here or needs nothing:
// - volunteers told `no-work` and waiting for a `work-available` push: a submit, a cancel or an
//   expiry sweep on any hub is "work" news, and every hub pushes to its own idle volunteers;
// - job-event streams (`GET /v1/jobs/:id/events`): a change to a job on any hub is "job" news,
//   and the hubs whose researchers watch that job write a progress event (read from the store);
// - everything else a hub answers from the store itself (jobs, shards, leases, credit: no cache
//   but parsed manifests, which never change).
// Notices are coalesced for `windowMs`: a burst of results on one job is one notice per window.
import type { StoreNews } from '../hub/store-news.ts';

export interface HubNewsHandlers {
  /** Another hub has new work (a job submitted, leases gone back). */
  work(): void;
  /** Another hub changed `job` (every job when undefined). */
  job(job?: string): void;
}

/**
 * Sends this hub's news and hears the others'.
 *
 * @example
 * const news = new HubNews(store.news, { work: () => cp.workAvailable(), job: (j) => events.heard(j) });
 * await news.start();
 * news.work(); // after a submit
 */
export class HubNews {
  readonly #news: StoreNews;
  readonly #on: HubNewsHandlers;
  readonly #windowMs: number;
  readonly #out = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(news: StoreNews, on: HubNewsHandlers, opts: { readonly windowMs?: number } = {}) {
    this.#news = news;
    this.#on = on;
    this.#windowMs = opts.windowMs ?? 50;
  }

  /** Starts hearing the other hubs. */
  start(): Promise<void> {
    return this.#news.subscribe((n) => {
      if (this.#closed) return;
      if (n === 'work') this.#on.work();
      else if (n === 'jobs') this.#on.job();
      else if (n.startsWith('job ')) this.#on.job(n.slice(4));
    });
  }

  work(): void {
    this.#send('work');
  }

  job(job?: string): void {
    this.#send(job === undefined ? 'jobs' : `job ${job}`);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #send(notice: string): void {
    if (this.#closed) return;
    this.#out.add(notice);
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      for (const n of this.#out) this.#news.publish(n);
      this.#out.clear();
    }, this.#windowMs);
    this.#timer.unref();
  }
}
