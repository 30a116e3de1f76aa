// The hub's HTTP plumbing shared by its route files (hub-server.ts, allreduce-routes.ts): the one
// error type routes throw, JSON answers, and bounded request bodies. One place, so every route
// answers errors the same way and no route reads an unbounded body.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ErrorDetails, HearthError, type HearthErrorCode } from '../core/errors.ts';
import { isTooLarge } from '../hub/blobs.ts';

export const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The HTTP status each error code stands for: the one table from code to status. A code not
 * listed is the client's to fix (400); a route that means another status for the same code says
 * so in the error (`httpError(code, message, { status })`, or `details.status` from a lower layer
 * such as hub/rounds.ts).
 */
export const STATUS_OF_CODE: Readonly<Partial<Record<HearthErrorCode, number>>> = {
  'http/moved': 301,
  'http/bad-request': 400,
  'http/unauthorized': 401,
  'http/forbidden': 403,
  'http/origin': 403,
  'p2p/peer-id': 403,
  'http/not-found': 404,
  'pages/missing': 404,
  'blob/missing': 404,
  'job/unknown': 404,
  'shard/unknown': 404,
  'http/method': 405,
  'http/conflict': 409,
  'lease/unknown': 409,
  'job/closed': 409,
  'result/duplicate': 409,
  'http/too-large': 413,
  'http/range': 416,
  'http/too-many-connections': 429,
  'http/internal': 500,
  'store/failed': 503,
  'store/unavailable': 503,
  'store/conflict': 503,
  'http/closing': 503,
  'gpu/unavailable': 503,
  'wallet/disabled': 404,
  'wallet/siwe': 400,
  'wallet/bound': 409,
  'voucher/nothing-to-claim': 409,
  'voucher/expired': 409,
  'voucher/refused': 400,
  'chain/unreachable': 502,
  'chain/mismatch': 502,
  'chain/reverted': 502,
  'chain/insufficient-funds': 503,
  'budget/exceeded': 402,
};

/**
 * Refuses an HTTP request: a HearthError like any other, whose status is its code's
 * (STATUS_OF_CODE) unless `status` says otherwise; `headers` go on the response (Allow,
 * WWW-Authenticate, Content-Range), never into the body.
 *
 * @example
 * throw httpError('http/method', 'PUT is not allowed here; use GET.', { headers: { allow: 'GET' } });
 */
export function httpError(
  code: HearthErrorCode,
  message: string,
  opts: { status?: number; details?: ErrorDetails; headers?: Readonly<Record<string, string>> } = {},
): HearthError {
  return new HearthError(code, message, {
    details: {
      ...opts.details,
      ...(opts.status === undefined ? {} : { status: opts.status }),
      ...(opts.headers === undefined ? {} : { headers: opts.headers }),
    },
  });
}

export const notFound = (what: string) => httpError('http/not-found', `${what} does not exist.`);

/** How a HearthError is answered: its status, response headers, and the `{ error }` body's fields. */
export interface ErrorResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly code: string;
  readonly message: string;
  readonly details: ErrorDetails;
}

/**
 * A HearthError as an HTTP answer: 413 `http/too-large` when it is about size; else the status in
 * `details.status` (chosen by the route or a lower layer), the code's (STATUS_OF_CODE), or 400.
 */
export function responseOf(e: HearthError): ErrorResponse {
  const { status: chosen, headers, ...details } = e.details;
  const own = typeof headers === 'object' && headers !== null ? (headers as Record<string, string>) : {};
  if (isTooLarge(e))
    return { status: 413, headers: own, code: 'http/too-large', message: e.message, details };
  const status =
    typeof chosen === 'number' && Number.isInteger(chosen) && chosen >= 300 && chosen <= 599
      ? chosen
      : (STATUS_OF_CODE[e.code] ?? 400);
  return { status, headers: own, code: e.code, message: e.message, details };
}

/** A JSON answer (no body for HEAD). */
export function send(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/** 413 at once when the declared Content-Length is over `limit`, before any byte is read. */
export function declaredLength(req: IncomingMessage, limit: number, what: string): void {
  const cl = req.headers['content-length'];
  if (cl !== undefined && Number(cl) > limit) {
    throw httpError('http/too-large', `${what} is ${cl} bytes, over the limit of ${limit}.`, {
      details: {
        limit,
      },
    });
  }
}

/** Reads a body of at most `limit` bytes, stopping (413) as soon as it is over. */
export async function readBody(req: IncomingMessage, limit: number, what = 'the body'): Promise<Buffer> {
  declaredLength(req, limit, what);
  return await new Promise<Buffer>((resolve, reject) => {
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
        done(
          httpError('http/too-large', `${what} is over the limit of ${limit} bytes.`, { details: { limit } }),
        );
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => done();
    const onError = () => done(httpError('input/invalid', `${what} was cut off.`));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** How long an unread request body is read and dropped after an error was answered (see below). */
export const LINGER_MS = 2000;
/** After that, the hub half-closes and waits this long before it drops the connection. */
const CLOSE_GRACE_MS = 1000;

/**
 * After an error answered before the request's body was read (a 401 or 413 on an upload): the
 * rest of the body is read and dropped for up to LINGER_MS, so the connection survives for the
 * next request. Closing at once is what loses the answer: a socket closed with unread bytes
 * makes the kernel send a reset, and a client still writing sees EPIPE or ECONNRESET and never
 * reads the error it was sent. A client that keeps sending past LINGER_MS gets a half-close
 * (end of answers), then the connection is dropped CLOSE_GRACE_MS later.
 */
export function lingerAfterAnswer(res: ServerResponse): void {
  const req = res.req;
  if (req.complete || req.readableEnded) return;
  const socket = req.socket;
  // A route that stopped reading at its limit paused the body: it flows again, into nothing.
  req.removeAllListeners('data');
  req.resume();
  const timer = setTimeout(() => {
    if (req.complete || socket.destroyed) return;
    socket.end();
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  }, LINGER_MS);
  timer.unref();
  const done = () => clearTimeout(timer);
  req.once('end', done);
  socket.once('close', done);
}
