// Accountable all-reduce (issue 5) with real parts: a real hub (its PeerServer, control plane and
// SQLite file), volunteers with real P-256 keys on real WebSockets, real node-datachannel peers.
// 4 peers average with signed contributions and report them; the hub verifies each signature
// against the key of the volunteer it issued the peer id to, and GET /v1/allreduce/:round shows
// the verdicts (also after reopening the SQLite file). Forged signatures, peer ids claimed for
// another volunteer and unknown peer ids are flagged. A peer that contributed the wrong tensor is
// named by its volunteer id, and the round run again without it gives the others' mean. When the
// ring cannot run, the members get the hub's mean: equal to a float64 mean within a named
// tolerance, bit-identical on every member. Bad input on the new messages and routes gets typed
// errors naming the field.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  contributionSigner,
  hubAllReduce,
  hubFallback,
  reportRound,
} from '../../src/client/allreduce-hub.ts';
import { HubSession, type SocketLike } from '../../src/client/hub-session.ts';
import { type HearthError, isHearthError } from '../../src/core/errors.ts';
import { auditRound, type RoundAudit, wrongContributions } from '../../src/hub/allreduce-audit.ts';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import { type AllReduceResult, allReduceMean, allReduceProtocol } from '../../src/net/allreduce.ts';
import type { PeerNode } from '../../src/net/peer-node.ts';
import { contributionMessage } from '../../src/protocol/allreduce.ts';
import {
  challengeBytes,
  parseClientMessage,
  type RequestBody,
  toBase64Url,
} from '../../src/protocol/control.ts';
import { CAPS } from '../hub/fixtures.ts';
import { TestKey } from '../node/control-helpers.ts';
import { ADMIN, raw, type TestHub, testHub } from '../node/hub-helpers.ts';
import { nodeAt, seededFloats, sha } from './node-peers.ts';

// Liveness settings of allreduce.node.test.ts: bounded waits on a CPU-starved machine, not timings.
const FAST = { pingIntervalMs: 250, idleTimeoutMs: 5000, stallTimeoutMs: 5000, ackTimeoutMs: 15000 };
/** |mean − float64 mean| per element: see allreduce.node.test.ts (inputs in [−1, 1), ≤ 4 summands). */
const F32_MEAN_ATOL = 1e-6;
const L = 10_007;
const EMBED = 'https://embed.example';

const bytesOf = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);

interface Member {
  readonly key: TestKey;
  readonly session: HubSession;
  readonly peer: string;
  node?: PeerNode;
}

let th: TestHub;
const members: Member[] = [];

async function member(hub: TestHub, withNode: boolean): Promise<Member> {
  const key = await TestKey.create();
  const session = await HubSession.open({
    hubUrl: hub.hub.url,
    identity: { id: key.id, publicKey: key.publicKey, sign: (n) => key.sign(n) },
    capabilities: CAPS,
    socket: (url) => new WebSocket(url, { origin: EMBED }) as unknown as SocketLike,
  });
  const peer = session.peerId;
  if (!peer) throw new Error('the hub issued no peer id');
  const m: Member = { key, session, peer };
  if (withNode) {
    m.node = await nodeAt(hub.hub.port, { id: peer, tuning: FAST, protocols: [allReduceProtocol] });
  }
  return m;
}

function expectMeanOf(got: Float32Array, inputs: Float32Array[]): void {
  expect(got).toBeInstanceOf(Float32Array);
  expect(got.length).toBe(inputs[0]!.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    let sum = 0;
    for (const x of inputs) sum += x[i]!;
    const err = Math.abs(got[i]! - sum / inputs.length);
    if (!(err <= worst)) worst = err; // NaN lands here and fails below
  }
  expect(worst).toBeLessThanOrEqual(F32_MEAN_ATOL);
}

function expectBitIdentical(means: Float32Array[]): void {
  const first = Buffer.from(bytesOf(means[0]!));
  for (const m of means.slice(1)) expect(Buffer.from(bytesOf(m)).equals(first)).toBe(true);
}

