// The hub's service levels over the last hour, kept as the scheduler works (its observer,
// scheduler.ts `SchedulerEvent`) rather than read from the store per request: shard latency
// (lease issued → result accepted) as p50/p95, validated shards per minute, the fraction of leases
// that ended in a valid result, and per job the recent validation rate that gives its ETA.
//
// Small and bounded: fixed rings (typed arrays) of time buckets and of latency samples, and at
// most `maxJobs` jobs (the least recently active one is forgotten first). Recording an event is
// O(1); a snapshot reads the rings (a few thousand numbers). Time comes from the events (`at`) and,
// for "now", from the injected clock, so tests need no timers.
import { at } from '../core/at.ts';
import type { SchedulerEvent } from './scheduler.ts';

export interface ServiceLevelsOptions {
  /** The clock for "now" (ms); default Date.now. */
  readonly now?: () => number;
  /** How far back the figures look (default 1 h). */
  readonly windowMs?: number;
  /** Width of a throughput bucket (default 10 s); the window holds windowMs / bucketMs of them. */
  readonly bucketMs?: number;
  /** Latency samples kept hub-wide (default 4096): past that, percentiles are of the latest ones. */
  readonly latencySamples?: number;
  /** Latency samples kept per job (default 256). */
  readonly jobLatencySamples?: number;
  /** Jobs followed at once (default 128); the least recently active is forgotten first. */
  readonly maxJobs?: number;
  /** How far back a job's validation rate looks for its ETA (default 10 min). */
  readonly recentMs?: number;
}

/** Shard latency percentiles (nearest rank) over the samples in the window. */
export interface LatencyLevels {
  readonly samples: number;
  readonly p50Ms?: number;
  readonly p95Ms?: number;
}

/** Validated shards per bucket, oldest first: bucket i covers [start + i·bucketMs, start + (i+1)·bucketMs). */
export interface ThroughputSeries {
  readonly bucketMs: number;
  readonly start: number;
  readonly validated: readonly number[];
}

export interface HubLevels {
  /** The clock's now when this was taken. */
  readonly at: number;
  readonly windowMs: number;
  readonly latency: LatencyLevels;
  /** Validated shards per minute over the window (or since the hub started, when later). */
  readonly validatedPerMinute: number;
  /** Leases that ended in the window (a result judged, or no result), and how many with a valid result. */
  readonly leases: { readonly ended: number; readonly valid: number; readonly validFraction?: number };
  readonly throughput: ThroughputSeries;
}

export interface JobLevels {
  readonly latency: LatencyLevels;
  /** Validated shards per minute over the last `recentMs` (or since the job's first lease). */
  readonly validatedPerMinute: number;
  /** ms until `remaining` shards are validated at that rate; absent when there is no recent rate. */
  readonly etaMs?: number;
  readonly throughput: ThroughputSeries;
}

/** Counts per time bucket over a window: a ring keyed by bucket number, O(1) per add. */
class BucketRing {
  readonly #keys: Float64Array;
  readonly #vals: Uint32Array;
  readonly #fields: number;

  constructor(
    readonly size: number,
    readonly bucketMs: number,
    fields: number,
  ) {
    this.#keys = new Float64Array(size).fill(-1);
    this.#vals = new Uint32Array(size * fields);
    this.#fields = fields;
  }

  add(at: number, field: number): void {
    const b = Math.floor(at / this.bucketMs);
    const i = b % this.size;
    const k = this.#keys[i] as number; // i < size: in range
    if (k > b) return; // older than what the slot holds now: out of the window
    if (k !== b) {
      this.#keys[i] = b;
      this.#vals.fill(0, i * this.#fields, (i + 1) * this.#fields);
    }
    const j = i * this.#fields + field;
    this.#vals[j] = (this.#vals[j] as number) + 1;
  }

