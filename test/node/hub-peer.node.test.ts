// The hub's PeerServer at /p2p: two real PeerJS peers in Node (WebRTC from node-datachannel)
// find each other through the hub and talk over a DataConnection, while volunteers' control
// plane keeps working on the same port; origins are checked on the signalling socket; and
// hub.close() ends it all (this file's process must exit by itself, no stray timers).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Hub, startHub } from '../../src/node/hub-server.ts';
import { PEER_WS_PATH } from '../../src/node/peer-server.ts';
import { installNodeWebRTC, rawConnect } from '../net/node-peers.ts';
import { authenticated, Conn, ORIGIN, TestKey } from './control-helpers.ts';

// PeerJS looks for the browser's WebRTC and WebSocket globals when it loads: install
// node-datachannel's WebRTC polyfill and ws first, then import it.
await installNodeWebRTC();
const { Peer } = await import('peerjs');
type PeerT = InstanceType<typeof Peer>;

const KEY = 'hearth-test';

function peerAt(hub: Hub, id: string): Promise<PeerT> {
  const p = new Peer(id, {
    host: '127.0.0.1',
    port: hub.port,
    path: '/p2p',
    key: KEY,
    secure: false,
    debug: 0,
    // bindAddress is node-datachannel's: without it ICE never completes on loopback.
    config: { iceServers: [], bindAddress: '127.0.0.1' } as RTCConfiguration,
  });
  return new Promise((resolve, reject) => {
    p.once('open', () => resolve(p));
    p.once('error', (e) => reject(e));
  });
}

/** The first message a raw signalling client gets (PeerServer answers OPEN or ERROR). */
function signalling(hub: Hub, query: string, origin?: string) {
  const ws = new WebSocket(
    `ws://127.0.0.1:${hub.port}${PEER_WS_PATH}?${query}`,
    origin === undefined ? {} : { origin },
  );
  const first = new Promise<{ type: string; payload?: unknown } | { refused: number }>((resolve) => {
    ws.once('message', (d) => resolve(JSON.parse(d.toString())));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ refused: res.statusCode ?? 0 });
    });
    ws.once('error', () => {});
  });
  return { ws, first };
}

