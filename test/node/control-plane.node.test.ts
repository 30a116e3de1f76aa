// The volunteer control plane over real WebSockets on loopback: real P-256 keys (Node's
// WebCrypto), a real Scheduler over the in-memory store, a real http.Server on 127.0.0.1:0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.ts';
import { importVolunteerKey } from '../../src/hub/identity.ts';
import { attachControlPlane } from '../../src/node/control-plane.ts';
import {
  encodeResult,
  fromBase64Url,
  parseClientMessage,
  parseHubMessage,
  toBase64Url,
} from '../../src/protocol/control.ts';
import { CREDIT_UNITS } from '../../src/protocol/credit.ts';
import { CAPS, FIXTURE_KERNEL, indexOf, result, seededRng, truth, wgslManifest } from '../hub/fixtures.ts';
import {
  authenticated,
  Conn,
  hello,
  ORIGIN,
  startTestHub,
  type TestHub,
  TestKey,
  until,
} from './control-helpers.ts';

describe('control plane: the lease cycle', () => {
  let hub: TestHub;
  let job: string;
  beforeAll(async () => {
    hub = await startTestHub();
    job = hub.scheduler.submit(wgslManifest(2), Date.now());
  });
  afterAll(() => hub.close());

  it('hello → challenge → auth → welcome → lease → heartbeat → result → ack, and credit is granted', async () => {
    const a = await TestKey.create();
    const b = await TestKey.create();
    const ca = await authenticated(hub.url, a);
    const cb = await authenticated(hub.url, b);
    const ids: string[] = [];
    const outcomes: string[] = [];
    for (const [key, { conn }] of [
      [a, ca],
      [b, cb],
    ] as const) {
      conn.send({ v: 2, type: 'lease-request' });
      const lease = await conn.msg();
      if (lease.type !== 'lease') throw new Error(`expected a lease, got ${JSON.stringify(lease)}`);
      expect(lease.job).toBe(job);
      expect(lease.work.kind).toBe('wgsl');
      expect(lease.kernel).toEqual({ source: FIXTURE_KERNEL });
      expect(lease.deadline).toBeGreaterThan(Date.now());
      conn.send({ v: 2, type: 'heartbeat', lease: lease.lease });
      const ext = await conn.msg();
      expect(ext).toMatchObject({ type: 'extended', lease: lease.lease });
      // The fixture's kernel writes truth(i) for shard i: the answer the test computes itself.
      const r = await result(lease.shard, job, truth(indexOf(lease.shard)));
      conn.send({ v: 2, type: 'result', result: encodeResult(r) });
      const ack = await conn.msg();
      if (ack.type !== 'ack') throw new Error(`expected an ack, got ${JSON.stringify(ack)}`);
      expect(ack.shard).toBe(lease.shard);
      ids.push(lease.shard);
      outcomes.push(ack.outcome);
      expect(hub.store.leasesOfVolunteer(key.id)).toHaveLength(0);
    }
    // Replication 2: both replicas of one shard; the second one's agreement validates both.
    expect(ids[0]).toBe(ids[1]);
    expect(outcomes).toEqual(['pending', 'valid']);
    expect(hub.scheduler.credits(a.id)).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    expect(hub.scheduler.credits(b.id)).toEqual({ pending: 0n, granted: 50n * CREDIT_UNITS });
    expect(hub.scheduler.progress(job).validated).toBe(1);
    // The hub knows the volunteers by the SHA-256 of their keys, nothing else.
    expect(a.id).toMatch(/^[0-9a-f]{64}$/);
    expect((await importVolunteerKey(a.publicKey)).id).toBe(a.id);
    await ca.conn.close();
    await cb.conn.close();
  });

  it('the id is the same for the SPKI and JWK forms of one key', async () => {
    const k = await TestKey.create();
    const jwk = await crypto.subtle.exportKey('jwk', k.pair.publicKey);
    const { id } = await importVolunteerKey({ kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! });
    expect(id).toBe(k.id);
    const conn = new Conn(hub.url);
    await conn.opened;
    conn.send({
      v: 2,
      type: 'hello',
      publicKey: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y },
      capabilities: CAPS,
    });
    const ch = await conn.msg();
    if (ch.type !== 'challenge') throw new Error('expected a challenge');
    conn.send({ v: 2, type: 'auth', signature: await k.sign(ch.nonce) });
    expect(await conn.msg()).toEqual({ v: 2, type: 'welcome', volunteerId: k.id });
    await conn.close();
  });

  it('a result with bytes that do not match its hash is refused and credits nothing', async () => {
    const k = await TestKey.create();
    const { conn } = await authenticated(hub.url, k);
    conn.send({ v: 2, type: 'lease-request' });
    const lease = await conn.msg();
    if (lease.type !== 'lease') throw new Error('expected a lease');
    const r = await result(lease.shard, job, truth(indexOf(lease.shard)));
    const lie = { ...r, outputs: [{ ...r.outputs[0]!, data: new Float32Array([9, 9, 9, 9]).buffer }] };
    conn.send({ v: 2, type: 'result', result: encodeResult(lie) });
    // The error names the request it answers and carries the scheduler's code and details.
    expect(await conn.next()).toMatchObject({
      kind: 'message',
      msg: { type: 'error', code: 'input/invalid', re: conn.lastId, details: { output: 'y' } },
    });
    expect(hub.store.ledger(k.id)).toHaveLength(0);
    expect(hub.store.leasesOfVolunteer(k.id)).toHaveLength(1);
    await conn.close();
  });
});

