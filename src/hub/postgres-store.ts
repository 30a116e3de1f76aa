import { defined, first } from '../core/at.ts';
import { type Deferred, deferred } from '../core/deferred.ts';
import { HearthError } from '../core/errors.ts';
import { randomId } from '../core/ids.ts';
import type { DType } from '../core/tensor.ts';
import type { Manifest } from '../protocol/manifest.ts';
import { readMigrationFiles } from './migration-files.ts';
import type { PeerDirectory } from './peer-directory.ts';
import { PgChannel, type Statement } from './pg-channel.ts';
import { PgPeers, type PgPeersOptions } from './pg-peers.ts';
import { PgRounds } from './pg-rounds.ts';
import type { RoundExchange } from './rounds.ts';
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
import type { StoreNews } from './store-news.ts';

const MIGRATIONS_DIR = new URL('./pg-migrations/', import.meta.url);

/** The schema versions this code knows, in order. */
export const PG_MIGRATIONS = readMigrationFiles(MIGRATIONS_DIR, 'PostgreSQL store');

/** The NOTIFY channel of hub news (store-news.ts). */
const NEWS_CHANNEL = 'hearth_news';

/** Parsed manifests a PostgresStore keeps (a manifest never changes once its job is submitted). */
export const MANIFEST_CACHE_SIZE = 256;

/** An arbitrary, fixed key for the advisory lock under which hubs migrate (one at a time). */
const MIGRATION_LOCK = 0x6865_6172; // 'hear'

export interface PostgresStoreOptions {
  /** Delay before the synced commit that settles grouped changes (default 2 ms). */
  readonly groupWindowMs?: number;
  /** Shown in pg_stat_activity (default 'hearth-hub'). */
  readonly applicationName?: string;
  /** The peer directory's heartbeat and lease (pg-peers.ts). */
  readonly peers?: PgPeersOptions;
}

type JobRow = { id: string; doc: Omit<JobRecord, 'manifest'>; manifest?: Manifest };
type LedgerRow = {
  volunteer: string;
  shard: string;
  job: string;
  credits: string;
  status: CreditStatus;
  site: string | null;
  payout: string | null;
  payout_units: string | null;
};
type TokenRow = {
  name: string;
  hash: string;
  created_at: number;
  revoked_at: number | null;
  budget: string | null;
};
type WalletRow = { volunteer: string; address: string; bound_at: number };
type StoredOutput = { name: string; dtype: DType; shape: number[]; sha256: string };
type ResultRow = { id: string; doc: Omit<ResultRecord, 'outputs'> & { outputs: StoredOutput[] } };
type OutputRow = { result: string; i: number; data: Uint8Array };

const LEDGER =
  'volunteer, shard, job, credits::text AS credits, status, site, payout, payout_units::text AS payout_units';
const ledgerEntry = (r: LedgerRow): LedgerEntry => ({
  volunteer: r.volunteer,
  shard: r.shard,
  job: r.job,
  credits: BigInt(r.credits),
  status: r.status,
  ...(r.site === null || r.payout === null
    ? {}
    : {
        site: r.site,
        payout: r.payout,
        ...(r.payout_units === null ? {} : { payoutCredits: BigInt(r.payout_units) }),
      }),
});
const token = (r: TokenRow): TokenRecord => ({
  name: r.name,
  hash: r.hash,
  createdAt: r.created_at,
  ...(r.revoked_at === null ? {} : { revokedAt: r.revoked_at }),
  ...(r.budget === null ? {} : { budget: BigInt(r.budget) }),
});
const TOKEN = 'name, hash, created_at, revoked_at, budget::text AS budget';
const tokenParams = (t: TokenRecord) => [
  t.name,
  t.hash,
  t.createdAt,
  t.revokedAt ?? null,
  t.budget === undefined ? null : t.budget.toString(),
];
const wallet = (r: WalletRow): WalletBinding => ({
  volunteer: r.volunteer,
  address: r.address,
  boundAt: Number(r.bound_at),
});
/** A synced write: its commit flushes the WAL, and with it every asynchronous commit before it. */
const SYNC_SQL =
  'INSERT INTO hub_sync (pid, at) VALUES (pg_backend_pid(), now()) ON CONFLICT (pid) DO UPDATE SET at = excluded.at';
const json = (x: unknown): string => JSON.stringify(x);

