// `hearth hub`'s HTTP side: one Node process, one port, the researchers' JSON API and the blob
// store. The http.Server is handed back so the volunteers' WebSocket control plane (and later the
// PeerServer and static pages) can attach to the same port.
//
// Everything a request carries is untrusted: paths, headers and bodies are bounded and checked,
// every failure is a JSON error `{ error: { code, message } }`, and no request can take the
// process down (DESIGN.md invariants 3, 6 and 7).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Address, Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { first } from '../core/at.ts';
import { HearthError, isHearthError } from '../core/errors.ts';
import { signVoucher, voucherDomain } from '../credits/voucher.ts';
import { BlobDir } from '../hub/blobs.ts';
import { JournaledStore } from '../hub/journaled-store.ts';
import { DEFAULT_EMBED_SHARE_BPS } from '../hub/ledger.ts';
import type { OracleRunner } from '../hub/oracle.ts';
import { HubRounds, type HubRoundsOptions } from '../hub/rounds.ts';
import { Scheduler } from '../hub/scheduler.ts';
import { ServiceLevels } from '../hub/service-levels.ts';
import { SharedIssuedPeers, SharedSwarm } from '../hub/shared-peers.ts';
import type { HubStore } from '../hub/store.ts';
import { BlobSwarm } from '../hub/swarm.ts';
import { HubWallets } from '../hub/wallets.ts';
import type { Manifest } from '../protocol/manifest.ts';
import { ALLREDUCE_ROUTES } from './allreduce-routes.ts';
import {
  attachControlPlane,
  CONTROL_PATH,
  type ControlPlane,
  type ControlPlaneOptions,
  refuseUpgrade,
} from './control-plane.ts';
import { httpError, JSON_TYPE, lingerAfterAnswer, notFound, responseOf } from './http.ts';
import { BLOB_ROUTES } from './hub-blobs.ts';
import type { Ctx, HubLogEntry, HubStats } from './hub-context.ts';
import { JOB_ROUTES, wgslChecker } from './hub-jobs.ts';
import { HubNews } from './hub-news.ts';
import { STATS_ROUTES } from './hub-stats.ts';
import { TOKEN_ROUTES } from './hub-tokens.ts';
import { VOLUNTEER_ROUTES } from './hub-volunteers.ts';
import { PerMinute, WALLET_RATE_LIMITS, WALLET_ROUTES } from './hub-wallets.ts';
import { JobEvents } from './job-events.ts';
import { SignalRelay } from './peer-relay.ts';
import {
  attachPeerServer,
  type HubPeerServer,
  PEER_PATH,
  PEER_WS_PATH,
  type PeerServerOptions,
} from './peer-server.ts';
import { ClaimRelayer } from './relayer.ts';
import { dispatch, pathOf, type Route } from './routes.ts';
import { DEFAULT_PAGES_DIR, staticPages, urlPath } from './static-pages.ts';
import {
  answerWidgetAllowed,
  answerWidgetTerms,
  WIDGET_ALLOWED_PATH,
  WIDGET_TERMS_PATH,
  widgetHeaders,
} from './widget.ts';