describe('control plane: identity cannot be taken', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub();
    hub.scheduler.submit(wgslManifest(4), Date.now());
  });
  afterAll(() => hub.close());

  it("replaying another volunteer's signed auth on a new connection is refused", async () => {
    const victim = await TestKey.create();
    const { conn, signature } = await authenticated(hub.url, victim);
    const thief = new Conn(hub.url);
    await thief.opened;
    thief.send(hello(victim));
    const ch = await thief.msg();
    if (ch.type !== 'challenge') throw new Error('expected a challenge');
    thief.send({ v: 2, type: 'auth', signature });
    expect(await thief.msg()).toMatchObject({ type: 'error', code: 'control/auth-failed' });
    expect(await thief.next()).toMatchObject({ kind: 'close', code: 1008 });
    expect(hub.cp.volunteers()).toBe(1);
    // The victim's own connection is untouched.
    conn.send({ v: 2, type: 'lease-request' });
    expect((await conn.msg()).type).toBe('lease');
    await conn.close();
  });

  it('a bad signature, or one made by another key, is refused', async () => {
    const victim = await TestKey.create();
    const thiefKey = await TestKey.create();
    for (const forge of [
      async () => toBase64Url(crypto.getRandomValues(new Uint8Array(64))),
      async (nonce: string) => thiefKey.sign(nonce, victim.id),
      async () => 'not base64!',
      async () => toBase64Url(new Uint8Array(70)),
    ]) {
      const c = new Conn(hub.url);
      await c.opened;
      c.send(hello(victim));
      const ch = await c.msg();
      if (ch.type !== 'challenge') throw new Error('expected a challenge');
      c.send({ v: 2, type: 'auth', signature: await forge(ch.nonce) });
      const reply = await c.msg();
      expect(reply.type).toBe('error');
      expect(['control/auth-failed', 'input/invalid']).toContain(reply.type === 'error' ? reply.code : '');
      c.send({ v: 2, type: 'lease-request' });
      const after = await c.next();
      // Either closed already (auth-failed) or still unauthenticated.
      if (after.kind === 'message') expect(after.msg).toMatchObject({ type: 'error' });
      await c.close();
    }
    expect(hub.store.getVolunteer(victim.id)).toBeUndefined();
  });

  it('lease-request, heartbeat and result before auth are refused', async () => {
    const k = await TestKey.create();
    const c = new Conn(hub.url);
    await c.opened;
    c.send({ v: 2, type: 'lease-request' });
    expect(await c.msg()).toMatchObject({ type: 'error', code: 'control/unauthenticated' });
    c.send({ v: 2, type: 'heartbeat', lease: 'x' });
    expect(await c.msg()).toMatchObject({ type: 'error', code: 'control/unauthenticated' });
    c.send(hello(k));
    expect((await c.msg()).type).toBe('challenge');
    // Said hello, not yet proven: still no lease.
    c.send({ v: 2, type: 'lease-request' });
    expect(await c.msg()).toMatchObject({ type: 'error', code: 'control/unauthenticated' });
    c.send({ v: 2, type: 'auth', signature: 'AAAA' });
    expect(await c.msg()).toMatchObject({ type: 'error', code: 'control/auth-failed' });
    expect(hub.store.getVolunteer(k.id)).toBeUndefined();
    await c.close();
  });
});

