// Helpers for the hub server tests: a real hub on a free loopback port with a real SQLite file in a
// temp folder, raw HTTP requests (node:http, so tests can send what fetch() refuses to), and a
// valid WGSL manifest whose blobs exist.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Hub, type HubOptions, startHub } from '../../src/node/hub-server.ts';
import { wgslManifest } from '../hub/fixtures.ts';

export const ADMIN = 'admin-secret-for-tests';

export interface TestHub {
  readonly hub: Hub;
  readonly dir: string;
  readonly blobDir: string;
  /** Closes the hub and removes its folder. */
  dispose(): Promise<void>;
}

export async function testHub(over: Partial<HubOptions> = {}): Promise<TestHub> {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-hub-server-'));
  const blobDir = join(dir, 'blobs');
  const hub = await startHub({
    dbPath: join(dir, 'hub.db'),
    blobDir,
    maxBlobBytes: 4096,
    allowedOrigins: ['https://embed.example'],
    adminToken: ADMIN,
    ...over,
  });
  return {
    hub,
    dir,
    blobDir,
    async dispose() {
      await hub.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/**
 * One HTTP request with node:http: any method, raw header values, a body written in chunks (no
 * Content-Length then, so the hub must count bytes itself). A connection the hub closes early
 * reads as status 0.
 */
export function raw(
  url: string,
  opts: {
    method?: string;
    path: string;
    headers?: Record<string, string>;
    body?: Uint8Array | string;
    chunks?: (Uint8Array | string)[];
  },
): Promise<RawResponse> {
  const u = new URL(url);
  const headers = { ...opts.headers };
  // node:http sends a GET's body without framing; a declared length keeps it one request.
  if (opts.body !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-length')) {
    headers['content-length'] = String(Buffer.byteLength(opts.body));
  }
  return new Promise((resolve) => {
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        method: opts.method ?? 'GET',
        path: opts.path,
        headers,
        agent: false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
        );
        res.on('error', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.alloc(0) }),
        );
      },
    );
    req.on('error', () => resolve({ status: 0, headers: {}, body: Buffer.alloc(0) }));
    try {
      if (opts.chunks) {
        for (const c of opts.chunks) req.write(c);
        req.end();
      } else req.end(opts.body);
    } catch {
      // node:http refuses some requests itself (a body longer than its Content-Length).
      req.destroy();
      resolve({ status: 0, headers: {}, body: Buffer.alloc(0) });
    }
  });
}

/** Four little-endian u32s: the uniform of shard `i`. */
export function uniform(i: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Uint32Array.from([i, 0, 0, 0]).buffer);
}

/** A valid WGSL manifest of `n` shards (replication 2) as plain JSON, and the blobs it names. */
export function manifestJson(n: number, over: Record<string, unknown> = {}) {
  const blobs = Array.from({ length: n }, (_, i) => uniform(i));
  const shards = blobs.map((b) => ({
    dispatch: [1, 1, 1],
    bindings: [
      { binding: 0, role: 'uniform', name: 'index', sha256: sha(b) },
      { binding: 1, role: 'output', name: 'y', dtype: 'f32', shape: [4] },
    ],
  }));
  // Parsed once here so the fixture itself is known to be valid, then sent as JSON.
  const manifest = JSON.parse(JSON.stringify(wgslManifest(n, { shards, ...over }))) as Record<
    string,
    unknown
  >;
  return { manifest, blobs };
}

/** Uploads blobs with the given token. */
export async function upload(
  url: string,
  token: string,
  blobs: readonly Uint8Array<ArrayBuffer>[],
): Promise<void> {
  for (const b of blobs) {
    const r = await fetch(`${url}/v1/blobs/${sha(b)}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}` },
      body: b,
    });
    if (r.status !== 201) throw new Error(`upload failed: ${r.status} ${await r.text()}`);
  }
}
