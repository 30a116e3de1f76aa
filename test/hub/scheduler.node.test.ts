// The scheduler against both stores: the same suite on MemoryStore and on a real SQLite file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import { JournaledStore } from '../../src/hub/journaled-store.ts';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { Scheduler, type SchedulerOptions } from '../../src/hub/scheduler.ts';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import type { HubStore } from '../../src/hub/store.ts';
import { CREDIT_UNITS } from '../../src/protocol/credit.ts';
import { CAPS, indexOf, result, seededRng, truth, wgslManifest } from './fixtures.ts';

const dirs: string[] = [];
const stores: HubStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function sqlitePath(): string {
  const d = mkdtempSync(join(tmpdir(), 'hearth-hub-'));
  dirs.push(d);
  return join(d, 'hub.db');
}

const kinds: [string, () => HubStore][] = [
  ['MemoryStore', () => new MemoryStore()],
  ['SqliteStore', () => new SqliteStore(sqlitePath())],
  ['JournaledStore', () => new JournaledStore(sqlitePath())],
];

async function rejected(p: Promise<unknown>, re: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HearthError);
  expect((err as HearthError).message).toMatch(re);
}

/** Slightly perturbed honest answer: replicas on different GPUs rarely match bit for bit. */
function noisy(i: number, rng: () => number): Float32Array {
  return truth(i).map((x) => x * (1 + (rng() - 0.5) * 1e-6));
}

