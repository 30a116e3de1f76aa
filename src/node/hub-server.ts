// `hearth hub`'s HTTP side: one Node process, one port, the researchers' JSON API and the blob
// store. The http.Server is handed back so the volunteers' WebSocket control plane (and later the
// PeerServer and static pages) can attach to the same port.
//
// Everything a request carries is untrusted: paths, headers and bodies are bounded and checked,
// every failure is a JSON error `{ error: { code, message } }`, and no request can take the
// process down (DESIGN.md invariants 3, 6 and 7).

import { createReadStream } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type HearthError, isHearthError } from '../core/errors.ts';
import { isSha256Hex } from '../core/hash.ts';
import { BlobDir, isTooLarge } from '../hub/blobs.ts';
import { Scheduler } from '../hub/scheduler.ts';
import { SqliteStore } from '../hub/sqlite-store.ts';
import type { HubStore } from '../hub/store.ts';
import { authenticate, bearer, createToken, listTokens, type Principal, revokeToken } from '../hub/tokens.ts';
import { type Manifest, parseManifest } from '../protocol/manifest.ts';
import { attachControlPlane, type ControlPlane, type ControlPlaneOptions } from './control-plane.ts';

export interface HubOptions {
  /** The SQLite file (created when absent). */
  readonly dbPath: string;
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
  /** Pages of other origins that may call the hub from a browser (exact origins, never `*`). */
  readonly allowedOrigins: readonly string[];
  /** How often leases past their deadline are reissued; default 1000 ms. */
  readonly expireEveryMs?: number;
  /** Volunteer WebSocket settings (path, rates, limits); origins come from `allowedOrigins`. */
  readonly volunteers?: Omit<ControlPlaneOptions, 'allowedOrigins' | 'manifestOf'>;
}

export interface Hub {
  /** e.g. `http://127.0.0.1:43127` */
  readonly url: string;
  readonly port: number;
  /** The HTTP server (for the PeerServer later: same port, same process). */
  readonly server: Server;
  /** Volunteers' WebSocket control plane, at `/v1/volunteer` on the same port. */
  readonly controlPlane: ControlPlane;
  readonly scheduler: Scheduler;
  readonly store: HubStore;
  readonly blobs: BlobDir;
  /** Stops listening, drops open connections, closes the store. */
  close(): Promise<void>;
}

const MiB = 2 ** 20;
const JSON_TYPE = 'application/json; charset=utf-8';

/** An HTTP failure with its status; `code` goes to the client as `error.code`. */
class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    status: number,
    code: string,
    message: string,
    details: Readonly<Record<string, unknown>> = {},
    headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.headers = headers;
  }
}

const notFound = (what: string) => new HttpError(404, 'http/not-found', `${what} does not exist.`);

/** A HearthError from bad input as a 400 (413 when it is about size), naming what was wrong. */
function fromHearth(e: HearthError, status = 400): HttpError {
  if (isTooLarge(e)) return new HttpError(413, 'http/too-large', e.message, e.details);
  return new HttpError(status, e.code, e.message, e.details);
}

/**
 * Starts a hub: SQLite store, scheduler, blob folder and the HTTP API on one port.
 *
 * Routes (JSON unless noted; `Authorization: Bearer <token>` on every one except blob reads):
 * - `PUT /v1/blobs/:sha256` upload (streamed, hashed, size-limited) → 201 `{ sha256, bytes }`
 * - `GET|HEAD /v1/blobs/:sha256` raw bytes with `Range` (206). Public: a blob is named by its
 *   hash, volunteers fetch inputs here as the data plane's fallback, and knowing the hash is
 *   knowing what to ask for — results are never blobs, so they stay behind tokens.
 * - `POST /v1/jobs` a manifest → 201 `{ job }`; every blob it names must be uploaded first
 * - `GET /v1/jobs/:id` progress; `GET /v1/jobs/:id/results` the canonical results index;
 *   `GET /v1/jobs/:id/results/:shard/:output` raw bytes (`:shard` is the index or the shard id)
 * - admin only: `POST /v1/tokens` `{ name }` → `{ name, token }`, `GET /v1/tokens`,
 *   `DELETE /v1/tokens/:name`
 *
 * @example
 * const hub = await startHub({ dbPath: 'hub.db', blobDir: 'blobs', maxBlobBytes: 256 * 2 ** 20,
 *   allowedOrigins: [], adminToken: process.env.HEARTH_ADMIN_TOKEN });
 * await hub.close();
 */
