// Batched lease and result messages over real WebSockets (issue 15): lease-batch → leases (never
// two replicas of a shard to one volunteer, fewer when the hub has fewer), results → acks (one
// per result, in order, a refused result refused alone), both checked like every message, and
// the one-shard messages still served beside them on the same connection.
import { afterEach, describe, expect, it } from 'vitest';
import {
  CONTROL_LIMITS,
  encodeResult,
  parseClientMessage,
  parseHubMessage,
} from '../../src/protocol/control.ts';
import { CREDIT_UNITS } from '../../src/protocol/credit.ts';
import { indexOf, result, truth, wgslManifest } from '../hub/fixtures.ts';
import { authenticated, startTestHub, type TestHub, TestKey } from './control-helpers.ts';

const hubs: TestHub[] = [];
afterEach(async () => {
  for (const h of hubs.splice(0)) await h.close();
});
const start = async () => {
  const h = await startTestHub();
  hubs.push(h);
  return h;
};

describe('control plane: batches', () => {
  it('lease-batch gives up to max distinct shards; results acks each in order; credit as one at a time', async () => {
    const hub = await start();
    const job = hub.scheduler.submit(wgslManifest(5, { replication: 1, maxReplicas: 2 }), Date.now());
    const key = await TestKey.create();
    const { conn } = await authenticated(hub.url, key);
    conn.send({ v: 2, type: 'lease-batch', max: 3 });
    const got = await conn.msg();
    if (got.type !== 'leases') throw new Error(`expected leases, got ${JSON.stringify(got)}`);
    expect(got.leases).toHaveLength(3);
    expect(new Set(got.leases.map((l) => l.shard)).size).toBe(3);
    for (const l of got.leases) expect(l).toMatchObject({ job, work: { kind: 'wgsl' } });
    expect(hub.store.leasesOfVolunteer(key.id)).toHaveLength(3);
    // Two leases are left: a second batch gets them, not 3.
    conn.send({ v: 2, type: 'lease-batch', max: 3 });
    const rest = await conn.msg();
    if (rest.type !== 'leases') throw new Error(`expected leases, got ${JSON.stringify(rest)}`);
    expect(rest.leases).toHaveLength(2);
    // Results for all five in one message, one of them wrong: each is judged on its own.
    const leases = [...got.leases, ...rest.leases];
    const results = await Promise.all(
      leases.map((l, i) => result(l.shard, job, truth(indexOf(l.shard) + (i === 1 ? 100 : 0)))),
    );
    conn.send({ v: 2, type: 'results', results: results.map(encodeResult) });
    const acks = await conn.msg();
    if (acks.type !== 'acks') throw new Error(`expected acks, got ${JSON.stringify(acks)}`);
    expect(acks.acks.map((a) => a.shard)).toEqual(leases.map((l) => l.shard));
    // Replication 1, one volunteer: every result stands alone (its own agreement).
    expect(acks.acks.every((a) => a.outcome === 'valid')).toBe(true);
    expect(hub.store.leasesOfVolunteer(key.id)).toHaveLength(0);
    expect(hub.scheduler.progress(job)).toMatchObject({ validated: 5, status: 'done' });
    expect(hub.scheduler.credits(key.id).granted).toBe(5n * 50n * CREDIT_UNITS);
    // Nothing left: no-work, as for lease-request.
    conn.send({ v: 2, type: 'lease-batch', max: 2 });
    expect(await conn.msg()).toMatchObject({ type: 'no-work' });
    await conn.close();
  });

  it('a refused result in a batch is refused alone; the others are taken', async () => {
    const hub = await start();
    const job = hub.scheduler.submit(wgslManifest(3, { replication: 1, maxReplicas: 2 }), Date.now());
    const key = await TestKey.create();
    const { conn } = await authenticated(hub.url, key);
    conn.send({ v: 2, type: 'lease-batch', max: 2 });
    const got = await conn.msg();
    if (got.type !== 'leases') throw new Error(`expected leases, got ${JSON.stringify(got)}`);
    const [a, b] = got.leases;
    if (!a || !b) throw new Error('expected two leases');
    const held = await Promise.all([a, b].map((l) => result(l.shard, job, truth(indexOf(l.shard)))));
    // The third shard was never leased to this volunteer: lease/unknown, for that result only.
    const third = [0, 1, 2].find((i) => ![a.shard, b.shard].includes(`${job}/${i}`));
    const stranger = await result(`${job}/${third}`, job, truth(third ?? 0));
    conn.send({ v: 2, type: 'results', results: [held[0], stranger, held[1]].map((r) => encodeResult(r!)) });
    const acks = await conn.msg();
    if (acks.type !== 'acks') throw new Error(`expected acks, got ${JSON.stringify(acks)}`);
    expect(acks.acks).toEqual([
      { shard: a.shard, outcome: 'valid' },
      { shard: `${job}/${third}`, error: expect.objectContaining({ code: 'lease/unknown' }) },
      { shard: b.shard, outcome: 'valid' },
    ]);
    // The same result again: refused alone too (its lease ended with it, the shard is judged).
    conn.send({ v: 2, type: 'results', results: [encodeResult(held[0]!)] });
    const again = await conn.msg();
    expect(again).toMatchObject({
      type: 'acks',
      acks: [{ shard: a.shard, error: { code: 'lease/unknown' } }],
    });
    // One-shard messages still work on the same connection.
    conn.send({ v: 2, type: 'lease-request' });
    expect(await conn.msg()).toMatchObject({ type: 'lease', shard: `${job}/${third}` });
    await conn.close();
  });

  it('checks batch messages both ways, naming the bad field', async () => {
    const ok = await result('job-x/0', 'job-x', truth(0));
    const wire = encodeResult(ok);
    const bad = (m: unknown, path: RegExp) =>
      expect(() => parseClientMessage(JSON.stringify({ v: 2, id: 1, ...(m as object) }))).toThrow(path);
    bad({ type: 'lease-batch' }, /message\.max/);
    bad({ type: 'lease-batch', max: 0 }, /message\.max/);
    bad({ type: 'lease-batch', max: CONTROL_LIMITS.maxBatch + 1 }, /message\.max/);
    bad({ type: 'results', results: [] }, /message\.results/);
    bad({ type: 'results', results: [wire, wire] }, /message\.results: each shard at most once/);
    bad(
      { type: 'results', results: Array.from({ length: CONTROL_LIMITS.maxBatch + 1 }, () => wire) },
      /message\.results/,
    );
    bad({ type: 'results', results: [{ ...wire, outputs: [] }] }, /message\.results\[0\]\.outputs/);
    expect(
      parseClientMessage(JSON.stringify({ v: 2, id: 1, type: 'results', results: [wire] })),
    ).toMatchObject({
      type: 'results',
      results: [{ shard: 'job-x/0' }],
    });
    const hubBad = (m: unknown, path: RegExp) =>
      expect(() => parseHubMessage(JSON.stringify({ v: 2, re: 1, ...(m as object) }))).toThrow(path);
    hubBad({ type: 'leases', leases: [] }, /message\.leases/);
    hubBad(
      { type: 'acks', acks: [{ shard: 'job-x/0' }] },
      /message\.acks\[0\]: expected an outcome or an error/,
    );
    hubBad(
      { type: 'acks', acks: [{ shard: 'job-x/0', outcome: 'valid', error: { code: 'a/b', message: 'm' } }] },
      /message\.acks\[0\]/,
    );
    expect(
      parseHubMessage(
        JSON.stringify({ v: 2, re: 1, type: 'acks', acks: [{ shard: 'job-x/0', outcome: 'pending' }] }),
      ),
    ).toMatchObject({ type: 'acks' });
  });

  it('a batch over the limit is refused with input/invalid and changes nothing', async () => {
    const hub = await start();
    hub.scheduler.submit(wgslManifest(2), Date.now());
    const key = await TestKey.create();
    const { conn } = await authenticated(hub.url, key);
    conn.send({ v: 2, type: 'lease-batch', max: CONTROL_LIMITS.maxBatch + 1 });
    expect(await conn.msg()).toMatchObject({
      type: 'error',
      code: 'input/invalid',
      details: { path: 'message.max' },
    });
    expect(hub.store.leasesOfVolunteer(key.id)).toHaveLength(0);
    await conn.close();
  });
});
