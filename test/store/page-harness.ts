// Node side of the page tests: builds test/store/fixtures with vite into a temporary folder,
// serves it on 127.0.0.1 (port 0) with node:http, and runs Debian's Chromium with a user data
// folder on disk, so that IndexedDB lives in real files across reloads and restarts.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { build } from 'vite';
import type { StorePageApi } from './fixtures/page.ts';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
};

export interface FixtureSite {
  readonly url: string;
  readonly origin: string;
  close(): Promise<void>;
}

export async function serveFixture(): Promise<FixtureSite> {
  const dir = await mkdtemp(join(tmpdir(), 'hearth-store-site-'));
  await build({
    configFile: false,
    root: fixtures,
    logLevel: 'silent',
    build: { outDir: dir, emptyOutDir: true, minify: false, reportCompressedSize: false },
  });
  const server: Server = createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const file = normalize(join(dir, path === '/' ? 'index.html' : path));
    if (!file.startsWith(dir + sep)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/`,
    origin,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Browser {
  readonly context: BrowserContext;
  readonly page: Page;
  close(): Promise<void>;
}

const LAUNCH = {
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-dev-shm-usage',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
};

/** Chromium with its profile in `profileDir` (a real on-disk IndexedDB), on one page. */
export async function launch(profileDir: string): Promise<Browser> {
  const context = await chromium.launchPersistentContext(profileDir, LAUNCH);
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page, close: () => context.close() };
}

/**
 * Chromium with an incognito context (storage in memory). CDP's Storage.overrideQuotaForOrigin
 * is enforced there (Chromium 156 ignores it for on-disk profiles), which gives real
 * QuotaExceededErrors.
 */
export async function launchIncognito(): Promise<Browser> {
  const browser = await chromium.launch(LAUNCH);
  const context = await browser.newContext();
  const page = await context.newPage();
  return { context, page, close: () => browser.close() };
}

export async function profile(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'hearth-store-profile-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Loads (or reloads) the fixture and waits until its store is open. */
export async function ready(page: Page, url?: string): Promise<void> {
  if (url) await page.goto(url);
  else await page.reload();
  await page.waitForFunction(() => window.hearthStore !== undefined);
}

type Api = StorePageApi;
/** Calls the page's store API and returns its answer. */
export function call<K extends keyof Api>(
  page: Page,
  method: K,
  ...args: Parameters<Api[K]>
): Promise<Awaited<ReturnType<Api[K]>>> {
  return page.evaluate(([m, a]) => (window.hearthStore![m] as (...x: unknown[]) => Promise<unknown>)(...a), [
    method,
    args,
  ] as const) as Promise<Awaited<ReturnType<Api[K]>>>;
}

/** The value of an answer that must have succeeded. */
export function ok<T>(a: { ok: true; value: T } | { ok: false; code: string; message: string }): T {
  if (!a.ok) throw new Error(`page call failed: ${a.code}: ${a.message}`);
  return a.value;
}