export async function startHub(opts: HubOptions): Promise<Hub> {
  const host = opts.host ?? '127.0.0.1';
  const maxJson = opts.maxJsonBytes ?? MiB;
  const blobs = new BlobDir(opts.blobDir, opts.maxBlobBytes);
  const store = new SqliteStore(opts.dbPath);
  const scheduler = new Scheduler(store, { blob: (sha) => blobs.read(sha) });
  const allowed = new Set(opts.allowedOrigins);
  const ctx: Ctx = { store, scheduler, blobs, maxJson, allowed, adminToken: opts.adminToken };

  const server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
    handle(ctx, req, res).catch((e: unknown) => fail(res, e));
  });
  // A request Node cannot even parse gets a bare 400 and its socket closed, never an exception.
  server.on('clientError', (_err: Error, socket: Socket) => {
    if (socket.writable)
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const controlPlane = attachControlPlane(server, scheduler, {
    ...opts.volunteers,
    allowedOrigins: opts.allowedOrigins,
    manifestOf: (job) => store.getJob(job)?.manifest,
  });
  const expiry = setInterval(() => {
    try {
      scheduler.expire(Date.now());
    } catch {
      // A failed sweep is retried on the next tick; the store's transaction left nothing half-done.
    }
  }, opts.expireEveryMs ?? 1000);
  expiry.unref();

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    server,
    controlPlane,
    scheduler,
    store,
    blobs,
    close() {
      closing ??= (async () => {
        clearInterval(expiry);
        // Volunteers first: their disconnects still reach the scheduler while the store is open.
        await controlPlane.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        store.close();
      })();
      return closing;
    },
  };
}

interface Ctx {
  readonly store: HubStore;
  readonly scheduler: Scheduler;
  readonly blobs: BlobDir;
  readonly maxJson: number;
  readonly allowed: ReadonlySet<string>;
  readonly adminToken: string | undefined;
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
  const seg = segments(req.url ?? '/');
  if (seg[0] !== 'v1') throw notFound(`route ${method} ${pathOf(req.url)}`);

  // Blob reads are public (see startHub's docs); everything else needs a token.
  if (seg[1] === 'blobs' && seg.length === 3 && (method === 'GET' || method === 'HEAD')) {
    await serveBlob(ctx, req, res, seg[2]!);
    return;
  }
  const who = principal(ctx, req);

  if (seg[1] === 'blobs' && seg.length === 3) {
    allow(method, ['GET', 'HEAD', 'PUT']);
    await uploadBlob(ctx, req, res, seg[2]!);
    return;
  }
  if (seg[1] === 'jobs') {
    if (seg.length === 2) {
      allow(method, ['POST']);
      await submitJob(ctx, req, res);
      return;
    }
    const id = seg[2]!;
    const job = ctx.store.getJob(id);
    if (seg.length === 3) {
      // Cancel (DELETE) waits for Scheduler.cancel, which the hub's core does not have yet.
      allow(method, ['GET', 'HEAD']);
      if (!job) throw notFound(`job ${id}`);
      return send(req, res, 200, ctx.scheduler.progress(id));
    }
    if (seg[3] === 'results' && (seg.length === 4 || seg.length === 6)) {
      allow(method, ['GET', 'HEAD']);
      if (!job) throw notFound(`job ${id}`);
      if (seg.length === 4) return send(req, res, 200, resultsIndex(ctx, id));
      return sendOutput(ctx, req, res, id, seg[4]!, seg[5]!);
    }
  }
  if (seg[1] === 'tokens' && (seg.length === 2 || seg.length === 3)) {
    if (who.kind !== 'admin') {
      throw new HttpError(403, 'http/forbidden', 'managing tokens needs the hub\u2019s admin token.');
    }
    if (seg.length === 2) {
      allow(method, ['GET', 'HEAD', 'POST']);
      if (method === 'POST') {
        const body = await readJson(ctx, req);
        const name =
          typeof body === 'object' && body !== null ? (body as { name?: unknown }).name : undefined;
        try {
          return send(req, res, 201, createToken(ctx.store, name as string));
        } catch (e) {
          if (isHearthError(e)) throw fromHearth(e);
          throw e;
        }
      }
      return send(req, res, 200, { tokens: listTokens(ctx.store) });
    }
    allow(method, ['DELETE']);
    if (!revokeToken(ctx.store, seg[2]!)) throw notFound(`token ${seg[2]}`);
    return send(req, res, 200, { revoked: seg[2] });
  }
  throw notFound(`route ${method} ${pathOf(req.url)}`);
}

function pathOf(url: string | undefined): string {
  const p = (url ?? '/').split('?')[0]!;
  return p.length > 100 ? `${p.slice(0, 100)}…` : p;
}

/** Path segments, decoded; a path that is too long or badly encoded is a 400. */
function segments(url: string): string[] {
  const path = url.split('?')[0]!;
  if (path.length > 2048 || !path.startsWith('/')) {
    throw new HttpError(400, 'input/invalid', 'path: expected an absolute path of at most 2048 characters.');
  }
  const parts = path.split('/').slice(1);
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  try {
    return parts.map((p) => decodeURIComponent(p));
  } catch {
    throw new HttpError(400, 'input/invalid', 'path: bad percent-encoding.');
  }
}

