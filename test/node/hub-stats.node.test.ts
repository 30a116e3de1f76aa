// `GET /v1/stats` and `GET /v1/jobs` on a real hub (SQLite file, real WebSockets), read through
// HubApi and the `hearth` CLI: service levels fed by the scheduler's events, the caller's jobs only,
// newest first and bounded.
import { afterEach, describe, expect, it } from 'vitest';
import { HubApi } from '../../src/client/hub-api.ts';
import { HearthError } from '../../src/core/errors.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { JOB_LIST_LIMIT } from '../../src/protocol/api.ts';
import { CAPS, result, truth, wgslManifest } from '../hub/fixtures.ts';
import { hearth } from './cli-helpers.ts';
import { authenticated, type Conn, sleep, TestKey } from './control-helpers.ts';
import { ADMIN, manifestJson, type TestHub, testHub, upload } from './hub-helpers.ts';

let t: TestHub | undefined;
const conns: Conn[] = [];
afterEach(async () => {
  for (const c of conns.splice(0)) c.ws.close();
  await t?.dispose();
  t = undefined;
});

async function setup() {
  t = await testHub({ compileWgsl: false, peer: false });
  const alice = createToken(t.hub.store, 'alice').token;
  const bob = createToken(t.hub.store, 'bob').token;
  const api = (token: string) => new HubApi({ hub: t!.hub.url, token, timeoutMs: 10_000 });
  return { hub: t.hub, alice: api(alice), bob: api(bob), admin: api(ADMIN), aliceToken: alice };
}

async function refusal(p: Promise<unknown>): Promise<HearthError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(HearthError);
  return e as HearthError;
}

describe('GET /v1/stats', () => {
  it('service levels from the scheduler\u2019s events; the caller\u2019s jobs with ETA and latency', async () => {
    const { hub, alice, bob, aliceToken } = await setup();
    // Two volunteers connected over the control plane.
    const ws = `${hub.url.replace('http', 'ws')}/v1/volunteer`;
    for (let i = 0; i < 2; i++) {
      conns.push((await authenticated(ws, await TestKey.create(), 'https://embed.example')).conn);
    }
    const { manifest, blobs } = manifestJson(4);
    await upload(hub.url, aliceToken, blobs);
    const { job } = await alice.submit(JSON.stringify(manifest));
    const other = hub.scheduler.submit(wgslManifest(1), Date.now(), { owner: 'bob' });

    const before = await alice.stats();
    expect(before.volunteers).toBe(2);
    expect(before.latency).toEqual({ samples: 0 });
    expect(before.jobs.map((j) => j.job)).toEqual([job]);
    expect(before.jobs[0]).toMatchObject({ status: 'running', remaining: 4, validatedPerMinute: 0 });
    expect(before.jobs[0]?.etaMs).toBeUndefined();

    // Shard 0: two replicas, 400 ms and 1200 ms from lease to result; validated. Shard 1: a lease
    // that ends with its volunteer's connection. Times are the hub's clock: from now, and the test waits until they passed.
    const t0 = Date.now();
    const a = hub.scheduler.lease('va', CAPS, t0)!;
    const b = hub.scheduler.lease('vb', CAPS, t0)!;
    expect(a.shard).toBe(`${job}/0`);
    await hub.scheduler.submitResult('va', await result(a.shard, job, truth(0)), t0 + 400);
    await hub.scheduler.submitResult('vb', await result(b.shard, job, truth(0)), t0 + 1200);
    hub.scheduler.lease('vc', CAPS, t0 + 1300);
    expect(hub.scheduler.disconnect('vc', t0 + 1300)).toBe(1);
    await sleep(t0 + 1400 - Date.now());

    const s = await alice.stats();
    expect(s.windowMs).toBe(3600_000);
    expect(s.latency).toEqual({ samples: 2, p50Ms: 400, p95Ms: 1200 });
    expect(s.leases).toEqual({ ended: 3, valid: 2, validFraction: 2 / 3 });
    expect(s.validatedPerMinute).toBeGreaterThan(0);
    expect(s.throughput.validated.reduce((x, y) => x + y, 0)).toBe(1);
    const mine = s.jobs.find((j) => j.job === job)!;
    expect(mine).toMatchObject({ status: 'running', remaining: 3 });
    expect(mine.latency).toEqual({ samples: 2, p50Ms: 400, p95Ms: 1200 });
    expect(mine.validatedPerMinute).toBeGreaterThan(0);
    expect(mine.etaMs).toBeGreaterThan(0);
    // The same rate gives the same ETA: remaining / rate.
    expect(mine.etaMs! / 60_000).toBeCloseTo(3 / mine.validatedPerMinute, 2);
    expect(mine.throughput?.validated.reduce((x, y) => x + y, 0)).toBe(1);
    // Bob sees the hub's figures and only his own job.
    expect((await bob.stats()).jobs.map((j) => j.job)).toEqual([other]);

    // The CLI prints them: `hearth status JOB` its ETA and p50/p95, `hearth stats` the hub's.
    const env = { HEARTH_HUB: hub.url, HEARTH_TOKEN: aliceToken };
    const st = await hearth(['status', job], env);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(
      /eta \d+(\.\d)? ?(ms|s|m \d\ds|h \d\dm) at \d+\.\d shards\/min · shard latency p50 400 ms, p95 1\.2 s \(2 results, last hour\)/,
    );
    const hs = await hearth(['stats'], env);
    expect(hs.code, hs.stderr).toBe(0);
    expect(hs.stdout).toContain('volunteers connected   2');
    expect(hs.stdout).toContain('shard latency          p50 400 ms, p95 1.2 s (2 results, last hour)');
    expect(hs.stdout).toContain('leases ending valid    66.7% (2 of 3 that ended in the last hour)');
    expect(hs.stdout).toMatch(new RegExp(`${job}\\s+running\\s+3\\s+`));
  });

  it('needs a token', async () => {
    const { hub } = await setup();
    const e = await refusal(new HubApi({ hub: hub.url }).stats());
    expect(e.details).toMatchObject({ status: 401, code: 'http/unauthorized' });
  });
});

