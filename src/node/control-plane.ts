// The volunteer control plane on the hub's HTTP server: one WebSocket per volunteer at
// /v1/volunteer. hello → challenge → auth → welcome, then lease-request / heartbeat / result.
// Everything a stranger sends is bounded (DESIGN.md invariant 7): message size, messages per
// second, connections per address, the page's Origin, and the time to finish auth. A bad
// message gets a typed `error` reply and changes nothing; the hub itself never throws from here.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { HearthError, type HearthErrorCode, isHearthError } from '../core/errors.ts';
import { IssuedPeers } from '../hub/allreduce-audit.ts';
import { importVolunteerKey, newNonce, type VolunteerKey, verifyChallenge } from '../hub/identity.ts';
import type { Scheduler } from '../hub/scheduler.ts';
import type { BlobSwarm } from '../hub/swarm.ts';
import type { HubWallets } from '../hub/wallets.ts';
import {
  type AnyHubBody,
  type ClientMessage,
  CONTROL_LIMITS,
  CONTROL_PROTOCOL_VERSION,
  type ControlCapabilities,
  FINAL_REFUSALS,
  parseClientMessage,
  type RequestOf,
  requestIdOf,
} from '../protocol/control.ts';
import type { EmbedAttribution } from '../protocol/embed.ts';
import type { Manifest } from '../protocol/manifest.ts';
import { ALLREDUCE_HANDLERS } from './control/allreduce.ts';
import { CreditPushes } from './control/credit-pushes.ts';
import type {
  AllReduceHandling,
  Connection,
  Handler,
  HandlerContext,
  Handlers,
  ReadyType,
} from './control/handler.ts';
import { LEASE_HANDLERS } from './control/leases.ts';
import { SWARM_HANDLERS } from './control/swarm.ts';
import { WALLET_HANDLERS } from './control/wallet.ts';

export const CONTROL_PATH = '/v1/volunteer';

export interface ControlPlaneOptions {
  /**
   * Page origins allowed to open a volunteer connection, e.g. ['https://hub.example',
   * 'https://embedder.example']. '*' is refused: a list, always.
   */
  readonly allowedOrigins: readonly string[];
  /**
   * The origins of the hub's own pages (e.g. `['http://127.0.0.1:8787', 'http://localhost:8787']`),
   * allowed without being listed in `allowedOrigins`. They come from the address the hub listens
   * on, not from the request's Host header: under DNS rebinding a stranger's page at
   * `http://evil.example:8787` resolving to the hub sends `Host: evil.example:8787` and a matching
   * Origin, so "Origin equals Host" would admit it.
   */
  readonly selfOrigins?: readonly string[];
  /**
   * Accept connections without an Origin header (non-browser volunteers; default false). A
   * browser always sends one, so this only admits clients that could forge any origin anyway.
   */
  readonly allowMissingOrigin?: boolean;
  /** Default '/v1/volunteer'. */
  readonly path?: string;
  /** Largest message in bytes (default 16 MiB); a larger one closes the connection (1009). */
  readonly maxMessageBytes?: number;
  /** Sustained messages per second per connection (default 20). */
  readonly messagesPerSecond?: number;
  /** Messages a connection may send at once before the rate applies (default 2 × the rate). */
  readonly burst?: number;
  /** Open connections per remote address (default 16). */
  readonly maxConnectionsPerAddress?: number;
  /** Time from connect to a verified auth (default 10 s). */
  readonly authTimeoutMs?: number;
  /** Messages queued behind a slow one before the connection is closed (default 64). */
  readonly maxQueued?: number;
  /**
   * Every this many ms the hub pings each connection (default 20 s; 0 turns it off) and
   * terminates one that answered neither the previous ping nor sent anything since: a tab that
   * vanished without a TCP close (sleep, network loss) then releases its leases within two
   * intervals instead of at their deadlines.
   */
  readonly pingIntervalMs?: number;
  /**
   * Looks a job's manifest up (e.g. `(id) => store.getJob(id)?.manifest`) so that a WGSL lease
   * carries its kernel source; without it leases carry the shard's work only.
   */
  readonly manifestOf?: (job: string) => Manifest | undefined;
  /**
   * Who holds which blob (issue 5's swarm). With it, `welcome` carries a hub-chosen PeerJS id
   * for the connection, and `announce` / `holders-request` are answered; without it they are
   * refused as 'unsupported'.
   */
  readonly swarm?: BlobSwarm;
  /**
   * Accountable all-reduce (issue 5; needs `swarm`, which issues the peer ids): `record` keeps each
   * verified `allreduce-report`, and with `rounds` volunteers may average through the hub
   * (`allreduce-fallback`). Without it both messages are refused as 'unsupported'.
   */
  readonly allreduce?: AllReduceHandling & {
    /** Peer ids issued and to whom (default: one made here, remembered an hour after close). */
    readonly issued?: IssuedPeers;
  };
  /** Clock (ms since the epoch) passed to the scheduler; default Date.now. */
  readonly now?: () => number;
  /** Called with failures that are the hub's own fault (default console.error). */
  readonly onInternalError?: (e: unknown) => void;
  /** Called when a message changed a job's progress (every job's when undefined). */
  readonly onJobChanged?: (job?: string) => void;
  /**
   * Volunteers with a result on a shard; with it, connections that follow `credit` hear their
   * credit as it changes (control/credit-pushes.ts). Without it, `follow` is ignored.
   */
  readonly resultVolunteers?: (shard: string) => readonly string[];
  /** Wallet bindings (Sign-In with Ethereum) and credit pushes that name the bound address. */
  readonly wallets?: HubWallets;
}

