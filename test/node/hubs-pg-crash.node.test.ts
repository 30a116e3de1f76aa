// A hub SIGKILLed mid-job while another hub on the same PostgreSQL database lives on (issue 15):
// two `hearth hub --store` processes, volunteers (the real Volunteer runtime, Dawn) that each
// know both hubs, half of them connected to each. The first hub is killed once the job is under
// way; its volunteers move to the other hub. Afterwards: every result a volunteer saw accepted is
// in the database, no credit is granted twice, and the job is done with every result right.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { creditUnits } from '../../src/protocol/credit.ts';
import {
  EMBED_ORIGIN,
  expectedSpinOutput,
  type NodeVolunteer,
  nodeVolunteer,
  spinJob,
  waitFor,
} from '../client/client-helpers.ts';
import { type HubProcess, killHub, spawnHubWith } from './crash-helpers.ts';
import { upload } from './hub-helpers.ts';
import { freshDatabase } from './pg-helpers.ts';

const SHARDS = 12;
const ITERS = 20_000;
const dir = mkdtempSync(join(tmpdir(), 'hearth-hubs-pg-crash-'));
const hubs: HubProcess[] = [];
const vols: NodeVolunteer[] = [];
afterAll(async () => {
  for (const v of vols) await v.dispose();
  for (const h of hubs) await killHub(h);
  rmSync(dir, { recursive: true, force: true });
});

describe('a hub SIGKILLed mid-job, another on the same PostgreSQL lives on', () => {
  it('its volunteers move to the other hub; no accepted result is lost, no credit granted twice, the job completes', async () => {
    const url = await freshDatabase('crash');
    const store = new PostgresStore(url);
    const { token } = createToken(store, 'crash');
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const args = ['--store', url, '--blobs', join(dir, 'blobs'), '--origin', EMBED_ORIGIN];
    const [a, b] = await Promise.all([spawnHubWith(args), spawnHubWith(args)]);
    if (!a || !b) throw new Error('hubs did not start');
    hubs.push(a, b);

    // deadlineMs at its minimum: the leases the killed hub held are given out again soon.
    const { manifest, blobs } = await spinJob(SHARDS, ITERS, { deadlineMs: 1000 });
    await upload(a.url, token, blobs);
    const r = await fetch(`${a.url}/v1/jobs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify(manifest),
    });
    expect(r.status).toBe(201);
    const { job } = (await r.json()) as { job: string };

    for (const [first, other] of [
      [a, b],
      [a, b],
      [b, a],
      [b, a],
    ] as const) {
      vols.push(await nodeVolunteer(first.url, { hubUrls: [other.url] }));
    }
    for (const v of vols) v.volunteer.start();

    // Killed once some shards are judged and while others are still out.
    const validated = () => store.shardStats(job).validated;
    await waitFor(() => validated() >= 2, 60_000, 'two validated shards');
    expect(validated()).toBeLessThan(SHARDS);
    await killHub(a);

    await waitFor(
      async () =>
        ((await (await fetch(`${b.url}/v1/jobs/${job}`, { headers: auth })).json()) as { status: string })
          .status === 'done',
      90_000,
      'the job to be done through the surviving hub',
    );
    // The killed hub's volunteers are on the other one now.
    for (const v of vols) expect(v.volunteer.hubUrl).toBe(b.url);

    // Every result a volunteer saw accepted ('valid' or 'pending') is in the database.
    let accepted = 0;
    for (const v of vols) {
      for (const e of v.events) {
        if (e.type !== 'result' || (e.outcome !== 'valid' && e.outcome !== 'pending')) continue;
        accepted++;
        const kept = store.resultsOfShard(e.shard).some((x) => x.volunteer === v.key.id);
        expect(kept, `${v.key.id.slice(0, 8)}'s accepted result for ${e.shard}`).toBe(true);
      }
    }
    // Not every stored result was seen accepted: one the killed hub committed but never answered
    // is sent again to the other hub, which refuses the copy (a duplicate): still kept once.
    expect(accepted).toBeGreaterThan(SHARDS);

    // Credit: one entry per (volunteer, shard); granted exactly for the valid results.
    const ledger = store.ledger().filter((e) => e.job === job);
    const keys = ledger.map((e) => `${e.volunteer} ${e.shard}`);
    expect(new Set(keys).size).toBe(keys.length);
    const credit = creditUnits(manifest.flopsPerShard as number, manifest.creditRate as number);
    for (const sh of store.shardsOfJob(job).filter((s) => !s.honeypot)) {
      expect(sh.status).toBe('validated');
      const valid = store.resultsOfShard(sh.id).filter((x) => x.status === 'valid');
      const granted = ledger.filter((e) => e.shard === sh.id && e.status === 'granted');
      expect(granted.map((e) => e.volunteer).sort()).toEqual(valid.map((x) => x.volunteer).sort());
      for (const e of granted) expect(e.credits).toBe(credit);
      const canonical = valid.find((x) => x.id === sh.canonical) ?? valid[0];
      const y = canonical?.outputs[0]?.data;
      expect(y && [...new Float32Array(y)]).toEqual(expectedSpinOutput(sh.index, ITERS));
    }
    store.close();
  });
});
