// Blob and tensor streams between real Node peers (node-datachannel WebRTC, PeerJS) brokered by a
// real hub's PeerServer: a 5 MiB blob arrives verified; pushed tensors arrive with dtype and shape;
// a peer serving corrupted bytes, speaking garbage, sending a piece out of range, or trickling
// one piece then going quiet is dropped with a typed error, its score drops, and the fetch either
// fails cleanly or moves to an honest holder.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type HearthError, isHearthError } from '../../src/core/errors.ts';
import type { ReceivedStream } from '../../src/net/link-receiver.ts';
import type { PeerNode } from '../../src/net/peer-node.ts';
import { decodeFrame, encodeFrame, encodePiece, MIN_PIECE_BYTES } from '../../src/protocol/stream.ts';
import { type TestHub, testHub } from '../node/hub-helpers.ts';
import { mapSource, nodeAt, rawConnect, rawPeer, seededBytes, sha } from './node-peers.ts';

// Short liveness settings so failures show within a couple of seconds; bounded waits, not timings.
// Short enough to keep the tests quick, long enough that a CPU-starved CI machine (SwiftShader and
// Chromium on the same 2 cores) does not read a slow peer as a dead one.
const FAST = { pingIntervalMs: 250, idleTimeoutMs: 5000, stallTimeoutMs: 5000, ackTimeoutMs: 15000 };

const MiB = 1024 * 1024;
const blob5 = seededBytes(5 * MiB, 5);
const small = seededBytes(300_000, 7);

let th: TestHub;
let port: number;
const closers: (() => void)[] = [];

async function node(over: Parameters<typeof nodeAt>[1] = {}): Promise<PeerNode> {
  const n = await nodeAt(port, { tuning: FAST, ...over });
  closers.push(() => n.close());
  return n;
}

type RawPeer = Awaited<ReturnType<typeof rawPeer>>;
/** A hostile peer: `onFrame` answers each decoded frame with whatever raw bytes it likes. */
async function hostile(
  id: string,
  onFrame: (f: ReturnType<typeof decodeFrame>, send: (b: Uint8Array) => void) => void,
) {
  const p: RawPeer = await rawPeer(port, id);
  closers.push(() => p.destroy());
  p.on('connection', (conn) => {
    conn.on('data', (d) => {
      const send = (b: Uint8Array) => conn.dataChannel.send(b as Uint8Array<ArrayBuffer>);
      onFrame(decodeFrame(d), send);
    });
  });
  return p;
}

beforeAll(async () => {
  th = await testHub();
  port = th.hub.port;
});
// Every peer of a test leaves the PeerServer after it (the hub allows 16 sockets per address).
afterEach(() => {
  for (const c of closers.splice(0).reverse()) c();
});
afterAll(async () => {
  await th?.dispose();
});

