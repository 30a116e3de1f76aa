// The volunteer runtime against a real hub (HTTP + WebSocket on one port, SQLite file): real
// WGSL shards on Dawn, a real ONNX model on onnxruntime-web's wasm EP, churn (a volunteer that
// stops mid-shard, one that stalls silently past its deadline), reconnect with the outbox.
import { createServer, type Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ShardRunner } from '../../src/client/volunteer.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { CREDIT_UNITS } from '../../src/protocol/credit.ts';
import { authenticated, TestKey } from '../node/control-helpers.ts';
import { type TestHub, testHub, upload } from '../node/hub-helpers.ts';
import { mlp } from '../onnx/models.ts';
import { uniform as uniformFloats } from '../onnx/reference.ts';
import {
  EMBED_ORIGIN,
  expectedIndexOutput,
  indexJob,
  type NodeVolunteer,
  nodeVolunteer,
  waitFor,
} from './client-helpers.ts';

let t: TestHub | undefined;
const vols: NodeVolunteer[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const v of vols.splice(0)) await v.dispose();
  // The hub first: closing it ends every connection through the relays, which a relay's close
  // would otherwise wait out (idle keep-alive sockets live 30 s on the hub).
  await t?.dispose();
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
  t = undefined;
});

async function hubWithToken() {
  t = await testHub({ allowedOrigins: [EMBED_ORIGIN], maxBlobBytes: 1 << 22, expireEveryMs: 100 });
  const { token } = createToken(t.hub.store, 'alice');
  return {
    hub: t.hub,
    token,
    auth: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
  };
}

