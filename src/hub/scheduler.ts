// The hub's decisions, composed from its parts: leases (leases.ts: which shard goes to whom),
// validation (validation.ts and each kind's rule: when results agree, when errors fail a shard),
// reputation (reputation.ts) and the credit ledger (ledger.ts). Kind-specific work — planning,
// result shapes, what a judged shard does — is the kind's hub module (hub/kinds/).
//
// Every state change is one store transaction, so a crash between two calls leaves the store as
// either before or after a change, never half of one. Leases and results use the store's group
// commit (one synced commit for everything that arrived within a few milliseconds, each change
// still its own savepoint): the sync is what a cycle costs most. A result is acknowledged only
// after its group committed.
import { createHash } from 'node:crypto';
import { HearthError, type HearthErrorCode } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import { randomId } from '../core/ids.ts';
import { creditUnits, formatCredit } from '../protocol/credit.ts';
import type { EmbedAttribution } from '../protocol/embed.ts';
import { flopsPerShard, type Manifest, type ShardWork } from '../protocol/kinds/index.ts';
import { type ShardResult, verifyResultHashes } from '../protocol/shard.ts';
import {
  type CanonicalResult,
  canonicalOf,
  type JobProgress,
  jobProgress,
  jobResult,
  jobResults,
} from './job-views.ts';
import { HUB_KINDS, type HubKinds, hubKindOf } from './kinds/index.ts';
import type { HubKind, PlannedShard } from './kinds/kind.ts';
import { type Capabilities, type LeaseEnd, type LeaseGrant, Leases } from './leases.ts';
import { Ledger } from './ledger.ts';
import { freshVolunteer, judged } from './reputation.ts';
import type {
  CancelOutcome,
  FailureOutcome,
  SchedulerEvent,
  SchedulerOptions,
  SubmitOutcome,
} from './scheduler-types.ts';
import {
  type HubStore,
  type JobRecord,
  type JobStatus,
  jobOf,
  type LeaseRecord,
  type ResultRecord,
  type ShardRecord,
  type TransactionOptions,
  type VolunteerRecord,
} from './store.ts';
import {
  type Candidate,
  DETERMINISTIC_ERRORS,
  type Decision,
  honeypotPasses,
  type ShardError,
} from './validation.ts';

export type { CanonicalResult, JobProgress, ShardFailure } from './job-views.ts';
export type { Capabilities, LeaseEnd, LeaseGrant } from './leases.ts';
export type {
  CancelOutcome,
  FailureOutcome,
  SchedulerEvent,
  SchedulerOptions,
  SubmitOutcome,
} from './scheduler-types.ts';

/** Options of `Scheduler.submit`. */
export interface SubmitOptions {
  /** Name of the researcher token submitting it; leave out for the admin. */
  readonly owner?: string | undefined;
  /**
   * The owner token's credit budget (base units): the job is refused (`budget/exceeded`) when its
   * planned credit is more than what the token's other jobs leave of it. Leave out: no limit.
   */
  readonly budget?: bigint | undefined;
}

/** A researcher token's credit budget: what its jobs hold (running: planned; closed: granted). */
export interface BudgetUse {
  readonly budget?: bigint;
  readonly used: bigint;
  /** Absent without a budget. */
  readonly left?: bigint;
}

/** A failed shard and the error its volunteers reported, as progress shows it. */
/**
 * SHA-256 of a result output. A small one hashes faster inline than through WebCrypto's thread
 * pool (most of a tiny shard's cycle otherwise); a large one stays off the event loop.
 */
const hashOutput = (b: ArrayBuffer): Promise<string> =>
  b.byteLength <= 64 * 1024
    ? Promise.resolve(createHash('sha256').update(new Uint8Array(b)).digest('hex'))
    : sha256Hex(b);

/** A refusal: the volunteer or researcher asked for something the hub will not do. */
const reject = (code: HearthErrorCode, message: string, details: Record<string, unknown>): HearthError =>
  new HearthError(code, message, { details });