function allow(method: string, methods: readonly string[]): void {
  if (!methods.includes(method)) {
    throw new HttpError(
      405,
      'http/method',
      `${method} is not allowed here; use ${methods.join(' or ')}.`,
      {},
      { allow: methods.join(', ') },
    );
  }
}

function principal(ctx: Ctx, req: IncomingMessage): Principal {
  const header = req.headers.authorization;
  const secret = bearer(header);
  const who = secret === undefined ? undefined : authenticate(ctx.store, secret, ctx.adminToken);
  if (!who) {
    throw new HttpError(
      401,
      'http/unauthorized',
      header === undefined
        ? 'this route needs "Authorization: Bearer <token>"; ask the hub operator for a token (hearth token create).'
        : 'the bearer token is unknown or revoked.',
      {},
      { 'www-authenticate': 'Bearer realm="hearth"' },
    );
  }
  return who;
}

/** CORS for the listed origins only; a browser request from any other origin is refused. */
function cors(ctx: Ctx, req: IncomingMessage, res: ServerResponse): void {
  const origin = req.headers.origin;
  res.setHeader('vary', 'Origin');
  if (origin === undefined) return;
  const same = origin === `http://${req.headers.host}` || origin === `https://${req.headers.host}`;
  if (ctx.allowed.has(origin)) {
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader(
      'access-control-expose-headers',
      'Content-Range, Content-Length, ETag, X-Hearth-Dtype, X-Hearth-Shape, X-Hearth-Sha256',
    );
  } else if (!same) {
    throw new HttpError(403, 'http/origin', `origin ${origin.slice(0, 200)} is not allowed by this hub.`);
  }
}

function send(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/** The one place errors become responses: HttpError as itself, anything else a bare 500. */
function fail(res: ServerResponse, e: unknown): void {
  const err =
    e instanceof HttpError
      ? e
      : isHearthError(e)
        ? fromHearth(e)
        : new HttpError(500, 'http/internal', 'the hub failed on this request; it keeps serving others.');
  if (res.headersSent) {
    res.destroy();
    return;
  }
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
    // The request body may be unread (refused early): don't read it to keep the connection.
    ...(err.status >= 400 && !res.req.complete ? { connection: 'close' } : {}),
  });
  res.end(body);
}

function declaredLength(req: IncomingMessage, limit: number, what: string): void {
  const cl = req.headers['content-length'];
  if (cl !== undefined && Number(cl) > limit) {
    throw new HttpError(413, 'http/too-large', `${what} is ${cl} bytes, over the hub's limit of ${limit}.`, {
      limit,
    });
  }
}

