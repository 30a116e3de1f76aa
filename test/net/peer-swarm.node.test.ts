// One blob from several holders at once (issue 5, "Blob swarm"): real Node peers (node-datachannel
// WebRTC, PeerJS) on a real hub's PeerServer. Three holders each serve a share; with a piece list
// a holder that corrupts one piece is blamed alone and that piece comes from another holder; a
// holder closed mid-fetch has its pieces finished by the others; without a piece list a bad whole
// blob from several senders is sorted out one holder at a time.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type HearthError, isHearthError } from '../../src/core/errors.ts';
import type { FetchAttempt, PeerNode } from '../../src/net/peer-node.ts';
import { BLOB_PIECE_BYTES, computePieceHashes } from '../../src/protocol/blob-pieces.ts';
import { type TestHub, testHub } from '../node/hub-helpers.ts';
import { mapSource, nodeAt, seededBytes, sha } from './node-peers.ts';

// Liveness generous enough for a CPU-starved CI machine (bounded waits, not timings).
const TUNING = { pingIntervalMs: 250, idleTimeoutMs: 6000, stallTimeoutMs: 6000, ackTimeoutMs: 15000 };
const MiB = 1024 * 1024;
const SIZE = 6 * MiB;
const COUNT = Math.ceil(SIZE / BLOB_PIECE_BYTES); // 25 pieces
const blob = seededBytes(SIZE, 21);
const HASH = sha(blob);

let th: TestHub;
let port: number;
const closers: (() => void)[] = [];

async function node(over: Parameters<typeof nodeAt>[1] = {}): Promise<PeerNode> {
  const n = await nodeAt(port, { ...over, tuning: { ...TUNING, ...over.tuning } });
  closers.push(() => n.close());
  return n;
}

/** A source that answers for the blob with one bit flipped in piece `piece`. */
function corrupted(piece: number) {
  const bad = blob.slice();
  bad[piece * BLOB_PIECE_BYTES + 1234]! ^= 0x10;
  return { get: async (h: string) => (h === HASH ? bad : null) };
}

/** A getter with open links to every holder, so each holder's share starts at once. */
async function getterFor(holders: PeerNode[]): Promise<PeerNode> {
  const getter = await node();
  for (const h of holders) await getter.connect(h.id);
  return getter;
}

const byPeer = (attempts: readonly FetchAttempt[], peer: string) => attempts.filter((a) => a.peer === peer);

beforeAll(async () => {
  th = await testHub();
  port = th.hub.port;
});
afterEach(() => {
  for (const c of closers.splice(0).reverse()) c();
});
afterAll(async () => {
  await th?.dispose();
});

