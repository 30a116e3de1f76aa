// The hub's piece lists, `GET /v1/blobs/:sha256/pieces`: public like the blob route, each piece's
// SHA-256 matching the stored bytes (computed here with node:crypto, independently of the hub),
// the same list again from its memo, 404 for a blob the hub lacks, 400 for a malformed hash; and
// the client's parser refusing lists that do not describe the blob asked for.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { BLOB_PIECE_BYTES, parsePieceHashes } from '../../src/protocol/blob-pieces.ts';
import { seededBytes } from '../net/seeded.ts';
import { ADMIN, sha, type TestHub, testHub, upload } from './hub-helpers.ts';

let th: TestHub;
const blob = seededBytes(3 * BLOB_PIECE_BYTES + 1000, 31) as Uint8Array<ArrayBuffer>;
const tiny = seededBytes(10, 32) as Uint8Array<ArrayBuffer>;

beforeAll(async () => {
  th = await testHub({ maxBlobBytes: 4 << 20 });
  await upload(th.hub.url, ADMIN, [blob, tiny]);
});
afterAll(async () => {
  await th?.dispose();
});

describe('GET /v1/blobs/:sha256/pieces', () => {
  it('lists each piece’s SHA-256 without a token, the same from its memo', async () => {
    const r = await fetch(`${th.hub.url}/v1/blobs/${sha(blob)}/pieces`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await r.json()) as Record<string, unknown>;
    const want = [0, 1, 2, 3].map((i) =>
      createHash('sha256')
        .update(blob.subarray(i * BLOB_PIECE_BYTES, (i + 1) * BLOB_PIECE_BYTES))
        .digest('hex'),
    );
    expect(body).toEqual({
      v: 1,
      sha256: sha(blob),
      totalBytes: blob.byteLength,
      pieceSize: BLOB_PIECE_BYTES,
      pieces: want,
    });
    expect(parsePieceHashes(body, sha(blob)).pieces).toEqual(want);
    const again = await fetch(`${th.hub.url}/v1/blobs/${sha(blob)}/pieces`);
    expect(await again.json()).toEqual(body);
    // A blob smaller than one piece has one piece: itself.
    const one = (await (await fetch(`${th.hub.url}/v1/blobs/${sha(tiny)}/pieces`)).json()) as {
      pieces: string[];
    };
    expect(one.pieces).toEqual([sha(tiny)]);
  });

  it('answers 404 for a blob the hub lacks and 400 for a malformed hash', async () => {
    const missing = await fetch(`${th.hub.url}/v1/blobs/${'0'.repeat(64)}/pieces`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('blob/missing');
    const bad = await fetch(`${th.hub.url}/v1/blobs/not-a-hash/pieces`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('input/invalid');
    const upper = await fetch(`${th.hub.url}/v1/blobs/${sha(blob).toUpperCase()}/pieces`);
    expect(upper.status).toBe(400);
  });

  it('the parser refuses a list for another blob, of the wrong length, or with a bad hash', () => {
    const good = {
      v: 1,
      sha256: sha(blob),
      totalBytes: blob.byteLength,
      pieceSize: BLOB_PIECE_BYTES,
      pieces: ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64), 'd'.repeat(64)],
    };
    const field = (body: unknown, limit?: number) => {
      try {
        parsePieceHashes(body, sha(blob), limit === undefined ? {} : { maxTotalBytes: limit });
      } catch (e) {
        expect(e).toBeInstanceOf(HearthError);
        return (e as HearthError).details.field;
      }
      return 'accepted';
    };
    expect(field(good)).toBe('accepted');
    expect(field({ ...good, sha256: sha(tiny) })).toBe('sha256');
    expect(field({ ...good, v: 2 })).toBe('v');
    expect(field({ ...good, pieces: good.pieces.slice(1) })).toBe('pieces');
    expect(field({ ...good, pieces: [...good.pieces.slice(1), 'XYZ'] })).toBe('pieces');
    expect(field({ ...good, pieceSize: 12 })).toBe('pieceSize');
    expect(field(good, 1000)).toBe('totalBytes');
    expect(field('[]')).toBe('body');
  });
});