/**
 * Leases shards to volunteers, validates their results by their kind's rule and by honeypots,
 * and keeps the credit ledger. Time is always passed in (`now`, ms), so tests and a crash-restart
 * replay see the same decisions.
 *
 * @example
 * const s = new Scheduler(new SqliteStore('hub.db'));
 * const job = s.submit(parseManifest(json), Date.now());
 * const grant = s.lease('vol-1', { maxBufferBytes: 2 ** 30, features: [] }, Date.now());
 * if (grant) await s.submitResult('vol-1', result, Date.now());
 * s.progress(job); // { shards, validated, inFlight, … }
 */
export class Scheduler {
  readonly #store: HubStore;
  readonly #leases: Leases;
  readonly #ledger: Ledger;
  readonly #kinds: HubKinds;
  readonly #errorQuorum: number;
  readonly #blob: ((sha256: string) => ArrayBuffer | undefined) | undefined;
  readonly #writeBlob: ((bytes: Uint8Array) => string) | undefined;
  readonly #observer: ((e: SchedulerEvent) => void) | undefined;
  /** Events of the transaction in progress: told once it returns, dropped when it throws. */
  readonly #events: SchedulerEvent[] = [];
  /** The `now` of the change in progress (for events raised by the parts). */
  #at = 0;

  constructor(store: HubStore, opts: SchedulerOptions = {}) {
    this.#store = store;
    this.#observer = opts.observer;
    this.#leases = new Leases(store, {
      rng: opts.rng ?? Math.random,
      honeypotRate: opts.honeypotRate ?? 0.1,
      spotCheckRate: opts.spotCheckRate ?? 0.2,
      blockBelow: opts.blockBelow ?? -20,
      trust: { streak: opts.trustStreak ?? 20, honeypots: opts.trustHoneypots ?? 3 },
      ...(opts.observer ? { ended: (l: LeaseRecord, why: LeaseEnd) => this.#leaseEnded(l, why) } : {}),
    });
    this.#ledger = new Ledger(store, opts.embedShareBps);
    this.#kinds = opts.kinds ?? HUB_KINDS;
    this.#errorQuorum = opts.errorQuorum ?? 2;
    this.#blob = opts.blob;
    this.#writeBlob = opts.writeBlob;
  }

