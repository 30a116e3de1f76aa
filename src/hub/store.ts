// The hub's durable state behind one small interface (DESIGN.md: SQLite by default, a shared SQL
// server later). Records are immutable values: a change is a put of a new record, which lets the
// in-memory store roll a transaction back by undoing its puts.

import { HearthError } from '../core/errors.ts';
import type { ShardWork } from '../protocol/kinds/index.ts';
import type { ExpectedOutput, Manifest } from '../protocol/manifest.ts';
import type { OutputTensor } from '../protocol/shard.ts';
import type { PeerDirectory } from './peer-directory.ts';
import type { RoundExchange } from './rounds.ts';
import type { StoreNews } from './store-news.ts';
import type { ShardError } from './validation.ts';

/** running: leased out; done / failed: every shard judged; cancelled: stopped by its owner or the admin. */
export type JobStatus = 'running' | 'done' | 'failed' | 'cancelled';
export interface JobRecord {
  readonly id: string;
  readonly manifest: Manifest;
  readonly createdAt: number;
  readonly status: JobStatus;
  /** Name of the researcher token that submitted it; absent when the admin did (admin-only then). */
  readonly owner?: string;
  /** When it was cancelled (ms), for a cancelled job. */
  readonly cancelledAt?: number;
  /** Why a failed job failed, when one error explains it (a kernel that does not compile). */
  readonly error?: ShardError;
  /**
   * The most credit its shards may earn, in base units as a decimal string (a document field:
   * JSON has no bigint): every planned shard at `maxReplicas` agreeing results. What the job holds
   * of its token's budget while it runs.
   */
  readonly plannedCredit?: string;
}

/** open: wants results; validated: has a canonical result; failed: replicas never agreed. */
export type ShardStatus = 'open' | 'validated' | 'failed';
export interface ShardRecord {
  readonly id: string;
  readonly job: string;
  readonly index: number;
  readonly work: ShardWork;
  readonly status: ShardStatus;
  /** Agreeing results needed: the job's replication, or 1 for a trusted volunteer's shard. */
  readonly quorum: number;
  /** Results (pending or judged) plus live leases this shard should have right now. */
  readonly wanted: number;
  /** Honeypots carry their known answer and are never part of a job's output. */
  readonly honeypot: boolean;
  readonly expected?: readonly ExpectedOutput[];
  readonly canonical?: string;
  /** For a failed shard: the error its volunteers reported, when that is why it failed. */
  readonly error?: ShardError;
  /**
   * Volunteers whose lease on this shard ended without a result (a disconnect, a deadline): their
   * result is still taken while the shard is open, since the work is done (at most 16 kept).
   */
  readonly released?: readonly string[];
}

export interface LeaseRecord {
  readonly id: string;
  readonly shard: string;
  readonly job: string;
  readonly volunteer: string;
  readonly issuedAt: number;
  readonly deadline: number;
}

/** pending: waiting for agreement; valid / invalid: judged; error: the volunteer reported an error. */
export type ResultStatus = 'pending' | 'valid' | 'invalid' | 'error';
export interface ResultRecord {
  readonly id: string;
  readonly shard: string;
  readonly job: string;
  readonly volunteer: string;
  readonly receivedAt: number;
  readonly status: ResultStatus;
  /** Empty for an error report. */
  readonly outputs: readonly OutputTensor[];
  /** A deterministic error the volunteer reported instead of outputs (validation.ts). */
  readonly error?: ShardError;
}

export interface VolunteerRecord {
  readonly id: string;
  /** Rises with each valid result, falls harder with each invalid one (see scheduler.ts). */
  readonly reputation: number;
  /** Valid results in a row since the last invalid one: adaptive replication trusts long streaks. */
  readonly streak: number;
  readonly valid: number;
  readonly invalid: number;
  /** Honeypots answered right, over every job (absent: none). Trust needs some (reputation.ts). */
  readonly honeypots?: number;
}

/** pending until the shard validates; then granted (agreeing) or void (outvoted). */
export type CreditStatus = 'pending' | 'granted' | 'void';
export interface LedgerEntry {
  readonly volunteer: string;
  readonly shard: string;
  readonly job: string;
  /** Base units (`CREDIT_UNITS` per credit, src/protocol/credit.ts): an integer, never a float. */
  readonly credits: bigint;
  readonly status: CreditStatus;
  /**
   * The site that embedded the volunteer when it sent this result (a `<hearth-widget>`'s page,
   * an exact origin), as its connection's hello said; absent for the hub's own page and Node
   * volunteers.
   */
  readonly site?: string;
  /** The payout address that site named (`0x` + 40 hex digits); present exactly when `site` is. */
  readonly payout?: string;
  /**
   * The site's share of `credits` in base units, fixed when the entry is made (the hub's
   * `embedShareBps` then), so a later change of the rule never lowers what an address has earned:
   * a voucher is cumulative and must only grow. Present exactly when `payout` is.
   */
  readonly payoutCredits?: bigint;
}