async function audit(round: string, token = ADMIN) {
  return raw(th.hub.url, {
    path: `/v1/allreduce/${encodeURIComponent(round)}`,
    headers: { authorization: `Bearer ${token}` },
  });
}

async function ringRound(round: string, group: Member[], inputs: Float32Array[]): Promise<AllReduceResult[]> {
  const ids = group.map((m) => m.peer);
  return Promise.all(
    group.map((m, i) =>
      allReduceMean(m.node!, {
        round,
        group: ids,
        tensor: inputs[i]!,
        identity: contributionSigner(m.key.id, m.key.pair.privateKey),
        timeoutMs: 90_000,
      }),
    ),
  );
}

beforeAll(async () => {
  th = await testHub({
    peer: { maxConnectionsPerAddress: 64 },
    // Long enough that every member reaches the hub on a starved machine; a round whose members
    // all uploaded is averaged at once, so this is a bound, not a wait.
    allreduce: { roundTimeoutMs: 60_000, resultTtlMs: 60_000, maxTensorBytes: 4 * L },
  });
  for (let i = 0; i < 4; i++) members.push(await member(th, true));
}, 120_000);

afterAll(async () => {
  for (const m of members) {
    m.node?.close();
    m.session.close();
  }
  await th?.dispose();
});

describe('accountable all-reduce through a real hub', () => {
  it('4 peers average with signed contributions; the hub verifies and stores every report', async () => {
    const round = 'acct/round-1';
    const inputs = members.map((_, i) => seededFloats(L, 500 + i));
    const results = await ringRound(round, members, inputs);
    for (const r of results) {
      expect(r.via).toBe('ring');
      expectMeanOf(r.mean, inputs);
      expect(r.contributors).toEqual(members.map((m) => m.peer));
      expect(r.contributions.map((c) => [c.peer, c.volunteer, c.sha256])).toEqual(
        members.map((m, i) => [m.peer, m.key.id, sha(bytesOf(inputs[i]!))]),
      );
      // Each member's signature travelled the ring: the same list on every member.
      for (const c of r.contributions) expect(c.signature).toMatch(/^[A-Za-z0-9_-]{86}$/);
      expect(r.contributions).toEqual(results[0]!.contributions);
    }
    expectBitIdentical(results.map((r) => r.mean));

    const acks = await Promise.all(
      members.map((m, i) => reportRound(m.session, round, results[i]!.contributors, results[i]!)),
    );
    for (const a of acks)
      expect(a).toEqual({ v: 2, re: expect.any(Number), type: 'allreduce-ack', round, flagged: [] });

    const res = await audit(round);
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body.toString()) as RoundAudit;
    expect(body.reports).toHaveLength(4);
    expect(new Set(body.reports.map((r) => r.reporter))).toEqual(new Set(members.map((m) => m.key.id)));
    expect(body.contributions.map((c) => [c.peer, c.valid, c.consistent, c.variants[0]!.volunteer])).toEqual(
      members.map((m) => [m.peer, true, true, m.key.id]),
    );
    expect(body.means).toEqual([{ sha256: sha(bytesOf(results[0]!.mean)), reporters: expect.any(Array) }]);

    // The reports are on the hub's SQLite file, not only in its memory.
    const file = new SqliteStore(join(th.dir, 'hub.db'));
    try {
      expect(file.allReduceReports(round)).toHaveLength(4);
    } finally {
      file.close();
    }
    // A researcher token reads it too; no token does not.
    expect((await raw(th.hub.url, { path: `/v1/allreduce/${encodeURIComponent(round)}` })).status).toBe(401);
  }, 180_000);

  it('flags a forged signature, a peer id claimed for another volunteer and an unknown peer id', async () => {
    const round = 'acct/forged';
    const [a, b, c] = members as [Member, Member, Member, Member];
    const tensorSha = 'ab'.repeat(32);
    const signed = (m: Member, text: string) =>
      crypto.subtle
        .sign({ name: 'ECDSA', hash: 'SHA-256' }, m.key.pair.privateKey, new TextEncoder().encode(text))
        .then((s) => toBase64Url(s));
    const good = await signed(a, contributionMessage(round, tensorSha));
    const unknown = `h${'0'.repeat(32)}`;
    const msg = (contributions: { peer: string; volunteer: string; sha256: string; signature: string }[]) =>
      ({
        v: 2,
        type: 'allreduce-report',
        round,
        group: [a.peer, b.peer, c.peer, unknown],
        contributors: contributions.map((x) => x.peer),
        contributions,
        mean: 'cd'.repeat(32),
        dropped: [],
      }) as RequestBody<'allreduce-report'>;
    const reply = await a.session.request(
      msg([
        // a's own, properly signed.
        { peer: a.peer, volunteer: a.key.id, sha256: tensorSha, signature: good },
        // b's peer id, but "signed" by a: a's key, a's id — the peer id was issued to b.
        { peer: b.peer, volunteer: a.key.id, sha256: tensorSha, signature: good },
        // c's peer id and volunteer id, with a signature of another message (a replayed one).
        {
          peer: c.peer,
          volunteer: c.key.id,
          sha256: tensorSha,
          signature: await signed(c, contributionMessage('other', tensorSha)),
        },
        { peer: unknown, volunteer: a.key.id, sha256: tensorSha, signature: good },
      ]),
    );
    expect(reply).toEqual({
      v: 2,
      re: expect.any(Number),
      type: 'allreduce-ack',
      round,
      flagged: [
        { peer: b.peer, verdict: 'wrong-volunteer' },
        { peer: c.peer, verdict: 'bad-signature' },
        { peer: unknown, verdict: 'unknown-peer' },
      ],
    });
    // An auth-challenge signature is no contribution signature (domain separation), and the
    // signer refuses to make one.
    const authSig = toBase64Url(
      await crypto.subtle.sign(
        { name: 'ECDSA', hash: 'SHA-256' },
        a.key.pair.privateKey,
        challengeBytes(tensorSha, a.key.id),
      ),
    );
    const r2 = await a.session.request(
      msg([{ peer: a.peer, volunteer: a.key.id, sha256: tensorSha, signature: authSig }]),
    );
    expect(r2).toMatchObject({
      type: 'allreduce-ack',
      flagged: [{ peer: a.peer, verdict: 'bad-signature' }],
    });
    await expect(
      contributionSigner(a.key.id, a.key.pair.privateKey).sign!('hearth-volunteer-auth/1\nx\ny'),
    ).rejects.toThrow(/contribution messages only/);
    // A report from a connection outside the group is refused.
    const d = members[3]!;
    await expect(
      d.session.request(msg([{ peer: a.peer, volunteer: a.key.id, sha256: tensorSha, signature: good }])),
    ).rejects.toMatchObject({
      code: 'input/invalid',
      details: { hubCode: 'input/invalid', path: 'message.group' },
    });

    const body = JSON.parse((await audit(round)).body.toString()) as RoundAudit;
    expect(body.reports).toHaveLength(1); // a's second report replaced its first
    expect(body.contributions.map((x) => [x.peer, x.valid])).toEqual([[a.peer, false]]);
  }, 60_000);

  it('names the volunteer whose contribution was wrong; the round redone without it is the others’ mean', async () => {
    const round = 'acct/round-2';
    const should = members.map((_, i) => seededFloats(L, 700 + i));
    // Member 2 contributes something else than it should have.
    const sent = should.map((x, i) => (i === 2 ? seededFloats(L, 999) : x));
    const results = await ringRound(round, members, sent);
    await Promise.all(
      members.map((m, i) => reportRound(m.session, round, results[i]!.contributors, results[i]!)),
    );

    // The later check: the hub's audit against what each member should have contributed.
    const body = JSON.parse((await audit(round)).body.toString()) as RoundAudit;
    const expected = new Map(members.map((m, i) => [m.peer, sha(bytesOf(should[i]!))]));
    const wrong = wrongContributions(body, expected);
    expect(wrong).toEqual([
      {
        peer: members[2]!.peer,
        volunteer: members[2]!.key.id,
        reported: sha(bytesOf(sent[2]!)),
        expected: sha(bytesOf(should[2]!)),
        signed: true,
      },
    ]);
    // The same check from the store directly (what a hub-side validator would run).
    expect(wrongContributions(auditRound(round, th.hub.store.allReduceReports(round)), expected)).toEqual(
      wrong,
    );

    // Redo without it: a new round id, the group minus the named peer.
    const out = new Set(wrong.map((w) => w.peer));
    const keep = members.filter((m) => !out.has(m.peer));
    const redo = await ringRound(
      `${round}/redo`,
      keep,
      keep.map((m) => should[members.indexOf(m)]!),
    );
    for (const r of redo) {
      expect(r.contributors).toEqual(keep.map((m) => m.peer));
      expectMeanOf(
        r.mean,
        keep.map((m) => should[members.indexOf(m)]!),
      );
    }
    expectBitIdentical(redo.map((r) => r.mean));
  }, 240_000);

  it('falls back to the hub’s mean when the ring cannot run: bit-identical, within tolerance, says who', async () => {
    // a has a peer node; b and c have P2P off (no PeerNode at all): a's dials all fail, so its
    // ring fails and it falls back; b and c average through the hub directly.
    const a = members[0]!;
    const b = await member(th, false);
    const c = await member(th, false);
    try {
      const round = 'acct/fallback';
      const group = [a.peer, b.peer, c.peer];
      const inputs = group.map((_, i) => seededFloats(L, 900 + i));
      const [ra, rb, rc] = await Promise.all([
        allReduceMean(a.node!, {
          round,
          group,
          tensor: inputs[0]!,
          identity: contributionSigner(a.key.id, a.key.pair.privateKey),
          timeoutMs: 30_000,
          fallback: hubFallback(a.session, th.hub.url),
        }),
        hubAllReduce(b.session, { hubUrl: th.hub.url, round, group, tensor: inputs[1]! }),
        hubAllReduce(c.session, { hubUrl: th.hub.url, round, group, tensor: inputs[2]! }),
      ]);
      expect(ra.via).toBe('hub');
      expect(ra.fallbackCause && isHearthError(ra.fallbackCause)).toBe(true);
      for (const r of [ra, rb, rc]) {
        expect(r.contributors).toEqual(group);
        expect(r.contributions).toEqual(
          group.map((peer, i) => ({
            peer,
            volunteer: [a, b, c][i]!.key.id,
            sha256: sha(bytesOf(inputs[i]!)),
          })),
        );
        expectMeanOf(r.mean, inputs);
      }
      expectBitIdentical([ra.mean, rb.mean, rc.mean]);
    } finally {
      b.session.close();
      c.session.close();
    }
  }, 180_000);

  it('bad fallback requests and uploads get typed errors naming what was wrong', async () => {
    const a = members[0]!;
    const b = members[1]!;
    const round = 'acct/bad';
    const tensor = seededFloats(64, 1);
    type Answer = { type: string; ticket?: string; code?: unknown; message?: string; details?: unknown };
    // The hub's answer: its reply, or its error reply (which the session throws) as the message.
    const ask = (m: Member, over: Record<string, unknown>) =>
      m.session
        .request({
          type: 'allreduce-fallback',
          round,
          group: [a.peer, b.peer],
          elements: 64,
          sha256: sha(bytesOf(tensor)),
          ...over,
        } as RequestBody<'allreduce-fallback'>)
        .then(
          (r): Answer => r,
          (e: HearthError): Answer => ({
            type: 'error',
            code: e.details.hubCode,
            message: e.message,
            details: e.details,
          }),
        );
    // Not a member of the group it names (403 on the hub's routes).
    expect(await ask(b, { group: [a.peer, members[2]!.peer] })).toMatchObject({
      type: 'error',
      code: 'input/invalid',
      details: { status: 403 },
    });
    // Over the hub's tensor limit.
    expect(await ask(a, { round: 'acct/big', elements: L + 1 })).toMatchObject({
      type: 'error',
      code: 'input/invalid',
      details: { status: 413 },
    });
    const t = await ask(a, {});
    expect(t).toMatchObject({ type: 'allreduce-ticket', round });
    if (t.type !== 'allreduce-ticket') return;
    // Another group, or another size, for the same round.
    expect(await ask(b, { group: [b.peer, a.peer] })).toMatchObject({
      type: 'error',
      code: 'input/invalid',
      details: { status: 409 },
    });
    expect(await ask(b, { elements: 65 })).toMatchObject({
      type: 'error',
      code: 'input/invalid',
      details: { status: 409 },
    });
    // Malformed messages: the field is named.
    for (const [over, field] of [
      [{ group: [a.peer, a.peer] }, 'message.group'],
      [{ elements: 0 }, 'message.elements'],
      [{ round: 'a\u0000b' }, 'message.round'],
      [{ round: 'é'.repeat(65) }, 'message.round'],
      [{ sha256: 'AB'.repeat(32) }, 'message.sha256'],
      [{ group: ['peer-1', 'peer-2'] }, 'message.group[0]'],
    ] as const) {
      const r = await ask(a, over);
      expect(r).toMatchObject({
        type: 'error',
        code: 'input/invalid',
        details: { path: expect.stringContaining(field.split('[')[0]!) },
      });
      expect('message' in r && r.message).toContain(field);
    }

    const path = `/v1/allreduce/${encodeURIComponent(round)}`;
    const put = (headers: Record<string, string>, body: Uint8Array) =>
      raw(th.hub.url, { method: 'PUT', path: `${path}/contributions`, headers, body });
    const auth = { authorization: `Bearer ${t.ticket}` };
    const err = (r: { body: Buffer }) =>
      (JSON.parse(r.body.toString()) as { error: { code: string } }).error.code;
    // No ticket, a ticket of nobody, a wrong method, a wrong length, the wrong bytes, too many.
    expect((await put({}, bytesOf(tensor))).status).toBe(401);
    expect((await put({ authorization: `Bearer ${'0'.repeat(64)}` }, bytesOf(tensor))).status).toBe(404);
    expect(
      (await raw(th.hub.url, { method: 'POST', path: `${path}/contributions`, headers: auth })).status,
    ).toBe(405);
    const short = await put(auth, bytesOf(tensor).slice(4));
    expect([short.status, err(short)]).toEqual([400, 'input/invalid']);
    const other = await put(auth, bytesOf(seededFloats(64, 2)));
    expect([other.status, err(other)]).toEqual([400, 'input/invalid']);
    expect((await put(auth, new Uint8Array(64 * 4 + 4))).status).toBe(413);
    expect(
      (
        await raw(th.hub.url, {
          path: `/v1/allreduce/${'x'.repeat(200)}`,
          headers: { authorization: `Bearer ${ADMIN}` },
        })
      ).status,
    ).toBe(400);
    expect((await raw(th.hub.url, { path: `${path}/nothing`, headers: auth })).status).toBe(404);
    // A signer that answers something other than a signature is refused before the round starts.
    for (const [i, sign] of [
      async () => 'not base64!',
      async () => 'A'.repeat(200),
      async () => Promise.reject(new Error('no key')),
    ].entries()) {
      const e = await allReduceMean(a.node!, {
        round: `acct/bad-signer-${i}`,
        group: [a.peer, b.peer],
        tensor,
        identity: { volunteer: a.key.id, sign },
      }).catch((x: unknown) => x);
      expect(isHearthError(e, 'input/invalid')).toBe(true);
    }
    // The right bytes are taken once.
    expect((await put(auth, bytesOf(tensor))).status).toBe(201);
    expect((await put(auth, bytesOf(tensor))).status).toBe(409);
  }, 60_000);

  it('averages what arrived by the deadline when a member never uploads, and frees the round after its TTL', async () => {
    const quick = await testHub({
      peer: { maxConnectionsPerAddress: 64 },
      allreduce: { roundTimeoutMs: 1500, resultTtlMs: 500 },
    });
    const [a, b, c] = [await member(quick, false), await member(quick, false), await member(quick, false)];
    try {
      const round = 'deadline';
      const group = [a.peer, b.peer, c.peer];
      const inputs = [seededFloats(L, 31), seededFloats(L, 32)];
      const [ra, rb] = await Promise.all([
        hubAllReduce(a.session, { hubUrl: quick.hub.url, round, group, tensor: inputs[0]! }),
        hubAllReduce(b.session, { hubUrl: quick.hub.url, round, group, tensor: inputs[1]! }),
      ]);
      for (const r of [ra, rb]) {
        expect(r.contributors).toEqual([a.peer, b.peer]);
        expectMeanOf(r.mean, inputs);
      }
      expectBitIdentical([ra.mean, rb.mean]);
      // A late member is told the round is over.
      await expect(
        hubAllReduce(c.session, { hubUrl: quick.hub.url, round, group, tensor: inputs[0]! }),
      ).rejects.toThrow(/already averaged/);
      // After the TTL the round is gone, with its tensors.
      await new Promise((r) => setTimeout(r, 1500));
      const t = await c.session.request({
        type: 'allreduce-fallback',
        round,
        group,
        elements: L,
        sha256: sha(bytesOf(inputs[0]!)),
      });
      expect(t.type).toBe('allreduce-ticket'); // a new round of that name may start
    } finally {
      for (const m of [a, b, c]) m.session.close();
      await quick.dispose();
    }
  }, 60_000);
});

