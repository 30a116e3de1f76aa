// This volunteer's place on the data plane: a PeerJS Peer registered at the hub's own
// PeerServer (never a public broker), the links to other peers, blob serving from a local
// BlobSource, and fetching a blob's pieces from several holders at once, handing the pieces of a
// holder that dies, stalls or lies to the others.
import type { DataConnection, Peer } from 'peerjs';
import { HearthError, isHearthError } from '../core/errors.ts';
import { isSha256Hex, sha256Hex } from '../core/hash.ts';
import type { PieceHashes } from '../protocol/blob-pieces.ts';
import type { BlobSource } from '../store/blob-cache.ts';
import {
  DEFAULT_LINK_TUNING,
  type LinkTraffic,
  type LinkTuning,
  PartialBlob,
  PeerLink,
  type ReceivedStream,
} from './peer-link.ts';
import { PeerScores } from './peer-score.ts';

/**
 * `source` with its last few answers kept for a short while. Why: a swarm asks a holder for a
 * blob in ranges, one request each, often several requesters at once, and a source such as the
 * IndexedDB cache reads the whole blob on every get.
 */
function recentBlobs(source: BlobSource, entries = 2, ttlMs = 10_000): BlobSource {
  const kept = new Map<string, { bytes: Promise<Uint8Array | null>; timer: ReturnType<typeof setTimeout> }>();
  const forget = (sha256: string) => {
    const k = kept.get(sha256);
    if (k) clearTimeout(k.timer);
    kept.delete(sha256);
  };
  return {
    get(sha256) {
      const have = kept.get(sha256);
      const bytes = have?.bytes ?? source.get(sha256);
      forget(sha256);
      const timer = setTimeout(() => forget(sha256), ttlMs);
      // Node: a memo must not keep the process alive. Browsers have no unref.
      (timer as { unref?: () => void }).unref?.();
      kept.set(sha256, { bytes, timer });
      while (kept.size > entries) forget(kept.keys().next().value as string);
      // A miss or a failed read is not kept: the blob may arrive in a moment.
      bytes.then(
        (b) => {
          if (!b && kept.get(sha256)?.bytes === bytes) forget(sha256);
        },
        () => {
          if (kept.get(sha256)?.bytes === bytes) forget(sha256);
        },
      );
      return bytes;
    },
  };
}

/** Requests a fetch keeps in flight to each holder. */
const LANES = 2;

/** Pieces asked of the first holder while the blob's size is unknown (no piece list). */
const PROBE_PIECES = 4;

/**
 * Ranges in a row a partial holder may answer 'not-found' (it lacked a piece in time) before it
 * leaves the fetch; each miss hands the rest of its range to the others.
 */
const PARTIAL_MISSES = 4;

/** How long a fetched blob stays servable from memory after its fetch, while it is being stored. */
const KEEP_FETCHED_MS = 15_000;

/** Holders as `moreHolders` may name them: full holders, and peers still fetching the blob. */
export interface HolderLists {
  /** Peers holding the whole blob. */
  readonly peers: readonly string[];
  /** Peers still fetching it that serve the pieces they have (see {@link FetchBlobOptions.partialHolders}). */
  readonly partial?: readonly string[];
}

export interface PeerNodeOptions {
  /** The hub's host name, e.g. '127.0.0.1' or 'hub.example.org'. */
  readonly host: string;
  readonly port: number;
  /** Where the hub mounts its PeerServer. Default '/p2p'. */
  readonly path?: string;
  /** The PeerServer's realm key. Default 'hearth'. */
  readonly key?: string;
  /** wss/https to the hub. Default false. */
  readonly secure?: boolean;
  /**
   * STUN/TURN servers for ICE. Default [] (loopback and LAN only); deployments list theirs, e.g.
   * `[{ urls: 'stun:stun.example.org:3478' }, { urls: 'turn:turn.example.org', username, credential }]`.
   */
  readonly iceServers?: RTCIceServer[];
  /** More RTCConfiguration fields (node-datachannel needs `bindAddress: '127.0.0.1'` on loopback). */
  readonly rtcConfig?: Readonly<Record<string, unknown>>;
  /** This peer's id at the PeerServer; the server picks one when absent. */
  readonly id?: string;
  /** Blobs this peer serves to others. */
  readonly source?: BlobSource;
  /** Told of verified blobs and tensors that peers push. Without it pushes are refused. */
  readonly onPush?: (s: ReceivedStream) => void;
  /** Shared score map (one is made when absent). */
  readonly scores?: PeerScores;
  readonly tuning?: Partial<LinkTuning>;
  /** How long registering at the PeerServer, or one dial of a peer, may take. Default 5 s. */
  readonly connectTimeoutMs?: number;
  /** Dials of a peer before giving up when each times out or breaks while negotiating. Default 4. */
  readonly dialAttempts?: number;
}

