// The hub's durable state behind one small interface (DESIGN.md: SQLite by default, a shared SQL
// server later). Records are immutable values: a change is a put of a new record, which lets the
// in-memory store roll a transaction back by undoing its puts.

import { entry } from '../core/at.ts';
import { HearthError } from '../core/errors.ts';
import type { ShardWork } from '../protocol/kinds/index.ts';
import type { ExpectedOutput, Manifest } from '../protocol/manifest.ts';
import type { OutputTensor } from '../protocol/shard.ts';
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
}

/** A researcher token: only the SHA-256 of its secret is kept (see tokens.ts). */
export interface TokenRecord {
  /** Unique; what `hearth token revoke NAME` names. */
  readonly name: string;
  /** SHA-256 of the secret, 64 lowercase hex digits. */
  readonly hash: string;
  readonly createdAt: number;
  readonly revokedAt?: number;
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
    ReportRepository {}

/**
 * HubStore in memory, for unit tests of the scheduler and as the bench's baseline. Indexed by
 * job, shard and volunteer so that a lease costs what it costs on SQLite, not a scan of
 * everything; a transaction keeps an undo log (records are immutable values, so undoing a put
 * is putting the previous value back) and rolls back on throw, a nested one to its savepoint.
 *
 * @example
 * const scheduler = new Scheduler(new MemoryStore());
 */
export class MemoryStore implements HubStore {
  readonly #jobs = new Map<string, JobRecord>();
  readonly #shards = new Map<string, ShardRecord>();
  /** job → its shards by index (sparse only if a store is fed odd indexes). */
  readonly #jobShards = new Map<string, ShardRecord[]>();
  /** job → its honeypots by id: few, and looked for on every lease. */
  readonly #jobHoneypots = new Map<string, Map<string, ShardRecord>>();
  /** job → no open shard below this index: where the search for an available shard starts. */
  readonly #cursor = new Map<string, number>();
  readonly #leases = new Map<string, LeaseRecord>();
  readonly #leasesByShard = new Map<string, Map<string, LeaseRecord>>();
  readonly #leasesByVolunteer = new Map<string, Map<string, LeaseRecord>>();
  readonly #results = new Map<string, ResultRecord>();
  readonly #resultsByShard = new Map<string, Map<string, ResultRecord>>();
  readonly #volunteers = new Map<string, VolunteerRecord>();
  readonly #ledger = new Map<string, LedgerEntry>();
  /**
   * volunteer → its ledger keys: a volunteer's credit is read on every `no-work` (its pending
   * count), which must not walk every volunteer's entries.
   */
  readonly #ledgerOf = new Map<string, Set<string>>();
  readonly #tokens = new Map<string, TokenRecord>();
  /** round → reporter peer → report. */
  readonly #reports = new Map<string, Map<string, AllReduceReportRecord>>();
  /** Inverse of every write of the open transaction, oldest first; undefined outside one. */
  #undo: (() => void)[] | undefined;

  transaction<T>(fn: () => T, _opts?: TransactionOptions): T {
    const outer = this.#undo === undefined;
    const log = this.#undo ?? [];
    this.#undo = log;
    const mark = log.length;
    try {
      return fn();
    } catch (e) {
      while (log.length > mark) log.pop()?.();
      throw e;
    } finally {
      if (outer) this.#undo = undefined;
    }
  }

  settled(): Promise<void> {
    return Promise.resolve();
  }

  /** Records how to undo a write, when inside a transaction. */
  #logUndo(undo: () => void): void {
    this.#undo?.push(undo);
  }

