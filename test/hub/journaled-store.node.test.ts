// JournaledStore: open work in memory, writes journaled to the SQLite file in group commits. What
// must hold: a grouped change is on the file once settled() resolves (seen by a second
// connection), a plain transaction is on the file when it returns, a restart loads the open work,
// tokens written by another process (hearth token create --db) are seen at once, and memory holds
// open work only while every read answers as the other stores do.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.ts';
import { JournaledStore } from '../../src/hub/journaled-store.ts';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import type { HubStore, LeaseRecord, LedgerEntry, ShardRecord } from '../../src/hub/store.ts';
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

// Memory holds open work only. A population runs jobs to completion (honeypots, a liar, dropped
// leases, a cancel, a job that fails) on all three stores with the same seeds; after every round
// the JournaledStore's memory is exactly its open work, and every read matches MemoryStore and
// SqliteStore — during the run, at the end, and after a restart from the file.
describe('JournaledStore memory', () => {
  const SHARDS = 6;
  const VOLUNTEERS = Array.from({ length: 8 }, (_, i) => `v${i}`);
  const LIAR = 'v7';
  const CAP = 3;

  type View = unknown;
  /** Everything a reader can ask, job ids replaced by their submission order. */
  const view = (store: HubStore, s: Scheduler, jobs: readonly string[]): View => {
    // Job and lease ids are random: job ids become their submission order, lease ids go, and
    // lists a store orders by id are sorted here once renamed.
    const norm = <T>(x: T): T => {
      let json = JSON.stringify(x, (_, y) => (typeof y === 'bigint' ? `${y}n` : y));
      jobs.forEach((j, k) => {
        json = json.replaceAll(j, `J${k}`);
      });
      return JSON.parse(json) as T;
    };
    const sorted = <T>(xs: readonly T[], key: (x: T) => string) =>
      [...norm(xs)].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    const entries = (es: readonly LedgerEntry[]) => sorted(es, (e) => `${e.shard} ${e.volunteer}`);
    const leases = (ls: readonly LeaseRecord[]) =>
      sorted(
        ls.map(({ id: _, ...l }) => l),
        (l) => `${l.shard} ${l.volunteer} ${l.deadline}`,
      );
    const bytesOf = (o: { data: ArrayBuffer }) => [...new Uint8Array(o.data)];
    const shardView = (sh: ShardRecord) => ({
      ...sh,
      ...(sh.released ? { released: [...sh.released].sort() } : {}),
      results: store.resultsOfShard(sh.id).map((r) => ({ ...r, outputs: r.outputs.map(bytesOf) })),
      replicas: store.replicasOf(sh.id),
      byId: store.getShard(sh.id)?.status,
    });
    return norm({
      jobs: store.listJobs(),
      running: store.runningJobs().map((j) => j.id),
      open: store.openShards().map((sh) => sh.id),
      perJob: jobs.map((j) => ({
        job: store.getJob(j),
        shards: store.shardsOfJob(j).map(shardView),
        progress: s.progress(j),
        results: s.results(j).map((r) => ({ ...r, outputs: r.outputs.map(bytesOf) })),
        stats: store.shardStats(j),
        hasOpen: store.hasOpenShards(j),
        leases: leases(store.leasesOfJob(j)),
      })),
      ledger: entries(store.ledger()),
      granted: entries(store.ledger(undefined, 'granted')),
      volunteers: VOLUNTEERS.map((id) => ({
        record: store.getVolunteer(id),
        ledger: entries(store.ledger(id)),
        pending: entries(store.ledger(id, 'pending')),
        void: entries(store.ledger(id, 'void')),
        credits: s.credits(id),
        pendingResults: s.pendingResults(id),
        leases: leases(store.leasesOfVolunteer(id)),
      })),
      expired: leases(store.expiredLeases(Number.MAX_SAFE_INTEGER)),
    });
  };

  /** What the JournaledStore should hold: open work, and volunteers up to the cap. */
  const openWork = (store: HubStore) => {
    const running = store.runningJobs();
    const shards = running.flatMap((j) => store.shardsOfJob(j.id));
    const open = new Set(shards.filter((sh) => sh.status === 'open').map((sh) => sh.id));
    return {
      jobs: running.length,
      shards: shards.length,
      leases: store.expiredLeases(Number.MAX_SAFE_INTEGER).length,
      results: [...open].reduce((n, id) => n + store.resultsOfShard(id).length, 0),
      // Pending entries, and the settled ones of open shards (honeypots answered).
      ledger: store.ledger().filter((e) => e.status === 'pending' || open.has(e.shard)).length,
    };
  };

  async function simulate(
    store: HubStore,
    onRound: (s: Scheduler, jobs: readonly string[], round: number) => Promise<void> | void,
  ): Promise<{ s: Scheduler; jobs: string[] }> {
    const answers = [truth(1000), truth(1001)];
    const hashes = await Promise.all(answers.map((t) => sha256Hex(t.slice().buffer)));
    const s = new Scheduler(store, {
      rng: seededRng(11),
      honeypotRate: 0.3,
      blob: (h) => answers[hashes.indexOf(h)]?.slice().buffer,
    });
    const rng = seededRng(12);
    const jobs: string[] = [];
    let now = 0;
    for (let round = 0; round < 80; round++) {
      now += 1000;
      // A job every other round, eight in all.
      if (round % 2 === 0 && jobs.length < 8) {
        jobs.push(
          s.submit(
            wgslManifest(
              SHARDS,
              {},
              hashes.map((expected) => ({ expected })),
            ),
            now,
          ),
        );
      }
      s.expire(now);
      for (const v of VOLUNTEERS) {
        const g = s.lease(v, CAPS, now);
        if (!g) continue;
        if (rng() < 0.08) continue; // vanishes: the lease expires and is reissued
        if (g.job === jobs[4]) {
          // The fifth job's kernel does not compile: two reports fail it as a whole.
          await s.reportFailure(v, g.shard, { code: 'wgsl/compile', message: 'line 1: nope' }, now);
          continue;
        }
        const i = g.shard.includes('/hp')
          ? 1000 + Number(g.shard.split('/hp')[1]) - SHARDS
          : indexOf(g.shard);
        const y = v === LIAR ? truth(i).map((x) => x + 1) : truth(i);
        await s.submitResult(v, await result(g.shard, g.job, y), now);
      }
      // The newest job is cancelled part-way (pending credit voided, a late result refused).
      if (round === 6) s.cancel(jobs.at(-1)!, now);
      await store.settled();
      await onRound(s, jobs, round);
      if (jobs.length === 8 && store.runningJobs().length === 0) break;
    }
    return { s, jobs };
  }

  it('holds only open work, reads the rest from the file, and answers every read as the other stores do', async () => {
    const path = join(dir, 'memory.db');
    const journaled = new JournaledStore(path, { volunteerCacheSize: CAP });
    const checkpoints = new Set([3, 7, 12]);
    const seen = { journaled: [] as View[], memory: [] as View[], sqlite: [] as View[] };
    let maxJobs = 0;
    const j = await simulate(journaled, (s, jobs, round) => {
      const stats = journaled.memoryStats();
      const { volunteers, ...held } = stats;
      expect(held, `round ${round}`).toEqual(openWork(journaled));
      expect(volunteers).toBeLessThanOrEqual(CAP);
      maxJobs = Math.max(maxJobs, stats.jobs);
      if (checkpoints.has(round)) seen.journaled.push(view(journaled, s, jobs));
      if (round === 7) {
        // A second store on the same file (a restart) loads the open work and nothing else.
        const again = new JournaledStore(path, { volunteerCacheSize: CAP });
        expect(again.memoryStats()).toEqual({ ...held, volunteers: 0 });
        expect(view(again, new Scheduler(again), jobs)).toEqual(view(journaled, s, jobs));
        again.close();
      }
    });
    const memory = new MemoryStore();
    const m = await simulate(memory, (s, jobs, round) => {
      if (checkpoints.has(round)) seen.memory.push(view(memory, s, jobs));
    });
    const sqlite = new SqliteStore(join(dir, 'memory-sqlite.db'));
    const q = await simulate(sqlite, (s, jobs, round) => {
      if (checkpoints.has(round)) seen.sqlite.push(view(sqlite, s, jobs));
    });
    // The run did what it is for: jobs of every ending, several open at once, all ended.
    const statuses = j.jobs.map((id) => journaled.getJob(id)?.status);
    expect(new Set(statuses)).toEqual(new Set(['done', 'cancelled', 'failed']));
    expect(maxJobs).toBeGreaterThan(1);
    expect(seen.journaled).toHaveLength(checkpoints.size);
    expect(seen.journaled).toEqual(seen.memory);
    expect(seen.journaled).toEqual(seen.sqlite);
    const end = view(journaled, j.s, j.jobs);
    expect(end).toEqual(view(memory, m.s, m.jobs));
    expect(end).toEqual(view(sqlite, q.s, q.jobs));
    // Everything ended: nothing but recent volunteers is left in memory.
    expect(journaled.memoryStats()).toEqual({
      jobs: 0,
      shards: 0,
      leases: 0,
      results: 0,
      volunteers: CAP,
      ledger: 0,
    });
    // And after a restart, from the file: the same answers, with nothing loaded until asked.
    journaled.close();
    const again = new JournaledStore(path, { volunteerCacheSize: CAP });
    expect(again.memoryStats()).toEqual({
      jobs: 0,
      shards: 0,
      leases: 0,
      results: 0,
      volunteers: 0,
      ledger: 0,
    });
    expect(view(again, new Scheduler(again), j.jobs)).toEqual(end);
    expect(again.memoryStats().volunteers).toBeLessThanOrEqual(CAP);
    const file = new SqliteStore(path);
    expect(view(file, new Scheduler(file), j.jobs)).toEqual(end);
    for (const x of [again, file, sqlite]) x.close();
  });
});
