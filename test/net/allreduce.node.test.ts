// Ring all-reduce between real Node peers (node-datachannel WebRTC, PeerJS) brokered by a real
// hub's PeerServer: 4 and 3 peers average seeded tensors whose length does not divide by the
// group; every result matches a float64 oracle within a named tolerance and all are
// bit-identical; the reported hashes are the inputs' SHA-256; each peer sends ≈ 2(N−1)/N of the
// tensor (a byte count, not a timing); a peer closed mid-round, or in another process silent or
// SIGKILLed, leaves the other three to finish among themselves; a peer that sends a malformed
// chunk is dropped with net/protocol.
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type HearthError, isHearthError } from '../../src/core/errors.ts';
import { type AllReduceResult, allReduceMean, allReduceProtocol } from '../../src/net/allreduce.ts';
import type { PeerNode } from '../../src/net/peer-node.ts';
import { encodeAllReduce } from '../../src/protocol/allreduce.ts';
import { type TestHub, testHub } from '../node/hub-helpers.ts';
import { nodeAt, sha } from './node-peers.ts';

// Short liveness settings so a dead peer shows within ~2 s; bounded waits, not timings.
// Short enough to keep the tests quick, long enough that a CPU-starved CI machine (SwiftShader and
// Chromium on the same 2 cores) does not read a slow peer as a dead one.
const FAST = { pingIntervalMs: 250, idleTimeoutMs: 5000, stallTimeoutMs: 5000, ackTimeoutMs: 15000 };
/**
 * |mean − float64 mean| allowed per element. Inputs are in [−1, 1): partial sums stay below 4 in
 * magnitude, where an f32 ulp is 4.8e-7; three roundings of the sum and one of the quotient stay
 * well under 1e-6, while a missing or doubled contribution is off by ~0.1 on average.
 */
const F32_MEAN_ATOL = 1e-6;
/** For peers in other processes (see the SIGKILL test). */
const SLOWER = { pingIntervalMs: 500, idleTimeoutMs: 6000, stallTimeoutMs: 6000, ackTimeoutMs: 10_000 };
const L = 100_003; // not divisible by 3 or 4: chunks differ in length

let th: TestHub;
let port: number;
const closers: (() => void)[] = [];

async function peers(n: number, prefix: string, tuning: typeof FAST = FAST): Promise<PeerNode[]> {
  const out: PeerNode[] = [];
  for (let i = 0; i < n; i++) {
    const node = await nodeAt(port, { id: `${prefix}-${i}`, tuning, protocols: [allReduceProtocol] });
    closers.push(() => node.close());
    out.push(node);
  }
  return out;
}

/** Seeded uniform floats in [−1, 1) (mulberry32), so each peer's input is reproducible. */
function seededFloats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * 2 - 1;
  }
  return out;
}

const bytesOf = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);

