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
import { auditRound, type RoundAudit } from '../hub/allreduce-audit.ts';
import type { HubRounds } from '../hub/rounds.ts';
import type { ReportRepository } from '../hub/store.ts';
import { bearer } from '../hub/tokens.ts';
import { parseRoundId, toBase64Url } from '../protocol/control.ts';
import { httpError, readBody, send } from './http.ts';
import type { Route } from './routes.ts';

/**
 * Serves `/v1/allreduce/:round/contributions` and `/v1/allreduce/:round/mean` (ticket routes:
 * call before the token check). Failures are thrown, as HearthErrors (http.ts httpError, or hub/rounds.ts's
 * HearthErrors carrying their HTTP status, for the hub's one error answer.
 */
export async function serveRoundTicketRoute(
  rounds: HubRounds | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  roundParam: string,
  action: string,
): Promise<void> {
  if (!rounds) throw httpError('http/not-found', 'this hub does not average rounds (it runs without peers).');
  const method = req.method ?? 'GET';
  const want = action === 'contributions' ? 'PUT' : action === 'mean' ? 'GET' : undefined;
  if (!want) throw httpError('http/not-found', `no route /v1/allreduce/:round/${action.slice(0, 40)}.`);
  if (method !== want && !(want === 'GET' && method === 'HEAD')) {
    throw httpError('http/method', `${method} is not allowed here; use ${want}.`, {
      headers: { allow: want },
    });
  }
  const round = parseRoundId(roundParam, 'round');
  const ticket = bearer(req.headers.authorization);
  if (ticket === undefined || !/^[0-9a-f]{64}$/.test(ticket)) {
    throw httpError(
      'http/unauthorized',
      'this route needs "Authorization: Bearer <ticket>" from an allreduce-ticket message.',
      {
        details: { path: 'authorization' },
        headers: { 'www-authenticate': 'Bearer realm="hearth-allreduce"' },
      },
    );
  }
  if (want === 'PUT') {
    const limit = rounds.expectedBytes(round);
    // An unknown round or ticket is refused before its body is read.
    void rounds.mean(round, ticket);
    const body = await readBody(req, limit, "the round's tensor");
    await rounds.upload(round, ticket, new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
    return send(req, res, 201, { round, bytes: body.byteLength });
  }
  // A client that gives up stops nothing: the round goes on for the others.
  const m = await rounds.mean(round, ticket);
  send(req, res, 200, {
    round: m.round,
    group: m.group,
    contributors: m.contributors,
    contributions: m.contributions,
    sha256: m.sha256,
    elements: m.mean.length,
    data: toBase64Url(new Uint8Array(m.mean.buffer, m.mean.byteOffset, m.mean.byteLength)),
  });
}

/** `GET /v1/allreduce/:round` (behind the token check): the round's reports and verdicts. */
export function roundAuditOf(store: ReportRepository, roundParam: string): RoundAudit {
  const round = parseRoundId(roundParam, 'round');
  return auditRound(round, store.allReduceReports(round));
}

/** All-reduce routes: a round's audit (a token), its uploads and mean (the round's ticket). */
export const ALLREDUCE_ROUTES: readonly Route[] = [
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/allreduce/:round',
    auth: 'token',
    handle: ({ ctx, req, res, params }) => send(req, res, 200, roundAuditOf(ctx.store, params.round ?? '')),
  },
  {
    methods: 'any',
    path: '/v1/allreduce/:round/:action',
    auth: 'ticket',
    handle: ({ ctx, req, res, params }) =>
      serveRoundTicketRoute(ctx.rounds, req, res, params.round ?? '', params.action ?? ''),
  },
];