/** One holder's part in one pass of a fetch. */
export interface FetchAttempt {
  readonly peer: string;
  /** The lowest piece this holder delivered (the first it was asked for when it delivered none). */
  readonly fromPiece: number;
  /** One past the highest piece this holder delivered (fromPiece when none). */
  readonly toPiece: number;
  /** Pieces this holder delivered that landed (and passed their piece check, with a piece list). */
  readonly pieces: number;
  /** Why this holder dropped out; absent for one that served every piece it was given. */
  readonly error?: HearthError;
}

export interface FetchResult {
  /** The blob, verified against its SHA-256. */
  readonly bytes: Uint8Array;
  readonly attempts: readonly FetchAttempt[];
}

export interface FetchBlobOptions {
  /** Piece size to ask for. Default: the holder's (a piece list's when `pieces` is given). */
  readonly pieceSize?: number;
  /**
   * Each piece's SHA-256 from a trusted source (the hub's `GET /v1/blobs/:sha256/pieces`): every
   * piece is checked as it lands, and a bad one is pinned on the one holder that sent it.
   * Without it, only the whole blob is checked (and a mismatch among several holders is sorted
   * out by asking them one at a time).
   */
  readonly pieces?: PieceHashes;
  /**
   * Asked now and then while fewer than `parallel` holders are at work: holders that turned up
   * since the fetch began (peers that finished their copy) join it and take a share.
   *
   * Full holders as a list, or full and partial holders as {@link HolderLists}.
   *
   * @example
   * node.fetchBlob(first, sha256, { moreHolders: async () => (await askHubForHolders(sha256)).peers });
   */
  readonly moreHolders?: () => Promise<readonly string[] | HolderLists>;
  /**
   * Peers that are fetching the blob themselves (the hub names them): each serves the pieces it
   * has already checked against the hub's piece list, waiting a little for one still on its
   * way. They work beside the full holders, after them in line; a range one cannot supply goes
   * back to the others, and after a few such misses in a row it leaves the fetch. Useful only
   * with `pieces` (a partial holder serves only a blob whose pieces it could check).
   */
  readonly partialHolders?: readonly string[];
  /** How often `moreHolders` is asked. Default 2 s. */
  readonly moreHoldersEveryMs?: number;
  /**
   * Holders asked at once, each for its own share of the pieces. Default 4. 1: one holder at a
   * time, one request at a time, pieces in order (the next holder resumes at the first hole).
   */
  readonly parallel?: number;
  /** Called after each piece lands, with the holder that sent it. */
  readonly onProgress?: (peer: string, piecesDone: number, pieceCount: number) => void;
}

