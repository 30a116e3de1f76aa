// The Scheduler's options and what it answers: its events for observers, and the outcomes of a
// result, a failure report and a cancel.
import type { HubKinds } from './kinds/index.ts';
import type { LeaseEnd } from './leases.ts';

export interface SchedulerOptions {
  /** Uniform in [0, 1); inject a seeded one in tests. */
  readonly rng?: () => number;
  /** Valid results in a row after which a volunteer may get single-replica shards (default 20). */
  readonly trustStreak?: number;
  /** Honeypots passed, over every job, that trust also needs (default 3). */
  readonly trustHoneypots?: number;
  /** Chance that a trusted volunteer's shard is replicated anyway, as a spot-check (default 0.2). */
  readonly spotCheckRate?: number;
  /** Chance that a lease is a honeypot when the job has one this volunteer has not done (default 0.1). */
  readonly honeypotRate?: number;
  /** A volunteer whose reputation falls below this gets no more leases (default -20). */
  readonly blockBelow?: number;
  /** Distinct volunteers reporting the same deterministic error that fail a shard (default 2). */
  readonly errorQuorum?: number;
  /**
   * The embedding site's share of credit earned through its `<hearth-widget>`, in basis points
   * (default 1,000: 10%), fixed on each ledger entry when it is made (ledger.ts).
   */
  readonly embedShareBps?: number;
  /** Bytes of a blob by SHA-256, to compare honeypot answers within tolerance. */
  readonly blob?: (sha256: string) => ArrayBuffer | undefined;
  /**
   * Stores bytes the hub made and returns their SHA-256, durably, synchronously (it runs inside a
   * transaction): a train job's θ and momentum each round. Without it a train round cannot close.
   */
  readonly writeBlob?: (bytes: Uint8Array) => string;
  /** The kinds' hub modules (default: every kind this build knows). */
  readonly kinds?: HubKinds;
  /**
   * Told of each change once its transaction has been applied (never of one that was rolled
   * back), in order: service levels (service-levels.ts) are fed from here. It must be quick and
   * must not call back into the scheduler; what it throws is ignored.
   */
  readonly observer?: (e: SchedulerEvent) => void;
}

/**
 * What the scheduler did, as `SchedulerOptions.observer` hears it; `at` is the `now` the change was
 * made with (ms).
 */
export type SchedulerEvent =
  /** A shard (or a honeypot) was leased. */
  | { readonly type: 'leased'; readonly job: string; readonly shard: string; readonly at: number }
  /**
   * A result was accepted (stored, credit pending or granted); `leasedAt` is when the lease it
   * answers was issued (absent for a result that came after its lease was reissued).
   */
  | {
      readonly type: 'result';
      readonly job: string;
      readonly shard: string;
      readonly leasedAt?: number;
      readonly at: number;
    }
  /** A result was judged: valid (it agrees with the canonical one, or a honeypot's answer) or not. */
  | { readonly type: 'judged'; readonly job: string; readonly valid: boolean; readonly at: number }
  /** A lease ended without a result. */
  | { readonly type: 'lease-ended'; readonly job: string; readonly why: LeaseEnd; readonly at: number }
  /** A shard of the job (never a honeypot) was validated. */
  | { readonly type: 'validated'; readonly job: string; readonly shard: string; readonly at: number };

export type SubmitOutcome =
  /** Stored; waiting for more replicas to agree. Credit is pending. */
  | { readonly status: 'pending' }
  /** This result is (part of) the canonical one; credit granted. */
  | { readonly status: 'valid' }
  /** Outvoted, or a wrong honeypot answer: no credit. */
  | { readonly status: 'invalid' }
  /** Replicas never agreed within maxReplicas: the shard failed, nobody is credited. */
  | { readonly status: 'inconclusive' };

/** What `Scheduler.reportFailure` did with a volunteer's error. */
export type FailureOutcome =
  /** A device-specific error: the lease ended and the shard goes to someone else. */
  | { readonly status: 'released' }
  /** A deterministic error, recorded: more volunteers will try the shard. */
  | { readonly status: 'recorded' }
  /** Enough volunteers reported it: the shard (or, for a broken kernel or model, the job) failed. */
  | { readonly status: 'failed'; readonly job: boolean };

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