describe('GET /v1/jobs', () => {
  it('the caller\u2019s jobs, newest first, with counts; the admin sees all; at most 200', async () => {
    const { hub, alice, bob, admin, aliceToken } = await setup();
    const { manifest, blobs } = manifestJson(2);
    await upload(hub.url, aliceToken, blobs);
    const first = (await alice.submit(JSON.stringify(manifest))).job;
    const second = (await alice.submit(JSON.stringify(manifest))).job;
    hub.scheduler.lease('va', CAPS, Date.now());
    await alice.cancel(second);

    const list = await alice.jobs();
    expect(list.total).toBe(2);
    expect(list.jobs.map((j) => j.job)).toEqual([second, first]);
    expect(list.jobs[1]).toMatchObject({
      job: first,
      status: 'running',
      kind: 'wgsl',
      owner: 'alice',
      shards: 2,
      validated: 0,
      failed: 0,
      inFlight: 1,
      done: 0,
    });
    expect(list.jobs[0]?.status).toBe('cancelled');
    expect(list.jobs[1]!.createdAt).toBeLessThanOrEqual(list.jobs[0]!.createdAt);
    expect(await bob.jobs()).toEqual({ jobs: [], total: 0 });
    expect((await admin.jobs()).total).toBe(2);

    // Bounded: the newest 200 of 203.
    const now = Date.now();
    for (let i = 0; i < 201; i++) hub.scheduler.submit(wgslManifest(1), now + 1000 + i, { owner: 'alice' });
    const many = await alice.jobs();
    expect(many.total).toBe(203);
    expect(many.jobs).toHaveLength(JOB_LIST_LIMIT);
    const created = many.jobs.map((j) => j.createdAt);
    expect(created).toEqual([...created].sort((x, y) => y - x));
    expect(many.jobs.map((j) => j.job)).not.toContain(first);
  });
});
