// One authenticated WebSocket to a hub's control plane. Every request carries an id and the
// hub's reply names it (`re`), so replies are matched by id, never by order; a hub message with
// no `re` is a push, handed to `onPush` listeners. A request with no reply in time means the
// connection is dead (a silent hub, a half-open socket): it is closed and every waiter fails.
// An `error` reply rejects its request with a HearthError carrying the hub's code.
import { HearthError, isHearthErrorCode } from '../core/errors.ts';
import {
  type AnyRequestBody,
  answers,
  CONTROL_PROTOCOL_VERSION,
  type ControlCapabilities,
  type ErrorMessage,
  type HubMessage,
  parseHubMessage,
  type ReplyOf,
  type RequestBody,
  type RequestType,
} from '../protocol/control.ts';
import type { EmbedAttribution } from '../protocol/embed.ts';

/** The part of the WebSocket API a session uses (the browser's, or `ws` in Node). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'close' | 'error', listener: () => void): void;
  addEventListener(type: 'message', listener: (ev: { data: unknown }) => void): void;
}

/** Opens a socket to a `ws:`/`wss:` URL (the browser's `new WebSocket(url)` by default). */
export type SocketFactory = (url: string) => SocketLike;

/** What signs the hub's challenge: the browser's VolunteerIdentity, or a key in Node. */
export interface Signer {
  readonly id: string;
  /** SPKI as base64url. */
  readonly publicKey: string;
  sign(nonce: string): Promise<string>;
}

export interface HubSessionOptions {
  /** `http(s)://host:port` of the hub; the socket goes to `/v1/volunteer` on it. */
  readonly hubUrl: string;
  readonly identity: Signer;
  readonly capabilities: ControlCapabilities;
  readonly socket?: SocketFactory;
  /** How long the hub may take to answer one message before the connection counts as dead. */
  readonly replyTimeoutMs?: number;
  /** Pushes to ask for in the hello (`credit`: the hub pushes this volunteer's credit as it changes). */
  readonly follow?: readonly 'credit'[];
  /** A widget's volunteer: the site that embedded it and its payout address, sent in the hello. */
  readonly embed?: EmbedAttribution;
}

const OPEN = 1;

interface Waiter {
  readonly type: RequestType;
  resolve(m: HubMessage): void;
  reject(e: HearthError): void;
}

/** What a session shares with its requests: the socket, the waiters by id, how it ends. */
interface Wire {
  readonly ws: SocketLike;
  readonly waiters: Map<number, Waiter>;
  readonly timeoutMs: number;
  nextId: number;
  ended(): HearthError | undefined;
  kill(e: HearthError): void;
}

/** The control-plane URL of a hub given by its HTTP base URL (or already a ws URL). */
export function volunteerSocketUrl(hubUrl: string): string {
  const u = new URL(hubUrl);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new HearthError('input/invalid', `hubUrl: expected an http(s) or ws(s) URL, got ${u.protocol}.`);
  }
  u.pathname = '/v1/volunteer';
  u.search = '';
  u.hash = '';
  return u.toString();
}

/**
 * The hub's `error` message as a HearthError with the hub's code (a code this client does not
 * know becomes 'net/refused'); `details.hubCode` is always the code as the hub sent it.
 */
export function hubError(m: ErrorMessage, what: string): HearthError {
  const code = isHearthErrorCode(m.code) ? m.code : 'net/refused';
  return new HearthError(code, `${what}: the hub answered ${m.code}: ${m.message}`, {
    details: { ...(m.details ?? {}), hubCode: m.code },
  });
}

/** Whether `e` is the hub's answer (an `error` reply) rather than a failure to reach it. */
export function isHubRefusal(e: unknown): e is HearthError {
  return e instanceof HearthError && typeof e.details.hubCode === 'string';
}

/**
 * An authenticated control-plane connection.
 *
 * @example
 * const s = await HubSession.open({ hubUrl, identity, capabilities });
 * const m = await s.request({ type: 'lease-request' }); // lease | no-work; an error throws
 * s.onPush((m) => { if (m.type === 'work-available') wake(); });
 */
export class HubSession {
  readonly volunteerId: string;
  /** The PeerJS id the hub issued to this connection (absent when the hub runs no PeerServer). */
  readonly peerId: string | undefined;
  /** Resolves with why the connection ended (never rejects). */
  readonly closed: Promise<HearthError>;
  readonly #wire: Wire;
  readonly #push: Set<(m: HubMessage) => void>;

  private constructor(
    wire: Wire,
    push: Set<(m: HubMessage) => void>,
    volunteerId: string,
    closed: Promise<HearthError>,
    peerId: string | undefined,
  ) {
    this.#wire = wire;
    this.#push = push;
    this.volunteerId = volunteerId;
    this.peerId = peerId;
    this.closed = closed;
  }

