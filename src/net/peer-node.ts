// This volunteer's place on the data plane: a PeerJS Peer registered at the hub's own
// PeerServer (never a public broker), the links to other peers, blob serving from a local
// BlobSource, and fetching a blob's pieces from several holders at once, handing the pieces of a
// holder that dies, stalls or lies to the others.
import type { DataConnection, Peer } from 'peerjs';
import { HearthError, isHearthError } from '../core/errors.ts';
import { isSha256Hex } from '../core/hash.ts';
import type { BlobSource } from '../store/blob-cache.ts';
import { type FetchBlobOptions, type FetchHost, type FetchResult, fetchFromHolders } from './blob-fetch.ts';
import type { ReceivedStream } from './link-receiver.ts';
import { DEFAULT_LINK_TUNING, type LinkTuning } from './link-tuning.ts';
import { PartialBlob } from './partial-blob.ts';
import { type LinkTraffic, PeerLink } from './peer-link.ts';
import { PeerScores } from './peer-score.ts';

export type { FetchAttempt, FetchBlobOptions, FetchResult, HolderLists } from './blob-fetch.ts';

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

/** How long a fetched blob stays servable from memory after its fetch, while it is being stored. */
const KEEP_FETCHED_MS = 15_000;

/**
 * Something carried on a node's pushes (all-reduce). Registered through
 * {@link PeerNodeOptions.protocols}, so it is attached before the node can take any push.
 */
export interface PeerProtocol {
  /** Unique among a node's protocols; {@link PeerNode.hasProtocol} asks by it. */
  readonly name: string;
  /** Called once, while the node is made and before it opens: add push listeners here. */
  attach(node: PeerNode): void;
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
  /**
   * Protocols carried on pushes (e.g. all-reduce's `allReduceProtocol`): each is attached as the
   * node is made, before it can accept a connection, so a message a peer sends the moment this
   * one opens is already routed to its protocol (kept until the protocol asks for it).
   *
   * @example
   * const node = await PeerNode.open({ host, port, protocols: [allReduceProtocol] });
   */
  readonly protocols?: readonly PeerProtocol[];
  /** Shared score map (one is made when absent). */
  readonly scores?: PeerScores;
  readonly tuning?: Partial<LinkTuning>;
  /** How long registering at the PeerServer, or one dial of a peer, may take. Default 5 s. */
  readonly connectTimeoutMs?: number;
  /** Dials of a peer before giving up when each times out or breaks while negotiating. Default 4. */
  readonly dialAttempts?: number;
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
  readonly #protocols = new Set<string>();
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
              new HearthError('net/unreachable', `Peer ${id} is not connected to the hub.`, {
                cause: e,
                details: { peer: id, unknown: true },
              }),
            );
          }
        }
      }
    });
    for (const p of opts.protocols ?? []) {
      if (this.#protocols.has(p.name)) continue;
      this.#protocols.add(p.name);
      p.attach(this);
    }
  }

  /** Whether the protocol named `name` was registered when this node opened. */
  hasProtocol(name: string): boolean {
    return this.#protocols.has(name);
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
    // Made before the PeerServer admits it: its handlers and protocols are in place before the
    // first connection can arrive.
    const node = new PeerNode(peer, opts, opts.scores ?? new PeerScores());
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
      node.close();
      throw e;
    }
    return node;
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
   * node has neither, its links refuse pushes. A protocol (see {@link PeerProtocol}) adds its
   * listener in `attach`, before the node opens.
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
    if (partial.pieceHashes) this.#grow(partial);
    let fetched = false;
    const host: FetchHost = {
      id: this.id,
      scores: this.scores,
      isClosed: () => this.#closed,
      connect: (peer) => this.connect(peer),
      drop: (peer) => this.#links.get(peer)?.close(),
    };
    try {
      const result = await fetchFromHolders(host, queue, partial, partialHolders, named.length, options);
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
