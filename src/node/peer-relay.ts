// PeerJS signalling between hubs on one database (issue 15). A PeerJS peer signals through the
// PeerServer of the hub it is connected to, and that server only knows its own peers: an OFFER
// for a peer connected to another hub would wait in its queue and expire. So the hub looks at
// each OFFER, ANSWER, CANDIDATE and LEAVE a local peer sends: one for a peer that is not here but
// that another hub issued (the peer directory says which) is handed to that hub (PostgreSQL
// NOTIFY on its channel, in order) instead of to PeerServer, and that hub writes it to its peer's
// socket exactly as PeerServer would have. The bytes still flow peer to peer; only the few
// signalling messages of a dial (an SDP and its candidates, a few KiB) cross the database.
//
// Why relaying rather than one PeerServer for all hubs: every hub stays a full hub (no single
// point of failure, nothing to elect); a hub that dies takes only its own peers' signalling.
import type { WebSocket } from 'ws';
import type { PeerDirectory } from '../hub/peer-directory.ts';

/** What the relay needs of the directory: where a peer is, and a way to reach that hub. */
export type RelayDirectory = Pick<PeerDirectory, 'hub' | 'relay' | 'start' | 'hubOf'>;

/** PeerJS's server-side client object, as far as the relay uses it. */
interface PeerClient {
  getId(): string;
  getSocket(): unknown;
  send(data: unknown): void;
}

/** Signalling messages that go from one peer to another (the rest are the server's own). */
const RELAYED = new Set(['OFFER', 'ANSWER', 'CANDIDATE', 'LEAVE']);
/** A peer id as the hubs issue them, and then some: anything longer is not one. */
const MAX_ID_CHARS = 128;

interface Signal {
  readonly type: string;
  readonly src: string;
  readonly dst: string;
  readonly payload?: unknown;
}

function parseSignal(text: string): Signal | undefined {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null) return undefined;
  const { type, src, dst, payload } = m as Record<string, unknown>;
  if (typeof type !== 'string' || !RELAYED.has(type)) return undefined;
  if (typeof dst !== 'string' || dst.length === 0 || dst.length > MAX_ID_CHARS) return undefined;
  if (src !== undefined && (typeof src !== 'string' || src.length > MAX_ID_CHARS)) return undefined;
  return { type, src: src ?? '', dst, ...(payload === undefined ? {} : { payload }) };
}

export interface SignalRelayOptions {
  /** How long a message for a peer not (yet) connected here is held (default 5 s). */
  readonly holdMs?: number;
  /** Messages held at once over all peers (default 1000); more are dropped. */
  readonly maxHeld?: number;
  /**
   * Messages per second one peer may send to peers that are not here (default 50; a dial is an
   * OFFER and a few CANDIDATEs), with a burst of twice that. Past it they are dropped: each costs
   * a NOTIFY, and a lookup in the database the first time a peer id is named.
   */
  readonly perPeerPerSecond?: number;
}

/**
 * The relay of one hub's PeerServer. `connection` wraps each signalling socket as it opens;
 * `joined` / `left` follow PeerServer's own clients.
 *
 * @example
 * const relay = new SignalRelay(store.peers);
 * await relay.start();
 */
export class SignalRelay {
  readonly #dir: RelayDirectory;
  readonly #local = new Map<string, PeerClient>();
  readonly #held = new Map<string, { at: number; text: string }[]>();
  readonly #holdMs: number;
  readonly #maxHeld: number;
  readonly #rate: number;
  /** Per local socket: tokens left and when they were last counted. */
  readonly #buckets = new WeakMap<WebSocket, { tokens: number; at: number }>();
  #heldCount = 0;
  /** Messages handed to other hubs, delivered here from them, dropped over the rate (tests, stats). */
  readonly counts = { out: 0, in: 0, dropped: 0 };

  constructor(dir: RelayDirectory, opts: SignalRelayOptions = {}) {
    this.#dir = dir;
    this.#holdMs = opts.holdMs ?? 5_000;
    this.#maxHeld = opts.maxHeld ?? 1000;
    this.#rate = opts.perPeerPerSecond ?? 50;
  }

  /** Hears the other hubs' messages for peers here. */
  start(): Promise<void> {
    return this.#dir.start((text) => this.#arrived(text));
  }

  /**
   * A signalling socket of peer `id` opened: its messages for peers of other hubs go there
   * instead of to PeerServer (which would queue them for a peer it will never see).
   */
  connection(socket: WebSocket, id: string): void {
    const emit = socket.emit.bind(socket);
    socket.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'message' && this.#forwarded(socket, id, args[0])) return true;
      return emit(event, ...args);
    }) as typeof socket.emit;
  }

  /** PeerServer admitted a client. */
  joined(client: PeerClient): void {
    const id = client.getId();
    this.#local.set(id, client);
    const held = this.#held.get(id);
    if (!held) return;
    this.#held.delete(id);
    this.#heldCount -= held.length;
    const now = Date.now();
    for (const h of held) if (now - h.at <= this.#holdMs) this.#deliver(client, h.text);
  }

  /** PeerServer let a client go. */
  left(client: PeerClient): void {
    const id = client.getId();
    if (this.#local.get(id) === client) this.#local.delete(id);
  }

  #forwarded(socket: WebSocket, id: string, data: unknown): boolean {
    // Only a socket PeerServer admitted under this id speaks for it.
    if (this.#local.get(id)?.getSocket() !== socket) return false;
    const text = Buffer.isBuffer(data) ? data.toString() : typeof data === 'string' ? data : undefined;
    if (text === undefined) return false;
    const m = parseSignal(text);
    if (!m || this.#local.has(m.dst)) return false;
    // Over its rate, a message for a peer not here is dropped (PeerServer would only queue it).
    if (!this.#take(socket)) {
      this.counts.dropped++;
      return true;
    }
    let hub: string | undefined;
    try {
      hub = this.#dir.hubOf(m.dst);
    } catch {
      return false;
    }
    if (hub === undefined || hub === this.#dir.hub) return false;
    this.counts.out++;
    // The source is the socket's own id, never what the message says (as PeerServer does).
    this.#dir.relay(hub, JSON.stringify({ ...m, src: id }));
    return true;
  }

  #take(socket: WebSocket): boolean {
    const now = Date.now();
    const burst = 2 * this.#rate;
    const b = this.#buckets.get(socket) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * this.#rate);
    b.at = now;
    this.#buckets.set(socket, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  #arrived(text: string): void {
    const m = parseSignal(text);
    if (!m) return;
    const client = this.#local.get(m.dst);
    if (client) {
      this.#deliver(client, text);
      return;
    }
    // A peer told of by the directory before its signalling socket is open here: held a moment.
    if (this.#heldCount >= this.#maxHeld) this.#expire();
    if (this.#heldCount >= this.#maxHeld) return;
    const list = this.#held.get(m.dst) ?? [];
    list.push({ at: Date.now(), text });
    this.#held.set(m.dst, list);
    this.#heldCount++;
  }

  #deliver(client: PeerClient, text: string): void {
    const m = parseSignal(text);
    if (!m) return;
    this.counts.in++;
    try {
      client.send({ type: m.type, src: m.src, dst: m.dst, payload: m.payload });
    } catch {
      // A socket closing as the message came: the sender's dial times out and is tried again.
    }
  }

  #expire(): void {
    const old = Date.now() - this.#holdMs;
    for (const [id, list] of this.#held) {
      const keep = list.filter((h) => h.at >= old);
      this.#heldCount -= list.length - keep.length;
      if (keep.length === 0) this.#held.delete(id);
      else this.#held.set(id, keep);
    }
  }
}
