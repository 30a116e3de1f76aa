// The hub's static pages: files of a temp folder served at every path outside /v1/ and /p2p,
// with the right types and isolation headers, conditional requests, and no way out of the folder
// (dot segments raw and encoded, encoded slashes, NUL, symlinks, absolute-form targets).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pageSegments } from '../../src/node/static-pages.ts';
import { raw, type TestHub, testHub } from './hub-helpers.ts';

const SECRET = 'top secret outside the pages folder';
const WASM = Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);

/** One request written byte for byte (node:http and fetch both normalise some paths). */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    let out = '';
    s.on('data', (c) => (out += c.toString('latin1')));
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
  });
}

describe('hub static pages', () => {
  let t: TestHub;
  let root: string;
  let pages: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'hearth-static-'));
    pages = join(root, 'pages');
    mkdirSync(join(pages, 'assets'), { recursive: true });
    mkdirSync(join(pages, 'console'));
    mkdirSync(join(pages, 'widget'));
    writeFileSync(join(pages, 'widget', 'hearth-widget.js'), 'customElements;\n');
    writeFileSync(join(pages, 'widget', 'frame.html'), '<!doctype html><title>frame</title>');
    writeFileSync(join(pages, 'index.html'), '<!doctype html><title>volunteer</title>');
    writeFileSync(join(pages, 'console', 'index.html'), '<!doctype html><title>console</title>');
    writeFileSync(join(pages, 'assets', 'app.js'), 'export const x = 1;\n');
    writeFileSync(join(pages, 'assets', 'w.mjs'), 'export {};\n');
    writeFileSync(join(pages, 'assets', 'app.css'), 'body{}');
    writeFileSync(join(pages, 'assets', 'ort.wasm'), WASM);
    writeFileSync(join(pages, 'assets', 'app.js.map'), '{}');
    writeFileSync(join(pages, 'assets', 'logo.svg'), '<svg/>');
    writeFileSync(join(pages, 'assets', 'logo.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    writeFileSync(join(pages, 'manifest.json'), '{"name":"hearth"}');
    writeFileSync(join(pages, 'empty.txt'), '');
    writeFileSync(join(pages, '.env'), 'HIDDEN=1');
    writeFileSync(join(root, 'secret.txt'), SECRET);
    symlinkSync(join(root, 'secret.txt'), join(pages, 'leak.txt'));
    symlinkSync(root, join(pages, 'up'));
    // A symlink that stays inside the folder is fine.
    symlinkSync(join(pages, 'assets', 'app.css'), join(pages, 'alias.css'));
    t = await testHub({ pagesDir: pages });
  });
  afterAll(async () => {
    await t?.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  it('serves index.html for / and for folders, with the isolation headers', async () => {
    const r = await fetch(`${t.hub.url}/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await r.text()).toContain('<title>volunteer</title>');
    expect(r.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(r.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    expect(r.headers.get('cross-origin-resource-policy')).toBe('same-origin');
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');

    const c = await fetch(`${t.hub.url}/console/`);
    expect(await c.text()).toContain('<title>console</title>');
    const redirect = await fetch(`${t.hub.url}/console?x=1`, { redirect: 'manual' });
    expect(redirect.status).toBe(301);
    expect(redirect.headers.get('location')).toBe('/console/?x=1');
  });

  it('names each file type correctly and sends the exact bytes', async () => {
    const cases: [string, string][] = [
      ['/assets/app.js', 'text/javascript; charset=utf-8'],
      ['/assets/w.mjs', 'text/javascript; charset=utf-8'],
      ['/assets/app.css', 'text/css; charset=utf-8'],
      ['/assets/ort.wasm', 'application/wasm'],
      ['/assets/app.js.map', 'application/json; charset=utf-8'],
      ['/assets/logo.svg', 'image/svg+xml'],
      ['/assets/logo.png', 'image/png'],
      ['/manifest.json', 'application/json; charset=utf-8'],
      ['/alias.css', 'text/css; charset=utf-8'],
    ];
    for (const [path, type] of cases) {
      const r = await fetch(`${t.hub.url}${path}`);
      expect([path, r.status, r.headers.get('content-type')]).toEqual([path, 200, type]);
    }
    const w = await fetch(`${t.hub.url}/assets/ort.wasm`);
    expect(new Uint8Array(await w.arrayBuffer())).toEqual(WASM);
    expect(w.headers.get('content-length')).toBe(String(WASM.length));
    const e = await fetch(`${t.hub.url}/empty.txt`);
    expect([e.status, await e.text()]).toEqual([200, '']);
  });

  it('answers HEAD with the headers and no body', async () => {
    const r = await raw(t.hub.url, { method: 'HEAD', path: '/assets/app.js' });
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe(String('export const x = 1;\n'.length));
    expect(r.body.length).toBe(0);
  });

  it('answers 304 to a matching If-None-Match or a later If-Modified-Since, 200 once the file changes', async () => {
    const file = join(pages, 'assets', 'app.css');
    const first = await fetch(`${t.hub.url}/assets/app.css`);
    const etag = first.headers.get('etag')!;
    const lastModified = first.headers.get('last-modified')!;
    expect(etag).toMatch(/^W\/".+"$/);
    const again = await raw(t.hub.url, { path: '/assets/app.css', headers: { 'if-none-match': etag } });
    expect([again.status, again.body.length, again.headers.etag]).toEqual([304, 0, etag]);
    const since = await raw(t.hub.url, {
      path: '/assets/app.css',
      headers: { 'if-modified-since': lastModified },
    });
    expect(since.status).toBe(304);
    const other = await raw(t.hub.url, { path: '/assets/app.css', headers: { 'if-none-match': '"nope"' } });
    expect(other.status).toBe(200);

    writeFileSync(file, 'body{color:red}');
    const later = new Date(Date.parse(lastModified) + 60_000);
    utimesSync(file, later, later);
    const changed = await raw(t.hub.url, { path: '/assets/app.css', headers: { 'if-none-match': etag } });
    expect([changed.status, changed.body.toString()]).toEqual([200, 'body{color:red}']);
    expect(changed.headers.etag).not.toBe(etag);
  });

  it('refuses every way out of the folder and never shows a byte from outside', async () => {
    const attempts = [
      '/../secret.txt',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/%2E%2E/%2e%2e/secret.txt',
      '/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/..%2fsecret.txt',
      '/..%5csecret.txt',
      '/index.html%00.js',
      '/%00',
      '/leak.txt',
      '/up/secret.txt',
      '//etc/passwd',
      '/.env',
      '/%2eenv',
      '/%zz',
    ];
    for (const path of attempts) {
      const out = await rawRequest(
        t.hub.port,
        `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      const status = Number(out.slice(9, 12));
      expect([path, status >= 400 && status < 500]).toEqual([path, true]);
      expect(out).not.toContain(SECRET);
      expect(out).not.toContain('HIDDEN');
      expect(out).not.toContain(root);
    }
    // An absolute-form target names a path too, never a file elsewhere.
    const abs = await rawRequest(
      t.hub.port,
      `GET http://x/${join(root, 'secret.txt')} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    expect(Number(abs.slice(9, 12))).toBeGreaterThanOrEqual(400);
    expect(abs).not.toContain(SECRET);
  });

  it('pageSegments names what was refused', () => {
    expect(pageSegments('/a/b%20c/?q=1')).toEqual(['a', 'b c']);
    expect(() => pageSegments('/a/%2e%2e/b')).toThrow(/"\." and "\.\." segments/);
    expect(() => pageSegments('/a%00')).toThrow(/NUL/);
    expect(() => pageSegments('/%E0%A4%A')).toThrow(/percent-encoding/);
    expect(() => pageSegments('relative')).toThrow(/absolute path/);
  });

  it('serves the widget: its script to any origin, its frame only inside allowed sites, other pages in none', async () => {
    // testHub allows https://embed.example.
    const js = await fetch(`${t.hub.url}/widget/hearth-widget.js`, {
      headers: { origin: 'https://anyone.example' },
    });
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('access-control-allow-origin')).toBe('*');
    expect(js.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    expect(js.headers.get('content-security-policy')).toBeNull();
    const frame = await fetch(`${t.hub.url}/widget/frame.html`);
    expect(frame.headers.get('content-security-policy')).toBe("frame-ancestors 'self' https://embed.example");
    expect(frame.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    expect(frame.headers.get('access-control-allow-origin')).toBeNull();
    // The same file by another spelling of its path gets the same headers; a 304 keeps them.
    const encoded = await fetch(`${t.hub.url}/widget/%66rame.html?payout=x`);
    expect(encoded.headers.get('content-security-policy')).toBe(frame.headers.get('content-security-policy'));
    const again = await fetch(`${t.hub.url}/widget/frame.html`, {
      headers: { 'if-none-match': frame.headers.get('etag')! },
    });
    expect(again.status).toBe(304);
    expect(again.headers.get('content-security-policy')).toBe(frame.headers.get('content-security-policy'));
    // Every other page, the volunteer page's yes above all, renders in no other site's frame.
    for (const path of ['/', '/console/', '/index.html']) {
      const r = await fetch(`${t.hub.url}${path}`);
      expect([path, r.headers.get('content-security-policy')]).toEqual([path, "frame-ancestors 'self'"]);
    }
    const css = await fetch(`${t.hub.url}/assets/app.css`);
    expect(css.headers.get('content-security-policy')).toBeNull();
    expect(css.headers.get('cross-origin-resource-policy')).toBe('same-origin');
  });

  it('GET /widget/allowed answers any page whether its origin may embed the widget', async () => {
    const ask = async (origin?: string) => {
      const r = await fetch(`${t.hub.url}/widget/allowed`, origin ? { headers: { origin } } : {});
      expect(r.status).toBe(200);
      expect(r.headers.get('access-control-allow-origin')).toBe('*');
      expect(r.headers.get('cache-control')).toBe('no-store');
      return r.json();
    };
    expect(await ask('https://embed.example')).toEqual({ allowed: true, origin: 'https://embed.example' });
    expect(await ask('https://elsewhere.example')).toEqual({
      allowed: false,
      origin: 'https://elsewhere.example',
    });
    // The hub's own pages, by its listening address.
    expect(await ask(t.hub.url)).toEqual({ allowed: true, origin: t.hub.url });
    expect(await ask()).toEqual({ allowed: true, origin: null });
    const post = await raw(t.hub.url, { method: 'POST', path: '/widget/allowed', body: 'x' });
    expect(post.status).toBe(405);
    const preflight = await raw(t.hub.url, { method: 'OPTIONS', path: '/widget/allowed' });
    expect(preflight.status).toBe(204);
  });

  it('refuses other methods with 405 and leaves /v1/ to the API', async () => {
    const r = await raw(t.hub.url, { method: 'POST', path: '/index.html', body: 'x' });
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('GET, HEAD');
    const api = await fetch(`${t.hub.url}/v1/jobs/x`);
    expect(api.status).toBe(401);
    expect(api.headers.get('cross-origin-embedder-policy')).toBeNull();
    const missing = await fetch(`${t.hub.url}/nope.html`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('http/not-found');
  });
});

describe('hub static pages without a build', () => {
  it('answers 404 pages/missing saying to run npm run build, while the API works', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-static-none-'));
    const t = await testHub({ pagesDir: join(dir, 'dist') });
    try {
      const r = await fetch(`${t.hub.url}/index.html`);
      expect(r.status).toBe(404);
      const body = (await r.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('pages/missing');
      expect(body.error.message).toMatch(/npm run build/);
      expect((await fetch(`${t.hub.url}/v1/jobs/x`)).status).toBe(401);
    } finally {
      await t.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