/** A volunteer's Hearth identity bound to an Ethereum address by Sign-In with Ethereum: for good. */
export interface WalletBinding {
  readonly volunteer: string;
  /** EIP-55 checksummed. */
  readonly address: string;
  readonly boundAt: number;
}

/** A researcher token: only the SHA-256 of its secret is kept (see tokens.ts). */
export interface TokenRecord {
  /** Unique; what `hearth token revoke NAME` names. */
  readonly name: string;
  /** SHA-256 of the secret, 64 lowercase hex digits. */
  readonly hash: string;
  readonly createdAt: number;
  readonly revokedAt?: number;
  /**
   * The most credit (base units) this token's jobs may plan to pay, over all its jobs; absent:
   * no limit (what every token made before budgets has).
   */
  readonly budget?: bigint;
}

/** A reported all-reduce contribution and the hub's verdict on it when the report arrived. */
export interface ReportedContributionRecord {
  readonly peer: string;
  readonly volunteer: string;
  readonly sha256: string;
  readonly signature: string;
  /** 'valid' | 'bad-signature' | 'wrong-volunteer' | 'unknown-peer' (protocol/control.ts). */
  readonly verdict: string;
}

/** One member's report of a finished all-reduce round (the control plane's `allreduce-report`). */
export interface AllReduceReportRecord {
  readonly round: string;
  /** The reporting connection's volunteer and peer id; one report per (round, reporterPeer). */
  readonly reporter: string;
  readonly reporterPeer: string;
  readonly receivedAt: number;
  readonly group: readonly string[];
  readonly contributors: readonly string[];
  readonly contributions: readonly ReportedContributionRecord[];
  /** SHA-256 of the mean. */
  readonly mean: string;
  readonly dropped: readonly string[];
}

export interface TransactionOptions {
  /**
   * true: group commit. The change is applied at once, atomically (a savepoint inside the group:
   * a throw undoes it alone), and committed with the other grouped changes of the next few
   * milliseconds in one synced commit. It is durable once `settled()` resolves, so whoever promises
   * durability (a result's "accepted") awaits that first. A process crash before then loses the
   * whole group, never part of a change. Default false: committed and synced before returning.
   */
  readonly group?: boolean;
}

/** A shard that a volunteer may be leased, and how many replicas it has now. */
export interface AvailableShard {
  readonly shard: ShardRecord;
  readonly replicas: number;
}

/** Shard counts of one job (honeypots left out). */
export interface ShardStats {
  readonly shards: number;
  readonly validated: number;
  readonly failed: number;
  /** Open shards with a live lease. */
  readonly inFlight: number;
  /** Open shards with at least one result. */
  readonly done: number;
}

/**
 * Atomic changes. Methods of every repository are synchronous so that a whole state change runs
 * inside `transaction` (better-sqlite3 transactions are synchronous; an await inside one would let
 * another change interleave).
 */
export interface Transactions {
  /**
   * Runs fn atomically: all of its writes or none of them. A nested call is a savepoint: when it
   * throws, its own writes are undone and the outer transaction goes on if the caller catches.
   */
  transaction<T>(fn: () => T, opts?: TransactionOptions): T;
  /** Resolves once every grouped change so far is committed; rejects when that commit failed. */
  settled(): Promise<void>;
  close(): void;
}

/**
 * The job another record names (a shard's, a lease's, one the caller just wrote): the hub never
 * deletes a job while records name it, so a missing one is a broken store, failed as
 * 'job/unknown' naming the job rather than as an `undefined` read further on.
 *
 * @example
 * const deadline = now + jobOf(store, lease.job).manifest.deadlineMs;
 */
export function jobOf(s: Pick<JobRepository, 'getJob'>, id: string): JobRecord {
  const j = s.getJob(id);
  if (!j) {
    throw new HearthError('job/unknown', `job ${id} is not in the store, though a record names it.`, {
      details: { job: id },
    });
  }
  return j;
}

/** Jobs. */
export interface JobRepository {
  putJob(j: JobRecord): void;
  getJob(id: string): JobRecord | undefined;
  /** All jobs, oldest first: by `createdAt`, then in the order they were first put. */
  listJobs(): JobRecord[];
  /** Jobs with status 'running', oldest first (as listJobs): the only ones whose shards are leased. */
  runningJobs(): JobRecord[];
}

/** Shards, and the queue of those that want replicas (the lease path's one question). */
export interface ShardQueue {
  putShard(s: ShardRecord): void;
  getShard(id: string): ShardRecord | undefined;
  /** Shards of a job, by index. */
  shardsOfJob(job: string): ShardRecord[];
  /** Open shards of all jobs, oldest job first, then by index. */
  openShards(): ShardRecord[];
  /**
   * The lowest-index open shard of `job` that `volunteer` has neither leased nor answered, with its
   * replica count (live leases + results). Regular shards (`honeypot` false) only while replicas <
   * `wanted`; honeypots regardless, since each volunteer answers one for itself.
   */
  availableShard(job: string, volunteer: string, honeypot: boolean): AvailableShard | undefined;
  /** Live leases plus stored results of a shard. */
  replicasOf(shard: string): number;
  /** Whether a job has an open shard that is not a honeypot: false once every real shard is judged. */
  hasOpenShards(job: string): boolean;
  /** Counts of a job's shards, honeypots left out. */
  shardStats(job: string): ShardStats;
}