export interface HubOptions {
  /** The SQLite file (created when absent), kept by a JournaledStore; ignored when `store` is given. */
  readonly dbPath?: string;
  /**
   * The store to run on instead of opening `dbPath` (any HubStore: a SqliteStore, a MemoryStore in
   * a test, a store shared by several hubs). The hub closes it on close.
   */
  readonly store?: HubStore;
  /** 0 (the default) picks a free port; `Hub.port` says which. */
  readonly port?: number;
  /** Loopback unless told otherwise. */
  readonly host?: string;
  /** Where blobs live, one file per SHA-256 (created when absent). */
  readonly blobDir: string;
  /** Secret for hub-wide actions (token admin). Without one, nobody is admin. */
  readonly adminToken?: string | undefined;
  /** Largest blob an upload may carry; more is refused with 413. */
  readonly maxBlobBytes: number;
  /** Largest JSON body (a manifest); default 1 MiB. */
  readonly maxJsonBytes?: number;
  /**
   * Pages of other origins that may call the hub from a browser (exact origins, never `*`); also
   * the sites that may embed `<hearth-widget>` (its frame's `frame-ancestors`, `/widget/allowed`).
   */
  readonly allowedOrigins: readonly string[];
  /** How often leases past their deadline are reissued; default 1000 ms. */
  readonly expireEveryMs?: number;
  /** Volunteer WebSocket settings (path, rates, limits); origins come from `allowedOrigins`. */
  readonly volunteers?: Omit<ControlPlaneOptions, 'allowedOrigins' | 'selfOrigins' | 'manifestOf'>;
  /**
   * The PeerJS signalling server at `/p2p` (on by default; `false` turns it off). Clients connect
   * with `new Peer(id, { host, port, path: '/p2p', key })`; its WebSocket admits the hub's own
   * pages, `allowedOrigins`, and clients that send no Origin (non-browser peers).
   */
  readonly peer?: PeerServerOptions | false;
  /** Averaging all-reduce rounds through the hub (issue 5's fallback): sizes, caps, deadlines. */
  readonly allreduce?: HubRoundsOptions;
  /**
   * How long all-reduce reports are kept for audits (default 30 days): the table would otherwise
   * grow with every round. Swept about every tenth of this, at most hourly.
   */
  readonly allreduceReportTtlMs?: number;
  /**
   * Runs the shards behind a manifest's `autoHoneypots` on the hub itself. Default: a compute
   * engine on this machine's GPU through Dawn (onnxruntime-web's wasm for ONNX), made on first use.
   */
  readonly oracle?: () => Promise<OracleRunner>;
  /**
   * Compile every WGSL job's kernel on the hub's own device at submit (Dawn, made on first use),
   * so a syntax error is refused with its line and column (default true). Without a device the
   * shader's declarations are still checked against the manifest.
   */
  readonly compileWgsl?: boolean;
  /** Where the hub's error lines go (default: one JSON line each on stderr). */
  readonly log?: (entry: HubLogEntry) => void;
  /**
   * The folder whose files the hub serves at every path outside `/v1/` and `/p2p` (the volunteer
   * page, console and widget). Default: `dist/` of this checkout (`npm run build` makes it);
   * while it does not exist those paths answer 404 `pages/missing`.
   */
  readonly pagesDir?: string;
  /**
   * Pay credit as tokens (issue 13): the credit contract, the key that signs its vouchers, the
   * embedding sites' share, and optionally a relayer that submits claims from a funded key.
   * Without it credit stays in the ledger and the wallet routes answer `wallet/disabled`.
   */
  readonly wallet?: HubWalletOptions;
  /** The embedding site's share of credit earned through its widget, basis points (default 1,000). */
  readonly embedShareBps?: number;
}

/** What `HubOptions.wallet` takes. Keys are values here: the CLI reads them from files. */
export interface HubWalletOptions {
  readonly chainId: number;
  readonly contract: Address;
  /** The key the contract trusts to sign vouchers. Never logged, never sent. */
  readonly signerKey: Hex;
  /** Seconds a voucher stays valid (default a day). */
  readonly voucherTtlSec?: number;
  /** Relays claims: an RPC URL of the chain and a funded key. */
  readonly relayer?: { readonly rpcUrl: string; readonly key: Hex };
}