describe('control plane: limits', () => {
  it('a flood over the rate limit closes that connection; others keep being served', async () => {
    const hub = await startTestHub({ messagesPerSecond: 20, burst: 40 });
    try {
      hub.scheduler.submit(wgslManifest(4), Date.now());
      const good = await authenticated(hub.url, await TestKey.create());
      const flood = await authenticated(hub.url, await TestKey.create());
      for (let i = 0; i < 300; i++) flood.conn.send({ v: 2, type: 'heartbeat', lease: `nope-${i}` });
      let sawRateLimited = false;
      for (;;) {
        const e = await flood.conn.next();
        if (e.kind === 'close') {
          expect(e.code).toBe(1008);
          break;
        }
        if (e.msg.type === 'error' && e.msg.code === 'control/rate-limited') sawRateLimited = true;
      }
      expect(sawRateLimited).toBe(true);
      good.conn.send({ v: 2, type: 'lease-request' });
      expect((await good.conn.msg()).type).toBe('lease');
      await good.conn.close();
    } finally {
      await hub.close();
    }
  });

  it('too many connections from one address are refused; a slot frees when one closes', async () => {
    const hub = await startTestHub({ maxConnectionsPerAddress: 3 });
    try {
      const conns = [new Conn(hub.url), new Conn(hub.url), new Conn(hub.url)];
      expect(await Promise.all(conns.map((c) => c.opened))).toEqual([true, true, true]);
      const extra = new Conn(hub.url);
      expect(await extra.opened).toBe(false);
      expect(extra.refusedWith).toBe(429);
      await conns[0]!.close();
      await until(() => hub.cp.connections() === 2);
      const again = new Conn(hub.url);
      expect(await again.opened).toBe(true);
      await Promise.all([...conns, again].map((c) => c.close()));
    } finally {
      await hub.close();
    }
  });

  it('a disallowed or missing Origin is refused; "*" cannot be configured', async () => {
    const hub = await startTestHub();
    try {
      const evil = new Conn(hub.url, 'http://evil.test');
      expect(await evil.opened).toBe(false);
      expect(evil.refusedWith).toBe(403);
      const none = new Conn(hub.url, null);
      expect(await none.opened).toBe(false);
      expect(none.refusedWith).toBe(403);
      const ok = new Conn(hub.url, ORIGIN);
      expect(await ok.opened).toBe(true);
      await ok.close();
    } finally {
      await hub.close();
    }
    const { createServer } = await import('node:http');
    const { Scheduler } = await import('../../src/hub/scheduler.ts');
    const { MemoryStore } = await import('../../src/hub/memory-store.ts');
    const s = new Scheduler(new MemoryStore());
    for (const bad of ['*', 'http://x.test/path', 'nonsense']) {
      expect(() => attachControlPlane(createServer(), s, { allowedOrigins: [bad] })).toThrow(
        /allowedOrigins/,
      );
    }
  });

  it('a connection that does not finish auth in time is closed', async () => {
    const hub = await startTestHub({ authTimeoutMs: 150 });
    try {
      const c = new Conn(hub.url);
      await c.opened;
      c.send(hello(await TestKey.create()));
      expect((await c.msg()).type).toBe('challenge');
      expect(await c.msg()).toMatchObject({ type: 'error', code: 'control/auth-timeout' });
      expect(await c.next()).toMatchObject({ kind: 'close', code: 1008 });
    } finally {
      await hub.close();
    }
  });
});

