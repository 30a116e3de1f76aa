// One PeerJS DataConnection (serialization 'raw') speaking the frames of protocol/stream.ts:
// blob requests and resumes, pushed blobs and tensors, flow control on the data channel's
// bufferedAmount, an acknowledgement after the last piece, and liveness of our own. This file is
// the sending and serving side and the link's life; what comes in (answers to our requests,
// pushes) is link-receiver.ts, the knobs are link-tuning.ts.
//
// Why our own liveness: when the far side dies, PeerJS fires neither 'close' nor 'error' and ICE
// only reaches 'disconnected' after ~5 s (TESTING.md). So the link pings, expects to hear
// *something* within idleTimeoutMs, and expects an active stream to make progress within
// stallTimeoutMs — a peer that answers pings but trickles pieces is dropped too.
//
// Stream ids: each side numbers the streams it starts (its requests and its pushes) with its own
// parity — odd for the side that opened the connection, even for the other — so ids never
// collide and a header with the wrong parity that answers no request is garbage.
import type { DataConnection } from 'peerjs';
import { type Deferred, deferred } from '../core/deferred.ts';
import { HearthError, isHearthError } from '../core/errors.ts';
import { isSha256Hex, sha256Hex } from '../core/hash.ts';
import type { DType, Shape } from '../core/tensor.ts';
import {
  checkHeader,
  decodeFrame,
  encodeFrame,
  encodePiece,
  type Frame,
  pieceCount,
  pieceRange,
  type StreamErrorReason,
  type StreamHeader,
} from '../protocol/stream.ts';
import type { BlobSource } from '../store/blob-cache.ts';
import { LinkReceiver, type ReceivedStream, type StreamRequest } from './link-receiver.ts';
import { DEFAULT_LINK_TUNING, type LinkTuning } from './link-tuning.ts';
import { PartialBlob } from './partial-blob.ts';
import type { PeerScores } from './peer-score.ts';

/** Data-plane bytes counted at the frame level (framing, pings and acks included). */
export interface LinkTraffic {
  sent: number;
  received: number;
}

export interface PeerLinkOptions {
  /** True on the side that called `peer.connect` (decides stream-id parity). */
  readonly initiator: boolean;
  /** Where requested blobs are served from; without one every request is answered 'not-found'. */
  readonly source?: BlobSource;
  /**
   * Blobs this side is fetching itself, asked when `source` lacks one: only a partial with the
   * hub's piece hashes is served (each of its pieces was checked as it landed), piece by piece,
   * waiting up to `partialWaitMs` in all for pieces still on their way.
   */
  readonly partials?: (sha256: string) => PartialBlob | undefined;
  /** Told of verified pushes; without it pushes are refused. */
  readonly onPush?: (s: ReceivedStream) => void;
  /**
   * Asked when a push's header arrives: false refuses it as if there were no `onPush`. Lets a
   * node that adds push listeners later (all-reduce) keep refusing pushes until it has one.
   */
  readonly acceptsPushes?: () => boolean;
  /**
   * Running totals this link adds every frame's bytes to (sent: handed to the data channel,
   * received: taken from it), so a node can count its traffic across links that come and go.
   */
  readonly traffic?: LinkTraffic;
  /** Lowered when this peer misbehaves, raised after good transfers. */
  readonly scores?: PeerScores;
  /** Told once when the link closes, with why. */
  readonly onClose?: (reason: HearthError) => void;
  readonly tuning?: Partial<LinkTuning>;
}

export interface FetchOptions {
  /** Resume into this partial blob (it must be for the same hash). */
  readonly partial?: PartialBlob;
  /** Piece size to ask for when starting fresh (0: the sender's choice). */
  readonly pieceSize?: number;
  /** First piece to ask for. Default: the partial's first hole. */
  readonly fromPiece?: number;
  /**
   * Ask for pieces [fromPiece, toPiece) only (clamped to the blob's end). The fetch then resolves
   * when they landed, without the whole-blob check, which is the caller's once all ranges are in.
   */
  readonly toPiece?: number;
  /** Called after each piece lands (and passed its piece check), with the partial's totals. */
  readonly onProgress?: (piecesDone: number, pieceCount: number) => void;
  /** Called with the index of each piece this fetch landed. */
  readonly onPiece?: (index: number) => void;
}

