// Idle liveness on the control plane: the hub pings every connection and terminates one that
// stops answering, so a tab that vanished without a TCP close (laptop lid, lost network) gives
// its leases back at once instead of at their deadlines. A silent client is simulated by pausing
// the client's TCP socket: its kernel buffer takes the hub's pings, and nothing answers them.
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { selfOriginsOf } from '../../src/node/hub-server.ts';
import { wgslManifest } from '../hub/fixtures.ts';
import { authenticated, Conn, startTestHub, type TestHub, TestKey, until } from './control-helpers.ts';
import { raw, testHub } from './hub-helpers.ts';

const silence = (c: Conn) => (c.ws as unknown as { _socket: Socket })._socket.pause();

describe('control plane liveness pings', () => {
  let hub: TestHub | undefined;
  const conns: Conn[] = [];
  afterEach(async () => {
    for (const c of conns.splice(0)) c.ws.terminate();
    await hub?.close();
    hub = undefined;
  });

  it('terminates a volunteer that stops answering pings and reissues its lease at once', async () => {
    hub = await startTestHub({ pingIntervalMs: 50 });
    // One shard, one replica, a 10 s deadline: only a disconnect can free it for someone else.
    const job = hub.scheduler.submit(wgslManifest(1, { replication: 1, maxReplicas: 2 }), Date.now());
    const a = await authenticated(hub.url, await TestKey.create());
    const b = await authenticated(hub.url, await TestKey.create());
    conns.push(a.conn, b.conn);
    a.conn.send({ v: 2, type: 'lease-request' });
    const leased = await a.conn.msg();
    expect(leased.type).toBe('lease');
    b.conn.send({ v: 2, type: 'lease-request' });
    expect((await b.conn.msg()).type).toBe('no-work');

    silence(a.conn);
    await until(() => hub!.cp.volunteers() === 1);
    expect(hub.cp.connections()).toBe(1);

    b.conn.send({ v: 2, type: 'lease-request' });
    const again = await b.conn.msg();
    expect(again.type).toBe('lease');
    if (again.type !== 'lease' || leased.type !== 'lease') throw new Error('unreachable');
    expect(again.shard).toBe(leased.shard);
    // Within the first lease's 10 s deadline (until() gives up after 5 s): the disconnect path
    // released it, not expiry.
    expect(again.job).toBe(job);
  });

  it('keeps a volunteer that answers: many pings later it is still connected', async () => {
    hub = await startTestHub({ pingIntervalMs: 30 });
    const a = await authenticated(hub.url, await TestKey.create());
    conns.push(a.conn);
    let pings = 0;
    a.conn.ws.on('ping', () => pings++);
    await until(() => pings >= 6);
    expect(a.conn.isOpen).toBe(true);
    expect(hub.cp.volunteers()).toBe(1);
  });

  it('terminates a silent connection that never authenticated too', async () => {
    // A long auth deadline, so only the ping sweep can be what ends it.
    hub = await startTestHub({ pingIntervalMs: 50, authTimeoutMs: 600_000 });
    const c = new Conn(hub.url);
    conns.push(c);
    expect(await c.opened).toBe(true);
    await until(() => hub!.cp.connections() === 1);
    silence(c);
    await until(() => hub!.cp.connections() === 0);
  });

  it('closes cleanly with its ping timer running', async () => {
    hub = await startTestHub({ pingIntervalMs: 20 });
    const a = await authenticated(hub.url, await TestKey.create());
    conns.push(a.conn);
    const closed = new Promise<void>((resolve) => a.conn.ws.once('close', () => resolve()));
    await hub.close();
    hub = undefined;
    await closed;
  });
});

describe('the hub’s own origin', () => {
  let t: Awaited<ReturnType<typeof testHub>> | undefined;
  afterEach(async () => {
    await t?.dispose();
    t = undefined;
  });

  it('may open /v1/volunteer without being listed; a Host-header lookalike may not', async () => {
    t = await testHub({ allowedOrigins: [] });
    const { port } = t.hub;
    expect(t.hub.selfOrigins).toEqual([
      `http://127.0.0.1:${port}`,
      `http://localhost:${port}`,
      `http://[::1]:${port}`,
    ]);
    const url = `ws://127.0.0.1:${port}/v1/volunteer`;
    for (const origin of t.hub.selfOrigins) {
      const c = new Conn(url, origin);
      expect(await c.opened).toBe(true);
      await c.close();
    }
    // DNS rebinding: a stranger's name resolving to the hub; Host and Origin agree, yet it is not
    // the hub's own page.
    const rebound = new WebSocket(url, {
      origin: 'http://evil.example:8787',
      headers: { host: 'evil.example:8787' },
    });
    const status = await new Promise<number>((resolve) => {
      rebound.once('unexpected-response', (_q, res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      rebound.once('open', () => resolve(101));
      rebound.once('error', () => {});
    });
    rebound.terminate();
    expect(status).toBe(403);
    // The HTTP API applies the same rule: own origin passes CORS (then needs a token), a lookalike does not.
    const own = await raw(t.hub.url, { path: '/v1/jobs/x', headers: { origin: `http://localhost:${port}` } });
    expect(own.status).toBe(401);
    const lookalike = await raw(t.hub.url, {
      path: '/v1/jobs/x',
      headers: { origin: 'http://evil.example:8787', host: 'evil.example:8787' },
    });
    expect(lookalike.status).toBe(403);
  });

  it('selfOriginsOf: loopback names, an explicit host, none for a wildcard bind, no :80', () => {
    expect(selfOriginsOf('127.0.0.1', 80)).toEqual(['http://127.0.0.1', 'http://localhost', 'http://[::1]']);
    expect(selfOriginsOf('hub.lan', 8787)).toEqual(['http://hub.lan:8787']);
    expect(selfOriginsOf('fe80::1', 9)).toEqual(['http://[fe80::1]:9']);
    expect(selfOriginsOf('0.0.0.0', 8787)).toEqual([]);
    expect(selfOriginsOf('::', 8787)).toEqual([]);
  });
});
