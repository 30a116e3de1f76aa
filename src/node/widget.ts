// The hub's side of `<hearth-widget>` (src/ui/widget/): what makes its files work on other sites.
//
// - `/widget/hearth-widget.js`, the element, is public code any page may load as a module script:
//   `Access-Control-Allow-Origin: *` (a module script is fetched in CORS mode) and
//   `Cross-Origin-Resource-Policy: cross-origin` (so a cross-origin isolated host may load it).
// - `/widget/frame.html`, the consent card and meter, renders only inside the hub's own pages and
//   the sites its operator allows (`startHub({ allowedOrigins })`, `hearth hub --origin`):
//   `Content-Security-Policy: frame-ancestors 'self' <origins>`. Every other page of the hub
//   (the volunteer page above all: its yes must not be clickjacked) says `frame-ancestors 'self'`.
// - `GET /widget/allowed` tells the element whether the page it runs on (the request's `Origin`)
//   may show the frame, `{ allowed, origin }`, readable by any page: so the element can say what
//   to do instead of showing the browser's blank refusal.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { JSON_TYPE } from './http.ts';

/** Where the element asks whether its page may embed the frame. */
export const WIDGET_ALLOWED_PATH = '/widget/allowed';
/** The element's script, inside the pages folder. */
export const WIDGET_SCRIPT = 'widget/hearth-widget.js';
/** The frame's page, inside the pages folder. */
export const WIDGET_FRAME = 'widget/frame.html';

/**
 * The headers of the widget's files and of the hub's other pages (static-pages.ts `headers`),
 * for a hub whose frame may be embedded by `origins` (besides its own pages: `'self'`).
 *
 * @example
 * staticPages(dir, { headers: widgetHeaders(['https://news.example']) });
 */
export function widgetHeaders(
  origins: Iterable<string>,
): (file: string) => Readonly<Record<string, string>> | undefined {
  const ancestors = ["'self'", ...origins].join(' ');
  return (file) => {
    if (file === WIDGET_SCRIPT) {
      return {
        'access-control-allow-origin': '*',
        'cross-origin-resource-policy': 'cross-origin',
      };
    }
    if (file === WIDGET_FRAME) {
      return {
        'content-security-policy': `frame-ancestors ${ancestors}`,
        // A cross-origin isolated host (COEP require-corp) may embed it too.
        'cross-origin-resource-policy': 'cross-origin',
      };
    }
    if (file.endsWith('.html')) return { 'content-security-policy': "frame-ancestors 'self'" };
    return undefined;
  };
}

/**
 * Answers `GET /widget/allowed`: `{ allowed, origin }` for the request's `Origin` (a request
 * without one is the hub's own page or no browser at all: allowed, `origin: null`). Public and
 * readable from any page; never cached, since the operator's list changes with a restart.
 */
export function answerWidgetAllowed(
  req: IncomingMessage,
  res: ServerResponse,
  isAllowed: (origin: string) => boolean,
): void {
  const headers = {
    'access-control-allow-origin': '*',
    'cross-origin-resource-policy': 'cross-origin',
    'cache-control': 'no-store',
    vary: 'Origin',
    'x-content-type-options': 'nosniff',
  };
  const method = req.method ?? 'GET';
  if (method === 'OPTIONS') {
    res.writeHead(204, { ...headers, 'access-control-allow-methods': 'GET, HEAD, OPTIONS' });
    res.end();
    return;
  }
  const origin = req.headers.origin;
  const body =
    method === 'GET' || method === 'HEAD'
      ? JSON.stringify({ allowed: origin === undefined || isAllowed(origin), origin: origin ?? null })
      : JSON.stringify({
          error: { code: 'http/method', message: `${method} is not allowed here; use GET.` },
        });
  res.writeHead(method === 'GET' || method === 'HEAD' ? 200 : 405, {
    ...headers,
    ...(method === 'GET' || method === 'HEAD' ? {} : { allow: 'GET, HEAD, OPTIONS' }),
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(body),
  });
  res.end(method === 'HEAD' ? undefined : body);
}

/** Where the widget's frame reads the terms it shows before the yes (same origin as the frame). */
export const WIDGET_TERMS_PATH = '/widget/terms';

/**
 * The terms a volunteer reads on the widget's consent card: the embedding site's share of credit
 * earned through it (basis points) and whether credit becomes tokens. Public and tiny, like the
 * frame itself; not under /v1/ so that the card asks nothing of the API before the yes.
 */
export function answerWidgetTerms(
  req: IncomingMessage,
  res: ServerResponse,
  terms: { readonly embedShareBps: number; readonly paysTokens: boolean },
): void {
  const ok = req.method === 'GET' || req.method === 'HEAD';
  const body = ok
    ? JSON.stringify(terms)
    : JSON.stringify({
        error: { code: 'http/method', message: `${req.method} is not allowed here; use GET.` },
      });
  res.writeHead(ok ? 200 : 405, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...(ok ? {} : { allow: 'GET, HEAD' }),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
