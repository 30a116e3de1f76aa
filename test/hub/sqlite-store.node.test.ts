// What only SqliteStore has: its schema migrations, each from a file the older schema wrote; its
// durability across close and reopen; its bounded cache of parsed jobs. (Behaviour every store
// shares is in store-contract.ts.)
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database, { type SqliteDatabase } from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { JournaledStore } from '../../src/hub/journaled-store.ts';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import {
  JOB_CACHE_SIZE,
  MIGRATIONS,
  SCHEMA,
  SCHEMA_VERSION,
  SqliteStore,
} from '../../src/hub/sqlite-store.ts';
import type { HubStore } from '../../src/hub/store.ts';
import { CREDIT_UNITS } from '../../src/protocol/credit.ts';
import { CAPS, result, truth, wgslManifest } from './fixtures.ts';

const dirs: string[] = [];
const stores: HubStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDb(): string {
  const d = mkdtempSync(join(tmpdir(), 'hearth-sqlite-'));
  dirs.push(d);
  return join(d, 'hub.db');
}

function keep<S extends HubStore>(s: S): S {
  stores.push(s);
  return s;
}

/** A file exactly as a hub of schema `version` left it: SCHEMA and the migrations before it. */
function oldFile(path: string, version: number, fill: (db: SqliteDatabase) => void = () => {}): void {
  const db = new Database(path);
  // Migration 3 converts old amounts with a function the hub registers (its files hold none here).
  db.function('hearth_credit_units', { deterministic: true }, (x: unknown) =>
    BigInt(Math.round(Number(x) * 1e6)),
  );
  db.exec(SCHEMA);
  for (const m of MIGRATIONS.slice(0, version)) db.exec(m);
  fill(db);
  db.pragma(`user_version = ${version}`);
  db.close();
}

/** A schema-2 file with these ledger rows (credits as REAL). */
function v2File(rows: readonly [string, string, string, number, string][]): string {
  const path = tempDb();
  oldFile(path, 2, (db) => {
    const put = db.prepare('INSERT INTO ledger VALUES (?, ?, ?, ?, ?)');
    for (const r of rows) put.run(...r);
  });
  return path;
}

describe('SqliteStore schema files', () => {
  it('reads one SQL file per version from src/hub/migrations, numbered without gaps', () => {
    const dir = fileURLToPath(new URL('../../src/hub/migrations/', import.meta.url));
    const names = readdirSync(dir).sort();
    expect(names.map((n) => n.slice(0, 3))).toEqual(names.map((_, i) => String(i).padStart(3, '0')));
    expect(SCHEMA_VERSION).toBe(names.length - 1);
    expect([SCHEMA, ...MIGRATIONS]).toEqual(names.map((n) => readFileSync(join(dir, n), 'utf8')));
    expect(SCHEMA).toMatch(/CREATE TABLE IF NOT EXISTS ledger .*credits REAL/s);
  });
});

