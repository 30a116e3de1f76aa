// One authenticated WebSocket to a hub's control plane. The hub answers every message with
// exactly one reply, in order (control-plane.ts chains a connection's messages), so replies are
// matched to requests first-in first-out, and a request with no reply in time means the
// connection is dead (a silent hub, a half-open socket): it is closed and every waiter fails.
import { HearthError } from '../core/errors.ts';
import {
  type ClientWireMessage,
  type ControlCapabilities,
  type HubMessage,
  parseHubMessage,
} from '../protocol/control.ts';

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
}

const OPEN = 1;

interface Waiter {
  resolve(m: HubMessage): void;
  reject(e: HearthError): void;
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
 * An authenticated control-plane connection.
 *
 * @example
 * const s = await HubSession.open({ hubUrl, identity, capabilities });
 * const m = await s.request({ v: 1, type: 'lease-request' }); // lease | no-work | error
 */
export class HubSession {
  readonly volunteerId: string;
  /** The PeerJS id the hub issued to this connection (absent when the hub runs no PeerServer). */
  readonly peerId: string | undefined;
  /** Resolves with why the connection ended (never rejects). */
  readonly closed: Promise<HearthError>;
  readonly #ws: SocketLike;
  readonly #waiters: Waiter[];
  readonly #timeoutMs: number;
  readonly #ended: () => HearthError | undefined;

  private constructor(
    ws: SocketLike,
    volunteerId: string,
    waiters: Waiter[],
    closed: Promise<HearthError>,
    timeoutMs: number,
    ended: () => HearthError | undefined,
    peerId: string | undefined,
  ) {
    this.#ws = ws;
    this.volunteerId = volunteerId;
    this.peerId = peerId;
    this.#waiters = waiters;
    this.closed = closed;
    this.#timeoutMs = timeoutMs;
    this.#ended = ended;
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
    const waiters: Waiter[] = [];
    let end: HearthError | undefined;
    let finish!: (e: HearthError) => void;
    const closed = new Promise<HearthError>((resolve) => {
      finish = (e) => {
        if (end) return;
        end = e;
        for (const w of waiters.splice(0)) w.reject(e);
        resolve(e);
      };
    });
    let lastError: HubMessage | undefined;
    ws.addEventListener('message', (ev) => {
      let m: HubMessage;
      try {
        m = parseHubMessage(typeof ev.data === 'string' ? ev.data : String(ev.data));
      } catch (e) {
        // A hub that speaks garbage is as good as gone: drop the connection, fail the waiters.
        finish(
          new HearthError('net/refused', `The hub sent a bad message: ${(e as Error).message}`, { cause: e }),
        );
        ws.close(1002, 'bad message');
        return;
      }
      if (m.type === 'error') lastError = m;
      const w = waiters.shift();
      if (w) w.resolve(m);
    });
    ws.addEventListener('close', () => {
      const why =
        lastError?.type === 'error' ? ` (the hub said ${lastError.code}: ${lastError.message})` : '';
      finish(
        new HearthError('net/unreachable', `The connection to ${url} closed${why}.`, {
          details: { url, ...(lastError?.type === 'error' ? { hubCode: lastError.code } : {}) },
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
    const ask = (m: ClientWireMessage) => request(ws, waiters, m, timeoutMs, () => end, finish);
    try {
      const ch = await ask({
        v: 1,
        type: 'hello',
        publicKey: opts.identity.publicKey,
        capabilities: opts.capabilities,
      });
      if (ch.type !== 'challenge') throw refused('hello', ch);
      const w = await ask({ v: 1, type: 'auth', signature: await opts.identity.sign(ch.nonce) });
      if (w.type !== 'welcome') throw refused('auth', w);
      if (w.volunteerId !== opts.identity.id) {
        throw new HearthError(
          'net/refused',
          `The hub welcomed ${w.volunteerId}, but this key's id is ${opts.identity.id}.`,
        );
      }
      return new HubSession(ws, w.volunteerId, waiters, closed, timeoutMs, () => end, w.peerId);
    } catch (e) {
      ws.close();
      throw e;
    }
  }

  /** Sends one message and resolves with the hub's reply to it. */
  request(m: ClientWireMessage): Promise<HubMessage> {
    return request(this.#ws, this.#waiters, m, this.#timeoutMs, this.#ended, () => this.#kill());
  }

  get isOpen(): boolean {
    return this.#ended() === undefined && this.#ws.readyState === OPEN;
  }

  close(): void {
    if (this.#ws.readyState <= OPEN) this.#ws.close(1000, 'bye');
  }

  #kill(): void {
    this.#ws.close(4000, 'no reply');
  }
}

function refused(step: string, m: HubMessage): HearthError {
  const what = m.type === 'error' ? `${m.code}: ${m.message}` : `a ${m.type} message`;
  return new HearthError('net/refused', `${step}: the hub answered ${what}.`, {
    details: m.type === 'error' ? { code: m.code } : { type: m.type },
  });
}

function request(
  ws: SocketLike,
  waiters: Waiter[],
  m: ClientWireMessage,
  timeoutMs: number,
  ended: () => HearthError | undefined,
  onTimeout: (e: HearthError) => void,
): Promise<HubMessage> {
  const end = ended();
  if (end) return Promise.reject(end);
  return new Promise<HubMessage>((resolve, reject) => {
    const t = setTimeout(() => {
      const e = new HearthError('net/timeout', `The hub did not answer ${m.type} within ${timeoutMs} ms.`);
      onTimeout(e);
      reject(e);
    }, timeoutMs);
    waiters.push({
      resolve: (r) => {
        clearTimeout(t);
        resolve(r);
      },
      reject: (e) => {
        clearTimeout(t);
        reject(e);
      },
    });
    try {
      ws.send(JSON.stringify(m));
    } catch (e) {
      clearTimeout(t);
      waiters.pop();
      reject(
        new HearthError('net/unreachable', `Sending ${m.type} failed: ${(e as Error).message}.`, {
          cause: e,
        }),
      );
    }
  });
}
