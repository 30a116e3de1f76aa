// JournaledStore: reads from memory, writes journaled to the SQLite file in group commits. What
// must hold: a grouped change is on the file once settled() resolves (seen by a second
// connection), a plain transaction is on the file when it returns, a restart reloads everything,
// and tokens written by another process (hearth token create --db) are seen at once.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { JournaledStore } from '../../src/hub/journaled-store.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import { authenticate, createToken } from '../../src/hub/tokens.ts';
import { CAPS, indexOf, result, seededRng, truth, wgslManifest } from './fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'hearth-journal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const count = (path: string, table: string) => {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
};

describe('JournaledStore', () => {
  it('puts a grouped change on the file by the time settled() resolves, and a plain one at once', async () => {
    const path = join(dir, 'a.db');
    const store = new JournaledStore(path, { groupWindowMs: 50 });
    const s = new Scheduler(store, { honeypotRate: 0, rng: seededRng(1) });
    const job = s.submit(wgslManifest(2, { replication: 1 }), 0);
    // submit is a plain transaction: on the file when it returns.
    expect(count(path, 'jobs')).toBe(1);
    expect(count(path, 'shards')).toBe(2);
    const g = s.lease('v1', CAPS, 1)!;
    // The lease is grouped: in memory now, on the file only after the group's commit.
    expect(store.leasesOfVolunteer('v1')).toHaveLength(1);
    expect(count(path, 'leases')).toBe(0);
    await store.settled();
    expect(count(path, 'leases')).toBe(1);
    // submitResult resolves only after its group is on the file.
    const out = await s.submitResult('v1', await result(g.shard, job, truth(indexOf(g.shard))), 2);
    expect(out.status).toBe('valid');
    // One validated shard's result, by index or id; nothing for the open one or another job's id.
    const i = indexOf(g.shard);
    expect(s.result(job, { index: i })?.shard).toBe(g.shard);
    expect(s.result(job, { id: g.shard })?.outputs[0]?.name).toBe('y');
    expect(s.result(job, { index: 1 - i })).toBeUndefined();
    expect(s.result('job-other', { id: g.shard })).toBeUndefined();
    // The validated shard's result now lives on the file only; it reads back whole from there.
    const [stored] = store.resultsOfShard(g.shard);
    expect(stored?.status).toBe('valid');
    expect(new Float32Array(stored!.outputs[0]!.data)).toEqual(truth(indexOf(g.shard)));
    expect(count(path, 'results')).toBe(1);
    expect(count(path, 'ledger')).toBe(1);
    store.close();
  });

  it('reloads jobs, shards, leases, results, volunteers and the ledger after a restart', async () => {
    const path = join(dir, 'b.db');
    const first = new JournaledStore(path);
    const s1 = new Scheduler(first, { honeypotRate: 0, rng: seededRng(2) });
    const job = s1.submit(wgslManifest(3, { replication: 1 }), 0);
    const a = s1.lease('v1', CAPS, 1)!;
    await s1.submitResult('v1', await result(a.shard, job, truth(indexOf(a.shard))), 2);
    const held = s1.lease('v2', CAPS, 3)!;
    await first.settled();
    const before = { progress: s1.progress(job), ledger: first.ledger(), v1: first.getVolunteer('v1') };
    // No close(): as after a crash, only what was committed is there.
    const again = new JournaledStore(path);
    const s2 = new Scheduler(again, { honeypotRate: 0, rng: seededRng(2) });
    expect(s2.progress(job)).toEqual(before.progress);
    expect(again.ledger()).toEqual(before.ledger);
    expect(again.getVolunteer('v1')).toEqual(before.v1);
    expect(again.leasesOfVolunteer('v2').map((l) => l.shard)).toEqual([held.shard]);
    expect(again.resultsOfShard(a.shard)).toHaveLength(1);
    // And it goes on from there: the last shard, then the held one once its lease expires.
    const c = s2.lease('v3', CAPS, 4)!;
    expect(c.shard).not.toBe(held.shard);
    first.close();
    again.close();
  });

  it('sees tokens another process writes to the same file', () => {
    const path = join(dir, 'c.db');
    const hub = new JournaledStore(path);
    const cli = new SqliteStore(path);
    const { token } = createToken(cli, 'alice');
    expect(authenticate(hub, token)).toMatchObject({ kind: 'researcher', name: 'alice' });
    cli.close();
    hub.close();
  });

  it('a token name is taken once, whichever process asks: the second create never replaces the first', () => {
    const path = join(dir, 'd.db');
    const hub = new JournaledStore(path);
    const cli = new SqliteStore(path);
    const first = createToken(hub, 'bob');
    expect(() => createToken(cli, 'bob')).toThrow(/"bob" is taken/);
    // The insert itself refuses a taken name (a check-then-write could interleave between two
    // processes and let the later token silently replace the earlier one).
    expect(cli.addToken({ name: 'bob', hash: 'e'.repeat(64), createdAt: 1 })).toBe(false);
    expect(hub.addToken({ name: 'bob', hash: 'e'.repeat(64), createdAt: 1 })).toBe(false);
    expect(authenticate(hub, first.token)).toMatchObject({ kind: 'researcher', name: 'bob' });
    cli.close();
    hub.close();
  });
});
