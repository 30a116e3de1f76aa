// Which shard goes to whom, and when it goes to someone else. Runs inside the Scheduler's
// transactions, over the store's indexed look-ups. The rules:
// - never two replicas of one shard to one volunteer: replicas only mean something from
//   independent devices;
// - oldest running job first, then by shard index; capability-matched;
// - a honeypot with probability `honeypotRate` when the job has one this volunteer has not done;
// - a single-replica shard only for jobs that opt in (`adaptiveReplication`) and volunteers with
//   trust (reputation.ts), spot-checked at `spotCheckRate`;
// - a lease that ends without a result (deadline, disconnect) frees its shard at once, and its
//   volunteer's result is still taken while the shard is open (`released`).
import { HearthError } from '../core/errors.ts';
import { randomId } from '../core/ids.ts';
import type { ControlCapabilities } from '../protocol/control.ts';
import type { Manifest, ShardWork } from '../protocol/kinds/index.ts';
import { HUB_KINDS, hubKindOf } from './kinds/index.ts';
import { blocked, freshVolunteer, type TrustPolicy, trusted } from './reputation.ts';
import {
  type JobRecord,
  type JobRepository,
  jobOf,
  type LeaseRecord,
  type LeaseRepository,
  type ShardQueue,
  type ShardRecord,
  type VolunteerRecord,
  type VolunteerRepository,
} from './store.ts';

/** What leasing reads and writes: jobs, the shard queue, leases and volunteers. */
export type LeaseStore = JobRepository & ShardQueue & LeaseRepository & VolunteerRepository;

/** What a volunteer's device reports on hello (the control plane's ControlCapabilities). */
export type Capabilities = ControlCapabilities;

/** A shard handed to a volunteer. */
export interface LeaseGrant {
  readonly lease: LeaseRecord;
  readonly shard: string;
  readonly job: string;
  readonly work: ShardWork;
}

/** Why a lease ended without a result. */
export type LeaseEnd = 'expired' | 'disconnected' | 'released' | 'failed' | 'dropped' | 'cancelled';

export interface LeasePolicy {
  readonly rng: () => number;
  readonly honeypotRate: number;
  readonly spotCheckRate: number;
  readonly blockBelow: number;
  readonly trust: TrustPolicy;
  /** Told of each lease that ends without a result, and why (the scheduler's events). */
  readonly ended?: (l: LeaseRecord, why: LeaseEnd) => void;
}

/** Volunteers remembered per shard whose lease ended without a result. */
const MAX_RELEASED = 16;

const noLease = (message: string, details: Record<string, unknown>): HearthError =>
  new HearthError('lease/unknown', message, { details });

export class Leases {
  readonly #store: LeaseStore;
  readonly #policy: LeasePolicy;

  constructor(store: LeaseStore, policy: LeasePolicy) {
    this.#store = store;
    this.#policy = policy;
  }

  /** The volunteer's record, created (and stored) on first sight. */
  volunteer(id: string): VolunteerRecord {
    const v = this.#store.getVolunteer(id);
    if (v) return v;
    const fresh = freshVolunteer(id);
    this.#store.putVolunteer(fresh);
    return fresh;
  }

  /** A shard for this volunteer, or undefined when none fits. */
  next(volunteerId: string, caps: Capabilities, now: number): LeaseGrant | undefined {
    const s = this.#store;
    const p = this.#policy;
    const v = this.volunteer(volunteerId);
    if (blocked(v, p.blockBelow)) return undefined;
    const jobs = s.runningJobs().filter((j) => fits(j.manifest, caps));
    for (const j of jobs) {
      // A job's honeypots are its manifest's (auto ones are added to it at submit): a job without
      // any has none to offer, and asking the store would cost a query (a round trip on PostgreSQL).
      if (!j.manifest.honeypots?.length) continue;
      const hp = s.availableShard(j.id, volunteerId, true);
      if (!hp) continue;
      // The draw happens only when a honeypot is there to give, as it always has (seeded runs).
      if (p.rng() < p.honeypotRate) return this.#grant(hp.shard, volunteerId, j, now);
      break;
    }
    for (const j of jobs) {
      const a = s.availableShard(j.id, volunteerId, false);
      if (!a) continue;
      let shard = a.shard;
      if (
        j.manifest.adaptiveReplication &&
        a.replicas === 0 &&
        trusted(v, p.trust) &&
        p.rng() >= p.spotCheckRate &&
        (shard.quorum !== 1 || shard.wanted !== 1)
      ) {
        // Adaptive replication, opted into by the job: a trusted volunteer's shard rests on its
        // result alone (results say so: `replicas: 1`).
        shard = { ...shard, quorum: 1, wanted: 1 };
        s.putShard(shard);
      }
      return this.#grant(shard, volunteerId, j, now);
    }
    return undefined;
  }