/** Live leases. */
export interface LeaseRepository {
  putLease(l: LeaseRecord): void;
  deleteLease(id: string): void;
  leasesOfShard(shard: string): LeaseRecord[];
  leasesOfVolunteer(volunteer: string): LeaseRecord[];
  leasesOfJob(job: string): LeaseRecord[];
  /** Leases whose deadline is before `now`. */
  expiredLeases(now: number): LeaseRecord[];
}

/** Volunteers' results (and reported errors), with their bytes. */
export interface ResultRepository {
  putResult(r: ResultRecord): void;
  /** Judges a stored result without rewriting its bytes. */
  setResultStatus(id: string, status: ResultStatus): void;
  resultsOfShard(shard: string): ResultRecord[];
}

/** Volunteers' records (reputation, streaks). */
export interface VolunteerRepository {
  getVolunteer(id: string): VolunteerRecord | undefined;
  putVolunteer(v: VolunteerRecord): void;
}

/** The credit ledger, in integer base units. */
export interface LedgerRepository {
  /** Adds a ledger entry; false (and no change) when this volunteer already has one for the shard. */
  addCredit(e: LedgerEntry): boolean;
  setCreditStatus(volunteer: string, shard: string, status: CreditStatus): void;
  /** Every pending entry of a job becomes void; granted ones stay. Returns how many changed. */
  voidPendingCredit(job: string): number;
  /**
   * Entries of one volunteer (every volunteer's when undefined), only those with `status` when
   * given; in no set order. `ledger(v, 'pending')` is what a volunteer's `no-work` reads: a store
   * answers it without reading its whole history.
   */
  ledger(volunteer?: string, status?: CreditStatus): LedgerEntry[];
  /** Entries whose `payout` is `address` (any case), only those with `status` when given; in no set order. */
  payoutLedger(address: string, status?: CreditStatus): LedgerEntry[];
  /** A job's entries (every status); in no set order. */
  jobLedger(job: string): LedgerEntry[];
}

/** Wallet bindings (Sign-In with Ethereum). */
export interface WalletRepository {
  /**
   * Binds a volunteer to an address, atomically; when the volunteer is bound already, changes
   * nothing and returns the binding in force (the caller compares addresses).
   */
  bindWallet(b: WalletBinding): WalletBinding;
  walletOf(volunteer: string): WalletBinding | undefined;
  /** Volunteers bound to `address` (any case). */
  volunteersOfWallet(address: string): string[];
}

/** Researcher tokens (their hashes). */
export interface TokenRepository {
  /** Replaces a token by name (revoking is a put with `revokedAt`). */
  putToken(t: TokenRecord): void;
  /**
   * Adds a token whose name is new, atomically (one statement on a file two processes share);
   * false, changing nothing, when the name is taken.
   */
  addToken(t: TokenRecord): boolean;
  getToken(name: string): TokenRecord | undefined;
  tokenByHash(hash: string): TokenRecord | undefined;
  /** All tokens, oldest first. */
  listTokens(): TokenRecord[];
}

/** All-reduce reports. */
export interface ReportRepository {
  /** Adds a round's report, replacing the same reporter's earlier report of that round. */
  putAllReduceReport(r: AllReduceReportRecord): void;
  /** A round's reports, oldest first. */
  allReduceReports(round: string): AllReduceReportRecord[];
  /** Forgets reports received before `before` (ms since the epoch); returns how many. */
  pruneAllReduceReports(before: number): number;
}

/**
 * Storage for the scheduler: the small repositories above, over one transaction. A part of the
 * hub takes only the repositories it uses (the Ledger a `LedgerRepository`, tokens a
 * `TokenRepository`); every backend implements all of them and passes one contract suite
 * (test/hub/store-contract.ts).
 *
 * @example
 * store.transaction(() => {
 *   store.putResult(result);
 *   store.addCredit({ volunteer, shard, job, credits, status: 'pending' });
 * });
 */
export interface HubStore
  extends Transactions,
    JobRepository,
    ShardQueue,
    LeaseRepository,
    ResultRepository,
    VolunteerRepository,
    LedgerRepository,
    TokenRepository,
    WalletRepository,
    ReportRepository {
  /**
   * Present on a store several hubs share (PostgresStore): how a hub hears of the others' changes
   * that its memory would miss (idle volunteers, job-event streams: src/node/hub-news.ts).
   */
  readonly news?: StoreNews;
  /**
   * Present on a store several hubs share: the peers of every hub (holders, issued peer ids,
   * signalling relayed between hubs: peer-directory.ts). Absent, the swarm is this hub's alone.
   */
  readonly peers?: PeerDirectory;
  /** Present on a store several hubs share: fallback all-reduce rounds across them (rounds.ts). */
  readonly roundExchange?: RoundExchange;
}
