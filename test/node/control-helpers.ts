// Helpers for the control-plane tests: a hub on 127.0.0.1:0 (plain http server + Scheduler over a
// MemoryStore) and volunteers in Node that speak the protocol over real WebSockets with real
// WebCrypto P-256 keys.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import {
  attachControlPlane,
  type ControlPlane,
  type ControlPlaneOptions,
} from '../../src/node/control-plane.ts';
import {
  challengeBytes,
  type HubMessage,
  parseHubMessage,
  toBase64Url,
  volunteerIdOf,
} from '../../src/protocol/control.ts';
import { CAPS, seededRng } from '../hub/fixtures.ts';

export const ORIGIN = 'http://volunteer.test';

export interface TestHub {
  readonly url: string;
  readonly store: MemoryStore;
  readonly scheduler: Scheduler;
  readonly cp: ControlPlane;
  close(): Promise<void>;
}

export async function startTestHub(opts: Partial<ControlPlaneOptions> = {}): Promise<TestHub> {
  const store = new MemoryStore();
  const scheduler = new Scheduler(store, { rng: seededRng(7), honeypotRate: 0 });
  const server = createServer((_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  const cp = attachControlPlane(server, scheduler, {
    allowedOrigins: [ORIGIN],
    manifestOf: (id) => store.getJob(id)?.manifest,
    ...opts,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/v1/volunteer`,
    store,
    scheduler,
    cp,
    async close() {
      await cp.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A hub message; the version-1 error that refuses a version-1 message (a page of the previous
 * release) reads as the 'protocol/version' error it stands for.
 */
export function readHubMessage(text: string): HubMessage {
  const o = JSON.parse(text) as { v?: unknown; type?: unknown; code?: unknown; message?: unknown };
  if (
    o.v === 1 &&
    o.type === 'error' &&
    o.code === 'bad-message' &&
    String(o.message).startsWith('protocol/version: ')
  ) {
    return { v: 2, type: 'error', code: 'protocol/version', message: String(o.message) };
  }
  return parseHubMessage(text);
}

export type ClientEvent =
  | { readonly kind: 'message'; readonly msg: HubMessage }
  | { readonly kind: 'close'; readonly code: number; readonly reason: string };

/** One WebSocket connection with a queue of what the hub said. */
export class Conn {
  readonly ws: WebSocket;
  readonly #events: ClientEvent[] = [];
  readonly #waiters: ((e: ClientEvent) => void)[] = [];
  /** Set when the hub refused the upgrade: the HTTP status. */
  refusedWith: number | undefined;
  readonly opened: Promise<boolean>;

  /** `origin: null` sends no Origin header (a non-browser client). */
  constructor(url: string, origin: string | null = ORIGIN) {
    this.ws = new WebSocket(url, origin === null ? {} : { origin });
    this.opened = new Promise<boolean>((resolve) => {
      this.ws.once('open', () => resolve(true));
      this.ws.once('unexpected-response', (_req, res) => {
        this.refusedWith = res.statusCode;
        res.resume();
        resolve(false);
        this.ws.terminate();
      });
      this.ws.once('error', () => resolve(false));
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data) => this.#push({ kind: 'message', msg: readHubMessage(data.toString()) }));
    this.ws.on('close', (code, reason) => this.#push({ kind: 'close', code, reason: reason.toString() }));
  }

  #push(e: ClientEvent): void {
    const w = this.#waiters.shift();
    if (w) w(e);
    else this.#events.push(e);
  }

  /** The next thing the hub said, or its close. */
  next(timeoutMs = 5000): Promise<ClientEvent> {
    const e = this.#events.shift();
    if (e) return Promise.resolve(e);
    return new Promise<ClientEvent>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`no message from the hub within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#waiters.push((ev) => {
        clearTimeout(t);
        resolve(ev);
      });
    });
  }

  /**
   * The next message, which must be a message (not a close). A reply must name a request this
   * connection sent; its `re` is then left out, so tests compare the rest (`next()` keeps it).
   */
  async msg(): Promise<HubMessage> {
    let e = await this.next();
    // `work-available` is advisory (the hub pushes it to connections it told "no work" when work
    // arrives): kept in `pushes`, never mistaken for the reply a test waits for. `next()` sees it.
    while (e.kind === 'message' && e.msg.type === 'work-available') {
      this.pushes.push(e.msg);
      e = await this.next();
    }
    if (e.kind !== 'message') throw new Error(`expected a message, the hub closed (${e.code} ${e.reason})`);
    const { re, ...rest } = e.msg;
    if (re !== undefined && !this.#sentIds.has(re)) throw new Error(`a reply to ${re}, which was never sent`);
    return rest as HubMessage;
  }
  readonly #sentIds = new Set<number>();
  /** Pushes `msg()` stepped over. */
  readonly pushes: HubMessage[] = [];

  /**
   * Sends `m` as JSON (a string as is). A request without an `id` gets the next one, as a
   * HubSession would give it; `lastId` says which.
   */
  send(m: unknown): void {
    if (typeof m === 'string') {
      this.ws.send(m);
      return;
    }
    const o = m as Record<string, unknown>;
    const withId =
      o && typeof o === 'object' && !('id' in o) && 'type' in o ? { ...o, id: ++this.lastId } : o;
    if (typeof withId?.id === 'number') this.#sentIds.add(withId.id);
    this.ws.send(JSON.stringify(withId));
  }
  lastId = 0;

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

/** A volunteer key pair made in Node's WebCrypto, like the browser's (private key non-extractable). */
export class TestKey {
  private constructor(
    readonly pair: CryptoKeyPair,
    readonly publicKey: string,
    readonly id: string,
  ) {}

  static async create(): Promise<TestKey> {
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
      'sign',
      'verify',
    ]);
    const spki = await crypto.subtle.exportKey('spki', pair.publicKey);
    return new TestKey(pair, toBase64Url(spki), await volunteerIdOf(spki));
  }

  /** Signs `nonce` for the volunteer `id` (a test may pass another volunteer's id). */
  async sign(nonce: string, id = this.id): Promise<string> {
    const sig = await crypto.subtle.sign(
      { name: 'ECDSA', hash: 'SHA-256' },
      this.pair.privateKey,
      challengeBytes(nonce, id),
    );
    return toBase64Url(sig);
  }
}

export const hello = (key: TestKey) => ({
  v: 2,
  type: 'hello',
  id: 0,
  publicKey: key.publicKey,
  capabilities: CAPS,
});

/** Connects and completes hello → challenge → auth → welcome. */
export async function authenticated(
  url: string,
  key: TestKey,
  origin: string = ORIGIN,
): Promise<{ conn: Conn; nonce: string; signature: string; peerId: string | undefined }> {
  const conn = new Conn(url, origin);
  if (!(await conn.opened)) throw new Error(`connection refused (${conn.refusedWith})`);
  conn.send(hello(key));
  const ch = await conn.msg();
  if (ch.type !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(ch)}`);
  const signature = await key.sign(ch.nonce);
  conn.send({ v: 2, type: 'auth', signature });
  const w = await conn.msg();
  if (w.type !== 'welcome') throw new Error(`expected welcome, got ${JSON.stringify(w)}`);
  return { conn, nonce: ch.nonce, signature, peerId: w.peerId };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `cond` until it holds or `ms` pass. */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}
