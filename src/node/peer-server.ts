// The hub's own PeerJS signalling server (the `peer` package), on the hub's HTTP server at /p2p:
// volunteers' tabs find each other here and swap WebRTC offers, answers and ICE candidates; the
// bytes then flow peer to peer (DESIGN.md, data plane). No public broker is ever used.
//
// Two things in `peer` 1.0.2 do not fit a server that shares its port and must stop cleanly:
// - Its WebSocket server is a `ws` WebSocketServer made with `{ server, path }`. Such a server
//   listens to every 'upgrade' on that http.Server and answers any other path with a 400 and a
//   destroyed socket (ws's handleUpgrade → shouldHandle → abortHandshake), which would kill the
//   control plane's /v1/volunteer handshakes on the same port. So PeerServer gets an
//   EventEmitter stand-in as its "server", and only /p2p/peerjs upgrades that passed the origin
//   and per-address checks here are re-emitted on it.
// - It starts two self-rearming setTimeout chains when mounted (message expiry every
//   `cleanup_out_msgs`, dead-peer sweep every 300 ms) and exposes no way to stop them. They are
//   captured by running peer's code with a tracking setTimeout (OwnedTimers below) and cleared
//   on close.
import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import express from 'express';
import { ExpressPeerServer } from 'peer';
import { WebSocketServer } from 'ws';
import { refuseUpgrade } from './control-plane.ts';
import type { SignalRelay } from './peer-relay.ts';

/** Where the PeerServer lives on the hub; PeerJS clients use `{ path: '/p2p' }`. */
export const PEER_PATH = '/p2p';
/** The WebSocket path PeerJS clients open under PEER_PATH (PeerJS appends `peerjs`). */
export const PEER_WS_PATH = `${PEER_PATH}/peerjs`;

/** Settings of the hub's PeerServer (`HubOptions.peer`). */
export interface PeerServerOptions {
  /** The PeerJS `key` clients must name (default 'hearth'). Not a secret: it names the realm. */
  readonly key?: string;
  /**
   * A peer that sent no heartbeat for this long is dropped (default 60 s; PeerJS clients send
   * one every 5 s).
   */
  readonly aliveTimeoutMs?: number;
  /** How long a message for a peer that is not connected (yet) is kept (default 5 s). */
  readonly expireTimeoutMs?: number;
  /**
   * Largest signalling message in bytes (default 64 KiB; an SDP offer is a few KiB). A larger
   * one closes that peer's socket (1009).
   */
  readonly maxMessageBytes?: number;
  /** Peers connected at once (default 5000); more get PeerJS's "concurrent limit" error. */
  readonly maxPeers?: number;
  /** Open signalling sockets per remote address (default 16); more are refused with 429. */
  readonly maxConnectionsPerAddress?: number;
  /**
   * Only ids the control plane issued to an open volunteer connection (its `welcome.peerId`)
   * may connect (default false: any id, first come first served, as PeerJS does). On, nobody
   * can take a peer id the hub hands out as a blob holder.
   */
  readonly requireIssuedIds?: boolean;
  /** The check behind `requireIssuedIds` (the hub passes its control plane's). */
  readonly idAllowed?: (id: string) => boolean;
  /**
   * Signalling to and from peers of other hubs on the same database (peer-relay.ts); the hub
   * passes one when its store has a peer directory.
   */
  readonly relay?: SignalRelay;
}

/** The PeerServer as mounted on a hub. */
export interface HubPeerServer {
  /** Serves PeerJS's HTTP routes under PEER_PATH (`GET /p2p/` info, `GET /p2p/:key/id`). */
  handle(req: IncomingMessage, res: ServerResponse, notFound: () => void): void;
  /** Peers connected right now. */
  peers(): number;
  /** Closes every signalling socket, stops PeerServer's timers and detaches from the server. */
  close(): Promise<void>;
}

/**
 * Mounts a PeerServer on `server` at PEER_PATH. Upgrades to PEER_WS_PATH whose `Origin` header
 * is present and refused by `originAllowed` get a 403 (browsers always send Origin, so a page of
 * another site cannot use this hub's signalling); a missing Origin is a non-browser peer (e.g. a
 * hub-side Node peer) and is let through — it could forge any Origin anyway.
 *
 * @example
 * const p2p = attachPeerServer(server, (o) => allowed.has(o), { key: 'hearth' });
 * // client: new Peer(id, { host, port, path: '/p2p', key: 'hearth' })
 * await p2p.close();
 */
