import Database, { type SqliteDatabase, type SqliteStatement } from 'better-sqlite3';
import { at, defined, first } from '../core/at.ts';
import { type Deferred, deferred } from '../core/deferred.ts';
import { HearthError } from '../core/errors.ts';
import type { DType } from '../core/tensor.ts';
import { creditsToUnits } from '../protocol/credit.ts';
import { readMigrationFiles } from './migration-files.ts';
import type { WriteOp } from './sqlite-writer.ts';
import {
  type AllReduceReportRecord,
  type AvailableShard,
  type CreditStatus,
  type HubStore,
  type JobRecord,
  jobOf,
  type LeaseRecord,
  type LedgerEntry,
  type ResultRecord,
  type ResultStatus,
  type ShardRecord,
  type ShardStats,
  type TokenRecord,
  type TransactionOptions,
  type VolunteerRecord,
  type WalletBinding,
} from './store.ts';

/**
 * The schema's SQL, one file per version in `./migrations/` (read once, when this module loads,
 * relative to this file: the same under tsx, vitest and the CLI). `NNN-name.sql` brings a file to
 * `PRAGMA user_version` NNN; `000-schema.sql` is what a hub wrote before versions were kept, and
 * every file starts there, so the upgrade path is the path every test takes.
 */
const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

const SQL = readMigrationFiles(MIGRATIONS_DIR, 'hub database').map((m) => m.sql);

/** Schema version 0 (`000-schema.sql`). */
export const SCHEMA: string = at(SQL, 0, 'hub database schema files'); // readMigrations found at least one

/**
 * Schema versions after the first, in order: MIGRATIONS[v] brings a version-v file to v + 1. Each
 * runs once, in one transaction, on a file made by any older hub.
 */
export const MIGRATIONS: readonly string[] = SQL.slice(1);

/**
 * Migration 3's conversion of a schema-2 ledger amount (a REAL number of credits) to base units:
 * the nearest whole unit of its decimal form (`creditsToUnits`). The REAL was FLOPs × rate in
 * floats, within rounding error of the true amount — far below a base unit — so the nearest unit
 * is that amount. An amount that cannot be converted stops the migration (its transaction rolls
 * back; the file stays as it was).
 */
function legacyCreditUnits(x: unknown): bigint {
  try {
    return creditsToUnits(typeof x === 'bigint' ? Number(x) : (x as number), 'ledger.credits');
  } catch (e) {
    throw new HearthError(
      'store/failed',
      `hub database: ledger credit ${String(x)} cannot be migrated to base units.`,
      {
        cause: e,
        details: { credits: String(x) },
      },
    );
  }
}

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** The ledger's columns, in the order `ledgerEntry` reads them. */
const LEDGER_COLUMNS = 'volunteer, shard, job, credits, status, site, payout, payout_units';
type LedgerRow = Omit<LedgerEntry, 'site' | 'payout' | 'payoutCredits'> & {
  site: string | null;
  payout: string | null;
  payout_units: bigint | null;
};
/** A ledger row as an entry: `site`, `payout` and the payout's share only where the row has them. */
const ledgerEntry = (r: LedgerRow): LedgerEntry => {
  const { site, payout, payout_units, ...rest } = r;
  if (site === null || payout === null) return rest;
  return { ...rest, site, payout, ...(payout_units === null ? {} : { payoutCredits: payout_units }) };
};
const ledgerEntries = (rows: unknown[]): LedgerEntry[] => (rows as LedgerRow[]).map(ledgerEntry);

const TOKEN_COLUMNS = 'name, hash, created_at, revoked_at, budget';
type TokenRow = {
  name: string;
  hash: string;
  created_at: number;
  revoked_at: number | null;
  budget: string | null;
};
const token = (r: TokenRow): TokenRecord => ({
  name: r.name,
  hash: r.hash,
  createdAt: r.created_at,
  ...(r.revoked_at === null ? {} : { revokedAt: r.revoked_at }),
  ...(r.budget === null ? {} : { budget: BigInt(r.budget) }),
});
const tokenRow = (t: TokenRecord) =>
  [
    t.name,
    t.hash,
    t.createdAt,
    t.revokedAt ?? null,
    t.budget === undefined ? null : t.budget.toString(),
  ] as const;

