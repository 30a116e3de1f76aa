// HubStore on one SQLite file (better-sqlite3 v12: v13 needs Node 22). WAL so readers never block
// the writer; synchronous=FULL so that what a transaction committed survives a power cut, not only
// a process crash — "accepted" must mean durable (DESIGN.md invariant 2).
import Database, { type SqliteDatabase, type SqliteStatement } from 'better-sqlite3';
import type { DType } from '../core/tensor.ts';
import type {
  CreditStatus,
  HubStore,
  JobRecord,
  LeaseRecord,
  LedgerEntry,
  ResultRecord,
  ShardRecord,
  TokenRecord,
  VolunteerRecord,
} from './store.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (id TEXT PRIMARY KEY, job TEXT NOT NULL, idx INTEGER NOT NULL,
  status TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS shards_job ON shards (job, idx);
CREATE INDEX IF NOT EXISTS shards_status ON shards (status);
CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, shard TEXT NOT NULL, volunteer TEXT NOT NULL,
  deadline INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS leases_shard ON leases (shard);
CREATE INDEX IF NOT EXISTS leases_volunteer ON leases (volunteer);
CREATE INDEX IF NOT EXISTS leases_deadline ON leases (deadline);
CREATE TABLE IF NOT EXISTS results (id TEXT PRIMARY KEY, shard TEXT NOT NULL, received_at INTEGER NOT NULL,
  doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS results_shard ON results (shard);
CREATE TABLE IF NOT EXISTS result_outputs (result TEXT NOT NULL, i INTEGER NOT NULL, name TEXT NOT NULL,
  dtype TEXT NOT NULL, shape TEXT NOT NULL, sha256 TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (result, i));
CREATE TABLE IF NOT EXISTS volunteers (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (volunteer TEXT NOT NULL, shard TEXT NOT NULL, job TEXT NOT NULL,
  credits REAL NOT NULL, status TEXT NOT NULL, PRIMARY KEY (volunteer, shard));
CREATE TABLE IF NOT EXISTS tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL, revoked_at INTEGER);
`;

type TokenRow = { name: string; hash: string; created_at: number; revoked_at: number | null };
const token = (r: TokenRow): TokenRecord => ({
  name: r.name,
  hash: r.hash,
  createdAt: r.created_at,
  ...(r.revoked_at === null ? {} : { revokedAt: r.revoked_at }),
});

type Doc = { doc: string };
const docs = <T>(rows: unknown[]): T[] => (rows as Doc[]).map((r) => JSON.parse(r.doc) as T);

/**
 * HubStore on a SQLite file: WAL, one transaction per state change.
 *
 * @example
 * const store = new SqliteStore('/var/lib/hearth/hub.db');
 * const scheduler = new Scheduler(store);
 * // …
 * store.close();
 */
export class SqliteStore implements HubStore {
  readonly #db: SqliteDatabase;
  readonly #q: Record<string, SqliteStatement>;

  constructor(path: string) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.exec(SCHEMA);
    const p = (sql: string) => this.#db.prepare(sql);
    this.#q = {
      putJob: p('INSERT OR REPLACE INTO jobs (id, created_at, doc) VALUES (?, ?, ?)'),
      getJob: p('SELECT doc FROM jobs WHERE id = ?'),
      listJobs: p('SELECT doc FROM jobs ORDER BY created_at, id'),
      putShard: p('INSERT OR REPLACE INTO shards (id, job, idx, status, doc) VALUES (?, ?, ?, ?, ?)'),
      getShard: p('SELECT doc FROM shards WHERE id = ?'),
      shardsOfJob: p('SELECT doc FROM shards WHERE job = ? ORDER BY idx'),
      openShards: p(
        `SELECT s.doc FROM shards s JOIN jobs j ON j.id = s.job WHERE s.status = 'open'
         ORDER BY j.created_at, j.id, s.idx`,
      ),
      putLease: p(
        'INSERT OR REPLACE INTO leases (id, shard, volunteer, deadline, doc) VALUES (?, ?, ?, ?, ?)',
      ),
      deleteLease: p('DELETE FROM leases WHERE id = ?'),
      leasesOfShard: p('SELECT doc FROM leases WHERE shard = ? ORDER BY id'),
      leasesOfVolunteer: p('SELECT doc FROM leases WHERE volunteer = ? ORDER BY id'),
      expiredLeases: p('SELECT doc FROM leases WHERE deadline < ? ORDER BY deadline, id'),
      putResult: p('INSERT OR REPLACE INTO results (id, shard, received_at, doc) VALUES (?, ?, ?, ?)'),
      delOutputs: p('DELETE FROM result_outputs WHERE result = ?'),
      putOutput: p(
        'INSERT INTO result_outputs (result, i, name, dtype, shape, sha256, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      resultsOfShard: p('SELECT id, doc FROM results WHERE shard = ? ORDER BY received_at, id'),
      outputsOf: p('SELECT name, dtype, shape, sha256, data FROM result_outputs WHERE result = ? ORDER BY i'),
      getVolunteer: p('SELECT doc FROM volunteers WHERE id = ?'),
      putVolunteer: p('INSERT OR REPLACE INTO volunteers (id, doc) VALUES (?, ?)'),
      addCredit: p(
        'INSERT OR IGNORE INTO ledger (volunteer, shard, job, credits, status) VALUES (?, ?, ?, ?, ?)',
      ),
      setCredit: p('UPDATE ledger SET status = ? WHERE volunteer = ? AND shard = ?'),
      ledgerAll: p('SELECT volunteer, shard, job, credits, status FROM ledger ORDER BY volunteer, shard'),
      ledgerOf: p(
        'SELECT volunteer, shard, job, credits, status FROM ledger WHERE volunteer = ? ORDER BY shard',
      ),
      putToken: p('INSERT OR REPLACE INTO tokens (name, hash, created_at, revoked_at) VALUES (?, ?, ?, ?)'),
      getToken: p('SELECT name, hash, created_at, revoked_at FROM tokens WHERE name = ?'),
      tokenByHash: p('SELECT name, hash, created_at, revoked_at FROM tokens WHERE hash = ?'),
      listTokens: p('SELECT name, hash, created_at, revoked_at FROM tokens ORDER BY created_at, name'),
    };
  }

  transaction<T>(fn: () => T): T {
    // better-sqlite3 turns a nested transaction into a savepoint, so nesting joins the outer one.
    return this.#db.transaction(fn)();
  }
  putJob(j: JobRecord): void {
    this.#q.putJob!.run(j.id, j.createdAt, JSON.stringify(j));
  }
  getJob(id: string): JobRecord | undefined {
    const r = this.#q.getJob!.get(id) as Doc | undefined;
    return r ? (JSON.parse(r.doc) as JobRecord) : undefined;
  }
  listJobs(): JobRecord[] {
    return docs(this.#q.listJobs!.all());
  }
  putShard(s: ShardRecord): void {
    this.#q.putShard!.run(s.id, s.job, s.index, s.status, JSON.stringify(s));
  }
  getShard(id: string): ShardRecord | undefined {
    const r = this.#q.getShard!.get(id) as Doc | undefined;
    return r ? (JSON.parse(r.doc) as ShardRecord) : undefined;
  }
  shardsOfJob(job: string): ShardRecord[] {
    return docs(this.#q.shardsOfJob!.all(job));
  }
  openShards(): ShardRecord[] {
    return docs(this.#q.openShards!.all());
  }
  putLease(l: LeaseRecord): void {
    this.#q.putLease!.run(l.id, l.shard, l.volunteer, l.deadline, JSON.stringify(l));
  }
  deleteLease(id: string): void {
    this.#q.deleteLease!.run(id);
  }
  leasesOfShard(shard: string): LeaseRecord[] {
    return docs(this.#q.leasesOfShard!.all(shard));
  }
  leasesOfVolunteer(volunteer: string): LeaseRecord[] {
    return docs(this.#q.leasesOfVolunteer!.all(volunteer));
  }
  expiredLeases(now: number): LeaseRecord[] {
    return docs(this.#q.expiredLeases!.all(now));
  }
  putResult(r: ResultRecord): void {
    // Bytes go in their own rows as BLOBs; the document keeps everything else.
    const { outputs, ...rest } = r;
    this.#q.putResult!.run(r.id, r.shard, r.receivedAt, JSON.stringify(rest));
    this.#q.delOutputs!.run(r.id);
    outputs.forEach((o, i) => {
      this.#q.putOutput!.run(
        r.id,
        i,
        o.name,
        o.dtype,
        JSON.stringify(o.shape),
        o.sha256,
        Buffer.from(o.data),
      );
    });
  }
  resultsOfShard(shard: string): ResultRecord[] {
    return (this.#q.resultsOfShard!.all(shard) as { id: string; doc: string }[]).map((row) => {
      const outs = this.#q.outputsOf!.all(row.id) as {
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
    });
  }
  getVolunteer(id: string): VolunteerRecord | undefined {
    const r = this.#q.getVolunteer!.get(id) as Doc | undefined;
    return r ? (JSON.parse(r.doc) as VolunteerRecord) : undefined;
  }
  putVolunteer(v: VolunteerRecord): void {
    this.#q.putVolunteer!.run(v.id, JSON.stringify(v));
  }
  addCredit(e: LedgerEntry): boolean {
    // The primary key (volunteer, shard) is what makes credit exactly-once, even across restarts.
    return this.#q.addCredit!.run(e.volunteer, e.shard, e.job, e.credits, e.status).changes === 1;
  }
  setCreditStatus(volunteer: string, shard: string, status: CreditStatus): void {
    this.#q.setCredit!.run(status, volunteer, shard);
  }
  ledger(volunteer?: string): LedgerEntry[] {
    return (
      volunteer === undefined ? this.#q.ledgerAll!.all() : this.#q.ledgerOf!.all(volunteer)
    ) as LedgerEntry[];
  }
  putToken(t: TokenRecord): void {
    this.#q.putToken!.run(t.name, t.hash, t.createdAt, t.revokedAt ?? null);
  }
  getToken(name: string): TokenRecord | undefined {
    const r = this.#q.getToken!.get(name) as TokenRow | undefined;
    return r ? token(r) : undefined;
  }
  tokenByHash(hash: string): TokenRecord | undefined {
    const r = this.#q.tokenByHash!.get(hash) as TokenRow | undefined;
    return r ? token(r) : undefined;
  }
  listTokens(): TokenRecord[] {
    return (this.#q.listTokens!.all() as TokenRow[]).map(token);
  }
  close(): void {
    this.#db.close();
  }
}
