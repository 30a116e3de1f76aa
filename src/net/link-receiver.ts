// The receiving side of a link: the requests this side sent and the streams that answer them,
// and pushes from the peer. Frames arrive in order on a reliable channel; each piece is checked
// against the piece list where there is one, a whole blob against its SHA-256, and a range is
// acknowledged for the requester to check the whole. PeerLink routes frames here and owns the
// channel, the sending side and liveness.
import { type Deferred, deferred } from '../core/deferred.ts';
import { HearthError } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import type { DType, Shape } from '../core/tensor.ts';
import { checkPiece, encodeFrame, type Frame, pieceCount, type StreamHeader } from '../protocol/stream.ts';
import type { LinkTuning } from './link-tuning.ts';
import { PartialBlob } from './partial-blob.ts';
import type { PeerScores } from './peer-score.ts';

/** A blob or tensor a peer pushed, already verified against its SHA-256. */
export type ReceivedStream =
  | { readonly kind: 'blob'; readonly sha256: string; readonly bytes: Uint8Array; readonly from: string }
  | {
      readonly kind: 'tensor';
      readonly sha256: string;
      readonly bytes: Uint8Array;
      readonly dtype: DType;
      readonly shape: Shape;
      readonly from: string;
    };

/** What the receiving side needs of its link. */
export interface ReceiverHost {
  /** The far peer's id. */
  readonly peer: string;
  readonly tuning: LinkTuning;
  /** Told of verified pushes; without it pushes are refused. */
  readonly onPush?: ((s: ReceivedStream) => void) | undefined;
  /** Asked when a push's header arrives: false refuses it as if there were no `onPush`. */
  readonly acceptsPushes?: (() => boolean) | undefined;
  readonly scores?: PeerScores | undefined;
  /** Sends a frame; throws (having failed the link) when the link is dead. */
  send(frame: Uint8Array): void;
  /** The peer's fault: close the link with `err`. */
  fail(err: HearthError): void;
  /** An error naming the peer. */
  err(code: HearthError['code'], what: string, cause?: unknown): HearthError;
  isClosed(): boolean;
  /** Whether stream `id` has this side's parity (its requests and pushes). */
  mine(id: number): boolean;
}

/** One request as the link sends it. */
export interface StreamRequest {
  readonly sha256: string;
  readonly fromPiece: number;
  readonly toPiece: number | undefined;
  readonly pieceSize: number;
  readonly partial: PartialBlob;
  readonly onProgress: ((done: number, count: number) => void) | undefined;
  readonly onPiece: ((index: number) => void) | undefined;
}

interface Incoming {
  readonly header: StreamHeader;
  readonly partial: PartialBlob;
  /** Pieces of the whole blob. */
  readonly count: number;
  /** One past the last piece this stream carries. */
  readonly end: number;
  /** The piece due next (frames arrive in order). */
  next: number;
  /** A range: resolve once its pieces landed; the whole-blob check is the requester's. */
  readonly ranged: boolean;
  /** Piece checks run one after another, in arrival order. */
  chain: Promise<void>;
  lastProgress: number;
  readonly done: Deferred<Uint8Array>;
  readonly onProgress: ((done: number, count: number) => void) | undefined;
  readonly onPiece: ((index: number) => void) | undefined;
  /** A push (verified bytes go to onPush) rather than the answer to our request. */
  readonly pushed: boolean;
  /** Ended by the sender's error frame: pieces already received still land. */
  draining: boolean;
}
interface Request extends StreamRequest {
  readonly sha256: string;
  readonly fromPiece: number;
  readonly toPiece: number | undefined;
  readonly pieceSize: number;
  readonly partial: PartialBlob;
  readonly sentAt: number;
  readonly done: Deferred<Uint8Array>;
  readonly onProgress: ((done: number, count: number) => void) | undefined;
  readonly onPiece: ((index: number) => void) | undefined;
}

/** Refused push ids remembered so their in-flight pieces are dropped quietly. */
const MAX_IGNORED = 256;

function now(): number {
  return performance.now();
}

/**
 * The streams coming in on one link.
 *
 * @example
 * const rx = new LinkReceiver(host);                 // host: the link's send, fail, err…
 * const bytes = rx.expect(id, request);              // then send the request frame
 * rx.onHeader(frame); rx.onPiece(frame);             // as the link routes them
 */
export class LinkReceiver {
  readonly #h: ReceiverHost;
  readonly #requests = new Map<number, Request>();
  readonly #incoming = new Map<number, Incoming>();
  /** Streams we refused or cancelled: their in-flight pieces are dropped, not treated as garbage. */
  readonly #ignored = new Set<number>();

  constructor(host: ReceiverHost) {
    this.#h = host;
  }

  /** Stream `id` is a request this side is sending now: resolves with its bytes. */
  expect(id: number, init: StreamRequest): Promise<Uint8Array> {
    const req: Request = { ...init, sentAt: now(), done: deferred() };
    this.#requests.set(id, req);
    return req.done.promise;
  }

