// The hub's store for speed: the hub's open work is held in memory (MemoryStore's indexes) and
// every read of it is answered there; every write is applied there and journaled, and the
// journal is replayed onto the SQLite file in group commits (one synced transaction per few
// milliseconds, SqliteStore's schema and migrations). Profiles of the SQLite-only store showed
// ~60% of the hub's time in SQLite, most of it reads on the lease and result paths (bench/hub);
// here the lease → result → validate → credit path touches SQLite only to write, in batches.
//
// What memory holds (`memoryStats()` counts it), and what only the file:
// - Jobs: the running ones, with all their shards, and the results of their open shards. A job
//   that is done, failed or cancelled leaves memory with its shards and results once the commit
//   that closed it is on the file; reading it then reads the file. A judged shard's results leave
//   memory the same way while its job runs on.
// - Leases: every live one (they are open work by definition, and end with their job).
// - Ledger: every pending entry, and the granted or void entries of shards still open (a
//   honeypot's, until its job ends). Other settled entries are on the file only: `ledger()` merges
//   the file's rows with memory's (memory is newer), `ledger(v, 'pending')` is memory alone.
// - Volunteers: the most recently used, at most `volunteerCacheSize` (VOLUNTEER_CACHE_SIZE) after
//   each commit; a volunteer not in memory is read from the file when asked for and kept again.
// Nothing leaves memory before the commit that wrote its last change is on the file, so a record
// not in memory is on the file as it is. A write to a closed job (or a judged shard's results, a
// settled entry) brings the record back from the file first, and it leaves again at the commit.
//
// Memory decides the exactly-once rule of credit without a read of the file: every entry of a
// shard open in memory is in memory. Only a credit for a shard memory does not hold open (never
// on the Scheduler's path) asks the file. Reads of the file are misses: a finished job, a
// route's question, and on the lease path only a volunteer the cache let go, once, on its first
// lease back. A store in front of an asynchronous database (PostgreSQL) keeps this shape: the
// hot path never waits on a read (such a store would load a returning volunteer at hello).
// A start reads the whole ledger once for its pending entries (no index on status: one scan).
//
// Durability is unchanged (DESIGN.md invariant 2): a change made with `{ group: true }` is
// durable once `settled()` resolves (the scheduler acknowledges a result only then), any other
// transaction commits everything pending before it returns, and a restart loads the file's open
// work. If a commit fails, memory is ahead of the file: the store then refuses every further
// change ('store/failed') so that nothing more is acknowledged, and keeps everything it holds
// (nothing leaves memory for a file that lacks it); a restart loads what is durable.
//
// Tokens and all-reduce reports are read from the file, not memory: `hearth token create --db
// FILE` writes tokens from another process while a hub runs.
import { type Deferred, deferred } from '../core/deferred.ts';
import { HearthError } from '../core/errors.ts';
import { jobOfPending, type OnDisk, type Op, type Pending, set, writeOps } from './journal.ts';
import { type MemoryStats, MemoryStore } from './memory-store.ts';
import { SqliteStore } from './sqlite-store.ts';
import { type GroupWriter, InlineWriter, SqliteWriter, type WriteOp } from './sqlite-writer.ts';
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

/** Volunteers a JournaledStore keeps in memory by default: the most recently used (~2 MB). */
export const VOLUNTEER_CACHE_SIZE = 10_000;

export interface JournaledStoreOptions {
  /** How long a group stays open for more changes before its commit (default 2 ms). */
  readonly groupWindowMs?: number;
  /**
   * Volunteers kept in memory after each commit, the most recently used (default
   * VOLUNTEER_CACHE_SIZE); the others are read from the file when they come back.
   */
  readonly volunteerCacheSize?: number;
  /**
   * Group commits on a writer thread of their own (sqlite-writer.ts; default true): the
   * statements and the fsync leave the event loop, at the cost of handing each group over.
   * false: they run on the main connection, on the event loop (as before issue 15).
   */
  readonly writerThread?: boolean;
}

/**
 * A HubStore on a SQLite file with the hub's open work in memory, every read of it served there.
 *
 * @example
 * const store = new JournaledStore('hub.db'); // loads the file's open work
 * const s = new Scheduler(store);
 * await s.submitResult(v, result, Date.now()); // resolves once its group is on disk
 * store.memoryStats();                         // { jobs, shards, leases, results, volunteers, ledger }
 * store.close();                               // commits what is pending
 */