function expectMeanOf(got: Float32Array, inputs: Float32Array[]): void {
  expect(got).toBeInstanceOf(Float32Array);
  expect(got.length).toBe(inputs[0]?.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < got.length; i++) {
    let sum = 0;
    for (const x of inputs) sum += x[i]!;
    const err = Math.abs(got[i]! - sum / inputs.length);
    // NaN fails here too: NaN > worst is false, so test the negation.
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  expect(worst, `worst error at element ${at}`).toBeLessThanOrEqual(F32_MEAN_ATOL);
}

function expectBitIdentical(results: AllReduceResult[]): void {
  const [head, ...rest] = results;
  if (!head) throw new Error('expectBitIdentical needs at least one result');
  const first = Buffer.from(bytesOf(head.mean));
  for (const r of rest) expect(Buffer.from(bytesOf(r.mean)).equals(first)).toBe(true);
}

/** The payload bytes a peer at ring rank r must send: every chunk but r+1 (reduce), but r+2 (gather). */
function payloadBytes(n: number, r: number): number {
  const len = (k: number) => Math.floor(L / n) + (((k % n) + n) % n < L % n ? 1 : 0);
  return 4 * (2 * L - len(r + 1) - len(r + 2));
}

beforeAll(async () => {
  th = await testHub({ peer: { maxConnectionsPerAddress: 64 } });
  port = th.hub.port;
});
afterEach(() => {
  for (const c of closers.splice(0).reverse()) c();
});
afterAll(async () => {
  await th?.dispose();
});

describe('ring all-reduce between Node peers through the hub’s PeerServer', () => {
  it('averages 4 tensors of 100,003 floats: oracle, bit-identical, hashes, ≈2(N−1)/N bytes sent', async () => {
    const nodes = await peers(4, 'ar4');
    const group = nodes.map((n) => n.id);
    const inputs = nodes.map((_, i) => seededFloats(L, 100 + i));
    const results = await Promise.all(
      nodes.map((node, i) =>
        allReduceMean(node, { round: 'r4', group, tensor: inputs[i]!, timeoutMs: 60_000 }),
      ),
    );
    for (const r of results) {
      expectMeanOf(r.mean, inputs);
      expect(r.contributors).toEqual(group);
      expect(r.contributions).toEqual(group.map((peer, i) => ({ peer, sha256: sha(bytesOf(inputs[i]!)) })));
      expect(r.dropped).toEqual([]);
      expect(r.attempts).toBe(1);
    }
    expectBitIdentical(results);
    // The inputs are untouched.
    expect(sha(bytesOf(inputs[0]!))).toBe(sha(bytesOf(seededFloats(L, 100))));

    const ideal = ((2 * (4 - 1)) / 4) * L * 4;
    results.forEach((r, rank) => {
      // Every payload byte went over the wire (so the counter counts), and little else did.
      expect(r.bytesSent).toBeGreaterThanOrEqual(payloadBytes(4, rank));
      expect(r.bytesReceived).toBeGreaterThanOrEqual(payloadBytes(4, rank - 1));
      const efficiency = ideal / r.bytesSent;
      expect(efficiency).toBeGreaterThanOrEqual(0.9);
      process.stdout.write(
        `peer ${rank}: sent ${r.bytesSent} B, ideal ${ideal} B, efficiency ${efficiency.toFixed(4)}\n`,
      );
    });
  }, 120_000);

  it('averages 3 tensors with volunteer identities, and the same inputs give the same bits again', async () => {
    const nodes = await peers(3, 'ar3');
    const group = nodes.map((n) => n.id);
    const inputs = nodes.map((_, i) => seededFloats(L, 300 + i));
    const round = (id: string) =>
      Promise.all(
        nodes.map((node, i) =>
          allReduceMean(node, { round: id, group, tensor: inputs[i]!, identity: { volunteer: `vol-${i}` } }),
        ),
      );
    const first = await round('r3-a');
    for (const r of first) {
      expectMeanOf(r.mean, inputs);
      expect(r.contributions).toEqual(
        group.map((peer, i) => ({ peer, sha256: sha(bytesOf(inputs[i]!)), volunteer: `vol-${i}` })),
      );
      expect((((2 * 2) / 3) * L * 4) / r.bytesSent).toBeGreaterThanOrEqual(0.9);
    }
    expectBitIdentical(first);
    const again = await round('r3-b');
    expectBitIdentical([...first, ...again]);
    // A round id is used once: a repeat is refused rather than mixed with the old round's frames.
    const err = await allReduceMean(nodes[0]!, { round: 'r3-a', group, tensor: inputs[0]! }).catch((e) => e);
    expect(isHearthError(err, 'input/invalid')).toBe(true);
  }, 120_000);

  it('finishes among the other 3 when a peer is closed mid-round', async () => {
    const nodes = await peers(4, 'arkill');
    const group = nodes.map((n) => n.id);
    const inputs = nodes.map((_, i) => seededFloats(L, 500 + i));
    const victim = nodes[2];
    let killedAt: string | undefined;
    const runs = nodes.map((node, i) =>
      allReduceMean(node, {
        round: 'rkill',
        group,
        tensor: inputs[i]!,
        timeoutMs: 60_000,
        ...(node === victim
          ? {
              onStep: (p) => {
                // Mid-round: after its first reduce-scatter chunk went out and one came in.
                if (p.phase === 'reduce' && p.step === 1 && !killedAt) {
                  killedAt = `${p.phase} ${p.step}`;
                  victim.close();
                }
              },
            }
          : {}),
      }),
    );
    const victimErr = await runs[2]!.catch((e) => e);
    expect(killedAt).toBe('reduce 1');
    expect(isHearthError(victimErr)).toBe(true);
    expect((victimErr as HearthError).code).toMatch(/^net\//);

    const survivors = await Promise.all([runs[0]!, runs[1]!, runs[3]!]);
    const alive = [group[0], group[1], group[3]];
    for (const r of survivors) {
      expect(r.contributors).toEqual(alive);
      expect(r.contributions.map((c) => c.peer)).toEqual(alive);
      expect(r.contributions[2]?.sha256).toBe(sha(bytesOf(inputs[3]!)));
      expect(r.dropped.map((d) => d.peer)).toEqual([group[2]]); // victim.id is null once closed
      expect(r.dropped[0]?.error.code).toMatch(/^net\/(unreachable|timeout)$/);
      expect(r.attempts).toBeGreaterThanOrEqual(2);
      expectMeanOf(r.mean, [inputs[0]!, inputs[1]!, inputs[3]!]);
    }
    expectBitIdentical(survivors);
  }, 120_000);

  it('finishes among the other 3 when a peer in another process goes silent or is SIGKILLed (heartbeat)', async () => {
    // A second process that starts tsx on a loaded 2-core machine can miss pings for 2 s, and
    // would rightly be dropped before the kill: this test allows 6 s of silence.
    const nodes = await peers(3, 'arsig', SLOWER);
    const childId = 'arsig-child';
    // Group order a, b, child, c: the child sits between b and c in the ring.
    const group = [nodes[0]!.id, nodes[1]!.id, childId, nodes[2]!.id];
    const child: ChildProcess = spawn(
      process.execPath,
      [
        'scripts/run-ts.mjs',
        'test/net/allreduce-child.ts',
        String(port),
        childId,
        'rsig',
        String(L),
        group.join(','),
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    closers.push(() => child.kill('SIGKILL'));
    let out = '';
    let killedMidRound = false;
    child.stdout?.on('data', (d: Buffer) => {
      out += d;
      if (out.includes(`ready ${childId}`) && !out.includes('go-sent')) {
        out += 'go-sent\n';
        child.stdin?.write('go\n');
      }
      if (out.includes('step reduce 1') && !killedMidRound) {
        killedMidRound = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr?.on('data', (d: Buffer) => (out += d));
    // The child starts when it reads "go"; the others start now and wait for it.
    const inputs = nodes.map((_, i) => seededFloats(L, 900 + i));
    const runs = nodes.map((node, i) =>
      allReduceMean(node, { round: 'rsig', group, tensor: inputs[i]!, timeoutMs: 60_000 }),
    );
    const results = await Promise.all(runs);
    const alive = nodes.map((n) => n.id);
    for (const r of results) {
      expect(r.contributors).toEqual(alive);
      expect(r.dropped.map((d) => d.peer)).toEqual([childId]);
      // The child's tensor is all 1000s: a mean that still held it would be off by ~250.
      expectMeanOf(r.mean, inputs);
    }
    // b sends to the child: its link's heartbeat (or ICE) noticed the death, nobody told it.
    expect(results[1]?.dropped[0]?.error.code).toMatch(/^net\/(timeout|unreachable)$/);
    expect(results[1]?.dropped[0]?.error.details.reportedBy).toBeUndefined();
    expectBitIdentical(results);
    // On a loaded machine the child's first link sometimes never opens on its side (a lost SCTP
    // INIT) and b's heartbeat drops it before it reaches step 1; the round is right either way.
    child.kill('SIGKILL');
    process.stdout.write(
      `child ${killedMidRound ? 'SIGKILLed at reduce step 1' : 'dropped before the kill'}: ${JSON.stringify(out)}\n`,
    );
  }, 120_000);

  it('drops a peer that sends a malformed chunk (net/protocol) and finishes without it', async () => {
    const nodes = await peers(4, 'arbad');
    const group = nodes.map((n) => n.id);
    const inputs = nodes.map((_, i) => seededFloats(L, 700 + i));
    const liar = nodes[3]!;
    // The liar runs no round; it pushes its right neighbour (rank 0) a step-0 chunk of 10 floats
    // where 25,000 are due, with every other field right.
    const groupHash = sha(new TextEncoder().encode(JSON.stringify(group)));
    const link = await liar.connect(group[0]!);
    const honest = nodes
      .slice(0, 3)
      .map((node, i) => allReduceMean(node, { round: 'rbad', group, tensor: inputs[i]!, timeoutMs: 60_000 }));
    await link.sendBlob(
      encodeAllReduce({
        round: 'rbad',
        phase: 'reduce',
        step: 0,
        chunk: 3,
        totalElements: L,
        groupSize: 4,
        group: groupHash,
        dropped: [],
        contribution: { index: 3, sha256: sha(bytesOf(inputs[3]!)) },
        payload: new Float32Array(10),
      }),
    );
    const results = await Promise.all(honest);
    const alive = group.slice(0, 3);
    for (const r of results) {
      expect(r.contributors).toEqual(alive);
      expect(r.dropped.map((d) => d.peer)).toEqual([liar.id]);
      expectMeanOf(r.mean, inputs.slice(0, 3));
    }
    expect(results[0]?.dropped[0]?.error).toMatchObject({
      code: 'net/protocol',
      details: { field: 'elements' },
    });
    expect(nodes[0]!.scores.score(liar.id)).toBeLessThan(0);
    expectBitIdentical(results);
  }, 120_000);

  it('keeps a message that arrives the moment this peer opens, before it starts its round', async () => {
    // A has an onPush for blobs: before protocols were registered at open, such a node took an
    // all-reduce message that came before attachAllReduce, handed it to onPush only, and lost it.
    const pushes: string[] = [];
    const a = await nodeAt(port, {
      id: 'early-a',
      tuning: FAST,
      protocols: [allReduceProtocol],
      onPush: (s) => pushes.push(s.from),
    });
    closers.push(() => a.close());
    const [b] = await peers(1, 'early-b');
    if (!b) throw new Error('peers(1) made no peer');
    const group = [a.id, b.id]; // b's right neighbour is a: b's first message goes to a
    const inputs = [seededFloats(1001, 71), seededFloats(1001, 72)];
    const bDone = allReduceMean(b, { round: 'early', group, tensor: inputs[1]!, timeoutMs: 60_000 });
    // Bounded wait (not a timing): b's first message has been acknowledged by a.
    for (let i = 0; i < 600 && pushes.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(pushes).toEqual([b.id]);
    const [ra, rb] = await Promise.all([
      allReduceMean(a, { round: 'early', group, tensor: inputs[0]!, timeoutMs: 60_000 }),
      bDone,
    ]);
    expectMeanOf(ra.mean, inputs);
    expect(ra.attempts).toBe(1);
    expectBitIdentical([ra, rb]);
  }, 120_000);

  it('refuses a node opened without the all-reduce protocol', async () => {
    const bare = await nodeAt(port, { id: 'ar-bare', tuning: FAST });
    closers.push(() => bare.close());
    const err = await allReduceMean(bare, {
      round: 'bare',
      group: [bare.id, 'other'],
      tensor: new Float32Array(4),
    }).catch((e) => e);
    expect(isHearthError(err, 'input/invalid')).toBe(true);
    expect(String(err.message)).toContain('protocols: [allReduceProtocol]');
  });

  it('refuses bad options with input/invalid', async () => {
    const [a] = await peers(1, 'aropt');
    if (!a) throw new Error('peers(1) made no peer');
    const t = new Float32Array(8);
    const bad = [
      { round: 'x', group: [a.id], tensor: t },
      { round: 'x', group: [a.id, a.id], tensor: t },
      { round: 'x', group: ['someone', 'else'], tensor: t },
      { round: '', group: [a.id, 'b'], tensor: t },
      { round: 'x', group: [a.id, 'b'], tensor: new Float32Array(0) },
    ];
    for (const o of bad) {
      const err = await allReduceMean(a, o).catch((e) => e);
      expect(isHearthError(err, 'input/invalid'), JSON.stringify(o.group)).toBe(true);
    }
  });
});
