// The hub's HTTP plumbing shared by its route files (hub-server.ts, allreduce-routes.ts): the one
// error type routes throw, JSON answers, and bounded request bodies. One place, so every route
// answers errors the same way and no route reads an unbounded body.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HearthError, HearthErrorCode } from '../core/errors.ts';
import { isTooLarge } from '../hub/blobs.ts';

export const JSON_TYPE = 'application/json; charset=utf-8';

/** An HTTP failure with its status; `code` goes to the client as `error.code`. */
export class HttpError extends Error {
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

export const notFound = (what: string) => new HttpError(404, 'http/not-found', `${what} does not exist.`);

/** The HTTP status of the error codes whose meaning fixes it (the rest take the caller's). */
export const STATUS_OF_CODE: Readonly<Partial<Record<HearthErrorCode, number>>> = {
  'job/unknown': 404,
  'shard/unknown': 404,
  'lease/unknown': 409,
  'job/closed': 409,
  'result/duplicate': 409,
  'store/failed': 503,
  'protocol/version': 400,
};

/**
 * A HearthError as an HttpError: 413 when it is about size; the status a lower layer put in
 * `details.status` (an HTTP status it chose, e.g. hub/rounds.ts's 409 for a second upload); the
 * code's own status (STATUS_OF_CODE); otherwise `status` (default 400, bad input).
 */
export function fromHearth(e: HearthError, status = 400): HttpError {
  if (isTooLarge(e)) return new HttpError(413, 'http/too-large', e.message, e.details);
  const { status: chosen, ...details } = e.details;
  if (typeof chosen === 'number' && Number.isInteger(chosen) && chosen >= 400 && chosen <= 599) {
    return new HttpError(chosen, e.code, e.message, details);
  }
  return new HttpError(STATUS_OF_CODE[e.code] ?? status, e.code, e.message, e.details);
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
    throw new HttpError(413, 'http/too-large', `${what} is ${cl} bytes, over the limit of ${limit}.`, {
      limit,
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
        done(new HttpError(413, 'http/too-large', `${what} is over the limit of ${limit} bytes.`, { limit }));
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => done();
    const onError = () => done(new HttpError(400, 'input/invalid', `${what} was cut off.`));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** Unread request bodies up to this size are read and dropped before an error is answered. */
const DRAIN_BYTES = 64 * 1024;
/** …for at most this long. */
const DRAIN_WAIT_MS = 500;

/**
 * Before answering an error: a small body the client is still sending is read and dropped, since
 * closing on it would reset the connection before the client reads the error. A large one is not
 * worth reading (the answer then closes the connection).
 */
export async function drainSmallBody(req: IncomingMessage): Promise<void> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (req.complete || req.readableEnded || declared > DRAIN_BYTES || req.listenerCount('data') > 0) return;
  await new Promise<void>((resolve) => {
    let seen = 0;
    // A client that trickles its body gets its error after a short wait, not never.
    const timer = setTimeout(() => stop(), DRAIN_WAIT_MS);
    const stop = () => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', stop);
      req.off('error', stop);
      req.off('close', stop);
      resolve();
    };
    const onData = (c: Buffer) => {
      seen += c.length;
      if (seen > DRAIN_BYTES) stop();
    };
    req.on('data', onData);
    req.once('end', stop);
    req.once('error', stop);
    req.once('close', stop);
    // A body a route paused (it stopped reading at its limit) flows again, into nothing.
    req.resume();
  });
}
