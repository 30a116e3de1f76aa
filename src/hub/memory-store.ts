// MemoryStore: the HubStore in one process's memory, with the indexes the hot paths read (tests,
// benchmarks, and the memory half of JournaledStore).
import { entry } from '../core/at.ts';
import type {
  AllReduceReportRecord,
  AvailableShard,
  CreditStatus,
  HubStore,
  JobRecord,
  LeaseRecord,
  LedgerEntry,
  ResultRecord,
  ResultStatus,
  ShardRecord,
  ShardStats,
  TokenRecord,
  TransactionOptions,
  VolunteerRecord,
  WalletBinding,
} from './store.ts';

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
  /**
   * job → no shard below this index wants another replica (each has as many leases and results as
   * it wants): a lease skips the shards in flight instead of counting each one's replicas again
   * (with a thousand in flight, most of a lease's time). Moved back whenever a shard may want one
   * again: a lease or result gone, a shard written open (its `wanted` may have grown).
   */
  readonly #full = new Map<string, number>();
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
  readonly #wallets = new Map<string, WalletBinding>();
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
    if (s.status === 'open') this.#mayWant(s);
  }
  /** A shard may want a replica again: the search must not start past it. */
  #mayWant(s: ShardRecord | undefined): void {
    if (s && s.index < (this.#full.get(s.job) ?? 0)) this.#full.set(s.job, s.index);
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
    // Every shard from #full up to i is closed or has its replicas: #full follows i until a
    // shard wants one (which this volunteer may have touched: then it stays for the others).
    let full = true;
    for (let i = Math.max(this.#advance(job, list), this.#full.get(job) ?? 0); i < list.length; i++) {
      const s = list[i];
      if (s?.status !== 'open' || s.honeypot) {
        if (full) this.#full.set(job, i + 1);
        continue;
      }
      const replicas = this.replicasOf(s.id);
      if (replicas >= s.wanted) {
        if (full) this.#full.set(job, i + 1);
        continue;
      }
      full = false;
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
    this.#mayWant(this.#shards.get(l.shard));
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
    this.#mayWant(this.#shards.get(r.shard));
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
  payoutLedger(address: string, status?: CreditStatus): LedgerEntry[] {
    const a = address.toLowerCase();
    return [...this.#ledger.values()].filter(
      (e) => e.payout?.toLowerCase() === a && (status === undefined || e.status === status),
    );
  }
  jobLedger(job: string): LedgerEntry[] {
    return [...this.#ledger.values()].filter((e) => e.job === job);
  }
  bindWallet(b: WalletBinding): WalletBinding {
    const prev = this.#wallets.get(b.volunteer);
    if (prev) return prev;
    this.#wallets.set(b.volunteer, b);
    this.#logUndo(() => this.#wallets.delete(b.volunteer));
    return b;
  }
  walletOf(volunteer: string): WalletBinding | undefined {
    return this.#wallets.get(volunteer);
  }
  volunteersOfWallet(address: string): string[] {
    const a = address.toLowerCase();
    return [...this.#wallets.values()].filter((w) => w.address.toLowerCase() === a).map((w) => w.volunteer);
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
    this.#full.delete(job);
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
