// SqliteStore's group commit, seen from a second connection on the same file: a grouped change is
// invisible to other readers (not committed) until settled() resolves, a plain transaction
// commits the open group first, a throwing grouped change undoes itself alone, and a result is
// acknowledged only once its commit is on disk.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database, { type SqliteDatabase } from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { Scheduler } from '../../src/hub/scheduler.ts';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import type { VolunteerRecord } from '../../src/hub/store.ts';
import { CAPS, result, truth, wgslManifest } from './fixtures.ts';

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

function open(): { store: SqliteStore; reader: SqliteDatabase } {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-group-'));
  const store = new SqliteStore(join(dir, 'hub.db'));
  const reader = new Database(join(dir, 'hub.db'), { readonly: true });
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanup.push(() => store.close());
  cleanup.push(() => reader.close());
  return { store, reader };
}

const vol = (id: string): VolunteerRecord => ({ id, reputation: 0, streak: 0, valid: 0, invalid: 0 });
const seen = (reader: SqliteDatabase, id: string) =>
  reader.prepare('SELECT id FROM volunteers WHERE id = ?').get(id) !== undefined;

describe('SqliteStore group commit', () => {
  it('commits grouped changes together, once the group closes', async () => {
    const { store, reader } = open();
    store.transaction(() => store.putVolunteer(vol('a')), { group: true });
    store.transaction(() => store.putVolunteer(vol('b')), { group: true });
    // Applied for this connection at once, committed for nobody else yet.
    expect(store.getVolunteer('a')).toBeDefined();
    expect(seen(reader, 'a')).toBe(false);
    await store.settled();
    expect(seen(reader, 'a')).toBe(true);
    expect(seen(reader, 'b')).toBe(true);
  });

  it('a plain transaction commits the open group before its own', () => {
    const { store, reader } = open();
    store.transaction(() => store.putVolunteer(vol('grouped')), { group: true });
    store.transaction(() => store.putVolunteer(vol('plain')));
    expect(seen(reader, 'grouped')).toBe(true);
    expect(seen(reader, 'plain')).toBe(true);
  });

  it('a grouped change that throws undoes itself alone', async () => {
    const { store, reader } = open();
    store.transaction(() => store.putVolunteer(vol('kept')), { group: true });
    expect(() =>
      store.transaction(
        () => {
          store.putVolunteer(vol('undone'));
          throw new Error('refused');
        },
        { group: true },
      ),
    ).toThrow('refused');
    await store.settled();
    expect(seen(reader, 'kept')).toBe(true);
    expect(seen(reader, 'undone')).toBe(false);
  });

  it('acknowledges a result only once its credit is committed', async () => {
    const { store, reader } = open();
    const s = new Scheduler(store, { honeypotRate: 0 });
    const job = s.submit(wgslManifest(1, { replication: 1 }), 0);
    const g = s.lease('a', CAPS, 0)!;
    const pending = s.submitResult('a', await result(g.shard, job, truth(0)), 1);
    const ledger = () => reader.prepare('SELECT status FROM ledger WHERE volunteer = ?').get('a');
    expect(await pending).toEqual({ status: 'valid' });
    expect(ledger()).toEqual({ status: 'granted' });
  });

  it('close() commits an open group', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-group-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = new SqliteStore(join(dir, 'hub.db'));
    store.transaction(() => store.putVolunteer(vol('late')), { group: true });
    store.close();
    const again = new SqliteStore(join(dir, 'hub.db'));
    expect(again.getVolunteer('late')).toBeDefined();
    again.close();
  });
});
