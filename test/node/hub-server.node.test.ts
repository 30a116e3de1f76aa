// The hub's HTTP API against a real hub: loopback, a free port, a real SQLite file and blob folder
// in a temp dir, requests from fetch() and raw node:http. Every test closes its hub.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import { authenticate, bearer, createToken, listTokens, revokeToken } from '../../src/hub/tokens.ts';
import { startHub } from '../../src/node/hub-server.ts';
import { result, seededRng, truth } from '../hub/fixtures.ts';
import { ADMIN, manifestJson, raw, sha, type TestHub, testHub, upload } from './hub-helpers.ts';

const open: TestHub[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.dispose();
});

async function hubWithToken(over = {}) {
  const t = await testHub(over);
  open.push(t);
  const { token } = createToken(t.hub.store, 'alice');
  return { ...t, url: t.hub.url, token, auth: { authorization: `Bearer ${token}` } };
}

type ErrorBody = { error: { code: string; message: string; details?: Record<string, unknown> } };
async function errorOf(r: Response): Promise<ErrorBody['error']> {
  expect(r.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await r.json()) as ErrorBody;
  expect(typeof body.error.code).toBe('string');
  expect(typeof body.error.message).toBe('string');
  return body.error;
}

const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('.'));

/** Temp files go away asynchronously after a refused upload: wait (briefly) until they have. */
async function noLeftovers(dir: string): Promise<void> {
  for (let i = 0; i < 100 && leftovers(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(leftovers(dir)).toEqual([]);
}

describe('tokens', () => {
  it('refuses requests without a token, with a wrong one and with a revoked one', async () => {
    const h = await hubWithToken();
    const { manifest, blobs } = manifestJson(1);
    const post = (headers: Record<string, string>) =>
      fetch(`${h.url}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify(manifest) });

    let r = await post({});
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await errorOf(r)).code).toBe('http/unauthorized');

    r = await post({ authorization: 'Bearer not-a-real-token' });
    expect(r.status).toBe(401);
    r = await post({ authorization: `Basic ${h.token}` });
    expect(r.status).toBe(401);
    r = await fetch(`${h.url}/v1/blobs/${sha(blobs[0]!)}`, { method: 'PUT', body: blobs[0]! });
    expect(r.status).toBe(401);

    const { token: bob } = createToken(h.hub.store, 'bob');
    r = await fetch(`${h.url}/v1/jobs/nope`, { headers: { authorization: `Bearer ${bob}` } });
    expect(r.status).toBe(404);
    expect(revokeToken(h.hub.store, 'bob')).toBe(true);
    r = await fetch(`${h.url}/v1/jobs/nope`, { headers: { authorization: `Bearer ${bob}` } });
    expect(r.status).toBe(401);
    expect((await errorOf(r)).message).toMatch(/revoked/);

    expect(h.hub.store.listJobs()).toHaveLength(0);
    expect(listTokens(h.hub.store)).toMatchObject([
      { name: 'alice', revoked: false },
      { name: 'bob', revoked: true },
    ]);
    // Only the hash is stored.
    expect(JSON.stringify(h.hub.store.listTokens())).not.toContain(bob);
  });

  it('lets only the admin create, list and revoke tokens over HTTP', async () => {
    const h = await hubWithToken();
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    let r = await fetch(`${h.url}/v1/tokens`, { headers: h.auth });
    expect(r.status).toBe(403);
    expect((await errorOf(r)).code).toBe('http/forbidden');

    r = await fetch(`${h.url}/v1/tokens`, { method: 'POST', headers: admin, body: '{"name":"carol"}' });
    expect(r.status).toBe(201);
    const { token } = (await r.json()) as { token: string };
    // 'hth_' then 32 random bytes: never a leading '-', which a command line would read as a flag.
    expect(token).toMatch(/^hth_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(token.slice(4), 'base64url')).toHaveLength(32);
    r = await fetch(`${h.url}/v1/tokens`, { method: 'POST', headers: admin, body: '{"name":"carol"}' });
    expect(r.status).toBe(400);
    expect((await errorOf(r)).message).toMatch(/taken/);
    r = await fetch(`${h.url}/v1/tokens`, { method: 'POST', headers: admin, body: '{"name":"no spaces"}' });
    expect(r.status).toBe(400);

    const carol = { authorization: `Bearer ${token}` };
    expect((await fetch(`${h.url}/v1/jobs/x`, { headers: carol })).status).toBe(404);
    r = await fetch(`${h.url}/v1/tokens`, { headers: admin });
    const list = (await r.json()) as { tokens: { name: string; revoked: boolean }[] };
    expect(list.tokens.map((t) => t.name)).toEqual(['alice', 'carol']);
    expect(JSON.stringify(list)).not.toContain(token);

    r = await fetch(`${h.url}/v1/tokens/carol`, { method: 'DELETE', headers: admin });
    expect(r.status).toBe(200);
    expect((await fetch(`${h.url}/v1/jobs/x`, { headers: carol })).status).toBe(401);
    r = await fetch(`${h.url}/v1/tokens/nobody`, { method: 'DELETE', headers: admin });
    expect(r.status).toBe(404);
  });

  it('has no admin when no admin token is configured', async () => {
    const t = await testHub({ adminToken: undefined });
    open.push(t);
    const r = await fetch(`${t.hub.url}/v1/tokens`, { headers: { authorization: 'Bearer ' } });
    expect(r.status).toBe(401);
  });
});

describe('tokens.ts', () => {
  it('keeps only hashes, authenticates live tokens and the admin, on both stores', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-tokens-'));
    try {
      for (const store of [new MemoryStore(), new SqliteStore(join(dir, 'hub.db'))]) {
        const { token } = createToken(store, 'alice', 1);
        expect(store.getToken('alice')?.hash).toMatch(/^[0-9a-f]{64}$/);
        expect(store.getToken('alice')?.hash).not.toContain(token);
        expect(authenticate(store, token, 'root')).toEqual({ kind: 'researcher', name: 'alice' });
        expect(authenticate(store, 'root', 'root')).toEqual({ kind: 'admin' });
        expect(authenticate(store, 'root', undefined)).toBeUndefined();
        expect(authenticate(store, 'root', '')).toBeUndefined();
        expect(authenticate(store, `${token}x`, 'root')).toBeUndefined();
        expect(() => createToken(store, 'alice')).toThrow(/taken/);
        expect(revokeToken(store, 'alice', 5)).toBe(true);
        expect(revokeToken(store, 'alice', 9)).toBe(true);
        expect(revokeToken(store, 'nobody')).toBe(false);
        expect(authenticate(store, token, 'root')).toBeUndefined();
        expect(listTokens(store)).toEqual([{ name: 'alice', createdAt: 1, revoked: true, revokedAt: 5 }]);
        store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(bearer('Bearer abc_-DEF')).toBe('abc_-DEF');
    expect(bearer('bearer abc')).toBe('abc');
    expect(bearer('Bearer')).toBeUndefined();
    expect(bearer('Bearer a b')).toBeUndefined();
    expect(bearer(undefined)).toBeUndefined();
  });

  it('keeps tokens and revocations across a hub restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-hub-restart-'));
    const opts = {
      dbPath: join(dir, 'hub.db'),
      blobDir: join(dir, 'b'),
      maxBlobBytes: 10,
      allowedOrigins: [],
    };
    try {
      let hub = await startHub(opts);
      const { token: a } = createToken(hub.store, 'a');
      const { token: b } = createToken(hub.store, 'b');
      revokeToken(hub.store, 'b');
      await hub.close();
      hub = await startHub(opts);
      const get = (t: string) => fetch(`${hub.url}/v1/jobs/x`, { headers: { authorization: `Bearer ${t}` } });
      expect((await get(a)).status).toBe(404);
      expect((await get(b)).status).toBe(401);
      await hub.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('blobs', () => {
  it('uploads by hash, serves whole and ranged reads without a token', async () => {
    const h = await hubWithToken();
    const bytes = new Uint8Array(1000).map((_, i) => (i * 7) & 255);
    const hash = sha(bytes);
    let r = await fetch(`${h.url}/v1/blobs/${hash}`, { method: 'PUT', headers: h.auth, body: bytes });
    expect(r.status).toBe(201);
    expect(await r.json()).toEqual({ sha256: hash, bytes: 1000 });
    expect(readdirSync(h.blobDir)).toEqual([hash]);

    r = await fetch(`${h.url}/v1/blobs/${hash}`);
    expect(r.status).toBe(200);
    expect(r.headers.get('accept-ranges')).toBe('bytes');
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(bytes);

    r = await fetch(`${h.url}/v1/blobs/${hash}`, { headers: { range: 'bytes=100-199' } });
    expect(r.status).toBe(206);
    expect(r.headers.get('content-range')).toBe('bytes 100-199/1000');
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(bytes.slice(100, 200));

    r = await fetch(`${h.url}/v1/blobs/${hash}`, { headers: { range: 'bytes=990-' } });
    expect(r.status).toBe(206);
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(bytes.slice(990));
    r = await fetch(`${h.url}/v1/blobs/${hash}`, { headers: { range: 'bytes=-10' } });
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(bytes.slice(990));
    r = await fetch(`${h.url}/v1/blobs/${hash}`, { headers: { range: 'bytes=900-5000' } });
    expect(r.headers.get('content-range')).toBe('bytes 900-999/1000');
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(bytes.slice(900));

    r = await fetch(`${h.url}/v1/blobs/${hash}`, { headers: { range: 'bytes=1000-' } });
    expect(r.status).toBe(416);
    expect(r.headers.get('content-range')).toBe('bytes */1000');
    await errorOf(r);

    r = await fetch(`${h.url}/v1/blobs/${hash}`, { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-length')).toBe('1000');

    r = await fetch(`${h.url}/v1/blobs/${'0'.repeat(64)}`);
    expect(r.status).toBe(404);
    expect((await errorOf(r)).code).toBe('blob/missing');
    r = await fetch(`${h.url}/v1/blobs/not-a-hash`);
    expect(r.status).toBe(400);
    r = await fetch(`${h.url}/v1/blobs/${hash.toUpperCase()}`, {
      method: 'PUT',
      headers: h.auth,
      body: bytes,
    });
    expect(r.status).toBe(400);
  });

  it('refuses bytes that do not match the hash, and leaves no file behind', async () => {
    const h = await hubWithToken();
    const bytes = new TextEncoder().encode('the real bytes');
    const wrong = sha('other bytes');
    const r = await fetch(`${h.url}/v1/blobs/${wrong}`, { method: 'PUT', headers: h.auth, body: bytes });
    expect(r.status).toBe(400);
    const e = await errorOf(r);
    expect(e.code).toBe('blob/corrupt');
    expect(e.message).toContain(sha(bytes));
    expect(readdirSync(h.blobDir)).toEqual([]);
    expect((await fetch(`${h.url}/v1/blobs/${wrong}`)).status).toBe(404);
  });

  it('refuses blobs over the limit, declared or streamed', async () => {
    const h = await hubWithToken({ maxBlobBytes: 1024 });
    const big = new Uint8Array(2048).fill(3);
    let r = await fetch(`${h.url}/v1/blobs/${sha(big)}`, { method: 'PUT', headers: h.auth, body: big });
    expect(r.status).toBe(413);
    expect((await errorOf(r)).code).toBe('http/too-large');

    // Chunked, no Content-Length: the hub counts while streaming and stops at the limit.
    const res = await raw(h.url, {
      method: 'PUT',
      path: `/v1/blobs/${sha(big)}`,
      headers: h.auth,
      chunks: [big.subarray(0, 700), big.subarray(700, 1400), big.subarray(1400)],
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body.toString()).error.code).toBe('http/too-large');
    expect(readdirSync(h.blobDir)).toEqual([]);

    // Exactly at the limit is fine.
    const fits = big.subarray(0, 1024);
    r = await fetch(`${h.url}/v1/blobs/${sha(fits)}`, { method: 'PUT', headers: h.auth, body: fits });
    expect(r.status).toBe(201);
  });

  it('drops an upload cut off mid-way and keeps serving', async () => {
    const h = await hubWithToken();
    const bytes = new Uint8Array(3000).fill(9);
    await new Promise<void>((resolve) => {
      const sock = connect(h.hub.port, '127.0.0.1', () => {
        sock.write(
          `PUT /v1/blobs/${sha(bytes)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.token}\r\n` +
            'Content-Length: 3000\r\n\r\n',
        );
        sock.write(bytes.subarray(0, 1000), () => setTimeout(() => sock.destroy(), 50));
      });
      sock.on('error', () => resolve());
      sock.on('close', () => resolve());
    });
    await noLeftovers(h.blobDir);
    expect(readdirSync(h.blobDir)).toEqual([]);
    expect((await fetch(`${h.url}/v1/blobs/${sha(bytes)}`)).status).toBe(404);
    await upload(h.url, h.token, [bytes]);
    expect((await fetch(`${h.url}/v1/blobs/${sha(bytes)}`)).status).toBe(200);
  });
});

describe('jobs', () => {
  it('takes a manifest once its blobs are uploaded, reports progress and serves validated results', async () => {
    const h = await hubWithToken();
    const { manifest, blobs } = manifestJson(3);
    const post = (body: string) =>
      fetch(`${h.url}/v1/jobs`, {
        method: 'POST',
        headers: { ...h.auth, 'content-type': 'application/json' },
        body,
      });

    await upload(h.url, h.token, blobs.slice(0, 2));
    let r = await post(JSON.stringify(manifest));
    expect(r.status).toBe(400);
    const e = await errorOf(r);
    expect(e.code).toBe('blob/missing');
    expect(e.message).toContain(sha(blobs[2]!));
    expect(h.hub.store.listJobs()).toHaveLength(0);

    await upload(h.url, h.token, blobs.slice(2));
    r = await post(JSON.stringify(manifest));
    expect(r.status).toBe(201);
    const { job } = (await r.json()) as { job: string };
    expect(h.hub.store.getJob(job)?.manifest.kind).toBe('wgsl');

    r = await fetch(`${h.url}/v1/jobs/${job}`, { headers: h.auth });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ job, status: 'running', shards: 3, validated: 0, progress: 0 });
    r = await fetch(`${h.url}/v1/jobs/${job}/results`, { headers: h.auth });
    expect(await r.json()).toEqual({ job, status: 'running', kind: 'wgsl', shards: [] });

    // Two simulated volunteers (straight into the hub's scheduler) validate shard 0 and 1.
    const s = h.hub.scheduler;
    const caps = { maxBufferBytes: 1 << 30, features: [] };
    for (let k = 0; k < 4; k++) {
      for (const v of ['v1', 'v2']) {
        const g = s.lease(v, caps, Date.now());
        if (!g) continue;
        const i = Number(g.shard.slice(g.shard.lastIndexOf('/') + 1));
        if (i === 2) continue;
        await s.submitResult(v, await result(g.shard, job, truth(i)), Date.now());
      }
    }
    r = await fetch(`${h.url}/v1/jobs/${job}`, { headers: h.auth });
    expect(await r.json()).toMatchObject({ shards: 3, validated: 2 });

    r = await fetch(`${h.url}/v1/jobs/${job}/results`, { headers: h.auth });
    const index = (await r.json()) as {
      shards: {
        shard: string;
        index: number;
        outputs: { name: string; sha256: string; shape: number[] }[];
      }[];
    };
    expect(index.shards.map((x) => x.index)).toEqual([0, 1]);
    const y1 = index.shards[1]!.outputs[0]!;
    expect(y1).toMatchObject({ name: 'y', dtype: 'f32', shape: [4], bytes: 16 });

    r = await fetch(`${h.url}/v1/jobs/${job}/results/1/y`, { headers: h.auth });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-hearth-sha256')).toBe(y1.sha256);
    expect(new Float32Array(await r.arrayBuffer())).toEqual(truth(1));
    r = await fetch(`${h.url}/v1/jobs/${job}/results/${encodeURIComponent(index.shards[0]!.shard)}/y`, {
      headers: h.auth,
    });
    expect(new Float32Array(await r.arrayBuffer())).toEqual(truth(0));
    expect((await fetch(`${h.url}/v1/jobs/${job}/results/2/y`, { headers: h.auth })).status).toBe(404);
    expect((await fetch(`${h.url}/v1/jobs/${job}/results/1/z`, { headers: h.auth })).status).toBe(404);
    // Results need a token.
    expect((await fetch(`${h.url}/v1/jobs/${job}/results/1/y`)).status).toBe(401);
    // DELETE cancels the running job; what was validated stays readable (more in hub-cancel tests).
    r = await fetch(`${h.url}/v1/jobs/${job}`, { method: 'DELETE', headers: h.auth });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ job, status: 'cancelled' });
    r = await fetch(`${h.url}/v1/jobs/${job}/results/1/y`, { headers: h.auth });
    expect(new Float32Array(await r.arrayBuffer())).toEqual(truth(1));
  });

  it('names what is wrong with a bad body', async () => {
    const h = await hubWithToken({ maxJsonBytes: 64 * 1024 });
    const post = (body: string) => fetch(`${h.url}/v1/jobs`, { method: 'POST', headers: h.auth, body });
    const { manifest } = manifestJson(1);

    let r = await post('{"v": 1, "kind": ');
    expect(r.status).toBe(400);
    expect((await errorOf(r)).message).toMatch(/malformed JSON/);

    r = await post(JSON.stringify({ ...manifest, replication: 0 }));
    expect(r.status).toBe(400);
    let e = await errorOf(r);
    expect(e.code).toBe('input/invalid');
    expect(e.message).toMatch(/^manifest\.replication/);
    expect(e.details?.['path']).toBe('manifest.replication');

    r = await post(JSON.stringify({ ...manifest, shards: [{ dispatch: [1, 1, 1], bindings: [] }] }));
    e = await errorOf(r);
    expect(e.message).toMatch(/^manifest\.shards\[0\]\.bindings/);

    r = await post('[1, 2, 3]');
    expect((await errorOf(r)).message).toMatch(/^manifest: expected an object/);

    r = await post(JSON.stringify({ ...manifest, name: 'x'.repeat(70_000) }));
    expect(r.status).toBe(413);

    r = await fetch(`${h.url}/v1/nothing-here`, { headers: h.auth });
    expect(r.status).toBe(404);
    expect((await errorOf(r)).code).toBe('http/not-found');
    r = await fetch(`${h.url}/v1/jobs/job-that-is-not`, { headers: h.auth });
    expect(r.status).toBe(404);
    r = await fetch(`${h.url}/v1/jobs`, { method: 'PUT', headers: h.auth });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('POST, GET, HEAD');
    expect(h.hub.store.listJobs()).toHaveLength(0);
  });

  it('answers CORS only for the listed origins', async () => {
    const h = await hubWithToken();
    let r = await fetch(`${h.url}/v1/jobs`, {
      method: 'OPTIONS',
      headers: { origin: 'https://embed.example', 'access-control-request-method': 'POST' },
    });
    expect(r.status).toBe(204);
    expect(r.headers.get('access-control-allow-origin')).toBe('https://embed.example');
    r = await fetch(`${h.url}/v1/jobs/x`, { headers: { ...h.auth, origin: 'https://evil.example' } });
    expect(r.status).toBe(403);
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    expect((await errorOf(r)).code).toBe('http/origin');
  });
});

describe('robustness', () => {
  it('answers CONNECT with 405 and a JSON error (it used to drop the socket without a word)', async () => {
    const h = await hubWithToken();
    const u = new URL(h.url);
    const reply = await new Promise<string>((resolve) => {
      const sock = connect(Number(u.port), u.hostname, () => {
        sock.write('CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n');
      });
      let text = '';
      sock.on('data', (d) => (text += d));
      sock.on('close', () => resolve(text));
      sock.on('error', () => resolve(text));
    });
    expect(reply).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    expect(reply).toMatch(/\{"error":\{"code":"http\/method","message":"this hub is not a proxy/);
  });

  it('survives a few hundred malformed requests, changes nothing, and keeps serving', async () => {
    const h = await hubWithToken({ maxJsonBytes: 16 * 1024, maxBlobBytes: 2048 });
    const { manifest, blobs } = manifestJson(2);
    await upload(h.url, h.token, blobs);
    const rng = seededRng(42);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
    const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rng() * 256)));
    const good = JSON.stringify(manifest);
    // Each keeps the manifest invalid, so no fuzzed request may create a job.
    const badFields: [string, unknown][] = [
      ['v', 2],
      ['kind', 'cuda'],
      ['replication', 'two'],
      ['replication', 0],
      ['replication', 1.5],
      ['deadlineMs', -1],
      ['creditRate', null],
      ['flopsPerShard', 0],
      ['shards', []],
      ['shards', 'all'],
      ['tolerance', 'loose'],
      ['source', ''],
      ['bogus', true],
      ['shards', [{ dispatch: [0, 1, 1], bindings: [] }]],
      ['shards', [{ ...(manifest['shards'] as object[])[0], dispatch: [1, 1] }]],
    ];
    const bodies: (() => Buffer | string | undefined)[] = [
      () => undefined,
      () => junk(Math.floor(rng() * 3000)),
      () => good.slice(0, Math.floor(rng() * good.length)),
      () => {
        const [k, v] = pick(badFields);
        return JSON.stringify({ ...manifest, [k]: v });
      },
      () =>
        JSON.stringify({ ...manifest, shards: [{ ...(manifest['shards'] as object[])[0], bindings: 7 }] }),
      () => pick(['null', '0', '""', '[]', '{}', 'true', '{"v":1}', '\u0000\u0001']),
      () => 'x'.repeat(20_000),
      () =>
        // Valid, but names a blob nobody uploaded.
        good.replace(sha(blobs[0]!), 'f'.repeat(64)),
    ];
    const paths = [
      '/',
      '/v1',
      '/v1/',
      '/v1/jobs',
      '/v1/jobs/',
      '/v1/jobs/job-x',
      '/v1/jobs/%zz',
      '/v1/jobs/job-x/results',
      '/v1/jobs/job-x/results/0/y',
      '/v1/jobs/job-x/results/../../etc',
      `/v1/blobs/${sha(blobs[0]!)}`,
      `/v1/blobs/${'a'.repeat(64)}`,
      '/v1/blobs/..%2F..%2Fhub.db',
      '/v1/blobs/',
      '/v1/tokens',
      '/v1/tokens/alice',
      `/v1/${'a/'.repeat(50)}`,
      `/${'x'.repeat(3000)}`,
      '/v1/jobs?x=1&&&',
      '//v1//jobs',
    ];
    const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'FOO'];
    const auths = [
      undefined,
      `Bearer ${h.token}`,
      `Bearer ${h.token}x`,
      'Bearer',
      'Bearer  ',
      `bearer ${h.token}`,
      'Basic YWxpY2U6cGFzcw==',
      `Bearer ${'A'.repeat(600)}`,
    ];
    const jobsBefore = h.hub.store.listJobs().length;
    const statuses = new Map<number, number>();
    for (let n = 0; n < 400; n++) {
      const headers: Record<string, string> = {};
      const auth = pick(auths);
      if (auth !== undefined) headers['authorization'] = auth;
      if (rng() < 0.2) headers['content-type'] = pick(['application/json', 'text/plain', 'x/y; a=b']);
      if (rng() < 0.2)
        headers['range'] = pick(['bytes=5-1', 'bytes=-0', 'bytes=0-0,5-9', 'items=1-2', 'bytes=x']);
      if (rng() < 0.1) headers['origin'] = pick(['https://embed.example', 'null', 'https://evil.example']);
      if (rng() < 0.1) headers['content-length'] = pick(['99999999999', '1000000']);
      const body = pick(bodies)();
      const method = pick(methods);
      const path = pick(paths);
      const res = await raw(h.url, {
        method,
        path,
        headers,
        ...(body === undefined ? {} : rng() < 0.3 ? { chunks: [body, body] } : { body }),
      });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status >= 400 && res.body.length > 0) {
        const parsed = JSON.parse(res.body.toString()) as ErrorBody;
        expect(typeof parsed.error.code).toBe('string');
      }
      expect(res.status).not.toBe(500);
    }
    // Garbage below HTTP: Node's parser refuses it; the hub must shrug.
    for (const junkRequest of [
      'NOT HTTP AT ALL\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
      'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n',
      `GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`,
      'GET /v1/jobs HTTP/1.1\r\n',
    ]) {
      await new Promise<void>((resolve) => {
        const sock = connect(h.hub.port, '127.0.0.1', () => sock.end(junkRequest));
        sock.on('data', () => {});
        sock.on('error', () => resolve());
        sock.on('close', () => resolve());
      });
    }
    // The fuzz reached the checks it means to: auth, routing, bodies, limits.
    for (const status of [400, 401, 403, 404, 405, 413]) expect(statuses.get(status) ?? 0).toBeGreaterThan(0);
    expect(h.hub.store.listJobs()).toHaveLength(jobsBefore);
    await noLeftovers(h.blobDir);

    // Still serving.
    const r = await fetch(`${h.url}/v1/jobs`, { method: 'POST', headers: h.auth, body: good });
    expect(r.status).toBe(201);
    expect(h.hub.store.listJobs()).toHaveLength(jobsBefore + 1);
  });
});
