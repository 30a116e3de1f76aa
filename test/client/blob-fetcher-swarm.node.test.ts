// BlobFetcher with a real swarm behind it: the blob is on the hub, three Node peers (real WebRTC,
// the hub's PeerServer) hold it, one of them with a bad piece. The fetcher asks the hub for the
// piece list (one small GET), hands it with every holder to the peer fetch, and gets the blob
// from the peers: the liar is blamed for that piece by name, and the hub's blob route sends nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobFetcher, MemoryBlobStore, type PeerBlobSource } from '../../src/client/blobs.ts';
import type { FetchResult } from '../../src/net/peer-node.ts';
import { BLOB_PIECE_BYTES, computePieceHashes } from '../../src/protocol/blob-pieces.ts';
import { mapSource, nodeAt, seededBytes, sha } from '../net/node-peers.ts';
import { ADMIN, type TestHub, testHub, upload } from '../node/hub-helpers.ts';
import { waitFor } from './client-helpers.ts';

const TUNING = { pingIntervalMs: 250, idleTimeoutMs: 6000, stallTimeoutMs: 6000, ackTimeoutMs: 15000 };
const blob = seededBytes(12 * BLOB_PIECE_BYTES, 41) as Uint8Array<ArrayBuffer>;
const HASH = sha(blob);

let th: TestHub;
const closers: (() => void)[] = [];

beforeAll(async () => {
  th = await testHub({ maxBlobBytes: 8 << 20 });
  await upload(th.hub.url, ADMIN, [blob]);
});
afterAll(async () => {
  for (const c of closers.reverse()) c();
  await th?.dispose();
});

