// Job owners and cancel over the hub's HTTP API, with volunteers on the real WebSocket control
// plane: a real hub on loopback, a real SQLite file, real P-256 volunteer keys.

import { afterEach, describe, expect, it } from 'vitest';
import { createToken } from '../../src/hub/tokens.ts';
import { encodeResult, type HubMessage } from '../../src/protocol/control.ts';
import { CREDIT_UNITS } from '../../src/protocol/credit.ts';
import { indexOf, result, truth } from '../hub/fixtures.ts';
import { hearth } from './cli-helpers.ts';
import { authenticated, type Conn, ORIGIN, TestKey } from './control-helpers.ts';
import { ADMIN, manifestJson, type TestHub, testHub, upload } from './hub-helpers.ts';

const open: TestHub[] = [];
const conns: Conn[] = [];
afterEach(async () => {
  for (const c of conns.splice(0)) c.ws.terminate();
  for (const h of open.splice(0)) await h.dispose();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function setup(shards = 3) {
  const t = await testHub({ allowedOrigins: [ORIGIN] });
  open.push(t);
  const url = t.hub.url;
  const alice = createToken(t.hub.store, 'alice').token;
  const bob = createToken(t.hub.store, 'bob').token;
  const { manifest, blobs } = manifestJson(shards);
  await upload(url, alice, blobs);
  const submit = async (token: string) => {
    const r = await fetch(`${url}/v1/jobs`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/json' },
      body: JSON.stringify(manifest),
    });
    expect(r.status).toBe(201);
    return ((await r.json()) as { job: string }).job;
  };
  return { t, url, alice, bob, submit };
}

async function volunteer(url: string): Promise<{ conn: Conn; id: string }> {
  const key = await TestKey.create();
  const { conn } = await authenticated(`${url.replace('http', 'ws')}/v1/volunteer`, key);
  conns.push(conn);
  return { conn, id: key.id };
}

async function leaseOn(conn: Conn): Promise<Extract<HubMessage, { type: 'lease' }>> {
  conn.send({ v: 2, type: 'lease-request' });
  const m = await conn.msg();
  if (m.type !== 'lease') throw new Error(`expected a lease, got ${JSON.stringify(m)}`);
  return m;
}

async function answer(conn: Conn, job: string, shard: string): Promise<HubMessage> {
  const r = await result(shard, job, truth(indexOf(shard)));
  conn.send({ v: 2, type: 'result', result: encodeResult(r) });
  return conn.msg();
}

describe('job owners', () => {
  it('shows a job only to the token that submitted it, and every job to the admin', async () => {
    const { url, alice, bob, submit } = await setup(1);
    const job = await submit(alice);
    for (const path of [`/v1/jobs/${job}`, `/v1/jobs/${job}/results`, `/v1/jobs/${job}/results/0/y`]) {
      const r = await fetch(`${url}${path}`, { headers: bearer(bob) });
      expect(r.status).toBe(403);
      const e = ((await r.json()) as { error: { code: string; message: string } }).error;
      expect(e.code).toBe('http/forbidden');
      expect(e.message).toMatch(/not submitted with this token/);
    }
    expect((await fetch(`${url}/v1/jobs/${job}`, { headers: bearer(alice) })).status).toBe(200);
    expect((await fetch(`${url}/v1/jobs/${job}`, { headers: bearer(ADMIN) })).status).toBe(200);
    expect((await fetch(`${url}/v1/jobs/${job}/results`, { headers: bearer(ADMIN) })).status).toBe(200);
    // Bob cannot cancel it either, and it keeps running.
    const r = await fetch(`${url}/v1/jobs/${job}`, { method: 'DELETE', headers: bearer(bob) });
    expect(r.status).toBe(403);
    const p = (await (await fetch(`${url}/v1/jobs/${job}`, { headers: bearer(alice) })).json()) as {
      status: string;
    };
    expect(p.status).toBe('running');
    // An unknown job is a 404 for everyone, never a 403 that would need an owner.
    expect((await fetch(`${url}/v1/jobs/job-nope`, { headers: bearer(bob) })).status).toBe(404);
  });

  it('keeps an admin-submitted job from researchers', async () => {
    const { url, alice, submit } = await setup(1);
    const job = await submit(ADMIN);
    expect((await fetch(`${url}/v1/jobs/${job}`, { headers: bearer(alice) })).status).toBe(403);
    expect((await fetch(`${url}/v1/jobs/${job}`, { headers: bearer(ADMIN) })).status).toBe(200);
  });
});

describe('DELETE /v1/jobs/:id', () => {
  it('cancels: no more leases, a late result is refused, pending credit void, granted kept, results readable', async () => {
    const { t, url, alice, submit } = await setup(3);
    const job = await submit(alice);
    const a = await volunteer(url);
    const b = await volunteer(url);
    // Shard 0: both answer, validated, credit granted.
    const la = await leaseOn(a.conn);
    const lb = await leaseOn(b.conn);
    expect(lb.shard).toBe(la.shard);
    expect(await answer(a.conn, job, la.shard)).toMatchObject({ type: 'ack', outcome: 'pending' });
    expect(await answer(b.conn, job, lb.shard)).toMatchObject({ type: 'ack', outcome: 'valid' });
    // Shard 1: a answers (pending credit), b still holds its lease.
    const la1 = await leaseOn(a.conn);
    const lb1 = await leaseOn(b.conn);
    expect(lb1.shard).toBe(la1.shard);
    expect(await answer(a.conn, job, la1.shard)).toMatchObject({ type: 'ack', outcome: 'pending' });
    expect(t.hub.scheduler.credits(a.id)).toEqual({
      pending: 50n * CREDIT_UNITS,
      granted: 50n * CREDIT_UNITS,
    });

    const r = await fetch(`${url}/v1/jobs/${job}`, { method: 'DELETE', headers: bearer(alice) });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({
      job,
      status: 'cancelled',
      already: false,
      leasesDropped: 1,
      creditVoided: 1,
    });

    // b's late result: a typed refusal naming the cancel; the connection stays usable.
    const late = await answer(b.conn, job, lb1.shard);
    expect(late).toMatchObject({ type: 'error', code: 'job/closed' });
    expect((late as { message: string }).message).toMatch(/cancelled/);
    b.conn.send({ v: 2, type: 'lease-request' });
    expect(await b.conn.msg()).toMatchObject({ type: 'no-work' });
    const c = await volunteer(url);
    c.conn.send({ v: 2, type: 'lease-request' });
    expect(await c.conn.msg()).toMatchObject({ type: 'no-work' });

    expect(t.hub.scheduler.credits(a.id)).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    expect(t.hub.scheduler.credits(b.id)).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    const p = await (await fetch(`${url}/v1/jobs/${job}`, { headers: bearer(alice) })).json();
    expect(p).toMatchObject({ status: 'cancelled', validated: 1, inFlight: 0 });
    const index = (await (
      await fetch(`${url}/v1/jobs/${job}/results`, { headers: bearer(alice) })
    ).json()) as {
      status: string;
      shards: { index: number }[];
    };
    expect(index.status).toBe('cancelled');
    expect(index.shards.map((s) => s.index)).toEqual([0]);
    const y = await fetch(`${url}/v1/jobs/${job}/results/0/y`, { headers: bearer(alice) });
    expect(new Float32Array(await y.arrayBuffer())).toEqual(truth(0));

    // Cancelling again changes nothing.
    const again = await fetch(`${url}/v1/jobs/${job}`, { method: 'DELETE', headers: bearer(alice) });
    expect(await again.json()).toMatchObject({ already: true, leasesDropped: 0, creditVoided: 0 });
  });

  it('lets the admin cancel anyone’s job, and refuses to cancel a finished one (409)', async () => {
    const { url, alice, submit } = await setup(1);
    const job = await submit(alice);
    let r = await fetch(`${url}/v1/jobs/${job}`, { method: 'DELETE', headers: bearer(ADMIN) });
    expect(r.status).toBe(200);

    const done = await submit(alice);
    const a = await volunteer(url);
    const b = await volunteer(url);
    const la = await leaseOn(a.conn);
    const lb = await leaseOn(b.conn);
    await answer(a.conn, done, la.shard);
    expect(await answer(b.conn, done, lb.shard)).toMatchObject({ outcome: 'valid' });
    r = await fetch(`${url}/v1/jobs/${done}`, { method: 'DELETE', headers: bearer(alice) });
    expect(r.status).toBe(409);
    const e = ((await r.json()) as { error: { code: string; message: string } }).error;
    expect(e.code).toBe('http/conflict');
    expect(e.message).toMatch(/already done/);
  });
});

describe('hearth cancel', () => {
  it('cancels the owner\u2019s job, prints the hub\u2019s refusal for another token, and has --help', async () => {
    const { t, url, alice, bob, submit } = await setup(2);
    const job = await submit(alice);
    const help = await hearth(['cancel', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/usage: hearth cancel JOB/);

    const refused = await hearth(['cancel', job, '--hub', url, '--token', bob]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/403 http\/forbidden/);
    expect(t.hub.store.getJob(job)!.status).toBe('running');

    const ok = await hearth(['cancel', job, '--hub', url, '--token', alice]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`cancelled ${job}: 0 lease\\(s\\) dropped`));
    expect(t.hub.store.getJob(job)!.status).toBe('cancelled');
  }, 60_000);
});
