// The swarm and all-reduce across hubs on one PostgreSQL database (issue 15, past one hub), with
// real parts: two hubs (real PeerServers, control planes, PostgresStores on the run's PostgreSQL),
// volunteers with real P-256 keys on real WebSockets, real node-datachannel peers, each peer on
// its own hub's PeerServer. A volunteer on hub B is told of a holder on hub A and fetches the blob
// from it peer to peer (the signalling relayed between the hubs by NOTIFY; no hub has the blob).
// Four members, two per hub, average bit-identically on a ring and report to their own hubs; the
// hubs verify every signature, the other hub's members' too (no `unknown-peer`). A hub SIGKILLed
// leaves the holders others are told of within a bound.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { contributionSigner, hubAllReduce, reportRound } from '../../src/client/allreduce-hub.ts';
import { HubSession, type SocketLike } from '../../src/client/hub-session.ts';
import type { RoundAudit } from '../../src/hub/allreduce-audit.ts';
import type { PgPeers } from '../../src/hub/pg-peers.ts';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { allReduceMean, allReduceProtocol } from '../../src/net/allreduce.ts';
import type { PeerNode } from '../../src/net/peer-node.ts';
import { type Hub, startHub } from '../../src/node/hub-server.ts';
import { CAPS } from '../hub/fixtures.ts';
import { TestKey } from '../node/control-helpers.ts';
import { ADMIN, raw } from '../node/hub-helpers.ts';
import { freshDatabase } from '../node/pg-helpers.ts';
import { mapSource, nodeAt, seededBytes, seededFloats, sha } from './node-peers.ts';
import { KILLED_HOLDERS_GONE_MS, XHUB_PEERS } from './xhub-helpers.ts';

const FAST = { pingIntervalMs: 250, idleTimeoutMs: 5000, stallTimeoutMs: 5000, ackTimeoutMs: 15000 };
const EMBED = 'https://embed.example';
const L = 10_007;
const bytesOf = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);

const dir = mkdtempSync(join(tmpdir(), 'hearth-xhub-'));
let url: string;
const hubs: Hub[] = [];
const closers: (() => void)[] = [];
const children: ChildProcess[] = [];

interface Member {
  readonly key: TestKey;
  readonly session: HubSession;
  readonly peer: string;
  readonly node: PeerNode;
}

async function member(hubUrl: string, port: number, blobs: Uint8Array[] = []): Promise<Member> {
  const key = await TestKey.create();
  const session = await HubSession.open({
    hubUrl,
    identity: { id: key.id, publicKey: key.publicKey, sign: (n) => key.sign(n) },
    capabilities: CAPS,
    socket: (u) => new WebSocket(u, { origin: EMBED }) as unknown as SocketLike,
  });
  const peer = session.peerId;
  if (!peer) throw new Error('the hub issued no peer id');
  const node = await nodeAt(port, {
    id: peer,
    tuning: FAST,
    protocols: [allReduceProtocol],
    source: mapSource(...blobs),
  });
  closers.push(() => {
    node.close();
    session.close();
  });
  return { key, session, peer, node };
}

async function startPgHub(tag: string): Promise<Hub> {
  const hub = await startHub({
    store: new PostgresStore(url, { peers: XHUB_PEERS }),
    blobDir: join(dir, 'blobs'),
    maxBlobBytes: 4096,
    allowedOrigins: [EMBED],
    adminToken: ADMIN,
    pagesDir: join(dir, `no-pages-${tag}`),
    peer: { maxConnectionsPerAddress: 64, requireIssuedIds: true },
    allreduce: { roundTimeoutMs: 60_000, resultTtlMs: 60_000, maxTensorBytes: 4 * L },
  });
  hubs.push(hub);
  return hub;
}

/** `hearth hub` on the same database in a child process (xhub-child.ts), to be SIGKILLed. */
function spawnChildHub(): Promise<{ child: ChildProcess; url: string; port: number }> {
  const child = spawn(process.execPath, ['scripts/run-ts.mjs', 'test/net/xhub-child.ts', url, dir], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child hub did not start: ${err}`)), 30_000);
    child.stdout?.on('data', (c: Buffer) => {
      out += c;
      const m = /listening on (\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve({ child, url: m[1], port: Number(new URL(m[1]).port) });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child hub exited (${code}): ${err}`));
    });
  });
}

