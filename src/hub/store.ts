// The hub's durable state behind one small interface (DESIGN.md: SQLite by default, a shared SQL
// server later). Records are immutable values: a change is a put of a new record, which lets the
// in-memory store roll a transaction back by restoring its maps.
import type { ExpectedOutput, Manifest } from '../protocol/manifest.ts';
import type { OutputTensor } from '../protocol/shard.ts';
import type { ShardWork } from './planner.ts';

export type JobStatus = 'running' | 'done' | 'failed';
export interface JobRecord {
  readonly id: string;
  readonly manifest: Manifest;
  readonly createdAt: number;
  readonly status: JobStatus;
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
}

export interface LeaseRecord {
  readonly id: string;
  readonly shard: string;
  readonly job: string;
  readonly volunteer: string;
  readonly issuedAt: number;
  readonly deadline: number;
}

export type ResultStatus = 'pending' | 'valid' | 'invalid';
export interface ResultRecord {
  readonly id: string;
  readonly shard: string;
  readonly job: string;
  readonly volunteer: string;
  readonly receivedAt: number;
  readonly status: ResultStatus;
  readonly outputs: readonly OutputTensor[];
}

export interface VolunteerRecord {
  readonly id: string;
  /** Rises with each valid result, falls harder with each invalid one (see scheduler.ts). */
  readonly reputation: number;
  /** Valid results in a row since the last invalid one: adaptive replication trusts long streaks. */
  readonly streak: number;
  readonly valid: number;
  readonly invalid: number;
}

/** pending until the shard validates; then granted (agreeing) or void (outvoted). */
export type CreditStatus = 'pending' | 'granted' | 'void';
export interface LedgerEntry {
  readonly volunteer: string;
  readonly shard: string;
  readonly job: string;
  readonly credits: number;
  readonly status: CreditStatus;
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

/**
 * Storage for the scheduler. Methods are synchronous so that a whole state change runs inside
 * `transaction` (better-sqlite3 transactions are synchronous; an await inside one would let
 * another change interleave).
 *
 * @example
 * store.transaction(() => {
 *   store.putResult(result);
 *   store.addCredit({ volunteer, shard, job, credits, status: 'pending' });
 * });
 */
export interface HubStore {
  /** Runs fn atomically: all of its writes or none of them. Nested calls join the outer one. */
  transaction<T>(fn: () => T): T;
  putJob(j: JobRecord): void;
  getJob(id: string): JobRecord | undefined;
  listJobs(): JobRecord[];
  putShard(s: ShardRecord): void;
  getShard(id: string): ShardRecord | undefined;
  /** Shards of a job, by index. */
  shardsOfJob(job: string): ShardRecord[];
  /** Open shards of all jobs, oldest job first, then by index. */
  openShards(): ShardRecord[];
  putLease(l: LeaseRecord): void;
  deleteLease(id: string): void;
  leasesOfShard(shard: string): LeaseRecord[];
  leasesOfVolunteer(volunteer: string): LeaseRecord[];
  /** Leases whose deadline is before `now`. */
  expiredLeases(now: number): LeaseRecord[];
  putResult(r: ResultRecord): void;
  resultsOfShard(shard: string): ResultRecord[];
  getVolunteer(id: string): VolunteerRecord | undefined;
  putVolunteer(v: VolunteerRecord): void;
  /** Adds a ledger entry; false (and no change) when this volunteer already has one for the shard. */
  addCredit(e: LedgerEntry): boolean;
  setCreditStatus(volunteer: string, shard: string, status: CreditStatus): void;
  ledger(volunteer?: string): LedgerEntry[];
  /** Adds or replaces a token by name (revoking is a put with `revokedAt`). */
  putToken(t: TokenRecord): void;
  getToken(name: string): TokenRecord | undefined;
  tokenByHash(hash: string): TokenRecord | undefined;
  /** All tokens, oldest first. */
  listTokens(): TokenRecord[];
  close(): void;
}

/**
 * HubStore in memory, for unit tests of the scheduler. Transactions roll back on throw.
 *
 * @example
 * const scheduler = new Scheduler(new MemoryStore());
 */
export class MemoryStore implements HubStore {
  #jobs = new Map<string, JobRecord>();
  #shards = new Map<string, ShardRecord>();
  #leases = new Map<string, LeaseRecord>();
  #results = new Map<string, ResultRecord>();
  #volunteers = new Map<string, VolunteerRecord>();
  #ledger = new Map<string, LedgerEntry>();
  #tokens = new Map<string, TokenRecord>();
  #depth = 0;

