// The blob swarm end to end with the real volunteer runtime: Node volunteers (Dawn + onnxruntime-web
// wasm, WebRTC from node-datachannel) join the hub's PeerServer under the ids the hub issued; the
// first fetches a 2 MiB model from the hub and announces it, the next two get it from peers, and
// the hub serves the model once. A holder that announced but cannot be reached costs time only:
// the volunteer falls back to the hub's route and the job completes.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { installNodeWebRTC, LOOPBACK_RTC } from '../net/node-peers.ts';
import { authenticated, TestKey } from '../node/control-helpers.ts';
import { type TestHub, testHub, upload } from '../node/hub-helpers.ts';
import { heavy } from '../onnx/models.ts';
import { uniform } from '../onnx/reference.ts';
import { EMBED_ORIGIN, type NodeVolunteer, nodeVolunteer, waitFor } from './client-helpers.ts';

beforeAll(() => installNodeWebRTC());

let t: TestHub | undefined;
const vols: NodeVolunteer[] = [];
afterEach(async () => {
  for (const v of vols.splice(0)) await v.dispose();
  await t?.dispose();
  t = undefined;
});

/** A hub and an ONNX job over a 2 MiB model (8 chained 256×256 MatMuls), 3 shards. */
async function setup(replication: number) {
  t = await testHub({ allowedOrigins: [EMBED_ORIGIN], maxBlobBytes: 8 << 20, expireEveryMs: 100 });
  const hub = t.hub;
  const { token } = createToken(hub.store, 'alice');
  const model = heavy(8, 256).bytes as Uint8Array<ArrayBuffer>;
  const x = new Uint8Array(Float32Array.from(uniform(3, 6 * 256, -1, 1)).buffer);
  await upload(hub.url, token, [model, x]);
  const modelSha = await sha256Hex(model);
  const r = await fetch(`${hub.url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      v: 1,
      kind: 'onnx',
      model: modelSha,
      inputs: { x: { sha256: await sha256Hex(x), dtype: 'f32', shape: [6, 256] } },
      batchInput: 'x',
      shardSize: 2,
      replication,
      maxReplicas: replication + 1,
      tolerance: { rtol: 1e-4, atol: 1e-5 },
      deadlineMs: 60_000,
      creditRate: 1,
    }),
  });
  expect(r.status).toBe(201);
  const { job } = (await r.json()) as { job: string };
  const p2p = { host: '127.0.0.1', port: hub.port, rtcConfig: LOOPBACK_RTC };
  const validated = () => hub.scheduler.progress(job).validated;
  return { hub, job, model, x, modelSha, p2p, validated };
}

describe('blob swarm with the volunteer runtime', () => {
  it('three volunteers starting at once: the hub serves the model once, the others get it from peers', async () => {
    const { hub, model, x, p2p, validated } = await setup(3);
    const all = [
      await nodeVolunteer(hub.url, { p2p }),
      await nodeVolunteer(hub.url, { p2p }),
      await nodeVolunteer(hub.url, { p2p }),
    ];
    vols.push(...all);
    // At once: the first to ask fetches from the hub, the hub tells the others to wait for its copy.
    for (const v of all) v.volunteer.start();
    await waitFor(() => validated() === 3, 120_000, 'three shards validated by three volunteers');
    const fromHub = all.filter((v) => v.volunteer.stats.peerBytes < model.byteLength);
    expect(fromHub).toHaveLength(1);
    const first = fromHub[0]!;
    const others = all.filter((v) => v !== first);
    expect(first.volunteer.stats.peerBytes).toBe(0);
    for (const v of others) {
      expect(v.events.filter((e) => e.type === 'swarm').map((e) => JSON.stringify(e))).toEqual([
        expect.stringMatching(/^{"type":"swarm","peerId":"h[0-9a-f]{32}"}$/),
      ]);
      // The model came from a peer (the input too, most likely, once the first announced it).
      expect(v.volunteer.stats.peerBytes).toBeGreaterThanOrEqual(model.byteLength);
      // From the first, and perhaps from the other follower while it was still fetching too.
      expect(v.volunteer.stats.peerHolders).toBeGreaterThanOrEqual(1);
      expect(v.volunteer.stats.peerHolders).toBeLessThanOrEqual(2);
    }
    for (const v of all) {
      expect(v.volunteer.stats.fetchStartedAt).toBeGreaterThan(0);
      expect(v.volunteer.stats.fetchDoneAt).toBeGreaterThanOrEqual(v.volunteer.stats.fetchStartedAt);
    }
    expect(first.volunteer.stats.peerHolders).toBe(0);
    // One copy of the model left the hub, plus at most one copy of the input per volunteer.
    expect(hub.stats.blobBytesServed).toBeGreaterThanOrEqual(model.byteLength);
    expect(hub.stats.blobBytesServed).toBeLessThanOrEqual(model.byteLength + 3 * x.byteLength);
  });

  it('a holder the hub names but nobody can reach: the volunteer falls back to the hub', async () => {
    const { hub, model, modelSha, p2p, validated } = await setup(1);
    // Announces the model under its issued peer id, but never opens a peer at the PeerServer.
    const ghost = await authenticated(
      `${hub.url.replace('http', 'ws')}/v1/volunteer`,
      await TestKey.create(),
      EMBED_ORIGIN,
    );
    ghost.conn.send({ v: 2, type: 'announce', blobs: [modelSha] });
    expect(await ghost.conn.msg()).toMatchObject({ type: 'announced', count: 1 });
    const v = await nodeVolunteer(hub.url, { p2p });
    vols.push(v);
    v.volunteer.start();
    await waitFor(() => validated() === 3, 120_000, 'the job to complete through the fallback');
    expect(v.volunteer.stats.peerBytes).toBe(0);
    expect(hub.stats.blobBytesServed).toBeGreaterThanOrEqual(model.byteLength);
    await ghost.conn.close();
  });
});
