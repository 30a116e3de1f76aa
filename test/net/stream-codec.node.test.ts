// The data plane's frame codec (src/protocol/stream.ts): every frame type round-trips, decoding is
// canonical (what decodes re-encodes to the same bytes), and seeded garbage — random bytes,
// truncations, bit flips and field mutations of valid frames — is refused with 'net/protocol'
// errors only, never another exception.
import { describe, expect, it } from 'vitest';
import { HearthError, isHearthError } from '../../src/core/errors.ts';
import {
  checkPiece,
  decodeFrame,
  encodeFrame,
  encodePiece,
  type Frame,
  MAX_FRAME_BYTES,
  MAX_PIECE_BYTES,
  MIN_PIECE_BYTES,
  pieceCount,
  type StreamHeader,
} from '../../src/protocol/stream.ts';
import { seededRng } from '../hub/fixtures.ts';

type Rng = () => number;
const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const hex = (r: Rng) => Array.from({ length: 64 }, () => '0123456789abcdef'[int(r, 0, 15)]).join('');
const bytes = (r: Rng, n: number) => Uint8Array.from({ length: n }, () => int(r, 0, 255));

function randomFrame(r: Rng): Frame {
  const stream = int(r, 0, 0xffff_ffff);
  switch (int(r, 0, 8)) {
    case 0: {
      const pieceSize = int(r, MIN_PIECE_BYTES, MAX_PIECE_BYTES);
      const totalBytes = int(r, 0, 2 ** 40);
      return {
        type: 'header',
        stream,
        kind: 'blob',
        totalBytes,
        pieceSize,
        firstPiece: int(r, 0, Math.min(pieceCount(totalBytes, pieceSize), 0xffff_ffff)),
        sha256: hex(r),
      };
    }
    case 1: {
      const shape = Array.from({ length: int(r, 0, 4) }, () => int(r, 0, 64));
      const dtype = (['f32', 'f16', 'i32', 'u32'] as const)[int(r, 0, 3)]!;
      const totalBytes = shape.reduce((a, b) => a * b, 1) * (dtype === 'f16' ? 2 : 4);
      return {
        type: 'header',
        stream,
        kind: 'tensor',
        dtype,
        shape,
        totalBytes,
        pieceSize: 4096,
        firstPiece: 0,
        sha256: hex(r),
      };
    }
    case 2:
      return { type: 'piece', stream, index: int(r, 0, 0xffff_ffff), bytes: bytes(r, int(r, 1, 300)) };
    case 3:
      return { type: 'end', stream, ok: r() < 0.5, sha256: hex(r) };
    case 4: {
      const fromPiece = int(r, 0, 0xffff_fffe);
      return {
        type: 'request',
        stream,
        sha256: hex(r),
        fromPiece,
        pieceSize: r() < 0.3 ? 0 : int(r, MIN_PIECE_BYTES, MAX_PIECE_BYTES),
        // Half of them ask for a range (the swarm's pieces), half for the rest of the blob.
        ...(r() < 0.5 ? { toPiece: int(r, fromPiece + 1, 0xffff_ffff) } : {}),
      };
    }
    case 5:
      return { type: 'error', stream, reason: 'not-found', message: `no blob ${int(r, 0, 1e6)} — here` };
    case 6:
      return { type: 'cancel', stream };
    case 7:
      return { type: 'ping', stream };
    default:
      return { type: 'pong', stream };
  }
}

function expectProtocolError(f: () => unknown, field?: string): HearthError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'decodeFrame should have refused this').toBeInstanceOf(HearthError);
  const err = caught as HearthError;
  expect(err.code).toBe('net/protocol');
  if (field) expect(err.details.field).toBe(field);
  return err;
}