/**
 * HubStore on a PostgreSQL database that several hubs may share.
 *
 * @example
 * const store = new PostgresStore('postgres://hearth@127.0.0.1:5432/hearth'); // migrates
 * const hub = await startHub({ store, blobDir, maxBlobBytes, allowedOrigins: [] });
 */
export class PostgresStore implements HubStore {
  readonly #pg: PgChannel;
  readonly #groupWindowMs: number;
  /** Writes of the open transaction not yet sent: they go with the next read or the COMMIT. */
  #pending: Statement[] = [];
  /** 0 outside a transaction; 1 in one; more inside nested ones (savepoints). */
  #depth = 0;
  readonly #manifests = new Map<string, Manifest>();
  /** Grouped commits not yet known durable, and the promise of the synced commit that will be. */
  #unsettled: Deferred<void> | undefined;
  #syncTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Shards this transaction has locked (`getShard` inside a change), with their leases once read.
   * While the lock is held no other hub can add or end a lease of the shard (the replica
   * triggers write its row), so a second `leasesOfShard` in the change — a result ends its lease,
   * then a judged shard drops the rest — is answered here, with this change's own writes applied.
   */
  #locked = new Map<string, LeaseRecord[] | undefined>();
  /** COMMITs of grouped changes sent and not yet answered. */
  #commits: Promise<void>[] = [];

