// A blob being assembled piece by piece from one or several peers: one buffer, which pieces
// landed, and (with the hub's piece list) the hash each piece must have. Shared by the links that
// fill it, the fetch that schedules its pieces, and the link that serves it while it grows.
import { HearthError } from '../core/errors.ts';
import type { PieceHashes } from '../protocol/blob-pieces.ts';
import { pieceCount } from '../protocol/stream.ts';

/**
 * A blob being assembled, from several peers at once or in turn: one buffer and a map of which
 * pieces landed (and, with trusted piece hashes, were verified). Pass the same object to several
 * links' {@link PeerLink.fetch} with disjoint ranges, or to the next peer's to resume from any hole.
 */
export class PartialBlob {
  readonly sha256: string;
  totalBytes = -1;
  pieceSize = 0;
  bytes: Uint8Array = new Uint8Array(0);
  /**
   * SHA-256 of each piece from a trusted source (the hub's piece list): with them every piece is
   * checked as it lands and a bad one is pinned on the peer that sent it.
   */
  readonly pieceHashes: readonly string[] | undefined;
  /** One byte per piece: 1 once it landed. */
  #have: Uint8Array = new Uint8Array(0);
  #landed = 0;
  /** Servers waiting for a piece to land (see {@link waitFor}). */
  readonly #waiters = new Set<() => void>();

  /**
   * @example
   * const partial = new PartialBlob(sha256, await hubPieceList(sha256)); // sized and checked per piece
   */
  constructor(sha256: string, pieces?: PieceHashes) {
    this.sha256 = sha256;
    if (pieces) {
      if (
        pieces.sha256 !== sha256 ||
        pieces.pieces.length !== pieceCount(pieces.totalBytes, pieces.pieceSize)
      ) {
        throw new HearthError('input/invalid', `The piece list does not describe blob ${sha256}.`);
      }
      this.pieceHashes = pieces.pieces;
      this.start(pieces.totalBytes, pieces.pieceSize);
    }
  }

  get started(): boolean {
    return this.totalBytes >= 0;
  }

  get pieceCount(): number {
    return this.started ? pieceCount(this.totalBytes, this.pieceSize) : 0;
  }

  /** Pieces that landed so far. */
  get landed(): number {
    return this.#landed;
  }

  /** Whether every piece landed (vacuously true for an empty blob once started). */
  get complete(): boolean {
    return this.started && this.#landed === this.pieceCount;
  }

  /** The first piece that has not landed: where a resume starts. */
  get nextPiece(): number {
    return this.nextMissing(0);
  }

  /** The first piece at or after `from` that has not landed (pieceCount when none). */
  nextMissing(from: number): number {
    const n = this.pieceCount;
    let i = Math.max(0, from);
    while (i < n && this.#have[i] === 1) i++;
    return i;
  }

  has(index: number): boolean {
    return this.#have[index] === 1;
  }

  /** Sizes the buffer (from the first header, or from a piece list). */
  start(totalBytes: number, pieceSize: number): void {
    this.totalBytes = totalBytes;
    this.pieceSize = pieceSize;
    this.bytes = new Uint8Array(totalBytes);
    this.#have = new Uint8Array(pieceCount(totalBytes, pieceSize));
    this.#landed = 0;
  }

  /** Stores piece `index` (already checked where it can be); false when it had landed before. */
  land(index: number, bytes: Uint8Array): boolean {
    if (this.#have[index] === 1) return false;
    this.bytes.set(bytes, index * this.pieceSize);
    this.#have[index] = 1;
    this.#landed++;
    for (const w of [...this.#waiters]) w();
    return true;
  }

  /**
   * Resolves true once piece `index` has landed, false after `ms` without it (or at once when
   * `stop()` says so). Bounded: a peer serving this partial never waits longer than asked.
   */
  async waitFor(index: number, ms: number, stop?: () => boolean): Promise<boolean> {
    const until = performance.now() + ms;
    while (!this.has(index)) {
      const left = until - performance.now();
      if (left <= 0 || stop?.()) return this.has(index);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.#waiters.delete(done);
          resolve();
        };
        // A backstop re-check: `stop` may turn true without a piece landing.
        const t = setTimeout(done, Math.min(left, 250));
        this.#waiters.add(done);
      });
    }
    return true;
  }

  /** Forgets every piece (after the assembled bytes failed their hash); a piece list keeps the size. */
  reset(): void {
    if (this.pieceHashes) {
      this.start(this.totalBytes, this.pieceSize);
      return;
    }
    this.totalBytes = -1;
    this.pieceSize = 0;
    this.bytes = new Uint8Array(0);
    this.#have = new Uint8Array(0);
    this.#landed = 0;
  }
}
