// The hub's store for speed: every read is answered from memory (MemoryStore's indexes), every
// write is applied there and journaled, and the journal is replayed onto the SQLite file in
// group commits (one synced transaction per few milliseconds, SqliteStore's schema and
// migrations). Profiles of the SQLite-only store showed ~60% of the hub's time in SQLite, most of
// it reads on the lease and result paths (bench/hub); here the hot path touches SQLite only to
// write, in batches.
//
// Durability is unchanged (DESIGN.md invariant 2): a change made with `{ group: true }` is
// durable once `settled()` resolves (the scheduler acknowledges a result only then), any other
// transaction commits everything pending before it returns, and a restart reloads the file. If
// a commit fails, memory is ahead of the file: the store then refuses every further change
// ('store/failed') so that nothing more is acknowledged, and a restart reloads what is durable.
//
// Tokens are read from the file, not memory: `hearth token create --db FILE` writes them from
// another process while a hub runs. Results of judged shards (validated or failed) are kept on
// the file only, once committed: memory holds what open shards need, not every output ever.
import { type Deferred, deferred } from '../core/deferred.ts';
import { HearthError } from '../core/errors.ts';
import { SqliteStore } from './sqlite-store.ts';
import {
  type AllReduceReportRecord,
  type AvailableShard,
  type CreditStatus,
  type HubStore,
  type JobRecord,
  type LeaseRecord,
  type LedgerEntry,
  MemoryStore,
  type ResultRecord,
  type ResultStatus,
  type ShardRecord,
  type ShardStats,
  type TokenRecord,
  type TransactionOptions,
  type VolunteerRecord,
} from './store.ts';

/**
 * What a group commit writes for one record: its final state in the group, so a record changed
 * many times in a few milliseconds is written once, and a lease made and ended within one group
 * (the common case: a shard's whole cycle) is never written at all.
 */
type Pending =
  | { readonly kind: 'put'; readonly write: (d: SqliteStore) => void }
  | { readonly kind: 'lease'; readonly lease: LeaseRecord }
  | { readonly kind: 'lease-delete'; readonly id: string }
  | { readonly kind: 'result'; readonly result: ResultRecord }
  | { readonly kind: 'result-status'; readonly id: string; readonly status: ResultStatus }
  | { readonly kind: 'credit'; readonly entry: LedgerEntry }
  | {
      readonly kind: 'credit-status';
      readonly volunteer: string;
      readonly shard: string;
      readonly status: CreditStatus;
    };

/** One write of a transaction, applied to the pending group when the transaction commits. */
type Op = (pending: Map<string, Pending>, onDisk: OnDisk) => void;

/**
 * Ids of leases already on the file, so that deleting one never written costs no write (a lease
 * made and ended within one group). Results and credits need no such set: they are only ever
 * added, then changed in place. (Kept for them before, written and never read, it grew by an entry
 * per result and per credit for the hub's life.)
 */
interface OnDisk {
  readonly leases: Set<string>;
}

/** Replaces a key's entry and moves it to the end, so the group keeps the order of last writes. */
function set(pending: Map<string, Pending>, key: string, p: Pending): void {
  pending.delete(key);
  pending.set(key, p);
}

export interface JournaledStoreOptions {
  /** How long a group stays open for more changes before its commit (default 2 ms). */
  readonly groupWindowMs?: number;
}

/**
 * A HubStore on a SQLite file with every read served from memory.
 *
 * @example
 * const store = new JournaledStore('hub.db'); // loads the file
 * const s = new Scheduler(store);
 * await s.submitResult(v, result, Date.now()); // resolves once its group is on disk
 * store.close();                               // commits what is pending
 */
export class JournaledStore implements HubStore {
  readonly #disk: SqliteStore;
  readonly #mem = new MemoryStore();
  readonly #windowMs: number;
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
  /** Shards judged in the pending group: their results leave memory once it is committed. */
  #judged = new Set<string>();
  /** Judged shards whose results are read from the file. */
  readonly #cold = new Set<string>();
  /** The open group commit: settled when it is on the file. */
  #flush: { readonly commit: Deferred<void>; readonly timer: ReturnType<typeof setTimeout> } | undefined;
  #failed: HearthError | undefined;
  #closed = false;

