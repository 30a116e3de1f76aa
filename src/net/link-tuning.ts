// The knobs of a link (PeerLink) and their defaults.
import { MAX_PIECE_BYTES } from '../protocol/stream.ts';

/** Knobs of a link; every field has a default. */
export interface LinkTuning {
  /** Piece size this side uses when it sends (a requester may ask for another). Default MAX_PIECE_BYTES. */
  readonly pieceBytes: number;
  /** Most bytes queued in the data channel before the sender waits. Default 4 MiB. */
  readonly windowBytes: number;
  /** The sender resumes when bufferedAmount falls to this. Default windowBytes / 2. */
  readonly lowWaterBytes: number;
  /** Largest blob this side accepts on request. Default 512 MiB. */
  readonly maxBlobBytes: number;
  /** Largest blob or tensor a peer may push unasked. Default 64 MiB. */
  readonly maxPushBytes: number;
  /**
   * Streams served at once, and pushes received at once (each direction counted apart); more
   * are answered 'busy'. Bounds the memory a peer can make this side hold. Default 4.
   */
  readonly maxServing: number;
  /** How often a ping goes out. Default 1 s. */
  readonly pingIntervalMs: number;
  /** The link fails with 'net/timeout' after this long without any frame. Default 6 s. */
  readonly idleTimeoutMs: number;
  /** A request unanswered, or a stream without a new piece, for this long fails the link. Default 8 s. */
  readonly stallTimeoutMs: number;
  /** How long a sender waits for the receiver's acknowledgement. Default 15 s. */
  readonly ackTimeoutMs: number;
  /** Cap on this side's upload rate in bytes per second (a volunteer's uplink); 0 = none. */
  readonly uploadBytesPerSecond: number;
  /**
   * Serving a blob this side is still fetching: how long one request may wait, in all, for
   * requested pieces that have not landed yet; a piece still missing then ends the stream with
   * 'not-found' (the requester asks another holder for the rest). Bounded per request, not per
   * piece, so a requester's range is never held hostage by a slow download; kept well under the
   * requester's stallTimeoutMs (at most half of this side's). Default 1.5 s.
   */
  readonly partialWaitMs: number;
}

export const DEFAULT_LINK_TUNING: LinkTuning = {
  pieceBytes: MAX_PIECE_BYTES,
  windowBytes: 4 * 1024 * 1024,
  lowWaterBytes: 2 * 1024 * 1024,
  maxBlobBytes: 512 * 1024 * 1024,
  maxPushBytes: 64 * 1024 * 1024,
  maxServing: 4,
  pingIntervalMs: 1000,
  idleTimeoutMs: 6000,
  stallTimeoutMs: 8000,
  ackTimeoutMs: 15_000,
  uploadBytesPerSecond: 0,
  partialWaitMs: 1500,
};