  /** Extends a lease the volunteer holds by the job's deadline; throws when it holds none. */
  heartbeat(volunteerId: string, leaseId: string, now: number): LeaseRecord {
    const s = this.#store;
    const l = s.leasesOfVolunteer(volunteerId).find((x) => x.id === leaseId);
    if (!l) throw noLease(`heartbeat: volunteer ${volunteerId} holds no lease ${leaseId}.`, { leaseId });
    const next = { ...l, deadline: now + jobOf(s, l.job).manifest.deadlineMs };
    s.putLease(next);
    return next;
  }

  /** The volunteer's lease on a shard, if it holds one. */
  held(volunteerId: string, shardId: string): LeaseRecord | undefined {
    return this.#store.leasesOfShard(shardId).find((l) => l.volunteer === volunteerId);
  }

  /** Ends leases past their deadline; returns how many. */
  expire(now: number): number {
    const gone = this.#store.expiredLeases(now);
    for (const l of gone) this.release(l, { why: 'expired' });
    return gone.length;
  }

  /** Ends every lease of a volunteer that left; returns how many. */
  disconnect(volunteerId: string): number {
    const gone = this.#store.leasesOfVolunteer(volunteerId);
    for (const l of gone) this.release(l, { why: 'disconnected' });
    return gone.length;
  }

  /**
   * Ends a lease without a result: the shard is leased again at once. Its volunteer is remembered
   * on the shard, so work it finishes offline is still taken while the shard is open.
   */
  release(l: LeaseRecord, opts: { remember?: boolean; why?: LeaseEnd } = {}): void {
    const s = this.#store;
    s.deleteLease(l.id);
    this.#policy.ended?.(l, opts.why ?? 'released');
    const sh = s.getShard(l.shard);
    if (!sh || sh.honeypot || sh.status !== 'open') return;
    let next: ShardRecord = sh;
    // A single-replica grant that never came back loses its trust: the next taker may be anyone.
    if (sh.quorum === 1 && s.replicasOf(sh.id) === 0) {
      const r = jobOf(s, sh.job).manifest.replication;
      if (r !== 1) next = { ...next, quorum: r, wanted: r };
    }
    if (opts.remember !== false && !(sh.released ?? []).includes(l.volunteer)) {
      next = { ...next, released: [...(sh.released ?? []), l.volunteer].slice(-MAX_RELEASED) };
    }
    if (next !== sh) s.putShard(next);
  }

  /** Drops every lease of a shard (judged: replicas still out are no longer needed). */
  dropShard(shardId: string): void {
    for (const l of this.#store.leasesOfShard(shardId)) {
      this.#store.deleteLease(l.id);
      this.#policy.ended?.(l, 'dropped');
    }
  }

  #grant(sh: ShardRecord, volunteerId: string, job: JobRecord, now: number): LeaseGrant {
    const lease: LeaseRecord = {
      // The shard's id (for logs, and leases list by shard) and random bits: a volunteer that
      // gets the same shard again in the same millisecond (after a release) gets a new lease.
      id: randomId(`${sh.id}@`),
      shard: sh.id,
      job: sh.job,
      volunteer: volunteerId,
      issuedAt: now,
      deadline: now + job.manifest.deadlineMs,
    };
    this.#store.putLease(lease);
    return { lease, shard: sh.id, job: sh.job, work: sh.work };
  }
}

function fits(m: Manifest, caps: Capabilities): boolean {
  // No buffers: the volunteer's browser has no WebGPU (it runs ONNX on WebAssembly only).
  if (caps.maxBufferBytes === 0 && hubKindOf(HUB_KINDS, m.kind).needsGpu) return false;
  const r = m.requirements;
  if (!r) return true;
  if (r.minBufferBytes !== undefined && caps.maxBufferBytes < r.minBufferBytes) return false;
  return (r.features ?? []).every((f) => caps.features.includes(f));
}
