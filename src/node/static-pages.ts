// The hub serves its own pages (the vite build in dist/: volunteer page, researcher console,
// widget) from the same origin as its API, so a volunteer needs nothing but the hub's address.
//
// Paths come from strangers: every request path is decoded segment by segment, and `..`, `.`,
// encoded slashes, backslashes, NUL and hidden names are refused before the file system is
// asked; the file's real path (symlinks resolved) must still lie inside the folder. Files are
// streamed, never read whole.
import { createReadStream, type Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isHearthError } from '../core/errors.ts';
import { httpError, responseOf } from './http.ts';

/** `<repo root>/dist`, where `npm run build` puts the pages. */
export const DEFAULT_PAGES_DIR = fileURLToPath(new URL('../../dist', import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.wgsl': 'text/plain; charset=utf-8',
  '.onnx': 'application/octet-stream',
};

// onnxruntime-web's threaded wasm needs SharedArrayBuffer, which needs a cross-origin isolated
// page (COOP + COEP); CORP keeps other sites from embedding these files as no-cors resources.
const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
} as const;

/** Serves the files of one folder: `(req, res) => Promise<void>`, never rejecting. */
export type PagesHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export interface StaticPagesOptions {
  /**
   * Headers for one file, by its path inside the folder as `/`-joined safe segments (`widget/
   * frame.html`, `volunteer/index.html` for `/volunteer/`): they are added to the isolation
   * headers above and win over them (the widget's script is public, its frame framable by the
   * hub's allowed origins). Asked only for a file that exists inside the folder, after every path
   * check.
   */
  readonly headers?: (file: string) => Readonly<Record<string, string>> | undefined;
}

/**
 * A handler that serves `dir` (read at each request, so a build made while the hub runs is
 * picked up): `index.html` for a folder, content types by extension, the isolation headers
 * above, `ETag`/`If-None-Match` and `Last-Modified`/`If-Modified-Since` (304), `HEAD`. Errors
 * are JSON `{ error: { code, message } }`: 400 for a refused path, 404 for a missing file or
 * folder (`pages/missing` when `dir` itself is absent: run `npm run build`), 405 for methods
 * other than GET and HEAD.
 *
 * @example
 * const pages = staticPages('/srv/hearth/dist');
 * http.createServer((req, res) => void pages(req, res));
 */