  putJob(j: JobRecord): void {
    const prev = this.#jobs.get(j.id);
    this.#jobs.set(j.id, j);
    this.#logUndo(() => (prev ? this.#jobs.set(j.id, prev) : this.#jobs.delete(j.id)));
  }
  getJob(id: string): JobRecord | undefined {
    return this.#jobs.get(id);
  }
  listJobs(): JobRecord[] {
    // A Map keeps first-insertion order and sort is stable: jobs of one millisecond stay in the
    // order they were submitted (ids are random, so they cannot break the tie).
    return [...this.#jobs.values()].sort(byAge);
  }
  runningJobs(): JobRecord[] {
    return this.listJobs().filter((j) => j.status === 'running');
  }
  putShard(s: ShardRecord): void {
    const prev = this.#shards.get(s.id);
    this.#writeShard(s);
    this.#logUndo(() => (prev ? this.#writeShard(prev) : this.#dropShard(s)));
  }
  #writeShard(s: ShardRecord): void {
    this.#shards.set(s.id, s);
    let list = this.#jobShards.get(s.job);
    if (!list) this.#jobShards.set(s.job, (list = []));
    list[s.index] = s;
    if (s.honeypot) inner(this.#jobHoneypots, s.job).set(s.id, s);
    if (s.status === 'open' && s.index < (this.#cursor.get(s.job) ?? 0)) this.#cursor.set(s.job, s.index);
  }
  #dropShard(s: ShardRecord): void {
    this.#shards.delete(s.id);
    const list = this.#jobShards.get(s.job);
    if (list) delete list[s.index];
    if (s.honeypot) dropInner(this.#jobHoneypots, s.job, s.id);
  }
  getShard(id: string): ShardRecord | undefined {
    return this.#shards.get(id);
  }
  shardsOfJob(job: string): ShardRecord[] {
    return (this.#jobShards.get(job) ?? []).filter((s) => s !== undefined);
  }
  openShards(): ShardRecord[] {
    return this.listJobs().flatMap((j) => this.shardsOfJob(j.id).filter((s) => s.status === 'open'));
  }
  availableShard(job: string, volunteer: string, honeypot: boolean): AvailableShard | undefined {
    if (honeypot) {
      const hps = [...(this.#jobHoneypots.get(job)?.values() ?? [])].sort((a, b) => a.index - b.index);
      for (const s of hps) {
        if (s.status === 'open' && !this.#touched(s.id, volunteer)) {
          return { shard: s, replicas: this.replicasOf(s.id) };
        }
      }
      return undefined;
    }
    const list = this.#jobShards.get(job) ?? [];
    for (let i = this.#advance(job, list); i < list.length; i++) {
      const s = list[i];
      if (s?.status !== 'open' || s.honeypot) continue;
      const replicas = this.replicasOf(s.id);
      if (replicas >= s.wanted) continue;
      if (this.#touched(s.id, volunteer)) continue;
      return { shard: s, replicas };
    }
    return undefined;
  }
  #touched(shard: string, volunteer: string): boolean {
    for (const l of this.#leasesByShard.get(shard)?.values() ?? [])
      if (l.volunteer === volunteer) return true;
    for (const r of this.#resultsByShard.get(shard)?.values() ?? [])
      if (r.volunteer === volunteer) return true;
    return false;
  }
  replicasOf(shard: string): number {
    return (this.#leasesByShard.get(shard)?.size ?? 0) + (this.#resultsByShard.get(shard)?.size ?? 0);
  }
  /** Moves a job's cursor past its judged prefix and returns it: nothing below it is open. */
  #advance(job: string, list: readonly (ShardRecord | undefined)[]): number {
    let start = this.#cursor.get(job) ?? 0;
    for (let s = list[start]; s !== undefined && s.status !== 'open'; s = list[start]) start++;
    this.#cursor.set(job, start);
    return start;
  }
  hasOpenShards(job: string): boolean {
    const list = this.#jobShards.get(job) ?? [];
    for (let i = this.#advance(job, list); i < list.length; i++) {
      const s = list[i];
      if (s && !s.honeypot && s.status === 'open') return true;
    }
    return false;
  }
  shardStats(job: string): ShardStats {
    let shards = 0;
    let validated = 0;
    let failed = 0;
    let inFlight = 0;
    let done = 0;
    for (const s of this.shardsOfJob(job)) {
      if (s.honeypot) continue;
      shards++;
      if (s.status === 'validated') validated++;
      else if (s.status === 'failed') failed++;
      else {
        if ((this.#leasesByShard.get(s.id)?.size ?? 0) > 0) inFlight++;
        if ((this.#resultsByShard.get(s.id)?.size ?? 0) > 0) done++;
      }
    }
    return { shards, validated, failed, inFlight, done };
  }
  putLease(l: LeaseRecord): void {
    const prev = this.#leases.get(l.id);
    if (prev) this.#unlinkLease(prev);
    this.#linkLease(l);
    this.#logUndo(() => {
      this.#unlinkLease(l);
      if (prev) this.#linkLease(prev);
    });
  }
  deleteLease(id: string): void {
    const prev = this.#leases.get(id);
    if (!prev) return;
    this.#unlinkLease(prev);
    this.#logUndo(() => this.#linkLease(prev));
  }
  #linkLease(l: LeaseRecord): void {
    this.#leases.set(l.id, l);
    inner(this.#leasesByShard, l.shard).set(l.id, l);
    inner(this.#leasesByVolunteer, l.volunteer).set(l.id, l);
  }
  #unlinkLease(l: LeaseRecord): void {
    this.#leases.delete(l.id);
    dropInner(this.#leasesByShard, l.shard, l.id);
    dropInner(this.#leasesByVolunteer, l.volunteer, l.id);
  }
  leasesOfShard(shard: string): LeaseRecord[] {
    return [...(this.#leasesByShard.get(shard)?.values() ?? [])].sort(byId);
  }
  leasesOfVolunteer(volunteer: string): LeaseRecord[] {
    return [...(this.#leasesByVolunteer.get(volunteer)?.values() ?? [])].sort(byId);
  }
  leasesOfJob(job: string): LeaseRecord[] {
    return [...this.#leases.values()].filter((l) => l.job === job).sort(byId);
  }
  expiredLeases(now: number): LeaseRecord[] {
    return [...this.#leases.values()]
      .filter((l) => l.deadline < now)
      .sort((a, b) => a.deadline - b.deadline || byId(a, b));
  }
  putResult(r: ResultRecord): void {
    const prev = this.#results.get(r.id);
    this.#writeResult(r);
    this.#logUndo(() => (prev ? this.#writeResult(prev) : this.#dropResult(r)));
  }
  #writeResult(r: ResultRecord): void {
    this.#results.set(r.id, r);
    inner(this.#resultsByShard, r.shard).set(r.id, r);
  }
  #dropResult(r: ResultRecord): void {
    this.#results.delete(r.id);
    dropInner(this.#resultsByShard, r.shard, r.id);
  }
  setResultStatus(id: string, status: ResultStatus): void {
    const r = this.#results.get(id);
    if (r) this.putResult({ ...r, status });
  }
  /**
   * Drops a judged shard's results from memory, outside any transaction and with no undo
   * (JournaledStore, once they are on disk: it reads them from there afterwards).
   */
  forgetResultsOf(shard: string): void {
    for (const id of this.#resultsByShard.get(shard)?.keys() ?? []) this.#results.delete(id);
    this.#resultsByShard.delete(shard);
  }
  resultsOfShard(shard: string): ResultRecord[] {
    return [...(this.#resultsByShard.get(shard)?.values() ?? [])].sort(
      (a, b) => a.receivedAt - b.receivedAt || byId(a, b),
    );
  }
  getVolunteer(id: string): VolunteerRecord | undefined {
    return this.#volunteers.get(id);
  }
  putVolunteer(v: VolunteerRecord): void {
    const prev = this.#volunteers.get(v.id);
    this.#volunteers.set(v.id, v);
    this.#logUndo(() => (prev ? this.#volunteers.set(v.id, prev) : this.#volunteers.delete(v.id)));
  }
  addCredit(e: LedgerEntry): boolean {
    const k = `${e.volunteer}\u0000${e.shard}`;
    if (this.#ledger.has(k)) return false;
    this.#ledger.set(k, e);
    let keys = this.#ledgerOf.get(e.volunteer);
    if (!keys) this.#ledgerOf.set(e.volunteer, (keys = new Set()));
    keys.add(k);
    const added = keys;
    this.#logUndo(() => {
      this.#ledger.delete(k);
      added.delete(k);
    });
    return true;
  }
  setCreditStatus(volunteer: string, shard: string, status: CreditStatus): void {
    const k = `${volunteer}\u0000${shard}`;
    const e = this.#ledger.get(k);
    if (!e) return;
    this.#ledger.set(k, { ...e, status });
    this.#logUndo(() => this.#ledger.set(k, e));
  }
  voidPendingCredit(job: string): number {
    let n = 0;
    for (const e of [...this.#ledger.values()]) {
      if (e.job !== job || e.status !== 'pending') continue;
      this.setCreditStatus(e.volunteer, e.shard, 'void');
      n++;
    }
    return n;
  }
  ledger(volunteer?: string, status?: CreditStatus): LedgerEntry[] {
    const all =
      volunteer === undefined
        ? [...this.#ledger.values()]
        : [...(this.#ledgerOf.get(volunteer) ?? [])].map((k) => entry(this.#ledger, k, 'ledger'));
    return status === undefined ? all : all.filter((e) => e.status === status);
  }
  putToken(t: TokenRecord): void {
    const prev = this.#tokens.get(t.name);
    this.#tokens.set(t.name, t);
    this.#logUndo(() => (prev ? this.#tokens.set(t.name, prev) : this.#tokens.delete(t.name)));
  }
  addToken(t: TokenRecord): boolean {
    if (this.#tokens.has(t.name)) return false;
    this.putToken(t);
    return true;
  }
  getToken(name: string): TokenRecord | undefined {
    return this.#tokens.get(name);
  }
  tokenByHash(hash: string): TokenRecord | undefined {
    for (const t of this.#tokens.values()) if (t.hash === hash) return t;
    return undefined;
  }
  listTokens(): TokenRecord[] {
    return [...this.#tokens.values()].sort(
      (a, b) => a.createdAt - b.createdAt || a.name.localeCompare(b.name),
    );
  }
  putAllReduceReport(r: AllReduceReportRecord): void {
    const m = inner(this.#reports, r.round);
    const prev = m.get(r.reporterPeer);
    m.delete(r.reporterPeer);
    m.set(r.reporterPeer, r);
    this.#logUndo(() =>
      prev
        ? inner(this.#reports, r.round).set(r.reporterPeer, prev)
        : dropInner(this.#reports, r.round, r.reporterPeer),
    );
  }
  allReduceReports(round: string): AllReduceReportRecord[] {
    return [...(this.#reports.get(round)?.values() ?? [])].sort((a, b) => a.receivedAt - b.receivedAt);
  }
  pruneAllReduceReports(before: number): number {
    let n = 0;
    for (const [round, m] of this.#reports) {
      for (const [peer, r] of m) {
        if (r.receivedAt >= before) continue;
        m.delete(peer);
        n++;
        this.#logUndo(() => inner(this.#reports, round).set(peer, r));
      }
      if (m.size === 0) this.#reports.delete(round);
    }
    return n;
  }
  close(): void {}

  // Beyond HubStore: what JournaledStore needs to keep only open work here and the rest on its
  // file. Each runs outside any transaction (or inside `untracked`), with no undo.

  /**
   * Runs fn without recording undo: JournaledStore's loads of records already on its file. A
   * rollback of the transaction around it must not take them back out (memory would then lack
   * part of what it claims to hold); a later put of one of them still undoes to the loaded value.
   */
  untracked<T>(fn: () => T): T {
    const undo = this.#undo;
    this.#undo = undefined;
    try {
      return fn();
    } finally {
      this.#undo = undo;
    }
  }
  /** Whether any shard of the job is held (a job's shards are held all together or not at all). */
  hasShards(job: string): boolean {
    return this.#jobShards.has(job);
  }
  getResult(id: string): ResultRecord | undefined {
    return this.#results.get(id);
  }
  /** Whether any result of the shard is held. */
  hasResults(shard: string): boolean {
    return this.#resultsByShard.has(shard);
  }
  /** The ledger entry of a volunteer for a shard. */
  credit(volunteer: string, shard: string): LedgerEntry | undefined {
    return this.#ledger.get(`${volunteer}\u0000${shard}`);
  }
  /** Drops a job, its shards and their results (not its leases or ledger entries). */
  forgetJob(job: string): void {
    for (const s of this.#jobShards.get(job) ?? []) {
      if (s === undefined) continue;
      this.#shards.delete(s.id);
      this.forgetResultsOf(s.id);
    }
    this.#jobShards.delete(job);
    this.#jobHoneypots.delete(job);
    this.#cursor.delete(job);
    this.#jobs.delete(job);
  }
  forgetVolunteer(id: string): void {
    this.#volunteers.delete(id);
  }
  forgetCredit(volunteer: string, shard: string): void {
    const k = `${volunteer}\u0000${shard}`;
    this.#ledger.delete(k);
    const keys = this.#ledgerOf.get(volunteer);
    keys?.delete(k);
    if (keys?.size === 0) this.#ledgerOf.delete(volunteer);
  }
  /** How many records of each kind are held. */
  stats(): MemoryStats {
    return {
      jobs: this.#jobs.size,
      shards: this.#shards.size,
      leases: this.#leases.size,
      results: this.#results.size,
      volunteers: this.#volunteers.size,
      ledger: this.#ledger.size,
    };
  }
}

/** Records a store holds in memory, by kind (`MemoryStore.stats`, `JournaledStore.memoryStats`). */
export interface MemoryStats {
  readonly jobs: number;
  readonly shards: number;
  readonly leases: number;
  readonly results: number;
  readonly volunteers: number;
  /** Ledger entries. */
  readonly ledger: number;
}

const byAge = (a: JobRecord, b: JobRecord) => a.createdAt - b.createdAt;
// SQLite orders TEXT by bytes; so must the memory store, or the two would list in different orders.
const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function inner<V>(outer: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let m = outer.get(key);
  if (!m) outer.set(key, (m = new Map()));
  return m;
}

function dropInner<V>(outer: Map<string, Map<string, V>>, key: string, id: string): void {
  const m = outer.get(key);
  if (!m) return;
  m.delete(id);
  if (m.size === 0) outer.delete(key);
}