export class JournaledStore implements HubStore {
  readonly #disk: SqliteStore;
  readonly #mem = new MemoryStore();
  readonly #windowMs: number;
  readonly #volunteerCap: number;
  /** Writes of the open transaction (outermost first); undefined outside one. */
  #ops: Op[] | undefined;
  /**
   * Undo of the open transaction's writes that went straight to the file (tokens, all-reduce
   * reports), oldest first: a transaction that throws undoes them too, as on every other store.
   * Empty outside a transaction.
   */
  readonly #fileUndo: (() => void)[] = [];
  /** Final states of records changed by finished transactions and not yet on disk. */
  #pending = new Map<string, Pending>();
  readonly #onDisk: OnDisk = { leases: new Set() };
  /** Unkeyed bulk writes (voidPendingCredit) get unique keys in order. */
  #seq = 0;
  // What may leave memory at the next commit; each is checked then against memory as it is. A
  // write that is rolled back may leave an entry here: the check finds nothing to drop.
  /** Shards judged (or results loaded for) since the last commit: their results leave unless open. */
  #looseResults = new Set<string>();
  /** Jobs closed (or loaded) since the last commit: they leave with their shards unless running. */
  #looseJobs = new Set<string>();
  /** Ledger keys granted or voided since the last commit: they leave unless their shard is open. */
  #looseCredits = new Set<string>();
  /**
   * Settled ledger entries kept because their shard is open in memory (a honeypot's, until its
   * job ends), by job and shard: they leave when the shard is judged or the job leaves.
   */
  readonly #held = new Map<string, Map<string, Set<string>>>();
  /** Volunteers in memory, least recently used first (may name a few a rollback took out). */
  readonly #recent = new Set<string>();
  /** Runs the group commits on its own connection, in a worker thread (sqlite-writer.ts). */
  readonly #writer: GroupWriter;
  /**
   * The group collecting changes (#pending): settled when it is on the file. `due`: its window is
   * over, and it goes to the writer as soon as the group in flight has landed.
   */
  #open: { readonly commit: Deferred<void>; readonly cancel: () => void; due: boolean } | undefined;
  /**
   * The group the writer is committing (one at a time: every record memory may let go of is then
   * either on the file or in #pending, which eviction checks), with what may leave memory once it
   * has landed.
   */
  #inflight: Group | undefined;
  #failed: HearthError | undefined;
  #closed = false;

  constructor(path: string, opts: JournaledStoreOptions = {}) {
    this.#disk = new SqliteStore(path, { groupWindowMs: 0 });
    this.#windowMs = opts.groupWindowMs ?? 2;
    this.#volunteerCap = opts.volunteerCacheSize ?? VOLUNTEER_CACHE_SIZE;
    this.#load();
    // After the main connection has migrated the file: the writer prepares statements on it.
    this.#writer = opts.writerThread === false ? new InlineWriter(this.#disk) : new SqliteWriter(path);
  }