export function attachPeerServer(
  server: Server,
  originAllowed: (origin: string) => boolean,
  opts: PeerServerOptions = {},
): HubPeerServer {
  const perAddress = opts.maxConnectionsPerAddress ?? 16;
  const maxPayload = opts.maxMessageBytes ?? 64 * 1024;
  const standIn = new EventEmitter();
  let wss: WebSocketServer | undefined;
  const peerApp = ExpressPeerServer(standIn as unknown as Server, {
    path: '/',
    key: opts.key ?? 'hearth',
    // Listing every connected peer would hand strangers the whole swarm.
    allow_discovery: false,
    alive_timeout: opts.aliveTimeoutMs ?? 60_000,
    expire_timeout: opts.expireTimeoutMs ?? 5_000,
    concurrent_limit: opts.maxPeers ?? 5000,
    // PeerJS's HTTP routes answer CORS for the same origins the WebSocket admits, not any origin
    // (peer's default, `origin: true`, reflects every caller).
    corsOptions: {
      origin: (origin: string | undefined, cb: (err: Error | null, allow?: boolean) => void) =>
        cb(null, origin === undefined || originAllowed(origin)),
    },
    createWebSocketServer: (options) => {
      wss = new WebSocketServer({ ...options, maxPayload });
      const relay = opts.relay;
      // Before PeerServer's own listener: the relay sees a socket's messages first.
      if (relay) {
        wss.on('connection', (ws, req) =>
          relay.connection(ws, new URL(req.url ?? '/', 'http://hub').searchParams.get('id') ?? ''),
        );
      }
      return wss;
    },
  });
  // PeerServer sets everything up when mounted on a parent express app, not before.
  const app = express();
  app.disable('x-powered-by');
  peerApp.disable('x-powered-by');
  // Mounting starts PeerServer's two timer chains; every later timer of theirs is armed from
  // their own callbacks, which OwnedTimers also runs tracked.
  const timers = new OwnedTimers();
  timers.run(() => app.use(PEER_PATH, peerApp));
  // peer's own handlers already catch socket errors; this keeps an 'error' with no listener on
  // the app (an EventEmitter) from throwing.
  peerApp.on('error', () => {});
  const relay = opts.relay;
  if (relay) {
    peerApp.on('connection', (client) => relay.joined(client));
    peerApp.on('disconnect', (client) => relay.left(client));
  }

  const byAddress = new Map<string, number>();
  let closing = false;
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if ((req.url ?? '/').split('?')[0] !== PEER_WS_PATH) return;
    socket.on('error', () => socket.destroy());
    if (closing) return refuseUpgrade(socket, 503, 'http/closing', 'The hub is shutting down.');
    const origin = req.headers.origin;
    if (origin !== undefined && !originAllowed(origin)) {
      return refuseUpgrade(
        socket,
        403,
        'http/origin',
        `Origin ${origin.slice(0, 200)} is not allowed to use this hub's peer signalling.`,
      );
    }
    if (opts.idAllowed) {
      const id = new URL(req.url ?? '/', 'http://hub').searchParams.get('id') ?? '';
      if (!opts.idAllowed(id)) {
        return refuseUpgrade(
          socket,
          403,
          'p2p/peer-id',
          'This peer id was not issued to an open volunteer connection: use welcome.peerId.',
        );
      }
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    const open = byAddress.get(address) ?? 0;
    if (open >= perAddress) {
      return refuseUpgrade(
        socket,
        429,
        'http/too-many-connections',
        `${open} signalling connections from this address already: the limit is ${perAddress}.`,
      );
    }
    byAddress.set(address, open + 1);
    socket.once('close', () => {
      const n = (byAddress.get(address) ?? 1) - 1;
      if (n <= 0) byAddress.delete(address);
      else byAddress.set(address, n);
    });
    standIn.emit('upgrade', req, socket, head);
  };
  server.on('upgrade', onUpgrade);

  return {
    handle(req, res, notFound) {
      // Our callback replaces express's final handler, which would answer errors with a stack
      // trace in HTML outside NODE_ENV=production.
      // express decorates plain node:http requests itself (its own init middleware).
      app(req as express.Request, res as express.Response, (err?: unknown) => {
        if (err === undefined || err === 'route' || err === 'router') notFound();
        else res.destroy();
      });
    },
    peers: () => wss?.clients.size ?? 0,
    async close() {
      if (closing) return;
      closing = true;
      server.off('upgrade', onUpgrade);
      timers.stop();
      const all = wss ? [...wss.clients] : [];
      await Promise.all(
        all.map(
          (ws) =>
            new Promise<void>((resolve) => {
              ws.once('close', () => resolve());
              ws.terminate();
            }),
        ),
      );
      await new Promise<void>((resolve) => (wss ? wss.close(() => resolve()) : resolve()));
      // Timers peer armed while its sockets closed.
      timers.stop();
    },
  };
}

/**
 * Tracks every setTimeout made while `run` executes, and every one made later by those timers'
 * callbacks, so that `stop` can end code that never stops its own timers. The global is swapped
 * only for the synchronous extent of `run`, so other code never sees the tracking version.
 */
class OwnedTimers {
  readonly #live = new Set<NodeJS.Timeout>();
  #stopped = false;

  run<T>(fn: () => T): T {
    const real = globalThis.setTimeout;
    const tracked = (cb: (...a: unknown[]) => void, ms?: number, ...args: unknown[]): NodeJS.Timeout => {
      const t: NodeJS.Timeout = real(() => {
        this.#live.delete(t);
        if (!this.#stopped) this.run(() => cb(...args));
      }, ms);
      // Left ref'd while running, so a missed stop() shows as a process that does not exit (the
      // tests check that it does); one armed after stop() can never matter.
      if (this.#stopped) t.unref();
      this.#live.add(t);
      return t;
    };
    globalThis.setTimeout = tracked as unknown as typeof setTimeout;
    try {
      return fn();
    } finally {
      globalThis.setTimeout = real;
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#live) clearTimeout(t);
    this.#live.clear();
  }
}