describe('fetching one blob from several holders', () => {
  it('splits the pieces among three holders; every one serves a share, each piece checked', async () => {
    const holders = [
      await node({ source: mapSource(blob) }),
      await node({ source: mapSource(blob) }),
      await node({ source: mapSource(blob) }),
    ];
    const getter = await getterFor(holders);
    const pieces = await computePieceHashes(blob, HASH);
    const sent = holders.map((h) => h.bytesSent);
    const got = await getter.fetchBlob(
      holders.map((h) => h.id),
      HASH,
      { pieces },
    );
    expect(sha(got.bytes)).toBe(HASH);
    expect(got.attempts.map((a) => a.peer).sort()).toEqual(holders.map((h) => h.id).sort());
    for (const a of got.attempts) {
      expect(a.error, JSON.stringify(a)).toBeUndefined();
      expect(a.pieces, JSON.stringify(got.attempts)).toBeGreaterThan(0);
    }
    expect(got.attempts.reduce((n, a) => n + a.pieces, 0)).toBe(COUNT);
    // The load spread: each holder sent at least one full piece's worth of frames.
    holders.forEach((h, i) => {
      expect(h.bytesSent - sent[i]!).toBeGreaterThan(BLOB_PIECE_BYTES);
    });
    for (const h of holders) expect(getter.scores.score(h.id)).toBeGreaterThan(0);
  }, 90_000);

  it('pins a corrupted piece on the one holder that sent it; another holder sends that piece', async () => {
    // The liar is first in line, so piece 0 (the head of its share) is among the first it sends.
    const liar = await node({ source: corrupted(0) });
    const honest = [await node({ source: mapSource(blob) }), await node({ source: mapSource(blob) })];
    const getter = await getterFor([liar, ...honest]);
    const pieces = await computePieceHashes(blob, HASH);

    const got = await getter.fetchBlob([liar.id, ...honest.map((h) => h.id)], HASH, { pieces });
    expect(sha(got.bytes)).toBe(HASH);
    const [bad, ...more] = byPeer(got.attempts, liar.id);
    expect(more).toHaveLength(0);
    expect(bad?.error?.code).toBe('blob/corrupt');
    expect(bad?.error?.details).toMatchObject({ peer: liar.id, piece: 0, expected: pieces.pieces[0] });
    expect(bad?.error?.message).toMatch(/sent piece 0 of blob [0-9a-f]{64} hashing to [0-9a-f]{64}, not/);
    expect(getter.scores.get(liar.id)?.lastReason).toBe('blob/corrupt');
    expect(getter.scores.score(liar.id)).toBeLessThan(0);
    for (const h of honest) {
      const [a] = byPeer(got.attempts, h.id);
      expect(a?.error).toBeUndefined();
      expect(getter.scores.score(h.id)).toBeGreaterThan(0);
    }
    // Piece 0 came from an honest holder, and every piece landed exactly once.
    expect(got.attempts.reduce((n, a) => n + a.pieces, 0)).toBe(COUNT);
    expect(honest.some((h) => byPeer(got.attempts, h.id)[0]!.fromPiece === 0)).toBe(true);
  }, 90_000);

  it('finishes the share of a holder closed mid-fetch with the others', async () => {
    // About one piece a second: the slow holder's first range (several pieces) is still in flight
    // when it closes. Connected last, so its link has no idle time banked as upload allowance.
    const slow = await node({ source: mapSource(blob), tuning: { uploadBytesPerSecond: MiB / 4 } });
    const fast = [await node({ source: mapSource(blob) }), await node({ source: mapSource(blob) })];
    const getter = await getterFor([...fast, slow]);
    const pieces = await computePieceHashes(blob, HASH);

    // Kept: a closed PeerNode forgets its id.
    const slowId = slow.id;
    let closedAt = -1;
    const got = await getter.fetchBlob([slowId, ...fast.map((h) => h.id)], HASH, {
      pieces,
      onProgress: (peer, done) => {
        if (peer === slowId && closedAt < 0) {
          closedAt = done;
          slow.close();
        }
      },
    });
    expect(sha(got.bytes)).toBe(HASH);
    expect(closedAt, 'the slow holder never delivered a piece').toBeGreaterThan(0);
    const [gone] = byPeer(got.attempts, slowId);
    // Our heartbeat (net/timeout) or the data channel closing (net/unreachable) noticed.
    expect(['net/timeout', 'net/unreachable'], JSON.stringify(got.attempts)).toContain(gone?.error?.code);
    expect(gone?.pieces).toBeGreaterThanOrEqual(1);
    expect(gone?.pieces).toBeLessThan(COUNT);
    for (const h of fast) expect(byPeer(got.attempts, h.id)[0]?.error).toBeUndefined();
    expect(got.attempts.reduce((n, a) => n + a.pieces, 0)).toBe(COUNT);
    process.stdout.write(`closed holder detected as ${gone?.error?.code}: ${gone?.error?.message}\n`);
  }, 90_000);

  it('lets holders that turn up mid-fetch join it and take a share', async () => {
    // The only holder known at first uploads at 512 KiB/s: the 6 MiB blob would take 12 s alone.
    const first = await node({ source: mapSource(blob), tuning: { uploadBytesPerSecond: MiB / 2 } });
    const late = [await node({ source: mapSource(blob) }), await node({ source: mapSource(blob) })];
    // Links to the late holders open beforehand, so both start the moment they are named (a dial
    // that lags could find the other one had taken every piece left).
    const getter = await getterFor([first, ...late]);
    const pieces = await computePieceHashes(blob, HASH);
    let asked = 0;
    const got = await getter.fetchBlob(first.id, HASH, {
      pieces,
      moreHolders: async () => {
        asked++;
        // What the hub would answer once two more peers announced the blob (and the asker itself).
        return [first.id, getter.id, ...late.map((h) => h.id)];
      },
      moreHoldersEveryMs: 200,
    });
    expect(sha(got.bytes)).toBe(HASH);
    expect(asked).toBeGreaterThan(0);
    expect(got.attempts.map((a) => a.peer)).toEqual([first.id, ...late.map((h) => h.id)]);
    for (const a of got.attempts) expect(a.error, JSON.stringify(a)).toBeUndefined();
    for (const h of late) expect(byPeer(got.attempts, h.id)[0]!.pieces).toBeGreaterThan(0);
    expect(got.attempts.reduce((n, a) => n + a.pieces, 0)).toBe(COUNT);
  }, 90_000);

  it('refuses a piece list over its own size limit without asking, or blaming, any holder', async () => {
    const holder = await node({ source: mapSource(blob) });
    const getter = await node({ tuning: { maxBlobBytes: MiB } });
    const pieces = await computePieceHashes(blob, HASH);
    const err = await getter.fetchBlob(holder.id, HASH, { pieces }).catch((e) => e);
    expect(isHearthError(err, 'input/invalid')).toBe(true);
    expect((err as HearthError).details).toMatchObject({ totalBytes: SIZE, limit: MiB });
    expect(getter.links).toBe(0);
    expect(getter.scores.get(holder.id)).toBeUndefined();
  }, 60_000);

  it('without a piece list, a bad whole blob from several holders is sorted out one holder at a time', async () => {
    // First in line, the liar answers the probe for the first pieces, so its bad piece is used.
    const liar = await node({ source: corrupted(0) });
    const honest = [await node({ source: mapSource(blob) }), await node({ source: mapSource(blob) })];
    const getter = await getterFor([liar, ...honest]);

    const got = await getter.fetchBlob([liar.id, ...honest.map((h) => h.id)], HASH);
    expect(sha(got.bytes)).toBe(HASH);
    // The parallel pass failed as a whole (nobody to blame), then the liar alone was caught.
    const mine = byPeer(got.attempts, liar.id);
    expect(mine.map((a) => a.error?.code)).toEqual(['blob/corrupt', 'blob/corrupt']);
    expect(mine[1]?.error?.message).toMatch(/hash to [0-9a-f]{64}, not .*the peer was dropped/);
    expect(getter.scores.get(liar.id)?.lastReason).toBe('blob/corrupt');
    const last = got.attempts.at(-1);
    expect(honest.map((h) => h.id)).toContain(last?.peer);
    expect(last).toMatchObject({ fromPiece: 0, toPiece: COUNT, pieces: COUNT });
    expect(last?.error).toBeUndefined();
    for (const h of honest) expect(getter.scores.score(h.id)).toBeGreaterThanOrEqual(0);

    // Asked again with only the liar: a typed failure that names it, never a hang.
    const err = await getter.fetchBlob(liar.id, HASH).catch((e) => e);
    expect(isHearthError(err, 'blob/missing')).toBe(true);
    expect((err as HearthError).message).toMatch(/blob\/corrupt/);
  }, 90_000);

  it('keepTrying: when every holder dropped out, asks again and gives them another go until the signal stops it', async () => {
    // The holder has no copy yet when first asked (blob/missing): a tab still storing the blob.
    let has = false;
    const holder = await node({ source: { get: async (h) => (has && h === HASH ? blob : null) } });
    const getter = await getterFor([holder]);
    const pieces = await computePieceHashes(blob, HASH);
    // Without keepTrying the fetch ends when its holders run out.
    const plain = await getter
      .fetchBlob(holder.id, HASH, { pieces, moreHolders: async () => [holder.id] })
      .catch((e) => e);
    expect(isHearthError(plain, 'blob/missing')).toBe(true);

    // With it, moreHolders is asked again once the holder dropped out; by then it has the blob.
    let asked = 0;
    const { bytes, attempts } = await getter.fetchBlob(holder.id, HASH, {
      pieces,
      keepTrying: true,
      signal: new AbortController().signal,
      moreHoldersEveryMs: 200,
      moreHolders: async () => {
        asked++;
        has = true;
        return [holder.id];
      },
    });
    expect(sha(bytes)).toBe(HASH);
    expect(asked).toBeGreaterThan(0);
    expect(attempts[0]?.error?.code).toBe('blob/missing');
    expect(attempts.reduce((n, a) => n + a.pieces, 0)).toBe(COUNT);

    // A holder that never gets it: the fetch goes on asking until the caller's signal stops it.
    const empty = await node({ source: mapSource() });
    await getter.connect(empty.id);
    const stop = new AbortController();
    const reason = new Error('no progress, says the caller');
    let asks = 0;
    const err = await getter
      .fetchBlob(empty.id, HASH, {
        pieces,
        keepTrying: true,
        signal: stop.signal,
        moreHoldersEveryMs: 100,
        moreHolders: async () => {
          if (++asks === 3) stop.abort(reason);
          return [empty.id];
        },
      })
      .catch((e) => e);
    expect(isHearthError(err, 'net/timeout')).toBe(true);
    expect((err as HearthError).cause).toBe(reason);
    expect(asks).toBe(3);
  }, 90_000);
});
