// The hub's service levels as a pure structure with an injected clock: percentiles, rates, the
// valid fraction, ETA, the window, the bounds; then fed by a real Scheduler's events (MemoryStore),
// which tells it nothing of a change that was rolled back.
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { Scheduler, type SchedulerEvent } from '../../src/hub/scheduler.ts';
import { percentiles, ServiceLevels } from '../../src/hub/service-levels.ts';
import { CAPS, result, truth, wgslManifest } from './fixtures.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
/** A clock the test moves; starts at 10 h so that bucket numbers are not small. */
function clock(start = 10 * HOUR) {
  let t = start;
  return { now: () => t, set: (v: number) => (t = v), add: (ms: number) => (t += ms) };
}

describe('ServiceLevels', () => {
  it('starts empty: no samples, no rate, no fraction', () => {
    const c = clock();
    const l = new ServiceLevels({ now: c.now });
    const h = l.hub();
    expect(h.latency).toEqual({ samples: 0 });
    expect(h.validatedPerMinute).toBe(0);
    expect(h.leases).toEqual({ ended: 0, valid: 0 });
    expect(h.throughput.validated).toEqual([0]);
    expect(l.job('nope', 3)).toBeUndefined();
  });

  it('percentiles are nearest-rank', () => {
    expect(percentiles([])).toEqual({ samples: 0 });
    expect(percentiles([7])).toEqual({ samples: 1, p50Ms: 7, p95Ms: 7 });
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 … 1, unsorted
    expect(percentiles(hundred)).toEqual({ samples: 100, p50Ms: 50, p95Ms: 95 });
    expect(percentiles([1, 2, 3, 4])).toMatchObject({ p50Ms: 2, p95Ms: 4 });
  });

  it('shard latency: lease issued → result accepted, over the last hour only', () => {
    const c = clock();
    const l = new ServiceLevels({ now: c.now });
    const t0 = c.now();
    for (let i = 1; i <= 100; i++) {
      l.record({
        type: 'result',
        job: 'j',
        shard: `j/${i}`,
        leasedAt: t0 + i * 1000,
        at: t0 + i * 1000 + i * 10,
      });
    }
    // A result without its lease (it came after the lease was reissued) has no latency.
    l.record({ type: 'result', job: 'j', shard: 'j/0', at: t0 + 5 });
    c.set(t0 + 200_000);
    expect(l.hub().latency).toEqual({ samples: 100, p50Ms: 500, p95Ms: 950 });
    expect(l.job('j')?.latency).toEqual({ samples: 100, p50Ms: 500, p95Ms: 950 });
    // An hour after the 50th result, only the 50 later ones count.
    c.set(t0 + 50 * 1000 + 50 * 10 + HOUR);
    expect(l.hub().latency).toEqual({ samples: 50, p50Ms: 750, p95Ms: 980 });
    c.add(HOUR);
    expect(l.hub().latency).toEqual({ samples: 0 });
  });

  it('validated shards per minute: over the hour, or since the hub started when that is later', () => {
    const c = clock();
    const l = new ServiceLevels({ now: c.now });
    const t0 = c.now();
    for (let i = 0; i < 30; i++)
      l.record({ type: 'validated', job: 'j', shard: `j/${i}`, at: t0 + i * 20_000 });
    c.set(t0 + 10 * MIN);
    expect(l.hub().validatedPerMinute).toBeCloseTo(3, 9);
    // Two hours on, 60 more in the last hour: 1 per minute, the first 30 out of the window.
    c.set(t0 + 2 * HOUR);
    for (let i = 0; i < 60; i++) {
      l.record({ type: 'validated', job: 'k', shard: `k/${i}`, at: c.now() - HOUR + 30_000 + i * MIN - 1 });
    }
    expect(l.hub().validatedPerMinute).toBeCloseTo(1, 9);
    const series = l.hub().throughput;
    expect(series.bucketMs).toBe(10_000);
    expect(series.validated).toHaveLength(360);
    expect(series.validated.reduce((a, b) => a + b, 0)).toBe(60);
    expect(series.start + 360 * 10_000).toBeGreaterThan(c.now());
  });

  it('fraction of leases that ended in a valid result', () => {
    const c = clock();
    const l = new ServiceLevels({ now: c.now });
    const at = c.now();
    for (let i = 0; i < 3; i++) l.record({ type: 'judged', job: 'j', valid: true, at });
    l.record({ type: 'judged', job: 'j', valid: false, at });
    l.record({ type: 'lease-ended', job: 'j', why: 'expired', at });
    expect(l.hub().leases).toEqual({ ended: 5, valid: 3, validFraction: 0.6 });
    c.add(HOUR + 10_000);
    expect(l.hub().leases).toEqual({ ended: 0, valid: 0 });
  });

  it('a job\u2019s ETA comes from its recent validation rate, and goes when it stalls', () => {
    const c = clock();
    const l = new ServiceLevels({ now: c.now });
    const t0 = c.now();
    l.record({ type: 'leased', job: 'j', shard: 'j/0', at: t0 });
    // 10 shards in 5 minutes: 2 per minute.
    for (let i = 1; i <= 10; i++)
      l.record({ type: 'validated', job: 'j', shard: `j/${i}`, at: t0 + i * 30_000 - 1 });
    c.set(t0 + 5 * MIN);
    const j = l.job('j', 20)!;
    expect(j.validatedPerMinute).toBeCloseTo(2, 9);
    expect(j.etaMs).toBe(10 * MIN);
    expect(j.throughput.start).toBe(t0);
    expect(j.throughput.validated.reduce((a, b) => a + b, 0)).toBe(10);
    expect(l.job('j')?.etaMs).toBeUndefined(); // no remaining count given
    // Nothing for 11 minutes: no recent rate, so no ETA rather than a stale one.
    c.add(11 * MIN);
    expect(l.job('j', 20)?.etaMs).toBeUndefined();
    expect(l.job('j', 20)?.validatedPerMinute).toBe(0);
  });

  it('is bounded: jobs past maxJobs are forgotten oldest-first, latency keeps the latest samples', () => {
    const c = clock();
    const l = new ServiceLevels({ now: c.now, maxJobs: 3, latencySamples: 4 });
    const at = c.now();
    for (const j of ['a', 'b', 'c']) l.record({ type: 'leased', job: j, shard: `${j}/0`, at });
    l.record({ type: 'validated', job: 'a', shard: 'a/0', at }); // a is the most recent now
    l.record({ type: 'leased', job: 'd', shard: 'd/0', at });
    expect(l.jobsFollowed).toBe(3);
    expect(l.job('b')).toBeUndefined();
    expect(l.job('a')).toBeDefined();
    for (let i = 1; i <= 10; i++)
      l.record({ type: 'result', job: 'a', shard: 'a/1', leasedAt: at, at: at + i });
    expect(l.hub().latency).toEqual({ samples: 4, p50Ms: 8, p95Ms: 10 });
  });

  it('keeps no event older than its ring holds', () => {
    const c = clock();
    const l = new ServiceLevels({ now: c.now, windowMs: 60_000, bucketMs: 10_000 });
    const t0 = c.now();
    l.record({ type: 'validated', job: 'j', shard: 'j/0', at: t0 + 70_000 });
    // Same slot in the ring, an older bucket: dropped rather than counted in the newer one.
    l.record({ type: 'validated', job: 'j', shard: 'j/1', at: t0 + 10_000 });
    c.set(t0 + 70_000);
    expect(l.hub().throughput.validated.reduce((a, b) => a + b, 0)).toBe(1);
  });
});