describe('PeerLink between Node peers through the hub’s PeerServer', () => {
  it('fetches a 5 MiB blob by hash, verified, in pieces of the size asked for', async () => {
    const holder = await node({ source: mapSource(blob5, small) });
    const getter = await node();
    let pieces = 0;
    const got = await getter.fetchBlob(holder.id, sha(blob5), {
      pieceSize: 128 * 1024,
      onProgress: (_p, done, count) => {
        pieces = done;
        expect(count).toBe(40);
      },
    });
    expect(got.bytes.byteLength).toBe(blob5.byteLength);
    expect(sha(got.bytes)).toBe(sha(blob5));
    expect(pieces).toBe(40);
    expect(got.attempts).toEqual([{ peer: holder.id, fromPiece: 0, toPiece: 40, pieces: 40 }]);
    expect(getter.scores.score(holder.id)).toBe(1);
    // Default piece size: the largest that fits Chromium's 262144-byte message.
    const again = await getter.fetchBlob([holder.id], sha(small));
    expect(sha(again.bytes)).toBe(sha(small));
    expect(again.attempts).toEqual([{ peer: holder.id, fromPiece: 0, toPiece: 2, pieces: 2 }]);
  }, 60_000);

  it('answers an unknown hash with blob/missing, and the holder keeps its score', async () => {
    const holder = await node({ source: mapSource(small) });
    const getter = await node();
    const err = await getter.fetchBlob(holder.id, 'ee'.repeat(32)).catch((e) => e);
    expect(isHearthError(err, 'blob/missing')).toBe(true);
    const attempts = (err as HearthError).details.attempts as { error: { code: string } }[];
    expect(attempts[0]?.error.code).toBe('blob/missing');
    // The link survives a miss: the same peer serves a blob it has.
    const got = await getter.fetchBlob(holder.id, sha(small));
    expect(sha(got.bytes)).toBe(sha(small));
  }, 60_000);

  it('pushes a tensor and a blob; the receiver gets them verified, with dtype and shape', async () => {
    const received: ReceivedStream[] = [];
    const sink = await node({ onPush: (s) => received.push(s) });
    const sender = await node();
    const link = await sender.connect(sink.id);
    const values = Float32Array.from({ length: 3 * 100_000 }, (_, i) => Math.sin(i));
    const bytes = new Uint8Array(values.buffer);
    await link.sendTensor({ dtype: 'f32', shape: [3, 100_000], bytes });
    await link.sendBlob(small);
    expect(received).toHaveLength(2);
    const [t, b] = received;
    expect(t).toMatchObject({
      kind: 'tensor',
      dtype: 'f32',
      shape: [3, 100_000],
      sha256: sha(bytes),
      from: sender.id,
    });
    expect(new Float32Array(t!.bytes.slice().buffer)).toEqual(values); // length 2, checked above
    expect(b).toMatchObject({ kind: 'blob', sha256: sha(small) });
    // A peer without a push handler refuses pushes, and the link stays usable.
    const plain = await node({ source: mapSource(small) });
    const l2 = await sender.connect(plain.id);
    const refused = await l2.sendBlob(small).catch((e) => e);
    expect(isHearthError(refused, 'net/refused')).toBe(true);
    const ok = await sender.fetchBlob(plain.id, sha(small));
    expect(sha(ok.bytes)).toBe(sha(small));
    // A push over the receiver's limit is refused as too large; nobody is blamed.
    const strict = await node({
      onPush: (s) => received.push(s),
      tuning: { ...FAST, maxPushBytes: 100_000 },
    });
    const l3 = await sender.connect(strict.id);
    const big = await l3.sendBlob(small).catch((e) => e);
    expect(isHearthError(big, 'net/refused')).toBe(true);
    expect((big as HearthError).message).toMatch(/too-large: limit is 100000 bytes/);
    expect(received).toHaveLength(2);
    expect(strict.scores.score(sender.id)).toBe(0);
    await l3.sendTensor({ dtype: 'u32', shape: [10], bytes: new Uint8Array(40) });
    expect(received[2]).toMatchObject({ kind: 'tensor', dtype: 'u32', shape: [10] });
  }, 60_000);

  it('drops a peer that serves corrupted bytes (blob/corrupt) and falls to an honest holder', async () => {
    const bad = seededBytes(blob5.byteLength, 5);
    bad[3 * 256 * 1024 + 17]! ^= 0x40; // one bit in piece 3
    const liar = await node({ source: { get: async (h) => (h === sha(blob5) ? bad : null) } });
    const honest = await node({ source: mapSource(blob5) });
    const getter = await node();

    const alone = await getter.fetchBlob(liar.id, sha(blob5)).catch((e) => e);
    expect(isHearthError(alone, 'blob/missing')).toBe(true);
    const a0 = ((alone as HearthError).details.attempts as { error: { code: string; message: string } }[])[0];
    expect(a0?.error.code).toBe('blob/corrupt');
    expect(a0?.error.message).toMatch(/hash to [0-9a-f]{64}, not/);
    expect(getter.scores.score(liar.id)).toBeLessThan(0);
    expect(getter.scores.get(liar.id)?.lastReason).toBe('blob/corrupt');

    // The liar is ranked last now even when named first; the honest peer delivers.
    const got = await getter.fetchBlob([liar.id, honest.id], sha(blob5));
    expect(sha(got.bytes)).toBe(sha(blob5));
    expect(got.attempts.map((a) => a.peer)).toEqual([honest.id]);
  }, 60_000);

  it('drops a peer that sends garbage frames, with net/protocol', async () => {
    const g = await hostile('garbage-peer', (f, send) => {
      if (f.type === 'request') send(new TextEncoder().encode('{"type":"header","evil":true}'));
    });
    const getter = await node();
    const err = await getter.fetchBlob(g.id, sha(small)).catch((e) => e);
    expect(isHearthError(err, 'blob/missing')).toBe(true);
    const a0 = (
      (err as HearthError).details.attempts as { error: { code: string; details: { field?: string } } }[]
    )[0];
    expect(a0?.error).toMatchObject({ code: 'net/protocol', details: { field: 'magic' } });
    expect(getter.scores.score(g.id)).toBeLessThanOrEqual(-50);
  }, 60_000);

  it('drops a peer that sends a piece out of range, and one that announces an oversized blob', async () => {
    const h = sha(small);
    const oob = await hostile('out-of-range-peer', (f, send) => {
      if (f.type !== 'request') return;
      send(
        encodeFrame({
          type: 'header',
          stream: f.stream,
          kind: 'blob',
          totalBytes: 4 * MIN_PIECE_BYTES,
          pieceSize: MIN_PIECE_BYTES,
          firstPiece: 0,
          sha256: h,
        }),
      );
      send(encodePiece(f.stream, 9, new Uint8Array(MIN_PIECE_BYTES)));
    });
    const huge = await hostile('oversized-peer', (f, send) => {
      if (f.type !== 'request') return;
      send(
        encodeFrame({
          type: 'header',
          stream: f.stream,
          kind: 'blob',
          totalBytes: 2 ** 40,
          pieceSize: MIN_PIECE_BYTES,
          firstPiece: 0,
          sha256: h,
        }),
      );
    });
    const getter = await node({ tuning: { ...FAST, maxBlobBytes: 8 * MiB } });
    const e1 = (await getter.fetchBlob(oob.id, h).catch((e) => e)) as HearthError;
    const e2 = (await getter.fetchBlob(huge.id, h).catch((e) => e)) as HearthError;
    const first = (e: HearthError) =>
      (e.details.attempts as { error: { code: string; message: string; details: object } }[])[0]!.error;
    expect(first(e1)).toMatchObject({ code: 'net/protocol', details: { field: 'index', index: 9 } });
    expect(first(e2).code).toBe('net/protocol');
    expect(first(e2).message).toMatch(/announces 1099511627776 bytes/);
    expect(getter.scores.score(oob.id)).toBeLessThan(0);
    expect(getter.scores.score(huge.id)).toBeLessThan(0);
  }, 60_000);

  it('times out a peer that sends one piece then nothing (while still answering pings)', async () => {
    const h = sha(blob5);
    const trickler = await hostile('trickle-peer', (f, send) => {
      if (f.type === 'ping') send(encodeFrame({ type: 'pong', stream: f.stream }));
      if (f.type !== 'request') return;
      // Every range it is asked for gets a header; only the first piece ever follows.
      send(
        encodeFrame({
          type: 'header',
          stream: f.stream,
          kind: 'blob',
          totalBytes: blob5.byteLength,
          pieceSize: 65_536,
          firstPiece: f.fromPiece,
          sha256: h,
        }),
      );
      if (f.fromPiece === 0) send(encodePiece(f.stream, 0, blob5.subarray(0, 65_536)));
    });
    const honest = await node({ source: mapSource(blob5) });
    const getter = await node();
    // Both links open first, so the trickler (first in line) is the one asked for the first pieces.
    await getter.connect(trickler.id);
    await getter.connect(honest.id);
    const got = await getter.fetchBlob([trickler.id, honest.id], h);
    expect(sha(got.bytes)).toBe(h);
    const [a0, a1] = got.attempts;
    expect(a0).toMatchObject({ peer: trickler.id, fromPiece: 0, toPiece: 1, pieces: 1 });
    expect(a0?.error?.code).toBe('net/timeout');
    expect(a0?.error?.message).toMatch(/stalled at piece 1 of 80/);
    // The honest holder took every other piece, the trickler's stalled ones included, in its 64 KiB pieces.
    expect(a1).toEqual({ peer: honest.id, fromPiece: 1, toPiece: 80, pieces: 79 });
    expect(getter.scores.get(trickler.id)?.lastReason).toBe('net/timeout');
  }, 60_000);

  it('rejects a fetch of a malformed hash without touching the network', async () => {
    const getter = await node();
    await expect(getter.fetchBlob('anyone', 'not-a-hash')).rejects.toSatisfy((e) =>
      isHearthError(e, 'input/invalid'),
    );
    const err = await getter.fetchBlob('nobody-here', sha(small)).catch((e) => e);
    expect(isHearthError(err, 'blob/missing')).toBe(true);
    const code = ((err as HearthError).details.attempts as { error: { code: string } }[])[0]?.error.code;
    expect(['net/unreachable', 'net/timeout']).toContain(code);
  }, 60_000);
});