export interface ControlPlane {
  /** Open connections right now. */
  readonly connections: () => number;
  /** Authenticated volunteers connected right now. */
  readonly volunteers: () => number;
  /** Whether `peerId` was issued to a connection that is still open (for the PeerServer). */
  readonly isPeerId: (peerId: string) => boolean;
  /**
   * Pushes `work-available` to every connection whose last lease-request was answered `no-work`
   * (call it when a job arrives or leases go back); returns how many were told.
   */
  readonly workAvailable: () => number;
  /** Stops accepting, closes every connection (their leases are released) and detaches. */
  close(): Promise<void>;
}

type Phase =
  | { readonly name: 'new' }
  | {
      readonly name: 'challenged';
      readonly key: VolunteerKey;
      readonly caps: ControlCapabilities;
      readonly followsCredit: boolean;
      readonly embed: EmbedAttribution | undefined;
    }
  | { readonly name: 'ready'; readonly conn: Connection }
  | { readonly name: 'closed' };

/** Every request an authenticated connection may send, and who answers it. */
const HANDLERS: Handlers<ReadyType> = {
  ...LEASE_HANDLERS,
  ...SWARM_HANDLERS,
  ...ALLREDUCE_HANDLERS,
  ...WALLET_HANDLERS,
};

/**
 * Codes a handler throws to refuse a request: the volunteer's mistake or the hub's "no", sent
 * back as they are. Any other failure is the hub's own: logged, and answered 'control/internal'.
 */
const REFUSALS: ReadonlySet<string> = new Set([
  ...FINAL_REFUSALS,
  'net/refused',
  'control/unsupported',
  'control/rate-limited',
  'wallet/disabled',
  'wallet/siwe',
  'wallet/bound',
]);

/** An error's details if they are small JSON (they are a HearthError's, never raw input). */
function boundedDetails(
  d: Readonly<Record<string, unknown>> | undefined,
): Readonly<Record<string, unknown>> | undefined {
  if (!d) return undefined;
  try {
    return JSON.stringify(d).length <= CONTROL_LIMITS.maxDetailsChars ? d : undefined;
  } catch {
    return undefined;
  }
}

/** A volunteer's one live connection, as the other connections of the hub reach it. */
interface Live {
  readonly conn: Connection;
  /** Tells it a newer connection replaced it, and closes it. */
  readonly replace: () => void;
  /** Sends it a message of the hub's own (no `re`). */
  readonly push: (m: AnyHubBody) => void;
}