  /** Connects, says hello, signs the challenge and waits for welcome. */
  static async open(opts: HubSessionOptions): Promise<HubSession> {
    const url = volunteerSocketUrl(opts.hubUrl);
    const timeoutMs = opts.replyTimeoutMs ?? 30_000;
    const factory = opts.socket ?? ((u: string) => new WebSocket(u) as unknown as SocketLike);
    let ws: SocketLike;
    try {
      ws = factory(url);
    } catch (e) {
      throw new HearthError('net/unreachable', `Could not open ${url}: ${(e as Error).message}.`, {
        cause: e,
      });
    }
    const waiters = new Map<number, Waiter>();
    const push = new Set<(m: HubMessage) => void>();
    let end: HearthError | undefined;
    let finish!: (e: HearthError) => void;
    const closed = new Promise<HearthError>((resolve) => {
      finish = (e) => {
        if (end) return;
        end = e;
        for (const w of waiters.values()) w.reject(e);
        waiters.clear();
        resolve(e);
      };
    });
    const wire: Wire = {
      ws,
      waiters,
      timeoutMs,
      nextId: 1,
      ended: () => end,
      kill: (e) => {
        finish(e);
        ws.close(4000, 'no reply');
      },
    };
    // The last error the hub sent of its own (rate limit, auth timeout, replaced): why it closes.
    let lastError: ErrorMessage | undefined;
    const protocolError = (message: string, cause?: unknown) => {
      // A hub that speaks garbage is as good as gone: drop the connection, fail the waiters.
      finish(new HearthError('net/protocol', `The hub sent a bad message: ${message}`, { cause }));
      ws.close(1002, 'bad message');
    };
    ws.addEventListener('message', (ev) => {
      let m: HubMessage;
      try {
        m = parseHubMessage(typeof ev.data === 'string' ? ev.data : String(ev.data));
      } catch (e) {
        return protocolError((e as Error).message, e);
      }
      if (m.re === undefined) {
        if (m.type === 'error') lastError = m;
        for (const listener of push) listener(m);
        return;
      }
      const w = waiters.get(m.re);
      if (!w)
        return protocolError(`a ${m.type} answering ${m.re}, which no request in flight has as its id.`);
      waiters.delete(m.re);
      if (!answers(w.type, m)) return protocolError(`a ${m.type} does not answer a ${w.type}.`);
      if (m.type === 'error') lastError = m;
      w.resolve(m);
    });
    ws.addEventListener('close', () => {
      const why = lastError ? ` (the hub said ${lastError.code}: ${lastError.message})` : '';
      finish(
        new HearthError('net/unreachable', `The connection to ${url} closed${why}.`, {
          details: { url, ...(lastError ? { hubCode: lastError.code } : {}) },
        }),
      );
    });
    ws.addEventListener('error', () => {
      // 'close' follows; it carries the reason.
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        reject(new HearthError('net/timeout', `${url} did not open within ${timeoutMs} ms.`));
        ws.close();
      }, timeoutMs);
      ws.addEventListener('open', () => {
        clearTimeout(t);
        resolve();
      });
      closed.then((e) => {
        clearTimeout(t);
        reject(e);
      });
    });
    try {
      const ch = await request(wire, {
        type: 'hello',
        publicKey: opts.identity.publicKey,
        capabilities: opts.capabilities,
        ...(opts.follow?.length ? { follow: [...opts.follow] } : {}),
        ...(opts.embed ? { embed: { origin: opts.embed.origin, payout: opts.embed.payout } } : {}),
      });
      const w = await request(wire, { type: 'auth', signature: await opts.identity.sign(ch.nonce) });
      if (w.volunteerId !== opts.identity.id) {
        throw new HearthError(
          'net/refused',
          `The hub welcomed ${w.volunteerId}, but this key's id is ${opts.identity.id}.`,
        );
      }
      return new HubSession(wire, push, w.volunteerId, closed, w.peerId);
    } catch (e) {
      ws.close();
      throw e;
    }
  }

  /**
   * Sends one request and resolves with the hub's reply to it. An `error` reply rejects with a
   * HearthError of the hub's code (see `isHubRefusal`); a lost connection or no reply in time
   * rejects with 'net/unreachable' or 'net/timeout'.
   */
  request<K extends RequestType>(m: RequestBody<K>): Promise<ReplyOf<K>> {
    return request(this.#wire, m);
  }

  /** Calls `listener` with every message the hub pushes (no `re`); returns how to stop. */
  onPush(listener: (m: HubMessage) => void): () => void {
    this.#push.add(listener);
    return () => this.#push.delete(listener);
  }

  get isOpen(): boolean {
    return this.#wire.ended() === undefined && this.#wire.ws.readyState === OPEN;
  }

  close(): void {
    if (this.#wire.ws.readyState <= OPEN) this.#wire.ws.close(1000, 'bye');
  }
}

function request<K extends RequestType>(wire: Wire, m: RequestBody<K>): Promise<ReplyOf<K>> {
  const end = wire.ended();
  if (end) return Promise.reject(end);
  const id = wire.nextId++;
  return new Promise<ReplyOf<K>>((resolve, reject) => {
    const t = setTimeout(() => {
      wire.waiters.delete(id);
      const e = new HearthError(
        'net/timeout',
        `The hub did not answer ${m.type} within ${wire.timeoutMs} ms.`,
      );
      wire.kill(e);
      reject(e);
    }, wire.timeoutMs);
    wire.waiters.set(id, {
      type: m.type,
      resolve: (r) => {
        clearTimeout(t);
        if (r.type === 'error') reject(hubError(r, m.type));
        else resolve(r as ReplyOf<K>);
      },
      reject: (e) => {
        clearTimeout(t);
        reject(e);
      },
    });
    try {
      wire.ws.send(JSON.stringify({ v: CONTROL_PROTOCOL_VERSION, id, ...(m as AnyRequestBody) }));
    } catch (e) {
      clearTimeout(t);
      wire.waiters.delete(id);
      reject(
        new HearthError('net/unreachable', `Sending ${m.type} failed: ${(e as Error).message}.`, {
          cause: e,
        }),
      );
    }
  });
}
