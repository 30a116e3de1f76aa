// The hub's HTTP API as data: each route is a row — method(s), path pattern, who may call it,
// handler — in the file of its concern (hub-blobs.ts, hub-jobs.ts, hub-tokens.ts,
// allreduce-routes.ts), and `dispatch` is the one router. A new route is a new row; the auth a
// route needs is read off the table, never re-implemented in a handler.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authenticate, bearer, type Principal } from '../hub/tokens.ts';
import { httpError, notFound } from './http.ts';
import type { Ctx } from './hub-context.ts';

/**
 * Who may call a route: anyone (`public`), a researcher's or the admin's token (`token`), the
 * admin's token only (`admin`), or a bearer the handler checks itself (`ticket`: an all-reduce
 * round's one-time ticket).
 */
export type RouteAuth = 'public' | 'token' | 'admin' | 'ticket';

export interface RouteCall {
  readonly ctx: Ctx;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The path's `:name` segments, decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** The caller, on `token` and `admin` routes. */
  readonly who: Principal | undefined;
}

export interface Route {
  /** The methods it answers ('any': the handler checks the method itself). */
  readonly methods: readonly string[] | 'any';
  /** e.g. '/v1/jobs/:id/results/:shard/:output' */
  readonly path: string;
  readonly auth: RouteAuth;
  readonly handle: (call: RouteCall) => void | Promise<void>;
}

/** The path's segments, decoded; a path that is too long or badly encoded is a 400. */
export function segments(url: string): string[] {
  const path = url.split('?')[0] ?? '';
  if (path.length > 2048 || !path.startsWith('/')) {
    throw httpError('input/invalid', 'path: expected an absolute path of at most 2048 characters.');
  }
  const parts = path.split('/').slice(1);
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  try {
    return parts.map((p) => decodeURIComponent(p));
  } catch {
    throw httpError('input/invalid', 'path: bad percent-encoding.');
  }
}

/** A URL's path for an error message, cut at 100 characters. */
export function pathOf(url: string | undefined): string {
  const p = (url ?? '/').split('?')[0] ?? '/';
  return p.length > 100 ? `${p.slice(0, 100)}…` : p;
}

/** `route.path` against the segments: its params, or undefined when it does not match. */
function match(pattern: string, seg: readonly string[]): Record<string, string> | undefined {
  const want = pattern.split('/').slice(1);
  if (want.length !== seg.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, w] of want.entries()) {
    const s = seg[i] ?? '';
    if (w.startsWith(':')) params[w.slice(1)] = s;
    else if (w !== s) return undefined;
  }
  return params;
}

function principal(ctx: Ctx, req: IncomingMessage): Principal {
  const header = req.headers.authorization;
  const secret = bearer(header);
  const who = secret === undefined ? undefined : authenticate(ctx.store, secret, ctx.adminToken);
  if (!who) {
    throw httpError(
      'http/unauthorized',
      header === undefined
        ? 'this route needs "Authorization: Bearer <token>"; ask the hub operator for a token (hearth token create).'
        : 'the bearer token is unknown or revoked.',
      { headers: { 'www-authenticate': 'Bearer realm="hearth"' } },
    );
  }
  return who;
}

/**
 * Answers a request from `routes`: 404 when no row's path matches, 401 when the row needs a
 * token it lacks (checked before the method, so a stranger learns nothing of a route), 405 with
 * `Allow` when no row of that path takes the method, 403 for a researcher on an admin row.
 */
export async function dispatch(
  routes: readonly Route[],
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const method = req.method ?? 'GET';
  const seg = segments(req.url ?? '/');
  const matched = routes.flatMap((route) => {
    const params = match(route.path, seg);
    return params ? [{ route, params }] : [];
  });
  if (matched.length === 0) throw notFound(`route ${method} ${pathOf(req.url)}`);
  const hit = matched.find((m) => m.route.methods === 'any' || m.route.methods.includes(method));
  // Tokens first where every row of the path needs one.
  const guarded = (hit ? [hit] : matched).every((m) => m.route.auth === 'token' || m.route.auth === 'admin');
  const who = guarded ? principal(ctx, req) : undefined;
  if (hit?.route.auth === 'admin' || (!hit && matched.every((m) => m.route.auth === 'admin'))) {
    if (who?.kind !== 'admin')
      throw httpError('http/forbidden', 'managing tokens needs the hub\u2019s admin token.');
  }
  if (!hit) {
    const methods = [...new Set(matched.flatMap((m) => (m.route.methods === 'any' ? [] : m.route.methods)))];
    throw httpError('http/method', `${method} is not allowed here; use ${methods.join(' or ')}.`, {
      headers: { allow: methods.join(', ') },
    });
  }
  await hit.route.handle({ ctx, req, res, params: hit.params, who });
}