describe('control protocol', () => {
  it('parses each client message and names the bad field', async () => {
    const k = await TestKey.create();
    expect(parseClientMessage(JSON.stringify(hello(k)))).toMatchObject({
      type: 'hello',
      publicKey: k.publicKey,
    });
    expect(parseClientMessage('{"v":2,"type":"lease-request","id":4}')).toEqual({
      v: 2,
      type: 'lease-request',
      id: 4,
    });
    const r = await result('job-1/0', 'job-1', truth(0));
    const back = parseClientMessage(JSON.stringify({ v: 2, id: 1, type: 'result', result: encodeResult(r) }));
    if (back.type !== 'result') throw new Error('expected a result');
    expect(new Float32Array(back.result.outputs[0]!.data)).toEqual(truth(0));
    const cases: [unknown, RegExp][] = [
      ['{', /message: not valid JSON/],
      ['{"v":1,"type":"lease-request","id":1}', /message\.v: this side speaks control protocol 2/],
      ['{"type":"lease-request","id":1}', /message\.v: .* says nothing/],
      ['{"v":2,"type":"dance","id":1}', /message\.type: expected one of/],
      ['{"v":2,"type":"lease-request"}', /message\.id: expected a request id/],
      ['{"v":2,"type":"lease-request","id":-1}', /message\.id: expected a request id/],
      ['{"v":2,"type":"heartbeat","id":1,"lease":7}', /message\.lease: expected a non-empty string/],
      ['{"v":2,"type":"lease-request","id":1,"x":1}', /message: unknown field "x"/],
      [
        JSON.stringify({ ...hello(k), capabilities: { maxBufferBytes: -1, features: [] } }),
        /message\.capabilities\.maxBufferBytes/,
      ],
      [
        JSON.stringify({
          v: 2,
          id: 1,
          type: 'result',
          result: { ...encodeResult(r), outputs: [{ ...encodeResult(r).outputs[0]!, data: 'AAAA' }] },
        }),
        /message\.result\.outputs\[0\]/,
      ],
      [42, /expected a JSON text message/],
    ];
    for (const [text, re] of cases) expect(() => parseClientMessage(text)).toThrow(re);
  });

  it('hub messages round-trip and are checked too', () => {
    const msgs = [
      { v: 2, type: 'challenge', nonce: toBase64Url(new Uint8Array(32)) },
      { v: 2, type: 'welcome', volunteerId: 'a'.repeat(64) },
      {
        v: 2,
        type: 'lease',
        lease: 'j/0@x@1',
        shard: 'j/0',
        job: 'j',
        work: { kind: 'wgsl', spec: {} },
        deadline: 5,
      },
      {
        v: 2,
        type: 'lease',
        lease: 'j/0@x@1',
        shard: 'j/0',
        job: 'j',
        kernel: { source: 'fn f() {}', entryPoint: 'f' },
        work: { kind: 'wgsl' },
        deadline: 5,
      },
      { v: 2, type: 'no-work' },
      { v: 2, type: 'extended', lease: 'j/0@x@1', deadline: 9 },
      { v: 2, type: 'ack', shard: 'j/0', outcome: 'valid' },
      { v: 2, type: 'error', code: 'lease/unknown', message: 'no' },
      { v: 2, type: 'error', re: 3, code: 'lease/unknown', message: 'no', details: { lease: 'x' } },
      { v: 2, type: 'work-available' },
      { v: 2, type: 'extended', re: 7, lease: 'j/0@x@1', deadline: 9 },
    ];
    for (const m of msgs) expect(parseHubMessage(JSON.stringify(m))).toEqual(m);
    expect(() => parseHubMessage('{"v":2,"type":"welcome","volunteerId":"me"}')).toThrow(
      /message\.volunteerId/,
    );
    expect(() => parseHubMessage('{"v":2,"type":"ack","shard":"j/0","outcome":"great"}')).toThrow(
      /message\.outcome/,
    );
    expect(() => parseHubMessage('{"v":2,"type":"ack","re":-1,"shard":"j/0","outcome":"valid"}')).toThrow(
      /message\.re/,
    );
    // A message of another version is 'protocol/version', not a field error.
    expect(() => parseHubMessage('{"v":1,"type":"no-work"}')).toThrow(
      expect.objectContaining({ code: 'protocol/version' }),
    );
  });

  it('base64url round-trips every byte and rejects other alphabets', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    for (const n of [0, 1, 2, 3, 255, 256]) {
      expect(new Uint8Array(fromBase64Url(toBase64Url(all.subarray(0, n)), 'x', 1024))).toEqual(
        all.subarray(0, n),
      );
    }
    expect(() => fromBase64Url('ab+/', 'x', 10)).toThrow(/x: expected base64url/);
    expect(() => fromBase64Url('A', 'x', 10)).toThrow(/x: expected base64url/);
    expect(() => fromBase64Url('AAAAAAAA', 'x', 3)).toThrow(/over the 3-byte limit/);
  });
});