  /** The count of `field` in bucket number `b` (0 when the ring no longer holds it). */
  at(b: number, field: number): number {
    const i = b % this.size;
    return this.#keys[i] === b ? (this.#vals[i * this.#fields + field] as number) : 0;
  }

  /** Sum of `field` over buckets [from, to]. */
  sum(field: number, from: number, to: number): number {
    let n = 0;
    for (let b = Math.max(from, to - this.size + 1); b <= to; b++) n += this.at(b, field);
    return n;
  }
}

/** The latest `size` (time, value) samples, O(1) per push. */
class SampleRing {
  readonly #at: Float64Array;
  readonly #v: Float64Array;
  #head = 0;
  #count = 0;

  constructor(readonly size: number) {
    this.#at = new Float64Array(size);
    this.#v = new Float64Array(size);
  }

  push(at: number, v: number): void {
    this.#at[this.#head] = at;
    this.#v[this.#head] = v;
    this.#head = (this.#head + 1) % this.size;
    this.#count = Math.min(this.#count + 1, this.size);
  }

  /** Values of samples taken after `t`. */
  since(t: number): number[] {
    const out: number[] = [];
    for (let k = 0; k < this.#count; k++) {
      const i = (this.#head - 1 - k + this.size) % this.size;
      if ((this.#at[i] as number) > t) out.push(this.#v[i] as number); // i < count ≤ size
    }
    return out;
  }
}

/** p50 and p95 (nearest rank) of `values`. */
export function percentiles(values: readonly number[]): LatencyLevels {
  if (values.length === 0) return { samples: 0 };
  const v = [...values].sort((a, b) => a - b);
  const rank = (p: number) => at(v, Math.max(0, Math.ceil(p * v.length) - 1), 'latency sample');
  return { samples: v.length, p50Ms: rank(0.5), p95Ms: rank(0.95) };
}

const VALIDATED = 0;
const VALID = 1;
const NOT_VALID = 2;

interface JobTrack {
  /** When the job was first seen (its first lease). */
  readonly first: number;
  readonly latency: SampleRing;
  readonly validated: BucketRing;
}

/**
 * @example
 * const levels = new ServiceLevels();
 * const scheduler = new Scheduler(store, { observer: (e) => levels.record(e) });
 * levels.hub();                                   // p50/p95, validated/min, valid fraction
 * levels.job(id, shards - validated - failed);    // its rate and ETA
 */
export class ServiceLevels {
  readonly #now: () => number;
  readonly #windowMs: number;
  readonly #bucketMs: number;
  readonly #buckets: number;
  readonly #recentMs: number;
  readonly #maxJobs: number;
  readonly #jobSamples: number;
  readonly #since: number;
  readonly #hub: BucketRing;
  readonly #latency: SampleRing;
  /** Insertion order is recency: a job is moved to the end on each event. */
  readonly #jobs = new Map<string, JobTrack>();
  /** The job `#jobs` holds last (its most recently used). */
  #newest: string | undefined;

  constructor(opts: ServiceLevelsOptions = {}) {
    this.#now = opts.now ?? Date.now;
    this.#windowMs = opts.windowMs ?? 3600_000;
    this.#bucketMs = opts.bucketMs ?? 10_000;
    this.#buckets = Math.max(1, Math.ceil(this.#windowMs / this.#bucketMs));
    this.#recentMs = opts.recentMs ?? 600_000;
    this.#maxJobs = opts.maxJobs ?? 128;
    this.#jobSamples = opts.jobLatencySamples ?? 256;
    this.#since = this.#now();
    this.#hub = new BucketRing(this.#buckets, this.#bucketMs, 3);
    this.#latency = new SampleRing(opts.latencySamples ?? 4096);
  }

  /** Jobs followed now (at most `maxJobs`). */
  get jobsFollowed(): number {
    return this.#jobs.size;
  }

  /** The jobs followed, the most recently active first. */
  followed(): string[] {
    return [...this.#jobs.keys()].reverse();
  }

  /** Takes one scheduler event into the figures: O(1). */
  record(e: SchedulerEvent): void {
    switch (e.type) {
      case 'leased':
        this.#track(e.job, e.at);
        return;
      case 'result':
        if (e.leasedAt !== undefined) {
          const ms = Math.max(0, e.at - e.leasedAt);
          this.#latency.push(e.at, ms);
          this.#track(e.job, e.leasedAt).latency.push(e.at, ms);
        }
        return;
      case 'judged':
        this.#hub.add(e.at, e.valid ? VALID : NOT_VALID);
        return;
      case 'lease-ended':
        this.#hub.add(e.at, NOT_VALID);
        return;
      case 'validated':
        this.#hub.add(e.at, VALIDATED);
        this.#track(e.job, e.at).validated.add(e.at, 0);
        return;
    }
  }

  /** The hub's figures over the window, as of now. */
  hub(): HubLevels {
    const now = this.#now();
    const to = this.#bucket(now);
    const from = to - this.#buckets + 1;
    const validated = this.#hub.sum(VALIDATED, from, to);
    const valid = this.#hub.sum(VALID, from, to);
    const ended = valid + this.#hub.sum(NOT_VALID, from, to);
    const span = Math.max(this.#bucketMs, Math.min(this.#windowMs, now - this.#since));
    return {
      at: now,
      windowMs: this.#windowMs,
      latency: percentiles(this.#latency.since(now - this.#windowMs)),
      validatedPerMinute: (validated * 60_000) / span,
      leases: { ended, valid, ...(ended > 0 ? { validFraction: valid / ended } : {}) },
      throughput: this.#series(this.#hub, VALIDATED, Math.max(from, this.#bucket(this.#since)), to),
    };
  }

  /**
   * A job's figures as of now, with its ETA for `remaining` shards when given; undefined when
   * the job had no activity this structure still holds.
   */
  job(id: string, remaining?: number): JobLevels | undefined {
    const t = this.#jobs.get(id);
    if (!t) return undefined;
    const now = this.#now();
    const to = this.#bucket(now);
    const from = to - this.#buckets + 1;
    const recentFrom = this.#bucket(now - this.#recentMs) + 1;
    const recent = t.validated.sum(0, Math.max(recentFrom, this.#bucket(t.first)), to);
    const span = Math.max(this.#bucketMs, Math.min(this.#recentMs, now - t.first));
    const perMs = recent / span;
    return {
      latency: percentiles(t.latency.since(now - this.#windowMs)),
      validatedPerMinute: perMs * 60_000,
      ...(remaining !== undefined && perMs > 0 ? { etaMs: Math.round(remaining / perMs) } : {}),
      throughput: this.#series(t.validated, 0, Math.max(from, this.#bucket(t.first)), to),
    };
  }

  #bucket(t: number): number {
    return Math.floor(t / this.#bucketMs);
  }

  #series(ring: BucketRing, field: number, from: number, to: number): ThroughputSeries {
    const validated: number[] = [];
    for (let b = from; b <= to; b++) validated.push(ring.at(b, field));
    return { bucketMs: this.#bucketMs, start: from * this.#bucketMs, validated };
  }

  #track(job: string, at: number): JobTrack {
    let t = this.#jobs.get(job);
    // Already the most recent (the common case: events of one job in a row): no reordering.
    if (t && job === this.#newest) return t;
    if (t) this.#jobs.delete(job);
    else {
      t = {
        first: at,
        latency: new SampleRing(this.#jobSamples),
        validated: new BucketRing(this.#buckets, this.#bucketMs, 1),
      };
      if (this.#jobs.size >= this.#maxJobs) {
        const oldest = this.#jobs.keys().next().value;
        if (oldest !== undefined) this.#jobs.delete(oldest);
      }
    }
    this.#jobs.set(job, t);
    this.#newest = job;
    return t;
  }
}