async function submit(url: string, auth: Record<string, string>, manifest: unknown): Promise<string> {
  const r = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: auth, body: JSON.stringify(manifest) });
  if (r.status !== 201) throw new Error(`submit: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { job: string }).job;
}

async function progress(url: string, auth: Record<string, string>, job: string) {
  return (await (await fetch(`${url}/v1/jobs/${job}`, { headers: auth })).json()) as {
    shards: number;
    validated: number;
    status: string;
  };
}

async function output(url: string, auth: Record<string, string>, job: string, shard: string, name: string) {
  const r = await fetch(`${url}/v1/jobs/${job}/results/${encodeURIComponent(shard)}/${name}`, {
    headers: auth,
  });
  expect(r.status).toBe(200);
  return new Float32Array(await r.arrayBuffer());
}

describe('volunteer runtime against a real hub', () => {
  it('runs a WGSL job on Dawn with two volunteers: results validated bit-exact, credit granted once', async () => {
    const { hub, token, auth } = await hubWithToken();
    const { manifest, blobs } = await indexJob(4);
    await upload(hub.url, token, blobs);
    const job = await submit(hub.url, auth, manifest);
    for (let i = 0; i < 2; i++) vols.push(await nodeVolunteer(hub.url));
    for (const v of vols) v.volunteer.start();
    await waitFor(
      async () => (await progress(hub.url, auth, job)).validated === 4,
      60_000,
      'four validated shards',
    );

    const index = (await (await fetch(`${hub.url}/v1/jobs/${job}/results`, { headers: auth })).json()) as {
      shards: { shard: string; index: number }[];
    };
    expect(index.shards).toHaveLength(4);
    for (const s of index.shards) {
      expect([...(await output(hub.url, auth, job, s.shard, 'y'))]).toEqual(expectedIndexOutput(s.index));
    }
    // The hub validates before its ack reaches the volunteer: wait for the last acks to land.
    for (const v of vols) {
      await waitFor(async () => (await v.outbox.pending()).length === 0, 10_000, 'the outbox to empty');
    }
    // Each shard's second result was acknowledged 'valid' at once: four between the two.
    expect(vols.reduce((n, v) => n + v.volunteer.stats.valid, 0)).toBe(4);
    for (const v of vols) {
      // Every shard is validated now: the "awaiting agreement" count comes back down to 0 (the hub
      // says so when the volunteer next finds no work), where it used to keep every 'pending' ack.
      await waitFor(async () => v.volunteer.stats.pending === 0, 20_000, 'the awaiting count to reach 0');
    }
    for (const v of vols) {
      expect(v.volunteer.stats).toMatchObject({ failed: 0, refused: 0, invalid: 0, leases: 4, pending: 0 });
      // Replication 2 with two volunteers: each ran every shard.
      const ledger = hub.store.ledger(v.key.id);
      expect(ledger).toHaveLength(4);
      expect(ledger.every((e) => e.status === 'granted' && e.credits === 4n * CREDIT_UNITS)).toBe(true);
      expect(await v.outbox.pending()).toEqual([]);
      // Each volunteer downloaded each uniform once (16 bytes × 4) from the hub's blob route.
      expect(v.volunteer.stats.downloadedBytes).toBe(64);
      // The hub pushed the credit as it changed: all of it granted in the end, including shards
      // judged by the other volunteer's result.
      await waitFor(
        () => {
          const last = v.events.filter((e) => e.type === 'credit').at(-1);
          return last?.type === 'credit' && last.granted === 16n * CREDIT_UNITS;
        },
        5000,
        'the credit push to say 16 granted',
      );
      const credits = v.events.filter((e) => e.type === 'credit');
      expect(credits.at(-1)).toMatchObject({ granted: 16n * CREDIT_UNITS, pending: 0n, pendingResults: 0 });
    }
  });

  it('a runner that throws something unnamed reports shard/failed, not a cancel, and the shard goes to someone else at once', async () => {
    const { hub, token, auth } = await hubWithToken();
    const { manifest, blobs } = await indexJob(1, { replication: 1, maxReplicas: 2, deadlineMs: 600_000 });
    await upload(hub.url, token, blobs);
    const job = await submit(hub.url, auth, manifest);
    const broken = await nodeVolunteer(hub.url, {
      wrap: (r): ShardRunner => ({
        runShard: async () => {
          throw new TypeError('a bug in the runner');
        },
        cancel: (id) => r.cancel(id),
      }),
    });
    vols.push(broken);
    broken.volunteer.start();
    await waitFor(async () => broken.events.some((e) => e.type === 'shard-failed'), 30_000, 'the failure');
    await broken.volunteer.stop();
    const failed = broken.events.find((e) => e.type === 'shard-failed');
    expect(failed?.type === 'shard-failed' && failed.error.code).toBe('shard/failed');
    expect(failed?.type === 'shard-failed' && failed.error.message).toMatch(/a bug in the runner/);
    // The hub took it as this volunteer's trouble: the lease ended now, not at its 10-minute deadline.
    expect(failed?.type === 'shard-failed' && failed.reported).toBe('released');
    // (It may have taken the shard again before it stopped: a device error is not the job's.)
    await waitFor(async () => hub.store.leasesOfJob(job).length === 0, 10_000, 'the leases to go back');
    const good = await nodeVolunteer(hub.url);
    vols.push(good);
    good.volunteer.start();
    await waitFor(async () => (await progress(hub.url, auth, job)).validated === 1, 30_000, 'the shard');
  });

  it('runs an ONNX job (MLP, batch split in shards) and the canonical results match a float64 reference', async () => {
    const { hub, token, auth } = await hubWithToken();
    const model = mlp(3);
    const rows = 10;
    const x = Float32Array.from(uniformFloats(5, rows * model.dims.D, -1, 1));
    const xBytes = new Uint8Array(x.buffer);
    await upload(hub.url, token, [model.bytes as Uint8Array<ArrayBuffer>, xBytes]);
    const job = await submit(hub.url, auth, {
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
    for (let i = 0; i < 2; i++) vols.push(await nodeVolunteer(hub.url));
    for (const v of vols) v.volunteer.start();
    await waitFor(
      async () => (await progress(hub.url, auth, job)).validated === 3,
      90_000,
      'three ONNX shards',
    );

    const ref = model.reference(x, rows).probs;
    const index = (await (await fetch(`${hub.url}/v1/jobs/${job}/results`, { headers: auth })).json()) as {
      shards: { shard: string; index: number; outputs: { name: string }[] }[];
    };
    // Only the output the job asked for comes back.
    expect(index.shards.map((s) => s.outputs.map((o) => o.name))).toEqual([['probs'], ['probs'], ['probs']]);
    const TOL = { rtol: 1e-4, atol: 1e-6 };
    let worst = 0;
    for (const s of index.shards) {
      const probs = await output(hub.url, auth, job, s.shard, 'probs');
      const start = s.index * 4;
      expect(probs.length).toBe(Math.min(4, rows - start) * model.dims.O);
      for (let i = 0; i < probs.length; i++) {
        const want = ref[start * model.dims.O + i]!;
        const err = Math.abs(probs[i]! - want);
        expect(Number.isFinite(probs[i]!)).toBe(true);
        worst = Math.max(worst, err / (TOL.atol + TOL.rtol * Math.abs(want)));
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
    // The model was downloaded once per volunteer even though each ran three shards of it.
    for (const v of vols) {
      expect(v.volunteer.stats.downloadedBytes).toBe(model.bytes.byteLength + xBytes.byteLength);
    }
  });

  it('churn: a volunteer that stops mid-shard and one that stalls silently both lose their shards to others; the job completes', async () => {
    const { hub, token, auth } = await hubWithToken();
    const { manifest, blobs } = await indexJob(3, { replication: 1, maxReplicas: 3, deadlineMs: 1500 });
    await upload(hub.url, token, blobs);
    const job = await submit(hub.url, auth, manifest);

    // Stalls silently: leases a shard, then never heartbeats or answers (its socket stays open).
    const staller = await TestKey.create();
    const { conn } = await authenticated(
      `${hub.url.replace('http', 'ws')}/v1/volunteer`,
      staller,
      EMBED_ORIGIN,
    );
    conn.send({ v: 2, type: 'lease-request' });
    const stolen = await conn.msg();
    expect(stolen.type).toBe('lease');

    // Quits mid-shard: its runner blocks until the test stops the volunteer, which closes the
    // connection, and the hub reissues the lease at once.
    let entered!: () => void;
    const inShard = new Promise<void>((r) => (entered = r));
    const quitter = await nodeVolunteer(hub.url, {
      wrap: (r): ShardRunner => ({
        runShard: () => {
          entered();
          return new Promise((_, reject) => {
            quitterCancel = () => reject(new Error('cancelled'));
          });
        },
        cancel: async (id) => {
          quitterCancel?.();
          return r.cancel(id);
        },
      }),
    });
    let quitterCancel: (() => void) | undefined;
    vols.push(quitter);
    quitter.volunteer.start();
    await inShard;
    const heldByQuitter = hub.store.leasesOfVolunteer(quitter.key.id);
    expect(heldByQuitter).toHaveLength(1);
    await quitter.volunteer.stop();
    await waitFor(
      () => hub.store.leasesOfVolunteer(quitter.key.id).length === 0,
      5_000,
      'the quitter’s lease released',
    );

    const honest = await nodeVolunteer(hub.url);
    vols.push(honest);
    honest.volunteer.start();
    await waitFor(
      async () => (await progress(hub.url, auth, job)).validated === 3,
      60_000,
      'the job to complete',
    );
    // The honest volunteer did all three, including the stalled and the abandoned shard.
    const done = hub.store.ledger(honest.key.id).map((e) => e.shard);
    expect(done).toHaveLength(3);
    expect(done).toContain(stolen.type === 'lease' ? stolen.shard : 'none');
    expect(done).toContain(heldByQuitter[0]!.shard);
    expect(hub.store.ledger(staller.id)).toHaveLength(0);
    expect(hub.store.ledger(quitter.key.id)).toHaveLength(0);
    conn.ws.terminate();
  });

  it('reconnects with backoff after the connection is cut, and settles the outbox', async () => {
    const { hub, token, auth } = await hubWithToken();
    const { manifest, blobs } = await indexJob(3, { replication: 1, maxReplicas: 3 });
    await upload(hub.url, token, blobs);
    const job = await submit(hub.url, auth, manifest);

    // A TCP relay in front of the hub, so the test can cut every connection at a chosen moment.
    const sockets = new Set<Socket>();
    const target = new URL(hub.url);
    const relay = createServer((client) => {
      const upstream = new Socket();
      upstream.connect(Number(target.port), target.hostname);
      client.pipe(upstream).pipe(client);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => sockets.delete(s));
      }
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    servers.push(relay);
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const relayUrl = `http://127.0.0.1:${(relay.address() as { port: number }).port}`;

    // The first result is computed, then the wire is cut before it can be sent: it must wait in
    // the outbox and go out on the next connection.
    let cut = false;
    const v = await nodeVolunteer(relayUrl, {
      wrap: (r): ShardRunner => ({
        runShard: async (s, p) => {
          const out = await r.runShard(s, p);
          if (!cut) {
            cut = true;
            for (const so of sockets) so.destroy();
          }
          return out;
        },
        cancel: (id) => r.cancel(id),
      }),
    });
    vols.push(v);
    v.volunteer.start();
    await waitFor(
      async () => (await progress(hub.url, auth, job)).validated === 3,
      60_000,
      'the job to complete',
    );
    // The hub validates before its ack reaches the volunteer: wait for the last ack to land.
    await waitFor(async () => (await v.outbox.pending()).length === 0, 10_000, 'the outbox to empty');
    const disconnects = v.events.filter((e) => e.type === 'disconnected');
    const connects = v.events.filter((e) => e.type === 'connected');
    expect(disconnects.length).toBeGreaterThanOrEqual(1);
    expect(connects.length).toBeGreaterThanOrEqual(2);
    // The cut result went out on the second connection: the hub had released that lease when the
    // socket closed, but the shard was still open, so it took the work instead of throwing it away
    // (it used to refuse it), and credited it once.
    expect(v.volunteer.stats.refused).toBe(0);
    expect(v.volunteer.stats.leases).toBe(3);
    expect(await v.outbox.pending()).toEqual([]);
    expect(hub.store.ledger(v.key.id)).toHaveLength(3);
  });
});