describe('SqliteStore migration 3: credit in integer base units', () => {
  // Amounts an older hub wrote as FLOPs × rate in floats, some a hair off the decimal meant.
  const OLD: [string, string, string, number, string][] = [
    ['a', 'j/0', 'j', 50, 'granted'],
    ['a', 'j/1', 'j', 0.1 * 3, 'granted'], // 0.30000000000000004
    ['b', 'j/0', 'j', 0.7 * 3, 'pending'], // 2.0999999999999996
    ['b', 'j/1', 'j', 0.0000015, 'void'], // 1.4999999999999998 base units in floats
    ['c', 'j/2', 'j', 2044 * 3 * 0.5, 'granted'],
    ['c', 'j/3', 'j', 1e-7, 'granted'], // under one base unit
    ['d', 'k/0', 'k', 123456.789012, 'granted'],
  ];
  const UNITS = [50n * CREDIT_UNITS, 300_000n, 2_100_000n, 2n, 3066n * CREDIT_UNITS, 0n, 123_456_789_012n];

  it('converts every REAL amount exactly to the nearest base unit; statuses and keys stay', () => {
    const path = v2File(OLD);
    const s = keep(new SqliteStore(path));
    const byKey = new Map(s.ledger().map((e) => [`${e.volunteer} ${e.shard}`, e]));
    OLD.forEach(([volunteer, shard, job, , status], i) => {
      expect(byKey.get(`${volunteer} ${shard}`)).toEqual({
        volunteer,
        shard,
        job,
        credits: UNITS[i],
        status,
      });
    });
    expect(s.ledger()).toHaveLength(OLD.length);
    const sched = new Scheduler(s);
    expect(sched.credits('a')).toEqual({ pending: 0n, granted: 50_300_000n });
    expect(sched.credits('b')).toEqual({ pending: 2_100_000n, granted: 0n });
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(3);
    // Stored as SQLite integers, not REALs that happen to be whole.
    expect(
      check.prepare("SELECT count(*) AS n FROM ledger WHERE typeof(credits) <> 'integer'").get(),
    ).toEqual({
      n: 0,
    });
    // The index the cancel path reads came back with the new table.
    expect(
      check
        .prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'index' AND name = 'ledger_job'")
        .get(),
    ).toEqual({ n: 1 });
    check.close();
  });

  it('the migrated ledger refuses a float, and keeps the exactly-once key', () => {
    const path = v2File(OLD);
    const s = keep(new SqliteStore(path));
    expect(s.addCredit({ volunteer: 'a', shard: 'j/0', job: 'j', credits: 1n, status: 'pending' })).toBe(
      false,
    );
    s.close();
    const db = new Database(path);
    expect(() =>
      db
        .prepare(
          "INSERT INTO ledger (volunteer, shard, job, credits, status) VALUES ('z', 'j/9', 'j', 1.5, 'pending')",
        )
        .run(),
    ).toThrow(/CHECK constraint failed/);
    db.close();
  });

  it('a JournaledStore opening a schema-2 file migrates it and serves the exact amounts', async () => {
    const path = v2File(OLD);
    const j = keep(new JournaledStore(path));
    expect(j.ledger('c').map((e) => e.credits)).toEqual([3066n * CREDIT_UNITS, 0n]);
    // And credits new work in base units beside the migrated rows.
    const s = new Scheduler(j, { honeypotRate: 0 });
    const job = s.submit(wgslManifest(1, { replication: 1, maxReplicas: 1 }), 0);
    const g = s.lease('c', CAPS, 0)!;
    expect(await s.submitResult('c', await result(g.shard, job, truth(0)), 1)).toEqual({ status: 'valid' });
    // 100 FLOPs × 0.5 = 50 credits.
    expect(s.credits('c')).toEqual({ pending: 0n, granted: (3066n + 50n) * CREDIT_UNITS });
  });

  it('an amount that cannot be base units stops the migration and leaves the file as it was', () => {
    const path = v2File([
      ['a', 'j/0', 'j', 50, 'granted'],
      ['a', 'j/1', 'j', -1, 'granted'],
    ]);
    const err = (() => {
      try {
        new SqliteStore(path).close();
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(HearthError);
    expect((err as HearthError).code).toBe('store/failed');
    expect((err as HearthError).message).toMatch(/ledger credit -1 cannot be migrated/);
    const db = new Database(path, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(2);
    expect(db.prepare('SELECT credits FROM ledger ORDER BY shard').all()).toEqual([
      { credits: 50 },
      { credits: -1 },
    ]);
    db.close();
  });
});

describe('SqliteStore migration 4: the embedding site and payout of ledger entries', () => {
  it('adds two empty columns: old entries read back without them, new ones keep them', () => {
    const path = tempDb();
    oldFile(path, 3, (db) => {
      db.prepare("INSERT INTO ledger VALUES ('a', 'j/0', 'j', 5, 'granted')").run();
    });
    const s = keep(new SqliteStore(path));
    expect(s.ledger('a')).toStrictEqual([
      { volunteer: 'a', shard: 'j/0', job: 'j', credits: 5n, status: 'granted' },
    ]);
    const payout = `0x${'0'.repeat(40)}`;
    s.addCredit({
      volunteer: 'a',
      shard: 'j/1',
      job: 'j',
      credits: 1n,
      status: 'pending',
      site: 'https://news.example',
      payout,
    });
    expect(s.credit('a', 'j/1')).toStrictEqual({
      volunteer: 'a',
      shard: 'j/1',
      job: 'j',
      credits: 1n,
      status: 'pending',
      site: 'https://news.example',
      payout,
    });
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(4);
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(check.prepare('SELECT site, payout FROM ledger ORDER BY shard').all()).toEqual([
      { site: null, payout: null },
      { site: 'https://news.example', payout },
    ]);
    check.close();
  });
});

describe('SqliteStore migration 5: wallets, the sites’ shares, budgets', () => {
  it('old entries and tokens read back without the new fields; bindings, shares and budgets are kept', () => {
    const path = tempDb();
    const payout = `0x${'ab'.repeat(20)}`;
    oldFile(path, 4, (db) => {
      db.prepare("INSERT INTO ledger VALUES ('a', 'j/0', 'j', 5, 'granted', 'https://news.example', ?)").run(
        payout,
      );
      db.prepare("INSERT INTO tokens VALUES ('alice', ?, 1, NULL)").run('e'.repeat(64));
    });
    const s = keep(new SqliteStore(path));
    expect(s.ledger('a')).toStrictEqual([
      {
        volunteer: 'a',
        shard: 'j/0',
        job: 'j',
        credits: 5n,
        status: 'granted',
        site: 'https://news.example',
        payout,
      },
    ]);
    expect(s.getToken('alice')).toStrictEqual({ name: 'alice', hash: 'e'.repeat(64), createdAt: 1 });
    s.addCredit({
      volunteer: 'b',
      shard: 'j/0',
      job: 'j',
      credits: 9n,
      status: 'pending',
      site: 'https://news.example',
      payout,
      payoutCredits: 1n,
    });
    expect(s.payoutLedger(payout.toUpperCase().replace('0X', '0x')).map((e) => e.payoutCredits)).toEqual([
      undefined,
      1n,
    ]);
    s.bindWallet({ volunteer: 'a', address: payout, boundAt: 2 });
    expect(s.volunteersOfWallet(payout)).toEqual(['a']);
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });
});

describe('SqliteStore migration 3: jobs keep their order without counted ids', () => {
  it('numbers old jobs in the order they listed (time, then id) and puts new ones after them', () => {
    const path = tempDb();
    const job = (id: string, createdAt: number) => ({
      id,
      manifest: wgslManifest(1),
      createdAt,
      status: 'running',
    });
    // Old ids were numbered but compared as text: job-0-10 listed before job-0-9.
    const old = [job('job-0-9', 5), job('job-0-10', 5), job('job-1-0', 1)];
    oldFile(path, 2, (db) => {
      const put = db.prepare('INSERT INTO jobs (id, created_at, status, doc) VALUES (?, ?, ?, ?)');
      for (const j of old) put.run(j.id, j.createdAt, j.status, JSON.stringify(j));
    });
    const s = keep(new SqliteStore(path));
    expect(s.listJobs().map((j) => j.id)).toEqual(['job-1-0', 'job-0-10', 'job-0-9']);
    // A new job of the same millisecond, whatever its (random) id, comes after them.
    s.putJob({ ...job('job-0', 5), status: 'running' } as never);
    expect(s.runningJobs().map((j) => j.id)).toEqual(['job-1-0', 'job-0-10', 'job-0-9', 'job-0']);
    // Updating a job keeps its place.
    s.putJob({ ...s.getJob('job-0-10')!, status: 'cancelled' });
    s.putJob({ ...s.getJob('job-0-10')!, status: 'running' });
    expect(s.listJobs().map((j) => j.id)).toEqual(['job-1-0', 'job-0-10', 'job-0-9', 'job-0']);
  });
});

// The schema a hub wrote before PRAGMA user_version was kept (version 0), verbatim.
const V0 = `
CREATE TABLE jobs (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE shards (id TEXT PRIMARY KEY, job TEXT NOT NULL, idx INTEGER NOT NULL,
  status TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX shards_job ON shards (job, idx);
CREATE INDEX shards_status ON shards (status);
CREATE TABLE leases (id TEXT PRIMARY KEY, shard TEXT NOT NULL, volunteer TEXT NOT NULL,
  deadline INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX leases_shard ON leases (shard);
CREATE INDEX leases_volunteer ON leases (volunteer);
CREATE INDEX leases_deadline ON leases (deadline);
CREATE TABLE results (id TEXT PRIMARY KEY, shard TEXT NOT NULL, received_at INTEGER NOT NULL,
  doc TEXT NOT NULL);
CREATE INDEX results_shard ON results (shard);
CREATE TABLE result_outputs (result TEXT NOT NULL, i INTEGER NOT NULL, name TEXT NOT NULL,
  dtype TEXT NOT NULL, shape TEXT NOT NULL, sha256 TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (result, i));
CREATE TABLE volunteers (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE ledger (volunteer TEXT NOT NULL, shard TEXT NOT NULL, job TEXT NOT NULL,
  credits REAL NOT NULL, status TEXT NOT NULL, PRIMARY KEY (volunteer, shard));
CREATE TABLE tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL, revoked_at INTEGER);
`;

describe('SqliteStore migrations 1 and 2, and versions', () => {
  it('upgrades a version-0 file in place: replica counts, leases and results carry over', async () => {
    const path = tempDb();
    // A job of two shards (replication 2) mid-way, written as the old hub wrote it.
    const mem = new MemoryStore();
    const ms = new Scheduler(mem, { honeypotRate: 0 });
    const job = ms.submit(wgslManifest(2), 0);
    const a0 = ms.lease('a', CAPS, 0)!;
    ms.lease('b', CAPS, 0);
    await ms.submitResult('a', await result(a0.shard, job, truth(0)), 1);
    const old = new Database(path);
    old.exec(V0);
    old.prepare('INSERT INTO jobs VALUES (?, ?, ?)').run(job, 0, JSON.stringify(mem.getJob(job)));
    for (const sh of mem.shardsOfJob(job)) {
      old
        .prepare('INSERT INTO shards VALUES (?, ?, ?, ?, ?)')
        .run(sh.id, job, sh.index, sh.status, JSON.stringify(sh));
    }
    for (const l of mem.leasesOfJob(job)) {
      old
        .prepare('INSERT INTO leases VALUES (?, ?, ?, ?, ?)')
        .run(l.id, l.shard, l.volunteer, l.deadline, JSON.stringify(l));
    }
    const r = mem.resultsOfShard(a0.shard)[0]!;
    const { outputs, ...doc } = r;
    old
      .prepare('INSERT INTO results VALUES (?, ?, ?, ?)')
      .run(r.id, r.shard, r.receivedAt, JSON.stringify(doc));
    const o = outputs[0]!;
    old
      .prepare('INSERT INTO result_outputs VALUES (?, 0, ?, ?, ?, ?, ?)')
      .run(r.id, o.name, o.dtype, JSON.stringify(o.shape), o.sha256, Buffer.from(o.data));
    old.prepare('INSERT INTO ledger VALUES (?, ?, ?, ?, ?)').run('a', a0.shard, job, 50, 'pending');
    old.close();

    const store = keep(new SqliteStore(path));
    const s = new Scheduler(store, { honeypotRate: 0 });
    expect(store.replicasOf(`${job}/0`)).toBe(2); // a's result + b's lease
    expect(store.replicasOf(`${job}/1`)).toBe(0);
    // Shard 0 is full, so c gets shard 1; b's old lease still takes its result.
    expect(s.lease('c', CAPS, 2)!.shard).toBe(`${job}/1`);
    expect(await s.submitResult('b', await result(`${job}/0`, job, truth(0)), 3)).toEqual({
      status: 'valid',
    });
    expect(s.credits('a')).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    expect(s.progress(job)).toMatchObject({ validated: 1, inFlight: 1 });

    const check = new Database(path);
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });

  it('refuses a file from a newer hub, saying so', () => {
    const path = tempDb();
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => new SqliteStore(path)).toThrow(/newer than this hub knows/);
  });

  it('migrates a version-1 file: the reports table appears, the old rows stay', () => {
    const path = tempDb();
    oldFile(path, 1, (db) => {
      db.prepare('INSERT INTO tokens VALUES (?, ?, ?, NULL)').run('alice', 'a'.repeat(64), 1);
    });
    const s = keep(new SqliteStore(path));
    expect(s.getToken('alice')?.hash).toBe('a'.repeat(64));
    s.putAllReduceReport({
      round: 'r',
      reporter: 'v1',
      reporterPeer: 'p1',
      receivedAt: 1,
      group: [],
      contributors: [],
      contributions: [],
      mean: 'b'.repeat(64),
      dropped: [],
    });
    expect(s.allReduceReports('r')).toHaveLength(1);
    const check = new Database(path);
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    check.close();
  });
});

describe('SqliteStore durability and its job cache', () => {
  it('keeps every accepted result, credit and job state across close and reopen', async () => {
    const path = tempDb();
    let store = new SqliteStore(path);
    let s = new Scheduler(store, { honeypotRate: 0 });
    const job = s.submit(wgslManifest(2), 0);
    for (const v of ['a', 'b']) {
      s.lease(v, CAPS, 0);
      s.lease(v, CAPS, 0);
    }
    await s.submitResult('a', await result(`${job}/0`, job, truth(0)), 1);
    await s.submitResult('b', await result(`${job}/0`, job, truth(0)), 2);
    await s.submitResult('a', await result(`${job}/1`, job, truth(1)), 3);
    store.close();

    store = new SqliteStore(path);
    stores.push(store);
    s = new Scheduler(store, { honeypotRate: 0 });
    expect(s.progress(job)).toMatchObject({ validated: 1, done: 1, inFlight: 1, status: 'running' });
    expect(s.credits('a')).toEqual({ pending: 50n * CREDIT_UNITS, granted: 50n * CREDIT_UNITS });
    // b's lease on shard 1 survived the restart, so its result completes the job.
    await s.submitResult('b', await result(`${job}/1`, job, truth(1)), 4);
    expect(s.progress(job)).toMatchObject({ validated: 2, status: 'done' });
    expect(s.credits('a')).toEqual({ pending: 0n, granted: 100n * CREDIT_UNITS });
    const rs = s.results(job);
    expect(rs.map((r) => Array.from(new Float32Array(r.outputs[0]!.data)))).toEqual([
      Array.from(truth(0)),
      Array.from(truth(1)),
    ]);
  });

  it('SqliteStore keeps a bounded number of parsed jobs, and reads an evicted one back from the file', () => {
    const store = new SqliteStore(tempDb());
    const m = wgslManifest(1);
    for (let i = 0; i < JOB_CACHE_SIZE + 40; i++) {
      store.putJob({ id: `job-${i}`, manifest: m, createdAt: i, status: 'running' });
    }
    expect(store.cachedJobs).toBe(JOB_CACHE_SIZE);
    // The oldest fell out of memory; it is still on the file, whole.
    expect(store.getJob('job-0')).toMatchObject({ id: 'job-0', createdAt: 0, status: 'running' });
    expect(store.getJob('job-0')?.manifest).toEqual(m);
    expect(store.cachedJobs).toBe(JOB_CACHE_SIZE);
    store.close();
  });
});
