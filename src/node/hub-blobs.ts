import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isSha256Hex } from '../core/hash.ts';
import type { BlobDir } from '../hub/blobs.ts';
import { PieceHashCache } from '../hub/piece-hashes.ts';
import { BLOB_PIECES_VERSION } from '../protocol/blob-pieces.ts';
import { declaredLength, httpError, send } from './http.ts';
import type { Ctx } from './hub-context.ts';
import type { Route } from './routes.ts';

export function blobHash(sha: string): string {
  if (!isSha256Hex(sha)) {
    throw httpError('input/invalid', 'sha256: expected 64 lowercase hex digits in the path.', {
      details: {
        path: 'sha256',
      },
    });
  }
  return sha;
}

export async function uploadBlob(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  sha: string,
): Promise<void> {
  blobHash(sha);
  declaredLength(req, ctx.blobs.maxBytes, `blob ${sha}`);
  // A refusal of the blob store is answered by its code (http.ts responseOf).
  const bytes = await ctx.blobs.receive(req, sha);
  send(req, res, 201, { sha256: sha, bytes });
}

/** Bytes of a blob; a single `Range: bytes=a-b` (or `a-`, `-n`) gets a 206. */
export async function serveBlob(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  sha: string,
): Promise<void> {
  blobHash(sha);
  const size = ctx.blobs.size(sha);
  if (size === undefined) throw httpError('blob/missing', `blob ${sha} is not on this hub.`);
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
      throw httpError('http/range', `range ${range}: outside the blob's ${size} bytes.`, {
        headers: { 'content-range': `bytes */${size}` },
      });
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
    // Egress of the blob route: what the data plane exists to keep small (issue 5's bench).
    file.on('data', (chunk) => {
      ctx.stats.blobBytesServed += chunk.length;
    });
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

/** Piece lists per blob folder: kept beside the hub's context rather than in it, made on first use. */
const pieceLists = new WeakMap<BlobDir, PieceHashCache>();

/**
 * `GET /v1/blobs/:sha256/pieces`: each piece's SHA-256 (protocol/blob-pieces.ts), public like the
 * blob itself — it says nothing the bytes do not. A swarm fetch checks peers' pieces against it.
 */
export async function servePieces(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  sha: string,
): Promise<void> {
  blobHash(sha);
  let lists = pieceLists.get(ctx.blobs);
  if (!lists) {
    lists = new PieceHashCache(ctx.blobs);
    pieceLists.set(ctx.blobs, lists);
  }
  const list = await lists.get(sha);
  if (!list) throw httpError('blob/missing', `blob ${sha} is not on this hub.`);
  send(req, res, 200, { v: BLOB_PIECES_VERSION, ...list });
}

/** Blob routes: reads are public (a blob is named by its hash), uploads need a token. */
export const BLOB_ROUTES: readonly Route[] = [
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/blobs/:sha256',
    auth: 'public',
    handle: ({ ctx, req, res, params }) => serveBlob(ctx, req, res, params.sha256 ?? ''),
  },
  {
    methods: ['PUT'],
    path: '/v1/blobs/:sha256',
    auth: 'token',
    handle: ({ ctx, req, res, params }) => uploadBlob(ctx, req, res, params.sha256 ?? ''),
  },
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/blobs/:sha256/pieces',
    auth: 'public',
    handle: ({ ctx, req, res, params }) => servePieces(ctx, req, res, params.sha256 ?? ''),
  },
];