describe('allreduce-report validation', () => {
  const peer = (i: number) => `h${i.toString(16).padStart(32, '0')}`;
  const report = {
    v: 2,
    id: 1,
    type: 'allreduce-report',
    round: 'r',
    group: [peer(1), peer(2)],
    contributors: [peer(1), peer(2)],
    contributions: [1, 2].map((i) => ({
      peer: peer(i),
      volunteer: 'a'.repeat(64),
      sha256: 'b'.repeat(64),
      signature: 'A'.repeat(86),
    })),
    mean: 'c'.repeat(64),
    dropped: [],
  };
  it('accepts a well-formed report', () => {
    expect(parseClientMessage(JSON.stringify(report))).toEqual(report);
  });
  it.each([
    [{ group: [peer(1)] }, 'message.group'],
    [{ contributors: [peer(1), peer(3)] }, 'message.contributors[1]'],
    [{ contributors: [peer(2), peer(1)] }, 'message.contributions[0].peer'],
    [{ contributions: report.contributions.slice(1) }, 'message.contributions'],
    [{ dropped: [peer(9)] }, 'message.dropped[0]'],
    [{ mean: 'x' }, 'message.mean'],
    [{ extra: 1 }, 'unknown field "extra"'],
    [
      { contributions: [{ ...report.contributions[0], signature: '!'.repeat(10) }, report.contributions[1]] },
      'message.contributions[0].signature',
    ],
    [
      {
        contributions: [{ ...report.contributions[0], signature: 'A'.repeat(129) }, report.contributions[1]],
      },
      'message.contributions[0].signature',
    ],
    [
      { contributions: [{ ...report.contributions[0], volunteer: 'me' }, report.contributions[1]] },
      'message.contributions[0].volunteer',
    ],
    [{ group: Array.from({ length: 1025 }, (_, i) => peer(i)) }, 'message.group'],
  ])('refuses %j naming %s', (over, field) => {
    let caught: unknown;
    try {
      parseClientMessage(JSON.stringify({ ...report, ...over }));
    } catch (e) {
      caught = e;
    }
    expect(isHearthError(caught, 'input/invalid')).toBe(true);
    expect((caught as Error).message).toContain(field);
  });
});
