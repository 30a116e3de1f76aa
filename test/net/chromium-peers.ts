// Chromium peers for the data-plane tests and bench/p2p: test/net/page built once with vite into a
// temp folder, served by a real hub (so the page, the hub's PeerServer and its blob route share
// one origin), opened in headless Debian Chromium, one browser context per peer so that closing
// a context is a tab dying. Each page drives a real PeerNode through `window.hearthP2P`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { type TestHub, testHub } from '../node/hub-helpers.ts';
import type { FetchOutcome, OpenOptions } from './page/page.ts';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/** vite.config.ts's chromiumArgs (loopback WebRTC included) — kept in step by hand. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-dev-shm-usage',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--allow-loopback-in-peer-connection',
];

export interface BuiltPage {
  /** The folder to pass as the hub's `pagesDir` (index.html is the test page). */
  readonly pagesDir: string;
  dispose(): void;
}

/** Builds test/net/page with vite into a temp folder. */
export async function buildP2PPage(): Promise<BuiltPage> {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-p2p-page-'));
  const pagesDir = join(dir, 'dist');
  await build({
    configFile: false,
    root: here('./page'),
    base: '/',
    logLevel: 'error',
    build: { outDir: pagesDir, emptyOutDir: true, target: 'es2022', minify: false },
  });
  return { pagesDir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
}

/** One Chromium tab with the test page loaded; the methods call its `window.hearthP2P`. */
export interface ChromiumPeer {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Registers at the hub's PeerServer; → the peer id. */
  open(opts?: OpenOptions): Promise<string>;
  serve(seed: number, size: number): Promise<string>;
  connect(peer: string): Promise<void>;
  /** Leaves the PeerServer (the page stays open; `open` may be called again). */
  close(): Promise<void>;
  fetch(
    holders: readonly string[],
    sha256: string,
    opts?: { pieceSize?: number; parallel?: number },
  ): Promise<FetchOutcome>;
  fetchOrHub(
    holders: readonly string[],
    sha256: string,
    opts?: { pieceSize?: number },
  ): Promise<FetchOutcome>;
  progress(): Promise<{ peer: string; done: number; count: number }>;
  score(peer: string): Promise<number>;
  /** Closes the tab's whole context: to the other peers, the tab died. */
  kill(): Promise<void>;
}

/** Opens the page at `hubUrl` in a fresh context (microphone granted: ICE lists loopback then). */
export async function chromiumPeer(browser: Browser, hubUrl: string): Promise<ChromiumPeer> {
  const context = await browser.newContext();
  await context.grantPermissions(['microphone']);
  const page = await context.newPage();
  page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`));
  await page.goto(`${hubUrl}/index.html`);
  await page.waitForFunction(() => window.hearthP2P !== undefined, null, { timeout: 30_000 });
  let dead = false;
  return {
    context,
    page,
    open: (opts = {}) => page.evaluate((o) => window.hearthP2P.open(o), opts),
    serve: (seed, size) => page.evaluate(([a, b]) => window.hearthP2P.serve(a, b), [seed, size] as const),
    fetch: (holders, sha256, opts = {}) =>
      page.evaluate(([h, s, o]) => window.hearthP2P.fetch(h, s, o), [holders, sha256, opts] as const),
    fetchOrHub: (holders, sha256, opts = {}) =>
      page.evaluate(([h, s, o]) => window.hearthP2P.fetchOrHub(h, s, o), [holders, sha256, opts] as const),
    connect: (peer) => page.evaluate((p) => window.hearthP2P.connect(p), peer),
    close: () => page.evaluate(() => window.hearthP2P.close()),
    progress: () => page.evaluate(() => window.hearthP2P.progress),
    score: (peer) => page.evaluate((p) => window.hearthP2P.score(p), peer),
    async kill() {
      if (dead) return;
      dead = true;
      await context.close().catch(() => {});
    },
  };
}

/** A test file's Chromium setup: the page built, a hub serving it, one browser, tabs closed after each test. */
export interface ChromiumHarness {
  readonly browser: () => Browser;
  readonly hub: () => TestHub;
  /** Opens a tab (its own context) on the hub's page; it is closed after the test. */
  tab(): Promise<ChromiumPeer>;
}

/** Registers beforeAll/afterEach/afterAll hooks for a file of Chromium data-plane tests. */
export function chromiumHarness(): ChromiumHarness {
  let built: BuiltPage | undefined;
  let th: TestHub | undefined;
  let browser: Browser | undefined;
  let open: ChromiumPeer[] = [];
  beforeAll(async () => {
    built = await buildP2PPage();
    th = await testHub({
      pagesDir: built.pagesDir,
      allowedOrigins: [],
      peer: { maxConnectionsPerAddress: 64 },
    });
    browser = await launchChromium();
  }, 180_000);
  afterEach(async () => {
    for (const p of open) await p.kill();
    open = [];
  });
  afterAll(async () => {
    await browser?.close();
    await th?.dispose();
    built?.dispose();
  });
  return {
    browser: () => browser!,
    hub: () => th!,
    async tab() {
      const p = await chromiumPeer(browser!, th!.hub.url);
      open.push(p);
      return p;
    },
  };
}
