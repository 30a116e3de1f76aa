// Errors that reach the researcher (issue 10): a volunteer's deterministic error is recorded like a
// result, a few distinct volunteers reporting it fail the shard (a broken kernel: the whole job)
// with that error; a device-specific error only hands the shard to someone else; progress says
// what failed and what a job waits for. On every store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { JournaledStore } from '../../src/hub/journaled-store.ts';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { Scheduler, type SchedulerOptions } from '../../src/hub/scheduler.ts';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import type { HubStore } from '../../src/hub/store.ts';
import { CAPS, result, truth, wgslManifest } from './fixtures.ts';

const dirs: string[] = [];
const stores: HubStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const file = () => {
  const d = mkdtempSync(join(tmpdir(), 'hearth-fail-'));
  dirs.push(d);
  return join(d, 'hub.db');
};
const kinds: [string, () => HubStore][] = [
  ['MemoryStore', () => new MemoryStore()],
  ['SqliteStore', () => new SqliteStore(file())],
  ['JournaledStore', () => new JournaledStore(file())],
];

const COMPILE = {
  code: 'wgsl/compile' as const,
  message: 'WGSL error in shader "shard j/0" at line 3, column 9: expected \')\'',
};

describe.each(kinds)('failures on %s', (_name, make) => {
  const setup = (opts: SchedulerOptions = {}) => {
    const store = make();
    stores.push(store);
    return { store, s: new Scheduler(store, { honeypotRate: 0, ...opts }) };
  };

  it('a kernel that fails to compile on two volunteers fails the job with its error, at once', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(3), 0);
    const a = s.lease('a', CAPS, 0)!;
    expect(await s.reportFailure('a', a.shard, COMPILE, 1)).toEqual({ status: 'recorded' });
    // a is done with that shard; it goes to others, and a gets the next one.
    expect(s.lease('a', CAPS, 2)!.shard).not.toBe(a.shard);
    const b = s.lease('b', CAPS, 2)!;
    expect(b.shard).toBe(a.shard);
    expect(await s.reportFailure('b', b.shard, COMPILE, 3)).toEqual({ status: 'failed', job: true });
    const p = s.progress(job);
    expect(p).toMatchObject({ status: 'failed', error: COMPILE, inFlight: 0 });
    expect(p.failures?.[0]).toMatchObject({ shard: a.shard, code: 'wgsl/compile', message: COMPILE.message });
    // Nothing more is leased, and results for it are refused.
    expect(s.lease('c', CAPS, 4)).toBeUndefined();
    // Nobody is credited for a failure.
    expect(s.credits('a')).toEqual({ pending: 0n, granted: 0n });
  });

  it('a shard-level deterministic error fails that shard only; the job goes on', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(2), 0);
    const bad = { code: 'wgsl/manifest' as const, message: 'binding 3 is 64 bytes, the shader reads 128' };
    const a = s.lease('a', CAPS, 0)!;
    const b = s.lease('b', CAPS, 0)!;
    expect(a.shard).toBe(b.shard);
    await s.reportFailure('a', a.shard, bad, 1);
    expect(await s.reportFailure('b', b.shard, bad, 1)).toEqual({ status: 'failed', job: false });
    expect(s.progress(job)).toMatchObject({ status: 'running', failed: 1 });
    for (const v of ['a', 'b']) {
      const g = s.lease(v, CAPS, 2)!;
      await s.submitResult(v, await result(g.shard, job, truth(1)), 3);
    }
    const p = s.progress(job);
    expect(p).toMatchObject({ status: 'failed', validated: 1, failed: 1 });
    expect(p.failures).toEqual([{ shard: a.shard, index: 0, code: 'wgsl/manifest', message: bad.message }]);
    expect(p.error).toBeUndefined();
  });

  it('a device-specific error only releases the lease: the shard goes to someone else, nothing is recorded', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(1, { replication: 1, maxReplicas: 2 }), 0);
    const a = s.lease('a', CAPS, 0)!;
    const lost = { code: 'gpu/device-lost' as const, message: 'the GPU was reset' };
    expect(await s.reportFailure('a', a.shard, lost, 1)).toEqual({ status: 'released' });
    expect(s.progress(job)).toMatchObject({ inFlight: 0, done: 0, failed: 0 });
    // Not counted against the job: even the same volunteer may try again.
    expect(s.lease('a', CAPS, 2)!.shard).toBe(a.shard);
    // Unknown codes from a volunteer are never taken as the researcher's error.
    expect(await s.reportFailure('a', a.shard, { code: 'made/up' as never, message: 'x' }, 3)).toEqual({
      status: 'released',
    });
  });

  it('a report for a shard the volunteer does not hold is refused', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(1), 0);
    await expect(s.reportFailure('z', `${job}/0`, COMPILE, 0)).rejects.toThrow(/holds no lease/);
    await expect(s.reportFailure('z', `${job}/9`, COMPILE, 0)).rejects.toThrow(/unknown shard/);
  });

  it('says when a job waits for another volunteer, and counts a volunteer’s pending results', async () => {
    const { s } = setup();
    const job = s.submit(wgslManifest(2), 0);
    for (let i = 0; i < 2; i++) {
      const g = s.lease('only', CAPS, i)!;
      await s.submitResult('only', await result(g.shard, job, truth(i)), i);
    }
    expect(s.lease('only', CAPS, 5)).toBeUndefined();
    const p = s.progress(job);
    expect(p).toMatchObject({ done: 2, inFlight: 0, validated: 0 });
    expect(p.waiting).toMatch(/2 shards have a result and wait for another volunteer: replication 2/);
    expect(s.pendingResults('only')).toBe(2);
    for (let i = 0; i < 2; i++) {
      const g = s.lease('other', CAPS, 6)!;
      await s.submitResult('other', await result(g.shard, job, truth(i)), 7);
    }
    expect(s.pendingResults('only')).toBe(0);
    expect(s.progress(job).waiting).toBeUndefined();
  });
});