const CLOSE_POLICY = 1008;
/** Close code of a connection that another connection of the same volunteer replaced. */
export const CLOSE_REPLACED = 4001;

const STATUS_TEXT: Readonly<Record<number, string>> = {
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

/**
 * Answers a WebSocket upgrade (or a CONNECT) with a plain HTTP error and a JSON body
 * `{ error: { code, message } }`, then
 * closes the socket: a browser sees a failed handshake, a Node client the status and body.
 */
export function refuseUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  // The API's error shape, so every refusal a client reads is one family.
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json\r\nConnection: close\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * Serves the volunteer control plane on `server` (WebSocket upgrades on `opts.path`; other
 * upgrade paths are left to other handlers).
 *
 * @example
 * const server = http.createServer();
 * const cp = attachControlPlane(server, scheduler, { allowedOrigins: ['https://hub.example'] });
 * server.listen(8080, '127.0.0.1');
 * // later: await cp.close();
 */
export function attachControlPlane(
  server: Server,
  scheduler: Scheduler,
  opts: ControlPlaneOptions,
): ControlPlane {
  const origins = new Set<string>();
  for (const o of [...opts.allowedOrigins, ...(opts.selfOrigins ?? [])]) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(o);
    } catch {
      parsed = undefined;
    }
    if (o === '*' || !parsed || parsed.origin !== o) {
      throw new HearthError(
        'input/invalid',
        `allowedOrigins: "${o}" is not an origin like "https://example.org" ('*' is never allowed).`,
        { details: { origin: o } },
      );
    }
    origins.add(o);
  }
  const path = opts.path ?? CONTROL_PATH;
  const maxBytes = Math.min(opts.maxMessageBytes ?? 16 * 1024 * 1024, CONTROL_LIMITS.maxMessageChars);
  const rate = opts.messagesPerSecond ?? 20;
  const burst = opts.burst ?? rate * 2;
  const perAddress = opts.maxConnectionsPerAddress ?? 16;
  const authTimeoutMs = opts.authTimeoutMs ?? 10_000;
  const maxQueued = opts.maxQueued ?? 64;
  const pingIntervalMs = opts.pingIntervalMs ?? 20_000;
  const now = opts.now ?? Date.now;
  const onInternal = opts.onInternalError ?? ((e: unknown) => console.error('control plane:', e));

  const wss = new WebSocketServer({ noServer: true, maxPayload: maxBytes });
  const byAddress = new Map<string, number>();
  const byVolunteer = new Map<string, number>();
  /** The one live connection of each volunteer: how to replace it, how to push to it. */
  const live = new Map<string, Live>();
  const sockets = new Set<WebSocket>();
  const peerIds = new Set<string>();
  const swarm = opts.swarm;
  const allreduce = opts.allreduce;
  const issued = allreduce?.issued ?? new IssuedPeers();
  const resultVolunteers = opts.resultVolunteers;
  const creditPushes = resultVolunteers
    ? new CreditPushes({
        creditOf: (v) => {
          const address = opts.wallets?.addressOf(v);
          return {
            ...scheduler.credits(v),
            pendingResults: scheduler.pendingResults(v),
            ...(address ? { address } : {}),
          };
        },
        resultVolunteers,
        push: (v, m) => {
          const l = live.get(v);
          if (!l) return false;
          l.push(m);
          return true;
        },
        onInternal: (e) => onInternal(e),
      })
    : undefined;
  const context: HandlerContext = {
    scheduler,
    now,
    issued,
    ...(opts.manifestOf ? { manifestOf: opts.manifestOf } : {}),
    ...(swarm ? { swarm } : {}),
    ...(allreduce ? { allreduce } : {}),
    ...(opts.onJobChanged ? { jobChanged: opts.onJobChanged } : {}),
    ...(creditPushes ? { creditChanged: (v, shard) => creditPushes.changed(v, shard) } : {}),
    ...(opts.wallets ? { wallets: opts.wallets } : {}),
  };
  // Sockets heard from (a pong or a message) since the last ping sweep.
  const heard = new WeakSet<WebSocket>();
  let closing = false;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://hub');
    } catch {
      return;
    }
    if (url.pathname !== path) return;
    socket.on('error', () => socket.destroy());
    if (closing) return refuseUpgrade(socket, 503, 'http/closing', 'The hub is shutting down.');
    const origin = req.headers.origin;
    if (origin === undefined ? !opts.allowMissingOrigin : !origins.has(origin)) {
      return refuseUpgrade(
        socket,
        403,
        'http/origin',
        origin === undefined
          ? 'A volunteer connection needs an Origin header.'
          : `Origin ${origin.slice(0, 200)} is not allowed to connect to this hub.`,
      );
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    const open = byAddress.get(address) ?? 0;
    if (open >= perAddress) {
      return refuseUpgrade(
        socket,
        429,
        'http/too-many-connections',
        `${open} connections from this address already: the limit is ${perAddress}.`,
      );
    }
    byAddress.set(address, open + 1);
    try {
      // The page's origin (allowed above): a SIWE message's domain. A client without one (a Node
      // volunteer) is named by the Host it connected to.
      const pageOrigin = origin ?? `http://${req.headers.host ?? '127.0.0.1'}`;
      wss.handleUpgrade(req, socket, head, (ws) => serve(ws, address, pageOrigin));
    } catch (e) {
      release(address);
      socket.destroy();
      onInternal(e);
    }
  };

  const release = (address: string) => {
    const n = (byAddress.get(address) ?? 1) - 1;
    if (n <= 0) byAddress.delete(address);
    else byAddress.set(address, n);
  };

  const serve = (ws: WebSocket, address: string, pageOrigin: string) => {
    sockets.add(ws);
    heard.add(ws);
    ws.on('pong', () => heard.add(ws));
    let phase: Phase = { name: 'new' };
    let nonce = '';
    let tokens = burst;
    let lastRefill = Date.now();
    let queued = 0;
    let chain: Promise<void> = Promise.resolve();
    // The socket may already be dead when released; ws keeps the address count honest via 'close'.
    let released = false;

    const send = (m: AnyHubBody, re?: number) => {
      if (ws.readyState === ws.OPEN) {
        ws.send(JSON.stringify({ v: CONTROL_PROTOCOL_VERSION, ...(re === undefined ? {} : { re }), ...m }));
      }
    };
    /** An error reply to request `re` (a push when undefined); `close` ends the connection. */
    const fail = (
      code: HearthErrorCode,
      message: string,
      opts: { re?: number | undefined; details?: Readonly<Record<string, unknown>>; close?: boolean } = {},
    ) => {
      const details = boundedDetails(opts.details);
      send(
        {
          type: 'error',
          code,
          message: message.slice(0, CONTROL_LIMITS.maxErrorChars),
          ...(details && Object.keys(details).length > 0 ? { details } : {}),
        },
        opts.re,
      );
      if (opts.close) shut(CLOSE_POLICY, code);
    };
    const shut = (code: number, reason: string) => {
      if (phase.name !== 'closed' && ws.readyState === ws.OPEN) ws.close(code, reason);
    };
    const connection: Pick<Live, 'replace' | 'push'> = {
      replace: () => {
        fail(
          'control/replaced',
          'This volunteer identity connected again (a reconnect, or another tab): this connection is closed and its leases went back to the hub.',
        );
        shut(CLOSE_REPLACED, 'control/replaced');
      },
      push: (m) => send(m),
    };
    const authTimer = setTimeout(() => {
      if (phase.name !== 'ready') {
        fail('control/auth-timeout', `No verified auth within ${authTimeoutMs} ms.`, { close: true });
      }
    }, authTimeoutMs);

    /** hello → challenge → auth → welcome: the two requests before a connection is a volunteer. */
    const greet = async (m: RequestOf<'hello'> | RequestOf<'auth'>): Promise<void> => {
      if (m.type === 'hello') {
        if (phase.name !== 'new') {
          return fail('control/bad-state', 'hello: this connection already said hello.', { re: m.id });
        }
        // A widget's frame names the site that embedded it: only a site this hub allows widgets
        // on (its frame renders nowhere else), so the ledger never records one it refuses.
        if (m.embed && !origins.has(m.embed.origin)) {
          return fail(
            'input/invalid',
            `message.embed.origin: ${m.embed.origin} is not a site this hub allows widgets on; its operator can add it with \`hearth hub --origin ${m.embed.origin}\`.`,
            { re: m.id, details: { path: 'message.embed.origin' } },
          );
        }
        const key = await importVolunteerKey(m.publicKey);
        nonce = newNonce();
        if (phase.name !== 'new') return;
        phase = {
          name: 'challenged',
          key,
          caps: m.capabilities,
          followsCredit: m.follow?.includes('credit') === true,
          embed: m.embed,
        };
        return send({ type: 'challenge', nonce }, m.id);
      }
      if (phase.name === 'ready') {
        return fail('control/bad-state', 'auth: this connection is already authenticated.', { re: m.id });
      }
      if (phase.name !== 'challenged')
        return fail('control/bad-state', 'auth: say hello first.', { re: m.id });
      const { key, caps, followsCredit, embed } = phase;
      if (!(await verifyChallenge(key, nonce, m.signature))) {
        return fail(
          'control/auth-failed',
          "auth: the signature does not verify for this connection's challenge.",
          {
            re: m.id,
            close: true,
          },
        );
      }
      if (phase.name !== 'challenged') return;
      clearTimeout(authTimer);
      // A fresh random PeerJS id per connection: unguessable, so holders the hub names are
      // connections it authenticated, and nobody can squat on another volunteer's id.
      const peerId = swarm ? `h${randomBytes(16).toString('hex')}` : undefined;
      if (peerId) {
        peerIds.add(peerId);
        issued.issue(peerId, key);
      }
      const conn: Connection = {
        volunteer: key.id,
        caps,
        reported: [],
        idle: false,
        origin: pageOrigin,
        ...(peerId ? { peerId } : {}),
        ...(embed ? { embed } : {}),
      };
      phase = { name: 'ready', conn };
      byVolunteer.set(key.id, (byVolunteer.get(key.id) ?? 0) + 1);
      // One live connection per volunteer: the newer replaces the older (a reconnect the hub had
      // not noticed, or the same identity in a second tab), and the older's leases go back at
      // once, before this one can take any — leases belong to the identity, so two connections
      // would share them.
      const older = live.get(key.id);
      if (older) {
        older.replace();
        try {
          scheduler.disconnect(key.id);
        } catch (e) {
          onInternal(e);
        }
      }
      live.set(key.id, { ...connection, conn });
      send({ type: 'welcome', volunteerId: key.id, ...(peerId ? { peerId } : {}) }, m.id);
      if (followsCredit) creditPushes?.follow(key.id);
    };

    const handle = async (m: ClientMessage): Promise<void> => {
      if (phase.name === 'closed') return;
      if (m.type === 'hello' || m.type === 'auth') return greet(m);
      if (phase.name !== 'ready') {
        return fail('control/unauthenticated', `${m.type}: authenticate first (hello, auth).`, { re: m.id });
      }
      try {
        const reply = await (HANDLERS[m.type] as Handler<ReadyType>)(
          m as RequestOf<ReadyType>,
          phase.conn,
          context,
        );
        send(reply as AnyHubBody, m.id);
      } catch (e) {
        if (isHearthError(e) && REFUSALS.has(e.code)) {
          return fail(e.code, e.message, { re: m.id, details: e.details });
        }
        throw e;
      }
    };

    ws.on('message', (data, isBinary) => {
      heard.add(ws);
      // Token bucket: `burst` at once, then `rate` per second.
      const t = Date.now();
      tokens = Math.min(burst, tokens + ((t - lastRefill) / 1000) * rate);
      lastRefill = t;
      if (tokens < 1) {
        return fail('control/rate-limited', `Over ${rate} messages per second: closing this connection.`, {
          close: true,
        });
      }
      tokens -= 1;
      if (isBinary) {
        return fail(
          'control/unsupported',
          'Binary frames are not part of the control protocol: send JSON text.',
        );
      }
      if (++queued > maxQueued) {
        return fail(
          'control/rate-limited',
          `More than ${maxQueued} messages waiting: closing this connection.`,
          {
            close: true,
          },
        );
      }
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data as ArrayBuffer).toString('utf8');
      chain = chain.then(async () => {
        let re: number | undefined;
        try {
          let m: ClientMessage;
          try {
            m = parseClientMessage(text);
          } catch (e) {
            if (isHearthError(e, 'protocol/version')) return refuseVersion(e);
            if (isHearthError(e))
              return fail(e.code, e.message, { re: requestIdOf(text), details: e.details });
            throw e;
          }
          re = m.id;
          await handle(m);
        } catch (e) {
          if (isHearthError(e, 'input/invalid')) return fail(e.code, e.message, { re, details: e.details });
          onInternal(e);
          fail('control/internal', 'The hub failed on this message; it may be retried.', { re });
        } finally {
          queued--;
        }
      });
    });
    /**
     * A page of another release. A version-1 page reads only version-1 errors, so the refusal is
     * written in its words (an error it knows, the reason in the sentence): the volunteer sees
     * "reload the page", not a parse failure.
     */
    const refuseVersion = (e: HearthError) => {
      if (ws.readyState === ws.OPEN) {
        ws.send(
          JSON.stringify(
            e.details.got === 1
              ? { v: 1, type: 'error', code: 'bad-message', message: `protocol/version: ${e.message}` }
              : {
                  v: CONTROL_PROTOCOL_VERSION,
                  type: 'error',
                  code: e.code,
                  message: e.message,
                  details: e.details,
                },
          ),
        );
      }
      // The connection stays open: the page shows the sentence and the volunteer reloads.
    };
    ws.on('error', () => {
      // ws reports protocol violations (oversize, bad frames) here, then closes: nothing to add.
    });
    ws.on('close', () => {
      clearTimeout(authTimer);
      sockets.delete(ws);
      if (!released) {
        released = true;
        release(address);
      }
      const was = phase;
      phase = { name: 'closed' };
      if (was.name !== 'ready') return;
      const { volunteer, peerId } = was.conn;
      if (live.get(volunteer)?.conn === was.conn) {
        live.delete(volunteer);
        creditPushes?.unfollow(volunteer);
      }
      if (peerId) {
        peerIds.delete(peerId);
        issued.release(peerId);
        swarm?.drop(peerId);
      }
      const left = (byVolunteer.get(volunteer) ?? 1) - 1;
      if (left > 0) {
        byVolunteer.set(volunteer, left);
        return;
      }
      byVolunteer.delete(volunteer);
      // Wait for this connection's last message (a result in flight) before releasing leases.
      chain = chain.then(() => {
        try {
          scheduler.disconnect(volunteer);
        } catch (e) {
          onInternal(e);
        }
      });
    });
  };

  server.on('upgrade', onUpgrade);
  // One sweep for all connections: a socket silent since the last sweep is dead (terminate goes
  // through 'close' above, so its leases are released as for any disconnect).
  const pinger =
    pingIntervalMs > 0
      ? setInterval(() => {
          for (const ws of sockets) {
            if (!heard.has(ws)) {
              ws.terminate();
              continue;
            }
            heard.delete(ws);
            if (ws.readyState === ws.OPEN) ws.ping();
          }
        }, pingIntervalMs)
      : undefined;
  pinger?.unref();
  return {
    connections: () => sockets.size,
    volunteers: () => byVolunteer.size,
    isPeerId: (peerId) => peerIds.has(peerId),
    workAvailable: () => {
      let told = 0;
      for (const l of live.values()) {
        if (!l.conn.idle) continue;
        l.conn.idle = false;
        l.push({ type: 'work-available' });
        told++;
      }
      return told;
    },
    close: async () => {
      closing = true;
      clearInterval(pinger);
      creditPushes?.close();
      server.off('upgrade', onUpgrade);
      const gone = [...sockets].map(
        (ws) =>
          new Promise<void>((resolve) => {
            ws.once('close', () => resolve());
            ws.terminate();
          }),
      );
      await Promise.all(gone);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