describe('control plane: malformed input', () => {
  it('binary frames, a second hello and an oversize message get their own answers', async () => {
    const hub = await startTestHub({ maxMessageBytes: 1024 });
    try {
      const k = await TestKey.create();
      const { conn } = await authenticated(hub.url, k);
      conn.ws.send(Buffer.from([1, 2, 3]));
      expect(await conn.msg()).toMatchObject({ type: 'error', code: 'control/unsupported' });
      conn.send(hello(k));
      expect(await conn.msg()).toMatchObject({ type: 'error', code: 'control/bad-state' });
      conn.send({ v: 2, type: 'heartbeat', lease: 'x'.repeat(2000) });
      expect(await conn.next()).toMatchObject({ kind: 'close', code: 1009 });
      const again = await authenticated(hub.url, k);
      again.conn.send({ v: 2, type: 'lease-request' });
      expect((await again.conn.msg()).type).toBe('no-work');
      await again.conn.close();
    } finally {
      await hub.close();
    }
  });

  it('2,000+ malformed messages each get an error or a clean close; the store is unchanged; a good client is served after', async () => {
    const hub = await startTestHub({
      messagesPerSecond: 1e6,
      burst: 1e6,
      maxMessageBytes: 64 * 1024,
      authTimeoutMs: 120_000,
    });
    try {
      const job = hub.scheduler.submit(wgslManifest(3), Date.now());
      const holder = await authenticated(hub.url, await TestKey.create());
      holder.conn.send({ v: 2, type: 'lease-request' });
      const held = await holder.conn.msg();
      if (held.type !== 'lease') throw new Error('expected a lease');
      const valid = encodeResult(await result(held.shard, job, truth(indexOf(held.shard))));

      const rng = seededRng(42);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
      const wrong: unknown[] = [
        null,
        1,
        -1,
        1.5,
        'x',
        '',
        true,
        [],
        {},
        [1, 2],
        { a: 1 },
        'A'.repeat(300),
        2 ** 60,
      ];
      const templates: Record<string, unknown>[] = [
        hello(await TestKey.create()),
        { v: 2, id: 1, type: 'auth', signature: 'AAAA' },
        { v: 2, id: 2, type: 'lease-request' },
        { v: 2, id: 3, type: 'heartbeat', lease: held.lease },
        { v: 2, id: 4, type: 'result', result: valid },
      ];
      const mutate = (t: Record<string, unknown>): unknown => {
        const m = structuredClone(t);
        const key = pick([...Object.keys(m), 'extra']);
        if (key === 'type')
          m.type = pick(['', 'HELLO', 'lease', 'no-work', 'ack', 'error', 'x'.repeat(100), 7]);
        else if (key === 'v') m.v = pick([0, 1, '1', null, 1.0000001]);
        else if (key === 'extra') m.extra = 1;
        else if (key === 'result') {
          const r = m.result as Record<string, unknown>;
          const rk = pick([...Object.keys(r), 'outputs.data', 'outputs.shape', 'outputs.dtype', 'extra']);
          const o = (r.outputs as Record<string, unknown>[])[0]!;
          if (rk === 'outputs.data') o.data = pick(['***', 'AAAA', 12, 'A'.repeat(17)]);
          else if (rk === 'outputs.shape') o.shape = pick([[5], [-1], [1, 2, 3, 4, 5, 6, 7, 8, 9], 'x']);
          else if (rk === 'outputs.dtype') o.dtype = pick(['f64', 1, null]);
          else r[rk] = pick(wrong.filter((w) => typeof w !== typeof r[rk]));
        } else if (key === 'capabilities') {
          m.capabilities = pick([
            { maxBufferBytes: -1, features: [] },
            { features: [] },
            { maxBufferBytes: 1, features: [1] },
            'x',
          ]);
        } else {
          m[key] = pick(wrong.filter((w) => typeof w !== typeof m[key]));
        }
        return m;
      };
      const generate = (i: number): string | Buffer => {
        const t = templates[i % templates.length]!;
        switch (i % 7) {
          case 0: {
            const s = JSON.stringify(t);
            return s.slice(0, Math.floor(rng() * (s.length - 1)));
          }
          case 1:
          case 2:
            return JSON.stringify(mutate(t));
          case 3:
            return JSON.stringify({ v: 1, type: `kind-${Math.floor(rng() * 1e6)}` });
          case 4:
            return pick([
              '',
              'null',
              '[]',
              '1',
              '"hello"',
              '{',
              '{"v":1}',
              '\u0000\u0001',
              '{"v":1,"type":null}',
            ]);
          case 5:
            return i % 35 === 5
              ? 'x'.repeat(70 * 1024)
              : Buffer.from(crypto.getRandomValues(new Uint8Array(16)));
          default:
            return JSON.stringify(mutate(mutate(t) as Record<string, unknown>));
        }
      };

      const snapshot = () =>
        JSON.stringify(
          {
            jobs: hub.store.listJobs(),
            shards: hub.store.shardsOfJob(job),
            leases: hub.store.shardsOfJob(job).map((s) => hub.store.leasesOfShard(s.id)),
            results: hub.store.shardsOfJob(job).map((s) => hub.store.resultsOfShard(s.id)),
            ledger: hub.store.ledger(),
            // Credit is bigint, which JSON refuses.
          },
          (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v),
        );
      const before = snapshot();

      // Half of the messages on an authenticated connection (they reach the scheduler's checks),
      // half on a fresh one. A close is followed by a new connection.
      const fuzzKey = await TestKey.create();
      let authed = (await authenticated(hub.url, fuzzKey)).conn;
      let anon = new Conn(hub.url);
      await anon.opened;
      let errors = 0;
      let closes = 0;
      const N = 2100;
      for (let i = 0; i < N; i++) {
        const useAuthed = i % 2 === 0;
        const c = useAuthed ? authed : anon;
        const m = generate(i);
        if (typeof m === 'string' && m.length < 64 * 1024) {
          // Each generated message must really be malformed (or refused by the scheduler).
          let ok = false;
          try {
            const p = parseClientMessage(m);
            ok = p.type === 'heartbeat' || p.type === 'hello' || p.type === 'auth';
          } catch {
            ok = true;
          }
          expect(ok, m.slice(0, 200)).toBe(true);
        }
        c.send(m);
        const e = await c.next();
        if (e.kind === 'close') {
          closes++;
          expect([1008, 1009]).toContain(e.code);
          if (useAuthed) authed = (await authenticated(hub.url, fuzzKey)).conn;
          else {
            anon = new Conn(hub.url);
            await anon.opened;
          }
          continue;
        }
        errors++;
        if (e.msg.type === 'challenge') {
          // A well-formed hello on the anonymous connection: answer nothing, start over.
          await anon.close();
          anon = new Conn(hub.url);
          await anon.opened;
          continue;
        }
        expect(e.msg.type, JSON.stringify(e.msg)).toBe('error');
      }
      expect(errors + closes).toBe(N);
      expect(closes).toBeGreaterThan(0);
      expect(snapshot()).toBe(before);

      const good = await authenticated(hub.url, await TestKey.create());
      good.conn.send({ v: 2, type: 'lease-request' });
      expect((await good.conn.msg()).type).toBe('lease');
      holder.conn.send({ v: 2, type: 'result', result: valid });
      expect(await holder.conn.msg()).toMatchObject({ type: 'ack', shard: held.shard, outcome: 'pending' });
      await Promise.all([good.conn, holder.conn, authed, anon].map((c) => c.close()));
    } finally {
      await hub.close();
    }
  });
});