describe.each(kinds)('scheduler on %s', (_name, make) => {
  const setup = (opts: SchedulerOptions = {}) => {
    const store = make();
    stores.push(store);
    return { store, s: new Scheduler(store, { honeypotRate: 0, ...opts }) };
  };

  it('leases each shard to `replication` distinct volunteers, never twice to one', () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(2), 0);
    const a1 = s.lease('a', CAPS, 0)!;
    const a2 = s.lease('a', CAPS, 0)!;
    expect(a1.shard).toBe(`${job}/0`);
    expect(a2.shard).toBe(`${job}/1`);
    expect(s.lease('a', CAPS, 0)).toBeUndefined();
    expect(s.lease('b', CAPS, 0)!.shard).toBe(`${job}/0`);
    expect(s.lease('b', CAPS, 0)!.shard).toBe(`${job}/1`);
    expect(s.lease('c', CAPS, 0)).toBeUndefined();
    expect(a1.lease.deadline).toBe(10_000);
    expect(s.progress(job)).toMatchObject({ shards: 2, inFlight: 2, validated: 0, status: 'running' });
  });

  it('matches shards to capabilities', () => {
    const { s } = setup();
    s.submit(wgslManifest(1, { requirements: { minBufferBytes: 4096, features: ['shader-f16'] } }), 0);
    expect(s.lease('small', { maxBufferBytes: 1024, features: ['shader-f16'] }, 0)).toBeUndefined();
    expect(s.lease('nof16', { maxBufferBytes: 1 << 20, features: [] }, 0)).toBeUndefined();
    expect(s.lease('fits', { maxBufferBytes: 1 << 20, features: ['shader-f16'] }, 0)).toBeDefined();
  });

  it('reissues a lease past its deadline; a heartbeat keeps it', () => {
    const { s } = setup();
    s.submit(wgslManifest(1), 0);
    const a = s.lease('a', CAPS, 0)!;
    s.lease('b', CAPS, 0);
    expect(s.lease('c', CAPS, 0)).toBeUndefined();
    expect(s.heartbeat('a', a.lease.id, 9_000).deadline).toBe(19_000);
    expect(() => s.heartbeat('c', a.lease.id, 9_000)).toThrow(/holds no lease/);
    expect(s.expire(15_000)).toBe(1); // b's lease, not a's
    expect(s.lease('c', CAPS, 15_000)).toBeDefined();
    expect(s.expire(19_001)).toBe(1);
    expect(s.lease('d', CAPS, 19_001)).toBeDefined();
  });

  it('reissues a disconnected volunteer’s leases at once', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(1), 0);
    s.lease('a', CAPS, 0);
    s.lease('b', CAPS, 0);
    expect(s.disconnect('a')).toBe(1);
    const c = s.lease('c', CAPS, 1)!;
    expect(c.shard).toBe(`${job}/0`);
    // a computed it while offline: its result still counts while the shard is open (issue 10),
    // once, and with the replicas that came after it.
    expect((await s.submitResult('a', await result(c.shard, job, truth(0)), 2)).status).toBe('pending');
    await rejected(s.submitResult('a', await result(c.shard, job, truth(0)), 2), /already has a result/);
    expect((await s.submitResult('c', await result(c.shard, job, truth(0)), 3)).status).toBe('valid');
    expect(s.credits('a')).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
  });

  it('a late result is refused once its shard has its quorum', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(1), 0);
    s.lease('a', CAPS, 0);
    s.lease('b', CAPS, 0);
    s.disconnect('a');
    s.lease('c', CAPS, 1);
    await s.submitResult('b', await result(`${job}/0`, job, truth(0)), 2);
    await s.submitResult('c', await result(`${job}/0`, job, truth(0)), 3);
    await rejected(s.submitResult('a', await result(`${job}/0`, job, truth(0)), 4), /holds no lease/);
    expect(s.credits('a')).toEqual({ pending: 0n, granted: 0n });
  });

  it('accepts replicas that agree within tolerance and credits each once', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(1), 0);
    const g = s.lease('a', CAPS, 0)!;
    s.lease('b', CAPS, 0);
    const rng = seededRng(1);
    expect(await s.submitResult('a', await result(g.shard, job, noisy(0, rng)), 1)).toEqual({
      status: 'pending',
    });
    expect(s.credits('a')).toEqual({ pending: 50n * CREDIT_UNITS, granted: 0n });
    expect(await s.submitResult('b', await result(g.shard, job, noisy(0, rng)), 2)).toEqual({
      status: 'valid',
    });
    expect(s.credits('a')).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    expect(s.credits('b')).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    expect(s.progress(job)).toMatchObject({ validated: 1, progress: 1, status: 'done' });
    expect(s.results(job)).toHaveLength(1);
  });

  it('bit-exact jobs agree only on equal hashes', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(1, { tolerance: 'exact', maxReplicas: 3 }), 0);
    s.lease('a', CAPS, 0);
    s.lease('b', CAPS, 0);
    const off = truth(0);
    off[1] = off[1]! * (1 + 2 ** -20); // within any float tolerance, but not the same bits
    expect((await s.submitResult('a', await result(`${job}/0`, job, truth(0)), 1)).status).toBe('pending');
    expect((await s.submitResult('b', await result(`${job}/0`, job, off), 2)).status).toBe('pending');
    s.lease('c', CAPS, 3);
    expect((await s.submitResult('c', await result(`${job}/0`, job, truth(0)), 4)).status).toBe('valid');
    expect(s.volunteer('b')).toMatchObject({ invalid: 1, streak: 0 });
  });

  it('outvotes a liar and keeps the honest answer', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(1), 0);
    s.lease('honest1', CAPS, 0);
    s.lease('liar', CAPS, 0);
    expect(s.lease('honest2', CAPS, 0)).toBeUndefined();
    await s.submitResult('honest1', await result(`${job}/0`, job, truth(0)), 1);
    expect((await s.submitResult('liar', await result(`${job}/0`, job, truth(7)), 2)).status).toBe('pending');
    // Disagreement asked for one more replica.
    expect(s.lease('honest2', CAPS, 3)).toBeDefined();
    expect((await s.submitResult('honest2', await result(`${job}/0`, job, truth(0)), 4)).status).toBe(
      'valid',
    );
    const [r] = s.results(job);
    expect(Array.from(new Float32Array(r!.outputs[0]!.data))).toEqual(Array.from(truth(0)));
    expect(s.credits('liar')).toEqual({ pending: 0n, granted: 0n });
    expect(s.volunteer('liar').reputation).toBeLessThan(0);
    expect(s.volunteer('honest2')).toMatchObject({ valid: 1, streak: 1 });
  });

  it('NaN never agrees, not even with an identical NaN result', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(1, { maxReplicas: 4 }), 0);
    const nan = Float32Array.from([Number.NaN, 0, 0, 0]);
    for (const v of ['a', 'b']) {
      s.lease(v, CAPS, 0);
      expect((await s.submitResult(v, await result(`${job}/0`, job, nan), 1)).status).toBe('pending');
    }
    for (const v of ['c', 'd']) s.lease(v, CAPS, 2);
    await s.submitResult('c', await result(`${job}/0`, job, truth(0)), 3);
    expect((await s.submitResult('d', await result(`${job}/0`, job, truth(0)), 3)).status).toBe('valid');
    expect(s.volunteer('a').invalid).toBe(1);
  });

  it('a shard whose replicas never agree within maxReplicas fails, crediting nobody', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(1, { maxReplicas: 3 }), 0);
    s.lease('a', CAPS, 0);
    s.lease('b', CAPS, 0);
    await s.submitResult('a', await result(`${job}/0`, job, truth(1)), 1);
    await s.submitResult('b', await result(`${job}/0`, job, truth(2)), 1);
    s.lease('c', CAPS, 2);
    expect((await s.submitResult('c', await result(`${job}/0`, job, truth(3)), 3)).status).toBe(
      'inconclusive',
    );
    expect(s.progress(job)).toMatchObject({ failed: 1, status: 'failed' });
    expect(s.credits('a')).toEqual({ pending: 0n, granted: 0n });
    expect(s.lease('d', CAPS, 4)).toBeUndefined();
  });

  it('credits exactly once: duplicates, unleased shards and bad hashes are refused', async () => {
    const { s, store } = setup();
    const job = s.submit(wgslManifest(2), 0);
    s.lease('a', CAPS, 0);
    s.lease('b', CAPS, 0);
    const r = await result(`${job}/0`, job, truth(0));
    await s.submitResult('a', r, 1);
    await rejected(s.submitResult('a', r, 2), /holds no lease/);
    await rejected(s.submitResult('c', r, 2), /holds no lease/);
    await rejected(s.submitResult('a', await result(`${job}/9`, job, truth(0)), 2), /unknown shard/);
    const forged = { ...r, outputs: [{ ...r.outputs[0]!, sha256: await sha256Hex(new ArrayBuffer(16)) }] };
    await rejected(s.submitResult('b', forged, 2), /does not match its SHA-256/);
    const wrongShape = await result(`${job}/0`, job, Float32Array.of(1, 2));
    await rejected(s.submitResult('b', wrongShape, 2), /expected output "y"/);
    await s.submitResult('b', await result(`${job}/0`, job, truth(0)), 3);
    await rejected(s.submitResult('b', r, 4), /holds no lease/);
    expect(s.credits('a')).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    expect(s.credits('b')).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    expect(store.ledger()).toHaveLength(2);
    expect(
      store.addCredit({
        volunteer: 'a',
        shard: `${job}/0`,
        job,
        credits: 50n * CREDIT_UNITS,
        status: 'granted',
      }),
    ).toBe(false);
  });

  it('makes random job and lease ids, never counted ones; jobs of one millisecond lease in submission order', async () => {
    const { s, store } = setup();
    const ID = /^[A-Za-z0-9._:/@#-]{1,256}$/; // the control plane's id pattern
    const jobs = [s.submit(wgslManifest(1), 7), s.submit(wgslManifest(1), 7), s.submit(wgslManifest(1), 7)];
    for (const j of jobs) expect(j).toMatch(/^job-[0-9a-f]{32}$/);
    expect(new Set(jobs).size).toBe(3);
    // Another hub (another store) submitting the same thing at the same time makes other ids.
    const other = new Scheduler(new MemoryStore(), { honeypotRate: 0 }).submit(wgslManifest(1), 7);
    expect(jobs).not.toContain(other);
    expect(store.listJobs().map((j) => j.id)).toEqual(jobs);
    // Oldest job first, whatever the random ids say.
    const g = [s.lease('a', CAPS, 7)!, s.lease('a', CAPS, 7)!, s.lease('a', CAPS, 7)!];
    expect(g.map((x) => x.job)).toEqual(jobs);
    for (const x of g) expect(x.lease.id).toMatch(ID);
    // A lease released and granted again in the same millisecond is a new lease.
    const first = s.lease('b', CAPS, 8)!;
    s.disconnect('b');
    const again = s.lease('b', CAPS, 8)!;
    expect(again.shard).toBe(first.shard);
    expect(again.lease.id).not.toBe(first.lease.id);
    expect(store.leasesOfVolunteer('b').map((l) => l.id)).toEqual([again.lease.id]);
  });

  it('honeypots: a right answer raises reputation, a wrong one lowers it', async () => {
    const expected = truth(1000);
    const sha = await sha256Hex(expected.slice().buffer);
    const { s } = setup({
      honeypotRate: 1,
      blob: (h) => (h === sha ? expected.slice().buffer : undefined),
    });
    const job = s.submit(wgslManifest(1, {}, [{ expected: sha }]), 0);
    const g1 = s.lease('good', CAPS, 0)!;
    const g2 = s.lease('bad', CAPS, 0)!;
    expect(g1.shard).toMatch(/\/hp1$/);
    expect(g2.shard).toBe(g1.shard); // honeypots are reused across volunteers
    const rng = seededRng(3);
    expect((await s.submitResult('good', await result(g1.shard, job, noisy(1000, rng)), 1)).status).toBe(
      'valid',
    );
    expect((await s.submitResult('bad', await result(g2.shard, job, truth(5)), 1)).status).toBe('invalid');
    expect(s.volunteer('good').reputation).toBeGreaterThan(0);
    expect(s.volunteer('bad').reputation).toBeLessThan(-20);
    // Below the bar: no more work for the bad one; the good one gets the real shard.
    expect(s.lease('bad', CAPS, 2)).toBeUndefined();
    expect(s.lease('good', CAPS, 2)!.shard).toBe(`${job}/0`);
    expect(s.progress(job).shards).toBe(1);
  });

  it('adaptive replication: a long streak earns single-replica shards, with spot-checks', async () => {
    // rng values in order: the first trusted lease draws 0.9 (no spot-check), the second 0.1 (spot-check).
    const draws = [0.9, 0.1];
    const { s, store } = setup({ trustStreak: 1, spotCheckRate: 0.2, rng: () => draws.shift() ?? 0.5 });
    const job = s.submit(wgslManifest(3, { adaptiveReplication: true }), 0);
    store.putVolunteer({ id: 'trusted', reputation: 10, streak: 10, valid: 10, invalid: 0, honeypots: 3 });
    const a = s.lease('trusted', CAPS, 0)!;
    expect(s.lease('other', CAPS, 0)!.shard).not.toBe(a.shard); // single replica: nobody else gets it
    expect(
      (await s.submitResult('trusted', await result(a.shard, job, truth(indexOf(a.shard))), 1)).status,
    ).toBe('valid');
    const b = s.lease('trusted', CAPS, 2)!;
    expect(
      (await s.submitResult('trusted', await result(b.shard, job, truth(indexOf(b.shard))), 3)).status,
    ).toBe('pending');
    expect(store.getShard(b.shard)!.quorum).toBe(2);
  });

  it('replication is kept without exceptions unless the job opts in to adaptive replication', async () => {
    const { s, store } = setup({ trustStreak: 1, spotCheckRate: 0, rng: () => 0.9 });
    const job = s.submit(wgslManifest(3), 0);
    store.putVolunteer({
      id: 'trusted',
      reputation: 100,
      streak: 100,
      valid: 100,
      invalid: 0,
      honeypots: 50,
    });
    for (let i = 0; i < 3; i++) {
      const g = s.lease('trusted', CAPS, i)!;
      expect(store.getShard(g.shard)!.quorum).toBe(2);
      expect((await s.submitResult('trusted', await result(g.shard, job, truth(i)), i)).status).toBe(
        'pending',
      );
    }
    expect(s.progress(job)).toMatchObject({ validated: 0, done: 3 });
  });

  it('a streak between fresh identities is not trust: honeypots passed are needed too', async () => {
    const { s, store } = setup({ trustStreak: 2, trustHoneypots: 1, spotCheckRate: 0, rng: () => 0.9 });
    const job = s.submit(wgslManifest(8, { adaptiveReplication: true }), 0);
    // Two identities that cost nothing vouch for each other on replicas: their streaks grow.
    for (let i = 0; i < 3; i++) {
      const a = s.lease('sybil-a', CAPS, i)!;
      s.lease('sybil-b', CAPS, i);
      await s.submitResult('sybil-a', await result(a.shard, job, truth(indexOf(a.shard))), i);
      await s.submitResult('sybil-b', await result(a.shard, job, truth(indexOf(a.shard))), i);
    }
    expect(s.volunteer('sybil-a').streak).toBe(3);
    // Still two replicas: neither has answered a honeypot.
    const next = s.lease('sybil-a', CAPS, 10)!;
    expect(store.getShard(next.shard)!.quorum).toBe(2);
    // One passed honeypot (the hub's own answer) and the streak earns single replicas.
    store.putVolunteer({ ...s.volunteer('sybil-b'), honeypots: 1 });
    s.disconnect('sybil-a');
    const single = s.lease('sybil-b', CAPS, 11)!;
    expect(store.getShard(single.shard)!.quorum).toBe(1);
  });
});

