// Two hubs racing for the same shards (issue 15): two processes, each a Scheduler on one
// PostgreSQL database, lease a job of 1,000 single-replica shards as fast as they can, both always
// asking for the lowest open one. The database's row locks (FOR UPDATE SKIP LOCKED, the replica
// count kept by triggers) must give every shard to exactly one of them.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import { wgslManifest } from '../hub/fixtures.ts';
import { freshDatabase } from './pg-helpers.ts';

const SHARDS = 1000;
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/** Starts a racer and resolves with a function that says go and resolves with its shards. */
function racer(url: string, volunteer: string): Promise<() => Promise<string[]>> {
  const child = spawn(
    process.execPath,
    ['scripts/run-ts.mjs', 'test/node/pg-race-child.ts', url, volunteer],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const next = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const onExit = () => reject(new Error(`racer ${volunteer} exited: ${err}`));
      child.once('exit', onExit);
      lines.once('line', (l) => {
        child.off('exit', onExit);
        resolve(l);
      });
    });
  return next().then((l) => {
    expect(l).toBe('ready');
    return async () => {
      const out = next();
      child.stdin?.write('go\n');
      return JSON.parse(await out) as string[];
    };
  });
}

describe('two hubs on one PostgreSQL racing for the same shards', () => {
  it('never lease one shard twice: 1,000 shards, each to exactly one hub', async () => {
    const url = await freshDatabase('race');
    const setup = new PostgresStore(url);
    const job = new Scheduler(setup).submit(
      wgslManifest(SHARDS, { replication: 1, maxReplicas: 1 }),
      Date.now(),
    );
    const [a, b] = await Promise.all([racer(url, 'v'.repeat(63) + 'a'), racer(url, 'v'.repeat(63) + 'b')]);
    if (!a || !b) throw new Error('racers did not start');
    const [gotA, gotB] = await Promise.all([a(), b()]);
    // Both took part: a race where one hub never leased would prove nothing.
    expect(gotA.length).toBeGreaterThan(50);
    expect(gotB.length).toBeGreaterThan(50);
    expect(gotA.length + gotB.length).toBe(SHARDS);
    const both = new Set(gotA);
    expect(gotB.filter((s) => both.has(s))).toEqual([]);
    expect(new Set([...gotA, ...gotB]).size).toBe(SHARDS);
    // The database agrees: one live lease per shard, and the trigger-kept count says so too.
    expect(setup.leasesOfJob(job)).toHaveLength(SHARDS);
    for (const sh of setup.shardsOfJob(job)) expect(setup.replicasOf(sh.id)).toBe(1);
    setup.close();
  });
});