export interface Hub {
  /** e.g. `http://127.0.0.1:43127` */
  readonly url: string;
  readonly port: number;
  /** The HTTP server: API, control plane, PeerServer and pages share its port. */
  readonly server: Server;
  /** Volunteers' WebSocket control plane, at `/v1/volunteer` on the same port. */
  readonly controlPlane: ControlPlane;
  /** The PeerJS signalling server at `/p2p` (undefined when `peer: false`). */
  readonly peer: HubPeerServer | undefined;
  /** Which connected volunteers hold which blobs (undefined when `peer: false`). */
  readonly swarm: BlobSwarm | undefined;
  /** Signalling to and from other hubs' peers (only on a store several hubs share). */
  readonly relay: SignalRelay | undefined;
  /** Live counters (blob egress). */
  readonly stats: Readonly<HubStats>;
  /**
   * Origins of the pages this hub serves itself (from its listening address: with a loopback host
   * `127.0.0.1`, `localhost` and `[::1]` at its port). They may call the API and open the
   * WebSockets without being listed; a hub behind a proxy or bound to a wildcard address lists
   * its public origin in `allowedOrigins`.
   */
  readonly selfOrigins: readonly string[];
  readonly scheduler: Scheduler;
  readonly store: HubStore;
  readonly blobs: BlobDir;
  /** Stops listening, drops open connections, closes the store. */
  close(): Promise<void>;
}

const MiB = 2 ** 20;

/**
 * Starts a hub: SQLite store, scheduler, blob folder and the HTTP API on one port.
 *
 * Routes (JSON unless noted; `Authorization: Bearer <token>` on every one except blob reads):
 * - `PUT /v1/blobs/:sha256` upload (streamed, hashed, size-limited) → 201 `{ sha256, bytes }`
 * - `GET /v1/blobs/:sha256/pieces` `{ v, sha256, totalBytes, pieceSize, pieces }`: each piece's
 *   SHA-256 (protocol/blob-pieces.ts), public like the bytes
 * - `GET|HEAD /v1/blobs/:sha256` raw bytes with `Range` (206). Public: a blob is named by its
 *   hash, volunteers fetch inputs here as the data plane's fallback, and knowing the hash is
 *   knowing what to ask for — results are never blobs, so they stay behind tokens.
 * - `POST /v1/jobs` a manifest → 201 `{ job }`; every blob it names must be uploaded first;
 *   `GET /v1/jobs` the caller's jobs (the admin's: all), newest first, at most 200, with counts
 * - `GET /v1/stats` (any token) service levels over the last hour (hub/service-levels.ts) and the
 *   caller's running or recently active jobs with rate, latency p50/p95 and ETA
 * - `GET /v1/jobs/:id` progress; `DELETE /v1/jobs/:id` cancels it (→ `CancelOutcome`; 409 once it
 *   is done or failed); `GET /v1/jobs/:id/results` the canonical results index;
 *   `GET /v1/jobs/:id/results/:shard/:output` raw bytes (`:shard` is the index or the shard id).
 *   Job routes answer only the token that submitted the job (403 `http/forbidden`) or the admin.
 * - all-reduce (src/node/allreduce-routes.ts): `PUT /v1/allreduce/:round/contributions` and
 *   `GET /v1/allreduce/:round/mean` with a round's ticket; `GET /v1/allreduce/:round` reports and
 *   verdicts (any token)
 * - `GET /v1/volunteers/:id/credits` (any token) `CreditReport`: `{ volunteer, unitsPerCredit,
 *   pending, granted, pendingResults }`, amounts in base units as decimal strings
 * - admin only: `POST /v1/tokens` `{ name }` → `{ name, token }`, `GET /v1/tokens`,
 *   `DELETE /v1/tokens/:name`
 *
 * @example
 * const hub = await startHub({ dbPath: 'hub.db', blobDir: 'blobs', maxBlobBytes: 256 * 2 ** 20,
 *   allowedOrigins: [], adminToken: process.env.HEARTH_ADMIN_TOKEN });
 * await hub.close();
 */
/** Parsed manifests a hub keeps for the leases it sends (the oldest out first past this many). */
const MANIFESTS_KEPT = 256;

