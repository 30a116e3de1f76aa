// One hub process end to end: a researcher submits over HTTP with a bearer token, volunteers
// connect over the WebSocket control plane on the same port, prove their identity, lease,
// return results; the researcher reads validated results, and credit lands exactly once.
import { afterEach, describe, expect, it } from 'vitest';
import { createToken } from '../../src/hub/tokens.ts';
import { encodeResult } from '../../src/protocol/control.ts';
import { indexOf, result, truth } from '../hub/fixtures.ts';
import { authenticated, ORIGIN, TestKey } from './control-helpers.ts';
import { manifestJson, type TestHub, testHub, upload } from './hub-helpers.ts';

let t: TestHub | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

describe('hub end to end (HTTP + WebSocket on one port, SQLite)', () => {
  it('runs a job from submit to validated results with two volunteers', async () => {
    t = await testHub({ allowedOrigins: [ORIGIN], maxBlobBytes: 1 << 20 });
    const { hub } = t;
    const { token } = createToken(hub.store, 'alice');
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const { manifest, blobs } = manifestJson(3);
    await upload(hub.url, token, blobs);
    const submitted = await fetch(`${hub.url}/v1/jobs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify(manifest),
    });
    expect(submitted.status).toBe(201);
    const { job } = (await submitted.json()) as { job: string };

    const wsUrl = `${hub.url.replace('http', 'ws')}/v1/volunteer`;
    const keys = [await TestKey.create(), await TestKey.create()];
    const conns = await Promise.all(keys.map(async (k) => (await authenticated(wsUrl, k)).conn));
    // Each volunteer takes every shard it may (replication 2: both run all three).
    for (const conn of conns) {
      for (;;) {
        conn.send({ v: 2, type: 'lease-request' });
        const m = await conn.msg();
        if (m.type === 'no-work') break;
        if (m.type !== 'lease') throw new Error(`expected a lease, got ${JSON.stringify(m)}`);
        expect(m.kernel?.source).toContain('@compute');
        const r = await result(m.shard, job, truth(indexOf(m.shard)));
        conn.send({ v: 2, type: 'result', result: encodeResult(r) });
        const ack = await conn.msg();
        expect(ack).toMatchObject({ type: 'ack', shard: m.shard });
      }
    }

    const status = await (await fetch(`${hub.url}/v1/jobs/${job}`, { headers: auth })).json();
    expect(status).toMatchObject({ shards: 3, validated: 3 });
    const index = (await (await fetch(`${hub.url}/v1/jobs/${job}/results`, { headers: auth })).json()) as {
      shards: { shard: string; outputs: { name: string }[] }[];
    };
    expect(index.shards).toHaveLength(3);
    const first = index.shards[0]!;
    const bytes = await (
      await fetch(`${hub.url}/v1/jobs/${job}/results/${encodeURIComponent(first.shard)}/y`, { headers: auth })
    ).arrayBuffer();
    expect([...new Float32Array(bytes)]).toEqual([...truth(indexOf(first.shard))]);
    for (const k of keys) {
      const ledger = hub.store.ledger(k.id);
      expect(ledger).toHaveLength(3);
      expect(ledger.every((e) => e.status === 'granted')).toBe(true);
    }
    // Without the token the same results are refused.
    expect((await fetch(`${hub.url}/v1/jobs/${job}/results`)).status).toBe(401);
    await Promise.all(conns.map((c) => c.close()));
  });
});