describe('control plane: churn', () => {
  it("a volunteer's close releases its leases at once; another takes the shard", async () => {
    const hub = await startTestHub();
    try {
      hub.scheduler.submit(wgslManifest(1, { replication: 1, maxReplicas: 2 }), Date.now());
      const c = await TestKey.create();
      const d = await TestKey.create();
      const cc = await authenticated(hub.url, c);
      const cd = await authenticated(hub.url, d);
      cc.conn.send({ v: 2, type: 'lease-request' });
      const lease = await cc.conn.msg();
      if (lease.type !== 'lease') throw new Error('expected a lease');
      cd.conn.send({ v: 2, type: 'lease-request' });
      expect((await cd.conn.msg()).type).toBe('no-work');
      await cc.conn.close();
      await until(() => hub.store.leasesOfVolunteer(c.id).length === 0);
      cd.conn.send({ v: 2, type: 'lease-request' });
      const again = await cd.conn.msg();
      expect(again).toMatchObject({ type: 'lease', shard: lease.shard });
      await cd.conn.close();
    } finally {
      await hub.close();
    }
  });

  it('the wire id is derived from the key: sha256 of the SPKI bytes', async () => {
    const k = await TestKey.create();
    const spki = await crypto.subtle.exportKey('spki', k.pair.publicKey);
    expect(k.id).toBe(await sha256Hex(spki));
  });
});

describe('control plane: all-reduce messages (issue 5)', () => {
  it('a hub without all-reduce (no swarm) answers both messages as unsupported', async () => {
    const hub = await startTestHub();
    try {
      const { conn } = await authenticated(hub.url, await TestKey.create());
      const p = `h${'1'.repeat(32)}`;
      const q = `h${'2'.repeat(32)}`;
      conn.send({
        v: 2,
        type: 'allreduce-fallback',
        round: 'r',
        group: [p, q],
        elements: 4,
        sha256: 'a'.repeat(64),
      });
      expect(await conn.msg()).toMatchObject({ type: 'error', code: 'control/unsupported' });
      conn.send({
        v: 2,
        type: 'allreduce-report',
        round: 'r',
        group: [p, q],
        contributors: [p],
        contributions: [
          { peer: p, volunteer: 'b'.repeat(64), sha256: 'c'.repeat(64), signature: 'A'.repeat(86) },
        ],
        mean: 'd'.repeat(64),
        dropped: [],
      });
      expect(await conn.msg()).toMatchObject({ type: 'error', code: 'control/unsupported' });
      await conn.close();
    } finally {
      await hub.close();
    }
  });

  it('checks the hub’s all-reduce answers, naming the bad field', () => {
    const p = `h${'1'.repeat(32)}`;
    expect(
      parseHubMessage(
        JSON.stringify({
          v: 2,
          type: 'allreduce-ack',
          round: 'r',
          flagged: [{ peer: p, verdict: 'bad-signature' }],
        }),
      ),
    ).toEqual({ v: 2, type: 'allreduce-ack', round: 'r', flagged: [{ peer: p, verdict: 'bad-signature' }] });
    expect(() =>
      parseHubMessage(
        JSON.stringify({ v: 2, type: 'allreduce-ack', round: 'r', flagged: [{ peer: p, verdict: 'fine' }] }),
      ),
    ).toThrow(/message\.flagged\[0\]\.verdict/);
    const ticket = { v: 2, type: 'allreduce-ticket', round: 'r', ticket: 'a'.repeat(64), deadline: 5 };
    expect(parseHubMessage(JSON.stringify(ticket))).toEqual(ticket);
    expect(() => parseHubMessage(JSON.stringify({ ...ticket, ticket: 'x' }))).toThrow(/message\.ticket/);
    expect(() => parseHubMessage(JSON.stringify({ ...ticket, deadline: -1 }))).toThrow(/message\.deadline/);
  });
});

