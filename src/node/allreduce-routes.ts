// The hub's all-reduce routes (issue 5), kept apart from hub-server.ts's job and blob routes:
// - `PUT /v1/allreduce/:round/contributions` (ticket): a member's tensor for averaging through
//   the hub, raw little-endian f32 bytes, exactly the declared length and SHA-256 → 201
// - `GET /v1/allreduce/:round/mean` (ticket): waits for the round's mean (until every member
//   uploaded, or the round's deadline), then → `{ round, group, contributors, contributions,
//   sha256, elements, data }` with `data` the mean's f32 bytes as base64url
// - `GET /v1/allreduce/:round` (researcher or admin token): the round's reports and the hub's
//   verdict on each contribution (hub/allreduce-audit.ts RoundAudit)
// A ticket comes from the control plane (`allreduce-fallback`) and names one member of one round;
// it goes in `Authorization: Bearer <ticket>`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HearthError, isHearthError } from '../core/errors.ts';
import { auditRound, type RoundAudit } from '../hub/allreduce-audit.ts';
import type { HubRounds } from '../hub/rounds.ts';
import type { HubStore } from '../hub/store.ts';
import { bearer } from '../hub/tokens.ts';
import { parseRoundId, toBase64Url } from '../protocol/control.ts';

const JSON_TYPE = 'application/json; charset=utf-8';

function answer(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...(status >= 400 && !req.complete ? { connection: 'close' } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/** Unread request bodies up to this size are read and dropped before an error is answered. */
const DRAIN_BYTES = 64 * 1024;

const HTTP_CODES: Readonly<Record<number, string>> = {
  401: 'http/unauthorized',
  404: 'http/not-found',
  405: 'http/method',
  413: 'http/too-large',
};

async function refuse(req: IncomingMessage, res: ServerResponse, e: HearthError): Promise<void> {
  const status =
    typeof e.details.status === 'number' ? e.details.status : e.code === 'input/invalid' ? 400 : 503;
  const { status: _s, ...details } = e.details;
  if (res.headersSent) return void res.destroy();
  // A small body the client is still sending is read first: closing on it would reset the
  // connection before the client reads the error. A large one is not worth reading.
  const declared = Number(req.headers['content-length'] ?? 0);
  if (!req.complete && !req.readableEnded && declared <= DRAIN_BYTES && req.listenerCount('data') === 0) {
    await new Promise<void>((resolve) => {
      let seen = 0;
      const stop = () => {
        req.off('data', onData);
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
    });
  }
  answer(req, res, status, {
    error: {
      code: HTTP_CODES[status] ?? e.code,
      message: e.message,
      ...(Object.keys(details).length > 0 ? { details } : {}),
    },
  });
}

const invalid = (status: number, message: string, details: Record<string, unknown> = {}) =>
  new HearthError('input/invalid', message, { details: { status, ...details } });

/** Reads a body of exactly `limit` bytes at most, stopping as soon as it is over. */
function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(
      invalid(413, `the body is ${declared} bytes, over the ${limit} this round's tensor has.`, {
        reason: 'too-large',
      }),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (e?: HearthError) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      if (e) {
        req.pause();
        reject(e);
      } else resolve(new Uint8Array(Buffer.concat(chunks, size)));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit)
        return done(invalid(413, `the body is over the ${limit} bytes this round's tensor has.`));
      chunks.push(c);
    };
    const onEnd = () => done();
    const onError = () => done(invalid(400, 'the body was cut off.'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/**
 * Serves `/v1/allreduce/:round/contributions` and `/v1/allreduce/:round/mean` (ticket routes:
 * call before the token check). Never throws: every failure is answered here.
 */
export async function serveRoundTicketRoute(
  rounds: HubRounds | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  roundParam: string,
  action: string,
): Promise<void> {
  try {
    if (!rounds) throw invalid(404, 'this hub does not average rounds (it runs without peers).');
    const method = req.method ?? 'GET';
    const want = action === 'contributions' ? 'PUT' : action === 'mean' ? 'GET' : undefined;
    if (!want) throw invalid(404, `no route /v1/allreduce/:round/${action.slice(0, 40)}.`);
    if (method !== want && !(want === 'GET' && method === 'HEAD')) {
      res.setHeader('allow', want);
      throw invalid(405, `${method} is not allowed here; use ${want}.`);
    }
    const round = parseRoundId(roundParam, 'round');
    const ticket = bearer(req.headers.authorization);
    if (ticket === undefined || !/^[0-9a-f]{64}$/.test(ticket)) {
      res.setHeader('www-authenticate', 'Bearer realm="hearth-allreduce"');
      throw invalid(
        401,
        'this route needs "Authorization: Bearer <ticket>" from an allreduce-ticket message.',
        {
          path: 'authorization',
        },
      );
    }
    if (want === 'PUT') {
      const limit = rounds.expectedBytes(round);
      // An unknown round or ticket is refused before its body is read.
      rounds.mean(round, ticket);
      const body = await readBody(req, limit);
      await rounds.upload(round, ticket, body);
      return answer(req, res, 201, { round, bytes: body.byteLength });
    }
    const waiting = rounds.mean(round, ticket);
    // A client that gives up stops nothing: the round goes on for the others.
    const m = await waiting;
    return answer(req, res, 200, {
      round: m.round,
      group: m.group,
      contributors: m.contributors,
      contributions: m.contributions,
      sha256: m.sha256,
      elements: m.mean.length,
      data: toBase64Url(new Uint8Array(m.mean.buffer, m.mean.byteOffset, m.mean.byteLength)),
    });
  } catch (e) {
    if (isHearthError(e)) return await refuse(req, res, e);
    if (!res.headersSent)
      answer(req, res, 500, { error: { code: 'http/internal', message: 'the hub failed on this request.' } });
  }
}

/** `GET /v1/allreduce/:round` (behind the token check): the round's reports and verdicts. */
export function roundAuditOf(store: HubStore, roundParam: string): RoundAudit {
  const round = parseRoundId(roundParam, 'round');
  return auditRound(round, store.allReduceReports(round));
}