  /**
   * `fn` in one store transaction, made at `now`; the events it raised reach the observer once it
   * returns (a nested call's wait for the outermost), and are dropped when it throws.
   */
  #run<T>(now: number, fn: () => T, opts?: TransactionOptions): T {
    const mark = this.#events.length;
    const outer = this.#at;
    this.#at = now;
    let out: T;
    try {
      out = this.#store.transaction(fn, opts);
    } catch (e) {
      this.#events.length = mark;
      throw e;
    } finally {
      this.#at = outer;
    }
    if (mark === 0 && this.#events.length > 0) {
      for (const e of this.#events.splice(0)) {
        try {
          this.#observer?.(e);
        } catch {
          // An observer's fault is not the scheduler's: the change stands.
        }
      }
    }
    return out;
  }

  #emit(e: SchedulerEvent): void {
    if (this.#observer) this.#events.push(e);
  }

  #leaseEnded(l: LeaseRecord, why: LeaseEnd): void {
    this.#emit({ type: 'lease-ended', job: l.job, why, at: this.#at });
  }

  /**
   * A shard's credit in base units (what it earns each agreeing volunteer), remembered per job and FLOP count: every result
   * asks, and a job's shards share a few counts. Keyed by the manifest object, which the stores
   * keep (a SqliteStore's evicted job is a new object, and a new entry).
   */
  shardCredit(m: Manifest, work: ShardWork): bigint {
    const flops = flopsPerShard(m, work);
    let byFlops = this.#credits.get(m);
    if (!byFlops) this.#credits.set(m, (byFlops = new Map()));
    let units = byFlops.get(flops);
    if (units === undefined) byFlops.set(flops, (units = creditUnits(flops, m.creditRate)));
    return units;
  }
  readonly #credits = new WeakMap<Manifest, Map<number, bigint>>();

  #kind(m: Manifest): HubKind<Manifest, ShardWork> {
    return hubKindOf(this.#kinds, m.kind);
  }

  /** Plans a parsed manifest into shards and returns the new job's id. */
  submit(manifest: Manifest, now: number, opts: SubmitOptions = {}): string {
    const s = this.#store;
    return this.#run(now, () => {
      // Random: a count would collide between hubs on one database and tell strangers the next id.
      const id = randomId('job-');
      const planned = this.#kind(manifest).plan(manifest);
      const credit = this.#plannedCredit(manifest, planned);
      if (opts.budget !== undefined && opts.owner !== undefined) {
        const { used } = this.budgetUse(opts.owner, opts.budget);
        if (used + credit > opts.budget) {
          throw new HearthError(
            'budget/exceeded',
            `this job may earn its volunteers up to ${formatCredit(credit)} credits (${planned.length} shards at up to ${manifest.maxReplicas} agreeing results each, at creditRate ${manifest.creditRate}); token ${opts.owner} has ${formatCredit(opts.budget - used < 0n ? 0n : opts.budget - used)} of its ${formatCredit(opts.budget)} left. Lower creditRate, maxReplicas or the job's size, or ask the hub's operator for a larger budget.`,
            {
              details: {
                planned: credit.toString(),
                used: used.toString(),
                budget: opts.budget.toString(),
              },
            },
          );
        }
      }
      s.putJob({
        id,
        manifest,
        createdAt: now,
        status: 'running',
        plannedCredit: credit.toString(),
        ...(opts.owner !== undefined ? { owner: opts.owner } : {}),
      });
      this.#addShards(id, manifest, planned, 0);
      return id;
    });
  }

  /** The most a plan's shards may earn: each at maxReplicas agreeing results (a honeypot at one). */
  #plannedCredit(m: Manifest, planned: readonly PlannedShard<ShardWork>[]): bigint {
    let total = 0n;
    for (const p of planned) {
      total += this.shardCredit(m, p.work) * BigInt(p.expected !== undefined ? 1 : m.maxReplicas);
    }
    return total;
  }

  /**
   * What a researcher token's jobs hold of its budget: a running job its planned credit, a closed
   * one (done, failed, cancelled) the credit it actually granted.
   */
  budgetUse(owner: string, budget?: bigint): BudgetUse {
    let used = 0n;
    for (const j of this.#store.listJobs()) {
      if (j.owner !== owner) continue;
      if (j.status === 'running') {
        used += BigInt(j.plannedCredit ?? '0');
        continue;
      }
      for (const e of this.#store.jobLedger(j.id)) if (e.status === 'granted') used += e.credits;
    }
    return budget === undefined ? { used } : { budget, used, left: budget > used ? budget - used : 0n };
  }

  #addShards(
    job: string,
    manifest: Manifest,
    planned: readonly PlannedShard<ShardWork>[],
    from: number,
  ): void {
    // What each shard will earn must fit the ledger: refuse the job now (creditUnits throws past
    // MAX_SHARD_CREDIT_UNITS), not a result later. Shards of a job share a few FLOP counts.
    const checked = new Set<number>();
    for (const p of planned) {
      const flops = flopsPerShard(manifest, p.work);
      if (checked.has(flops)) continue;
      creditUnits(flops, manifest.creditRate);
      checked.add(flops);
    }
    planned.forEach((p, i) => {
      const index = from + i;
      const honeypot = p.expected !== undefined;
      this.#store.putShard({
        id: honeypot ? `${job}/hp${index}` : `${job}/${index}`,
        job,
        index,
        work: p.work,
        status: 'open',
        // A honeypot's answer is known: one result judges it.
        quorum: honeypot ? 1 : manifest.replication,
        wanted: honeypot ? 1 : manifest.replication,
        honeypot,
        ...(p.expected ? { expected: p.expected } : {}),
      });
    });
  }

  /**
   * A shard for this volunteer, or undefined when none fits. Never two replicas of one shard to
   * one volunteer: replicas only mean something from independent devices.
   */
  lease(volunteerId: string, caps: Capabilities, now: number): LeaseGrant | undefined {
    // Grouped: a lease lost with its group (a crash before the commit) is only work to reissue.
    return this.#run(
      now,
      () => {
        const grant = this.#leases.next(volunteerId, caps, now);
        if (grant) this.#emit({ type: 'leased', job: grant.job, shard: grant.shard, at: now });
        return grant;
      },
      { group: true },
    );
  }

  /** Extends a lease the volunteer holds by the job's deadline; throws when it holds none. */
  heartbeat(volunteerId: string, leaseId: string, now: number): LeaseRecord {
    return this.#run(now, () => this.#leases.heartbeat(volunteerId, leaseId, now), { group: true });
  }

  /** Ends every lease past its deadline so that its shard is leased again; returns how many. */
  expire(now: number): number {
    return this.#run(now, () => this.#leases.expire(now), { group: true });
  }

  /** A volunteer left: its leases are reissued at once, not after their deadlines. */
  disconnect(volunteerId: string, now = Date.now()): number {
    return this.#run(now, () => this.#leases.disconnect(volunteerId), { group: true });
  }

  /**
   * Takes a volunteer's result for a shard it holds a lease on — or held until a disconnect or a
   * deadline, while the shard is still open: the work is done, and throwing it away helps nobody.
   * Hashes are checked against the bytes first; then, in one transaction, the result is stored,
   * its credit recorded as pending, and — when enough replicas agree — the canonical result chosen
   * and credit granted. `opts.embed`: the site that embedded the volunteer (a widget's frame)
   * and its payout address, recorded with the result's ledger entry.
   */
  async submitResult(
    volunteerId: string,
    result: ShardResult,
    now: number,
    opts: { readonly embed?: EmbedAttribution | undefined } = {},
  ): Promise<SubmitOutcome> {
    // Hashing is async (WebCrypto), so it runs before the synchronous transaction.
    await verifyResultHashes(result, hashOutput);
    const s = this.#store;
    const outcome = this.#run(now, () => this.#accept(volunteerId, result, now, opts.embed), { group: true });
    // "Accepted" means durable: wait for the group's commit (it rejects if the commit failed).
    await s.settled();
    return outcome;
  }

  /** The shard a volunteer may answer: open, its job running, leased to it now or before. */
  #answerable(
    volunteerId: string,
    shardId: string,
    what: string,
    job?: string,
  ): { shard: ShardRecord; job: JobRecord; lease?: LeaseRecord } {
    const s = this.#store;
    const shard = s.getShard(shardId);
    if (!shard) throw reject('shard/unknown', `${what}: unknown shard ${shardId}.`, { shard: shardId });
    const owner = jobOf(s, shard.job);
    if (owner.status === 'cancelled') {
      throw reject('job/closed', `${what}: job ${shard.job} was cancelled; it takes no more results.`, {
        job: shard.job,
        shard: shard.id,
        reason: 'cancelled',
      });
    }
    const lease = this.#leases.held(volunteerId, shard.id);
    const late =
      !lease &&
      shard.status === 'open' &&
      owner.status === 'running' &&
      shard.released?.includes(volunteerId);
    if (!lease && !late) {
      throw reject(
        'lease/unknown',
        `${what}: volunteer ${volunteerId} holds no lease on shard ${shard.id}.`,
        {
          shard: shard.id,
          volunteer: volunteerId,
        },
      );
    }
    if (job !== undefined && job !== shard.job) {
      throw reject('input/invalid', `${what}.job: shard ${shard.id} belongs to ${shard.job}, not ${job}.`, {
        path: `${what}.job`,
      });
    }
    return { shard, job: owner, ...(lease ? { lease } : {}) };
  }

  #accept(
    volunteerId: string,
    result: ShardResult,
    now: number,
    embed: EmbedAttribution | undefined,
  ): SubmitOutcome {
    const s = this.#store;
    const { shard, job, lease } = this.#answerable(volunteerId, result.shard, 'result', result.job);
    this.#kind(job.manifest).checkOutputs(shard.work, result.outputs);
    if (lease) s.deleteLease(lease.id);
    const rec: ResultRecord = {
      id: `${shard.id}#${volunteerId}`,
      shard: shard.id,
      job: shard.job,
      volunteer: volunteerId,
      receivedAt: now,
      status: 'pending',
      // A copy: the hashes were checked on these bytes, and the caller's buffer may be reused.
      outputs: result.outputs.map((o) => ({ ...o, shape: [...o.shape], data: o.data.slice(0) })),
    };
    if (
      !this.#ledger.pending(
        volunteerId,
        shard.id,
        shard.job,
        this.shardCredit(job.manifest, shard.work),
        embed,
      )
    ) {
      throw reject(
        'result/duplicate',
        `result: volunteer ${volunteerId} already has a result for shard ${shard.id}.`,
        {
          shard: shard.id,
        },
      );
    }
    s.putResult(rec);
    this.#emit({
      type: 'result',
      job: shard.job,
      shard: shard.id,
      ...(lease ? { leasedAt: lease.issuedAt } : {}),
      at: now,
    });
    if (shard.honeypot) {
      const ok = honeypotPasses(rec.outputs, shard.expected ?? [], job.manifest.tolerance, (sha) =>
        this.#blob?.(sha),
      );
      this.#judge(rec, ok, ok ? 1 : 10, true);
      return { status: ok ? 'valid' : 'invalid' };
    }
    return this.#evaluate(shard, job, volunteerId);
  }

  /**
   * A volunteer could not run a shard it was leased. A deterministic error (validation.ts
   * DETERMINISTIC_ERRORS: a compile error, a model onnxruntime refuses) is recorded like a result;
   * once `errorQuorum` distinct volunteers report the same one, the shard fails with it — and the
   * whole job, when the error condemns its kernel or model. Any other error only ends the lease.
   *
   * @example
   * s.reportFailure('vol-1', 'job-1/3', { code: 'wgsl/compile', message: 'line 3, column 9: …' }, Date.now());
   */
  async reportFailure(
    volunteerId: string,
    shardId: string,
    error: ShardError,
    now: number,
  ): Promise<FailureOutcome> {
    const s = this.#store;
    const outcome = this.#run(
      now,
      (): FailureOutcome => {
        const { shard, job, lease } = this.#answerable(volunteerId, shardId, 'shard-failed');
        if (!DETERMINISTIC_ERRORS.has(error.code) || shard.honeypot) {
          // Said of this volunteer's device, not the job: someone else runs it (and this volunteer
          // may get it again later, when it may work).
          if (lease) this.#leases.release(lease, { remember: false, why: 'failed' });
          return { status: 'released' };
        }
        if (lease) {
          s.deleteLease(lease.id);
          this.#leaseEnded(lease, 'failed');
        }
        s.putResult({
          id: `${shard.id}#${volunteerId}`,
          shard: shard.id,
          job: shard.job,
          volunteer: volunteerId,
          receivedAt: now,
          status: 'error',
          outputs: [],
          error,
        });
        this.#evaluate(shard, job, volunteerId);
        const after = jobOf(s, job.id);
        if (after.status === 'failed' && after.error) return { status: 'failed', job: true };
        return s.getShard(shard.id)?.status === 'failed'
          ? { status: 'failed', job: false }
          : { status: 'recorded' };
      },
      { group: true },
    );
    await s.settled();
    return outcome;
  }

  /**
   * Cancels a running job: it stops being leased, its outstanding leases are dropped (a late
   * result is refused with a message saying the job was cancelled), and pending credit of its
   * unvalidated shards becomes void. Granted credit and validated results stay. Cancelling a
   * cancelled job changes nothing; a job that is done or failed cannot be cancelled.
   *
   * @example
   * const { leasesDropped, creditVoided } = s.cancel(job, Date.now());
   */
  cancel(jobId: string, now: number): CancelOutcome {
    const s = this.#store;
    return this.#run(now, () => {
      const job = s.getJob(jobId);
      if (!job) throw reject('job/unknown', `job ${jobId} does not exist.`, { job: jobId });
      const none = { job: jobId, status: 'cancelled' as const, leasesDropped: 0, creditVoided: 0 };
      if (job.status === 'cancelled') return { ...none, already: true };
      if (job.status !== 'running') {
        throw reject(
          'job/closed',
          `job ${jobId} is already ${job.status}: only a running job can be cancelled.`,
          {
            job: jobId,
            status: job.status,
          },
        );
      }
      s.putJob({ ...job, status: 'cancelled', cancelledAt: now });
      const leases = s.leasesOfJob(jobId);
      for (const l of leases) {
        s.deleteLease(l.id);
        this.#leaseEnded(l, 'cancelled');
      }
      const creditVoided = this.#ledger.voidJob(jobId);
      return { ...none, already: false, leasesDropped: leases.length, creditVoided };
    });
  }

  /** Shard counts and progress of one job, with why it failed or what it waits for. */
  progress(jobId: string): JobProgress {
    return jobProgress(this.#store, jobId);
  }

  /** The canonical result of each validated shard of a job, in shard order. */
  results(jobId: string): CanonicalResult[] {
    return jobResults(this.#store, jobId);
  }

  /**
   * The canonical result of one validated shard, by its id or its index in the job (undefined
   * when it is not validated). One look-up, where `results()` reads every shard of the job.
   */
  result(
    jobId: string,
    shard: { readonly id: string } | { readonly index: number },
  ): CanonicalResult | undefined {
    return jobResult(this.#store, jobId, shard);
  }

  /**
   * A volunteer's credit in base units (`CREDIT_UNITS` per credit): pending (awaiting validation)
   * and granted. `formatCredit` shows it to people, `creditToWire` puts it in JSON.
   */
  credits(volunteerId: string): { pending: bigint; granted: bigint } {
    const { pending, granted } = this.#ledger.of(volunteerId);
    return { pending, granted };
  }

  /** How many of a volunteer's results still wait for their shard to be judged. */
  pendingResults(volunteerId: string): number {
    return this.#ledger.pendingResults(volunteerId);
  }

  /** The volunteer's record (reputation, streak), created on first sight. */
  volunteer(volunteerId: string): VolunteerRecord {
    return this.#store.getVolunteer(volunteerId) ?? freshVolunteer(volunteerId);
  }

  #judge(r: ResultRecord, valid: boolean, weight: number, honeypot = false): void {
    const s = this.#store;
    s.setResultStatus(r.id, valid ? 'valid' : 'invalid');
    this.#emit({ type: 'judged', job: r.job, valid, at: this.#at });
    this.#ledger.settle(r.volunteer, r.shard, valid);
    s.putVolunteer(judged(this.#leases.volunteer(r.volunteer), { valid, weight, honeypot }));
  }

  #evaluate(sh: ShardRecord, job: JobRecord, by: string): SubmitOutcome {
    const s = this.#store;
    const results = s.resultsOfShard(sh.id);
    const candidates: Candidate[] = results.map((r) => ({
      id: r.id,
      volunteer: r.volunteer,
      outputs: r.outputs,
      ...(r.error ? { error: r.error } : {}),
    }));
    const m = job.manifest;
    const decision: Decision = this.#kind(m).validate(sh, candidates, {
      quorum: sh.quorum,
      maxReplicas: m.maxReplicas,
      tolerance: m.tolerance,
      wanted: sh.wanted,
      errorQuorum: Math.min(this.#errorQuorum, m.maxReplicas),
    });
    if (decision.kind === 'validated') {
      const agreeing = new Set(decision.agreeing);
      for (const r of results) if (!r.error) this.#judge(r, agreeing.has(r.id), 1);
      this.#finish({ ...sh, status: 'validated', canonical: decision.canonical }, job);
      this.#emit({ type: 'validated', job: sh.job, shard: sh.id, at: this.#at });
      return { status: results.some((r) => r.volunteer === by && agreeing.has(r.id)) ? 'valid' : 'invalid' };
    }
    if (decision.kind === 'failed') {
      // Nobody can be shown right, so nobody is credited or blamed.
      for (const r of results) {
        if (r.error) continue;
        this.#ledger.settle(r.volunteer, r.shard, false);
        this.#emit({ type: 'judged', job: r.job, valid: false, at: this.#at });
      }
      this.#finish({ ...sh, status: 'failed', ...(decision.error ? { error: decision.error } : {}) }, job);
      return { status: 'inconclusive' };
    }
    s.putShard({ ...sh, wanted: decision.wanted });
    return { status: 'pending' };
  }

  #finish(sh: ShardRecord, job: JobRecord): void {
    const s = this.#store;
    s.putShard(sh);
    // Replicas still out are no longer needed; their late results are refused (no lease).
    this.#leases.dropShard(sh.id);
    const kind = this.#kind(job.manifest);
    if (sh.status === 'failed' && sh.error && kind.jobWideErrors.has(sh.error.code)) {
      this.#failJob(job, sh.error);
      return;
    }
    kind.afterJudged?.(job.manifest, sh, {
      shards: () => s.shardsOfJob(job.id),
      canonical: (x) => canonicalOf(s, x)?.outputs,
      addShards: (planned) => {
        const last = s.shardsOfJob(job.id).reduce((n, x) => Math.max(n, x.index), -1);
        this.#addShards(job.id, job.manifest, planned, last + 1);
      },
      blob: (sha) => {
        const b = this.#blob?.(sha);
        return b ? new Uint8Array(b) : undefined;
      },
      writeBlob: (bytes) => {
        if (!this.#writeBlob) {
          throw new HearthError(
            'blob/missing',
            "this scheduler was made without writeBlob: it cannot store a round's θ.",
          );
        }
        return this.#writeBlob(bytes);
      },
    });
    // A count from the index, not a read of every shard: this runs on every validation.
    if (s.hasOpenShards(sh.job)) return;
    const status: JobStatus = s.shardStats(sh.job).failed > 0 ? 'failed' : 'done';
    s.putJob({ ...jobOf(s, sh.job), status });
    this.#closeHoneypots(sh.job);
  }

  /**
   * The job failed as a whole (its kernel does not compile, its model does not load): it stops
   * being leased, leases are dropped and pending credit is voided, as for a cancel; the error is
   * what its researcher sees.
   */
  #failJob(job: JobRecord, error: ShardError): void {
    const s = this.#store;
    s.putJob({ ...jobOf(s, job.id), status: 'failed', error });
    for (const l of s.leasesOfJob(job.id)) {
      s.deleteLease(l.id);
      this.#leaseEnded(l, 'failed');
    }
    this.#ledger.voidJob(job.id);
    this.#closeHoneypots(job.id);
  }

  /** The job is over: its honeypots stop being handed out and drop out of openShards(). */
  #closeHoneypots(job: string): void {
    const s = this.#store;
    for (const hp of s.shardsOfJob(job).filter((x) => x.honeypot && x.status === 'open')) {
      this.#leases.dropShard(hp.id);
      s.putShard({ ...hp, status: 'validated' });
    }
  }
}