  transaction<T>(fn: () => T): T {
    if (this.#depth > 0) return fn();
    // Records are immutable, so copying the maps is a full snapshot.
    const jobs = new Map(this.#jobs);
    const shards = new Map(this.#shards);
    const leases = new Map(this.#leases);
    const results = new Map(this.#results);
    const volunteers = new Map(this.#volunteers);
    const ledger = new Map(this.#ledger);
    const tokens = new Map(this.#tokens);
    this.#depth++;
    try {
      return fn();
    } catch (e) {
      this.#jobs = jobs;
      this.#shards = shards;
      this.#leases = leases;
      this.#results = results;
      this.#volunteers = volunteers;
      this.#ledger = ledger;
      this.#tokens = tokens;
      throw e;
    } finally {
      this.#depth--;
    }
  }
  putJob(j: JobRecord): void {
    this.#jobs.set(j.id, j);
  }
  getJob(id: string): JobRecord | undefined {
    return this.#jobs.get(id);
  }
  listJobs(): JobRecord[] {
    return [...this.#jobs.values()].sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }
  putShard(s: ShardRecord): void {
    this.#shards.set(s.id, s);
  }
  getShard(id: string): ShardRecord | undefined {
    return this.#shards.get(id);
  }
  shardsOfJob(job: string): ShardRecord[] {
    return [...this.#shards.values()].filter((s) => s.job === job).sort((a, b) => a.index - b.index);
  }
  openShards(): ShardRecord[] {
    return this.listJobs().flatMap((j) => this.shardsOfJob(j.id).filter((s) => s.status === 'open'));
  }
  putLease(l: LeaseRecord): void {
    this.#leases.set(l.id, l);
  }
  deleteLease(id: string): void {
    this.#leases.delete(id);
  }
  leasesOfShard(shard: string): LeaseRecord[] {
    return [...this.#leases.values()].filter((l) => l.shard === shard);
  }
  leasesOfVolunteer(volunteer: string): LeaseRecord[] {
    return [...this.#leases.values()].filter((l) => l.volunteer === volunteer);
  }
  expiredLeases(now: number): LeaseRecord[] {
    return [...this.#leases.values()].filter((l) => l.deadline < now);
  }
  putResult(r: ResultRecord): void {
    this.#results.set(r.id, r);
  }
  resultsOfShard(shard: string): ResultRecord[] {
    return [...this.#results.values()]
      .filter((r) => r.shard === shard)
      .sort((a, b) => a.receivedAt - b.receivedAt || a.id.localeCompare(b.id));
  }
  getVolunteer(id: string): VolunteerRecord | undefined {
    return this.#volunteers.get(id);
  }
  putVolunteer(v: VolunteerRecord): void {
    this.#volunteers.set(v.id, v);
  }
  addCredit(e: LedgerEntry): boolean {
    const k = `${e.volunteer}\u0000${e.shard}`;
    if (this.#ledger.has(k)) return false;
    this.#ledger.set(k, e);
    return true;
  }
  setCreditStatus(volunteer: string, shard: string, status: CreditStatus): void {
    const k = `${volunteer}\u0000${shard}`;
    const e = this.#ledger.get(k);
    if (e) this.#ledger.set(k, { ...e, status });
  }
  ledger(volunteer?: string): LedgerEntry[] {
    return [...this.#ledger.values()].filter((e) => volunteer === undefined || e.volunteer === volunteer);
  }
  putToken(t: TokenRecord): void {
    this.#tokens.set(t.name, t);
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
  close(): void {}
}