  /** The sender ended stream `id` with an error frame: pieces already received still land. */
  onError(id: number, err: HearthError): void {
    const req = this.#requests.get(id);
    const inc = this.#incoming.get(id);
    if (req) {
      this.#requests.delete(id);
      req.done.reject(err);
    } else if (inc) {
      this.#incoming.delete(id);
      // Pieces that arrived before the error still land (a partial holder ends a range at the
      // first piece it lacks); their checks run first.
      inc.draining = true;
      void inc.chain.then(() => inc.done.reject(err));
    }
  }

  /** Why the link must be dropped at time `t` for a request or stream without progress, if it must. */
  stalled(t: number): HearthError | undefined {
    const ms = this.#h.tuning.stallTimeoutMs;
    for (const [id, r] of this.#requests) {
      if (t - r.sentAt > ms)
        return this.#h.err('net/timeout', `request ${id} for blob ${r.sha256} unanswered`);
    }
    for (const [id, inc] of this.#incoming) {
      if (t - inc.lastProgress > ms) {
        return this.#h.err(
          'net/timeout',
          `stream ${id} stalled at piece ${inc.next} of ${inc.count} for ${ms} ms`,
        );
      }
    }
    return undefined;
  }

  /** The link closed: every request and stream fails with `err`. */
  failAll(err: HearthError): void {
    for (const r of this.#requests.values()) r.done.reject(err);
    for (const i of this.#incoming.values()) i.done.reject(err);
    this.#requests.clear();
    this.#incoming.clear();
  }

  /** A header: the answer to one of our requests, or a push. */
  onHeader(f: Extract<Frame, { type: 'header' }>): void {
    const { type: _t, stream: id, ...header } = f;
    if (this.#incoming.has(id)) throw this.#h.err('net/protocol', `a second header for stream ${id}`);
    const req = this.#requests.get(id);
    if (req) {
      this.#requests.delete(id);
      const p = req.partial;
      const bad = (what: string) => this.#h.err('net/protocol', `the header for blob ${req.sha256} ${what}`);
      if (header.kind !== 'blob') throw bad(`is a ${header.kind}, not a blob`);
      if (header.sha256 !== req.sha256) throw bad(`names another hash (${header.sha256})`);
      if (header.firstPiece !== req.fromPiece)
        throw bad(`starts at piece ${header.firstPiece}, not ${req.fromPiece}`);
      if (req.pieceSize !== 0 && header.pieceSize !== req.pieceSize) {
        throw bad(`uses pieces of ${header.pieceSize} bytes, not ${req.pieceSize}`);
      }
      if (header.totalBytes > this.#h.tuning.maxBlobBytes) {
        throw bad(`announces ${header.totalBytes} bytes, over the limit of ${this.#h.tuning.maxBlobBytes}`);
      }
      if (p.started && p.totalBytes !== header.totalBytes) {
        throw bad(`announces ${header.totalBytes} bytes where an earlier peer announced ${p.totalBytes}`);
      }
      if (p.started && p.pieceSize !== header.pieceSize) {
        throw bad(`uses pieces of ${header.pieceSize} bytes where the blob is in pieces of ${p.pieceSize}`);
      }
      if (!p.started) p.start(header.totalBytes, header.pieceSize);
      this.#begin(id, header, p, req.done, req, false);
      return;
    }
    if (this.#h.mine(id))
      throw this.#h.err('net/protocol', `a header for stream ${id}, which answers no request`);
    // A push. Refusing it is not the peer's fault: its pieces may already be in flight.
    if (this.#ignored.size >= MAX_IGNORED)
      this.#ignored.delete(this.#ignored.values().next().value as number);
    this.#ignored.add(id);
    if (!this.#h.onPush || this.#h.acceptsPushes?.() === false) {
      this.#h.send(
        encodeFrame({ type: 'error', stream: id, reason: 'refused', message: 'this peer takes no pushes' }),
      );
      return;
    }
    if (header.totalBytes > this.#h.tuning.maxPushBytes) {
      this.#h.send(
        encodeFrame({
          type: 'error',
          stream: id,
          reason: 'too-large',
          message: `limit is ${this.#h.tuning.maxPushBytes} bytes`,
        }),
      );
      return;
    }
    if (header.firstPiece !== 0)
      throw this.#h.err('net/protocol', `a push that starts at piece ${header.firstPiece}`);
    let pushes = 0;
    for (const inc of this.#incoming.values()) if (inc.pushed) pushes++;
    if (pushes >= this.#h.tuning.maxServing) {
      this.#h.send(
        encodeFrame({ type: 'error', stream: id, reason: 'busy', message: `${pushes} pushes in progress` }),
      );
      return;
    }
    this.#ignored.delete(id);
    const p = new PartialBlob(header.sha256);
    p.start(header.totalBytes, header.pieceSize);
    const done = deferred<Uint8Array>();
    done.promise.then(
      (bytes) => {
        const from = this.#h.peer;
        this.#h.onPush?.(
          header.kind === 'tensor'
            ? { kind: 'tensor', sha256: header.sha256, bytes, dtype: header.dtype, shape: header.shape, from }
            : { kind: 'blob', sha256: header.sha256, bytes, from },
        );
        // A push that fails (bad hash, dead link) has nobody waiting on it: the link's failure
        // path has already blamed the peer, so the rejection is deliberately dropped here.
      },
      () => {},
    );
    this.#begin(id, header, p, done, undefined, true);
  }

  #begin(
    id: number,
    header: StreamHeader,
    partial: PartialBlob,
    done: Deferred<Uint8Array>,
    req: Request | undefined,
    pushed: boolean,
  ): void {
    const count = pieceCount(header.totalBytes, header.pieceSize);
    const inc: Incoming = {
      header,
      partial,
      count,
      end: Math.min(req?.toPiece ?? count, count),
      next: header.firstPiece,
      ranged: req?.toPiece !== undefined,
      chain: Promise.resolve(),
      lastProgress: now(),
      done,
      onProgress: req?.onProgress,
      onPiece: req?.onPiece,
      pushed,
      draining: false,
    };
    this.#incoming.set(id, inc);
    if (inc.next >= inc.end) void this.#finish(id, inc);
  }

  /** A piece of a stream whose header came. */
  onPiece(f: Extract<Frame, { type: 'piece' }>): void {
    const inc = this.#incoming.get(f.stream);
    if (!inc) {
      if (this.#ignored.has(f.stream)) return;
      throw this.#h.err('net/protocol', `a piece for stream ${f.stream}, which has no header`);
    }
    checkPiece(inc.header, f.index, f.bytes.byteLength);
    // Data channels here are reliable and ordered: a piece out of order is a broken sender.
    if (f.index !== inc.next || f.index >= inc.end) {
      throw this.#h.err(
        'net/protocol',
        inc.next < inc.end
          ? `piece ${f.index} arrived where piece ${inc.next} was due`
          : `piece ${f.index} arrived after the requested range ended at ${inc.end}`,
      );
    }
    inc.next++;
    inc.lastProgress = now();
    const id = f.stream;
    const { index, bytes } = f;
    const p = inc.partial;
    const expected = p.pieceHashes?.[index];
    inc.chain = inc.chain.then(async () => {
      const got = expected === undefined ? undefined : await sha256Hex(bytes);
      if ((this.#incoming.get(id) !== inc && !inc.draining) || this.#h.isClosed()) return;
      if (got !== expected) {
        // The piece list comes from the hub: this peer, and only this one, sent a bad piece.
        this.#h.fail(
          new HearthError(
            'blob/corrupt',
            `Peer ${this.#h.peer} sent piece ${index} of blob ${p.sha256} hashing to ${got}, not ${expected}; ` +
              'the peer was dropped.',
            { details: { peer: this.#h.peer, sha256: p.sha256, piece: index, expected, got } },
          ),
        );
        return;
      }
      if (p.land(index, bytes)) inc.onPiece?.(index);
      inc.onProgress?.(p.landed, inc.count);
    });
    if (inc.next === inc.end) void inc.chain.then(() => this.#finish(id, inc));
  }

  async #finish(id: number, inc: Incoming): Promise<void> {
    if (inc.ranged || !inc.partial.complete) {
      // A range (or a blob still missing pieces another peer brings): acknowledge the pieces;
      // the whole blob is checked by whoever holds all of it.
      if (this.#incoming.get(id) !== inc) return;
      this.#incoming.delete(id);
      if (this.#h.isClosed()) return;
      try {
        this.#h.send(encodeFrame({ type: 'end', stream: id, ok: true, sha256: inc.header.sha256 }));
      } catch {
        // The link died after the last piece; the pieces have landed all the same.
      }
      // No reward yet: that waits for the whole blob's check (the requester's).
      inc.done.resolve(inc.partial.bytes);
      return;
    }
    const got = await sha256Hex(inc.partial.bytes);
    if (this.#incoming.get(id) !== inc) return;
    this.#incoming.delete(id);
    if (this.#h.isClosed()) return;
    const ok = got === inc.header.sha256;
    try {
      this.#h.send(encodeFrame({ type: 'end', stream: id, ok, sha256: inc.header.sha256 }));
    } catch {
      // The link died after the last piece; the bytes are still good (or still bad).
    }
    if (ok) {
      if (!inc.pushed) this.#h.scores?.reward(this.#h.peer);
      inc.done.resolve(inc.partial.bytes);
      return;
    }
    const err = new HearthError(
      'blob/corrupt',
      `Peer ${this.#h.peer} sent ${inc.header.totalBytes} bytes that hash to ${got}, not ${inc.header.sha256}; ` +
        'the peer was dropped.',
      { details: { peer: this.#h.peer, expected: inc.header.sha256, got } },
    );
    inc.done.reject(err);
    this.#h.fail(err);
  }
}