describe('stream frame codec', () => {
  it('round-trips 3000 seeded frames of every type, canonically', () => {
    const r = seededRng(0x5eed);
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const f = randomFrame(r);
      seen.add(f.type === 'header' ? `header:${f.kind}` : f.type);
      const enc = encodeFrame(f);
      expect(enc.byteLength).toBeLessThanOrEqual(MAX_FRAME_BYTES);
      const dec = decodeFrame(enc, { maxTotalBytes: Number.MAX_SAFE_INTEGER });
      if (f.type === 'piece') {
        expect(dec).toMatchObject({ type: 'piece', stream: f.stream, index: f.index });
        expect([...(dec as { bytes: Uint8Array }).bytes]).toEqual([...f.bytes]);
      } else {
        expect(dec).toEqual(f);
      }
      expect([...encodeFrame(dec)]).toEqual([...enc]);
    }
    expect(seen.size).toBe(9);
  });

  it('fits the largest piece in exactly one 262144-byte message and refuses one byte more', () => {
    const big = encodePiece(1, 0, new Uint8Array(MAX_PIECE_BYTES));
    expect(big.byteLength).toBe(MAX_FRAME_BYTES);
    expect(decodeFrame(big)).toMatchObject({ type: 'piece', index: 0 });
    expect(() => encodePiece(1, 0, new Uint8Array(MAX_PIECE_BYTES + 1))).toThrow(HearthError);
    const over = new Uint8Array(MAX_FRAME_BYTES + 1);
    over.set(big);
    expectProtocolError(() => decodeFrame(over), 'length');
  });

  it('names what was wrong in hand-made bad frames', () => {
    const sha = 'ab'.repeat(32);
    const header = encodeFrame({
      type: 'header',
      stream: 3,
      kind: 'blob',
      totalBytes: 10_000,
      pieceSize: 4096,
      firstPiece: 0,
      sha256: sha,
    });
    const mut = (at: number, v: number) => {
      const c = header.slice();
      c[at] = v;
      return c;
    };
    expectProtocolError(() => decodeFrame(mut(0, 0x7b)), 'magic'); // '{' — someone sent JSON
    expect(expectProtocolError(() => decodeFrame(mut(1, 2)), 'version').message).toMatch(/version 2/);
    expectProtocolError(() => decodeFrame(mut(2, 99)), 'type');
    expectProtocolError(() => decodeFrame(mut(3, 1)), 'flags');
    expectProtocolError(() => decodeFrame(mut(8, 7)), 'kind');
    expectProtocolError(() => decodeFrame(header.subarray(0, 40)), 'length');
    expectProtocolError(() => decodeFrame('{"hello":1}'), 'message');
    expectProtocolError(() => decodeFrame({ not: 'bytes' }), 'message');
    // Oversized: 10,000 bytes against a 4 KiB limit.
    const big = expectProtocolError(() => decodeFrame(header, { maxTotalBytes: 4096 }), 'totalBytes');
    expect(big.details).toMatchObject({ totalBytes: 10_000, limit: 4096 });
    // Piece size below the minimum (bytes 20..24).
    const tiny = header.slice();
    new DataView(tiny.buffer).setUint32(20, 16, true);
    expectProtocolError(() => decodeFrame(tiny), 'pieceSize');
    // firstPiece past the end (3 pieces of 4096 for 10,000 bytes).
    const past = header.slice();
    new DataView(past.buffer).setUint32(24, 4, true);
    expectProtocolError(() => decodeFrame(past), 'firstPiece');
    // A tensor whose shape disagrees with its byte count.
    const t = encodeFrame({
      type: 'header',
      stream: 1,
      kind: 'tensor',
      dtype: 'f32',
      shape: [4, 4],
      totalBytes: 64,
      pieceSize: 4096,
      firstPiece: 0,
      sha256: sha,
    });
    const lying = t.slice();
    new DataView(lying.buffer).setUint32(60, 5, true);
    expectProtocolError(() => decodeFrame(lying), 'totalBytes');
    // An error frame claiming a longer message than it carries.
    const e = encodeFrame({ type: 'error', stream: 1, reason: 'busy', message: 'x' });
    const e2 = e.slice();
    new DataView(e2.buffer).setUint16(10, 100, true);
    expectProtocolError(() => decodeFrame(e2), 'length');
  });

  it('keeps a range-less request at 48 bytes and names a bad range end', () => {
    const sha = 'cd'.repeat(32);
    const rest = encodeFrame({ type: 'request', stream: 5, sha256: sha, fromPiece: 3, pieceSize: 0 });
    expect(rest.byteLength).toBe(48);
    const range = encodeFrame({
      type: 'request',
      stream: 5,
      sha256: sha,
      fromPiece: 3,
      pieceSize: 4096,
      toPiece: 9,
    });
    expect(range.byteLength).toBe(52);
    expect(decodeFrame(range)).toEqual({
      type: 'request',
      stream: 5,
      sha256: sha,
      fromPiece: 3,
      pieceSize: 4096,
      toPiece: 9,
    });
    // An empty range (toPiece = fromPiece) and a backwards one.
    for (const to of [3, 1]) {
      const bad = range.slice();
      new DataView(bad.buffer).setUint32(48, to, true);
      const err = expectProtocolError(() => decodeFrame(bad), 'toPiece');
      expect(err.details).toMatchObject({ fromPiece: 3, toPiece: to });
    }
    // Neither 48 nor 52 bytes.
    expectProtocolError(() => decodeFrame(range.subarray(0, 50)), 'length');
    expect(() =>
      encodeFrame({ type: 'request', stream: 5, sha256: sha, fromPiece: 3, pieceSize: 0, toPiece: 3 }),
    ).toThrow(/toPiece 3 does not end a range/);
  });

  it('checks a piece against its header: index range and exact size', () => {
    const h: StreamHeader = {
      kind: 'blob',
      totalBytes: 10_000,
      pieceSize: 4096,
      firstPiece: 1,
      sha256: 'ab'.repeat(32),
    };
    checkPiece(h, 1, 4096);
    checkPiece(h, 2, 10_000 - 8192);
    expect(() => checkPiece(h, 0, 4096)).toThrow(/outside \[1, 3\)/);
    expect(() => checkPiece(h, 3, 4096)).toThrow(/outside/);
    expect(() => checkPiece(h, 2, 4096)).toThrow(/holds 4096 bytes, expected 1808/);
    try {
      checkPiece(h, 7, 1);
    } catch (e) {
      expect(isHearthError(e, 'net/protocol')).toBe(true);
      expect((e as HearthError).details).toMatchObject({ field: 'index', index: 7 });
    }
  });

  it('refuses 5000 seeded garbage and mutated frames with net/protocol errors only', () => {
    const r = seededRng(0xbad);
    let refused = 0;
    let accepted = 0;
    for (let i = 0; i < 5000; i++) {
      let input: Uint8Array;
      const mode = int(r, 0, 3);
      if (mode === 0) {
        input = bytes(r, int(r, 0, 120)); // noise
        if (r() < 0.5 && input.length > 2) {
          input[0] = 0x48; // past the magic, into the parser proper
          input[1] = 1;
        }
      } else {
        const valid = encodeFrame(randomFrame(r));
        if (mode === 1) input = valid.subarray(0, int(r, 0, valid.length - 1));
        else if (mode === 2) {
          input = valid.slice();
          for (let k = int(r, 1, 3); k > 0; k--) input[int(r, 0, input.length - 1)]! ^= 1 << int(r, 0, 7);
        } else {
          input = new Uint8Array(valid.length + int(r, 1, 8));
          input.set(valid);
        }
      }
      try {
        const f = decodeFrame(input, { maxTotalBytes: 2 ** 32 });
        accepted++;
        // Whatever decodes is a well-formed frame: it re-encodes without complaint.
        if (f.type !== 'error') expect(encodeFrame(f).byteLength).toBe(input.byteLength);
      } catch (e) {
        expect(e, String(e)).toBeInstanceOf(HearthError);
        expect((e as HearthError).code).toBe('net/protocol');
        expect((e as HearthError).message).toMatch(/^Bad data-plane frame: /);
        refused++;
      }
    }
    // Both paths ran: mutations in payload bytes or hashes decode, structural ones do not.
    expect(refused).toBeGreaterThan(2500);
    expect(accepted).toBeGreaterThan(100);
  });
});