describe('ServiceLevels fed by the Scheduler', () => {
  it('hears leases, results, judgements and validations, and nothing of a rolled-back change', async () => {
    const events: SchedulerEvent[] = [];
    const c = clock(0);
    const levels = new ServiceLevels({ now: c.now });
    const s = new Scheduler(new MemoryStore(), {
      honeypotRate: 0,
      observer: (e) => {
        events.push(e);
        levels.record(e);
      },
    });
    const job = s.submit(wgslManifest(2), 0);
    const a = s.lease('a', CAPS, 1000)!;
    const b = s.lease('b', CAPS, 2000)!;
    expect(events.map((e) => e.type)).toEqual(['leased', 'leased']);
    await s.submitResult('a', await result(a.shard, job, truth(0)), 1500);
    await s.submitResult('b', await result(b.shard, job, truth(0)), 4000);
    expect(events.slice(2).map((e) => e.type)).toEqual(['result', 'result', 'judged', 'judged', 'validated']);
    expect(events[2]).toEqual({ type: 'result', job, shard: a.shard, leasedAt: 1000, at: 1500 });
    // A duplicate result throws inside its transaction: no event.
    const before = events.length;
    await expect(s.submitResult('b', await result(b.shard, job, truth(0)), 5000)).rejects.toThrow();
    expect(events.length).toBe(before);
    // A lease that expires, and one dropped by a cancel.
    s.lease('a', CAPS, 6000);
    s.lease('c', CAPS, 6000);
    expect(s.expire(6000 + 10_001)).toBe(2);
    s.lease('d', CAPS, 20_000);
    s.cancel(job, 21_000);
    expect(events.filter((e) => e.type === 'lease-ended').map((e) => (e as { why: string }).why)).toEqual([
      'expired',
      'expired',
      'cancelled',
    ]);
    c.set(30_000);
    const h = levels.hub();
    expect(h.latency).toEqual({ samples: 2, p50Ms: 500, p95Ms: 2000 });
    expect(h.leases).toEqual({ ended: 5, valid: 2, validFraction: 0.4 });
    expect(levels.job(job)?.throughput.validated.reduce((x, y) => x + y, 0)).toBe(1);
  });

  it('an observer that throws does not undo the change', () => {
    const s = new Scheduler(new MemoryStore(), {
      honeypotRate: 0,
      observer: () => {
        throw new Error('observer bug');
      },
    });
    const job = s.submit(wgslManifest(1), 0);
    expect(s.lease('a', CAPS, 0)).toBeDefined();
    expect(s.progress(job).inFlight).toBe(1);
  });
});