type WalletRow = { volunteer: string; address: string; bound_at: number };
const wallet = (r: WalletRow): WalletBinding => ({
  volunteer: r.volunteer,
  address: r.address,
  boundAt: r.bound_at,
});

type Doc = { doc: string };
type ResultRow = { id: string; doc: string };
const docs = <T>(rows: unknown[]): T[] => (rows as Doc[]).map((r) => JSON.parse(r.doc) as T);

/** Parsed jobs a SqliteStore keeps in memory: the running ones of any real hub, and then some. */
export const JOB_CACHE_SIZE = 256;

/**
 * HubStore on a SQLite file: WAL, one transaction per state change.
 *
 * @example
 * const store = new SqliteStore('/var/lib/hearth/hub.db');
 * const scheduler = new Scheduler(store);
 * // …
 * store.close();
 */
/**
 * The writes of the lease → result → validate → credit path, by name: the SqliteStore runs them,
 * and a JournaledStore's writer thread (sqlite-writer.ts) runs the same SQL with the same
 * parameters (the `*Params` functions below), so the two write one file format.
 */
export const WRITE_SQL = {
  // seq: arrival order, the tie-break between jobs of one millisecond (ids are random).
  putJob: `INSERT INTO jobs (id, created_at, status, doc, seq)
         VALUES (?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM jobs))
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, doc = excluded.doc`,
  // An upsert, never INSERT OR REPLACE: a replace would reset the trigger-kept replica count.
  putShard: `INSERT INTO shards (id, job, idx, status, honeypot, wanted, doc) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, wanted = excluded.wanted, doc = excluded.doc`,
  putLease: `INSERT INTO leases (id, shard, job, volunteer, deadline, doc) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET deadline = excluded.deadline, doc = excluded.doc`,
  deleteLease: 'DELETE FROM leases WHERE id = ?',
  // A new result (the common case) is a plain insert; only a replaced one rewrites its bytes.
  addResult: 'INSERT OR IGNORE INTO results (id, shard, volunteer, received_at, doc) VALUES (?, ?, ?, ?, ?)',
  replaceResult: 'UPDATE results SET received_at = ?, doc = ? WHERE id = ?',
  setResultStatus: "UPDATE results SET doc = json_set(doc, '$.status', ?) WHERE id = ?",
  delOutputs: 'DELETE FROM result_outputs WHERE result = ?',
  putOutput:
    'INSERT INTO result_outputs (result, i, name, dtype, shape, sha256, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
  putVolunteer: 'INSERT OR REPLACE INTO volunteers (id, doc) VALUES (?, ?)',
  addCredit:
    'INSERT OR IGNORE INTO ledger (volunteer, shard, job, credits, status, site, payout, payout_units) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  setCredit: 'UPDATE ledger SET status = ? WHERE volunteer = ? AND shard = ?',
  voidPending: "UPDATE ledger SET status = 'void' WHERE job = ? AND status = 'pending'",
} as const;
export type WriteName = keyof typeof WRITE_SQL;

// The parameters of each write, in WRITE_SQL's order.
export const jobParams = (j: JobRecord) => [j.id, j.createdAt, j.status, JSON.stringify(j)] as const;
export const shardParams = (s: ShardRecord) =>
  [s.id, s.job, s.index, s.status, s.honeypot ? 1 : 0, s.wanted, JSON.stringify(s)] as const;
export const leaseParams = (l: LeaseRecord) =>
  [l.id, l.shard, l.job, l.volunteer, l.deadline, JSON.stringify(l)] as const;