function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  what: () => HearthError,
  onTimeout?: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(what());
    }, ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * A peer on the hub's PeerServer that serves and fetches blobs by hash.
 *
 * In Node, install WebRTC globals (node-datachannel's polyfill) and `WebSocket` before `open`:
 * PeerJS is loaded on first use and reads them then.
 *
 * @example
 * const node = await PeerNode.open({ host: 'hub.example.org', port: 443, secure: true, source: blobCache });
 * const { bytes } = await node.fetchBlob(['peer-a', 'peer-b'], sha256); // verified
 * node.close();
 */
export class PeerNode {
  readonly #peer: Peer;
  readonly #opts: PeerNodeOptions;
  readonly scores: PeerScores;
  /** Open links by peer id (one per peer; an incoming connection fills an empty slot). */
  readonly #links = new Map<string, PeerLink>();
  readonly #all = new Set<PeerLink>();
  readonly #dialing = new Map<string, { reject(e: HearthError): void }>();
  readonly #pushListeners = new Set<(s: ReceivedStream) => void>();
  readonly #traffic: LinkTraffic = { sent: 0, received: 0 };
  readonly #source: BlobSource | undefined;
  /**
   * Blobs this node is fetching with the hub's piece list (and, for a short while, ones it just
   * fetched): served to others piece by piece, every piece checked as it landed.
   */
  readonly #growing = new Map<string, { partial: PartialBlob; timer?: ReturnType<typeof setTimeout> }>();
  #closed = false;

  private constructor(peer: Peer, opts: PeerNodeOptions, scores: PeerScores) {
    this.#peer = peer;
    this.#opts = opts;
    this.#source = opts.source && recentBlobs(opts.source);
    this.scores = scores;
    peer.on('connection', (conn) => this.#accept(conn));
    peer.on('error', (e) => {
      // PeerJS reports a dial to an unknown id on the Peer, not on the connection.
      if (e.type === 'peer-unavailable') {
        for (const [id, d] of this.#dialing) {
          if (e.message.includes(id)) {
            d.reject(
              new HearthError('net/unreachable', `Peer ${id} is not connected to the hub.`, { cause: e }),
            );
          }
        }
      }
    });
  }

  /** Registers at the hub's PeerServer. Fails with 'net/unreachable' or 'net/timeout'. */
  static async open(opts: PeerNodeOptions): Promise<PeerNode> {
    const { Peer: PeerCtor } = await import('peerjs');
    const options = {
      host: opts.host,
      port: opts.port,
      path: opts.path ?? '/p2p',
      key: opts.key ?? 'hearth',
      secure: opts.secure ?? false,
      debug: 0,
      config: { ...opts.rtcConfig, iceServers: opts.iceServers ?? [] } as RTCConfiguration,
    };
    const peer = opts.id === undefined ? new PeerCtor(options) : new PeerCtor(opts.id, options);
    const where = `${opts.secure ? 'wss' : 'ws'}://${opts.host}:${opts.port}${options.path}`;
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          peer.once('open', () => resolve());
          peer.once('error', (e) =>
            reject(
              new HearthError('net/unreachable', `The PeerServer at ${where} refused: ${e.message}`, {
                cause: e,
              }),
            ),
          );
        }),
        opts.connectTimeoutMs ?? 5000,
        () => new HearthError('net/timeout', `The PeerServer at ${where} did not answer in time.`),
      );
    } catch (e) {
      peer.destroy();
      throw e;
    }
    return new PeerNode(peer, opts, opts.scores ?? new PeerScores());
  }

  /** This peer's id at the PeerServer (what others connect to). */
  get id(): string {
    return this.#peer.id;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Data-plane bytes this node has sent over all its links, closed ones included (frames, not IP). */
  get bytesSent(): number {
    return this.#traffic.sent;
  }

  /** Data-plane bytes this node has received over all its links, closed ones included. */
  get bytesReceived(): number {
    return this.#traffic.received;
  }

  /**
   * Adds a listener for verified pushes, beside the `onPush` option; returns its removal. While a
   * node has neither, its links refuse pushes. Why: a protocol built on pushes (all-reduce) can
   * attach to a node somebody else opened.
   *
   * @example
   * const off = node.addPushListener((s) => { if (s.kind === 'blob') inbox.take(s); });
   * off();
   */
  addPushListener(listener: (s: ReceivedStream) => void): () => void {
    this.#pushListeners.add(listener);
    return () => {
      this.#pushListeners.delete(listener);
    };
  }

  /** Links open right now. */
  get links(): number {
    return this.#all.size;
  }

  /** An open link to `peerId`, reusing one when there is one. */
  async connect(peerId: string): Promise<PeerLink> {
    if (this.#closed) throw new HearthError('net/unreachable', 'This peer node is closed.');
    const have = this.#links.get(peerId);
    if (have && !have.closeReason) return have;
    const tries = Math.max(1, this.#opts.dialAttempts ?? 4);
    let last: unknown;
    for (let i = 0; i < tries; i++) {
      // A pause before each retry: on a loaded machine an immediate redial meets the same race.
      if (i > 0) await new Promise((r) => setTimeout(r, 200 * i + Math.floor(Math.random() * 200)));
      if (this.#closed) break;
      try {
        return this.#adopt(await this.#dial(peerId), true);
      } catch (e) {
        last = e;
        // An unknown peer stays unknown; a dial that timed out or broke while negotiating is
        // worth another go.
        const again = isHearthError(e, 'net/timeout') || (isHearthError(e) && e.details.retryable === true);
        if (!again || this.#closed) break;
      }
    }
    throw last;
  }

  /**
   * One dial. Why retries exist: on a loaded machine a data channel's SCTP handshake sometimes
   * loses its first INIT and backs off 1 s, 2 s, 4 s…; a fresh connection opens sooner than
   * waiting that out.
   */
  async #dial(peerId: string): Promise<DataConnection> {
    const conn = this.#peer.connect(peerId, { serialization: 'raw', reliable: true });
    if (!conn) throw new HearthError('net/unreachable', `PeerJS could not start a connection to ${peerId}.`);
    const ms = this.#opts.connectTimeoutMs ?? 5000;
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          this.#dialing.set(peerId, { reject });
          conn.once('open', () => resolve());
          // PeerJS closes the RTCPeerConnection on a negotiation error (reported on the Peer as a
          // bare 'webrtc' error) and, as the connection never opened, emits no 'close': watch
          // the RTCPeerConnection itself so the dial fails now rather than at the timeout.
          const pc = conn.peerConnection;
          pc?.addEventListener('connectionstatechange', () => {
            if (pc.connectionState === 'closed' || pc.connectionState === 'failed') {
              reject(
                new HearthError(
                  'net/unreachable',
                  `The connection to ${peerId} ${pc.connectionState} while opening.`,
                  {
                    details: { peer: peerId, retryable: true },
                  },
                ),
              );
            }
          });
          conn.once('error', (e) =>
            reject(
              new HearthError('net/unreachable', `Connecting to ${peerId} failed: ${e.message}`, {
                cause: e,
              }),
            ),
          );
        }),
        ms,
        () => new HearthError('net/timeout', `Peer ${peerId} did not open a connection within ${ms} ms.`),
      );
      return conn;
    } catch (e) {
      conn.close();
      throw e;
    } finally {
      this.#dialing.delete(peerId);
    }
  }

  /**
   * Fetches a blob from up to `parallel` holders at once (best-scored first; a holder with a
   * negative score only stands in for one that dropped out). The pieces are split among them in
   * contiguous shares fetched a chunk at a time; a holder that finishes its share takes half of
   * the largest one left, and a holder that fails (dies, stalls, lies, lacks the blob) hands its
   * unfinished pieces back to the others, or to the next holder in line. With `pieces` every piece
   * is checked as it lands, so a bad one is pinned on its sender. The whole blob's SHA-256 is
   * always checked; when it fails with no piece list, one sole sender is dropped, and pieces from
   * several senders start over with one holder at a time. Fails with 'blob/missing'
   * (details.attempts says why each holder dropped out) when the holders run out.
   *
   * @example
   * const { bytes, attempts } = await node.fetchBlob(holders, sha256, { pieces: await hubPieceList(sha256) });
   */
  async fetchBlob(
    holders: string | readonly string[],
    sha256: string,
    options: FetchBlobOptions = {},
  ): Promise<FetchResult> {
    if (!isSha256Hex(sha256))
      throw new HearthError('input/invalid', `fetchBlob: ${JSON.stringify(sha256)} is not a SHA-256.`);
    const named = typeof holders === 'string' ? [holders] : [...holders];
    const ranked = this.scores.rank(named);
    const queue = [
      ...ranked.filter((p) => this.scores.score(p) >= 0),
      ...ranked.filter((p) => this.scores.score(p) < 0),
    ];
    const max = this.#opts.tuning?.maxBlobBytes ?? DEFAULT_LINK_TUNING.maxBlobBytes;
    if (options.pieces && options.pieces.totalBytes > max) {
      // Known up front: asking would only make every honest holder look like a liar.
      throw new HearthError(
        'input/invalid',
        `Blob ${sha256} is ${options.pieces.totalBytes} bytes, over this peer's limit of ${max}.`,
        { details: { sha256, totalBytes: options.pieces.totalBytes, limit: max } },
      );
    }
    const partial = new PartialBlob(sha256, options.pieces);
    const partialHolders = new Set(options.partialHolders ?? []);
    for (const p of named) partialHolders.delete(p);
    for (const p of this.scores.rank([...partialHolders])) {
      if (p !== this.id && !queue.includes(p) && !this.scores.banned(p)) queue.push(p);
    }
    const attempts: FetchAttempt[] = [];
    if (partial.pieceHashes) this.#grow(partial);
    let fetched = false;
    try {
      const result = await this.#fetchInto(queue, partial, partialHolders, attempts, named.length, options);
      fetched = true;
      return result;
    } finally {
      this.#stopGrowing(partial, fetched);
    }
  }

  /** Makes `partial` servable to others while it is fetched. */
  #grow(partial: PartialBlob): void {
    const was = this.#growing.get(partial.sha256);
    if (was?.timer) clearTimeout(was.timer);
    this.#growing.set(partial.sha256, { partial });
  }

  /**
   * Stops serving `partial`: at once after a failed fetch, after a short while after a good one
   * (the caller is storing it, and then serves it from its source).
   */
  #stopGrowing(partial: PartialBlob, keep: boolean): void {
    const entry = this.#growing.get(partial.sha256);
    if (entry?.partial !== partial) return;
    if (!keep || this.#closed) {
      this.#growing.delete(partial.sha256);
      return;
    }
    entry.timer = setTimeout(() => {
      if (this.#growing.get(partial.sha256) === entry) this.#growing.delete(partial.sha256);
    }, KEEP_FETCHED_MS);
    // Node: a memo must not keep the process alive. Browsers have no unref.
    (entry.timer as { unref?: () => void }).unref?.();
  }

  /** Whether this node serves pieces of a blob it is fetching (tests, status). */
  servesPartial(sha256: string): boolean {
    return this.#growing.has(sha256);
  }

  async #fetchInto(
    initial: string[],
    partial: PartialBlob,
    partialHolders: Set<string>,
    attempts: FetchAttempt[],
    namedCount: number,
    options: FetchBlobOptions,
  ): Promise<FetchResult> {
    let queue = initial;
    const sha256 = partial.sha256;
    let parallel = Math.max(1, Math.floor(options.parallel ?? 4));
    while (queue.length > 0) {
      const pass = await this.#pass(queue, partial, parallel, options, partialHolders);
      attempts.push(...pass.attempts);
      queue = queue.filter((p) => !pass.failed.has(p));
      if (!partial.complete) break;
      const got = await sha256Hex(partial.bytes);
      if (got === sha256) {
        for (const peer of pass.senders) if (!pass.failed.has(peer)) this.scores.reward(peer);
        return { bytes: partial.bytes, attempts };
      }
      const senders = [...pass.senders];
      const what = `${partial.totalBytes} bytes that hash to ${got}, not ${sha256}`;
      for (let i = attempts.length - pass.attempts.length; i < attempts.length; i++) {
        const a = attempts[i]!;
        if (!pass.senders.has(a.peer) || a.error) continue;
        const error =
          senders.length === 1
            ? new HearthError('blob/corrupt', `Peer ${a.peer} sent ${what}; the peer was dropped.`, {
                details: { peer: a.peer, expected: sha256, got },
              })
            : new HearthError(
                'blob/corrupt',
                `Pieces from ${senders.length} peers assembled into ${what}; asking one peer at a time.`,
                { details: { peer: a.peer, peers: senders, expected: sha256, got } },
              );
        attempts[i] = { ...a, error };
      }
      if (senders.length === 1) {
        // The one sender lied: drop it, as a link does when a whole blob hashes wrong.
        const liar = senders[0]!;
        this.scores.penalize(liar, 'blob/corrupt');
        this.#links.get(liar)?.close();
        queue = queue.filter((p) => p !== liar);
      } else {
        // No piece list says whose piece was bad: one holder at a time pins it on one.
        parallel = 1;
      }
      partial.reset();
    }
    throw new HearthError(
      'blob/missing',
      `No peer delivered blob ${sha256} (asked ${new Set(attempts.map((a) => a.peer)).size} of ${namedCount}): ` +
        (attempts.map((a) => `${a.peer}: ${a.error?.code}`).join(', ') || 'no holder left to ask') +
        '. Fetch it from the hub.',
      { details: { sha256, attempts: attempts.map((a) => ({ ...a, error: a.error?.toJSON() })) } },
    );
  }

  /**
   * One pass over `queue`: up to `parallel` holders fetch shares of the missing pieces into
   * `partial` until it is complete or every holder dropped out.
   */
  async #pass(
    queue: string[],
    partial: PartialBlob,
    parallel: number,
    options: FetchBlobOptions,
    partialHolders: Set<string> = new Set(),
  ): Promise<{ attempts: FetchAttempt[]; failed: Set<string>; senders: Set<string> }> {
    const sha256 = partial.sha256;
    const failed = new Set<string>();
    const senders = new Set<string>();
    // Per piece: which worker holds it (in flight or in its share; -1 for nobody) and whether a
    // request for it is out. Sized once the blob's size is known.
    let owner = new Int32Array(0);
    let flying = new Uint8Array(0);
    let chunk = 1;
    let probing = false;
    let wake: () => void = () => {};
    let changed = new Promise<void>((r) => (wake = r));
    const notify = () => {
      const w = wake;
      changed = new Promise<void>((r) => (wake = r));
      w();
    };
    const workers: { peer: string; index: number }[] = [];
    /** Per worker: pieces it could not supply in time (partial holders), not asked of it again. */
    const lacks = new Map<number, Set<number>>();

    /** Once the size is known: deal the missing pieces out in contiguous shares. */
    const split = () => {
      if (owner.length === partial.pieceCount || !partial.started) return;
      const n = partial.pieceCount;
      const probe = owner.length > 0 ? owner : undefined;
      owner = new Int32Array(n).fill(-1);
      const wasFlying = flying;
      flying = new Uint8Array(n);
      if (probe) {
        owner.set(probe.subarray(0, Math.min(n, probe.length)));
        flying.set(wasFlying.subarray(0, Math.min(n, wasFlying.length)));
      }
      let free: number[] = [];
      for (let i = 0; i < n; i++) if (!partial.has(i) && !flying[i]) free.push(i);
      if (partialHolders.size > 0 && free.length > 1) {
        // With partial holders in the swarm, each requester starts its full holders on another
        // part of the blob (a random rotation), so the partial holders soon hold different
        // pieces to serve one another instead of all waiting on the same first share.
        const at = Math.floor(Math.random() * free.length);
        free = [...free.slice(at), ...free.slice(0, at)];
      }
      // Smaller ranges where holders may still join, so there is more for them to take over.
      const k = Math.max(1, options.moreHolders ? parallel : Math.min(parallel, queue.length));
      chunk = Math.max(1, Math.min(16, Math.ceil(free.length / (k * 4))));
      // Shares go to the workers started so far; later ones (spares) take from them.
      const live = workers.filter((w) => !failed.has(w.peer));
      if (live.length === 0) return;
      free.forEach((piece, j) => {
        owner[piece] = live[Math.floor((j * live.length) / free.length)]!.index;
      });
    };

    /** The next range for worker `w`: its own share first, then unowned pieces, then half of the largest share. */
    const take = (w: number): [number, number] | undefined => {
      if (!partial.started) {
        if (probing) return undefined;
        probing = true;
        owner = new Int32Array(PROBE_PIECES).fill(w);
        flying = new Uint8Array(PROBE_PIECES).fill(1);
        return [0, PROBE_PIECES];
      }
      split();
      const n = partial.pieceCount;
      const lacked = lacks.get(w);
      const runFrom = (first: number, mine: (i: number) => boolean): [number, number] => {
        let end = first;
        while (
          end < n &&
          end - first < chunk &&
          mine(end) &&
          !partial.has(end) &&
          !flying[end] &&
          !lacked?.has(end)
        )
          end++;
        for (let i = first; i < end; i++) {
          owner[i] = w;
          flying[i] = 1;
        }
        return [first, end];
      };
      const open = (i: number) => !partial.has(i) && !flying[i] && !lacked?.has(i);
      for (let i = 0; i < n; i++) if (owner[i] === w && open(i)) return runFrom(i, (j) => owner[j] === w);
      for (let i = 0; i < n; i++) if (owner[i] === -1 && open(i)) return runFrom(i, (j) => owner[j] === -1);
      // A partial holder steals nothing: pieces it may lack would wait on it while the full
      // holder whose share they were could send them.
      if (partialHolders.has(workers[w]!.peer)) return undefined;
      // Steal: the tail half of the worker with the most pieces waiting in its share.
      const waiting = new Map<number, number[]>();
      for (let i = 0; i < n; i++) {
        if (owner[i]! >= 0 && owner[i] !== w && open(i)) {
          const list = waiting.get(owner[i]!) ?? [];
          list.push(i);
          waiting.set(owner[i]!, list);
        }
      }
      let victim: number[] | undefined;
      for (const list of waiting.values()) if (!victim || list.length > victim.length) victim = list;
      if (!victim) return undefined;
      for (const i of victim.slice(Math.floor(victim.length / 2))) owner[i] = w;
      for (let i = 0; i < n; i++) if (owner[i] === w && open(i)) return runFrom(i, (j) => owner[j] === w);
      return undefined;
    };

    /** Hands back a worker's unfinished pieces (its share and what it had in flight). */
    const release = (w: number) => {
      for (let i = 0; i < owner.length; i++) {
        if (owner[i] === w) {
          owner[i] = -1;
          flying[i] = 0;
        }
      }
      if (!partial.started) probing = false;
      notify();
    };

    const attempts: FetchAttempt[] = [];
    const run = async (peer: string, index: number): Promise<void> => {
      let pieces = 0;
      let lo = Number.POSITIVE_INFINITY;
      let hi = -1;
      let asked = -1;
      let error: HearthError | undefined;
      const asError = (e: unknown) =>
        isHearthError(e) ? e : new HearthError('net/unreachable', String(e), { cause: e });
      let link: PeerLink | undefined;
      try {
        link = await this.connect(peer);
      } catch (e) {
        error = asError(e);
        // A link lowers the score itself where the failure was the peer's fault; a dial does not.
        this.scores.penalize(peer, error.code);
      }
      let misses = 0;
      /** One request at a time, taking the next range as the last one lands. */
      const lane = async (l: PeerLink) => {
        while (!error && !partial.complete && !this.#closed) {
          const range = take(index);
          if (!range) {
            const lacked = lacks.get(index);
            if (lacked && lacked.size > 0) {
              // What is left may be only pieces this partial holder lacked a moment ago: ask it
              // again after a short wait (its misses still count), never wait on nothing.
              let timer: ReturnType<typeof setTimeout> | undefined;
              await Promise.race([changed, new Promise((r) => (timer = setTimeout(r, 1000)))]);
              clearTimeout(timer);
              lacked.clear();
            } else await changed;
            continue;
          }
          if (asked < 0) asked = range[0];
          const before = pieces;
          try {
            await l.fetch(sha256, {
              partial,
              fromPiece: range[0],
              toPiece: range[1],
              ...(options.pieceSize === undefined ? {} : { pieceSize: options.pieceSize }),
              onPiece: (i) => {
                pieces++;
                lo = Math.min(lo, i);
                hi = Math.max(hi, i);
                senders.add(peer);
                notify();
              },
              onProgress: (done, count) => options.onProgress?.(peer, done, count),
            });
            if (pieces > before) misses = 0;
          } catch (e) {
            if (partialHolders.has(peer) && isHearthError(e, 'blob/missing') && !l.closeReason) {
              // A partial holder lacked a piece in time: the rest of the range goes to others.
              // Not its fault; after a few misses in a row it leaves this fetch.
              misses = pieces > before ? 1 : misses + 1;
              const lacked = lacks.get(index) ?? new Set<number>();
              lacks.set(index, lacked);
              const first = partial.started ? partial.nextMissing(range[0]) : range[0];
              if (first < range[1]) lacked.add(first);
              if (misses >= PARTIAL_MISSES) error ??= asError(e);
              else if (pieces === before) {
                // It had none of the range: what is left of its share is as uncertain, so the
                // share goes back to everyone (full holders take it at once); it goes on with
                // pieces nobody has taken, or steals.
                for (let i = 0; i < owner.length; i++) if (owner[i] === index && !flying[i]) owner[i] = -1;
                notify();
                // A pause before asking again: no spin where it answers at once (its own fetch
                // has not begun, or it has no piece list and so serves nothing).
                await new Promise((r) => setTimeout(r, 100 * misses));
              }
            } else error ??= asError(e);
          } finally {
            // Whatever landed stays; the rest of the range is anybody's again.
            for (let i = range[0]; i < Math.min(range[1], flying.length); i++) {
              flying[i] = 0;
              if (!partial.has(i) && owner[i] === index) owner[i] = -1;
            }
            if (!partial.started) probing = false;
            notify();
          }
        }
      };
      // Two requests in flight per holder, so the round trip between ranges costs no time; one
      // when asked for one holder at a time, so pieces arrive in order and a resume starts where
      // the last holder stopped.
      const lanes = parallel === 1 ? 1 : LANES;
      if (link) await Promise.all(Array.from({ length: lanes }, () => lane(link)));
      if (error) {
        failed.add(peer);
        release(index);
      }
      const from = hi < 0 ? Math.max(0, asked) : lo;
      attempts[index] = {
        peer,
        fromPiece: from,
        toPiece: hi < 0 ? from : hi + 1,
        pieces,
        ...(error ? { error } : {}),
      };
    };

    // Up to `parallel` workers; one that drops out is replaced by the next holder in line.
    // Holders with a negative score stand in only for one that dropped out.
    const running = new Set<Promise<void>>();
    const started = new Set<string>();
    const startOne = (anyScore: boolean) => {
      const peer =
        queue.find((p) => !started.has(p) && !partialHolders.has(p) && this.scores.score(p) >= 0) ??
        queue.find((p) => !started.has(p) && this.scores.score(p) >= 0) ??
        (anyScore ? queue.find((p) => !started.has(p)) : undefined);
      if (peer === undefined) return false;
      started.add(peer);
      const index = workers.length;
      workers.push({ peer, index });
      const p: Promise<void> = run(peer, index).finally(() => running.delete(p));
      running.add(p);
      return true;
    };
    while (running.size < parallel && startOne(running.size === 0)) {}
    // Holders that turn up while the fetch runs (peers that finished their copy) join it: asked
    // at most once per interval, and only while a worker slot is free.
    const every = options.moreHoldersEveryMs ?? 2000;
    let asking = false;
    let lastAsked = performance.now();
    let wakePass: () => void = () => {};
    const askMore = () => {
      const more = options.moreHolders;
      if (!more || asking || partial.complete || running.size >= parallel) return;
      if (performance.now() - lastAsked < every) return;
      asking = true;
      more()
        .then((answer) => {
          let added = false;
          const full = Array.isArray(answer) ? answer : (answer as HolderLists).peers;
          const part = Array.isArray(answer) ? [] : ((answer as HolderLists).partial ?? []);
          for (const p of full) {
            // A partial holder that finished is a full one now (one already at work stays so
            // for this pass: it has its misses counted).
            if (typeof p === 'string' && !started.has(p)) partialHolders.delete(p);
          }
          for (const [list, isPartial] of [
            [full, false],
            [part, true],
          ] as const) {
            for (const p of list) {
              if (typeof p === 'string' && p !== this.id && !queue.includes(p) && !this.scores.banned(p)) {
                if (isPartial) partialHolders.add(p);
                queue.push(p);
                added = true;
              }
            }
          }
          if (added) wakePass();
        })
        .catch(() => {
          // No news is no loss: the holders already known carry on.
        })
        .finally(() => {
          asking = false;
          lastAsked = performance.now();
        });
    };
    while (running.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const tick = new Promise<void>((resolve) => {
        wakePass = resolve;
        if (options.moreHolders) timer = setTimeout(resolve, every);
      });
      await Promise.race([...running, tick]);
      clearTimeout(timer);
      askMore();
      while (!partial.complete && running.size < parallel && startOne(failed.size > 0)) {}
    }
    return { attempts: attempts.filter((a) => a !== undefined), failed, senders };
  }

  /** Closes every link and leaves the PeerServer. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const g of this.#growing.values()) clearTimeout(g.timer);
    this.#growing.clear();
    for (const l of this.#all) l.close();
    this.#peer.destroy();
  }

  #accept(conn: DataConnection): void {
    if (this.#closed || conn.serialization !== 'raw') {
      // Anything but raw frames is not Hearth's data plane.
      conn.on('open', () => conn.close());
      return;
    }
    const ms = this.#opts.connectTimeoutMs ?? 5000;
    const timer = setTimeout(() => conn.close(), ms);
    conn.once('open', () => {
      clearTimeout(timer);
      if (this.#closed) conn.close();
      else this.#adopt(conn, false);
    });
  }

  #dispatch(s: ReceivedStream): void {
    this.#opts.onPush?.(s);
    for (const l of [...this.#pushListeners]) {
      try {
        l(s);
      } catch {
        // One listener's bug must not keep the others from their pushes.
      }
    }
  }

  #adopt(conn: DataConnection, initiator: boolean): PeerLink {
    const link: PeerLink = new PeerLink(conn, {
      initiator,
      scores: this.scores,
      ...(this.#source ? { source: this.#source } : {}),
      partials: (sha256) => this.#growing.get(sha256)?.partial,
      onPush: (s) => this.#dispatch(s),
      acceptsPushes: () => this.#opts.onPush !== undefined || this.#pushListeners.size > 0,
      traffic: this.#traffic,
      ...(this.#opts.tuning ? { tuning: this.#opts.tuning } : {}),
      onClose: () => {
        this.#all.delete(link);
        if (this.#links.get(conn.peer) === link) this.#links.delete(conn.peer);
      },
    });
    if (!link.closeReason) {
      this.#all.add(link);
      const have = this.#links.get(conn.peer);
      if (initiator || !have || have.closeReason) this.#links.set(conn.peer, link);
    }
    return link;
  }
}
