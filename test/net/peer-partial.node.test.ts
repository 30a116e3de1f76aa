// Peers that serve a blob while they are still fetching it (issue 5, "Blob swarm"): real Node
// peers (node-datachannel WebRTC, PeerJS) on a real hub's PeerServer. A follower fetching with the
// hub's piece list serves the pieces it has checked; a second follower gets pieces from it beside
// the full holder, bytes verified; a partial holder that goes away mid-serve only hands its range
// to the full holder; a follower without the piece list serves nothing.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type HearthError, isHearthError } from '../../src/core/errors.ts';
import type { FetchAttempt, FetchResult, PeerNode } from '../../src/net/peer-node.ts';
import { BLOB_PIECE_BYTES, computePieceHashes, type PieceHashes } from '../../src/protocol/blob-pieces.ts';
import { type TestHub, testHub } from '../node/hub-helpers.ts';
import { mapSource, nodeAt, seededBytes, sha } from './node-peers.ts';

// Liveness generous enough for a CPU-starved CI machine (bounded waits, not timings).
const TUNING = { pingIntervalMs: 250, idleTimeoutMs: 6000, stallTimeoutMs: 6000, ackTimeoutMs: 15000 };
const MiB = 1024 * 1024;
const SIZE = 6 * MiB;
const COUNT = Math.ceil(SIZE / BLOB_PIECE_BYTES); // 25 pieces
const blob = seededBytes(SIZE, 77);
const HASH = sha(blob);

let th: TestHub;
let port: number;
let pieces: PieceHashes;
const closers: (() => void)[] = [];

async function node(over: Parameters<typeof nodeAt>[1] = {}): Promise<PeerNode> {
  const n = await nodeAt(port, { ...over, tuning: { ...TUNING, ...over.tuning } });
  closers.push(() => n.close());
  return n;
}

const byPeer = (attempts: readonly FetchAttempt[], peer: string) => attempts.filter((a) => a.peer === peer);
const total = (r: FetchResult) => r.attempts.reduce((n, a) => n + a.pieces, 0);

/** Resolves once `cond` holds (polled), or fails after `ms`: a bounded wait, not a timing. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A full holder that uploads slowly (so fetches from it take a while) and a follower fetching
 * from it alone; resolves once the follower has `landed` pieces. `withPieces`: whether the
 * follower has the hub's piece list.
 */
async function midFetch(landed: number, withPieces = true, rate = MiB) {
  const full = await node({ source: mapSource(blob), tuning: { uploadBytesPerSecond: rate } });
  const follower = await node();
  await follower.connect(full.id);
  let done = 0;
  const fetching = follower
    .fetchBlob(full.id, HASH, {
      ...(withPieces ? { pieces } : {}),
      onProgress: (_peer, n) => {
        done = n;
      },
    })
    .catch((e: unknown) => e as HearthError);
  await until(() => done >= landed, 60_000, `the follower landing ${landed} pieces`);
  return { full, follower, fetching };
}

beforeAll(async () => {
  th = await testHub();
  port = th.hub.port;
  pieces = await computePieceHashes(blob, HASH);
});
afterEach(() => {
  for (const c of closers.splice(0).reverse()) c();
});
afterAll(async () => {
  await th?.dispose();
});

