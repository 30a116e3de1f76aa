// Several hubs on one PostgreSQL database (issue 15), in one process: two hubs on the same
// database and blob folder, volunteers (the real Volunteer runtime on Dawn and onnxruntime-web)
// split between them, a WGSL job submitted to one hub and an ONNX job to the other. Every job is
// visible from both hubs, a volunteer on either hub works on either job, each result is credited
// once, a cancel on one hub stops the job on both, and idle volunteers on one hub hear of work
// submitted to the other (LISTEN/NOTIFY).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.ts';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { type Hub, startHub } from '../../src/node/hub-server.ts';
import { creditUnits } from '../../src/protocol/credit.ts';
import {
  EMBED_ORIGIN,
  expectedIndexOutput,
  indexJob,
  type NodeVolunteer,
  nodeVolunteer,
  waitFor,
} from '../client/client-helpers.ts';
import { mlp } from '../onnx/models.ts';
import { uniform as uniformFloats } from '../onnx/reference.ts';
import { authenticated, ORIGIN, TestKey } from './control-helpers.ts';
import { upload } from './hub-helpers.ts';
import { freshDatabase } from './pg-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'hearth-hubs-pg-'));
const hubs: Hub[] = [];
const vols: NodeVolunteer[] = [];
afterEach(async () => {
  for (const v of vols.splice(0)) await v.dispose();
  for (const h of hubs.splice(0)) await h.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Two hubs on a fresh database, one blob folder between them; a token made through the first. */
async function twoHubs() {
  const url = await freshDatabase('hubs');
  const blobDir = join(dir, `blobs-${hubs.length}`);
  const start = () =>
    startHub({
      store: new PostgresStore(url),
      blobDir,
      maxBlobBytes: 1 << 22,
      allowedOrigins: [EMBED_ORIGIN, ORIGIN],
      expireEveryMs: 100,
    });
  const a = await start();
  hubs.push(a);
  const b = await start();
  hubs.push(b);
  const { token } = createToken(a.store, 'alice');
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const submit = async (hub: Hub, manifest: unknown) => {
    const r = await fetch(`${hub.url}/v1/jobs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify(manifest),
    });
    if (r.status !== 201) throw new Error(`submit: ${r.status} ${await r.text()}`);
    return ((await r.json()) as { job: string }).job;
  };
  const progress = async (hub: Hub, job: string) =>
    (await (await fetch(`${hub.url}/v1/jobs/${job}`, { headers: auth })).json()) as {
      shards: number;
      validated: number;
      status: string;
    };
  const output = async (hub: Hub, job: string, shard: string, name: string) => {
    const r = await fetch(`${hub.url}/v1/jobs/${job}/results/${encodeURIComponent(shard)}/${name}`, {
      headers: auth,
    });
    expect(r.status).toBe(200);
    return new Float32Array(await r.arrayBuffer());
  };
  return { url, a, b, token, auth, submit, progress, output };
}

describe('two hubs on one PostgreSQL database', () => {
  it('volunteers split between the hubs run a WGSL job (submitted to one) and an ONNX job (to the other) to completion, credited once', async () => {
    const { a, b, token, submit, progress, output } = await twoHubs();
    // Volunteers first, so that the jobs reach those of the other hub as news, not at connect.
    for (const hub of [a, a, b, b]) vols.push(await nodeVolunteer(hub.url));
    for (const v of vols) v.volunteer.start();

    const wgsl = await indexJob(6);
    await upload(a.url, token, wgsl.blobs);
    const wgslJob = await submit(a, wgsl.manifest);

    const model = mlp(3);
    const rows = 8;
    const x = Float32Array.from(uniformFloats(5, rows * model.dims.D, -1, 1));
    const xBytes = new Uint8Array(x.buffer);
    await upload(b.url, token, [model.bytes as Uint8Array<ArrayBuffer>, xBytes]);
    const onnxJob = await submit(b, {
      v: 1,
      kind: 'onnx',
      model: await sha256Hex(model.bytes),
      inputs: { x: { sha256: await sha256Hex(xBytes), dtype: 'f32', shape: [rows, model.dims.D] } },
      batchInput: 'x',
      shardSize: 4,
      outputs: ['probs'],
      replication: 2,
      maxReplicas: 4,
      tolerance: { rtol: 1e-5, atol: 1e-6 },
      deadlineMs: 30_000,
      creditRate: 1,
      flopsPerShard: 1000,
    });

    // Each hub reports the other's job: the database is the one truth.
    await waitFor(
      async () => (await progress(b, wgslJob)).status === 'done',
      90_000,
      'the WGSL job (via hub b)',
    );
    await waitFor(
      async () => (await progress(a, onnxJob)).status === 'done',
      90_000,
      'the ONNX job (via hub a)',
    );
    expect(await progress(a, wgslJob)).toMatchObject({ shards: 6, validated: 6, status: 'done' });
    expect(await progress(b, onnxJob)).toMatchObject({ shards: 2, validated: 2, status: 'done' });

    // Results read through either hub, equal to the truth.
    for (let i = 0; i < 6; i++) {
      const y = await output(i % 2 ? a : b, wgslJob, String(i), 'y');
      expect([...y]).toEqual(expectedIndexOutput(i));
    }
    const ref = model.reference(x, rows).probs;
    for (let s = 0; s < 2; s++) {
      const probs = await output(a, onnxJob, String(s), 'probs');
      for (let i = 0; i < probs.length; i++) {
        const want = ref[s * 4 * model.dims.O + i] ?? Number.NaN;
        expect(Math.abs((probs[i] ?? Number.NaN) - want)).toBeLessThanOrEqual(1e-6 + 1e-4 * Math.abs(want));
      }
    }

    // Both hubs' volunteers took part, and credit is one entry per (volunteer, shard), granted.
    const ledger = a.store.ledger();
    const onA = new Set(vols.slice(0, 2).map((v) => v.key.id));
    const onB = new Set(vols.slice(2).map((v) => v.key.id));
    expect(ledger.some((e) => onA.has(e.volunteer))).toBe(true);
    expect(ledger.some((e) => onB.has(e.volunteer))).toBe(true);
    const keys = ledger.map((e) => `${e.volunteer} ${e.shard}`);
    expect(new Set(keys).size).toBe(keys.length);
    const real = ledger.filter((e) => !e.shard.includes('/hp'));
    // Replication 2 on every shard: exactly two credits each, whoever's hub took the result.
    const perShard = new Map<string, number>();
    for (const e of real) perShard.set(e.shard, (perShard.get(e.shard) ?? 0) + 1);
    expect([...perShard.values()].every((n) => n === 2)).toBe(true);
    expect(perShard.size).toBe(8);
    const wgslCredit = creditUnits(4, 1);
    for (const e of real.filter((x) => x.job === wgslJob)) {
      expect(e.status).toBe('granted');
      expect(e.credits).toBe(wgslCredit);
    }
  });

  it('a job submitted to one hub wakes idle volunteers of the other; a cancel on either stops it on both', async () => {
    const { a, b, token, auth, submit, progress } = await twoHubs();
    const key = await TestKey.create();
    const { conn } = await authenticated(`${b.url.replace('http', 'ws')}/v1/volunteer`, key);
    conn.send({ v: 2, type: 'lease-request' });
    expect((await conn.msg()).type).toBe('no-work');
    const job = await indexJob(3, { deadlineMs: 60_000 });
    await upload(a.url, token, job.blobs);
    const id = await submit(a, job.manifest);
    // The push comes through hub a's NOTIFY to hub b.
    const pushed = await conn.next(10_000);
    expect(pushed).toMatchObject({ kind: 'message', msg: { type: 'work-available' } });
    conn.send({ v: 2, type: 'lease-request' });
    const lease = await conn.msg();
    expect(lease).toMatchObject({ type: 'lease', job: id });

    const cancelled = await fetch(`${b.url}/v1/jobs/${id}`, { method: 'DELETE', headers: auth });
    expect(cancelled.status).toBe(200);
    expect((await progress(a, id)).status).toBe('cancelled');
    // No lease of it is left anywhere, and no hub offers its shards any more.
    expect(a.store.leasesOfJob(id)).toEqual([]);
    conn.send({ v: 2, type: 'lease-request' });
    expect((await conn.msg()).type).toBe('no-work');
    await conn.close();
  });
});