describe('one connection per volunteer', () => {
  it('a newer connection of the same key replaces the older, whose leases go back at once', async () => {
    const hub = await startTestHub();
    try {
      const job = hub.scheduler.submit(wgslManifest(2), Date.now());
      const key = await TestKey.create();
      const first = await authenticated(hub.url, key);
      first.conn.send({ v: 2, type: 'lease-request' });
      const lease = await first.conn.msg();
      expect(lease.type).toBe('lease');
      expect(hub.store.leasesOfVolunteer(key.id)).toHaveLength(1);
      // The same identity again (a reconnect the hub had not noticed, or a second tab).
      const second = await authenticated(hub.url, key);
      // By the time the newer one is welcomed, the older's lease is back.
      expect(hub.store.leasesOfVolunteer(key.id)).toHaveLength(0);
      const said = await first.conn.msg();
      expect(said).toMatchObject({ type: 'error', code: 'control/replaced' });
      const closed = await first.conn.next();
      expect(closed).toMatchObject({ kind: 'close', code: 4001, reason: 'control/replaced' });
      expect(hub.cp.volunteers()).toBe(1);
      // The newer connection works, and gets the shard back.
      second.conn.send({ v: 2, type: 'lease-request' });
      const again = await second.conn.msg();
      expect(again).toMatchObject({ type: 'lease', job });
      expect(hub.store.leasesOfVolunteer(key.id)).toHaveLength(1);
      await second.conn.close();
      await until(() => hub.store.leasesOfVolunteer(key.id).length === 0);
      expect(hub.cp.volunteers()).toBe(0);
    } finally {
      await hub.close();
    }
  });
});

describe('control plane v2: correlation, pushes, versions', () => {
  it('replies name their request even when answered out of the order asked', async () => {
    const hub = await startTestHub();
    try {
      hub.scheduler.submit(wgslManifest(1), Date.now());
      const { conn } = await authenticated(hub.url, await TestKey.create());
      // Ids are the client's: any safe integer, in any order.
      conn.send({ v: 2, id: 900, type: 'lease-request' });
      conn.send({ v: 2, id: 5, type: 'heartbeat', lease: 'nope' });
      const first = await conn.next();
      const second = await conn.next();
      expect(first).toMatchObject({ kind: 'message', msg: { type: 'lease', re: 900 } });
      expect(second).toMatchObject({
        kind: 'message',
        msg: { type: 'error', code: 'lease/unknown', re: 5, details: { leaseId: 'nope' } },
      });
      // A message that does not parse still names its id when it has one.
      conn.send({ v: 2, id: 77, type: 'heartbeat' });
      expect(await conn.next()).toMatchObject({
        kind: 'message',
        msg: { type: 'error', code: 'input/invalid', re: 77, details: { path: 'message.lease' } },
      });
      await conn.close();
    } finally {
      await hub.close();
    }
  });

  it('a volunteer told no-work is pushed work-available when work arrives; a busy one is not', async () => {
    const hub = await startTestHub();
    try {
      const idle = await authenticated(hub.url, await TestKey.create());
      idle.conn.send({ v: 2, type: 'lease-request' });
      expect(await idle.conn.msg()).toMatchObject({ type: 'no-work' });
      // Not idle: never asked.
      const other = await authenticated(hub.url, await TestKey.create());
      hub.scheduler.submit(wgslManifest(1), Date.now());
      expect(hub.cp.workAvailable()).toBe(1);
      const pushed = await idle.conn.next();
      expect(pushed).toEqual({ kind: 'message', msg: { v: 2, type: 'work-available' } });
      // Told once: a second call finds no idle connection until it asks again.
      expect(hub.cp.workAvailable()).toBe(0);
      idle.conn.send({ v: 2, type: 'lease-request' });
      expect(await idle.conn.msg()).toMatchObject({ type: 'lease' });
      await expect(other.conn.next(300)).rejects.toThrow(/no message/);
      await Promise.all([idle.conn.close(), other.conn.close()]);
    } finally {
      await hub.close();
    }
  });

  it('a page of the previous version is told, in its own words, to reload; the connection stays', async () => {
    const hub = await startTestHub();
    try {
      const conn = new Conn(hub.url);
      expect(await conn.opened).toBe(true);
      const k = await TestKey.create();
      conn.send({ v: 1, type: 'hello', publicKey: k.publicKey, capabilities: CAPS });
      const raw = await new Promise<string>((resolve) =>
        conn.ws.once('message', (d) => resolve(d.toString())),
      );
      // What a version-1 page parses: v 1, a code it knows, and why in the sentence.
      expect(JSON.parse(raw)).toEqual({
        v: 1,
        type: 'error',
        code: 'bad-message',
        message: expect.stringMatching(/^protocol\/version: .*speaks control protocol 2.*Reload the page/),
      });
      expect(await conn.msg()).toMatchObject({ type: 'error', code: 'protocol/version' });
      expect(conn.isOpen).toBe(true);
      // Another version number is a version-2 error with its code.
      conn.send({ v: 3, id: 1, type: 'lease-request' });
      expect(await conn.msg()).toMatchObject({ type: 'error', code: 'protocol/version' });
      expect(conn.isOpen).toBe(true);
      await conn.close();
    } finally {
      await hub.close();
    }
  });
});