interface Outgoing {
  stopped: HearthError | undefined;
  readonly ack: Deferred<boolean>;
}

const REASON_TO_CODE: Readonly<Record<StreamErrorReason, HearthError['code']>> = {
  'not-found': 'blob/missing',
  refused: 'net/refused',
  busy: 'net/refused',
  'too-large': 'net/refused',
  protocol: 'net/protocol',
};

/** Codes for which the far side is to blame (and its score drops). */
// A closed connection is not blamed: peers close links when done, and a dead one is caught by
// the heartbeat as 'net/timeout'.
const BLAMED = new Set<HearthError['code']>(['net/protocol', 'blob/corrupt', 'net/timeout']);

function now(): number {
  return performance.now();
}

/** Size of one DataChannel message, whatever form the polyfill or browser delivers it in. */
function messageBytes(data: unknown): number {
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return typeof data === 'string' ? data.length : 0;
}

/**
 * The data plane over one DataConnection. Make one per open connection, on both sides.
 *
 * @example
 * const link = new PeerLink(conn, { initiator: true, source: blobCache });
 * const bytes = await link.fetch(sha256); // verified
 * await link.sendTensor({ dtype: 'f32', shape: [1024], bytes }); // resolves on the peer's ack
 */
export class PeerLink {
  /** The far peer's id. */
  readonly peer: string;
  readonly #conn: DataConnection;
  readonly #opts: PeerLinkOptions;
  readonly #t: LinkTuning;
  #nextId: number;
  #closed: HearthError | undefined;
  #lastHeard = now();
  #pingNonce = 0;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #rx: LinkReceiver;
  readonly #outgoing = new Map<number, Outgoing>();
  readonly #wakers = new Set<() => void>();
  #sentBytes = 0;
  readonly #sendStart = now();
  readonly #traffic: LinkTraffic = { sent: 0, received: 0 };
  /** Resolves once with the reason the link closed. */
  readonly closed: Promise<HearthError>;
  #resolveClosed!: (e: HearthError) => void;

