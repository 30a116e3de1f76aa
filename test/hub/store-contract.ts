// The HubStore contract: one behavioural suite that every backend passes (DESIGN.md: "one contract
// suite that every backend passes"). store-contract.node.test.ts runs it on MemoryStore, on
// SqliteStore over a real file, and on JournaledStore; a new backend (PostgreSQL) adds one line
// there. What only one backend has — migrations, group commit timing, a failing disk, two
// processes on one file — stays in that backend's own test file.
//
// The exactly-once rules (DESIGN.md invariant 2) are part of the contract, not of one store: a
// result is accepted once and credited once, a token name is taken once, a transaction that throws
// leaves nothing behind.
import { afterEach, describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { planShards } from '../../src/hub/planner.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import type {
  AllReduceReportRecord,
  HubStore,
  JobRecord,
  LeaseRecord,
  ResultRecord,
  ShardRecord,
  VolunteerRecord,
} from '../../src/hub/store.ts';
import { authenticate, createToken, listTokens, revokeToken } from '../../src/hub/tokens.ts';
import { CREDIT_UNITS, creditUnits } from '../../src/protocol/credit.ts';
import { CAPS, result, truth, wgslManifest } from './fixtures.ts';

const MANIFEST = wgslManifest(4);
const WORK = planShards(MANIFEST).map((p) => p.work);

const job = (id: string, createdAt = 0, over: Partial<JobRecord> = {}): JobRecord => ({
  id,
  manifest: MANIFEST,
  createdAt,
  status: 'running',
  ...over,
});

const shard = (jobId: string, index: number, over: Partial<ShardRecord> = {}): ShardRecord => ({
  id: `${jobId}/${over.honeypot ? 'hp' : ''}${index}`,
  job: jobId,
  index,
  work: WORK[index % WORK.length]!,
  status: 'open',
  quorum: 2,
  wanted: 2,
  honeypot: false,
  ...over,
});

const lease = (
  sh: ShardRecord,
  volunteer: string,
  deadline: number,
  id = `${sh.id}@${volunteer}`,
): LeaseRecord => ({
  id,
  shard: sh.id,
  job: sh.job,
  volunteer,
  issuedAt: deadline - 100,
  deadline,
});

/** A result whose output bytes are distinct per (shard, volunteer), to catch crossed rows. */
const res = (
  sh: ShardRecord,
  volunteer: string,
  receivedAt: number,
  over: Partial<ResultRecord> = {},
): ResultRecord => {
  const y = Float32Array.of(sh.index, receivedAt, volunteer.length, -1);
  return {
    id: `${sh.id}#${volunteer}`,
    shard: sh.id,
    job: sh.job,
    volunteer,
    receivedAt,
    status: 'pending',
    outputs: [{ name: 'y', dtype: 'f32', shape: [4], sha256: `${sh.index % 10}`.repeat(64), data: y.buffer }],
    ...over,
  };
};

const volunteer = (id: string, reputation = 0): VolunteerRecord => ({
  id,
  reputation,
  streak: 0,
  valid: 0,
  invalid: 0,
});

const peer = (i: number) => `h${i.toString(16).padStart(32, '0')}`;
const report = (
  round: string,
  reporter: number,
  at: number,
  over: Partial<AllReduceReportRecord> = {},
): AllReduceReportRecord => ({
  round,
  reporter: 'v'.repeat(63) + reporter,
  reporterPeer: peer(reporter),
  receivedAt: at,
  group: [peer(1), peer(2)],
  contributors: [peer(1), peer(2)],
  contributions: [1, 2].map((i) => ({
    peer: peer(i),
    volunteer: `${i}`.repeat(64),
    sha256: `${i}`.repeat(64),
    signature: 'S'.repeat(86),
    verdict: 'valid',
  })),
  mean: 'm'.repeat(64),
  dropped: [],
  ...over,
});

const ids = (xs: readonly { id: string }[]) => xs.map((x) => x.id);
const bytes = (r: ResultRecord | undefined) => r?.outputs.map((o) => [...new Float32Array(o.data)]);

/**
 * Runs the HubStore contract on stores from `make` (a fresh, empty store per test; the suite
 * closes it).
 *
 * @example
 * describeStore('MemoryStore', () => new MemoryStore());
 */
