// The hub's answer to `GET /v1/blobs/:sha256/pieces`: each piece's SHA-256, read from the stored
// blob once and kept in a bounded LRU (a list is derivable, so losing it costs one re-read).
// Why the hub: it is the trusted source a swarm fetch checks peers' pieces against.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { BLOB_PIECE_BYTES, type PieceHashes } from '../protocol/blob-pieces.ts';
import type { BlobDir } from './blobs.ts';

/**
 * Piece lists of a BlobDir's blobs, memoised. Concurrent asks for one blob share one read.
 *
 * @example
 * const lists = new PieceHashCache(blobs);
 * const list = await lists.get(sha); // undefined when the hub lacks the blob
 */
export class PieceHashCache {
  readonly #blobs: BlobDir;
  readonly #max: number;
  readonly #pieceSize: number;
  /** Insertion order is recency: a hit moves its entry to the end. */
  readonly #lists = new Map<string, Promise<PieceHashes | undefined>>();

  constructor(blobs: BlobDir, options: { maxEntries?: number; pieceSize?: number } = {}) {
    this.#blobs = blobs;
    this.#max = options.maxEntries ?? 256;
    this.#pieceSize = options.pieceSize ?? BLOB_PIECE_BYTES;
  }

  get(sha256: string): Promise<PieceHashes | undefined> {
    let p = this.#lists.get(sha256);
    if (p) {
      this.#lists.delete(sha256);
    } else {
      p = this.#compute(sha256);
      // A missing blob or a failed read is not remembered: it may be uploaded or readable later.
      p.then(
        (list) => {
          if (!list) this.#lists.delete(sha256);
        },
        () => this.#lists.delete(sha256),
      );
    }
    this.#lists.set(sha256, p);
    while (this.#lists.size > this.#max) this.#lists.delete(this.#lists.keys().next().value as string);
    return p;
  }

  async #compute(sha256: string): Promise<PieceHashes | undefined> {
    if (!this.#blobs.has(sha256)) return undefined;
    const size = this.#pieceSize;
    const file = await open(this.#blobs.path(sha256), 'r');
    try {
      const { size: totalBytes } = await file.stat();
      const buf = Buffer.alloc(size);
      const pieces: string[] = [];
      for (let at = 0; at < totalBytes; at += size) {
        const want = Math.min(size, totalBytes - at);
        let got = 0;
        while (got < want) {
          const { bytesRead } = await file.read(buf, got, want - got, at + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        pieces.push(createHash('sha256').update(buf.subarray(0, got)).digest('hex'));
      }
      return { sha256, totalBytes, pieceSize: size, pieces };
    } finally {
      await file.close();
    }
  }
}