/** A volunteer's control connection alone (its peer id issued, no PeerNode opened). */
async function session(hubUrl: string): Promise<{ session: HubSession; peer: string }> {
  const key = await TestKey.create();
  const s = await HubSession.open({
    hubUrl,
    identity: { id: key.id, publicKey: key.publicKey, sign: (n) => key.sign(n) },
    capabilities: CAPS,
    socket: (u) => new WebSocket(u, { origin: EMBED }) as unknown as SocketLike,
  });
  const peer = s.peerId;
  if (!peer) throw new Error('the hub issued no peer id');
  closers.push(() => s.close());
  return { session: s, peer };
}

/** A bare PeerJS signalling socket (what PeerJS opens), with every message it receives. */
async function signalling(port: number, id: string): Promise<{ ws: WebSocket; got: { type: string }[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/p2p/peerjs?key=hearth&id=${id}&token=t${id}`);
  const got: { type: string }[] = [];
  ws.on('message', (d) => got.push(JSON.parse(d.toString()) as { type: string }));
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', () => {
      if (got.some((m) => m.type === 'OPEN')) resolve();
    });
  });
  closers.push(() => ws.close());
  return { ws, got };
}

async function holders(m: Member, blob: string): Promise<string[]> {
  const r = await m.session.request({ type: 'holders-request', sha256: blob });
  return [...r.peers];
}

beforeAll(async () => {
  url = await freshDatabase('xhub');
  await startPgHub('a');
  await startPgHub('b');
}, 60_000);

afterAll(async () => {
  for (const c of closers.splice(0)) c();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const h of hubs.splice(0)) await h.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the swarm across two hubs on one PostgreSQL', () => {
  it('a volunteer on hub B is told of a holder on hub A and fetches the blob from it, peer to peer', async () => {
    const [a, b] = hubs as [Hub, Hub];
    // Several pieces (pieces are at most 262,132 bytes), held by nobody but the peer on hub A.
    const blob = seededBytes(700_000, 15);
    const blobSha = sha(blob);
    const holder = await member(a.url, a.port, [blob]);
    const asker = await member(b.url, b.port);
    expect(await holder.session.request({ type: 'announce', blobs: [blobSha] })).toMatchObject({
      type: 'announced',
      count: 1,
    });
    // Hub B's swarm has no volunteer holding it: the holder comes from the directory.
    expect(b.swarm?.holders(blobSha, 16)).toEqual([holder.peer]);
    expect(await holders(asker, blobSha)).toEqual([holder.peer]);
    // Not a holder of its own, nor told of itself.
    expect(await holders(holder, blobSha)).toEqual([]);

    const { bytes, attempts } = await asker.node.fetchBlob([holder.peer], blobSha);
    expect(Buffer.from(bytes).equals(Buffer.from(blob))).toBe(true);
    expect(attempts.map((x) => [x.peer, x.error])).toEqual([[holder.peer, undefined]]);
    expect(attempts[0]?.pieces).toBeGreaterThan(1);
    // The bytes came from the peer: neither hub served a byte, and neither has the blob.
    expect(a.stats.blobBytesServed).toBe(0);
    expect(b.stats.blobBytesServed).toBe(0);
    expect((await fetch(`${a.url}/v1/blobs/${blobSha}`)).status).toBe(404);
    // The dial's signalling crossed the database, both ways.
    expect(b.relay?.counts.out).toBeGreaterThan(0);
    expect(a.relay?.counts.in).toBeGreaterThan(0);
    expect(a.relay?.counts.out).toBeGreaterThan(0);
    expect(b.relay?.counts.in).toBeGreaterThan(0);

    // The holder leaves: nobody is told of it any more.
    holder.session.close();
    await waitUntil(async () => (await holders(asker, blobSha)).length === 0, 10_000, 'holder gone');
  }, 120_000);

  // One retry: this ring stalled once in about a dozen runs at load ~7 before its first message
  // (no member dropped, relay counters normal); not understood yet. Each attempt has new members
  // and its own round id, so a retry starts clean; a second failure still fails the suite.
  it('four members, two on each hub, average bit-identically; both hubs verify every contribution', {
    retry: 1,
    timeout: 180_000,
  }, async () => {
    const [a, b] = hubs as [Hub, Hub];
    const members = [
      await member(a.url, a.port),
      await member(b.url, b.port),
      await member(a.url, a.port),
      await member(b.url, b.port),
    ];
    const round = `xhub/round-${randomBytes(4).toString('hex')}`;
    const ids = members.map((m) => m.peer);
    const inputs = members.map((_, i) => seededFloats(L, 700 + i));
    const relayed = () => JSON.stringify(hubs.map((h) => h.relay?.counts));
    const results = await Promise.all(
      members.map((m, i) =>
        allReduceMean(m.node, {
          round,
          group: ids,
          tensor: inputs[i] as Float32Array,
          identity: contributionSigner(m.key.id, m.key.pair.privateKey),
          timeoutMs: 90_000,
        }).catch((e: unknown) => {
          throw new Error(`member ${i}: ${String(e)}; relay counts ${relayed()}`);
        }),
      ),
    );
    const first = results[0];
    if (!first) throw new Error('no result');
    for (const r of results) {
      expect(r.via).toBe('ring');
      expect(r.contributors).toEqual(ids);
      expect(Buffer.from(bytesOf(r.mean)).equals(Buffer.from(bytesOf(first.mean)))).toBe(true);
    }
    // Against a float64 mean, as allreduce-hub.node.test.ts (inputs in [−1, 1), 4 summands).
    let worst = 0;
    for (let i = 0; i < L; i++) {
      let s = 0;
      for (const x of inputs) s += x[i] as number;
      const e = Math.abs((first.mean[i] as number) - s / inputs.length);
      if (!(e <= worst)) worst = e;
    }
    expect(worst).toBeLessThanOrEqual(1e-6);

    // Each member reports to its own hub; each hub verifies the other hub's members too.
    const acks = await Promise.all(
      members.map((m, i) => reportRound(m.session, round, ids, results[i] ?? first)),
    );
    for (const ack of acks) expect(ack).toMatchObject({ type: 'allreduce-ack', round, flagged: [] });
    for (const hub of [a, b]) {
      const res = await raw(hub.url, {
        path: `/v1/allreduce/${encodeURIComponent(round)}`,
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      expect(res.status).toBe(200);
      const audit = JSON.parse(res.body.toString()) as RoundAudit;
      // The reports are in the shared database: every hub shows all four.
      expect(audit.reports).toHaveLength(4);
      expect(audit.contributions.map((c) => [c.peer, c.valid, c.variants[0]?.volunteer])).toEqual(
        members.map((m) => [m.peer, true, m.key.id]),
      );
      expect(audit.reports.flatMap((r) => r.contributions.map((c) => c.verdict))).toEqual(
        Array(16).fill('valid'),
      );
    }
    // A peer id claimed for another volunteer is still flagged across hubs.
    const [m0, m1] = members as [Member, Member];
    const lie = await m0.session.request({
      type: 'allreduce-report',
      round: 'xhub/lie',
      group: [m0.peer, m1.peer],
      contributors: [m1.peer],
      contributions: [
        { peer: m1.peer, volunteer: m0.key.id, sha256: 'ab'.repeat(32), signature: 'A'.repeat(86) },
      ],
      mean: 'cd'.repeat(32),
      dropped: [],
    });
    expect(lie).toMatchObject({ flagged: [{ peer: m1.peer, verdict: 'wrong-volunteer' }] });
  });

  it('averaging through the hubs: four members, two on each hub, get one mean from the database', async () => {
    const [a, b] = hubs as [Hub, Hub];
    const members = [
      await member(a.url, a.port),
      await member(b.url, b.port),
      await member(a.url, a.port),
      await member(b.url, b.port),
    ];
    const hubOf = [a, b, a, b];
    const round = 'xhub/fallback-1';
    const group = members.map((m) => m.peer);
    const inputs = members.map((_, i) => seededFloats(L, 900 + i));
    const results = await Promise.all(
      members.map((m, i) =>
        hubAllReduce(m.session, {
          hubUrl: (hubOf[i] as Hub).url,
          round,
          group,
          tensor: inputs[i] as Float32Array,
        }),
      ),
    );
    const first = results[0];
    if (!first) throw new Error('no result');
    for (const r of results) {
      // Every member's tensor is in it, whichever hub it went to.
      expect(r.contributors).toEqual(group);
      expect(r.contributions).toEqual(
        members.map((m, i) => ({
          peer: m.peer,
          volunteer: m.key.id,
          sha256: sha(bytesOf(inputs[i] as Float32Array)),
        })),
      );
      expect(Buffer.from(bytesOf(r.mean)).equals(Buffer.from(bytesOf(first.mean)))).toBe(true);
    }
    let worst = 0;
    for (let i = 0; i < L; i++) {
      let s = 0;
      for (const x of inputs) s += x[i] as number;
      const e = Math.abs((first.mean[i] as number) - s / inputs.length);
      if (!(e <= worst)) worst = e;
    }
    expect(worst).toBeLessThanOrEqual(1e-6);
    // A member of another group cannot join it under another group, on either hub.
    await expect(
      (members[1] as Member).session.request({
        type: 'allreduce-fallback',
        round: 'xhub/fallback-1',
        group: [...group].reverse(),
        elements: L,
        sha256: 'ab'.repeat(32),
      }),
    ).rejects.toThrow(/already averaged|another group/);
  }, 180_000);

  it('signalling for a peer not yet on its PeerServer is held until it opens; a flood is cut at the rate', async () => {
    const [a, b] = hubs as [Hub, Hub];
    const x = await session(a.url);
    const y = await session(b.url);
    // y's signalling socket on hub B; x has its peer id from hub A but has not opened a socket yet.
    const ys = await signalling(b.port, y.peer);
    const before = a.relay?.counts.in ?? 0;
    const sentBefore = b.relay?.counts.out ?? 0;
    // The source is the socket's own id, whatever the message claims.
    ys.ws.send(JSON.stringify({ type: 'OFFER', src: 'someone-else', dst: x.peer, payload: { sdp: 'v=0' } }));
    await waitUntil(async () => (b.relay?.counts.out ?? 0) > sentBefore, 5000, 'the relay out of B');
    // Arrived at A by now (NOTIFY takes milliseconds), and held: nobody to deliver it to yet.
    await new Promise((r) => setTimeout(r, 500));
    expect(a.relay?.counts.in).toBe(before);
    const xs = await signalling(a.port, x.peer);
    await waitUntil(async () => xs.got.some((m) => m.type === 'OFFER'), 5000, 'the held OFFER');
    expect(xs.got.find((m) => m.type === 'OFFER')).toEqual({
      type: 'OFFER',
      src: y.peer,
      dst: x.peer,
      payload: { sdp: 'v=0' },
    });
    expect((a.relay?.counts.in ?? 0) - before).toBe(1);

    // 1,000 candidates at once: at most the burst (2 × 50) and what the rate refills go out.
    const out0 = b.relay?.counts.out ?? 0;
    const t0 = Date.now();
    for (let i = 0; i < 1000; i++) {
      ys.ws.send(JSON.stringify({ type: 'CANDIDATE', dst: x.peer, payload: { candidate: `c${i}` } }));
    }
    await waitUntil(async () => (b.relay?.counts.dropped ?? 0) > 0, 5000, 'drops');
    await new Promise((r) => setTimeout(r, 300));
    const sent = (b.relay?.counts.out ?? 0) - out0;
    expect(sent).toBeGreaterThanOrEqual(100);
    expect(sent).toBeLessThanOrEqual(100 + Math.ceil(((Date.now() - t0) / 1000) * 50) + 1);
    ys.ws.close();
    xs.ws.close();
  }, 60_000);

  it('a hub the others took for dead (its heartbeat lapsed, its rows swept) lists its peers again on its next beat', async () => {
    const [a, b] = hubs as [Hub, Hub];
    const dirA = a.store.peers as PgPeers;
    const blob = seededBytes(3000, 17);
    const blobSha = sha(blob);
    const holder = await member(a.url, a.port, [blob]);
    const asker = await member(b.url, b.port);
    await holder.session.request({ type: 'announce', blobs: [blobSha] });
    expect(await holders(asker, blobSha)).toEqual([holder.peer]);
    const revived = dirA.revivals;
    // What a database outage longer than the lease leaves: hub A's heartbeat stale, and another
    // hub's sweep of it done (here at once, so hub A's next beat cannot come between).
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      // One statement, not a transaction over awaits: the hubs run on this thread, and a hub that
      // waits (synchronously) behind a lock this client holds would stop the client too.
      await sql`WITH mark AS (
          UPDATE hub_alive SET seen_at = now() - interval '1 hour', swept = true WHERE hub = ${dirA.hub} RETURNING hub),
        gone AS (DELETE FROM blob_holders WHERE hub = ${dirA.hub} RETURNING peer),
        closed AS (UPDATE peer_ids SET closed_at = now() WHERE hub = ${dirA.hub} AND closed_at IS NULL RETURNING peer)
        SELECT (SELECT count(*) FROM mark) AS marked, (SELECT count(*) FROM gone) AS gone`;
      await waitUntil(async () => dirA.revivals > revived, 5000, 'hub A to find itself swept').catch(
        async (e: unknown) => {
          const rows = await sql`SELECT hub, seen_at, swept, now() AS now FROM hub_alive`;
          throw new Error(`${String(e)}; hub A ${dirA.hub}; hub_alive ${JSON.stringify(rows)}`);
        },
      );
      // Written again: the peer open, its blob listed, and the other hub names it (past its cache).
      await waitUntil(
        async () => {
          const [row] = await sql`SELECT closed_at IS NULL AS open, public_key IS NOT NULL AS keyed,
              (SELECT count(*)::int FROM blob_holders WHERE peer = ${holder.peer}) AS blobs
            FROM peer_ids WHERE peer = ${holder.peer}`;
          return row?.open === true && row.keyed === true && row.blobs === 1;
        },
        5000,
        'the rows written again',
      );
      await new Promise((r) => setTimeout(r, XHUB_PEERS.holdersCacheMs + 100));
      expect(await holders(asker, blobSha)).toEqual([holder.peer]);
    } finally {
      await sql.end();
    }
  }, 60_000);

  it("a hub SIGKILLed: its peers leave the holders the other hub names, within the lease's bound", async () => {
    const b = hubs[1] as Hub;
    const killed = await spawnChildHub();
    const blob = seededBytes(5000, 16);
    const blobSha = sha(blob);
    const holder = await member(killed.url, killed.port, [blob]);
    const asker = await member(b.url, b.port);
    await holder.session.request({ type: 'announce', blobs: [blobSha] });
    await waitUntil(
      async () => (await holders(asker, blobSha)).includes(holder.peer),
      10_000,
      'holder named',
    );

    killed.child.kill('SIGKILL');
    await new Promise((resolve) => killed.child.once('exit', resolve));
    const killedAt = Date.now();
    // Polled every 100 ms; the bound is the lease, the cache and a heartbeat, plus 3 s for this
    // test's own requests on a machine shared with other work.
    await waitUntil(
      async () => !(await holders(asker, blobSha)).includes(holder.peer),
      KILLED_HOLDERS_GONE_MS + 3000,
      "the killed hub's holder to be gone",
    );
    const took = Date.now() - killedAt;
    expect(took).toBeLessThanOrEqual(KILLED_HOLDERS_GONE_MS + 3000);
    // And a live hub's sweep removes its rows: nothing of the dead hub's holdings is left.
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await waitUntil(
        async () =>
          (await sql`SELECT count(*)::int AS n FROM blob_holders WHERE peer = ${holder.peer}`)[0]?.n === 0,
        10_000,
        'the sweep',
      );
      const [row] =
        await sql`SELECT closed_at IS NOT NULL AS closed FROM peer_ids WHERE peer = ${holder.peer}`;
      expect(row?.closed).toBe(true);
    } finally {
      await sql.end();
    }
  }, 120_000);
});

async function waitUntil(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