describe('hub PeerServer at /p2p', () => {
  let dir: string;
  let hub: Hub;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-hub-peer-'));
    hub = await startHub({
      dbPath: join(dir, 'hub.db'),
      blobDir: join(dir, 'blobs'),
      maxBlobBytes: 4096,
      allowedOrigins: [ORIGIN],
      pagesDir: join(dir, 'no-pages'),
      peer: { key: KEY },
    });
  });
  afterAll(async () => {
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('brokers a DataConnection between two Node peers while volunteers use the same port', async () => {
    const a = await peerAt(hub, 'peer-a');
    const b = await peerAt(hub, 'peer-b');
    expect(hub.peer?.peers()).toBe(2);

    // A volunteer authenticates on /v1/volunteer at the same time.
    const vol = await authenticated(`ws://127.0.0.1:${hub.port}/v1/volunteer`, await TestKey.create());
    expect(hub.controlPlane.volunteers()).toBe(1);

    const got = new Promise<unknown>((resolve) => {
      b.on('connection', (conn) => conn.on('data', (d) => resolve(d)));
    });
    // Dial with retries: under load PeerJS can drop a dial on a negotiation race and fire no event.
    const conn = await rawConnect(a, 'peer-b', 3, { serialization: 'binary', timeoutMs: 10_000 });
    await conn.send({ hello: 'from a', n: 42 });
    expect(await got).toEqual({ hello: 'from a', n: 42 });

    // Both planes still up after the exchange.
    expect(vol.conn.isOpen).toBe(true);
    expect(hub.controlPlane.volunteers()).toBe(1);
    await vol.conn.close();
    a.destroy();
    b.destroy();
  });

  it('answers PeerJS HTTP routes, hides the peer list, and 404s other paths under /p2p', async () => {
    const info = await fetch(`${hub.url}/p2p/`);
    expect(info.status).toBe(200);
    expect(((await info.json()) as { name: string }).name).toBe('PeerJS Server');
    const id = await fetch(`${hub.url}/p2p/${KEY}/id`);
    expect(id.status).toBe(200);
    expect((await id.text()).length).toBeGreaterThan(8);
    expect((await fetch(`${hub.url}/p2p/${KEY}/peers`)).status).toBe(401);
    const miss = await fetch(`${hub.url}/p2p/nothing/here/at/all`);
    expect(miss.status).toBe(404);
    expect(((await miss.json()) as { error: { code: string } }).error.code).toBe('http/not-found');
  });

  it('relays an OFFER between two raw signalling sockets, and refuses a wrong key', async () => {
    const x = signalling(hub, `key=${KEY}&id=raw-x&token=tx`);
    const y = signalling(hub, `key=${KEY}&id=raw-y&token=ty`);
    expect(await x.first).toEqual({ type: 'OPEN' });
    expect(await y.first).toEqual({ type: 'OPEN' });
    const relayed = new Promise<unknown>((resolve) =>
      y.ws.once('message', (d) => resolve(JSON.parse(d.toString()))),
    );
    x.ws.send(JSON.stringify({ type: 'OFFER', dst: 'raw-y', payload: { sdp: 'v=0' } }));
    // The server stamps the sender's id as src: a peer cannot speak for another.
    expect(await relayed).toEqual({ type: 'OFFER', src: 'raw-x', dst: 'raw-y', payload: { sdp: 'v=0' } });

    const bad = signalling(hub, 'key=wrong&id=raw-z&token=tz');
    expect(await bad.first).toEqual({ type: 'ERROR', payload: { msg: 'Invalid key provided' } });
    for (const s of [x, y, bad]) s.ws.terminate();
  });

  it('admits the hub’s own origin and listed origins, refuses others with 403', async () => {
    const own = signalling(hub, `key=${KEY}&id=o1&token=t`, `http://localhost:${hub.port}`);
    expect(await own.first).toEqual({ type: 'OPEN' });
    const listed = signalling(hub, `key=${KEY}&id=o2&token=t`, ORIGIN);
    expect(await listed.first).toEqual({ type: 'OPEN' });
    const evil = signalling(hub, `key=${KEY}&id=o3&token=t`, 'https://evil.example');
    expect(await evil.first).toEqual({ refused: 403 });
    // A Host-header lookalike (DNS rebinding) is not the hub's own origin.
    const rebound = new WebSocket(`ws://127.0.0.1:${hub.port}${PEER_WS_PATH}?key=${KEY}&id=o4&token=t`, {
      origin: 'http://evil.example:1234',
      headers: { host: 'evil.example:1234' },
    });
    const status = await new Promise<number>((resolve) => {
      rebound.once('unexpected-response', (_q, res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      rebound.once('open', () => resolve(101));
      rebound.once('error', () => {});
    });
    expect(status).toBe(403);
    for (const s of [own, listed, evil]) s.ws.terminate();
    rebound.terminate();
  });

  it('refuses an upgrade to a path nobody serves with 404 instead of hanging', async () => {
    const c = new Conn(`ws://127.0.0.1:${hub.port}/nowhere`);
    expect(await c.opened).toBe(false);
    expect(c.refusedWith).toBe(404);
  });
});

describe('hub.close() with peers connected', () => {
  it('closes signalling sockets and stops the PeerServer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-hub-peer-close-'));
    const hub = await startHub({
      dbPath: join(dir, 'hub.db'),
      blobDir: join(dir, 'blobs'),
      maxBlobBytes: 4096,
      allowedOrigins: [],
      pagesDir: join(dir, 'no-pages'),
      peer: { key: KEY },
    });
    try {
      const s = signalling(hub, `key=${KEY}&id=c1&token=t`);
      expect(await s.first).toEqual({ type: 'OPEN' });
      const closed = new Promise<void>((resolve) => s.ws.once('close', () => resolve()));
      await hub.close();
      await closed;
      expect(hub.peer?.peers()).toBe(0);
    } finally {
      await hub.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('can be turned off: /p2p is then a 404', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-hub-peer-off-'));
    const hub = await startHub({
      dbPath: join(dir, 'hub.db'),
      blobDir: join(dir, 'blobs'),
      maxBlobBytes: 4096,
      allowedOrigins: [],
      pagesDir: join(dir, 'no-pages'),
      peer: false,
    });
    try {
      expect(hub.peer).toBeUndefined();
      expect((await fetch(`${hub.url}/p2p/`)).status).toBe(404);
      const s = signalling(hub, `key=peerjs&id=c1&token=t`);
      expect(await s.first).toEqual({ refused: 404 });
    } finally {
      await hub.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a hub process with PeerServer', () => {
  it('exits by itself after hub.close(): no PeerServer timer is left armed', async () => {
    const child = spawn(process.execPath, ['scripts/run-ts.mjs', 'test/node/peer-exit-child.ts'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (out += c));
    const code = await new Promise<number | string>((resolve) => {
      // Generous: starting tsx is slow on a busy 2-core machine. Not a timing check — a hung
      // process is the failure.
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('still running after 60 s');
      }, 60_000);
      child.once('exit', (c, sig) => {
        clearTimeout(timer);
        resolve(c ?? String(sig));
      });
    });
    expect({ code, out }).toMatchObject({ code: 0, out: expect.stringMatching(/^closed /m) });
  });
});