  constructor(url: string, opts: PostgresStoreOptions = {}) {
    this.#groupWindowMs = opts.groupWindowMs ?? 2;
    this.#pg = new PgChannel(url, opts.applicationName ? { applicationName: opts.applicationName } : {});
    try {
      this.#migrate();
    } catch (e) {
      this.#pg.close();
      throw e;
    }
    this.peers = new PgPeers(this.#pg, this.#self, opts.peers);
    this.roundExchange = new PgRounds(this.#pg, this.#self);
  }

  /** This store's name among the hubs (its own notices are not played back to it). */
  readonly #self = randomId('hub-');

  /** Peers of every hub on this database: holders, issued ids, signalling between hubs. */
  readonly peers: PeerDirectory;
  /** All-reduce rounds averaged through the hubs, members on any of them. */
  readonly roundExchange: RoundExchange;

  /**
   * Notices between the hubs on this database: LISTEN/NOTIFY on the worker's own connections,
   * never on the main thread's (a NOTIFY costs the event loop nothing).
   */
  readonly news: StoreNews = {
    publish: (notice) => {
      this.#pg.notify(NEWS_CHANNEL, `${this.#self} ${notice}`).catch(() => {
        // A lost notice delays a push; the database still has the change.
      });
    },
    subscribe: (fn) =>
      this.#pg.listen(NEWS_CHANNEL, (payload) => {
        const space = payload.indexOf(' ');
        if (space < 0 || payload.slice(0, space) === this.#self) return;
        fn(payload.slice(space + 1));
      }),
  };

  #migrate(): void {
    // One hub at a time (an advisory lock held by the transaction); each file once.
    const stmts: Statement[] = [
      { sql: 'BEGIN', want: 'none' },
      { sql: `SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`, want: 'none' },
      {
        sql: 'CREATE TABLE IF NOT EXISTS hearth_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())',
        want: 'none',
      },
      { sql: 'SELECT coalesce(max(version), 0)::int AS v FROM hearth_schema', want: 'rows' },
    ];
    let version: number;
    try {
      const out = this.#pg.run(stmts);
      version = (out[3] as { v: number }[])[0]?.v ?? 0;
    } catch (e) {
      throw new HearthError(
        'store/unavailable',
        `PostgreSQL at ${this.#pg.url} could not be opened: ${(e as Error).message} Check the URL (postgres://USER@HOST:PORT/DATABASE), that the server runs and that the database exists.`,
        { cause: e, details: { url: this.#pg.url } },
      );
    }
    try {
      if (version > PG_MIGRATIONS.length) {
        throw new HearthError(
          'store/failed',
          `PostgreSQL store: schema version ${version} is newer than this hub knows (${PG_MIGRATIONS.length}); run a newer hearth.`,
          { details: { version, known: PG_MIGRATIONS.length } },
        );
      }
      const todo: Statement[] = [];
      PG_MIGRATIONS.slice(version).forEach((m, i) => {
        // A migration file is several statements: a simple query runs them all (no parameters).
        todo.push({ sql: m.sql, want: 'none', simple: true });
        todo.push({
          sql: 'INSERT INTO hearth_schema (version, name) VALUES ($1, $2)',
          params: [version + i + 1, m.name],
          want: 'none',
        });
      });
      this.#pg.run([...todo, { sql: 'COMMIT', want: 'none' }]);
    } catch (e) {
      try {
        this.#pg.run([{ sql: 'ROLLBACK', want: 'none' }]);
      } catch {}
      throw e;
    }
  }

  // --- transactions ---------------------------------------------------------------------------

  transaction<T>(fn: () => T, opts: TransactionOptions = {}): T {
    if (this.#depth > 0) return this.#nested(fn);
    this.#pending.push({ sql: 'BEGIN', want: 'none' });
    // A grouped change does not wait for its WAL to reach the disk: settled() does, for all.
    if (opts.group) this.#pending.push({ sql: 'SET LOCAL synchronous_commit = off', want: 'none' });
    this.#depth = 1;
    try {
      const out = fn();
      this.#pending.push({ sql: 'COMMIT', want: 'none' });
      if (opts.group) {
        // A grouped change's last writes and COMMIT go without a wait (one round trip less per
        // change): what it wrote is durable, and a failure known, at settled(), as promised.
        const stmts = this.#pending;
        this.#pending = [];
        this.#commits.push(this.#pg.post(stmts));
        this.#scheduleSync();
      } else this.#flush();
      return out;
    } catch (e) {
      this.#pending = [];
      try {
        this.#pg.run([{ sql: 'ROLLBACK', want: 'none' }]);
      } catch {}
      // Parsed manifests stay: a manifest never changes, and one put by this rolled-back change
      // is never read without its job's row, which the rollback took away.
      throw e;
    } finally {
      this.#depth = 0;
      this.#locked.clear();
    }
  }

  #nested<T>(fn: () => T): T {
    const name = `s${this.#depth}`;
    this.#pending.push({ sql: `SAVEPOINT ${name}`, want: 'none' });
    this.#depth++;
    try {
      const out = fn();
      this.#pending.push({ sql: `RELEASE SAVEPOINT ${name}`, want: 'none' });
      return out;
    } catch (e) {
      this.#pending.push(
        { sql: `ROLLBACK TO SAVEPOINT ${name}`, want: 'none' },
        { sql: `RELEASE SAVEPOINT ${name}`, want: 'none' },
      );
      // Locks taken and leases read inside the savepoint may be gone with it.
      this.#locked.clear();
      throw e;
    } finally {
      this.#depth--;
    }
  }

  settled(): Promise<void> {
    return this.#unsettled?.promise ?? Promise.resolve();
  }

  #scheduleSync(): void {
    this.#unsettled ??= deferred<void>();
    if (this.#syncTimer) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      const d = this.#unsettled;
      this.#unsettled = undefined;
      if (!d) return;
      const commits = this.#commits;
      this.#commits = [];
      // Every grouped COMMIT answered first (one that failed fails the group), then one synced
      // commit, which flushes the WAL past all of them.
      Promise.all(commits)
        .then(() => this.#pg.sync())
        .then(
          () => d.resolve(),
          (e: unknown) => d.reject(e),
        );
    }, this.#groupWindowMs);
  }

  close(): void {
    this.peers.close();
    if (this.#syncTimer) clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    const d = this.#unsettled;
    this.#unsettled = undefined;
    this.#commits = [];
    if (d) {
      // The grouped commits run before this batch (one connection, in order); a synced write
      // after them makes them durable before the worker goes.
      try {
        this.#pg.run([{ sql: SYNC_SQL, want: 'none' }]);
        // The grouped COMMITs ran before this batch. Their own answers are still on their way and
        // closing drops them: a grouped commit that failed at close is not reported here.
        d.resolve();
      } catch (e) {
        d.reject(e);
      }
    }
    this.#pg.close();
  }

  /** A write: sent with the next read or the COMMIT inside a transaction, at once outside one. */
  #write(sql: string, params: readonly unknown[]): void {
    this.#pending.push({ sql, params, want: 'none' });
    if (this.#depth === 0) this.#flush();
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const stmts = this.#pending;
    this.#pending = [];
    this.#pg.run(stmts);
  }

  /** Reads (after the buffered writes, in one batch): each statement's rows or count. */
  #read(...stmts: Statement[]): unknown[] {
    const before = this.#pending;
    this.#pending = [];
    const out = this.#pg.run([...before, ...stmts]);
    return out.slice(before.length);
  }

  #rows<T>(sql: string, params: readonly unknown[]): T[] {
    return this.#read({ sql, params, want: 'rows' })[0] as T[];
  }

  #count(sql: string, params: readonly unknown[]): number {
    return this.#read({ sql, params, want: 'count' })[0] as number;
  }

  /** `FOR UPDATE` (and its variants) only inside a transaction: outside one a lock ends at once. */
  #lock(clause: string): string {
    return this.#depth > 0 ? ` ${clause}` : '';
  }

  // --- jobs -----------------------------------------------------------------------------------

  putJob(j: JobRecord): void {
    const { manifest, ...doc } = j;
    this.#write(
      `INSERT INTO jobs (id, created_at, status, doc, manifest) VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, doc = excluded.doc, manifest = excluded.manifest`,
      [j.id, j.createdAt, j.status, json(doc), json(manifest)],
    );
    this.#remember(j.id, manifest);
  }

  #remember(id: string, m: Manifest): void {
    this.#manifests.delete(id);
    this.#manifests.set(id, m);
    if (this.#manifests.size > MANIFEST_CACHE_SIZE) {
      this.#manifests.delete(first(this.#manifests.keys(), 'manifest cache'));
    }
  }

  /** Jobs from rows that carry their manifest only where this store had none cached. */
  #jobs(rows: JobRow[]): JobRecord[] {
    return rows.map((r) => {
      let m = this.#manifests.get(r.id);
      if (r.manifest !== undefined && r.manifest !== null) {
        m = r.manifest;
        this.#remember(r.id, m);
      }
      if (!m) {
        const [row] = this.#rows<{ manifest: Manifest }>('SELECT manifest FROM jobs WHERE id = $1', [r.id]);
        if (!row)
          throw new HearthError('job/unknown', `job ${r.id} vanished from the store while being read.`);
        m = row.manifest;
        this.#remember(r.id, m);
      }
      return { ...r.doc, manifest: m } as JobRecord;
    });
  }

  getJob(id: string): JobRecord | undefined {
    const cached = this.#manifests.has(id);
    const rows = this.#rows<JobRow>(
      cached ? 'SELECT id, doc FROM jobs WHERE id = $1' : 'SELECT id, doc, manifest FROM jobs WHERE id = $1',
      [id],
    );
    return this.#jobs(rows)[0];
  }

  listJobs(): JobRecord[] {
    // Manifests come along only for jobs this store has not parsed yet.
    const known = [...this.#manifests.keys()];
    return this.#jobs(
      this.#rows<JobRow>(
        `SELECT id, doc, CASE WHEN id = ANY($1::text[]) THEN NULL ELSE manifest END AS manifest
         FROM jobs ORDER BY created_at, seq`,
        [known],
      ),
    );
  }

  runningJobs(): JobRecord[] {
    const known = [...this.#manifests.keys()];
    return this.#jobs(
      this.#rows<JobRow>(
        `SELECT id, doc, CASE WHEN id = ANY($1::text[]) THEN NULL ELSE manifest END AS manifest
         FROM jobs WHERE status = 'running' ORDER BY created_at, seq`,
        [known],
      ),
    );
  }

  // --- shards ---------------------------------------------------------------------------------

  putShard(s: ShardRecord): void {
    this.#write(
      `INSERT INTO shards (id, job, idx, status, honeypot, wanted, doc) VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, wanted = excluded.wanted, doc = excluded.doc`,
      [s.id, s.job, s.index, s.status, s.honeypot, s.wanted, json(s)],
    );
  }

  getShard(id: string): ShardRecord | undefined {
    // Inside a change, the shard is locked: whoever judges or reopens it next waits for this one.
    const doc = this.#rows<{ doc: ShardRecord }>(
      `SELECT doc FROM shards WHERE id = $1${this.#lock('FOR UPDATE')}`,
      [id],
    )[0]?.doc;
    if (doc && this.#depth > 0 && !this.#locked.has(id)) this.#locked.set(id, undefined);
    return doc;
  }

  shardsOfJob(job: string): ShardRecord[] {
    return this.#rows<{ doc: ShardRecord }>('SELECT doc FROM shards WHERE job = $1 ORDER BY idx', [job]).map(
      (r) => r.doc,
    );
  }

  openShards(): ShardRecord[] {
    return this.#rows<{ doc: ShardRecord }>(
      `SELECT s.doc FROM shards s JOIN jobs j ON j.id = s.job WHERE s.status = 'open'
       ORDER BY j.created_at, j.seq, s.idx`,
      [],
    ).map((r) => r.doc);
  }

  availableShard(job: string, volunteer: string, honeypot: boolean): AvailableShard | undefined {
    // SKIP LOCKED: a shard another hub is leasing or judging right now is not offered; the
    // replica count is read again once its lock is free (READ COMMITTED re-checks a row that
    // changed), so two hubs never lease a shard past what it wants.
    const wants = honeypot ? 's.honeypot' : 'NOT s.honeypot AND s.replicas < s.wanted';
    const r = this.#rows<{ doc: ShardRecord; replicas: number }>(
      `SELECT s.doc, s.replicas FROM shards s
       WHERE s.job = $1 AND s.status = 'open' AND ${wants}
         AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.shard = s.id AND l.volunteer = $2)
         AND NOT EXISTS (SELECT 1 FROM results r WHERE r.shard = s.id AND r.volunteer = $2)
       ORDER BY s.idx LIMIT 1${this.#lock('FOR UPDATE OF s SKIP LOCKED')}`,
      [job, volunteer],
    )[0];
    return r ? { shard: r.doc, replicas: r.replicas } : undefined;
  }

  replicasOf(shard: string): number {
    return (
      this.#rows<{ replicas: number }>('SELECT replicas FROM shards WHERE id = $1', [shard])[0]?.replicas ?? 0
    );
  }

  hasOpenShards(job: string): boolean {
    return (
      this.#rows("SELECT 1 FROM shards WHERE job = $1 AND NOT honeypot AND status = 'open' LIMIT 1", [job])
        .length > 0
    );
  }

  shardStats(job: string): ShardStats {
    const r = this.#rows<ShardStats>(
      `SELECT count(*)::int AS shards,
         count(*) FILTER (WHERE status = 'validated')::int AS validated,
         count(*) FILTER (WHERE status = 'failed')::int AS failed,
         count(*) FILTER (WHERE status = 'open' AND EXISTS (SELECT 1 FROM leases l WHERE l.shard = s.id))::int AS "inFlight",
         count(*) FILTER (WHERE status = 'open' AND EXISTS (SELECT 1 FROM results r WHERE r.shard = s.id))::int AS done
       FROM shards s WHERE job = $1 AND NOT honeypot`,
      [job],
    )[0];
    return r ?? { shards: 0, validated: 0, failed: 0, inFlight: 0, done: 0 };
  }

  // --- leases ---------------------------------------------------------------------------------

  putLease(l: LeaseRecord): void {
    const known = this.#locked.get(l.shard);
    if (known) {
      const rest = known.filter((x) => x.id !== l.id);
      this.#locked.set(
        l.shard,
        [...rest, l].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
      );
    }
    this.#write(
      `INSERT INTO leases (id, shard, job, volunteer, deadline, doc) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)
       ON CONFLICT (id) DO UPDATE SET deadline = excluded.deadline, doc = excluded.doc`,
      [l.id, l.shard, l.job, l.volunteer, l.deadline, json(l)],
    );
  }

  deleteLease(id: string): void {
    for (const [shard, known] of this.#locked) {
      if (known?.some((x) => x.id === id))
        this.#locked.set(
          shard,
          known.filter((x) => x.id !== id),
        );
    }
    this.#write('DELETE FROM leases WHERE id = $1', [id]);
  }

  #leases(where: string, param: unknown, lock = ''): LeaseRecord[] {
    return this.#rows<{ doc: LeaseRecord }>(`SELECT doc FROM leases WHERE ${where} ORDER BY id${lock}`, [
      param,
    ]).map((r) => r.doc);
  }

  leasesOfShard(shard: string): LeaseRecord[] {
    if (this.#depth > 0 && this.#locked.has(shard)) {
      const known = this.#locked.get(shard);
      if (known) return [...known];
      const read = this.#leases('shard = $1', shard);
      this.#locked.set(shard, read);
      return [...read];
    }
    return this.#leases('shard = $1', shard);
  }

  leasesOfVolunteer(volunteer: string): LeaseRecord[] {
    return this.#leases('volunteer = $1', volunteer);
  }

  leasesOfJob(job: string): LeaseRecord[] {
    return this.#leases('job = $1', job);
  }

  expiredLeases(now: number): LeaseRecord[] {
    // Two hubs sweeping at once split the expired leases between them rather than both ending one.
    return this.#rows<{ doc: LeaseRecord }>(
      `SELECT doc FROM leases WHERE deadline < $1 ORDER BY deadline, id${this.#lock('FOR UPDATE SKIP LOCKED')}`,
      [now],
    ).map((r) => r.doc);
  }

  // --- results --------------------------------------------------------------------------------

  putResult(r: ResultRecord): void {
    // Bytes in their own rows; the document keeps the outputs' names, shapes and hashes.
    const { outputs, ...rest } = r;
    const doc = { ...rest, outputs: outputs.map(({ data: _, ...o }) => o) };
    this.#write(
      `INSERT INTO results (id, shard, volunteer, received_at, doc) VALUES ($1, $2, $3, $4, $5::text::jsonb)
       ON CONFLICT (id) DO UPDATE SET received_at = excluded.received_at, doc = excluded.doc`,
      [r.id, r.shard, r.volunteer, r.receivedAt, json(doc)],
    );
    this.#write('DELETE FROM result_outputs WHERE result = $1', [r.id]);
    outputs.forEach((o, i) => {
      this.#write('INSERT INTO result_outputs (result, i, data) VALUES ($1, $2, $3)', [
        r.id,
        i,
        Buffer.from(o.data),
      ]);
    });
  }

  setResultStatus(id: string, status: ResultStatus): void {
    this.#write("UPDATE results SET doc = jsonb_set(doc, '{status}', to_jsonb($1::text)) WHERE id = $2", [
      status,
      id,
    ]);
  }

  resultsOfShard(shard: string): ResultRecord[] {
    const [rows, outs] = this.#read(
      {
        sql: 'SELECT id, doc FROM results WHERE shard = $1 ORDER BY received_at, id',
        params: [shard],
        want: 'rows',
      },
      {
        sql: `SELECT o.result, o.i, o.data FROM result_outputs o JOIN results r ON r.id = o.result
              WHERE r.shard = $1 ORDER BY o.result, o.i`,
        params: [shard],
        want: 'rows',
      },
    ) as [ResultRow[], OutputRow[]];
    const bytes = new Map<string, Uint8Array[]>();
    for (const o of outs) {
      const list = bytes.get(o.result) ?? [];
      list[o.i] = o.data;
      bytes.set(o.result, list);
    }
    return rows.map((row) => {
      const data = bytes.get(row.id) ?? [];
      return {
        ...row.doc,
        outputs: row.doc.outputs.map((o, i) => {
          const b = data[i] ?? new Uint8Array(0);
          return { ...o, data: b.slice().buffer as ArrayBuffer };
        }),
      };
    });
  }

  // --- volunteers -----------------------------------------------------------------------------

  getVolunteer(id: string): VolunteerRecord | undefined {
    return this.#rows<{ doc: VolunteerRecord }>('SELECT doc FROM volunteers WHERE id = $1', [id])[0]?.doc;
  }

  putVolunteer(v: VolunteerRecord): void {
    this.#write(
      `INSERT INTO volunteers (id, doc) VALUES ($1, $2::text::jsonb)
       ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`,
      [v.id, json(v)],
    );
  }

  // --- ledger ---------------------------------------------------------------------------------

  addCredit(e: LedgerEntry): boolean {
    // The primary key (volunteer, shard) makes credit exactly-once across hubs and restarts.
    return (
      this.#count(
        `INSERT INTO ledger (volunteer, shard, job, credits, status, site, payout, payout_units)
         VALUES ($1, $2, $3, $4::text::numeric, $5, $6, $7, $8::text::numeric) ON CONFLICT DO NOTHING`,
        [
          e.volunteer,
          e.shard,
          e.job,
          e.credits.toString(),
          e.status,
          e.site ?? null,
          e.payout ?? null,
          e.payoutCredits === undefined ? null : e.payoutCredits.toString(),
        ],
      ) === 1
    );
  }

  setCreditStatus(volunteer: string, shard: string, status: CreditStatus): void {
    this.#write('UPDATE ledger SET status = $1 WHERE volunteer = $2 AND shard = $3', [
      status,
      volunteer,
      shard,
    ]);
  }

  voidPendingCredit(job: string): number {
    return this.#count("UPDATE ledger SET status = 'void' WHERE job = $1 AND status = 'pending'", [job]);
  }

  ledger(volunteer?: string, status?: CreditStatus): LedgerEntry[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (volunteer !== undefined) {
      params.push(volunteer);
      where.push(`volunteer = $${params.length}`);
    }
    if (status !== undefined) {
      params.push(status);
      where.push(`status = $${params.length}`);
    }
    return this.#rows<LedgerRow>(
      `SELECT ${LEDGER} FROM ledger${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY volunteer, shard`,
      params,
    ).map(ledgerEntry);
  }

  payoutLedger(address: string, status?: CreditStatus): LedgerEntry[] {
    const all = this.#rows<LedgerRow>(
      `SELECT ${LEDGER} FROM ledger WHERE lower(payout) = lower($1) ORDER BY volunteer, shard`,
      [address],
    ).map(ledgerEntry);
    return status === undefined ? all : all.filter((e) => e.status === status);
  }

  jobLedger(job: string): LedgerEntry[] {
    return this.#rows<LedgerRow>(`SELECT ${LEDGER} FROM ledger WHERE job = $1 ORDER BY volunteer, shard`, [
      job,
    ]).map(ledgerEntry);
  }

  // --- wallets --------------------------------------------------------------------------------

  bindWallet(b: WalletBinding): WalletBinding {
    // The primary key makes a binding for good, across hubs: a second insert changes nothing.
    if (
      this.#count(
        'INSERT INTO wallets (volunteer, address, bound_at) VALUES ($1, $2, $3) ON CONFLICT (volunteer) DO NOTHING',
        [b.volunteer, b.address, b.boundAt],
      ) === 1
    ) {
      return b;
    }
    return defined(this.walletOf(b.volunteer), 'the binding in force');
  }

  walletOf(volunteer: string): WalletBinding | undefined {
    const r = this.#rows<WalletRow>('SELECT volunteer, address, bound_at FROM wallets WHERE volunteer = $1', [
      volunteer,
    ])[0];
    return r ? wallet(r) : undefined;
  }

  volunteersOfWallet(address: string): string[] {
    return this.#rows<{ volunteer: string }>(
      'SELECT volunteer FROM wallets WHERE lower(address) = lower($1) ORDER BY volunteer',
      [address],
    ).map((r) => r.volunteer);
  }

  // --- tokens ---------------------------------------------------------------------------------

  putToken(t: TokenRecord): void {
    this.#write(
      `INSERT INTO tokens (name, hash, created_at, revoked_at, budget) VALUES ($1, $2, $3, $4, $5::text::numeric)
       ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at,
         revoked_at = excluded.revoked_at, budget = excluded.budget`,
      tokenParams(t),
    );
  }

  addToken(t: TokenRecord): boolean {
    return (
      this.#count(
        'INSERT INTO tokens (name, hash, created_at, revoked_at, budget) VALUES ($1, $2, $3, $4, $5::text::numeric) ON CONFLICT (name) DO NOTHING',
        tokenParams(t),
      ) === 1
    );
  }

  getToken(name: string): TokenRecord | undefined {
    const r = this.#rows<TokenRow>(`SELECT ${TOKEN} FROM tokens WHERE name = $1`, [name])[0];
    return r ? token(r) : undefined;
  }

  tokenByHash(hash: string): TokenRecord | undefined {
    const r = this.#rows<TokenRow>(`SELECT ${TOKEN} FROM tokens WHERE hash = $1`, [hash])[0];
    return r ? token(r) : undefined;
  }

  listTokens(): TokenRecord[] {
    return this.#rows<TokenRow>(`SELECT ${TOKEN} FROM tokens ORDER BY created_at, name`, []).map(token);
  }

  // --- all-reduce reports ---------------------------------------------------------------------

  putAllReduceReport(r: AllReduceReportRecord): void {
    this.#write(
      `INSERT INTO allreduce_reports (round, reporter_peer, received_at, doc) VALUES ($1, $2, $3, $4::text::jsonb)
       ON CONFLICT (round, reporter_peer) DO UPDATE SET received_at = excluded.received_at, doc = excluded.doc`,
      [r.round, r.reporterPeer, r.receivedAt, json(r)],
    );
  }

  allReduceReports(round: string): AllReduceReportRecord[] {
    return this.#rows<{ doc: AllReduceReportRecord }>(
      'SELECT doc FROM allreduce_reports WHERE round = $1 ORDER BY received_at, reporter_peer',
      [round],
    ).map((r) => r.doc);
  }

  pruneAllReduceReports(before: number): number {
    return this.#count('DELETE FROM allreduce_reports WHERE received_at < $1', [before]);
  }
}