export function staticPages(dir: string, opts: StaticPagesOptions = {}): PagesHandler {
  return async (req, res) => {
    try {
      await serve(dir, req, res, opts.headers);
    } catch (e) {
      const err = responseOf(
        isHearthError(e)
          ? e
          : httpError('http/internal', 'the hub failed to read this page; it keeps serving others.'),
      );
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = JSON.stringify({ error: { code: err.code, message: err.message } });
      res.writeHead(err.status, {
        ...err.headers,
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    }
  };
}

/** `s` up to the first `sep`, or all of it when there is none. */
function before(s: string, sep: string): string {
  const i = s.indexOf(sep);
  return i < 0 ? s : s.slice(0, i);
}

/** A request URL's path: everything before its query (`/a/b?x=1` → `/a/b`). */
export function urlPath(url: string): string {
  return before(url, '?');
}

/**
 * The request path as safe segments below the pages folder. Refuses (400) what could climb out
 * or confuse the file system; hidden names (`.git`, `.env`) read as missing (404).
 */
export function pageSegments(url: string): string[] {
  const path = before(urlPath(url), '#');
  if (!path.startsWith('/') || path.length > 2048) {
    throw httpError('input/invalid', 'path: expected an absolute path of at most 2048 characters.');
  }
  const out: string[] = [];
  for (const part of path.split('/').slice(1)) {
    let s: string;
    try {
      s = decodeURIComponent(part);
    } catch {
      throw httpError('input/invalid', 'path: bad percent-encoding.');
    }
    if (s === '') continue;
    if (s === '.' || s === '..' || s.includes('/') || s.includes('\\') || s.includes('\0')) {
      throw httpError(
        'input/invalid',
        'path: "." and ".." segments, encoded slashes, backslashes and NUL are not allowed.',
      );
    }
    if (s.startsWith('.')) throw notFound(path);
    out.push(s);
  }
  return out;
}

const notFound = (path: string) => httpError('http/not-found', `page ${path.slice(0, 200)} does not exist.`);

async function serve(
  dir: string,
  req: IncomingMessage,
  res: ServerResponse,
  headersOf: StaticPagesOptions['headers'],
): Promise<void> {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') {
    throw httpError('http/method', `${method} is not allowed on pages; use GET or HEAD.`, {
      headers: { allow: 'GET, HEAD' },
    });
  }
  const url = req.url ?? '/';
  const segs = pageSegments(url);
  let root: string;
  try {
    root = await realpath(dir);
  } catch {
    throw httpError(
      'pages/missing',
      `this hub has no pages to serve: ${dir} does not exist. Run \`npm run build\` (or start the hub with --pages DIR).`,
    );
  }
  let file = join(root, ...segs);
  let st = await statOrNull(file);
  const rel = [...segs];
  if (st?.isDirectory()) {
    const path = urlPath(url);
    // Relative links in the folder's index.html resolve against the URL: it must end with '/'.
    if (!path.endsWith('/')) {
      const q = url.indexOf('?');
      throw httpError('http/moved', `${path} is a folder: see ${path}/.`, {
        headers: { location: `${path}/${q >= 0 ? url.slice(q) : ''}` },
      });
    }
    file = join(file, 'index.html');
    rel.push('index.html');
    st = await statOrNull(file);
  }
  if (!st?.isFile()) throw notFound(urlPath(url));
  // A symlink inside the folder may point anywhere: only its target's real path counts.
  const real = await realpath(file).catch(() => undefined);
  if (real === undefined || !real.startsWith(root + sep)) throw notFound(urlPath(url));

  const etag = `W/"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
  const lastModified = new Date(Math.floor(st.mtimeMs / 1000) * 1000).toUTCString();
  const headers: Record<string, string | number> = {
    ...ISOLATION,
    'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
    etag,
    'last-modified': lastModified,
    // Always revalidate: vite's hashed assets change names, but index.html and the rest do not.
    'cache-control': 'no-cache',
    ...headersOf?.(rel.join('/')),
  };
  if (notModified(req, etag, st)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  headers['content-length'] = st.size;
  if (method === 'HEAD' || st.size === 0) {
    res.writeHead(200, headers);
    res.end();
    return;
  }
  await new Promise<void>((resolve) => {
    const stream = createReadStream(real);
    stream.once('open', () => {
      res.writeHead(200, headers);
      stream.pipe(res);
    });
    stream.once('error', () => {
      // Before the first byte the client can still get an answer (never the file system's
      // message: it names server paths); after it, only a cut.
      if (!res.headersSent) {
        res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', ...ISOLATION });
        res.end(
          JSON.stringify({
            error: { code: 'http/not-found', message: 'the page vanished while being read.' },
          }),
        );
      } else res.destroy();
      resolve();
    });
    res.once('close', () => {
      stream.destroy();
      resolve();
    });
  });
}

async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch {
    return null;
  }
}

/** RFC 9110: If-None-Match wins over If-Modified-Since. */
function notModified(req: IncomingMessage, etag: string, st: Stats): boolean {
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) {
    const weak = (t: string) => t.trim().replace(/^W\//, '');
    return inm.trim() === '*' || inm.split(',').some((t) => weak(t) === weak(etag));
  }
  const ims = req.headers['if-modified-since'];
  if (ims === undefined) return false;
  const since = Date.parse(ims);
  return !Number.isNaN(since) && Math.floor(st.mtimeMs / 1000) * 1000 <= since;
}
