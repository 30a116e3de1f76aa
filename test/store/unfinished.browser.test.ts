// UnfinishedLeases on Chromium's real IndexedDB: the leases a reload resumes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CheckpointStore, type HearthDB, UnfinishedLeases } from '../../src/store/index.ts';
import { freshDb } from './helpers.ts';

let db: HearthDB;
let dispose: () => Promise<void>;

beforeEach(async () => {
  ({ db, dispose } = await freshDb());
});
afterEach(async () => {
  await dispose();
});

describe('UnfinishedLeases', () => {
  it('lists what was remembered, oldest first, and forgets a lease with its checkpoint', async () => {
    let now = 1000;
    const u = new UnfinishedLeases(db, { now: () => now });
    const cps = new CheckpointStore(db);
    await u.remember('s1', '{"type":"lease","shard":"s1"}', 'http://hub-a');
    now = 2000;
    await u.remember('s2', '{"type":"lease","shard":"s2"}', 'http://hub-b');
    await cps.save('s1', 3, { x: 1 });
    await cps.save('s2', 4, { x: 2 });
    expect((await u.list()).map((e) => [e.shard, e.hub, e.savedAt])).toEqual([
      ['s1', 'http://hub-a', 1000],
      ['s2', 'http://hub-b', 2000],
    ]);
    await u.forget('s1');
    expect((await u.list()).map((e) => e.shard)).toEqual(['s2']);
    expect(await cps.load('s1')).toBeNull();
    expect((await cps.load('s2'))?.step).toBe(4);
  });

  it('keeps at most `max` leases (the oldest go, with their checkpoints) and drops stale ones when listing', async () => {
    let now = 0;
    const u = new UnfinishedLeases(db, { max: 2, maxAgeMs: 10_000, now: () => now });
    const cps = new CheckpointStore(db);
    for (const s of ['a', 'b', 'c']) {
      now += 1000;
      await cps.save(s, 1, { x: 1 });
      await u.remember(s, `lease ${s}`, 'http://hub');
    }
    expect((await u.list()).map((e) => e.shard)).toEqual(['b', 'c']);
    expect(await cps.load('a')).toBeNull();
    now = 12_500; // b (2000) is past 10 s, c (3000) is not
    expect((await u.list()).map((e) => e.shard)).toEqual(['c']);
    expect(await cps.load('b')).toBeNull();
    expect(await db.count('unfinished')).toBe(1);
  });

  it('refuses an empty shard id with a typed error', async () => {
    const u = new UnfinishedLeases(db);
    await expect(u.remember('', 'x', 'h')).rejects.toMatchObject({ code: 'input/invalid' });
    await expect(u.forget('')).rejects.toMatchObject({ code: 'input/invalid' });
  });
});
