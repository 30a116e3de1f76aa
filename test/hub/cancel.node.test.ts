// Job cancel and job owners at the scheduler, on every store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { JournaledStore } from '../../src/hub/journaled-store.ts';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
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
  const d = mkdtempSync(join(tmpdir(), 'hearth-cancel-'));
  dirs.push(d);
  return join(d, 'hub.db');
}

const kinds: [string, () => HubStore][] = [
  ['MemoryStore', () => new MemoryStore()],
  ['SqliteStore', () => new SqliteStore(tempDb())],
  ['JournaledStore', () => new JournaledStore(tempDb())],
];

async function refusal(p: Promise<unknown>): Promise<HearthError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HearthError);
  return err as HearthError;
}

describe.each(kinds)('cancel on %s', (_name, make) => {
  const setup = () => {
    const store = make();
    stores.push(store);
    return { store, s: new Scheduler(store, { honeypotRate: 0 }) };
  };

  it('stops leasing, drops leases, voids pending credit, keeps granted credit and validated results', async () => {
    const { store, s } = setup();
    const job = s.submit(wgslManifest(3), 0, { owner: 'alice' });
    expect(store.getJob(job)!.owner).toBe('alice');
    // Shard 0 validated (a and b agree); shard 1 has one pending result (a) and a lease (b).
    const a0 = s.lease('a', CAPS, 0)!;
    const b0 = s.lease('b', CAPS, 0)!;
    expect(b0.shard).toBe(a0.shard);
    await s.submitResult('a', await result(a0.shard, job, truth(0)), 1);
    await s.submitResult('b', await result(b0.shard, job, truth(0)), 2);
    const a1 = s.lease('a', CAPS, 3)!;
    const b1 = s.lease('b', CAPS, 3)!;
    expect(b1.shard).toBe(a1.shard);
    expect(await s.submitResult('a', await result(a1.shard, job, truth(1)), 4)).toEqual({
      status: 'pending',
    });
    expect(s.credits('a')).toEqual({ pending: 50n * CREDIT_UNITS, granted: 50n * CREDIT_UNITS });

    const out = s.cancel(job, 5);
    expect(out).toEqual({ job, status: 'cancelled', already: false, leasesDropped: 1, creditVoided: 1 });
    expect(store.getJob(job)).toMatchObject({ status: 'cancelled', cancelledAt: 5 });
    expect(store.leasesOfJob(job)).toEqual([]);
    expect(s.credits('a')).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    expect(s.credits('b')).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    // Nothing more is leased, to anyone.
    expect(s.lease('c', CAPS, 6)).toBeUndefined();
    expect(s.lease('a', CAPS, 6)).toBeUndefined();
    // b's late result gets a refusal that says why, and changes nothing.
    const err = await refusal(s.submitResult('b', await result(b1.shard, job, truth(1)), 7));
    expect(err.code).toBe('job/closed');
    expect(err.message).toMatch(/cancelled/);
    expect(err.details).toMatchObject({ job, reason: 'cancelled' });
    expect(s.credits('b')).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    expect(() => s.heartbeat('b', b1.lease.id, 7)).toThrow(/holds no lease/);
    // What was validated stays readable.
    expect(s.results(job).map((r) => r.index)).toEqual([0]);
    expect(s.progress(job)).toMatchObject({ status: 'cancelled', validated: 1, inFlight: 0, shards: 3 });
  });

  it('a second cancel changes nothing; a finished job cannot be cancelled; unknown jobs are named', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(1, { replication: 1 }), 0);
    const g = s.lease('a', CAPS, 0)!;
    await s.submitResult('a', await result(g.shard, job, truth(0)), 1);
    expect(s.progress(job).status).toBe('done');
    expect(() => s.cancel(job, 2)).toThrow(/already done/);

    const other = s.submit(wgslManifest(1), 3);
    expect(s.cancel(other, 4).already).toBe(false);
    expect(s.cancel(other, 5)).toMatchObject({ already: true, leasesDropped: 0, creditVoided: 0 });
    expect(() => s.cancel('job-nope', 6)).toThrow(/job-nope does not exist/);
  });

  it('other jobs keep running when one is cancelled', () => {
    const { s } = setup();
    const first = s.submit(wgslManifest(2), 0);
    const second = s.submit(wgslManifest(2), 1);
    s.cancel(first, 2);
    expect(s.lease('a', CAPS, 3)!.job).toBe(second);
  });

  it('results queued in one commit: a refused one leaves the others accepted', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(2, { replication: 1 }), 0);
    const g0 = s.lease('a', CAPS, 0)!;
    const g1 = s.lease('b', CAPS, 0)!;
    // Three results in the same turn of the event loop: c holds no lease and is refused.
    const [r0, r1, bad] = await Promise.allSettled([
      s.submitResult('a', await result(g0.shard, job, truth(0)), 1),
      s.submitResult('b', await result(g1.shard, job, truth(1)), 1),
      s.submitResult('c', await result(g1.shard, job, truth(1)), 1),
    ]);
    expect(r0).toEqual({ status: 'fulfilled', value: { status: 'valid' } });
    expect(r1).toEqual({ status: 'fulfilled', value: { status: 'valid' } });
    expect(bad.status).toBe('rejected');
    expect(s.progress(job)).toMatchObject({ status: 'done', validated: 2 });
    expect(s.credits('c')).toEqual({ pending: 0n, granted: 0n });
  });
});
