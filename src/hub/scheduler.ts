// The hub's decisions: which shard goes to whom, when a lease is reissued, when results agree,
// who gets credit. Every state change is one store transaction, so a crash between two calls
// leaves the store as either before or after a change, never half of one. Leases and results use
// the store's group commit (one synced commit for everything that arrived within a few
// milliseconds, each change still its own savepoint): the sync is what a cycle costs most. A
// result is acknowledged only after its group committed.
import { createHash } from 'node:crypto';
import { HearthError } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import { shardCredit } from '../protocol/flops.ts';
import type { Manifest } from '../protocol/manifest.ts';
import { type OutputTensor, type ShardResult, verifyResultHashes } from '../protocol/shard.ts';
import { resultsAgree, tensorsAgree } from './agreement.ts';
import { planShards, type ShardWork } from './planner.ts';
import type {
  HubStore,
  JobRecord,
  JobStatus,
  LeaseRecord,
  ResultRecord,
  ShardRecord,
  VolunteerRecord,
} from './store.ts';

/** What a volunteer's device reports on hello. */
export interface Capabilities {
  /** The adapter's maxBufferSize. */
  readonly maxBufferBytes: number;
  readonly features: readonly string[];
}

export interface SchedulerOptions {
  /** Uniform in [0, 1); inject a seeded one in tests. */
  readonly rng?: () => number;
  /** Valid results in a row after which a volunteer may get single-replica shards (default 20). */
  readonly trustStreak?: number;
  /** Chance that a trusted volunteer's shard is replicated anyway, as a spot-check (default 0.2). */
  readonly spotCheckRate?: number;
  /** Chance that a lease is a honeypot when the job has one this volunteer has not done (default 0.1). */
  readonly honeypotRate?: number;
  /** A volunteer whose reputation falls below this gets no more leases (default -20). */
  readonly blockBelow?: number;
  /** Bytes of a blob by SHA-256, to compare honeypot answers within tolerance. */
  readonly blob?: (sha256: string) => ArrayBuffer | undefined;
}

/** A shard handed to a volunteer. */
export interface LeaseGrant {
  readonly lease: LeaseRecord;
  readonly shard: string;
  readonly job: string;
  readonly work: ShardWork;
}

export type SubmitOutcome =
  /** Stored; waiting for more replicas to agree. Credit is pending. */
  | { readonly status: 'pending' }
  /** This result is (part of) the canonical one; credit granted. */
  | { readonly status: 'valid' }
  /** Outvoted, or a wrong honeypot answer: no credit. */
  | { readonly status: 'invalid' }
  /** Replicas never agreed within maxReplicas: the shard failed, nobody is credited. */
  | { readonly status: 'inconclusive' };

/** What `Scheduler.cancel` did. */
export interface CancelOutcome {
  readonly job: string;
  readonly status: 'cancelled';
  /** True when the job was cancelled before this call: nothing changed. */
  readonly already: boolean;
  /** Outstanding leases dropped (their late results are refused). */
  readonly leasesDropped: number;
  /** Ledger entries of unvalidated shards turned from pending to void. */
  readonly creditVoided: number;
}

/** Options of `Scheduler.submit`. */
export interface SubmitOptions {
  /** Name of the researcher token submitting it; leave out for the admin. */
  readonly owner?: string | undefined;
}

export interface JobProgress {
  readonly job: string;
  readonly status: JobStatus;
  readonly shards: number;
  readonly validated: number;
  readonly failed: number;
  /** Shards with a live lease right now. */
  readonly inFlight: number;
  /** Shards with at least one result still waiting for agreement. */
  readonly done: number;
  /** validated / shards, in [0, 1]. */
  readonly progress: number;
}

/**
 * SHA-256 of a result output. A small one hashes faster inline than through WebCrypto's thread
 * pool (most of a tiny shard's cycle otherwise); a large one stays off the event loop.
 */
const hashOutput = (b: ArrayBuffer): Promise<string> =>
  b.byteLength <= 64 * 1024
    ? Promise.resolve(createHash('sha256').update(new Uint8Array(b)).digest('hex'))
    : sha256Hex(b);