describe('peers serving a blob they are still fetching', () => {
  it('a second follower gets pieces from a follower mid-fetch, beside the full holder, bytes verified', async () => {
    // 2 MiB/s from the full holder to each follower: the first has ~60% of the blob when the
    // second starts and goes on fetching the rest while it serves.
    const { full, follower, fetching } = await midFetch(15, true, 2 * MiB);
    expect(follower.servesPartial(HASH)).toBe(true);
    const second = await node();
    for (const h of [full, follower]) await second.connect(h.id);
    const sentBefore = follower.bytesSent;

    const got = await second.fetchBlob(full.id, HASH, { pieces, partialHolders: [follower.id] });
    expect(sha(got.bytes)).toBe(HASH);
    expect(total(got), JSON.stringify(got.attempts)).toBe(COUNT);
    const fromFollower = byPeer(got.attempts, follower.id);
    expect(fromFollower, JSON.stringify(got.attempts)).toHaveLength(1);
    expect(fromFollower[0]!.pieces, JSON.stringify(got.attempts)).toBeGreaterThan(0);
    expect(byPeer(got.attempts, full.id)[0]?.error).toBeUndefined();
    // The follower's upload carried those pieces; nobody was blamed.
    expect(follower.bytesSent - sentBefore).toBeGreaterThan((fromFollower[0]!.pieces - 1) * BLOB_PIECE_BYTES);
    expect(second.scores.score(follower.id)).toBeGreaterThanOrEqual(0);
    expect(second.scores.score(full.id)).toBeGreaterThan(0);

    // The first follower's own fetch ends verified too.
    const first = await fetching;
    expect(isHearthError(first)).toBe(false);
    expect(sha((first as FetchResult).bytes)).toBe(HASH);
    process.stdout.write(
      `second follower: ${got.attempts.map((a) => `${a.peer === full.id ? 'full' : 'partial'} ${a.pieces} pieces${a.error ? ` (${a.error.code})` : ''}`).join(', ')}\n`,
    );
  }, 120_000);

  it('a partial holder that goes away mid-serve costs a reassignment, not the blob', async () => {
    const { full, follower, fetching } = await midFetch(10);
    const second = await node();
    for (const h of [full, follower]) await second.connect(h.id);
    const followerId = follower.id;
    let closedAt = -1;
    const got = await second.fetchBlob(full.id, HASH, {
      pieces,
      partialHolders: [followerId],
      onProgress: (peer, done) => {
        if (peer === followerId && closedAt < 0) {
          closedAt = done;
          follower.close();
        }
      },
    });
    expect(sha(got.bytes)).toBe(HASH);
    expect(total(got), JSON.stringify(got.attempts)).toBe(COUNT);
    expect(closedAt, 'the partial holder never delivered a piece').toBeGreaterThan(0);
    const [gone] = byPeer(got.attempts, followerId);
    expect(['net/timeout', 'net/unreachable'], JSON.stringify(got.attempts)).toContain(gone?.error?.code);
    expect(gone?.pieces).toBeGreaterThanOrEqual(1);
    expect(byPeer(got.attempts, full.id)[0]?.error).toBeUndefined();
    // The closed follower's own fetch fails cleanly (it was closed), it does not hang.
    expect(isHearthError(await fetching)).toBe(true);
  }, 120_000);

  it('a range a partial holder cannot supply in time goes to the full holder, without blame', async () => {
    // The follower gets about one piece a second: most of what it is asked for is not there yet.
    const { full: slowFull, follower, fetching } = await midFetch(3, true, MiB / 4);
    const full = await node({ source: mapSource(blob), tuning: { uploadBytesPerSecond: 2 * MiB } });
    const second = await node();
    for (const h of [full, follower]) await second.connect(h.id);
    const got = await second.fetchBlob(full.id, HASH, { pieces, partialHolders: [follower.id] });
    expect(sha(got.bytes)).toBe(HASH);
    expect(total(got), JSON.stringify(got.attempts)).toBe(COUNT);
    const [part] = byPeer(got.attempts, follower.id);
    // It either served what it had or left after its misses: 'not-found' is no fault.
    if (part?.error) expect(part.error.code, JSON.stringify(got.attempts)).toBe('blob/missing');
    expect(byPeer(got.attempts, full.id)[0]!.pieces).toBeGreaterThan(COUNT / 2);
    expect(second.scores.score(follower.id)).toBeGreaterThanOrEqual(0);
    expect(second.links).toBeGreaterThanOrEqual(2);
    slowFull.close();
    expect(isHearthError(await fetching)).toBe(true);
  }, 120_000);

  it('serves nothing of a blob it fetches without the piece list (no unverified piece leaves)', async () => {
    const { full, follower, fetching } = await midFetch(8, false);
    expect(follower.servesPartial(HASH)).toBe(false);
    const second = await node();
    for (const h of [full, follower]) await second.connect(h.id);
    // Asked directly for a piece it has landed (but could not check): 'not-found'.
    const link = await second.connect(follower.id);
    const err = await link
      .fetch(HASH, { fromPiece: 0, toPiece: 1, pieceSize: BLOB_PIECE_BYTES })
      .catch((e: unknown) => e);
    expect(isHearthError(err, 'blob/missing'), String(err)).toBe(true);
    const sentBefore = follower.bytesSent;

    const got = await second.fetchBlob(full.id, HASH, { pieces, partialHolders: [follower.id] });
    expect(sha(got.bytes)).toBe(HASH);
    expect(total(got)).toBe(COUNT);
    for (const a of byPeer(got.attempts, follower.id)) expect(a.pieces).toBe(0);
    expect(byPeer(got.attempts, full.id)[0]!.pieces).toBe(COUNT);
    // Frames (refusals, pings), never a piece.
    expect(follower.bytesSent - sentBefore).toBeLessThan(BLOB_PIECE_BYTES);
    expect(sha(((await fetching) as FetchResult).bytes)).toBe(HASH);
  }, 120_000);
});