  /**
   * The file's open work, into memory: running jobs (with their shards, open shards' results and
   * ledger entries), every live lease, every pending ledger entry. Not volunteers: each is read
   * when it is first asked for. Leases too: a restart keeps the same semantics as before.
   */
  #load(): void {
    const d = this.#disk;
    const m = this.#mem;
    for (const j of d.runningJobs()) this.#loadJob(j.id);
    for (const l of d.expiredLeases(Number.MAX_SAFE_INTEGER)) {
      m.putLease(l);
      this.#onDisk.leases.add(l.id);
    }
    for (const e of d.ledger(undefined, 'pending')) {
      if (!m.credit(e.volunteer, e.shard)) m.addCredit(e);
    }
  }

  /** Records in memory, by kind: for tests and the hub's stats. Read-only; O(1). */
  memoryStats(): MemoryStats {
    return this.#mem.stats();
  }

  /** Whether memory holds the job (its record or its shards): then it holds all of them. */
  #hot(job: string): boolean {
    return this.#mem.getJob(job) !== undefined || this.#mem.hasShards(job);
  }

  /**
   * Brings a job that memory does not hold back from the file (untracked: the file has it so),
   * before a write to it: its record, shards, open shards' results and ledger entries (settled
   * ones of judged shards stay on the file). It leaves again at the next commit unless running.
   */
  #loadJob(job: string): void {
    const d = this.#disk;
    const m = this.#mem;
    m.untracked(() => {
      const j = d.getJob(job);
      if (j && !m.getJob(job)) m.putJob(j);
      for (const s of d.shardsOfJob(job)) {
        if (m.getShard(s.id)) continue;
        m.putShard(s);
        if (s.status === 'open')
          for (const r of d.resultsOfShard(s.id)) if (!m.getResult(r.id)) m.putResult(r);
      }
      for (const e of d.ledgerOfJob(job)) {
        const sh = m.getShard(e.shard);
        // A judged shard's settled entries stay on the file; the rest is what memory must hold.
        if (e.status === 'pending' || !sh || sh.status === 'open') this.#loadCredit(e);
      }
    });
    this.#looseJobs.add(job);
  }

  /** A ledger entry from the file into memory, unless memory has a newer one. */
  #loadCredit(e: LedgerEntry): void {
    const m = this.#mem;
    if (m.credit(e.volunteer, e.shard)) return;
    m.untracked(() => m.addCredit(e));
    if (e.status !== 'pending') this.#looseCredits.add(creditKey(e.volunteer, e.shard));
  }

  /**
   * Whether a settled entry stays in memory: its job is held and its shard is not judged there
   * (open, or not held at all). Then a credit for the shard is decided in memory.
   */
  #keepSettled(e: LedgerEntry): boolean {
    const sh = this.#mem.getShard(e.shard);
    return sh ? sh.status === 'open' : this.#hot(e.job);
  }

  /** Whether memory holds every result of the shard: those of an open shard, or any of them. */
  #resultsHot(shard: string): boolean {
    return this.#mem.hasResults(shard) || this.#mem.getShard(shard)?.status === 'open';
  }

  /** Loads a shard's results from the file (untracked); they leave again at the next commit. */
  #loadResults(shard: string): void {
    const m = this.#mem;
    m.untracked(() => {
      for (const r of this.#disk.resultsOfShard(shard)) if (!m.getResult(r.id)) m.putResult(r);
    });
    this.#looseResults.add(shard);
  }

  transaction<T>(fn: () => T, opts: TransactionOptions = {}): T {
    this.#usable();
    const outer = this.#ops === undefined;
    const ops = this.#ops ?? [];
    this.#ops = ops;
    const mark = ops.length;
    const undo = this.#fileUndo;
    const undoMark = undo.length;
    let out: T;
    try {
      out = this.#mem.transaction(fn);
    } catch (e) {
      // MemoryStore undid this level's writes; drop their journal entries too, and take back what
      // this level wrote to the file directly.
      ops.length = mark;
      while (undo.length > undoMark) undo.pop()?.();
      if (outer) this.#ops = undefined;
      throw e;
    }
    if (!outer) return out;
    this.#ops = undefined;
    undo.length = 0;
    for (const op of ops) op(this.#pending, this.#onDisk);
    if (opts.group) this.#schedule();
    else this.#commit();
    return out;
  }

  settled(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    // The open group lands after the one in flight: its promise covers both.
    return (this.#open ?? this.#inflight)?.commit.promise ?? Promise.resolve();
  }

  #usable(): void {
    if (this.#failed) throw this.#failed;
    if (this.#closed) throw new HearthError('store/failed', 'The hub store is closed.');
  }

  #schedule(): void {
    if (this.#open) return;
    // Nobody may be waiting (a group of leases only): deferred() keeps a failure from being unhandled.
    const due = () => {
      if (!this.#open) return;
      this.#open.due = true;
      this.#post();
    };
    // 0: at the end of this turn of the event loop (what arrived with it joins the group).
    const timer = this.#windowMs > 0 ? setTimeout(due, this.#windowMs) : setImmediate(due);
    const cancel =
      this.#windowMs > 0
        ? () => clearTimeout(timer as ReturnType<typeof setTimeout>)
        : () => clearImmediate(timer as ReturnType<typeof setImmediate>);
    this.#open = { commit: deferred<void>(), cancel, due: false };
  }

  /** What may leave memory once what was journaled until now is on the file; starts anew. */
  #takeLoose(): Loose {
    const loose = { results: this.#looseResults, jobs: this.#looseJobs, credits: this.#looseCredits };
    this.#looseResults = new Set();
    this.#looseJobs = new Set();
    this.#looseCredits = new Set();
    return loose;
  }

  /** A group's SQL writes, in the order of their last change. */
  #opsOf(batch: Map<string, Pending>): WriteOp[] {
    const ops: WriteOp[] = [];
    for (const p of batch.values()) {
      // The main connection's parsed-job cache must not answer an older state than the file's.
      if (p.kind === 'job') this.#disk.noteJob(p.job);
      writeOps(p, this.#onDisk, ops);
    }
    return ops;
  }

  /**
   * Sends the open group to the writer, unless one is in flight (then it goes when that one has
   * landed, with whatever joined it meanwhile). Never throws: it runs from timers and promises;
   * a failure is recorded (#failed) and rejects the waiters.
   */
  #post(): void {
    const open = this.#open;
    if (!open || this.#inflight) return;
    this.#open = undefined;
    open.cancel();
    const batch = this.#pending;
    this.#pending = new Map();
    const loose = this.#takeLoose();
    if (this.#failed) {
      open.commit.reject(this.#failed);
      return;
    }
    const ops = this.#opsOf(batch);
    if (ops.length === 0) {
      this.#evict(loose);
      open.commit.resolve();
      return;
    }
    const g: Group = { commit: open.commit, loose, landed: false };
    this.#inflight = g;
    this.#writer.post(ops).then(
      () => this.#landed(g),
      (e: unknown) => {
        this.#failure(e, batch.size);
        this.#inflight = undefined;
      },
    );
  }

  /** A group is on the file: what it closed may leave memory; the next group may go. */
  #landed(g: Group): void {
    if (g.landed) return;
    g.landed = true;
    if (this.#inflight === g) this.#inflight = undefined;
    this.#evict(g.loose);
    g.commit.resolve();
    if (this.#open?.due) this.#post();
  }

  /** Records a failed commit: memory is ahead of the file, so nothing more is promised. */
  #failure(e: unknown, changes: number): HearthError {
    this.#failed ??= new HearthError(
      'store/failed',
      `Committing ${changes} change(s) to the hub's SQLite file failed (${(e as Error)?.message ?? e}); the hub accepts no more changes until it is restarted.`,
      { cause: e },
    );
    this.#inflight?.commit.reject(this.#failed);
    this.#open?.commit.reject(this.#failed);
    return this.#failed;
  }

  /**
   * Puts everything pending on the file before it returns (after the group in flight), then lets
   * go of what memory no longer needs: memory is then exactly what the file holds, for every
   * record that leaves.
   */
  #commit(): void {
    const open = this.#open;
    this.#open = undefined;
    if (open) open.cancel();
    const batch = this.#pending;
    this.#pending = new Map();
    const loose = this.#takeLoose();
    if (this.#failed) {
      open?.commit.reject(this.#failed);
      return;
    }
    const ops = this.#opsOf(batch);
    const before = this.#inflight;
    if (ops.length > 0 || before) {
      try {
        // Also a barrier: the group in flight is on the file once this returns.
        this.#writer.run(ops);
      } catch (e) {
        open?.commit.reject(this.#failure(e, batch.size));
        throw this.#failed;
      }
    }
    if (before) this.#landed(before);
    this.#evict(loose);
    open?.commit.resolve();
  }

  /**
   * Drops from memory what is closed and on the file (see the header), and trims volunteers. A
   * record changed again since (in #pending, not on the file yet) stays, and is looked at again
   * after the next commit.
   */
  #evict(loose: Loose): void {
    const m = this.#mem;
    const pending = this.#pending;
    // Shards and jobs the open group touches: computed only when something may leave.
    let shards: Set<string> | undefined;
    let jobs: Set<string> | undefined;
    const touched = () => {
      if (shards && jobs) return { shards, jobs };
      shards = new Set();
      jobs = new Set();
      for (const p of pending.values()) {
        const j = jobOfPending(p);
        if (j !== undefined) jobs.add(j);
        const sh = shardOfPending(p);
        if (sh !== undefined) shards.add(sh);
      }
      return { shards, jobs };
    };
    for (const id of loose.results) {
      const sh = m.getShard(id);
      // Still open (a group may reopen a shard, or load results of an open one): they stay.
      if (sh?.status === 'open') continue;
      if (touched().shards.has(id)) {
        this.#looseResults.add(id);
        continue;
      }
      m.forgetResultsOf(id);
      if (sh) this.#release(sh.job, id);
    }
    for (const id of loose.jobs) {
      if (m.getJob(id)?.status === 'running') continue;
      if (touched().jobs.has(id)) {
        this.#looseJobs.add(id);
        continue;
      }
      m.forgetJob(id);
      this.#release(id);
    }
    for (const k of loose.credits) {
      const cut = k.indexOf('\u0000');
      const e = m.credit(k.slice(0, cut), k.slice(cut + 1));
      if (!e || e.status === 'pending') continue;
      if (pending.has(`credit:${k}`)) {
        this.#looseCredits.add(k);
        continue;
      }
      if (this.#keepSettled(e)) this.#hold(e, k);
      else m.forgetCredit(e.volunteer, e.shard);
    }
    this.#trimVolunteers();
  }

  /** Lets the least recently used volunteers go, down to the cap (memory matches the file). */
  #trimVolunteers(): void {
    const recent = this.#recent;
    if (recent.size <= this.#volunteerCap) return;
    for (const id of recent) {
      if (recent.size <= this.#volunteerCap) break;
      // Changed since the last commit: not on the file as memory has it yet.
      if (this.#pending.has(`volunteer:${id}`)) continue;
      recent.delete(id);
      this.#mem.forgetVolunteer(id);
    }
  }

  #hold(e: LedgerEntry, key: string): void {
    let byShard = this.#held.get(e.job);
    if (!byShard) this.#held.set(e.job, (byShard = new Map()));
    let keys = byShard.get(e.shard);
    if (!keys) byShard.set(e.shard, (keys = new Set()));
    keys.add(key);
  }

  /** Lets held settled entries of a judged shard (or of every shard of a job) leave memory. */
  #release(job: string, shard?: string): void {
    const byShard = this.#held.get(job);
    if (!byShard) return;
    const m = this.#mem;
    const drop = (keys: Set<string>) => {
      for (const k of keys) {
        const cut = k.indexOf('\u0000');
        const e = m.credit(k.slice(0, cut), k.slice(cut + 1));
        if (!e || e.status === 'pending') continue;
        // Changed since the last commit: it leaves after the next one.
        if (this.#pending.has(`credit:${k}`)) this.#looseCredits.add(k);
        else m.forgetCredit(e.volunteer, e.shard);
      }
    };
    if (shard === undefined) {
      for (const keys of byShard.values()) drop(keys);
      this.#held.delete(job);
      return;
    }
    const keys = byShard.get(shard);
    if (!keys) return;
    drop(keys);
    byShard.delete(shard);
    if (byShard.size === 0) this.#held.delete(job);
  }

  /** Keeps the undo of a write made straight to the file, when inside a transaction. */
  #undoable(undo: () => void): void {
    if (this.#ops) this.#fileUndo.push(undo);
  }

  /** Journals a write (already applied to memory) for the file. */
  #write(op: Op): void {
    if (this.#ops) this.#ops.push(op);
    else {
      // A write outside any transaction is its own transaction.
      op(this.#pending, this.#onDisk);
      this.#commit();
    }
  }

  putJob(j: JobRecord): void {
    this.#usable();
    if (!this.#hot(j.id)) this.#loadJob(j.id);
    this.#mem.putJob(j);
    if (j.status !== 'running') this.#looseJobs.add(j.id);
    this.#write((p) => set(p, `job:${j.id}`, { kind: 'job', job: j }));
  }
  getJob(id: string): JobRecord | undefined {
    return this.#mem.getJob(id) ?? this.#disk.getJob(id);
  }
  listJobs(): JobRecord[] {
    // The file's jobs in its order, memory's newer states over them, then jobs not on it yet
    // (they arrived after every job there); the sort is stable, so arrival breaks ties.
    const newer = new Map(this.#mem.listJobs().map((j) => [j.id, j]));
    const out = this.#disk.listJobs().map((j) => {
      const m = newer.get(j.id);
      if (!m) return j;
      newer.delete(j.id);
      return m;
    });
    out.push(...newer.values());
    return out.sort(byAge);
  }
  runningJobs(): JobRecord[] {
    // Every running job is in memory: a job leaves it only once closed.
    return this.#mem.runningJobs();
  }
  putShard(s: ShardRecord): void {
    this.#usable();
    if (!this.#hot(s.job)) this.#loadJob(s.job);
    const prev = this.#mem.getShard(s.id);
    if (s.status === 'open' && prev && prev.status !== 'open') {
      // Reopened: its results and settled entries may have left memory; memory must hold them all.
      this.#loadResults(s.id);
      for (const e of this.#disk.ledgerOfJob(s.job)) if (e.shard === s.id) this.#loadCredit(e);
    }
    this.#mem.putShard(s);
    if (s.status !== 'open') this.#looseResults.add(s.id);
    this.#write((p) => set(p, `shard:${s.id}`, { kind: 'shard', shard: s }));
  }
  getShard(id: string): ShardRecord | undefined {
    return this.#mem.getShard(id) ?? this.#disk.getShard(id);
  }
  shardsOfJob(job: string): ShardRecord[] {
    return this.#hot(job) ? this.#mem.shardsOfJob(job) : this.#disk.shardsOfJob(job);
  }
  openShards(): ShardRecord[] {
    // Closed jobs' open shards (a cancelled job's) are on the file only.
    const cold = new Map<string, ShardRecord[]>();
    for (const s of this.#disk.openShards()) {
      if (this.#hot(s.job)) continue;
      let list = cold.get(s.job);
      if (!list) cold.set(s.job, (list = []));
      list.push(s);
    }
    return this.listJobs().flatMap((j) =>
      this.#hot(j.id)
        ? this.#mem.shardsOfJob(j.id).filter((s) => s.status === 'open')
        : (cold.get(j.id) ?? []),
    );
  }
  availableShard(job: string, volunteer: string, honeypot: boolean): AvailableShard | undefined {
    return this.#hot(job)
      ? this.#mem.availableShard(job, volunteer, honeypot)
      : this.#disk.availableShard(job, volunteer, honeypot);
  }
  replicasOf(shard: string): number {
    // Every live lease is in memory; results may be on the file only.
    if (this.#resultsHot(shard)) return this.#mem.replicasOf(shard);
    return this.#mem.leasesOfShard(shard).length + this.#disk.resultCount(shard);
  }
  hasOpenShards(job: string): boolean {
    return this.#hot(job) ? this.#mem.hasOpenShards(job) : this.#disk.hasOpenShards(job);
  }
  shardStats(job: string): ShardStats {
    return this.#hot(job) ? this.#mem.shardStats(job) : this.#disk.shardStats(job);
  }
  putLease(l: LeaseRecord): void {
    this.#usable();
    this.#mem.putLease(l);
    this.#write((p) => set(p, `lease:${l.id}`, { kind: 'lease', lease: l }));
  }
  deleteLease(id: string): void {
    this.#usable();
    this.#mem.deleteLease(id);
    this.#write((p, on) => {
      // A lease the file never saw needs no delete: both writes vanish.
      if (on.leases.has(id)) set(p, `lease:${id}`, { kind: 'lease-delete', id });
      else p.delete(`lease:${id}`);
    });
  }
  leasesOfShard(shard: string): LeaseRecord[] {
    return this.#mem.leasesOfShard(shard);
  }
  leasesOfVolunteer(volunteer: string): LeaseRecord[] {
    return this.#mem.leasesOfVolunteer(volunteer);
  }
  leasesOfJob(job: string): LeaseRecord[] {
    return this.#mem.leasesOfJob(job);
  }
  expiredLeases(now: number): LeaseRecord[] {
    return this.#mem.expiredLeases(now);
  }
  putResult(r: ResultRecord): void {
    this.#usable();
    if (!this.#resultsHot(r.shard)) this.#loadResults(r.shard);
    this.#mem.putResult(r);
    this.#write((p) => set(p, `result:${r.id}`, { kind: 'result', result: r }));
  }
  setResultStatus(id: string, status: ResultStatus): void {
    this.#usable();
    if (!this.#mem.getResult(id)) {
      // A judged shard's result, on the file only: back into memory with its shard's others.
      const r = this.#disk.result(id);
      if (!r) return;
      this.#loadResults(r.shard);
    }
    this.#mem.setResultStatus(id, status);
    this.#write((p) => {
      const key = `result:${id}`;
      const prev = p.get(key);
      // Not on the file yet: write the result once, already judged.
      if (prev?.kind === 'result') set(p, key, { kind: 'result', result: { ...prev.result, status } });
      else set(p, key, { kind: 'result-status', id, status });
    });
  }
  resultsOfShard(shard: string): ResultRecord[] {
    return this.#resultsHot(shard) ? this.#mem.resultsOfShard(shard) : this.#disk.resultsOfShard(shard);
  }
  getVolunteer(id: string): VolunteerRecord | undefined {
    const m = this.#mem;
    let v = m.getVolunteer(id);
    if (!v) {
      v = this.#disk.getVolunteer(id);
      if (!v) return undefined;
      const loaded = v;
      m.untracked(() => m.putVolunteer(loaded));
      this.#touch(id);
      // Reads alone (a credit route asked about many volunteers) must not grow memory either;
      // with nothing uncommitted, memory matches the file and may let go now.
      if (this.#ops === undefined && this.#pending.size === 0 && !this.#inflight) this.#trimVolunteers();
      return v;
    }
    this.#touch(id);
    return v;
  }
  putVolunteer(v: VolunteerRecord): void {
    this.#usable();
    this.#mem.putVolunteer(v);
    this.#touch(v.id);
    this.#write((p) => set(p, `volunteer:${v.id}`, { kind: 'volunteer', volunteer: v }));
  }
  /** Marks a volunteer most recently used. */
  #touch(id: string): void {
    this.#recent.delete(id);
    this.#recent.add(id);
  }
  addCredit(e: LedgerEntry): boolean {
    this.#usable();
    const m = this.#mem;
    if (m.credit(e.volunteer, e.shard)) return false;
    // Memory holds every entry of a shard it holds open (the Scheduler credits only those); for
    // any other shard an entry may be on the file alone.
    if (!this.#keepSettled(e) && this.#disk.credit(e.volunteer, e.shard)) return false;
    m.addCredit(e);
    // The file gets only real inserts.
    this.#write((p) => set(p, `credit:${creditKey(e.volunteer, e.shard)}`, { kind: 'credit', entry: e }));
    if (e.status !== 'pending') this.#looseCredits.add(creditKey(e.volunteer, e.shard));
    return true;
  }
  setCreditStatus(volunteer: string, shard: string, status: CreditStatus): void {
    this.#usable();
    const m = this.#mem;
    const key = creditKey(volunteer, shard);
    if (!m.credit(volunteer, shard)) {
      // Settled and on the file only: back into memory to change it (no entry: nothing to do).
      const e = this.#disk.credit(volunteer, shard);
      if (!e) return;
      m.untracked(() => m.addCredit(e));
      this.#looseCredits.add(key);
    }
    m.setCreditStatus(volunteer, shard, status);
    if (status !== 'pending') this.#looseCredits.add(key);
    this.#write((p) => {
      const k = `credit:${key}`;
      const prev = p.get(k);
      if (prev?.kind === 'credit') set(p, k, { kind: 'credit', entry: { ...prev.entry, status } });
      else set(p, k, { kind: 'credit-status', volunteer, shard, status });
    });
  }
  voidPendingCredit(job: string): number {
    this.#usable();
    // Every pending entry is in memory: memory's count is the file's.
    for (const e of this.#mem.ledger(undefined, 'pending')) {
      if (e.job === job) this.#looseCredits.add(creditKey(e.volunteer, e.shard));
    }
    const n = this.#mem.voidPendingCredit(job);
    this.#write((p) => {
      // Entries still pending in this group are voided in memory already; rewrite them so.
      for (const [key, q] of p) {
        if (q.kind === 'credit' && q.entry.job === job && q.entry.status === 'pending') {
          p.set(key, { kind: 'credit', entry: { ...q.entry, status: 'void' } });
        }
      }
      set(p, `void:${this.#seq++}`, { kind: 'void-pending', job });
    });
    return n;
  }
  ledger(volunteer?: string, status?: CreditStatus): LedgerEntry[] {
    // Every pending entry is in memory.
    if (status === 'pending') return this.#mem.ledger(volunteer, 'pending').sort(byKey);
    // Settled ones may be on the file only; memory's are newer.
    const all = new Map<string, LedgerEntry>();
    for (const e of this.#disk.ledger(volunteer)) all.set(creditKey(e.volunteer, e.shard), e);
    for (const e of this.#mem.ledger(volunteer)) all.set(creditKey(e.volunteer, e.shard), e);
    const out = [...all.values()].sort(byKey);
    return status === undefined ? out : out.filter((e) => e.status === status);
  }
  payoutLedger(address: string, status?: CreditStatus): LedgerEntry[] {
    const all = new Map<string, LedgerEntry>();
    for (const e of this.#disk.payoutLedger(address)) all.set(creditKey(e.volunteer, e.shard), e);
    for (const e of this.#mem.payoutLedger(address)) all.set(creditKey(e.volunteer, e.shard), e);
    const out = [...all.values()].sort(byKey);
    return status === undefined ? out : out.filter((e) => e.status === status);
  }
  jobLedger(job: string): LedgerEntry[] {
    const all = new Map<string, LedgerEntry>();
    for (const e of this.#disk.jobLedger(job)) all.set(creditKey(e.volunteer, e.shard), e);
    for (const e of this.#mem.jobLedger(job)) all.set(creditKey(e.volunteer, e.shard), e);
    return [...all.values()].sort(byKey);
  }
  // Wallet bindings: straight to the file, like tokens (rare, and read by the voucher route).
  bindWallet(b: WalletBinding): WalletBinding {
    this.#usable();
    const d = this.#disk;
    const inForce = d.bindWallet(b);
    if (inForce === b) this.#undoable(() => d.deleteWallet(b.volunteer));
    return inForce;
  }
  walletOf(volunteer: string): WalletBinding | undefined {
    return this.#disk.walletOf(volunteer);
  }
  volunteersOfWallet(address: string): string[] {
    return this.#disk.volunteersOfWallet(address);
  }
  // Tokens: straight to the file (see the header). Inside a transaction each write leaves its
  // undo, should the transaction throw.
  putToken(t: TokenRecord): void {
    this.#usable();
    const d = this.#disk;
    const prev = this.#ops ? d.getToken(t.name) : undefined;
    d.putToken(t);
    this.#undoable(() => (prev ? d.putToken(prev) : d.deleteToken(t.name)));
  }
  addToken(t: TokenRecord): boolean {
    this.#usable();
    const d = this.#disk;
    const added = d.addToken(t);
    if (added) this.#undoable(() => d.deleteToken(t.name));
    return added;
  }
  getToken(name: string): TokenRecord | undefined {
    return this.#disk.getToken(name);
  }
  tokenByHash(hash: string): TokenRecord | undefined {
    return this.#disk.tokenByHash(hash);
  }
  listTokens(): TokenRecord[] {
    return this.#disk.listTokens();
  }
  // All-reduce reports: straight to the file too. They are rare (one per member per round), off
  // the lease and result path, and read only by the researcher's audit route.
  putAllReduceReport(r: AllReduceReportRecord): void {
    this.#usable();
    const d = this.#disk;
    const prev = this.#ops ? d.allReduceReport(r.round, r.reporterPeer) : undefined;
    d.putAllReduceReport(r);
    this.#undoable(() =>
      prev ? d.putAllReduceReport(prev) : d.deleteAllReduceReport(r.round, r.reporterPeer),
    );
  }
  allReduceReports(round: string): AllReduceReportRecord[] {
    return this.#disk.allReduceReports(round);
  }
  pruneAllReduceReports(before: number): number {
    this.#usable();
    const d = this.#disk;
    const gone = this.#ops ? d.allReduceReportsBefore(before) : [];
    const n = d.pruneAllReduceReports(before);
    this.#undoable(() => {
      for (const r of gone) d.putAllReduceReport(r);
    });
    return n;
  }
  /** Commits what is pending and closes the file. */
  close(): void {
    if (this.#closed) return;
    try {
      if (!this.#failed) this.#commit();
    } finally {
      this.#closed = true;
      try {
        this.#writer.close();
      } finally {
        this.#disk.close();
      }
    }
  }
}

/** A group sent to the writer: its waiters, and what may leave memory once it has landed. */
interface Group {
  readonly commit: Deferred<void>;
  readonly loose: Loose;
  landed: boolean;
}

/** Records that may leave memory once the changes journaled before them are on the file. */
interface Loose {
  /** Shards judged (or results loaded for): their results leave unless open. */
  readonly results: Set<string>;
  /** Jobs closed (or loaded): they leave with their shards unless running. */
  readonly jobs: Set<string>;
  /** Ledger keys granted or voided: they leave unless their shard is open. */
  readonly credits: Set<string>;
}

/** The shard whose results a pending record is (or touches), if any. */
function shardOfPending(p: Pending): string | undefined {
  switch (p.kind) {
    case 'shard':
      return p.shard.id;
    case 'result':
      return p.result.shard;
    case 'result-status':
      return p.id.slice(0, p.id.lastIndexOf('#'));
    case 'credit':
      return p.entry.shard;
    case 'credit-status':
      return p.shard;
    default:
      return undefined;
  }
}

const creditKey = (volunteer: string, shard: string) => `${volunteer}\u0000${shard}`;
const byAge = (a: JobRecord, b: JobRecord) => a.createdAt - b.createdAt;
// SqliteStore's order (TEXT compares by bytes; the ids are ASCII).
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const byKey = (a: LedgerEntry, b: LedgerEntry) => cmp(a.volunteer, b.volunteer) || cmp(a.shard, b.shard);
