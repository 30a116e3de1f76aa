// A hub whose SQLite file stops taking writes mid-job (issue 11): the group commit fails inside a
// timer, where a throw would kill the process. The store must stop instead — refuse every further
// change with 'store/failed', never acknowledge the result it could not write — and a restart on
// the same file must find only what was acknowledged.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { JournaledStore } from '../../src/hub/journaled-store.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import { CREDIT_UNITS } from '../../src/protocol/credit.ts';
import { CAPS, result, truth, wgslManifest } from './fixtures.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('JournaledStore when its file stops taking writes', () => {
  it('stops with store/failed, acknowledges nothing more, and a restart finds what was acknowledged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-failed-'));
    dirs.push(dir);
    const path = join(dir, 'hub.db');
    const store = new JournaledStore(path);
    const s = new Scheduler(store, { honeypotRate: 0 });
    const job = s.submit(wgslManifest(2, { replication: 1, maxReplicas: 2 }), 0);
    const a = s.lease('a', CAPS, 1)!;
    expect((await s.submitResult('a', await result(a.shard, job, truth(0)), 2)).status).toBe('valid');
    const b = s.lease('b', CAPS, 3)!;
    // Another process takes the file's write lock and keeps it: every commit now fails (after the
    // busy timeout), as on a full or read-only disk.
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      const err = await s.submitResult('b', await result(b.shard, job, truth(1)), 4).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(HearthError);
      expect((err as HearthError).code).toBe('store/failed');
      expect((err as HearthError).message).toMatch(/accepts no more changes until it is restarted/);
      // A lease (a grouped change, committed from a timer) fails the same way, without a throw
      // escaping the timer.
      expect(() => s.lease('c', CAPS, 5)).toThrow(/accepts no more changes/);
      await new Promise((r) => setTimeout(r, 50));
      expect(uncaught).toEqual([]);
      await expect(store.settled()).rejects.toMatchObject({ code: 'store/failed' });
    } finally {
      process.off('uncaughtException', onUncaught);
      other.exec('ROLLBACK');
      other.close();
      store.close();
    }
    // Restart: the acknowledged result is there, the refused one is not; the job goes on.
    const again = new JournaledStore(path);
    try {
      const s2 = new Scheduler(again, { honeypotRate: 0 });
      expect(s2.progress(job)).toMatchObject({ validated: 1, status: 'running' });
      expect(s2.credits('a')).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
      expect(s2.credits('b')).toEqual({ pending: 0n, granted: 0n });
      const c = s2.lease('c', CAPS, 10)!;
      expect(c.shard).toBe(b.shard);
      expect((await s2.submitResult('c', await result(c.shard, job, truth(1)), 11)).status).toBe('valid');
      expect(s2.progress(job)).toMatchObject({ validated: 2, status: 'done' });
    } finally {
      again.close();
    }
  }, 30_000);
});
