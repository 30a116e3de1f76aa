// Crash safety (issue 4, Robustness): `hearth hub` runs as a child process on a SQLite file and is
// SIGKILLed at seeded random moments mid-job, then restarted on the same file (a new port each
// time); Node volunteers over real WebSockets keep leasing and answering, reconnecting to the new
// hub. Afterwards: no result the hub acknowledged is lost, no credit is granted twice, the job is
// done with every canonical result equal to the truth.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { creditUnits } from '../../src/protocol/credit.ts';
import { seededRng, truth } from '../hub/fixtures.ts';
import { sleep, TestKey } from './control-helpers.ts';
import {
  type HubPointer,
  type HubProcess,
  killHub,
  runVolunteer,
  type SeenAck,
  spawnHub,
} from './crash-helpers.ts';
import { manifestJson, upload } from './hub-helpers.ts';

const SHARDS = 12;
const KILLS = 5;
const SEED = 0x5eed4;

const dir = mkdtempSync(join(tmpdir(), 'hearth-hub-crash-'));
const hubs: HubProcess[] = [];
afterAll(async () => {
  for (const h of hubs) await killHub(h);
  rmSync(dir, { recursive: true, force: true });
});

async function start(db: string): Promise<HubProcess> {
  const h = await spawnHub(db);
  hubs.push(h);
  return h;
}