/** A result's document (everything but the bytes, which go in `result_outputs` rows). */
export const resultDoc = (r: ResultRecord): string => {
  const { outputs: _, ...rest } = r;
  return JSON.stringify(rest);
};
export const outputParams = (r: ResultRecord, o: ResultRecord['outputs'][number], i: number) =>
  [r.id, i, o.name, o.dtype, JSON.stringify(o.shape), o.sha256, new Uint8Array(o.data)] as const;
export const volunteerParams = (v: VolunteerRecord) => [v.id, JSON.stringify(v)] as const;
export const creditParams = (e: LedgerEntry) =>
  [
    e.volunteer,
    e.shard,
    e.job,
    e.credits,
    e.status,
    e.site ?? null,
    e.payout ?? null,
    e.payoutCredits ?? null,
  ] as const;

/** The store's prepared statements, by name (prepared once, after the schema is current). */
function prepareStatements(db: SqliteDatabase) {
  const p = (sql: string): SqliteStatement => db.prepare(sql);
  const wide = (sql: string): SqliteStatement => p(sql).safeIntegers(true);
  return {
    putJob: p(WRITE_SQL.putJob),
    getJob: p('SELECT doc FROM jobs WHERE id = ?'),
    listJobs: p('SELECT doc FROM jobs ORDER BY created_at, seq'),
    runningJobs: p("SELECT id FROM jobs WHERE status = 'running' ORDER BY created_at, seq"),
    putShard: p(WRITE_SQL.putShard),
    getShard: p('SELECT doc FROM shards WHERE id = ?'),
    shardsOfJob: p('SELECT doc FROM shards WHERE job = ? ORDER BY idx'),
    openShards: p(
      `SELECT s.doc FROM shards s JOIN jobs j ON j.id = s.job WHERE s.status = 'open'
       ORDER BY j.created_at, j.seq, s.idx`,
    ),
    available: p(
      `SELECT s.doc, s.replicas FROM shards s
       WHERE s.job = @job AND s.honeypot = 0 AND s.status = 'open' AND s.replicas < s.wanted
         AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.shard = s.id AND l.volunteer = @volunteer)
         AND NOT EXISTS (SELECT 1 FROM results r WHERE r.shard = s.id AND r.volunteer = @volunteer)
       ORDER BY s.idx LIMIT 1`,
    ),
    availableHoneypot: p(
      `SELECT s.doc, s.replicas FROM shards s
       WHERE s.job = @job AND s.honeypot = 1 AND s.status = 'open'
         AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.shard = s.id AND l.volunteer = @volunteer)
         AND NOT EXISTS (SELECT 1 FROM results r WHERE r.shard = s.id AND r.volunteer = @volunteer)
       ORDER BY s.idx LIMIT 1`,
    ),
    replicasOf: p('SELECT replicas FROM shards WHERE id = ?'),
    // LIMIT 1: a count would read every open shard on every validation.
    hasOpenShards: p("SELECT 1 FROM shards WHERE job = ? AND honeypot = 0 AND status = 'open' LIMIT 1"),
    shardStats: p(
      `SELECT count(*) AS shards,
         coalesce(sum(status = 'validated'), 0) AS validated,
         coalesce(sum(status = 'failed'), 0) AS failed,
         coalesce(sum(status = 'open' AND EXISTS (SELECT 1 FROM leases l WHERE l.shard = s.id)), 0) AS inFlight,
         coalesce(sum(status = 'open' AND EXISTS (SELECT 1 FROM results r WHERE r.shard = s.id)), 0) AS done
       FROM shards s WHERE job = ? AND honeypot = 0`,
    ),
    putLease: p(WRITE_SQL.putLease),
    deleteLease: p(WRITE_SQL.deleteLease),
    leasesOfShard: p('SELECT doc FROM leases WHERE shard = ? ORDER BY id'),
    leasesOfVolunteer: p('SELECT doc FROM leases WHERE volunteer = ? ORDER BY id'),
    // Through the job's shards: cancel is rare, and one index less makes every lease cheaper.
    leasesOfJob: p(
      'SELECT l.doc FROM shards s JOIN leases l ON l.shard = s.id WHERE s.job = ? ORDER BY l.id',
    ),
    expiredLeases: p('SELECT doc FROM leases WHERE deadline < ? ORDER BY deadline, id'),
    addResult: p(WRITE_SQL.addResult),
    replaceResult: p(WRITE_SQL.replaceResult),
    setResultStatus: p(WRITE_SQL.setResultStatus),
    delOutputs: p(WRITE_SQL.delOutputs),
    putOutput: p(WRITE_SQL.putOutput),
    resultsOfShard: p('SELECT id, doc FROM results WHERE shard = ? ORDER BY received_at, id'),
    getResult: p('SELECT id, doc FROM results WHERE id = ?'),
    resultCount: p('SELECT count(*) AS n FROM results WHERE shard = ?'),
    outputsOf: p('SELECT name, dtype, shape, sha256, data FROM result_outputs WHERE result = ? ORDER BY i'),
    getVolunteer: p('SELECT doc FROM volunteers WHERE id = ?'),
    putVolunteer: p(WRITE_SQL.putVolunteer),
    addCredit: p(WRITE_SQL.addCredit),
    setCredit: p(WRITE_SQL.setCredit),
    voidPending: p(WRITE_SQL.voidPending),
    // Credit comes back as bigint: base units are money, exact past 2⁵³.
    ledgerAll: wide(`SELECT ${LEDGER_COLUMNS} FROM ledger ORDER BY volunteer, shard`),
    ledgerOf: wide(`SELECT ${LEDGER_COLUMNS} FROM ledger WHERE volunteer = ? ORDER BY shard`),
    // By status: a volunteer's through the primary key; everyone's reads the table (only a
    // JournaledStore's start asks, for the pending entries it keeps in memory).
    ledgerAllWith: wide(`SELECT ${LEDGER_COLUMNS} FROM ledger WHERE status = ? ORDER BY volunteer, shard`),
    ledgerOfWith: wide(
      `SELECT ${LEDGER_COLUMNS} FROM ledger WHERE volunteer = ? AND status = ? ORDER BY shard`,
    ),
    credit: wide(`SELECT ${LEDGER_COLUMNS} FROM ledger WHERE volunteer = ? AND shard = ?`),
    ledgerOfJob: wide(`SELECT ${LEDGER_COLUMNS} FROM ledger WHERE job = ? ORDER BY volunteer, shard`),
    ledgerOfPayout: wide(
      `SELECT ${LEDGER_COLUMNS} FROM ledger WHERE payout = ? COLLATE NOCASE ORDER BY volunteer, shard`,
    ),
    putToken: p(`INSERT OR REPLACE INTO tokens (${TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?)`),
    addToken: p(`INSERT INTO tokens (${TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`),
    getToken: p(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE name = ?`),
    tokenByHash: p(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE hash = ?`),
    listTokens: p(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at, name`),
    bindWallet: p(
      'INSERT INTO wallets (volunteer, address, bound_at) VALUES (?, ?, ?) ON CONFLICT (volunteer) DO NOTHING',
    ),
    deleteWallet: p('DELETE FROM wallets WHERE volunteer = ?'),
    walletOf: p('SELECT volunteer, address, bound_at FROM wallets WHERE volunteer = ?'),
    volunteersOfWallet: p(
      'SELECT volunteer FROM wallets WHERE address = ? COLLATE NOCASE ORDER BY volunteer',
    ),
    putReport: p(
      'INSERT OR REPLACE INTO allreduce_reports (round, reporter_peer, received_at, doc) VALUES (?, ?, ?, ?)',
    ),
    pruneReports: p('DELETE FROM allreduce_reports WHERE received_at < ?'),
    reportsBefore: p(
      'SELECT doc FROM allreduce_reports WHERE received_at < ? ORDER BY received_at, reporter_peer',
    ),
    getReport: p('SELECT doc FROM allreduce_reports WHERE round = ? AND reporter_peer = ?'),
    deleteReport: p('DELETE FROM allreduce_reports WHERE round = ? AND reporter_peer = ?'),
    deleteToken: p('DELETE FROM tokens WHERE name = ?'),
    reportsOf: p('SELECT doc FROM allreduce_reports WHERE round = ? ORDER BY received_at, reporter_peer'),
  };
}

export class SqliteStore implements HubStore {
  readonly #db: SqliteDatabase;
  readonly #q: ReturnType<typeof prepareStatements>;
  /**
   * Parsed jobs by id. A job's manifest can be large (a WGSL job lists every shard) and is read on
   * every lease and result; only its status ever changes, through putJob, which refreshes this.
   * A rolled-back transaction clears it, since it may hold a put that never committed. Bounded
   * (least recently used out first): it used to keep every job of the hub's history.
   */
  readonly #jobs = new Map<string, JobRecord>();
  /** The open group commit, if any: BEGIN was run and COMMIT is scheduled. */
  /** The open group commit: settled when it is on the file. */
  #group: Deferred<void> | undefined;

  readonly #groupWindowMs: number;

  /**
   * @param path the SQLite file, created when absent.
   * @param opts.groupWindowMs how long a group commit stays open for more changes (default 2 ms;
   *   0: until the end of this turn of the event loop). Longer groups mean fewer synced commits
   *   under load, and at most this much more latency before a result is acknowledged.
   */
  constructor(path: string, opts: { readonly groupWindowMs?: number } = {}) {
    this.#groupWindowMs = opts.groupWindowMs ?? 2;
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.function('hearth_credit_units', { deterministic: true }, legacyCreditUnits);
    this.#migrate();
    this.#q = prepareStatements(this.#db);
  }

  #migrate(): void {
    const version = this.#db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new HearthError(
        'store/failed',
        `hub database: schema version ${version} is newer than this hub knows (${MIGRATIONS.length}); run a newer hearth.`,
        { details: { version, known: MIGRATIONS.length } },
      );
    }
    // Up to date: write nothing. Another process (the hub, `hearth token`) may have the file open,
    // and two deferred transactions that both upgrade to writing fail at once with SQLITE_BUSY.
    if (version === MIGRATIONS.length) return;
    this.#db
      .transaction(() => {
        // Read again under the write lock: another process may have migrated meanwhile.
        const now = this.#db.pragma('user_version', { simple: true }) as number;
        // SCHEMA is version 0 (a new file, or one from before versions were kept).
        if (now === 0) this.#db.exec(SCHEMA);
        for (const sql of MIGRATIONS.slice(now)) this.#db.exec(sql);
        this.#db.pragma(`user_version = ${MIGRATIONS.length}`);
      })
      .immediate();
  }

  transaction<T>(fn: () => T, opts: TransactionOptions = {}): T {
    const db = this.#db;
    if (!db.inTransaction) {
      if (opts.group) this.#openGroup();
    } else if (this.#group && !opts.group && !this.#inFn) {
      // A change that must be durable when it returns: commit the group first, then its own.
      this.#commitGroup();
    }
    // Inside BEGIN (a group, or an outer transaction) better-sqlite3 makes this a savepoint.
    const outer = !this.#inFn;
    this.#inFn = true;
    try {
      // IMMEDIATE takes the write lock up front, waiting (busy timeout) for another process's
      // writer, where a deferred read-then-write would fail with SQLITE_BUSY: the hub and
      // `hearth token … --db` share the file.
      return db.inTransaction ? db.transaction(fn)() : db.transaction(fn).immediate();
    } catch (e) {
      this.#jobs.clear();
      throw e;
    } finally {
      if (outer) this.#inFn = false;
    }
  }
  /** True while a transaction's fn runs (grouped or not): nested calls join it. */
  #inFn = false;

  settled(): Promise<void> {
    return this.#group?.promise ?? Promise.resolve();
  }

  #openGroup(): void {
    // Nobody may be waiting (a group of leases only): deferred() keeps a failure from being unhandled.
    const group = deferred<void>();
    this.#db.exec('BEGIN IMMEDIATE');
    this.#group = group;
    // Every change that arrives meanwhile joins it: one sync for all of them.
    if (this.#groupWindowMs > 0) setTimeout(() => this.#commitGroup(), this.#groupWindowMs);
    else setImmediate(() => this.#commitGroup());
  }

  #commitGroup(): void {
    const g = this.#group;
    if (!g) return;
    this.#group = undefined;
    try {
      this.#db.exec('COMMIT');
      g.resolve();
    } catch (e) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      this.#jobs.clear();
      g.reject(e);
    }
  }
  putJob(j: JobRecord): void {
    this.#q.putJob.run(...jobParams(j));
    this.#remember(j);
  }
  getJob(id: string): JobRecord | undefined {
    const hit = this.#jobs.get(id);
    if (hit) {
      // Most recently used last: what falls out first is what nobody asked for longest.
      this.#jobs.delete(id);
      this.#jobs.set(id, hit);
      return hit;
    }
    const r = this.#q.getJob.get(id) as Doc | undefined;
    if (!r) return undefined;
    const j = JSON.parse(r.doc) as JobRecord;
    this.#remember(j);
    return j;
  }
  /**
   * Refreshes the parsed-job cache with a job another connection writes (a JournaledStore's
   * writer thread): a read here must never answer an older state from the cache.
   */
  noteJob(j: JobRecord): void {
    this.#remember(j);
  }
  #remember(j: JobRecord): void {
    this.#jobs.delete(j.id);
    this.#jobs.set(j.id, j);
    if (this.#jobs.size > JOB_CACHE_SIZE) this.#jobs.delete(first(this.#jobs.keys(), 'job cache'));
  }
  /** Parsed jobs held in memory (at most JOB_CACHE_SIZE): for tests and the hub's stats. */
  get cachedJobs(): number {
    return this.#jobs.size;
  }
  listJobs(): JobRecord[] {
    return docs(this.#q.listJobs.all());
  }
  runningJobs(): JobRecord[] {
    return (this.#q.runningJobs.all() as { id: string }[]).map((r) => jobOf(this, r.id));
  }
  putShard(s: ShardRecord): void {
    this.#q.putShard.run(...shardParams(s));
  }
  availableShard(job: string, volunteer: string, honeypot: boolean): AvailableShard | undefined {
    const q = honeypot ? this.#q.availableHoneypot : this.#q.available;
    const r = q.get({ job, volunteer }) as { doc: string; replicas: number } | undefined;
    return r ? { shard: JSON.parse(r.doc) as ShardRecord, replicas: r.replicas } : undefined;
  }
  replicasOf(shard: string): number {
    return (this.#q.replicasOf.get(shard) as { replicas: number } | undefined)?.replicas ?? 0;
  }
  hasOpenShards(job: string): boolean {
    return this.#q.hasOpenShards.get(job) !== undefined;
  }
  shardStats(job: string): ShardStats {
    return this.#q.shardStats.get(job) as ShardStats;
  }
  getShard(id: string): ShardRecord | undefined {
    const r = this.#q.getShard.get(id) as Doc | undefined;
    return r ? (JSON.parse(r.doc) as ShardRecord) : undefined;
  }
  shardsOfJob(job: string): ShardRecord[] {
    return docs(this.#q.shardsOfJob.all(job));
  }
  openShards(): ShardRecord[] {
    return docs(this.#q.openShards.all());
  }
  putLease(l: LeaseRecord): void {
    this.#q.putLease.run(...leaseParams(l));
  }
  deleteLease(id: string): void {
    this.#q.deleteLease.run(id);
  }
  leasesOfShard(shard: string): LeaseRecord[] {
    return docs(this.#q.leasesOfShard.all(shard));
  }
  leasesOfVolunteer(volunteer: string): LeaseRecord[] {
    return docs(this.#q.leasesOfVolunteer.all(volunteer));
  }
  leasesOfJob(job: string): LeaseRecord[] {
    return docs(this.#q.leasesOfJob.all(job));
  }
  expiredLeases(now: number): LeaseRecord[] {
    return docs(this.#q.expiredLeases.all(now));
  }
  putResult(r: ResultRecord): void {
    // Bytes go in their own rows as BLOBs; the document keeps everything else.
    const doc = resultDoc(r);
    if (this.#q.addResult.run(r.id, r.shard, r.volunteer, r.receivedAt, doc).changes === 0) {
      this.#q.replaceResult.run(r.receivedAt, doc, r.id);
      this.#q.delOutputs.run(r.id);
    }
    r.outputs.forEach((o, i) => {
      this.#q.putOutput.run(...outputParams(r, o, i));
    });
  }
  setResultStatus(id: string, status: ResultStatus): void {
    this.#q.setResultStatus.run(status, id);
  }
  resultsOfShard(shard: string): ResultRecord[] {
    return (this.#q.resultsOfShard.all(shard) as ResultRow[]).map((row) => this.#result(row));
  }
  #result(row: ResultRow): ResultRecord {
    const outs = this.#q.outputsOf.all(row.id) as {
      name: string;
      dtype: DType;
      shape: string;
      sha256: string;
      data: Buffer;
    }[];
    return {
      ...(JSON.parse(row.doc) as Omit<ResultRecord, 'outputs'>),
      outputs: outs.map((o) => ({
        name: o.name,
        dtype: o.dtype,
        shape: JSON.parse(o.shape) as number[],
        sha256: o.sha256,
        data: new Uint8Array(o.data).slice().buffer,
      })),
    };
  }
  getVolunteer(id: string): VolunteerRecord | undefined {
    const r = this.#q.getVolunteer.get(id) as Doc | undefined;
    return r ? (JSON.parse(r.doc) as VolunteerRecord) : undefined;
  }
  putVolunteer(v: VolunteerRecord): void {
    this.#q.putVolunteer.run(...volunteerParams(v));
  }
  addCredit(e: LedgerEntry): boolean {
    // The primary key (volunteer, shard) is what makes credit exactly-once, even across restarts.
    return this.#q.addCredit.run(...creditParams(e)).changes === 1;
  }
  setCreditStatus(volunteer: string, shard: string, status: CreditStatus): void {
    this.#q.setCredit.run(status, volunteer, shard);
  }
  voidPendingCredit(job: string): number {
    return this.#q.voidPending.run(job).changes;
  }
  ledger(volunteer?: string, status?: CreditStatus): LedgerEntry[] {
    const q = this.#q;
    if (status === undefined) {
      return ledgerEntries(volunteer === undefined ? q.ledgerAll.all() : q.ledgerOf.all(volunteer));
    }
    return ledgerEntries(
      volunteer === undefined ? q.ledgerAllWith.all(status) : q.ledgerOfWith.all(volunteer, status),
    );
  }
  payoutLedger(address: string, status?: CreditStatus): LedgerEntry[] {
    const all = ledgerEntries(this.#q.ledgerOfPayout.all(address));
    return status === undefined ? all : all.filter((e) => e.status === status);
  }
  jobLedger(job: string): LedgerEntry[] {
    return this.ledgerOfJob(job);
  }
  bindWallet(b: WalletBinding): WalletBinding {
    if (this.#q.bindWallet.run(b.volunteer, b.address, b.boundAt).changes === 1) return b;
    return defined(this.walletOf(b.volunteer), 'the binding in force');
  }
  /** Undoes a binding (a JournaledStore's rolled-back transaction); not part of HubStore. */
  deleteWallet(volunteer: string): void {
    this.#q.deleteWallet.run(volunteer);
  }
  walletOf(volunteer: string): WalletBinding | undefined {
    const r = this.#q.walletOf.get(volunteer) as WalletRow | undefined;
    return r ? wallet(r) : undefined;
  }
  volunteersOfWallet(address: string): string[] {
    return (this.#q.volunteersOfWallet.all(address) as { volunteer: string }[]).map((r) => r.volunteer);
  }
  putToken(t: TokenRecord): void {
    this.#q.putToken.run(...tokenRow(t));
  }
  addToken(t: TokenRecord): boolean {
    return this.#q.addToken.run(...tokenRow(t)).changes === 1;
  }
  getToken(name: string): TokenRecord | undefined {
    const r = this.#q.getToken.get(name) as TokenRow | undefined;
    return r ? token(r) : undefined;
  }
  tokenByHash(hash: string): TokenRecord | undefined {
    const r = this.#q.tokenByHash.get(hash) as TokenRow | undefined;
    return r ? token(r) : undefined;
  }
  listTokens(): TokenRecord[] {
    return (this.#q.listTokens.all() as TokenRow[]).map(token);
  }
  putAllReduceReport(r: AllReduceReportRecord): void {
    this.#q.putReport.run(r.round, r.reporterPeer, r.receivedAt, JSON.stringify(r));
  }
  allReduceReports(round: string): AllReduceReportRecord[] {
    return docs(this.#q.reportsOf.all(round));
  }
  pruneAllReduceReports(before: number): number {
    return this.#q.pruneReports.run(before).changes;
  }
  // Beyond HubStore: what JournaledStore needs to undo a token or report it wrote straight to the
  // file inside a transaction that then threw.
  /** Deletes a token outright (JournaledStore's undo of a create; revoking is `putToken`). */
  deleteToken(name: string): void {
    this.#q.deleteToken.run(name);
  }
  /** One reporter's report of a round. */
  allReduceReport(round: string, reporterPeer: string): AllReduceReportRecord | undefined {
    const r = this.#q.getReport.get(round, reporterPeer) as Doc | undefined;
    return r ? (JSON.parse(r.doc) as AllReduceReportRecord) : undefined;
  }
  deleteAllReduceReport(round: string, reporterPeer: string): void {
    this.#q.deleteReport.run(round, reporterPeer);
  }
  /**
   * Runs a JournaledStore group's writes (WRITE_SQL names and parameters) in one transaction on
   * this connection: the writer when it has no thread of its own.
   */
  runWrites(ops: readonly WriteOp[]): void {
    const q = this.#q;
    const run = (op: WriteOp): void => {
      if (q[op.sql].run(...op.params).changes === 0 && op.unchanged) for (const o of op.unchanged) run(o);
    };
    this.transaction(() => {
      for (const op of ops) run(op);
    });
  }
  /** One ledger entry (JournaledStore: is a credit it no longer holds in memory on the file?). */
  credit(volunteer: string, shard: string): LedgerEntry | undefined {
    const r = this.#q.credit.get(volunteer, shard) as LedgerRow | undefined;
    return r ? ledgerEntry(r) : undefined;
  }
  /** A job's ledger entries (JournaledStore loads them when the job comes back into memory). */
  ledgerOfJob(job: string): LedgerEntry[] {
    return ledgerEntries(this.#q.ledgerOfJob.all(job));
  }
  /** One result by id, with its bytes. */
  result(id: string): ResultRecord | undefined {
    const row = this.#q.getResult.get(id) as ResultRow | undefined;
    return row ? this.#result(row) : undefined;
  }
  /** How many results a shard has (pending or judged). */
  resultCount(shard: string): number {
    return (this.#q.resultCount.get(shard) as { n: number }).n;
  }
  /** The reports `pruneAllReduceReports(before)` would forget. */
  allReduceReportsBefore(before: number): AllReduceReportRecord[] {
    return docs(this.#q.reportsBefore.all(before));
  }
  close(): void {
    this.#commitGroup();
    this.#db.close();
  }
}
