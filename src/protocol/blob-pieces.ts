// Per-piece SHA-256 hashes of a blob, from a trusted source (the hub's
// `GET /v1/blobs/:sha256/pieces`), so a requester fetching pieces from several peers checks each
// piece as it lands and pins a bad one on the one peer that sent it. The whole blob's hash is
// still checked at the end; the piece list only says who to blame, earlier.
//
// Body (JSON, small: 66 bytes a piece, ~135 KB for a 512 MiB blob):
//   { "v": 1, "sha256": "<hex>", "totalBytes": n, "pieceSize": BLOB_PIECE_BYTES,
//     "pieces": ["<hex of piece 0>", …] }
import { HearthError } from '../core/errors.ts';
import { isSha256Hex, sha256Hex } from '../core/hash.ts';
import { MAX_PIECE_BYTES, MIN_PIECE_BYTES, pieceCount } from './stream.ts';

/**
 * The piece size of every piece list the hub serves (and so of every swarm fetch that has one):
 * the largest piece that fits one data-channel message, as peers send by default.
 */
export const BLOB_PIECE_BYTES = MAX_PIECE_BYTES;
export const BLOB_PIECES_VERSION = 1;

/** A blob's per-piece hashes. */
export interface PieceHashes {
  readonly sha256: string;
  readonly totalBytes: number;
  readonly pieceSize: number;
  /** SHA-256 of each piece in order, 64 lowercase hex digits each. */
  readonly pieces: readonly string[];
}

/**
 * The piece list of `bytes` (whose SHA-256 is `sha256`) in pieces of `pieceSize`.
 *
 * @example
 * const list = await computePieceHashes(bytes, await sha256Hex(bytes));
 */
export async function computePieceHashes(
  bytes: Uint8Array,
  sha256: string,
  pieceSize: number = BLOB_PIECE_BYTES,
): Promise<PieceHashes> {
  const n = pieceCount(bytes.byteLength, pieceSize);
  const pieces: string[] = [];
  for (let i = 0; i < n; i++) {
    pieces.push(
      await sha256Hex(bytes.subarray(i * pieceSize, Math.min((i + 1) * pieceSize, bytes.byteLength))),
    );
  }
  return { sha256, totalBytes: bytes.byteLength, pieceSize, pieces };
}

function bad(what: string, field: string): HearthError {
  return new HearthError('input/invalid', `Bad piece list: ${what}.`, { details: { field } });
}

/**
 * Validates a piece list as parsed from JSON: the version, the blob it is for (`sha256`), sizes
 * within bounds and one well-formed hash per piece. Throws 'input/invalid' naming the field.
 *
 * @example
 * const list = parsePieceHashes(await res.json(), sha256, { maxTotalBytes: 512 << 20 });
 */
export function parsePieceHashes(
  body: unknown,
  sha256: string,
  limits: { readonly maxTotalBytes?: number } = {},
): PieceHashes {
  if (typeof body !== 'object' || body === null) throw bad('not a JSON object', 'body');
  const o = body as Record<string, unknown>;
  if (o.v !== BLOB_PIECES_VERSION) throw bad(`version ${String(o.v)} is not ${BLOB_PIECES_VERSION}`, 'v');
  if (o.sha256 !== sha256) throw bad(`it is for blob ${String(o.sha256)}, not ${sha256}`, 'sha256');
  const max = limits.maxTotalBytes ?? Number.MAX_SAFE_INTEGER;
  const total = o.totalBytes;
  if (typeof total !== 'number' || !Number.isSafeInteger(total) || total < 0 || total > max) {
    throw bad(`totalBytes ${String(total)} is not a byte count up to ${max}`, 'totalBytes');
  }
  const size = o.pieceSize;
  if (
    typeof size !== 'number' ||
    !Number.isInteger(size) ||
    size < MIN_PIECE_BYTES ||
    size > MAX_PIECE_BYTES
  ) {
    throw bad(`pieceSize ${String(size)} is outside [${MIN_PIECE_BYTES}, ${MAX_PIECE_BYTES}]`, 'pieceSize');
  }
  const pieces = o.pieces;
  const n = pieceCount(total, size);
  if (!Array.isArray(pieces) || pieces.length !== n) {
    throw bad(`expected ${n} piece hashes for ${total} bytes in pieces of ${size}`, 'pieces');
  }
  for (const p of pieces)
    if (!isSha256Hex(p)) throw bad('a piece hash is not 64 lowercase hex digits', 'pieces');
  return { sha256, totalBytes: total, pieceSize: size, pieces: pieces as string[] };
}