describe('bounds on what a peer can make us hold', () => {
  it('answers a fifth concurrent push with busy, then drops the stalled pusher', async () => {
    const received: ReceivedStream[] = [];
    const sink = await node({ onPush: (s) => received.push(s) });
    const pusher = await rawPeer(port, 'eager-pusher');
    closers.push(() => pusher.destroy());
    const conn = await rawConnect(pusher, sink.id);
    const errors: { stream: number; reason: string }[] = [];
    conn.on('data', (d) => {
      const f = decodeFrame(d);
      if (f.type === 'error') errors.push({ stream: f.stream, reason: f.reason });
    });
    const h = sha(small);
    // The connecting side owns odd stream ids: five pushes, headers only, no pieces ever.
    for (const stream of [1, 3, 5, 7, 9]) {
      conn.dataChannel.send(
        encodeFrame({
          type: 'header',
          stream,
          kind: 'blob',
          totalBytes: small.byteLength,
          pieceSize: 65_536,
          firstPiece: 0,
          sha256: h,
        }) as Uint8Array<ArrayBuffer>,
      );
    }
    // The four admitted pushes stall: the sink drops this peer (bounded wait: the stall timeout).
    // (Watched on the sink's side: PeerJS may never tell the pusher its connection closed.)
    await vi.waitFor(() => expect(sink.scores.get('eager-pusher')).toBeDefined(), {
      timeout: 20_000,
      interval: 100,
    });
    expect(sink.links).toBe(0);
    expect(errors).toEqual([{ stream: 9, reason: 'busy' }]);
    expect(received).toHaveLength(0);
    expect(sink.scores.get('eager-pusher')?.lastReason).toBe('net/timeout');
  }, 60_000);
});
