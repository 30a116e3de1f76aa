// What only SqliteStore has: its schema migrations, each from a file the older schema wrote.
// (Behaviour every store shares is in store-contract.ts.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { JournaledStore } from '../../src/hub/journaled-store.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import { SCHEMA_VERSION, SqliteStore } from '../../src/hub/sqlite-store.ts';
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

/** The ledger table as schema versions 0 to 2 made it: credit a REAL number of credits. */
const LEDGER_V2 = `
DROP TABLE ledger;
CREATE TABLE ledger (volunteer TEXT NOT NULL, shard TEXT NOT NULL, job TEXT NOT NULL,
  credits REAL NOT NULL, status TEXT NOT NULL, PRIMARY KEY (volunteer, shard));
CREATE INDEX ledger_job ON ledger (job, status);
`;

/** A file as a schema-2 hub left it, with these ledger rows (credits as REAL). */
function v2File(rows: readonly [string, string, string, number, string][]): string {
  const path = tempDb();
  new SqliteStore(path).close();
  const db = new Database(path);
  db.exec(LEDGER_V2);
  const put = db.prepare('INSERT INTO ledger VALUES (?, ?, ?, ?, ?)');
  for (const r of rows) put.run(...r);
  db.pragma('user_version = 2');
  db.close();
  return path;
}

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
    expect(SCHEMA_VERSION).toBe(3);
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
    expect(() => db.prepare("INSERT INTO ledger VALUES ('z', 'j/9', 'j', 1.5, 'pending')").run()).toThrow(
      /CHECK constraint failed/,
    );
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