describe('BlobFetcher over a swarm', () => {
  it('passes the hub’s piece list and every holder to the peers; a bad piece is pinned on its sender', async () => {
    const port = th.hub.port;
    const bad = blob.slice();
    bad[5 + 0]! ^= 1; // piece 0
    const liar = await nodeAt(port, {
      tuning: TUNING,
      source: { get: async (h) => (h === HASH ? bad : null) },
    });
    const honest = [
      await nodeAt(port, { tuning: TUNING, source: mapSource(blob) }),
      await nodeAt(port, { tuning: TUNING, source: mapSource(blob) }),
    ];
    const getter = await nodeAt(port, { tuning: TUNING });
    closers.push(...[liar, ...honest, getter].map((n) => () => n.close()));
    // Open links first, so each holder's share starts at once and the liar (first in line) is
    // sure to send piece 0, the head of its share.
    for (const h of [liar, ...honest]) await getter.connect(h.id);

    const results: FetchResult[] = [];
    const seen: { holders: readonly string[]; pieceList: boolean }[] = [];
    const peers: PeerBlobSource = {
      holders: async () => ({ peers: [liar.id, ...honest.map((h) => h.id)], fetching: 0 }),
      fetch: async (holders, sha256, options) => {
        seen.push({ holders, pieceList: options?.pieces !== undefined });
        const r = await getter.fetchBlob(holders, sha256, options ?? {});
        results.push(r);
        return r.bytes;
      },
      announce: () => {},
    };
    const store = new MemoryBlobStore();
    const fetcher = new BlobFetcher({ hubUrl: th.hub.url, store });
    fetcher.peers = peers;

    const got = await fetcher.get(HASH);
    expect(sha(got)).toBe(HASH);
    expect(await store.get(HASH)).not.toBeNull();
    expect(seen).toEqual([{ holders: [liar.id, ...honest.map((h) => h.id)], pieceList: true }]);
    expect(fetcher.peerBytes).toBe(blob.byteLength);
    expect(fetcher.downloadedBytes).toBe(0);
    expect(th.hub.stats.blobBytesServed).toBe(0);
    const attempts = results[0]!.attempts;
    const blamed = attempts.find((a) => a.peer === liar.id)?.error;
    expect(blamed?.code).toBe('blob/corrupt');
    expect(blamed?.details).toMatchObject({ piece: 0 });
    for (const h of honest) {
      const a = attempts.find((x) => x.peer === h.id);
      expect(a?.error).toBeUndefined();
      expect(a?.pieces).toBeGreaterThan(0);
    }
  }, 90_000);

  it('hands the partial holders the hub names to the peer fetch, which takes pieces from them', async () => {
    const port = th.hub.port;
    // A full holder uploading 1 MiB/s, and a follower half way through fetching from it.
    const full = await nodeAt(port, {
      tuning: { ...TUNING, uploadBytesPerSecond: 1 << 20 },
      source: mapSource(blob),
    });
    const follower = await nodeAt(port, { tuning: TUNING });
    const getter = await nodeAt(port, { tuning: TUNING });
    closers.push(...[full, follower, getter].map((n) => () => n.close()));
    const pieces = await computePieceHashes(blob, HASH);
    let landed = 0;
    const following = follower.fetchBlob(full.id, HASH, { pieces, onProgress: (_p, n) => (landed = n) });
    await waitFor(() => landed >= 6, 60_000, 'the follower half way');
    for (const h of [full, follower]) await getter.connect(h.id);

    const results: FetchResult[] = [];
    const seen: { holders: readonly string[]; partial: readonly string[] | undefined; more: unknown }[] = [];
    const peers: PeerBlobSource = {
      holders: async () => ({ peers: [full.id], fetching: 0, partial: [follower.id] }),
      fetch: async (holders, sha256, options) => {
        seen.push({ holders, partial: options?.partialHolders, more: await options?.moreHolders?.() });
        const r = await getter.fetchBlob(holders, sha256, options ?? {});
        results.push(r);
        return r.bytes;
      },
      announce: () => {},
    };
    const fetcher = new BlobFetcher({ hubUrl: th.hub.url, store: new MemoryBlobStore() });
    fetcher.peers = peers;
    const served = th.hub.stats.blobBytesServed;
    expect(sha(await fetcher.get(HASH))).toBe(HASH);
    expect(seen).toEqual([
      { holders: [full.id], partial: [follower.id], more: { peers: [full.id], partial: [follower.id] } },
    ]);
    expect(th.hub.stats.blobBytesServed).toBe(served);
    const fromFollower = results[0]!.attempts.filter((a) => a.peer === follower.id);
    expect(fromFollower[0]?.pieces, JSON.stringify(results[0]!.attempts)).toBeGreaterThan(0);
    expect(sha((await following).bytes)).toBe(HASH);
  }, 90_000);

  /** A getter whose links never drop a slow holder: only the fetcher's own windows end a peer fetch. */
  async function patientFetch(
    uploadBytesPerSecond: number,
    windows: { peerStallMs: number; peerStartMs: number },
  ) {
    const port = th.hub.port;
    const holder = await nodeAt(port, {
      tuning: { ...TUNING, uploadBytesPerSecond },
      source: mapSource(blob),
    });
    const getter = await nodeAt(port, {
      tuning: { ...TUNING, idleTimeoutMs: 120_000, stallTimeoutMs: 120_000 },
    });
    closers.push(...[holder, getter].map((n) => () => n.close()));
    await getter.connect(holder.id);
    const peers: PeerBlobSource = {
      holders: async () => ({ peers: [holder.id], fetching: 0 }),
      fetch: async (holders, sha256, options) =>
        (await getter.fetchBlob(holders, sha256, options ?? {})).bytes,
      announce: () => {},
    };
    const fetcher = new BlobFetcher({ hubUrl: th.hub.url, store: new MemoryBlobStore(), ...windows });
    fetcher.peers = peers;
    const served = th.hub.stats.blobBytesServed;
    expect(sha(await fetcher.get(HASH))).toBe(HASH);
    return { fetcher, hubSent: th.hub.stats.blobBytesServed - served };
  }

  it('falls back to the hub at once when its holder stops delivering (no new piece for peerStallMs)', async () => {
    // A piece every ~4 s: the first lands inside the start window, the next not inside the 1.5 s
    // stall window, so the fetch stops there and the hub sends the blob.
    const { fetcher, hubSent } = await patientFetch(64 * 1024, { peerStallMs: 1500, peerStartMs: 30_000 });
    expect(fetcher.peerStalls).toBe(1);
    expect(fetcher.peerFallbacks).toBe(1);
    expect(fetcher.lastPeerError?.code).toBe('net/timeout');
    expect(fetcher.lastPeerError?.details).toMatchObject({ landedAny: true, ms: 1500 });
    expect(fetcher.peerBytes).toBe(0);
    expect(fetcher.downloadedBytes).toBe(blob.byteLength);
    expect(hubSent).toBeGreaterThanOrEqual(blob.byteLength);
  }, 90_000);

  it('falls back to the hub when no first piece comes within peerStartMs', async () => {
    // A piece every ~16 s: none within the 1.5 s start window.
    const { fetcher, hubSent } = await patientFetch(16 * 1024, { peerStallMs: 30_000, peerStartMs: 1500 });
    expect(fetcher.peerStalls).toBe(1);
    expect(fetcher.lastPeerError?.details).toMatchObject({ landedAny: false, ms: 1500 });
    expect(fetcher.downloadedBytes).toBe(blob.byteLength);
    expect(hubSent).toBeGreaterThanOrEqual(blob.byteLength);
  }, 90_000);

  it('keeps going while a slow holder delivers, however long the whole fetch takes', async () => {
    const port = th.hub.port;
    // 12 pieces at about two a second: the whole fetch lasts several stall windows (2.5 s), each
    // piece lands well inside one. An elapsed-time budget of one window would have fallen back.
    const slow = await nodeAt(port, {
      tuning: { ...TUNING, uploadBytesPerSecond: 512 * 1024 },
      source: mapSource(blob),
    });
    const getter = await nodeAt(port, { tuning: TUNING });
    closers.push(...[slow, getter].map((n) => () => n.close()));
    await getter.connect(slow.id);
    let landed = 0;
    const peers: PeerBlobSource = {
      holders: async () => ({ peers: [slow.id], fetching: 0 }),
      fetch: async (holders, sha256, options) => {
        const r = await getter.fetchBlob(holders, sha256, {
          ...options,
          onProgress: (peer, done, count) => {
            landed++;
            options?.onProgress?.(peer, done, count);
          },
        });
        return r.bytes;
      },
      announce: () => {},
    };
    const fetcher = new BlobFetcher({ hubUrl: th.hub.url, store: new MemoryBlobStore(), peerStallMs: 2500 });
    fetcher.peers = peers;
    const served = th.hub.stats.blobBytesServed;
    expect(sha(await fetcher.get(HASH))).toBe(HASH);
    expect(landed).toBe(12);
    expect(fetcher.peerStalls).toBe(0);
    expect(fetcher.peerFallbacks).toBe(0);
    expect(fetcher.peerBytes).toBe(blob.byteLength);
    expect(fetcher.downloadedBytes).toBe(0);
    expect(th.hub.stats.blobBytesServed).toBe(served);
  }, 90_000);
});