export async function startHub(opts: HubOptions): Promise<Hub> {
  const host = opts.host ?? '127.0.0.1';
  const maxJson = opts.maxJsonBytes ?? MiB;
  const blobs = new BlobDir(opts.blobDir, opts.maxBlobBytes);
  if (!opts.store && opts.dbPath === undefined) {
    throw new HearthError('input/invalid', 'startHub: give dbPath (a SQLite file) or store.', {
      details: { path: 'dbPath' },
    });
  }
  const store: HubStore = opts.store ?? new JournaledStore(opts.dbPath ?? '');
  const levels = new ServiceLevels();
  const scheduler = new Scheduler(store, {
    blob: (sha) => blobs.read(sha),
    writeBlob: (bytes) => blobs.writeSync(bytes),
    observer: (e) => levels.record(e),
    ...(opts.embedShareBps === undefined ? {} : { embedShareBps: opts.embedShareBps }),
  });
  const wallets = opts.wallet
    ? hubWallets(store, opts.wallet, opts.embedShareBps ?? DEFAULT_EMBED_SHARE_BPS)
    : undefined;
  const relayer = opts.wallet?.relayer
    ? new ClaimRelayer({
        rpcUrl: opts.wallet.relayer.rpcUrl,
        key: opts.wallet.relayer.key,
        chainId: opts.wallet.chainId,
        contract: opts.wallet.contract,
      })
    : undefined;
  const allowed = new Set(opts.allowedOrigins);
  // Filled once the port is known, before the first request can arrive.
  const self = new Set<string>();
  // Loaded on first use: the GPU stack (Dawn's native binding, onnxruntime-web) stays out of a
  // hub that never computes a honeypot.
  let engine: Promise<{ runShard: OracleRunner['runShard']; dispose(): Promise<void> }> | undefined;
  const oracle =
    opts.oracle ??
    (() => {
      engine ??= (async () => {
        const [{ GpuRuntime }, { runOnnx }, { ComputeEngine }, { dawnGpu }] = await Promise.all([
          import('../gpu/context.ts'),
          import('../onnx/run.ts'),
          import('../worker/engine.ts'),
          import('./dawn.ts'),
        ]);
        const e = new ComputeEngine({
          runtime: new GpuRuntime({ gpu: dawnGpu() }),
          blobs: {
            get: async (sha) => {
              const b = blobs.read(sha);
              return b ? new Uint8Array(b) : null;
            },
          },
          onnx: (shard, model, o) => runOnnx(shard, model, o),
        });
        await e.probe();
        return e;
      })();
      // A failed start is retried on the next job rather than cached.
      engine.catch(() => {
        engine = undefined;
      });
      return engine;
    });
  const checkWgsl = opts.compileWgsl === false ? undefined : wgslChecker();
  const stats: HubStats = { blobBytesServed: 0, internalErrors: 0, sweepFailures: 0 };
  const log = opts.log ?? ((entry: HubLogEntry) => process.stderr.write(`${JSON.stringify(entry)}\n`));
  const describeError = (e: unknown) => ({
    error: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
    ...(e instanceof Error && e.stack
      ? {
          stack: e.stack
            .split('\n')
            .slice(1, 6)
            .map((l) => l.trim()),
        }
      : {}),
  });
  // A 500 is a bug or a broken dependency of the hub's: counted, and one line each for its operator.
  const internal = (req: IncomingMessage, e: unknown) => {
    stats.internalErrors++;
    log({ level: 'error', at: 'http', method: req.method ?? '', path: pathOf(req.url), ...describeError(e) });
  };
  // Rounds average peers' tensors: only where peers exist (the control plane issues their ids).
  // On a store several hubs share, a round's members may be on any of them (pg-rounds.ts).
  const rounds =
    opts.peer === false
      ? undefined
      : new HubRounds({
          ...opts.allreduce,
          ...(store.roundExchange ? { exchange: store.roundExchange } : {}),
        });
  // Hubs sharing one database tell each other of new work and job changes (hub-news.ts).
  let controlPlane: ControlPlane | undefined;
  const news = store.news
    ? new HubNews(store.news, {
        work: () => controlPlane?.workAvailable(),
        // Called only once started, after jobEvents exists.
        job: (job) => jobEvents.heard(job),
      })
    : undefined;
  const jobEvents = new JobEvents(news ? { relay: (job) => news.job(job) } : {});
  if (news) await news.start();
  // Peers of every hub on a shared store: this hub is alive, and hears signalling relayed to its
  // peers, before it listens (peer-directory.ts, peer-relay.ts).
  const dir = opts.peer === false ? undefined : store.peers;
  const relay = dir ? new SignalRelay(dir) : undefined;
  await relay?.start();
  const ctx: Ctx = {
    rounds,
    store,
    scheduler,
    blobs,
    maxJson,
    allowed,
    self,
    adminToken: opts.adminToken,
    oracle,
    ...(checkWgsl ? { checkWgsl } : {}),
    stats,
    // The control plane is attached below, once the server exists.
    workAvailable: () => {
      controlPlane?.workAvailable();
      news?.work();
    },
    events: jobEvents,
    levels,
    volunteersConnected: () => controlPlane?.volunteers() ?? 0,
    ...(wallets ? { wallets } : {}),
    ...(relayer ? { relayer } : {}),
    limits: {
      vouchers: new PerMinute(WALLET_RATE_LIMITS.vouchersPerMinute),
      claims: new PerMinute(WALLET_RATE_LIMITS.claimsPerMinute),
    },
  };
  // The widget's frame renders inside the allowed origins' pages; its script loads anywhere.
  const pages = staticPages(opts.pagesDir ?? DEFAULT_PAGES_DIR, { headers: widgetHeaders(allowed) });
  let p2p: HubPeerServer | undefined;

  const server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
    // Three areas on one port: the API under /v1/, PeerJS under /p2p, pages everywhere else.
    const path = urlPath(req.url ?? '/');
    if (path === '/v1' || path.startsWith('/v1/')) {
      handle(ctx, req, res).catch((e: unknown) => fail(res, e, internal));
    } else if (path === PEER_PATH || path.startsWith(`${PEER_PATH}/`)) {
      if (!p2p) return fail(res, notFound(`route ${req.method} ${pathOf(req.url)}`));
      try {
        p2p.handle(req, res, () => fail(res, notFound(`route ${req.method} ${pathOf(req.url)}`)));
      } catch (e) {
        fail(res, e, internal);
      }
    } else if (path === WIDGET_ALLOWED_PATH) {
      answerWidgetAllowed(req, res, (o) => allowed.has(o) || self.has(o));
    } else if (path === WIDGET_TERMS_PATH) {
      answerWidgetTerms(req, res, {
        embedShareBps: opts.embedShareBps ?? DEFAULT_EMBED_SHARE_BPS,
        paysTokens: wallets !== undefined,
      });
    } else void pages(req, res);
  });
  // A request Node cannot even parse still gets the API's JSON error (431 for oversized headers).
  // Idle keep-alive sockets outlive the clients' own idle timeout (undici: 4 s), so a client never
  // reuses a socket the hub is closing at that moment (ECONNRESET on a busy machine, seen in a
  // full test run); headers must still arrive within the usual minute.
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 60_000;
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    const big = err.code === 'HPE_HEADER_OVERFLOW';
    const body = JSON.stringify({
      error: {
        code: big ? 'http/too-large' : 'http/bad-request',
        message: big
          ? 'the request headers are over the hub\u2019s limit of 16 KiB.'
          : `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'}).`,
      },
    });
    socket.end(
      `HTTP/1.1 ${big ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\n` +
        `Content-Type: ${JSON_TYPE}\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
  // CONNECT (a proxy tunnel) is not a request Node routes to the handler: without this the socket
  // was dropped with no answer at all.
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => socket.destroy());
    refuseUpgrade(socket, 405, 'http/method', 'this hub is not a proxy: CONNECT is not allowed.');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  for (const o of selfOriginsOf(host, port)) self.add(o);
  // A manifest never changes once submitted, and every lease sends its shard's context from it: a
  // store that reads through (PostgreSQL) would pay a round trip per lease for the same bytes.
  const manifests = new Map<string, Manifest>();
  const manifestOf = (job: string): Manifest | undefined => {
    const hit = manifests.get(job);
    if (hit) return hit;
    const m = store.getJob(job)?.manifest;
    if (!m) return undefined;
    manifests.set(job, m);
    if (manifests.size > MANIFESTS_KEPT) manifests.delete(first(manifests.keys(), 'manifest cache'));
    return m;
  };
  // The swarm (who holds which blob) only makes sense where peers can reach each other. On a
  // store several hubs share, holders and issued peer ids reach across the hubs (shared-peers.ts).
  const swarm = opts.peer === false ? undefined : dir ? new SharedSwarm(dir) : new BlobSwarm();
  const issued = dir ? new SharedIssuedPeers(dir) : undefined;
  controlPlane = attachControlPlane(server, scheduler, {
    ...opts.volunteers,
    allowedOrigins: opts.allowedOrigins,
    selfOrigins: [...self],
    manifestOf,
    onJobChanged: (job) => jobEvents.changed(job),
    resultVolunteers: (shard) => store.resultsOfShard(shard).map((r) => r.volunteer),
    ...(wallets ? { wallets } : {}),
    ...(swarm ? { swarm } : {}),
    ...(swarm
      ? {
          allreduce: {
            record: (r) => store.putAllReduceReport(r),
            ...(rounds ? { rounds } : {}),
            ...(issued ? { issued } : {}),
          },
        }
      : {}),
  });
  const cp = controlPlane;
  if (opts.peer !== false) {
    const peerOpts = opts.peer ?? {};
    p2p = attachPeerServer(server, (o) => allowed.has(o) || self.has(o), {
      ...peerOpts,
      ...(peerOpts.requireIssuedIds ? { idAllowed: (id: string) => cp.isPeerId(id) } : {}),
      ...(relay ? { relay } : {}),
    });
  }
  // An upgrade nobody takes would otherwise hang until the socket times out.
  const controlPath = opts.volunteers?.path ?? CONTROL_PATH;
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === controlPath || (p2p && path === PEER_WS_PATH)) return;
    socket.on('error', () => socket.destroy());
    refuseUpgrade(socket, 404, 'http/not-found', `no WebSocket at ${pathOf(req.url)}.`);
  });
  const reportTtl = opts.allreduceReportTtlMs ?? 30 * 24 * 3600_000;
  const pruneEvery = Math.min(reportTtl / 10, 3600_000);
  let prunedAt = 0;
  let lastSweepError = '';
  const expiry = setInterval(() => {
    const now = Date.now();
    try {
      // Leases that went back are work for volunteers told "no work".
      if (scheduler.expire(now) > 0) {
        cp.workAvailable();
        news?.work();
        jobEvents.changed();
      }
      if (now - prunedAt >= pruneEvery) {
        prunedAt = now;
        store.pruneAllReduceReports(now - reportTtl);
      }
      lastSweepError = '';
    } catch (e) {
      // Retried on the next tick (the store's transaction left nothing half-done); counted always,
      // logged once per distinct failure so a stopped store does not write a line a second.
      stats.sweepFailures++;
      const d = describeError(e);
      if (d.error !== lastSweepError) {
        lastSweepError = d.error;
        log({ level: 'error', at: 'expiry', ...d });
      }
    }
  }, opts.expireEveryMs ?? 1000);
  expiry.unref();

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    server,
    controlPlane: cp,
    peer: p2p,
    swarm,
    relay,
    stats,
    selfOrigins: [...self],
    scheduler,
    store,
    blobs,
    close() {
      closing ??= (async () => {
        clearInterval(expiry);
        // Volunteers first: their disconnects still reach the scheduler while the store is open.
        news?.close();
        jobEvents.close();
        await cp.close();
        rounds?.close();
        await p2p?.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        store.close();
        if (engine) await (await engine.catch(() => undefined))?.dispose();
      })();
      return closing;
    },
  };
}

async function handle(ctx: Ctx, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = req.method ?? 'GET';
  cors(ctx, req, res);
  if (method === 'OPTIONS') {
    res.writeHead(204, {
      'access-control-allow-methods': 'GET, HEAD, PUT, POST, DELETE, OPTIONS',
      'access-control-allow-headers': 'Authorization, Content-Type, Range',
      'access-control-max-age': '600',
    });
    res.end();
    return;
  }
  await dispatch(ROUTES, ctx, req, res);
}

/** Every route of the API, by concern (routes.ts dispatches them). */
const ROUTES: readonly Route[] = [
  ...BLOB_ROUTES,
  ...ALLREDUCE_ROUTES,
  ...JOB_ROUTES,
  ...STATS_ROUTES,
  ...VOLUNTEER_ROUTES,
  ...WALLET_ROUTES,
  ...TOKEN_ROUTES,
];

/** CORS for the listed origins only; a browser request from any other origin is refused. */
function cors(ctx: Ctx, req: IncomingMessage, res: ServerResponse): void {
  const origin = req.headers.origin;
  res.setHeader('vary', 'Origin');
  if (origin === undefined) return;
  // The hub's own pages, by its listening address rather than the Host header (DNS rebinding:
  // see ControlPlaneOptions.selfOrigins).
  const same = ctx.self.has(origin);
  if (ctx.allowed.has(origin)) {
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader(
      'access-control-expose-headers',
      'Content-Range, Content-Length, ETag, X-Hearth-Dtype, X-Hearth-Shape, X-Hearth-Sha256',
    );
  } else if (!same) {
    throw httpError('http/origin', `origin ${origin.slice(0, 200)} is not allowed by this hub.`);
  }
}

/**
 * The one place errors become responses: a HearthError by its code (http.ts responseOf), anything else a bare 500 (reported
 * to `onInternal`: the client learns only that the hub failed, the operator's log says how).
 */
function fail(
  res: ServerResponse,
  e: unknown,
  onInternal?: (req: IncomingMessage, e: unknown) => void,
): void {
  if (!isHearthError(e)) onInternal?.(res.req, e);
  const err = responseOf(
    isHearthError(e)
      ? e
      : httpError('http/internal', 'the hub failed on this request; it keeps serving others.'),
  );
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (res.destroyed) return;
  const body = JSON.stringify({
    error: {
      code: err.code,
      message: err.message,
      ...(Object.keys(err.details).length > 0 ? { details: err.details } : {}),
    },
  });
  res.writeHead(err.status, {
    ...err.headers,
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(body);
  lingerAfterAnswer(res);
}

/**
 * The origins a browser shows for pages served by a hub listening on `host:port`. A loopback hub
 * is reachable by several names; a wildcard bind (0.0.0.0, ::) has no knowable public name, so it
 * contributes none (list the public origin in `allowedOrigins`).
 */
export type { HubLogEntry, HubStats } from './hub-context.ts';
export { manifestBlobs } from './hub-jobs.ts';

export function selfOriginsOf(host: string, port: number): string[] {
  const names =
    host === '127.0.0.1' || host === 'localhost' || host === '::1'
      ? ['127.0.0.1', 'localhost', '[::1]']
      : host === '0.0.0.0' || host === '::'
        ? []
        : [host.includes(':') ? `[${host}]` : host];
  // URL.origin drops a default port (80) as browsers do.
  return names.map((n) => new URL(`http://${n}:${port}`).origin);
}

/** The hub's wallets: SIWE bindings, earned sums and vouchers signed with the operator's key. */
function hubWallets(store: HubStore, w: HubWalletOptions, embedShareBps: number): HubWallets {
  const signer = privateKeyToAccount(w.signerKey);
  const domain = voucherDomain(w.chainId, w.contract);
  return new HubWallets({
    store,
    rules: {
      chainId: w.chainId,
      contract: w.contract,
      embedShareBps,
      ...(w.voucherTtlSec === undefined ? {} : { voucherTtlSec: w.voucherTtlSec }),
    },
    sign: (v) =>
      signVoucher(signer, domain, { account: v.account as Address, amount: v.amount, expiry: v.expiry }),
  });
}