/** Reads a JSON body of at most ctx.maxJson bytes, stopping as soon as it is over. */
async function readJson(ctx: Ctx, req: IncomingMessage): Promise<unknown> {
  declaredLength(req, ctx.maxJson, 'the body');
  const limit = ctx.maxJson;
  const buf = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (e?: Error) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      if (e) {
        req.pause();
        reject(e);
      } else resolve(Buffer.concat(chunks, size));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        done(new HttpError(413, 'http/too-large', `the body is over the hub's limit of ${limit} bytes.`));
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => done();
    const onError = () => done(new HttpError(400, 'input/invalid', 'the body was cut off.'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    throw new HttpError(400, 'input/invalid', 'body: malformed JSON.', { path: 'body' });
  }
}

function blobHash(sha: string): string {
  if (!isSha256Hex(sha)) {
    throw new HttpError(400, 'input/invalid', 'sha256: expected 64 lowercase hex digits in the path.', {
      path: 'sha256',
    });
  }
  return sha;
}

async function uploadBlob(ctx: Ctx, req: IncomingMessage, res: ServerResponse, sha: string): Promise<void> {
  blobHash(sha);
  declaredLength(req, ctx.blobs.maxBytes, `blob ${sha}`);
  let bytes: number;
  try {
    bytes = await ctx.blobs.receive(req, sha);
  } catch (e) {
    if (isHearthError(e) && e.code !== 'store/failed') throw fromHearth(e);
    throw e;
  }
  send(req, res, 201, { sha256: sha, bytes });
}

/** Bytes of a blob; a single `Range: bytes=a-b` (or `a-`, `-n`) gets a 206. */
async function serveBlob(ctx: Ctx, req: IncomingMessage, res: ServerResponse, sha: string): Promise<void> {
  blobHash(sha);
  const size = ctx.blobs.size(sha);
  if (size === undefined) throw new HttpError(404, 'blob/missing', `blob ${sha} is not on this hub.`);
  let start = 0;
  let end = size - 1;
  let status = 200;
  const range = req.headers.range;
  // Anything but one byte range (several ranges, other units) is ignored, as RFC 9110 allows.
  const m = range === undefined ? null : /^bytes=(\d{0,16})-(\d{0,16})$/.exec(range.trim());
  if (m && (m[1] !== '' || m[2] !== '')) {
    if (m[1] === '') {
      start = Math.max(0, size - Number(m[2]));
    } else {
      start = Number(m[1]);
      if (m[2] !== '') end = Math.min(end, Number(m[2]));
    }
    if (start >= size || start > end || (m[1] === '' && Number(m[2]) === 0)) {
      throw new HttpError(
        416,
        'http/range',
        `range ${range}: outside the blob's ${size} bytes.`,
        {},
        { 'content-range': `bytes */${size}` },
      );
    }
    status = 206;
  }
  const headers: Record<string, string | number> = {
    'content-type': 'application/octet-stream',
    'content-length': size === 0 ? 0 : end - start + 1,
    'accept-ranges': 'bytes',
    etag: `"${sha}"`,
    // Content-addressed: the bytes behind a hash never change.
    'cache-control': 'public, max-age=31536000, immutable',
    'x-content-type-options': 'nosniff',
  };
  if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  await new Promise<void>((resolve) => {
    const file = createReadStream(ctx.blobs.path(sha), { start, end });
    file.on('error', () => {
      res.destroy();
      resolve();
    });
    res.on('close', () => {
      file.destroy();
      resolve();
    });
    file.pipe(res);
  });
}

/** Every blob a manifest names that a volunteer will need to fetch. */
export function manifestBlobs(m: Manifest): string[] {
  const out: string[] = [];
  // Honeypot answers are only compared as bytes for tolerance jobs; exact ones compare hashes.
  const expected = (e: readonly { sha256: string }[]) => {
    if (m.tolerance !== 'exact') for (const x of e) out.push(x.sha256);
  };
  if (m.kind === 'onnx') {
    out.push(m.model);
    for (const t of Object.values(m.inputs)) out.push(t.sha256);
    for (const h of m.honeypots ?? []) {
      for (const t of Object.values(h.inputs)) out.push(t.sha256);
      expected(h.expected);
    }
  } else {
    for (const s of [...m.shards, ...(m.honeypots ?? [])]) {
      for (const b of s.bindings) {
        if (b.role === 'input') out.push(b.tensor.sha256);
        else if (b.role === 'uniform') out.push(b.sha256);
      }
    }
    for (const h of m.honeypots ?? []) expected(h.expected);
  }
  return [...new Set(out)];
}

async function submitJob(ctx: Ctx, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(ctx, req);
  let manifest: Manifest;
  try {
    manifest = parseManifest(body);
  } catch (e) {
    if (isHearthError(e)) throw fromHearth(e);
    throw e;
  }
  const missing = manifestBlobs(manifest).filter((h) => !ctx.blobs.has(h));
  if (missing.length > 0) {
    throw new HttpError(
      400,
      'blob/missing',
      `blob ${missing[0]} is not uploaded${missing.length > 1 ? ` (nor ${missing.length - 1} more)` : ''}; PUT /v1/blobs/<sha256> first.`,
      { missing: missing.slice(0, 32) },
    );
  }
  const job = ctx.scheduler.submit(manifest, Date.now());
  send(req, res, 201, { job });
}

function resultsIndex(ctx: Ctx, id: string) {
  const job = ctx.store.getJob(id)!;
  return {
    job: id,
    status: job.status,
    shards: ctx.scheduler.results(id).map((r) => ({
      shard: r.shard,
      index: r.index,
      outputs: r.outputs.map((o) => ({
        name: o.name,
        dtype: o.dtype,
        shape: o.shape,
        sha256: o.sha256,
        bytes: o.data.byteLength,
      })),
    })),
  };
}

function sendOutput(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  shard: string,
  output: string,
): void {
  const byIndex = /^\d{1,9}$/.test(shard);
  const r = ctx.scheduler.results(id).find((x) => (byIndex ? x.index === Number(shard) : x.shard === shard));
  if (!r) throw notFound(`a validated result for shard ${shard} of job ${id}`);
  const o = r.outputs.find((x) => x.name === output);
  if (!o) throw notFound(`output "${output}" of shard ${r.shard}`);
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': o.data.byteLength,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    etag: `"${o.sha256}"`,
    'x-hearth-dtype': o.dtype,
    'x-hearth-shape': o.shape.join(','),
    'x-hearth-sha256': o.sha256,
  });
  res.end(req.method === 'HEAD' ? undefined : Buffer.from(o.data));
}