describe.each(kinds)('a simulated population on %s', (name, make) => {
  it('with 20% liars, no wrong canonical result is accepted and the job completes', async () => {
    const store = make();
    stores.push(store);
    const rng = seededRng(42);
    const honeypotAnswers = [truth(1000), truth(1001)];
    const hashes = await Promise.all(honeypotAnswers.map((t) => sha256Hex(t.slice().buffer)));
    const s = new Scheduler(store, {
      rng: seededRng(7),
      trustStreak: 8,
      trustHoneypots: 1,
      spotCheckRate: 0.25,
      honeypotRate: 0.1,
      blob: (h) => honeypotAnswers[hashes.indexOf(h)]?.slice().buffer,
    });
    const SHARDS = 300;
    const job = s.submit(
      wgslManifest(
        SHARDS,
        { maxReplicas: 6, adaptiveReplication: true },
        hashes.map((expected) => ({ expected })),
      ),
      0,
    );
    const volunteers = Array.from({ length: 50 }, (_, i) => ({ id: `v${i}`, liar: i % 5 === 0 }));
    const stats = { results: 0, lies: 0, liesAccepted: 0, honeypotsCaught: 0, dropped: 0 };
    let now = 0;
    for (let round = 0; round < 400 && s.progress(job).status === 'running'; round++) {
      now += 1000;
      s.expire(now);
      for (const v of volunteers) {
        const g = s.lease(v.id, CAPS, now);
        if (!g) continue;
        // Some honest volunteers vanish mid-shard: their leases expire and are reissued.
        if (rng() < 0.05) {
          stats.dropped++;
          continue;
        }
        const i = g.shard.includes('/hp')
          ? 1000 + Number(g.shard.split('/hp')[1]) - SHARDS
          : indexOf(g.shard);
        // Liars send a different wrong answer each time (they cannot coordinate without seeing each other's).
        const y = v.liar ? truth(i).map((x) => x + 1 + rng()) : noisy(i, rng);
        const out = await s.submitResult(v.id, await result(g.shard, job, y), now);
        stats.results++;
        if (v.liar) stats.lies++;
        if (v.liar && out.status === 'valid') stats.liesAccepted++;
        if (v.liar && g.shard.includes('/hp') && out.status === 'invalid') stats.honeypotsCaught++;
      }
    }
    const p = s.progress(job);
    let wrong = 0;
    for (const r of s.results(job)) {
      const got = new Float32Array(r.outputs[0]!.data);
      const want = truth(r.index);
      if (got.some((x, k) => Math.abs(x - want[k]!) > 1e-4 * Math.abs(want[k]!) + 1e-6)) wrong++;
    }
    const single = store.shardsOfJob(job).filter((sh) => !sh.honeypot && sh.quorum === 1).length;
    const blocked = volunteers.filter((v) => v.liar && s.lease(v.id, CAPS, now + 1) === undefined).length;
    console.log(
      `[${name}] liar simulation: 50 volunteers, 10 liars (20%), ${SHARDS} shards, replication 2: ` +
        `validated ${p.validated}, failed ${p.failed}, wrong accepted ${wrong}; results ${stats.results}, ` +
        `lies ${stats.lies}, lies accepted ${stats.liesAccepted}, honeypot catches ${stats.honeypotsCaught}, ` +
        `single-replica (trusted) shards ${single}, dropped leases ${stats.dropped}, liars blocked at end ${blocked}/10, simulated time ${now / 1000}s`,
    );
    expect(wrong).toBe(0);
    expect(stats.liesAccepted).toBe(0);
    expect(p.status).toBe('done');
    expect(p.validated).toBe(SHARDS);
  });
});