export function describeStore(name: string, make: () => HubStore): void {
  describe(`HubStore contract: ${name}`, () => {
    const open: HubStore[] = [];
    afterEach(() => {
      for (const s of open.splice(0)) s.close();
    });
    const fresh = (): HubStore => {
      const s = make();
      open.push(s);
      return s;
    };

    describe('jobs', () => {
      it('lists jobs oldest first, jobs of one millisecond in the order they were put, whatever their ids', () => {
        const s = fresh();
        expect(s.getJob('job-z')).toBeUndefined();
        s.putJob(job('job-z', 5));
        s.putJob(job('job-a', 5));
        s.putJob(job('job-m', 1));
        s.putJob(job('job-b', 5, { status: 'done' }));
        expect(ids(s.listJobs())).toEqual(['job-m', 'job-z', 'job-a', 'job-b']);
        expect(ids(s.runningJobs())).toEqual(['job-m', 'job-z', 'job-a']);
        // A put of a new state keeps the job's place.
        s.putJob({ ...s.getJob('job-z')!, status: 'cancelled', cancelledAt: 9 });
        expect(ids(s.listJobs())).toEqual(['job-m', 'job-z', 'job-a', 'job-b']);
        expect(ids(s.runningJobs())).toEqual(['job-m', 'job-a']);
        expect(s.getJob('job-z')).toEqual(job('job-z', 5, { status: 'cancelled', cancelledAt: 9 }));
        expect(s.getJob('job-a')?.manifest).toEqual(MANIFEST);
      });
    });

    describe('shards', () => {
      it('lists a job’s shards by index and open shards oldest job first', () => {
        const s = fresh();
        s.putJob(job('j2', 2));
        s.putJob(job('j1', 1));
        for (const i of [2, 0, 1]) s.putShard(shard('j1', i));
        s.putShard(shard('j2', 0));
        s.putShard(shard('j2', 1, { status: 'validated', canonical: 'x' }));
        expect(s.shardsOfJob('j1').map((x) => x.index)).toEqual([0, 1, 2]);
        expect(s.getShard('j1/1')).toEqual(shard('j1', 1));
        expect(s.getShard('nope')).toBeUndefined();
        expect(ids(s.openShards())).toEqual(['j1/0', 'j1/1', 'j1/2', 'j2/0']);
        expect(s.shardsOfJob('none')).toEqual([]);
      });

      it('offers the lowest open shard the volunteer has not touched and that wants replicas', () => {
        const s = fresh();
        s.putJob(job('j'));
        const sh = [0, 1, 2, 3].map((i) => shard('j', i, { wanted: i === 2 ? 1 : 2 }));
        for (const x of sh) s.putShard(x);
        s.putLease(lease(sh[0]!, 'a', 1000));
        s.putResult(res(sh[1]!, 'a', 1));
        s.putLease(lease(sh[2]!, 'b', 1000)); // shard 2 wants one replica: full now
        expect(s.availableShard('j', 'a', false)).toEqual({ shard: sh[3], replicas: 0 });
        expect(s.availableShard('j', 'b', false)).toEqual({ shard: sh[0], replicas: 1 });
        expect(s.replicasOf('j/0')).toBe(1);
        expect(s.replicasOf('j/1')).toBe(1);
        expect(s.replicasOf('j/2')).toBe(1);
        // Nothing for anyone in a job without shards, nor for a volunteer that touched them all.
        expect(s.availableShard('none', 'a', false)).toBeUndefined();
        s.putLease(lease(sh[3]!, 'a', 1000));
        expect(s.availableShard('j', 'a', false)).toBeUndefined();
      });

      it('offers a shard again once it is reopened below the shards already judged', () => {
        const s = fresh();
        s.putJob(job('j'));
        for (const i of [0, 1, 2]) s.putShard(shard('j', i, { status: i < 2 ? 'validated' : 'open' }));
        expect(s.availableShard('j', 'a', false)?.shard.id).toBe('j/2');
        // A judged shard's result and settled credit, then the shard opens again: both still count.
        s.putResult(res(shard('j', 0), 'b', 1, { status: 'invalid' }));
        s.addCredit({ volunteer: 'b', shard: 'j/0', job: 'j', credits: 1n, status: 'void' });
        s.putShard(shard('j', 0)); // open again (an afterJudged may add or reopen work)
        expect(s.availableShard('j', 'a', false)?.shard.id).toBe('j/0');
        expect(s.hasOpenShards('j')).toBe(true);
        expect(s.resultsOfShard('j/0').map((r) => r.volunteer)).toEqual(['b']);
        expect(s.replicasOf('j/0')).toBe(1);
        expect(s.availableShard('j', 'b', false)?.shard.id).toBe('j/2');
        expect(s.addCredit({ volunteer: 'b', shard: 'j/0', job: 'j', credits: 1n, status: 'pending' })).toBe(
          false,
        );
      });

      it('offers honeypots only when asked for one, whatever they want, never twice to one volunteer', () => {
        const s = fresh();
        s.putJob(job('j'));
        s.putShard(shard('j', 0));
        const hp = shard('j', 1, { honeypot: true, quorum: 1, wanted: 1 });
        s.putShard(hp);
        expect(s.availableShard('j', 'a', true)?.shard.id).toBe('j/hp1');
        expect(s.availableShard('j', 'a', false)?.shard.id).toBe('j/0');
        s.putLease(lease(hp, 'a', 1000));
        expect(s.availableShard('j', 'a', true)).toBeUndefined();
        expect(s.availableShard('j', 'b', true)).toEqual({ shard: hp, replicas: 1 });
      });

      it('counts a job’s shards without its honeypots, and knows when no real shard is open', () => {
        const s = fresh();
        s.putJob(job('j'));
        const sh = [0, 1, 2, 3, 4].map((i) => shard('j', i));
        s.putShard({ ...sh[0]!, status: 'validated', canonical: 'j/0#a' });
        s.putShard({ ...sh[1]!, status: 'failed' });
        s.putShard(sh[2]!);
        s.putShard(sh[3]!);
        s.putShard(sh[4]!);
        s.putShard(shard('j', 5, { honeypot: true }));
        s.putLease(lease(sh[2]!, 'a', 1000));
        s.putResult(res(sh[2]!, 'b', 1));
        s.putResult(res(sh[3]!, 'b', 1));
        expect(s.shardStats('j')).toEqual({ shards: 5, validated: 1, failed: 1, inFlight: 1, done: 2 });
        expect(s.hasOpenShards('j')).toBe(true);
        for (const i of [2, 3, 4]) s.putShard({ ...sh[i]!, status: 'validated' });
        // The honeypot is still open: it does not keep the job going.
        expect(s.hasOpenShards('j')).toBe(false);
        expect(s.shardStats('none')).toEqual({ shards: 0, validated: 0, failed: 0, inFlight: 0, done: 0 });
      });
    });

    describe('leases', () => {
      it('finds leases by shard, volunteer and job; a put of the same id extends it; delete is idempotent', () => {
        const s = fresh();
        s.putJob(job('j'));
        s.putJob(job('k'));
        const a = shard('j', 0);
        const b = shard('j', 1);
        const c = shard('k', 0);
        for (const x of [a, b, c]) s.putShard(x);
        s.putLease(lease(a, 'v', 300));
        s.putLease(lease(b, 'v', 100));
        s.putLease(lease(a, 'w', 200));
        s.putLease(lease(c, 'w', 50));
        expect(ids(s.leasesOfShard('j/0'))).toEqual(['j/0@v', 'j/0@w']);
        expect(ids(s.leasesOfVolunteer('v'))).toEqual(['j/0@v', 'j/1@v']);
        expect(ids(s.leasesOfJob('j'))).toEqual(['j/0@v', 'j/0@w', 'j/1@v']);
        // Strictly before `now`, soonest first.
        expect(ids(s.expiredLeases(200))).toEqual(['k/0@w', 'j/1@v']);
        // A heartbeat: same id, later deadline, still one replica.
        s.putLease(lease(b, 'v', 900));
        expect(s.leasesOfVolunteer('v').find((l) => l.id === 'j/1@v')?.deadline).toBe(900);
        expect(s.replicasOf('j/1')).toBe(1);
        expect(ids(s.expiredLeases(200))).toEqual(['k/0@w']);
        s.deleteLease('j/0@v');
        s.deleteLease('j/0@v');
        s.deleteLease('never');
        expect(ids(s.leasesOfShard('j/0'))).toEqual(['j/0@w']);
        expect(s.replicasOf('j/0')).toBe(1);
        expect(s.leasesOfVolunteer('nobody')).toEqual([]);
      });
    });

    describe('results', () => {
      it('keeps each result’s bytes, oldest first; judging one keeps its bytes', () => {
        const s = fresh();
        s.putJob(job('j'));
        const a = shard('j', 0);
        s.putShard(a);
        s.putShard(shard('j', 1));
        s.putResult(res(a, 'late', 30));
        s.putResult(res(a, 'early', 10));
        s.putResult(res(shard('j', 1), 'early', 20));
        const err = res(a, 'broken', 20, {
          status: 'error',
          outputs: [],
          error: { code: 'wgsl/compile', message: 'line 1' },
        });
        s.putResult(err);
        const got = s.resultsOfShard('j/0');
        expect(got.map((r) => r.volunteer)).toEqual(['early', 'broken', 'late']);
        expect(got[0]).toEqual(res(a, 'early', 10));
        expect(got[1]).toEqual(err);
        expect(bytes(got[2])).toEqual([[0, 30, 4, -1]]);
        s.setResultStatus('j/0#late', 'valid');
        const judged = s.resultsOfShard('j/0').find((r) => r.id === 'j/0#late');
        expect(judged?.status).toBe('valid');
        expect(bytes(judged)).toEqual([[0, 30, 4, -1]]);
        expect(s.replicasOf('j/0')).toBe(3);
        expect(s.resultsOfShard('none')).toEqual([]);
      });
    });

    describe('volunteers', () => {
      it('stores a volunteer’s record and replaces it', () => {
        const s = fresh();
        expect(s.getVolunteer('v')).toBeUndefined();
        s.putVolunteer(volunteer('v', 1));
        s.putVolunteer({ ...volunteer('v', -3), honeypots: 2 });
        expect(s.getVolunteer('v')).toEqual({ ...volunteer('v', -3), honeypots: 2 });
      });
    });

    describe('ledger (exactly once)', () => {
      it('takes one entry per volunteer and shard: a second is refused and changes nothing', () => {
        const s = fresh();
        const e = {
          volunteer: 'a',
          shard: 'j/0',
          job: 'j',
          credits: 50n * CREDIT_UNITS,
          status: 'pending',
        } as const;
        expect(s.addCredit(e)).toBe(true);
        expect(s.addCredit({ ...e, credits: 99n, status: 'granted' })).toBe(false);
        expect(s.addCredit({ ...e, volunteer: 'b' })).toBe(true);
        expect(s.ledger('a')).toEqual([e]);
        expect(s.ledger().length).toBe(2);
        expect(s.ledger('nobody')).toEqual([]);
      });

      it('keeps amounts exact past 2^53 and settles, voids pending per job, keeps granted', () => {
        const s = fresh();
        const big = 2n ** 62n + 1n; // a float would round this
        s.addCredit({ volunteer: 'a', shard: 'j/0', job: 'j', credits: big, status: 'pending' });
        s.addCredit({ volunteer: 'a', shard: 'j/1', job: 'j', credits: 1n, status: 'pending' });
        s.addCredit({ volunteer: 'b', shard: 'j/1', job: 'j', credits: 2n, status: 'pending' });
        s.addCredit({ volunteer: 'b', shard: 'k/0', job: 'k', credits: 3n, status: 'pending' });
        s.setCreditStatus('a', 'j/0', 'granted');
        s.setCreditStatus('nobody', 'j/0', 'granted'); // no entry: nothing happens
        expect(s.voidPendingCredit('j')).toBe(2);
        expect(s.voidPendingCredit('j')).toBe(0);
        const of = (v: string) =>
          s
            .ledger(v)
            .map((e) => [e.shard, e.credits, e.status])
            .sort((x, y) => String(x[0]).localeCompare(String(y[0])));
        expect(of('a')).toEqual([
          ['j/0', big, 'granted'],
          ['j/1', 1n, 'void'],
        ]);
        expect(of('b')).toEqual([
          ['j/1', 2n, 'void'],
          ['k/0', 3n, 'pending'],
        ]);
        for (const e of s.ledger()) expect(typeof e.credits).toBe('bigint');
        // By status: one volunteer's, or everyone's.
        const keys = (es: readonly { volunteer: string; shard: string }[]) =>
          es.map((e) => `${e.volunteer} ${e.shard}`).sort();
        expect(keys(s.ledger('b', 'pending'))).toEqual(['b k/0']);
        expect(keys(s.ledger('a', 'pending'))).toEqual([]);
        expect(keys(s.ledger(undefined, 'void'))).toEqual(['a j/1', 'b j/1']);
        expect(s.ledger('a', 'granted')).toEqual([
          { volunteer: 'a', shard: 'j/0', job: 'j', credits: big, status: 'granted' },
        ]);
      });

      it('accepts a result once and credits it once, also when both copies arrive in one group', async () => {
        const s = fresh();
        const sched = new Scheduler(s, { honeypotRate: 0 });
        const j = sched.submit(wgslManifest(2), 0);
        const a = sched.lease('a', CAPS, 0)!;
        const r = await result(a.shard, j, truth(0));
        const both = await Promise.allSettled([sched.submitResult('a', r, 1), sched.submitResult('a', r, 1)]);
        expect(both.map((x) => x.status).sort()).toEqual(['fulfilled', 'rejected']);
        const refused = both.find((x) => x.status === 'rejected') as PromiseRejectedResult;
        expect(refused.reason).toBeInstanceOf(HearthError);
        await expect(sched.submitResult('a', r, 2)).rejects.toThrow(/holds no lease|already has a result/);
        expect(s.resultsOfShard(a.shard)).toHaveLength(1);
        expect(s.ledger('a')).toHaveLength(1);
        // The second replica validates the shard: a's one entry is granted, once.
        sched.lease('b', CAPS, 3);
        await sched.submitResult('b', await result(a.shard, j, truth(0)), 4);
        const one = creditUnits(100, 0.5); // the fixture: 100 FLOPs × 0.5
        expect(sched.credits('a')).toEqual({ pending: 0n, granted: one });
        expect(sched.credits('b')).toEqual({ pending: 0n, granted: one });
        expect(s.ledger().filter((e) => e.shard === a.shard)).toHaveLength(2);
      });

      it('a result finished while its lease was reissued is taken, and credited once', async () => {
        const s = fresh();
        const sched = new Scheduler(s, { honeypotRate: 0 });
        const j = sched.submit(wgslManifest(1, { replication: 1, maxReplicas: 1 }), 0);
        const g = sched.lease('a', CAPS, 0)!;
        expect(sched.disconnect('a')).toBe(1);
        const r = await result(g.shard, j, truth(0));
        expect(await sched.submitResult('a', r, 1)).toEqual({ status: 'valid' });
        await expect(sched.submitResult('a', r, 2)).rejects.toThrow(/holds no lease/);
        expect(sched.credits('a')).toEqual({ pending: 0n, granted: creditUnits(100, 0.5) });
        expect(s.ledger('a')).toHaveLength(1);
      });
    });

    describe('ledger: the embedding site and payout (issue 12)', () => {
      const site = 'https://news.example';
      const payout = `0x${'aB'.repeat(20)}`;

      it('keeps site and payout with an entry through settling and voiding; an entry without them has neither key', () => {
        const s = fresh();
        s.addCredit({ volunteer: 'a', shard: 'j/0', job: 'j', credits: 5n, status: 'pending', site, payout });
        s.addCredit({ volunteer: 'a', shard: 'j/1', job: 'j', credits: 1n, status: 'pending' });
        s.setCreditStatus('a', 'j/0', 'granted');
        expect(s.voidPendingCredit('j')).toBe(1);
        const byShard = (es: readonly { shard: string }[]) =>
          [...es].sort((x, y) => x.shard.localeCompare(y.shard));
        expect(byShard(s.ledger('a'))).toStrictEqual([
          { volunteer: 'a', shard: 'j/0', job: 'j', credits: 5n, status: 'granted', site, payout },
          { volunteer: 'a', shard: 'j/1', job: 'j', credits: 1n, status: 'void' },
        ]);
        expect(s.ledger(undefined, 'granted')).toStrictEqual([
          { volunteer: 'a', shard: 'j/0', job: 'j', credits: 5n, status: 'granted', site, payout },
        ]);
      });

      it('the Scheduler records a widget volunteer’s site and payout with its credit, read back once the job is done', async () => {
        const s = fresh();
        const sched = new Scheduler(s, { honeypotRate: 0 });
        const j = sched.submit(wgslManifest(2, { replication: 1, maxReplicas: 1 }), 0);
        const a = sched.lease('a', CAPS, 0)!;
        const b = sched.lease('b', CAPS, 0)!;
        const embed = { origin: site, payout };
        const ra = await result(a.shard, j, truth(s.getShard(a.shard)!.index));
        const rb = await result(b.shard, j, truth(s.getShard(b.shard)!.index));
        expect(await sched.submitResult('a', ra, 1, { embed })).toEqual({ status: 'valid' });
        expect(await sched.submitResult('b', rb, 1)).toEqual({ status: 'valid' });
        expect(s.getJob(j)?.status).toBe('done');
        await s.settled();
        const one = creditUnits(100, 0.5);
        // The site's share is fixed on the entry when it is made (issue 13): 10% by default.
        expect(s.ledger('a')).toStrictEqual([
          {
            volunteer: 'a',
            shard: a.shard,
            job: j,
            credits: one,
            status: 'granted',
            site,
            payout,
            payoutCredits: one / 10n,
          },
        ]);
        expect(s.ledger('b')).toStrictEqual([
          { volunteer: 'b', shard: b.shard, job: j, credits: one, status: 'granted' },
        ]);
        expect(sched.credits('a')).toEqual({ pending: 0n, granted: one });
      });
    });

    describe('wallets and budgets (issue 13)', () => {
      const payout = `0x${'aB'.repeat(20)}`;

      it('binds a volunteer once: a second binding changes nothing and returns the one in force', () => {
        const s = fresh();
        const first = { volunteer: 'v1', address: `0x${'11'.repeat(20)}`, boundAt: 5 };
        expect(s.bindWallet(first)).toStrictEqual(first);
        expect(s.bindWallet({ volunteer: 'v1', address: `0x${'22'.repeat(20)}`, boundAt: 6 })).toStrictEqual(
          first,
        );
        expect(s.walletOf('v1')).toStrictEqual(first);
        expect(s.walletOf('v2')).toBeUndefined();
        s.bindWallet({ volunteer: 'v2', address: `0x${'11'.repeat(20)}`, boundAt: 7 });
        // Any case finds the address's volunteers.
        expect(s.volunteersOfWallet(`0X${'11'.repeat(20)}`.replace('0X', '0x')).sort()).toEqual(['v1', 'v2']);
        expect(s.volunteersOfWallet(`0x${'33'.repeat(20)}`)).toEqual([]);
      });

      it('a binding inside a transaction that throws is gone', () => {
        const s = fresh();
        expect(() =>
          s.transaction(() => {
            s.bindWallet({ volunteer: 'v1', address: `0x${'11'.repeat(20)}`, boundAt: 5 });
            throw new Error('boom');
          }),
        ).toThrow('boom');
        expect(s.walletOf('v1')).toBeUndefined();
      });

      it('keeps the payout share exact on an entry and finds entries by payout address in any case, and by job', () => {
        const s = fresh();
        const big = 2n ** 60n + 7n;
        const site = 'https://news.example';
        s.addCredit({
          volunteer: 'a',
          shard: 'j/0',
          job: 'j',
          credits: big,
          status: 'pending',
          site,
          payout,
          payoutCredits: big / 10n,
        });
        s.addCredit({ volunteer: 'b', shard: 'j/0', job: 'j', credits: 3n, status: 'pending' });
        s.addCredit({
          volunteer: 'b',
          shard: 'k/0',
          job: 'k',
          credits: 4n,
          status: 'pending',
          site,
          payout,
          payoutCredits: 0n,
        });
        s.setCreditStatus('a', 'j/0', 'granted');
        const mine = s
          .payoutLedger(payout.toLowerCase())
          .sort((x, y) => x.volunteer.localeCompare(y.volunteer));
        expect(mine).toStrictEqual([
          {
            volunteer: 'a',
            shard: 'j/0',
            job: 'j',
            credits: big,
            status: 'granted',
            site,
            payout,
            payoutCredits: big / 10n,
          },
          {
            volunteer: 'b',
            shard: 'k/0',
            job: 'k',
            credits: 4n,
            status: 'pending',
            site,
            payout,
            payoutCredits: 0n,
          },
        ]);
        expect(s.payoutLedger(payout, 'granted')).toHaveLength(1);
        expect(s.payoutLedger(`0x${'cd'.repeat(20)}`)).toEqual([]);
        expect(
          s
            .jobLedger('j')
            .map((e) => e.volunteer)
            .sort(),
        ).toEqual(['a', 'b']);
        expect(s.jobLedger('none')).toEqual([]);
      });

      it('keeps a token’s budget exact; a token without one has no budget key', () => {
        const s = fresh();
        createToken(s, 'rich', 1, 2n ** 62n);
        createToken(s, 'plain', 2);
        expect(s.getToken('rich')?.budget).toBe(2n ** 62n);
        expect(s.getToken('plain')).not.toHaveProperty('budget');
        expect(listTokens(s)).toEqual([
          { name: 'rich', createdAt: 1, revoked: false, budget: (2n ** 62n).toString() },
          { name: 'plain', createdAt: 2, revoked: false },
        ]);
        revokeToken(s, 'rich', 3);
        expect(s.getToken('rich')?.budget).toBe(2n ** 62n);
      });
    });

    describe('closed work', () => {
      it('a closed job reads back whole, refuses a second credit, and still takes a change', async () => {
        const s = fresh();
        s.putJob(job('j'));
        s.putJob(job('k', 1));
        const a = shard('j', 0);
        const hp = shard('j', 1, { honeypot: true, quorum: 1, wanted: 1 });
        s.putShard(a);
        s.putShard(hp);
        s.putShard(shard('k', 0));
        const credit = (sh: string, credits: bigint) =>
          ({ volunteer: 'x', shard: sh, job: 'j', credits, status: 'pending' }) as const;
        s.putResult(res(a, 'x', 1));
        s.putResult(res(hp, 'x', 2));
        s.addCredit(credit('j/0', 5n));
        s.addCredit(credit('j/hp1', 1n));
        // A honeypot is judged at once and stays open (each volunteer answers one for itself).
        s.setResultStatus('j/hp1#x', 'valid');
        s.setCreditStatus('x', 'j/hp1', 'granted');
        expect(s.addCredit(credit('j/hp1', 1n))).toBe(false);
        // The job ends in one group, as the Scheduler ends one.
        s.transaction(
          () => {
            s.setResultStatus('j/0#x', 'valid');
            s.setCreditStatus('x', 'j/0', 'granted');
            s.putShard({ ...a, status: 'validated', canonical: 'j/0#x' });
            s.putShard({ ...hp, status: 'validated' });
            s.putJob(job('j', 0, { status: 'done' }));
          },
          { group: true },
        );
        const check = () => {
          expect(s.getJob('j')?.status).toBe('done');
          expect(ids(s.listJobs())).toEqual(['j', 'k']);
          expect(ids(s.runningJobs())).toEqual(['k']);
          expect(ids(s.openShards())).toEqual(['k/0']);
          expect(s.shardsOfJob('j').map((x) => [x.id, x.status])).toEqual([
            ['j/0', 'validated'],
            ['j/hp1', 'validated'],
          ]);
          expect(s.getShard('j/0')?.canonical).toBe('j/0#x');
          const [r] = s.resultsOfShard('j/0');
          expect(r?.status).toBe('valid');
          expect(bytes(r)).toEqual([[0, 1, 1, -1]]);
          expect(s.resultsOfShard('j/hp1').map((x) => x.status)).toEqual(['valid']);
          expect(s.replicasOf('j/0')).toBe(1);
          expect(s.shardStats('j')).toEqual({ shards: 1, validated: 1, failed: 0, inFlight: 0, done: 0 });
          expect(s.hasOpenShards('j')).toBe(false);
          expect(s.availableShard('j', 'y', false)).toBeUndefined();
          expect(s.availableShard('j', 'y', true)).toBeUndefined();
          expect(s.addCredit(credit('j/0', 5n))).toBe(false);
          expect(s.addCredit(credit('j/hp1', 1n))).toBe(false);
          expect(s.ledger('x').map((e) => [e.shard, e.credits, e.status])).toEqual(
            expect.arrayContaining([
              ['j/0', 5n, 'granted'],
              ['j/hp1', 1n, 'granted'],
            ]),
          );
          expect(s.ledger('x')).toHaveLength(2);
          expect(s.ledger('x', 'pending')).toEqual([]);
        };
        check(); // before its group is committed
        await s.settled();
        check(); // after
        // A change to closed work still lands, and reads back.
        s.setResultStatus('j/0#x', 'invalid');
        s.setCreditStatus('x', 'j/0', 'void');
        s.putResult(res(a, 'late', 9, { status: 'invalid' }));
        expect(s.resultsOfShard('j/0').map((x) => [x.volunteer, x.status])).toEqual([
          ['x', 'invalid'],
          ['late', 'invalid'],
        ]);
        expect(bytes(s.resultsOfShard('j/0')[0])).toEqual([[0, 1, 1, -1]]);
        expect(s.replicasOf('j/0')).toBe(2);
        expect(s.ledger('x', 'void').map((e) => e.shard)).toEqual(['j/0']);
        expect(s.ledger(undefined, 'granted').map((e) => e.shard)).toEqual(['j/hp1']);
        // A credit for a closed job's shard that nobody had is taken once.
        expect(s.addCredit({ ...credit('j/0', 2n), volunteer: 'late' })).toBe(true);
        expect(s.addCredit({ ...credit('j/0', 2n), volunteer: 'late' })).toBe(false);
        expect(s.ledger('late', 'pending').map((e) => e.credits)).toEqual([2n]);
      });
    });

    describe('tokens (a name is taken once)', () => {
      it('refuses a taken name: the second createToken throws and the first token still works', () => {
        const s = fresh();
        const first = createToken(s, 'alice', 1);
        let second: unknown;
        try {
          createToken(s, 'alice', 2);
        } catch (e) {
          second = e;
        }
        expect(second).toBeInstanceOf(HearthError);
        expect((second as HearthError).message).toMatch(/"alice" is taken/);
        expect(authenticate(s, first.token)).toEqual({ kind: 'researcher', name: 'alice' });
        expect(s.addToken({ name: 'alice', hash: 'e'.repeat(64), createdAt: 3 })).toBe(false);
        expect(s.getToken('alice')?.createdAt).toBe(1);
        expect(listTokens(s)).toEqual([{ name: 'alice', createdAt: 1, revoked: false }]);
      });

      it('finds tokens by name and hash, lists them oldest first, and a revoked one authenticates nobody', () => {
        const s = fresh();
        const b = createToken(s, 'bob', 20);
        const c = createToken(s, 'carol', 10);
        expect(listTokens(s).map((t) => t.name)).toEqual(['carol', 'bob']);
        expect(s.tokenByHash(s.getToken('bob')!.hash)?.name).toBe('bob');
        expect(s.tokenByHash('0'.repeat(64))).toBeUndefined();
        expect(revokeToken(s, 'bob', 30)).toBe(true);
        expect(revokeToken(s, 'bob', 40)).toBe(true); // keeps the first time
        expect(revokeToken(s, 'nobody', 40)).toBe(false);
        expect(s.getToken('bob')?.revokedAt).toBe(30);
        expect(authenticate(s, b.token)).toBeUndefined();
        expect(authenticate(s, c.token)).toEqual({ kind: 'researcher', name: 'carol' });
        // A revoked name stays taken.
        expect(() => createToken(s, 'bob')).toThrow(/is taken/);
      });
    });

    describe('all-reduce reports', () => {
      it('keeps one report per round and reporting peer, oldest first', () => {
        const s = fresh();
        s.putAllReduceReport(report('r1', 1, 10));
        s.putAllReduceReport(report('r1', 2, 5));
        s.putAllReduceReport(report('r2', 1, 1));
        s.putAllReduceReport(report('r1', 1, 20, { mean: 'n'.repeat(64) })); // replaces its first
        expect(s.allReduceReports('r1').map((r) => [r.reporterPeer, r.receivedAt, r.mean[0]])).toEqual([
          [peer(2), 5, 'm'],
          [peer(1), 20, 'n'],
        ]);
        expect(s.allReduceReports('r1')[0]).toEqual(report('r1', 2, 5));
        expect(s.allReduceReports('none')).toEqual([]);
      });

      it('prunes the reports received before a time, and only those', () => {
        const s = fresh();
        s.putAllReduceReport(report('r1', 1, 10));
        s.putAllReduceReport(report('r1', 2, 30));
        s.putAllReduceReport(report('r2', 1, 5));
        s.putAllReduceReport(report('r3', 1, 20));
        expect(s.pruneAllReduceReports(20)).toBe(2);
        expect(s.allReduceReports('r1').map((r) => r.reporterPeer)).toEqual([peer(2)]);
        expect(s.allReduceReports('r2')).toEqual([]);
        expect(s.allReduceReports('r3')).toEqual([report('r3', 1, 20)]);
        expect(s.pruneAllReduceReports(20)).toBe(0);
      });
    });

    describe('transactions', () => {
      /** Everything a change can touch, to compare before and after. */
      const snapshot = (s: HubStore) => ({
        jobs: s.listJobs(),
        shards: s.shardsOfJob('j'),
        leases: s.leasesOfJob('j'),
        results: s.resultsOfShard('j/0'),
        replicas: s.replicasOf('j/0'),
        available: s.availableShard('j', 'z', false),
        volunteer: s.getVolunteer('v'),
        ledger: s.ledger(),
      });
      const seed = (s: HubStore) => {
        s.putJob(job('j'));
        s.putShard(shard('j', 0));
        s.putShard(shard('j', 1));
        s.putLease(lease(shard('j', 0), 'a', 100));
        s.putVolunteer(volunteer('v', 1));
        s.addCredit({ volunteer: 'a', shard: 'j/1', job: 'j', credits: 7n, status: 'pending' });
      };
      const change = (s: HubStore) => {
        s.putJob(job('j', 0, { status: 'failed' }));
        s.putJob(job('new', 1));
        s.putShard(shard('j', 0, { status: 'validated', canonical: 'j/0#b' }));
        s.deleteLease('j/0@a');
        s.putLease(lease(shard('j', 1), 'c', 50));
        s.putResult(res(shard('j', 0), 'b', 5));
        s.putVolunteer(volunteer('v', -9));
        s.addCredit({ volunteer: 'b', shard: 'j/0', job: 'j', credits: 1n, status: 'pending' });
        s.setCreditStatus('a', 'j/1', 'granted');
        s.voidPendingCredit('j');
      };

      it('a transaction that throws leaves nothing behind, of any record', () => {
        const s = fresh();
        seed(s);
        const before = snapshot(s);
        expect(() =>
          s.transaction(() => {
            change(s);
            throw new Error('crash mid-change');
          }),
        ).toThrow('crash mid-change');
        expect(snapshot(s)).toEqual(before);
        // And the store goes on: the same change, committed, is all there.
        expect(
          s.transaction(() => {
            change(s);
            return 'done';
          }),
        ).toBe('done');
        expect(s.getJob('j')?.status).toBe('failed');
        expect(s.ledger('a')[0]?.status).toBe('granted');
        expect(s.ledger('b')[0]?.status).toBe('void');
      });

      it('tokens and all-reduce reports written in a transaction that throws are undone too', () => {
        const s = fresh();
        createToken(s, 'kept', 1);
        s.putAllReduceReport(report('r', 1, 1));
        s.putAllReduceReport(report('old', 1, 0));
        const before = { tokens: s.listTokens(), r: s.allReduceReports('r'), old: s.allReduceReports('old') };
        expect(() =>
          s.transaction(() => {
            createToken(s, 'gone', 2);
            s.putToken({ ...s.getToken('kept')!, revokedAt: 3 });
            s.putAllReduceReport(report('r', 1, 5, { mean: 'n'.repeat(64) }));
            s.putAllReduceReport(report('r', 2, 6));
            expect(s.pruneAllReduceReports(1)).toBe(1);
            throw new Error('undo');
          }),
        ).toThrow('undo');
        expect({
          tokens: s.listTokens(),
          r: s.allReduceReports('r'),
          old: s.allReduceReports('old'),
        }).toEqual(before);
        // The name is free again: its create never happened.
        expect(createToken(s, 'gone', 4).name).toBe('gone');
      });

      it('a nested transaction that throws undoes only its own writes', () => {
        const s = fresh();
        s.transaction(() => {
          s.putVolunteer(volunteer('outer'));
          expect(() =>
            s.transaction(() => {
              s.putVolunteer(volunteer('inner'));
              s.addCredit({ volunteer: 'inner', shard: 'x/0', job: 'x', credits: 1n, status: 'pending' });
              throw new Error('boom');
            }),
          ).toThrow('boom');
          s.addCredit({ volunteer: 'outer', shard: 'x/0', job: 'x', credits: 2n, status: 'pending' });
        });
        expect(s.getVolunteer('outer')).toBeDefined();
        expect(s.getVolunteer('inner')).toBeUndefined();
        expect(s.ledger().map((e) => e.volunteer)).toEqual(['outer']);
      });

      it('a grouped change applies at once, is settled with its group, and a throwing one undoes itself alone', async () => {
        const s = fresh();
        s.transaction(() => s.putVolunteer(volunteer('a')), { group: true });
        expect(() =>
          s.transaction(
            () => {
              s.putVolunteer(volunteer('b'));
              throw new Error('no');
            },
            { group: true },
          ),
        ).toThrow('no');
        s.transaction(() => s.putVolunteer(volunteer('c')), { group: true });
        expect(s.getVolunteer('a')).toBeDefined();
        await s.settled();
        expect(s.getVolunteer('a')).toBeDefined();
        expect(s.getVolunteer('b')).toBeUndefined();
        expect(s.getVolunteer('c')).toBeDefined();
        // A plain transaction after a group sees, and keeps, the group's changes.
        s.transaction(() => s.putVolunteer(volunteer('d')));
        expect(['a', 'b', 'c', 'd'].map((v) => s.getVolunteer(v) !== undefined)).toEqual([
          true,
          false,
          true,
          true,
        ]);
      });
    });
  });
}
