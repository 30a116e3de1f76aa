// The typed API client (src/client/hub-api.ts) against a real hub, and against small real HTTP
// servers on 127.0.0.1 that answer what a broken hub or a proxy might: every failure is a typed
// HearthError with what went wrong, never a hang or a cast that lies.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HubApi } from '../../src/client/hub-api.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { manifestJson, sha, type TestHub, testHub, upload } from '../node/hub-helpers.ts';

let t: TestHub | undefined;
const servers: Server[] = [];
afterEach(async () => {
  await t?.dispose();
  t = undefined;
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** A server on 127.0.0.1:0 that answers every request with `answer`. */
async function fakeHub(answer: (res: import('node:http').ServerResponse) => void): Promise<string> {
  const s = createServer((_req, res) => answer(res));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

describe('HubApi', () => {
  it('submits, reads progress and results, cancels — typed, against a real hub', async () => {
    t = await testHub();
    const { token } = createToken(t.hub.store, 'alice');
    const api = new HubApi({ hub: t.hub.url, token });
    const { manifest, blobs } = manifestJson(2);
    expect(await api.hasBlob(sha(blobs[0]!))).toBe(false);
    await upload(t.hub.url, token, blobs.slice(0, 1));
    await api.putBlob(sha(blobs[1]!), blobs[1]!);
    expect(await api.hasBlob(sha(blobs[0]!))).toBe(true);
    const { job } = await api.submit(JSON.stringify(manifest));
    const p = await api.progress(job);
    expect(p).toMatchObject({ job, status: 'running', shards: 2, validated: 0, inFlight: 0 });
    expect(await api.results(job)).toEqual({ job, status: 'running', kind: 'wgsl', shards: [] });
    expect(await api.cancel(job)).toMatchObject({ job, already: false, leasesDropped: 0 });
    // The event stream of a finished job: one event, then the end.
    const seen = [];
    for await (const e of api.watch(job)) seen.push(e.status);
    expect(seen).toEqual(['cancelled']);
    // The hub's refusal keeps its status and code.
    await expect(api.progress('job-nope')).rejects.toMatchObject({
      code: 'net/refused',
      details: { status: 404, code: 'http/not-found' },
      message: expect.stringMatching(
        /GET \/v1\/jobs\/job-nope failed with 404 http\/not-found: job job-nope/,
      ),
    });
    await expect(new HubApi({ hub: t.hub.url, token: 'wrong' }).progress(job)).rejects.toMatchObject({
      details: { status: 401, code: 'http/unauthorized' },
    });
  });

  it('an answer that is not the API’s is net/protocol, naming the field', async () => {
    const hub = await fakeHub((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ job: 'j', status: 'running', shards: -1 }));
    });
    await expect(new HubApi({ hub, token: 'x' }).progress('j')).rejects.toMatchObject({
      code: 'net/protocol',
      message: expect.stringMatching(/answer\.shards: expected an integer/),
    });
    const html = await fakeHub((res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>a proxy</html>');
    });
    await expect(new HubApi({ hub: html, token: 'x' }).submit('{}')).rejects.toMatchObject({
      code: 'net/protocol',
    });
    const proxy = await fakeHub((res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>bad gateway</html>');
    });
    await expect(new HubApi({ hub: proxy, token: 'x' }).progress('j')).rejects.toMatchObject({
      code: 'net/refused',
      details: { status: 502 },
      message: expect.stringContaining('<html>bad gateway'),
    });
  });

  it('a hub that never answers, or stops mid-stream, ends the call with net/timeout', async () => {
    const silent = await fakeHub(() => {
      // Accepts and says nothing.
    });
    await expect(new HubApi({ hub: silent, token: 'x', timeoutMs: 300 }).progress('j')).rejects.toMatchObject(
      {
        code: 'net/timeout',
        message: expect.stringMatching(/did not answer GET \/v1\/jobs\/j within 300 ms/),
      },
    );
    const unreachable = new HubApi({ hub: 'http://127.0.0.1:9', token: 'x' });
    await expect(unreachable.progress('j')).rejects.toMatchObject({ code: 'net/unreachable' });
  });
});