  constructor(path: string, opts: JournaledStoreOptions = {}) {
    this.#disk = new SqliteStore(path, { groupWindowMs: 0 });
    this.#windowMs = opts.groupWindowMs ?? 2;
    this.#load();
  }

  /** Everything durable, into memory. Leases too: a restart keeps the same semantics as before. */
  #load(): void {
    const d = this.#disk;
    const m = this.#mem;
    for (const j of d.listJobs()) {
      m.putJob(j);
      for (const s of d.shardsOfJob(j.id)) {
        m.putShard(s);
        if (s.status !== 'open') {
          this.#cold.add(s.id);
          continue;
        }
        for (const r of d.resultsOfShard(s.id)) {
          m.putResult(r);
        }
      }
    }
    for (const l of d.expiredLeases(Number.MAX_SAFE_INTEGER)) {
      m.putLease(l);
      this.#onDisk.leases.add(l.id);
    }
    for (const v of d.listVolunteers()) m.putVolunteer(v);
    for (const e of d.ledger()) {
      m.addCredit(e);
    }
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
    return this.#flush?.commit.promise ?? Promise.resolve();
  }

  #usable(): void {
    if (this.#failed) throw this.#failed;
    if (this.#closed) throw new HearthError('store/failed', 'The hub store is closed.');
  }

  #schedule(): void {
    if (this.#flush) return;
    // Nobody may be waiting (a group of leases only): deferred() keeps a failure from being unhandled.
    // From a timer nobody can catch a throw: a failed commit is recorded (#failed) and rejects the
    // group's waiters; letting it escape would kill the hub instead of stopping its store.
    const timer = setTimeout(() => {
      try {
        this.#commit();
      } catch {
        // Recorded in #failed; every later call and settled() report it.
      }
    }, this.#windowMs);
    this.#flush = { commit: deferred<void>(), timer };
  }

  /** Replays everything pending onto the file in one synced transaction. */
  #commit(): void {
    const f = this.#flush;
    this.#flush = undefined;
    if (f) clearTimeout(f.timer);
    const batch = this.#pending;
    this.#pending = new Map();
    const judged = this.#judged;
    this.#judged = new Set();
    if (batch.size > 0 && !this.#failed) {
      try {
        this.#disk.transaction(() => {
          for (const p of batch.values()) this.#apply(p);
        });
      } catch (e) {
        this.#failed = new HearthError(
          'store/failed',
          `Committing ${batch.size} change(s) to the hub's SQLite file failed (${(e as Error)?.message ?? e}); the hub accepts no more changes until it is restarted.`,
          { cause: e },
        );
        f?.commit.reject(this.#failed);
        throw this.#failed;
      }
    }
    for (const id of judged) {
      // Still judged (a group may reopen nothing, but be exact): its results now live on the file.
      if (this.#mem.getShard(id)?.status === 'open') continue;
      this.#mem.forgetResultsOf(id);
      this.#cold.add(id);
    }
    f?.commit.resolve();
  }

  /** Writes one pending record to the file (inside the group's transaction). */
  #apply(p: Pending): void {
    const d = this.#disk;
    const on = this.#onDisk;
    switch (p.kind) {
      case 'put':
        p.write(d);
        return;
      case 'lease':
        d.putLease(p.lease);
        on.leases.add(p.lease.id);
        return;
      case 'lease-delete':
        d.deleteLease(p.id);
        on.leases.delete(p.id);
        return;
      case 'result':
        d.putResult(p.result);
        return;
      case 'result-status':
        d.setResultStatus(p.id, p.status);
        return;
      case 'credit':
        d.addCredit(p.entry);
        return;
      case 'credit-status':
        d.setCreditStatus(p.volunteer, p.shard, p.status);
        return;
    }
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
    this.#mem.putJob(j);
    this.#write((p) => set(p, `job:${j.id}`, { kind: 'put', write: (d) => d.putJob(j) }));
  }
  getJob(id: string): JobRecord | undefined {
    return this.#mem.getJob(id);
  }
  listJobs(): JobRecord[] {
    return this.#mem.listJobs();
  }
  runningJobs(): JobRecord[] {
    return this.#mem.runningJobs();
  }
  putShard(s: ShardRecord): void {
    this.#usable();
    this.#mem.putShard(s);
    this.#write((p) => {
      set(p, `shard:${s.id}`, { kind: 'put', write: (d) => d.putShard(s) });
      if (s.status !== 'open') this.#judged.add(s.id);
    });
  }
  getShard(id: string): ShardRecord | undefined {
    return this.#mem.getShard(id);
  }
  shardsOfJob(job: string): ShardRecord[] {
    return this.#mem.shardsOfJob(job);
  }
  openShards(): ShardRecord[] {
    return this.#mem.openShards();
  }
  availableShard(job: string, volunteer: string, honeypot: boolean): AvailableShard | undefined {
    return this.#mem.availableShard(job, volunteer, honeypot);
  }
  replicasOf(shard: string): number {
    return this.#mem.replicasOf(shard);
  }
  hasOpenShards(job: string): boolean {
    return this.#mem.hasOpenShards(job);
  }
  shardStats(job: string): ShardStats {
    return this.#mem.shardStats(job);
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
    this.#mem.putResult(r);
    this.#write((p) => set(p, `result:${r.id}`, { kind: 'result', result: r }));
  }
  setResultStatus(id: string, status: ResultStatus): void {
    this.#usable();
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
    return this.#cold.has(shard) ? this.#disk.resultsOfShard(shard) : this.#mem.resultsOfShard(shard);
  }
  getVolunteer(id: string): VolunteerRecord | undefined {
    return this.#mem.getVolunteer(id);
  }
  putVolunteer(v: VolunteerRecord): void {
    this.#usable();
    this.#mem.putVolunteer(v);
    this.#write((p) => set(p, `volunteer:${v.id}`, { kind: 'put', write: (d) => d.putVolunteer(v) }));
  }
  addCredit(e: LedgerEntry): boolean {
    this.#usable();
    const added = this.#mem.addCredit(e);
    // Memory decided (the ledger's key is the same there), so the file gets only real inserts.
    if (added)
      this.#write((p) => set(p, `credit:${creditKey(e.volunteer, e.shard)}`, { kind: 'credit', entry: e }));
    return added;
  }
  setCreditStatus(volunteer: string, shard: string, status: CreditStatus): void {
    this.#usable();
    this.#mem.setCreditStatus(volunteer, shard, status);
    this.#write((p) => {
      const key = `credit:${creditKey(volunteer, shard)}`;
      const prev = p.get(key);
      if (prev?.kind === 'credit') set(p, key, { kind: 'credit', entry: { ...prev.entry, status } });
      else set(p, key, { kind: 'credit-status', volunteer, shard, status });
    });
  }
  voidPendingCredit(job: string): number {
    this.#usable();
    const n = this.#mem.voidPendingCredit(job);
    this.#write((p) => {
      // Entries still pending in this group are voided in memory already; rewrite them so.
      for (const [key, q] of p) {
        if (q.kind === 'credit' && q.entry.job === job && q.entry.status === 'pending') {
          p.set(key, { kind: 'credit', entry: { ...q.entry, status: 'void' } });
        }
      }
      set(p, `void:${this.#seq++}`, { kind: 'put', write: (d) => d.voidPendingCredit(job) });
    });
    return n;
  }
  ledger(volunteer?: string): LedgerEntry[] {
    return this.#mem.ledger(volunteer);
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
      this.#disk.close();
    }
  }
}

const creditKey = (volunteer: string, shard: string) => `${volunteer}\u0000${shard}`;