  constructor(conn: DataConnection, opts: PeerLinkOptions) {
    this.peer = conn.peer;
    this.#conn = conn;
    this.#opts = opts;
    const t = { ...DEFAULT_LINK_TUNING, ...opts.tuning };
    if (opts.tuning?.windowBytes !== undefined && opts.tuning.lowWaterBytes === undefined) {
      t.lowWaterBytes = Math.floor(t.windowBytes / 2);
    }
    this.#t = t;
    this.#nextId = opts.initiator ? 1 : 2;
    this.#rx = new LinkReceiver({
      peer: this.peer,
      tuning: t,
      onPush: opts.onPush,
      acceptsPushes: opts.acceptsPushes,
      scores: opts.scores,
      send: (frame) => this.#send(frame),
      fail: (err) => this.#fail(err),
      err: (code, what, cause) => this.#err(code, what, cause),
      isClosed: () => this.#closed !== undefined,
      mine: (id) => this.#mine(id),
    });
    this.closed = new Promise((r) => (this.#resolveClosed = r));
    const dc = conn.dataChannel;
    if (dc) dc.bufferedAmountLowThreshold = t.lowWaterBytes;
    dc?.addEventListener('bufferedamountlow', () => this.#wake());
    conn.on('data', (d) => this.#onMessage(d));
    conn.on('close', () => this.#fail(this.#err('net/unreachable', 'the peer closed the connection')));
    conn.on('error', (e) =>
      this.#fail(this.#err('net/unreachable', `the connection failed: ${(e as Error).message}`, e)),
    );
    conn.on('iceStateChanged', (s) => {
      // 'disconnected' can heal in a browser, but a blob can resume from another holder at
      // once, which beats waiting on a link that may not come back.
      if (s === 'failed' || s === 'closed' || s === 'disconnected') {
        this.#fail(this.#err('net/unreachable', `ICE went to '${s}'`));
      }
    });
    this.#timer = setInterval(() => this.#tick(), t.pingIntervalMs);
    // Node: a link somebody forgot must not keep the process alive. Browsers have no unref.
    (this.#timer as { unref?: () => void }).unref?.();
    if (!conn.open) this.#fail(this.#err('net/unreachable', 'the connection is not open'));
  }

  /** Why the link closed, or undefined while it is open. */
  get closeReason(): HearthError | undefined {
    return this.#closed;
  }

  /** Every byte of every frame this link has sent (pieces, headers, acks, pings). */
  get bytesSent(): number {
    return this.#traffic.sent;
  }

  /** Every byte of every frame this link has received. */
  get bytesReceived(): number {
    return this.#traffic.received;
  }

  /** Bytes waiting in the data channel's send buffer (0 once closed). */
  get bufferedAmount(): number {
    return this.#conn.dataChannel?.bufferedAmount ?? 0;
  }

  /**
   * Fetches a blob by SHA-256 from this peer, resuming `options.partial` where it stopped. The
   * bytes are verified before the promise resolves — except for a range (`options.toPiece`), which
   * resolves once its pieces landed (each checked when the partial has piece hashes) and leaves
   * the whole blob's check to the caller. Fails with 'blob/missing' when the peer
   * lacks the blob, 'blob/corrupt' when its bytes hash wrong (the link is then closed), and
   * 'net/*' when the link dies, stalls or speaks garbage — the partial keeps what arrived.
   */
  fetch(sha256: string, options: FetchOptions = {}): Promise<Uint8Array> {
    if (!isSha256Hex(sha256)) {
      return Promise.reject(
        new HearthError('input/invalid', `fetch: ${JSON.stringify(sha256)} is not a SHA-256.`),
      );
    }
    const partial = options.partial ?? new PartialBlob(sha256);
    if (partial.sha256 !== sha256) {
      return Promise.reject(new HearthError('input/invalid', 'fetch: the partial blob is for another hash.'));
    }
    if (this.#closed) return Promise.reject(this.#closed);
    const id = this.#takeId();
    const req: StreamRequest = {
      sha256,
      fromPiece: options.fromPiece ?? partial.nextPiece,
      toPiece: options.toPiece,
      pieceSize: partial.started ? partial.pieceSize : (options.pieceSize ?? 0),
      partial,
      onProgress: options.onProgress,
      onPiece: options.onPiece,
    };
    const done = this.#rx.expect(id, req);
    try {
      this.#send(
        encodeFrame({
          type: 'request',
          stream: id,
          sha256,
          fromPiece: req.fromPiece,
          pieceSize: req.pieceSize,
          ...(req.toPiece === undefined ? {} : { toPiece: req.toPiece }),
        }),
      );
    } catch {
      // #send failed the link, which rejected this request with the reason.
    }
    return done;
  }

  /** Pushes a blob; resolves when the peer acknowledged bytes that matched their hash. */
  async sendBlob(bytes: Uint8Array, options: { sha256?: string } = {}): Promise<void> {
    const sha256 = options.sha256 ?? (await sha256Hex(bytes));
    await this.#push(
      { kind: 'blob', totalBytes: bytes.byteLength, pieceSize: this.#t.pieceBytes, firstPiece: 0, sha256 },
      bytes,
    );
  }

  /** Pushes a tensor (dtype, shape, little-endian bytes); resolves on the peer's acknowledgement. */
  async sendTensor(t: { dtype: DType; shape: Shape; bytes: Uint8Array }): Promise<void> {
    const sha256 = await sha256Hex(t.bytes);
    const header: StreamHeader = {
      kind: 'tensor',
      dtype: t.dtype,
      shape: t.shape,
      totalBytes: t.bytes.byteLength,
      pieceSize: this.#t.pieceBytes,
      firstPiece: 0,
      sha256,
    };
    try {
      checkHeader(header, { maxTotalBytes: Number.MAX_SAFE_INTEGER });
    } catch (e) {
      throw new HearthError('tensor/shape', (e as Error).message, { cause: e });
    }
    await this.#push(header, t.bytes);
  }

  /** Closes the link (no blame on the peer). Pending work fails with 'net/unreachable'. */
  close(): void {
    this.#shut(
      new HearthError('net/unreachable', `The link to peer ${this.peer} was closed locally.`),
      false,
    );
  }

  // ---- sending -------------------------------------------------------------------------------

  #takeId(): number {
    const id = this.#nextId;
    this.#nextId = this.#nextId + 2 > 0xffff_ffff ? (this.#nextId % 2) + 2 : this.#nextId + 2;
    return id;
  }

  #send(frame: Uint8Array): void {
    if (this.#closed) throw this.#closed;
    try {
      this.#conn.dataChannel.send(frame as Uint8Array<ArrayBuffer>);
      this.#traffic.sent += frame.byteLength;
      if (this.#opts.traffic) this.#opts.traffic.sent += frame.byteLength;
    } catch (e) {
      const err = this.#err('net/unreachable', `sending failed: ${(e as Error).message}`, e);
      this.#fail(err);
      throw err;
    }
  }

  #wake(): void {
    for (const w of [...this.#wakers]) w();
  }

  /** Waits until `n` more bytes fit in the window: on 'bufferedamountlow', not by polling. */
  async #room(n: number): Promise<void> {
    while (!this.#closed && this.bufferedAmount + n > this.#t.windowBytes) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.#wakers.delete(done);
          resolve();
        };
        // The event fires only when the amount crosses the threshold; a backstop re-check covers
        // a crossing that happened between the check above and this listener.
        const t = setTimeout(done, 250);
        this.#wakers.add(done);
      });
    }
    if (this.#closed) throw this.#closed;
    const rate = this.#t.uploadBytesPerSecond;
    if (rate > 0) {
      const due = this.#sendStart + ((this.#sentBytes + n) / rate) * 1000;
      const wait = due - now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      if (this.#closed) throw this.#closed;
    }
    this.#sentBytes += n;
  }

  /** The receiver's verdict on stream `id` (its `end` frame), or 'net/timeout' after ackTimeoutMs. */
  async #acked(id: number, out: Outgoing): Promise<boolean> {
    const timer = setTimeout(
      () =>
        out.ack.reject(
          this.#err('net/timeout', `no acknowledgement of stream ${id} within ${this.#t.ackTimeoutMs} ms`),
        ),
      this.#t.ackTimeoutMs,
    );
    try {
      return await out.ack.promise;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends header and pieces [firstPiece, end) of `bytes` as stream `id`, then awaits the ack. */
  async #stream(
    id: number,
    header: StreamHeader,
    bytes: Uint8Array,
    out: Outgoing,
    end = pieceCount(header.totalBytes, header.pieceSize),
  ): Promise<boolean> {
    this.#send(encodeFrame({ type: 'header', stream: id, ...header }));
    for (let i = header.firstPiece; i < end; i++) {
      const [start, end] = pieceRange(header, i);
      await this.#room(end - start + 12);
      if (out.stopped) throw out.stopped;
      this.#send(encodePiece(id, i, bytes.subarray(start, end)));
    }
    return await this.#acked(id, out);
  }

  async #push(header: StreamHeader, bytes: Uint8Array): Promise<void> {
    if (this.#closed) throw this.#closed;
    const id = this.#takeId();
    const out: Outgoing = { stopped: undefined, ack: deferred() };
    this.#outgoing.set(id, out);
    try {
      const ok = await this.#stream(id, header, bytes, out);
      if (!ok) {
        throw new HearthError(
          'net/refused',
          `Peer ${this.peer} says the pushed ${header.kind} did not match its hash.`,
          {
            details: { peer: this.peer, sha256: header.sha256 },
          },
        );
      }
    } finally {
      this.#outgoing.delete(id);
    }
  }

  async #serve(id: number, f: Extract<Frame, { type: 'request' }>): Promise<void> {
    const refuse = (reason: StreamErrorReason, message: string) =>
      this.#send(encodeFrame({ type: 'error', stream: id, reason, message }));
    if (this.#outgoing.size >= this.#t.maxServing)
      return refuse('busy', 'serving too many streams; ask later');
    const out: Outgoing = { stopped: undefined, ack: deferred() };
    this.#outgoing.set(id, out);
    try {
      const bytes = this.#opts.source ? await this.#opts.source.get(f.sha256) : null;
      if (this.#closed || out.stopped) return;
      if (!bytes) {
        const growing = this.#opts.partials?.(f.sha256);
        // Only a partial checked piece by piece against the hub's hashes is served.
        if (growing?.pieceHashes && (f.pieceSize === 0 || f.pieceSize === growing.pieceSize)) {
          await this.#servePartial(id, f, growing, out);
          return;
        }
        return refuse('not-found', `no blob ${f.sha256} here`);
      }
      const header: StreamHeader = {
        kind: 'blob',
        totalBytes: bytes.byteLength,
        pieceSize: f.pieceSize || this.#t.pieceBytes,
        firstPiece: f.fromPiece,
        sha256: f.sha256,
      };
      const count = pieceCount(header.totalBytes, header.pieceSize);
      if (f.fromPiece > count) {
        return refuse('protocol', `piece ${f.fromPiece} is past the end of the blob`);
      }
      // A range past the end is clamped: a requester may ask before it knows the size.
      const ok = await this.#stream(id, header, bytes, out, Math.min(f.toPiece ?? count, count));
      if (ok) this.#opts.scores?.reward(this.peer);
    } catch {
      // The link's own failure path has already reported and blamed; a cancel needs nothing.
    } finally {
      this.#outgoing.delete(id);
    }
  }

  /**
   * Serves pieces [fromPiece, toPiece) of a blob this side is still fetching: each piece as soon
   * as it has landed here (checked against the hub's hash), waiting up to `partialWaitMs` in all
   * for pieces still on their way; a piece that does not come in time ends the stream with
   * 'not-found', and the requester asks another holder for the rest.
   */
  async #servePartial(
    id: number,
    f: Extract<Frame, { type: 'request' }>,
    partial: PartialBlob,
    out: Outgoing,
  ): Promise<void> {
    const header: StreamHeader = {
      kind: 'blob',
      totalBytes: partial.totalBytes,
      pieceSize: partial.pieceSize,
      firstPiece: f.fromPiece,
      sha256: f.sha256,
    };
    const count = partial.pieceCount;
    const refuse = (message: string) =>
      this.#send(encodeFrame({ type: 'error', stream: id, reason: 'not-found', message }));
    if (f.fromPiece > count) {
      return this.#send(
        encodeFrame({
          type: 'error',
          stream: id,
          reason: 'protocol',
          message: `piece ${f.fromPiece} is past the end of the blob`,
        }),
      );
    }
    const end = Math.min(f.toPiece ?? count, count);
    // Bounded well inside the requester's stall timeout, so a wait is never taken for a stall.
    // One budget for the whole request: the wait ends at a fixed time, however many pieces.
    const until = now() + Math.max(0, Math.min(this.#t.partialWaitMs, this.#t.stallTimeoutMs / 2));
    const stop = () => this.#closed !== undefined || out.stopped !== undefined;
    const waitFor = (i: number) => partial.waitFor(i, Math.max(0, until - now()), stop);
    if (f.fromPiece < end && !(await waitFor(f.fromPiece))) {
      if (!stop()) refuse(`piece ${f.fromPiece} of blob ${f.sha256} is not here yet`);
      return;
    }
    if (stop()) return;
    this.#send(encodeFrame({ type: 'header', stream: id, ...header }));
    for (let i = f.fromPiece; i < end; i++) {
      if (!partial.has(i) && !(await waitFor(i))) {
        if (!stop()) refuse(`piece ${i} of blob ${f.sha256} is not here yet`);
        return;
      }
      const [start, stopAt] = pieceRange(header, i);
      await this.#room(stopAt - start + 12);
      if (out.stopped) throw out.stopped;
      // Read after the wait: a partial that failed its whole-blob check starts over with a fresh
      // buffer, and has() then says so.
      if (!partial.has(i)) {
        refuse(`piece ${i} of blob ${f.sha256} is no longer here`);
        return;
      }
      this.#send(encodePiece(id, i, partial.bytes.subarray(start, stopAt)));
    }
    if (await this.#acked(id, out)) this.#opts.scores?.reward(this.peer);
  }

  // ---- receiving -----------------------------------------------------------------------------

  #onMessage(data: unknown): void {
    if (this.#closed) return;
    this.#lastHeard = now();
    const n = messageBytes(data);
    this.#traffic.received += n;
    if (this.#opts.traffic) this.#opts.traffic.received += n;
    let f: Frame;
    try {
      f = decodeFrame(data, { maxTotalBytes: Math.max(this.#t.maxBlobBytes, this.#t.maxPushBytes) });
      this.#route(f);
    } catch (e) {
      this.#fail(isHearthError(e) ? e : this.#err('net/protocol', (e as Error).message, e));
    }
  }

  #mine(id: number): boolean {
    return id % 2 === (this.#opts.initiator ? 1 : 0);
  }

  #route(f: Frame): void {
    switch (f.type) {
      case 'ping':
        this.#send(encodeFrame({ type: 'pong', stream: f.stream }));
        return;
      case 'pong':
        return;
      case 'request':
        if (this.#mine(f.stream) || this.#outgoing.has(f.stream)) {
          throw this.#err('net/protocol', `request on stream ${f.stream}, which is not the peer's to open`);
        }
        // #serve reports its own failures; a send that throws has already failed the link.
        this.#serve(f.stream, f).catch(() => {});
        return;
      case 'header':
        this.#rx.onHeader(f);
        return;
      case 'piece':
        this.#rx.onPiece(f);
        return;
      case 'end': {
        const out = this.#outgoing.get(f.stream);
        out?.ack.resolve(f.ok);
        return;
      }
      case 'cancel': {
        const out = this.#outgoing.get(f.stream);
        if (out) {
          out.stopped = this.#err('net/refused', `the peer cancelled stream ${f.stream}`);
          out.ack.reject(out.stopped);
        }
        return;
      }
      case 'error': {
        const err = new HearthError(
          REASON_TO_CODE[f.reason],
          `Peer ${this.peer} answered ${f.reason}: ${f.message}`.slice(0, 600),
          { details: { peer: this.peer, stream: f.stream, reason: f.reason } },
        );
        this.#rx.onError(f.stream, err);
        const out = this.#outgoing.get(f.stream);
        if (out) {
          out.stopped = err;
          out.ack.reject(err);
        }
        return;
      }
    }
  }

  // ---- liveness and failure ------------------------------------------------------------------

  #tick(): void {
    if (this.#closed) return;
    const stall = this.#stalled(now());
    if (stall) {
      this.#fail(stall);
      return;
    }
    try {
      this.#send(encodeFrame({ type: 'ping', stream: this.#pingNonce++ >>> 0 }));
    } catch {
      // #send has failed the link.
    }
  }

  /** Why the link must be dropped at time `t` for lack of progress, if it must. */
  #stalled(t: number): HearthError | undefined {
    if (t - this.#lastHeard > this.#t.idleTimeoutMs) {
      return this.#err('net/timeout', `nothing heard for ${Math.round(t - this.#lastHeard)} ms`);
    }
    return this.#rx.stalled(t);
  }

  #err(code: HearthError['code'], what: string, cause?: unknown): HearthError {
    return new HearthError(code, `Peer ${this.peer}: ${what}.`, {
      details: { peer: this.peer },
      ...(cause === undefined ? {} : { cause }),
    });
  }

  /** The peer's fault: close with `err` and lower its score. */
  #fail(err: HearthError): void {
    this.#shut(err, BLAMED.has(err.code));
  }

  #shut(err: HearthError, blame: boolean): void {
    if (this.#closed) return;
    this.#closed = err;
    clearInterval(this.#timer);
    if (blame) this.#opts.scores?.penalize(this.peer, err.code);
    this.#rx.failAll(err);
    for (const o of this.#outgoing.values()) {
      o.stopped = err;
      o.ack.reject(err);
    }
    this.#wake();
    try {
      this.#conn.close();
    } catch {
      // Closing a half-dead connection may throw inside PeerJS; it is closed either way.
    }
    this.#resolveClosed(err);
    this.#opts.onClose?.(err);
  }
}