/** Polls `cond` every 20 ms until it holds or `ms` pass. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('hub crash safety (SIGKILL mid-job, restart on the same SQLite file)', () => {
  it('loses no acknowledged result, grants no credit twice, and completes the job', async () => {
    const rng = seededRng(SEED);
    const db = join(dir, 'hub.db');
    const setup = new SqliteStore(db);
    const { token } = createToken(setup, 'crash');
    setup.close();
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

    // deadlineMs at its minimum: leases a killed hub left behind are reissued soon after restart.
    const { manifest, blobs } = manifestJson(SHARDS, { deadlineMs: 1000 });
    const credit = creditUnits(manifest.flopsPerShard as number, manifest.creditRate as number);
    const replication = manifest.replication as number;

    let hub = await start(db);
    await upload(hub.url, token, blobs);
    const submitted = await fetch(`${hub.url}/v1/jobs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify(manifest),
    });
    expect(submitted.status).toBe(201);
    const { job } = (await submitted.json()) as { job: string };

    const ptr: HubPointer = { url: hub.url, life: 0 };
    const acks: SeenAck[] = [];
    let stopped = false;
    const keys = await Promise.all([TestKey.create(), TestKey.create(), TestKey.create()]);
    const vrng = seededRng(SEED + 1);
    const volunteers = keys.map((k) =>
      runVolunteer(
        k,
        job,
        ptr,
        acks,
        () => stopped,
        () => 40 + Math.floor(vrng() * 50),
      ),
    );

    try {
      // Kill at seeded moments: after 1–3 more acks, then a random delay that may land anywhere
      // in the next lease → result → transaction → ack cycle.
      for (let k = 0; k < KILLS; k++) {
        const base = acks.length;
        const more = 1 + Math.floor(rng() * 3);
        await until(() => acks.length >= base + more, 15_000, `${more} acks in hub life ${k}`);
        await sleep(Math.floor(rng() * 120));
        ptr.url = undefined;
        await killHub(hub);
        await sleep(Math.floor(rng() * 200));
        hub = await start(db);
        ptr.life = k + 1;
        ptr.url = hub.url;
      }

      // Let the volunteers finish the job on the last hub.
      const progress = async () =>
        (await (await fetch(`${hub.url}/v1/jobs/${job}`, { headers: auth })).json()) as {
          status: string;
          shards: number;
          validated: number;
          progress: number;
        };
      const end = Date.now() + 20_000;
      for (;;) {
        const p = await progress();
        if (p.validated === SHARDS) break;
        if (Date.now() > end) throw new Error(`job stuck at ${JSON.stringify(p)}`);
        await sleep(100);
      }
    } finally {
      stopped = true;
      await Promise.all(volunteers);
    }
    expect(ptr.life).toBe(KILLS);
    const beforeKill = acks.filter((a) => a.life < KILLS);
    expect(beforeKill.some((a) => a.outcome === 'valid')).toBe(true);
    // Work was left after the last restart, so every kill landed mid-job.
    expect(acks.some((a) => a.life === KILLS)).toBe(true);

    // One more SIGKILL with the job done, then a fresh hub answers from the file alone.
    ptr.url = undefined;
    await killHub(hub);
    hub = await start(db);

    const p = (await (await fetch(`${hub.url}/v1/jobs/${job}`, { headers: auth })).json()) as Record<
      string,
      unknown
    >;
    expect(p).toMatchObject({ status: 'done', shards: SHARDS, validated: SHARDS, failed: 0, progress: 1 });
    const index = (await (await fetch(`${hub.url}/v1/jobs/${job}/results`, { headers: auth })).json()) as {
      shards: { shard: string; index: number; outputs: { name: string; sha256: string }[] }[];
    };
    expect(index.shards.map((s) => s.index)).toEqual(Array.from({ length: SHARDS }, (_, i) => i));
    const canonical = new Map(index.shards.map((s) => [s.shard, s]));
    for (const s of index.shards) {
      const bytes = await (
        await fetch(`${hub.url}/v1/jobs/${job}/results/${s.index}/y`, { headers: auth })
      ).arrayBuffer();
      expect([...new Float32Array(bytes)], s.shard).toEqual([...truth(s.index)]);
    }
    // Every shard acknowledged valid (before a kill or after) is still validated.
    for (const a of acks.filter((x) => x.outcome === 'valid')) {
      expect(canonical.has(a.shard), `${a.shard} acked valid in life ${a.life}`).toBe(true);
    }

    // Stop the hub cleanly, then read the file directly (nothing else has it open).
    hub.child.kill('SIGTERM');
    await hub.exited;
    expect(hub.child.exitCode, hub.stderr()).toBe(0);

    const store = new SqliteStore(db);
    try {
      // Every acknowledged result (valid or pending) is in the store under its volunteer.
      for (const a of acks) {
        const r = store.resultsOfShard(a.shard).find((x) => x.volunteer === a.volunteer);
        expect(
          r,
          `${a.outcome} ack of ${a.shard} for ${a.volunteer.slice(0, 8)} in life ${a.life}`,
        ).toBeDefined();
        if (a.outcome === 'valid') expect(r!.status).toBe('valid');
      }
      const ledger = store.ledger();
      const pairs = ledger.map((e) => `${e.volunteer} ${e.shard}`);
      expect(new Set(pairs).size).toBe(pairs.length);
      const granted = ledger.filter((e) => e.status === 'granted');
      expect(granted).toHaveLength(SHARDS * replication);
      expect(granted.reduce((t, e) => t + e.credits, 0n)).toBe(BigInt(SHARDS * replication) * credit);
      expect(ledger.filter((e) => e.status === 'pending')).toHaveLength(0);
      for (let i = 0; i < SHARDS; i++) {
        const shard = store.getShard(`${job}/${i}`)!;
        expect(shard.status).toBe('validated');
        const results = store.resultsOfShard(shard.id);
        expect(results.filter((r) => r.status === 'valid')).toHaveLength(replication);
        const c = results.find((r) => r.id === shard.canonical)!;
        expect([...new Float32Array(c.outputs[0]!.data)]).toEqual([...truth(i)]);
        expect(c.outputs[0]!.sha256).toBe(canonical.get(shard.id)!.outputs[0]!.sha256);
        // Each volunteer's granted credit for this shard matches a valid result of its own.
        for (const e of granted.filter((x) => x.shard === shard.id)) {
          expect(results.some((r) => r.volunteer === e.volunteer && r.status === 'valid')).toBe(true);
        }
      }
      expect(store.getJob(job)!.status).toBe('done');
    } finally {
      store.close();
    }
  }, 60_000);
});
