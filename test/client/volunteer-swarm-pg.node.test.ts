// The blob swarm across two hubs on one PostgreSQL database, with the real volunteer runtime
// (Dawn + onnxruntime-web wasm, WebRTC from node-datachannel): a volunteer on hub A fetches a
// 2 MiB model from its hub and announces it; a volunteer that starts later on hub B is told of
// that holder (the peer directory) and gets the model from it peer to peer (the dial's signalling
// relayed between the hubs): hub B serves no byte of the model, and the job completes with both.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.ts';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { type Hub, startHub } from '../../src/node/hub-server.ts';
import { installNodeWebRTC, LOOPBACK_RTC } from '../net/node-peers.ts';
import { upload } from '../node/hub-helpers.ts';
import { freshDatabase } from '../node/pg-helpers.ts';
import { heavy } from '../onnx/models.ts';
import { uniform } from '../onnx/reference.ts';
import { EMBED_ORIGIN, type NodeVolunteer, nodeVolunteer, waitFor } from './client-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'hearth-swarm-pg-'));
const hubs: Hub[] = [];
const vols: NodeVolunteer[] = [];
beforeAll(() => installNodeWebRTC());
afterAll(async () => {
  for (const v of vols) await v.dispose();
  for (const h of hubs) await h.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('blob swarm across two hubs with the volunteer runtime', () => {
  it('a volunteer on hub B gets the model from a holder on hub A, peer to peer', async () => {
    const url = await freshDatabase('swarm_pg');
    for (const tag of ['a', 'b']) {
      hubs.push(
        await startHub({
          store: new PostgresStore(url),
          blobDir: join(dir, 'blobs'),
          maxBlobBytes: 8 << 20,
          allowedOrigins: [EMBED_ORIGIN],
          pagesDir: join(dir, `no-pages-${tag}`),
          expireEveryMs: 100,
        }),
      );
    }
    const [a, b] = hubs as [Hub, Hub];
    const { token } = createToken(a.store, 'alice');
    const model = heavy(8, 256).bytes as Uint8Array<ArrayBuffer>;
    const x = new Uint8Array(Float32Array.from(uniform(3, 6 * 256, -1, 1)).buffer);
    await upload(a.url, token, [model, x]);
    const modelSha = await sha256Hex(model);
    const r = await fetch(`${a.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        v: 1,
        kind: 'onnx',
        model: modelSha,
        inputs: { x: { sha256: await sha256Hex(x), dtype: 'f32', shape: [6, 256] } },
        batchInput: 'x',
        shardSize: 2,
        // Both volunteers work every shard: the job needs the one on hub B.
        replication: 2,
        maxReplicas: 2,
        tolerance: { rtol: 1e-4, atol: 1e-5 },
        deadlineMs: 60_000,
        creditRate: 1,
      }),
    });
    expect(r.status).toBe(201);
    const { job } = (await r.json()) as { job: string };

    const first = await nodeVolunteer(a.url, {
      p2p: { host: '127.0.0.1', port: a.port, rtcConfig: LOOPBACK_RTC },
    });
    vols.push(first);
    first.volunteer.start();
    // Hub A names it as the model's holder once it has the model.
    await waitFor(() => (b.swarm?.holders(modelSha, 16).length ?? 0) === 1, 120_000, 'the holder on hub A');
    expect(a.stats.blobBytesServed).toBeGreaterThanOrEqual(model.byteLength);

    const second = await nodeVolunteer(b.url, {
      p2p: { host: '127.0.0.1', port: b.port, rtcConfig: LOOPBACK_RTC },
    });
    vols.push(second);
    second.volunteer.start();
    await waitFor(() => a.scheduler.progress(job).validated === 3, 120_000, 'three shards validated');

    // The model came from the peer on hub A: hub B served at most the input.
    expect(second.volunteer.stats.peerBytes).toBeGreaterThanOrEqual(model.byteLength);
    expect(second.volunteer.stats.peerHolders).toBe(1);
    expect(b.stats.blobBytesServed).toBeLessThanOrEqual(x.byteLength);
    expect(b.relay?.counts.out).toBeGreaterThan(0);
    expect(a.relay?.counts.in).toBeGreaterThan(0);
  }, 300_000);
});
