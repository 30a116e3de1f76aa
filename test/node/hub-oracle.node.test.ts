// `autoHoneypots` through a real hub: at submit the hub runs that many of the job's shards on its
// own Dawn device and stores them as honeypots with its answers; an honest volunteer then passes
// them, and a hub that cannot compute them refuses the job with a typed 503.

import { afterEach, describe, expect, it } from 'vitest';
import { createToken } from '../../src/hub/tokens.ts';
import type { WgslDispatchSpec } from '../../src/protocol/manifest.ts';
import { expectedIndexOutput, indexJob } from '../client/client-helpers.ts';
import { type TestHub, testHub, upload } from './hub-helpers.ts';

let t: TestHub | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

async function submit(url: string, token: string, manifest: unknown) {
  return fetch(`${url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(manifest),
  });
}

describe('hub-computed honeypots over HTTP', () => {
  it('adds honeypots with the hub’s own answers to a WGSL job', async () => {
    t = await testHub({ maxBlobBytes: 1 << 20 });
    const { token } = createToken(t.hub.store, 'alice');
    const { manifest, blobs } = await indexJob(5, { autoHoneypots: 2, tolerance: { rtol: 1e-5, atol: 0 } });
    await upload(t.hub.url, token, blobs);
    const r = await submit(t.hub.url, token, manifest);
    expect(r.status).toBe(201);
    const { job } = (await r.json()) as { job: string };
    const m = t.hub.store.getJob(job)!.manifest;
    if (m.kind !== 'wgsl') throw new Error('expected a WGSL job');
    expect(m.honeypots).toHaveLength(2);
    for (const h of m.honeypots!) {
      // Tolerance job: the expected bytes are on the hub, and they are the kernel's true output.
      const bytes = t.hub.blobs.read(h.expected[0]!.sha256)!;
      const index = new Uint32Array(
        t.hub.blobs.read(((h as WgslDispatchSpec).bindings[0] as { sha256: string }).sha256)!,
      )[0]!;
      expect([...new Float32Array(bytes)]).toEqual(expectedIndexOutput(index));
    }
  });

  it('refuses autoHoneypots with 503 gpu/unavailable when the hub has no device', async () => {
    t = await testHub({
      maxBlobBytes: 1 << 20,
      // Every machine here has SwiftShader, so a hub without any device is played by an oracle
      // factory that fails the way Dawn does without an adapter.
      oracle: () => Promise.reject(new Error('no adapter in this test')),
    });
    const { token } = createToken(t.hub.store, 'alice');
    const { manifest, blobs } = await indexJob(2, { autoHoneypots: 1 });
    await upload(t.hub.url, token, blobs);
    const r = await submit(t.hub.url, token, manifest);
    expect(r.status).toBe(503);
    expect(await r.json()).toMatchObject({
      error: { code: 'gpu/unavailable', message: /no adapter in this test/ },
    });
    expect(t.hub.store.listJobs()).toHaveLength(0);
  });
});