const reject = (message: string, details: Record<string, unknown>): HearthError =>
  new HearthError('input/invalid', message, { details });

/**
 * Leases shards to volunteers, validates their results by replication and honeypots, and keeps
 * the credit ledger. Time is always passed in (`now`, ms), so tests and a crash-restart replay
 * see the same decisions.
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
  readonly #rng: () => number;
  readonly #trustStreak: number;
  readonly #spotCheckRate: number;
  readonly #honeypotRate: number;
  readonly #blockBelow: number;
  readonly #blob: ((sha256: string) => ArrayBuffer | undefined) | undefined;

  constructor(store: HubStore, opts: SchedulerOptions = {}) {
    this.#store = store;
    this.#rng = opts.rng ?? Math.random;
    this.#trustStreak = opts.trustStreak ?? 20;
    this.#spotCheckRate = opts.spotCheckRate ?? 0.2;
    this.#honeypotRate = opts.honeypotRate ?? 0.1;
    this.#blockBelow = opts.blockBelow ?? -20;
    this.#blob = opts.blob;
  }

  /** Plans a parsed manifest into shards and returns the new job's id. */
  submit(manifest: Manifest, now: number, opts: SubmitOptions = {}): string {
    const s = this.#store;
    return s.transaction(() => {
      const id = `job-${now.toString(36)}-${s.jobCount()}`;
      s.putJob({
        id,
        manifest,
        createdAt: now,
        status: 'running',
        ...(opts.owner !== undefined ? { owner: opts.owner } : {}),
      });
      planShards(manifest).forEach((p, index) => {
        const honeypot = p.expected !== undefined;
        s.putShard({
          id: honeypot ? `${id}/hp${index}` : `${id}/${index}`,
          job: id,
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
      return id;
    });
  }

  /**
   * A shard for this volunteer, or undefined when none fits. Never two replicas of one shard to
   * one volunteer: replicas only mean something from independent devices.
   */
  lease(volunteerId: string, caps: Capabilities, now: number): LeaseGrant | undefined {
    const s = this.#store;
    // Grouped: a lease lost with its group (a crash before the commit) is only work to reissue.
    return s.transaction(
      () => {
        const v = this.#volunteer(volunteerId);
        if (v.reputation < this.#blockBelow) return undefined;
        // Oldest running job first, then by shard index; each look-up is one indexed query.
        const jobs = s.runningJobs().filter((j) => this.#fits(j.manifest, caps));
        for (const j of jobs) {
          const hp = s.availableShard(j.id, volunteerId, true);
          if (!hp) continue;
          // The draw happens only when a honeypot is there to give, as it always has (seeded runs).
          if (this.#rng() < this.#honeypotRate) return this.#grant(hp.shard, volunteerId, j, now);
          break;
        }
        for (const j of jobs) {
          const a = s.availableShard(j.id, volunteerId, false);
          if (!a) continue;
          let shard = a.shard;
          if (a.replicas === 0 && v.streak >= this.#trustStreak && this.#rng() >= this.#spotCheckRate) {
            // Adaptive replication: a long valid streak earns a single-replica shard (a write only
            // when that changes something: a replication-1 job's shards are single already).
            if (shard.quorum !== 1 || shard.wanted !== 1) {
              shard = { ...shard, quorum: 1, wanted: 1 };
              s.putShard(shard);
            }
          }
          return this.#grant(shard, volunteerId, j, now);
        }
        return undefined;
      },
      { group: true },
    );
  }

  /** Extends a lease the volunteer holds by the job's deadline; throws when it holds none. */
  heartbeat(volunteerId: string, leaseId: string, now: number): LeaseRecord {
    const s = this.#store;
    return s.transaction(
      () => {
        const l = s.leasesOfVolunteer(volunteerId).find((x) => x.id === leaseId);
        if (!l) throw reject(`heartbeat: volunteer ${volunteerId} holds no lease ${leaseId}.`, { leaseId });
        const next = { ...l, deadline: now + s.getJob(l.job)!.manifest.deadlineMs };
        s.putLease(next);
        return next;
      },
      { group: true },
    );
  }

  /** Ends every lease past its deadline so that its shard is leased again; returns how many. */
  expire(now: number): number {
    const s = this.#store;
    return s.transaction(
      () => {
        const gone = s.expiredLeases(now);
        for (const l of gone) this.#release(l);
        return gone.length;
      },
      { group: true },
    );
  }

  /** A volunteer left: its leases are reissued at once, not after their deadlines. */
  disconnect(volunteerId: string): number {
    const s = this.#store;
    return s.transaction(
      () => {
        const gone = s.leasesOfVolunteer(volunteerId);
        for (const l of gone) this.#release(l);
        return gone.length;
      },
      { group: true },
    );
  }

  /**
   * Takes a volunteer's result for a shard it holds a lease on. Hashes are checked against the
   * bytes first; then, in one transaction, the result is stored, its credit recorded as pending,
   * and — when enough replicas agree — the canonical result chosen and credit granted.
   */
  async submitResult(volunteerId: string, result: ShardResult, now: number): Promise<SubmitOutcome> {
    // Hashing is async (WebCrypto), so it runs before the synchronous transaction.
    await verifyResultHashes(result, hashOutput);
    const s = this.#store;
    const outcome = s.transaction(() => this.#accept(volunteerId, result, now), { group: true });
    // "Accepted" means durable: wait for the group's commit (it rejects if the commit failed).
    await s.settled();
    return outcome;
  }

  #accept(volunteerId: string, result: ShardResult, now: number): SubmitOutcome {
    const s = this.#store;
    {
      const shard = s.getShard(result.shard);
      if (!shard) throw reject(`result: unknown shard ${result.shard}.`, { shard: result.shard });
      const owner = s.getJob(shard.job);
      if (owner?.status === 'cancelled') {
        throw reject(`result: job ${shard.job} was cancelled; it takes no more results.`, {
          job: shard.job,
          shard: shard.id,
          reason: 'cancelled',
        });
      }
      const lease = s.leasesOfShard(shard.id).find((l) => l.volunteer === volunteerId);
      if (!lease) {
        throw reject(`result: volunteer ${volunteerId} holds no lease on shard ${shard.id}.`, {
          shard: shard.id,
          volunteer: volunteerId,
        });
      }
      if (result.job !== shard.job) {
        throw reject(`result.job: shard ${shard.id} belongs to ${shard.job}, not ${result.job}.`, {
          path: 'result.job',
        });
      }
      const job = s.getJob(shard.job)!;
      this.#checkOutputs(shard, result.outputs);
      s.deleteLease(lease.id);
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
      s.putResult(rec);
      const credits = shardCredit(job.manifest, shard.work);
      if (
        !s.addCredit({ volunteer: volunteerId, shard: shard.id, job: shard.job, credits, status: 'pending' })
      ) {
        throw reject(`result: volunteer ${volunteerId} already has a result for shard ${shard.id}.`, {
          shard: shard.id,
        });
      }
      if (shard.honeypot) {
        const ok = this.#honeypotPasses(shard, rec.outputs, job.manifest);
        this.#judge(rec, ok, ok ? 1 : 10);
        return { status: ok ? 'valid' : 'invalid' };
      }
      return this.#evaluate(shard, job, volunteerId);
    }
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
    return s.transaction(() => {
      const job = s.getJob(jobId);
      if (!job) throw reject(`job ${jobId} does not exist.`, { job: jobId });
      const none = { job: jobId, status: 'cancelled' as const, leasesDropped: 0, creditVoided: 0 };
      if (job.status === 'cancelled') return { ...none, already: true };
      if (job.status !== 'running') {
        throw reject(`job ${jobId} is already ${job.status}: only a running job can be cancelled.`, {
          job: jobId,
          status: job.status,
        });
      }
      s.putJob({ ...job, status: 'cancelled', cancelledAt: now });
      const leases = s.leasesOfJob(jobId);
      for (const l of leases) s.deleteLease(l.id);
      const creditVoided = s.voidPendingCredit(jobId);
      return { ...none, already: false, leasesDropped: leases.length, creditVoided };
    });
  }

  /** Shard counts and progress of one job. */
  progress(jobId: string): JobProgress {
    const s = this.#store;
    const job = s.getJob(jobId);
    if (!job) throw reject(`job ${jobId} does not exist.`, { job: jobId });
    const { shards, validated, failed, inFlight, done } = s.shardStats(jobId);
    return {
      job: jobId,
      status: job.status,
      shards,
      validated,
      failed,
      inFlight,
      done,
      progress: shards === 0 ? 1 : validated / shards,
    };
  }

  /** The canonical result of each validated shard of a job, in shard order. */
  results(jobId: string): { shard: string; index: number; outputs: readonly OutputTensor[] }[] {
    const s = this.#store;
    return s
      .shardsOfJob(jobId)
      .filter((sh) => !sh.honeypot && sh.status === 'validated')
      .map((sh) => {
        const r = s.resultsOfShard(sh.id).find((x) => x.id === sh.canonical)!;
        return { shard: sh.id, index: sh.index, outputs: r.outputs };
      });
  }

  /**
   * The canonical result of one validated shard, by its id or its index in the job (undefined
   * when it is not validated). One look-up, where `results()` reads every shard of the job.
   */
  result(
    jobId: string,
    shard: { readonly id: string } | { readonly index: number },
  ): { shard: string; index: number; outputs: readonly OutputTensor[] } | undefined {
    const s = this.#store;
    // Regular shards are named `${job}/${index}` at submit.
    const sh = s.getShard('id' in shard ? shard.id : `${jobId}/${shard.index}`);
    if (!sh || sh.job !== jobId || sh.honeypot || sh.status !== 'validated') return undefined;
    const r = s.resultsOfShard(sh.id).find((x) => x.id === sh.canonical);
    return r ? { shard: sh.id, index: sh.index, outputs: r.outputs } : undefined;
  }

  /** A volunteer's credit: pending (awaiting validation) and granted. */
  credits(volunteerId: string): { pending: number; granted: number } {
    let pending = 0;
    let granted = 0;
    for (const e of this.#store.ledger(volunteerId)) {
      if (e.status === 'pending') pending += e.credits;
      else if (e.status === 'granted') granted += e.credits;
    }
    return { pending, granted };
  }

  /** The volunteer's record (reputation, streak), created on first sight. */
  volunteer(volunteerId: string): VolunteerRecord {
    return this.#store.getVolunteer(volunteerId) ?? this.#fresh(volunteerId);
  }

  #fresh(id: string): VolunteerRecord {
    return { id, reputation: 0, streak: 0, valid: 0, invalid: 0 };
  }

  #volunteer(id: string): VolunteerRecord {
    const v = this.#store.getVolunteer(id);
    if (v) return v;
    const fresh = this.#fresh(id);
    this.#store.putVolunteer(fresh);
    return fresh;
  }

  #fits(m: Manifest, caps: Capabilities): boolean {
    const r = m.requirements;
    if (!r) return true;
    if (r.minBufferBytes !== undefined && caps.maxBufferBytes < r.minBufferBytes) return false;
    return (r.features ?? []).every((f) => caps.features.includes(f));
  }

  #grant(sh: ShardRecord, volunteerId: string, job: JobRecord, now: number): LeaseGrant {
    const lease: LeaseRecord = {
      id: `${sh.id}@${volunteerId}@${now}`,
      shard: sh.id,
      job: sh.job,
      volunteer: volunteerId,
      issuedAt: now,
      deadline: now + job.manifest.deadlineMs,
    };
    this.#store.putLease(lease);
    return { lease, shard: sh.id, job: sh.job, work: sh.work };
  }

  #release(l: LeaseRecord): void {
    const s = this.#store;
    s.deleteLease(l.id);
    const sh = s.getShard(l.shard);
    if (!sh || sh.honeypot || sh.status !== 'open') return;
    // A single-replica grant that never came back loses its trust: the next taker may be anyone.
    if (sh.quorum === 1 && s.replicasOf(sh.id) === 0) {
      const r = s.getJob(sh.job)!.manifest.replication;
      if (r !== 1) s.putShard({ ...sh, quorum: r, wanted: r });
    }
  }

  #checkOutputs(sh: ShardRecord, outputs: readonly OutputTensor[]): void {
    if (sh.work.kind !== 'wgsl') return;
    for (const b of sh.work.spec.bindings) {
      if (b.role !== 'output') continue;
      const o = outputs.find((x) => x.name === b.name);
      if (!o || o.dtype !== b.dtype || o.shape.join(',') !== b.shape.join(',')) {
        throw reject(`result.outputs: expected output "${b.name}" as ${b.dtype}[${b.shape.join(', ')}].`, {
          path: 'result.outputs',
          output: b.name,
        });
      }
    }
  }

  #honeypotPasses(sh: ShardRecord, outputs: readonly OutputTensor[], m: Manifest): boolean {
    for (const e of sh.expected ?? []) {
      const o = outputs.find((x) => x.name === e.name);
      if (!o) return false;
      const bytes = m.tolerance === 'exact' ? undefined : this.#blob?.(e.sha256);
      // Without the expected bytes only a bit-exact comparison is possible.
      const tol = bytes ? m.tolerance : 'exact';
      if (!tensorsAgree(o, { ...e, data: bytes ?? new ArrayBuffer(0) }, tol)) return false;
    }
    return true;
  }

  #judge(r: ResultRecord, valid: boolean, weight: number): void {
    const s = this.#store;
    s.setResultStatus(r.id, valid ? 'valid' : 'invalid');
    s.setCreditStatus(r.volunteer, r.shard, valid ? 'granted' : 'void');
    const v = this.#volunteer(r.volunteer);
    s.putVolunteer(
      valid
        ? { ...v, reputation: v.reputation + weight, streak: v.streak + 1, valid: v.valid + 1 }
        : { ...v, reputation: v.reputation - 5 * weight, streak: 0, invalid: v.invalid + 1 },
    );
  }

  #evaluate(sh: ShardRecord, job: JobRecord, by: string): SubmitOutcome {
    const s = this.#store;
    const tol = job.manifest.tolerance;
    const results = s.resultsOfShard(sh.id);
    let best: ResultRecord[] = [];
    let canonical: ResultRecord | undefined;
    for (const r of results) {
      const group = results.filter((x) => resultsAgree(r.outputs, x.outputs, tol));
      if (group.length > best.length) {
        best = group;
        canonical = r;
      }
    }
    if (canonical && best.length >= sh.quorum) {
      for (const r of results) this.#judge(r, best.includes(r), 1);
      this.#finish({ ...sh, status: 'validated', canonical: canonical.id });
      return { status: best.some((r) => r.volunteer === by) ? 'valid' : 'invalid' };
    }
    const need = sh.quorum - best.length;
    if (results.length + need > job.manifest.maxReplicas) {
      // Inconclusive: nobody can be shown right, so nobody is credited or blamed.
      for (const r of results) s.setCreditStatus(r.volunteer, r.shard, 'void');
      this.#finish({ ...sh, status: 'failed' });
      return { status: 'inconclusive' };
    }
    s.putShard({ ...sh, wanted: Math.max(sh.wanted, results.length + need) });
    return { status: 'pending' };
  }

  #finish(sh: ShardRecord): void {
    const s = this.#store;
    s.putShard(sh);
    // Replicas still out are no longer needed; their late results are refused (no lease).
    for (const l of s.leasesOfShard(sh.id)) s.deleteLease(l.id);
    // A count from the index, not a read of every shard: this runs on every validation.
    if (s.hasOpenShards(sh.job)) return;
    const job = s.getJob(sh.job)!;
    const status: JobStatus = s.shardStats(sh.job).failed > 0 ? 'failed' : 'done';
    s.putJob({ ...job, status });
    // The job is over: its honeypots stop being handed out and drop out of openShards().
    for (const hp of s.shardsOfJob(sh.job).filter((x) => x.honeypot && x.status === 'open')) {
      for (const l of s.leasesOfShard(hp.id)) s.deleteLease(l.id);
      s.putShard({ ...hp, status: 'validated' });
    }
  }
}