describe('control plane: a widget volunteer names the site that embedded it (issue 12)', () => {
  const SITE = 'https://news.example';
  const PAYOUT = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';
  let hub: TestHub;
  let job: string;
  beforeAll(async () => {
    hub = await startTestHub({ allowedOrigins: [ORIGIN, SITE] });
    job = hub.scheduler.submit(wgslManifest(1, { replication: 1, maxReplicas: 1 }), Date.now());
  });
  afterAll(() => hub.close());

  /** A hello with `embed`; the hub's first answer. */
  async function helloWith(embed: unknown) {
    const k = await TestKey.create();
    const conn = new Conn(hub.url, ORIGIN);
    await conn.opened;
    conn.send({ ...hello(k), embed });
    return { k, conn, reply: await conn.msg() };
  }

  it('records the site and payout with the ledger entry of each result on that connection', async () => {
    const { k, conn, reply } = await helloWith({ origin: SITE, payout: PAYOUT });
    if (reply.type !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(reply)}`);
    conn.send({ v: 2, type: 'auth', signature: await k.sign(reply.nonce) });
    expect((await conn.msg()).type).toBe('welcome');
    conn.send({ v: 2, type: 'lease-request' });
    const lease = await conn.msg();
    if (lease.type !== 'lease') throw new Error('expected a lease');
    conn.send({
      v: 2,
      type: 'result',
      result: encodeResult(await result(lease.shard, job, truth(indexOf(lease.shard)))),
    });
    expect(await conn.msg()).toMatchObject({ type: 'ack', outcome: 'valid' });
    expect(hub.store.ledger(k.id)).toEqual([
      expect.objectContaining({ shard: lease.shard, status: 'granted', site: SITE, payout: PAYOUT }),
    ]);
    await conn.close();
  });

  it.each([
    ['an origin with a path', { origin: `${SITE}/`, payout: PAYOUT }, 'message.embed.origin'],
    ['an origin of another scheme', { origin: 'ftp://news.example', payout: PAYOUT }, 'message.embed.origin'],
    ['a short payout', { origin: SITE, payout: '0x1234' }, 'message.embed.payout'],
    ['a payout without 0x', { origin: SITE, payout: 'a'.repeat(42) }, 'message.embed.payout'],
    ['a payout that is not hex', { origin: SITE, payout: `0x${'g'.repeat(40)}` }, 'message.embed.payout'],
    ['an unknown field', { origin: SITE, payout: PAYOUT, share: 1 }, 'message.embed'],
    [
      'a site the hub does not allow',
      { origin: 'https://other.example', payout: PAYOUT },
      'message.embed.origin',
    ],
  ])('refuses %s, naming the field', async (_what, embed, path) => {
    const { conn, reply } = await helloWith(embed);
    expect(reply).toMatchObject({ type: 'error', code: 'input/invalid', details: { path } });
    await conn.close();
  });
});
