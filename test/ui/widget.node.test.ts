// `<hearth-widget>` on another site, in real headless Chromium (SwiftShader WebGPU) against a real
// hub serving the pages built by vite. The host is a tiny node:http server on another port of
// 127.0.0.1 — another origin — that the hub allows, under a strict Content-Security-Policy that
// lets in only the README's three lines; a second one the hub does not allow. Checked: the
// host's DOM and styles are untouched outside the element and it can reach neither the frame's
// document nor its storage; what loads before the yes (≤ 30 KB gzip, nothing connects, no worker,
// no GPU adapter); the yes given inside the frame runs a WGSL job whose ledger entries name the
// host's origin and payout address; a remembered yes resumes; a site the hub does not allow gets
// a sentence saying so and no frame; axe-core finds nothing serious in the frame. Saves
// docs/widget.png (the README shows it).
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  type Browser,
  type BrowserContext,
  chromium,
  type Frame,
  type Page,
  type Response,
} from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VolunteerSnapshot } from '../../src/client/controller.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { chromiumArgs } from '../../src/node/volunteers.ts';
import { indexJob, waitFor } from '../client/client-helpers.ts';
import { type TestHub, testHub, upload } from '../node/hub-helpers.ts';

const PAYOUT = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';
/** The host pages' style nonce (their policy allows no other style). */
const NONCE = 'hearth-test-nonce';
/** The issue's budget for what loads before the yes: widget script, frame page, its script and CSS. */
const BEFORE_YES_GZIP = 30 * 1024;
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

interface Counters {
  adapter: number;
  workers: number;
  /** Mutations of the host document after it was parsed, other than the element's own attributes. */
  mutations: string[];
  /** document.styleSheets.length when parsing ended (before any module ran), and now. */
  sheetsAtParse: number;
  sheets: number;
  adopted: number;
  /** `hearth-state` events from the element. */
  states: string[];
}

let dir: string;
let hub: TestHub;
let token: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let host: { server: Server; origin: string };
let stranger: { server: Server; origin: string };
const responses: { url: string; response: Response }[] = [];
const sockets: string[] = [];

/** A news site with the two lines of the README in it, served from its own port (its own origin). */
async function hostSite(hubUrl: () => string): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    if (req.url !== '/') {
      res.writeHead(404).end();
      return;
    }
    const hubAt = hubUrl();
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      // A strict policy: nothing but its own styles and the three lines the README asks for.
      'content-security-policy': `default-src 'none'; style-src 'nonce-${NONCE}'; script-src ${hubAt}; frame-src ${hubAt}; connect-src ${hubAt}`,
    });
    res.end(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>The Daily Example</title>
<style nonce="${NONCE}">
  body { font: 17px/1.55 Georgia, serif; margin: 0; background: #faf7f2; color: #222; }
  main { max-width: 40rem; margin: 0 auto; padding: 1.5rem 1rem; }
  h1 { font-size: 1.8rem; margin: 0 0 .5rem; }
  aside { margin-top: 1.25rem; }
  aside h2 { font: 600 1rem system-ui, sans-serif; margin: 0 0 .5rem; }
</style>
<script type="module" src="${hubAt}/widget/hearth-widget.js"></script>
</head>
<body>
<main>
<h1>The Daily Example</h1>
<p>Our readers' browsers help researchers run small GPU jobs while they read, if they agree to.
The box below comes from the Hearth hub, not from us: we cannot see what it runs or press its buttons.</p>
<aside>
<h2>Lend your GPU to research</h2>
<hearth-widget hub="${hubAt}" payout="${PAYOUT}"></hearth-widget>
</aside>
</main>
</body>
</html>`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hearth-widget-'));
  let hubUrl = '';
  host = await hostSite(() => hubUrl);
  stranger = await hostSite(() => hubUrl);
  await build({ configFile: 'vite.config.ts', logLevel: 'error', build: { outDir: join(dir, 'dist') } });
  hub = await testHub({
    pagesDir: join(dir, 'dist'),
    maxBlobBytes: 1 << 20,
    expireEveryMs: 100,
    allowedOrigins: [host.origin],
  });
  hubUrl = hub.hub.url;
  token = createToken(hub.hub.store, 'alice').token;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: chromiumArgs('swiftshader'),
  });
  context = await browser.newContext({ viewport: { width: 760, height: 720 } });
  // In every frame: counters on the GPU and worker entry points; in the top document, a
  // MutationObserver from the end of parsing on, and the style sheets it had then.
  await context.addInitScript(() => {
    const w = window as unknown as { __hearth: Counters };
    w.__hearth = {
      adapter: 0,
      workers: 0,
      mutations: [],
      sheetsAtParse: -1,
      sheets: -1,
      adopted: -1,
      states: [],
    };
    const gpu = (navigator as Navigator & { gpu?: { requestAdapter: (...a: unknown[]) => unknown } }).gpu;
    if (gpu) {
      const original = gpu.requestAdapter.bind(gpu);
      gpu.requestAdapter = ((...a: unknown[]) => {
        w.__hearth.adapter++;
        return original(...a);
      }) as typeof gpu.requestAdapter;
    }
    const NativeWorker = window.Worker;
    window.Worker = class extends NativeWorker {
      constructor(...a: ConstructorParameters<typeof Worker>) {
        super(...a);
        w.__hearth.workers++;
      }
    };
    if (window.top !== window) return;
    const name = (n: Node) => (n instanceof Element ? n.localName : n.nodeName);
    const mo = new MutationObserver((list) => {
      // The parser building the page is the baseline, not a change (no module runs before it ends).
      if (document.readyState === 'loading') return;
      for (const r of list) {
        if (r.type === 'attributes' && name(r.target) === 'hearth-widget') continue;
        w.__hearth.mutations.push(
          `${r.type} on ${name(r.target)}${r.attributeName ? ` [${r.attributeName}]` : ''}` +
            [...r.addedNodes].map((n) => ` +${name(n)}`).join('') +
            [...r.removedNodes].map((n) => ` -${name(n)}`).join(''),
        );
      }
    });
    mo.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
    // Parsing is over and no module script has run yet: what the parser built is the baseline.
    document.addEventListener('readystatechange', () => {
      if (document.readyState !== 'interactive') return;
      mo.takeRecords();
      w.__hearth.sheetsAtParse = document.styleSheets.length;
    });
    // The one handle on the frame a host gets: the source of the frame's messages.
    window.addEventListener('message', (e) => {
      if (e.source && e.source !== window) (window as unknown as { __frame: unknown }).__frame = e.source;
    });
    document.addEventListener(
      'hearth-state',
      (e) => w.__hearth.states.push((e as CustomEvent).detail.state),
      {
        capture: true,
      },
    );
  });
  page = await context.newPage();
  page.on('response', (response) => responses.push({ url: response.url(), response }));
  page.on('websocket', (ws) => sockets.push(ws.url()));
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await hub?.dispose();
  for (const s of [host, stranger]) await new Promise((r) => s?.server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** The widget's frame in the page, once it exists. */
async function widgetFrame(): Promise<Frame> {
  let frame: Frame | undefined;
  await waitFor(
    () => (frame = page.frames().find((f) => f.url().includes('/widget/frame.html'))) !== undefined,
    20_000,
    'the widget frame',
  );
  return frame as Frame;
}

const counters = (where: Page | Frame) =>
  where.evaluate(() => {
    const c = (window as unknown as { __hearth: Counters }).__hearth;
    return { ...c, sheets: document.styleSheets.length, adopted: document.adoptedStyleSheets.length };
  });

const snapshot = (frame: Frame) =>
  frame.evaluate(
    () =>
      (window as unknown as { hearthVolunteer?: { snapshot: VolunteerSnapshot } }).hearthVolunteer
        ?.snapshot ?? null,
  );

/** axe-core's serious and critical violations in the frame as it is now. */
async function axeViolations(frame: Frame): Promise<string[]> {
  await frame.addScriptTag({ content: AXE });
  return frame.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: { run(): Promise<{ violations: { id: string; impact: string; help: string }[] }> };
      }
    ).axe;
    const r = await axe.run();
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.help}`);
  });
}

interface DomNode {
  nodeType: number;
  nodeName: string;
  localName?: string;
  nodeValue?: string;
  children?: DomNode[];
  shadowRoots?: (DomNode & { shadowRootType?: string })[];
}

/**
 * The element's shadow root as DevTools sees it (the page's scripts cannot: it is closed): its
 * mode, its text (without the style sheet) and how many iframes it holds.
 */
async function shadowOf(p: Page): Promise<{ mode: string | undefined; text: string; iframes: number }> {
  const cdp = await p.context().newCDPSession(p);
  try {
    const { root } = (await cdp.send('DOM.getDocument', { depth: -1, pierce: true })) as { root: DomNode };
    const find = (n: DomNode): DomNode | undefined =>
      n.localName === 'hearth-widget' ? n : (n.children ?? []).map(find).find((x) => x !== undefined);
    const sr = find(root)?.shadowRoots?.[0];
    let text = '';
    let iframes = 0;
    const walk = (n: DomNode) => {
      if (n.nodeName === 'STYLE') return;
      if (n.nodeName === 'IFRAME') iframes++;
      if (n.nodeType === 3) text += n.nodeValue ?? '';
      for (const c of n.children ?? []) walk(c);
    };
    if (sr) walk(sr);
    return { mode: sr?.shadowRootType, text, iframes };
  } finally {
    await cdp.detach();
  }
}

describe('<hearth-widget> on another site', () => {
  it('is one self-contained script at a fixed path', () => {
    const file = join(dir, 'dist', 'widget', 'hearth-widget.js');
    const code = readFileSync(file, 'utf8');
    // It imports nothing: other chunks are the hub's, served same-origin only.
    expect(code).not.toMatch(/\bimport\b/);
    expect(statSync(file).size).toBeLessThan(8 * 1024);
  });

  let frame: Frame;

  it('before the yes: the host untouched and walled off, under 30 KB gzip, no worker, adapter or socket', async () => {
    await page.goto(`${host.origin}/`);
    frame = await widgetFrame();
    await frame.locator('#consent-yes').waitFor();
    // The element took the frame's height: the whole card shows, no scroll bar.
    const frameEl = await frame.frameElement();
    await waitFor(
      async () => {
        const box = await frameEl.boundingBox();
        const inner = await frame.evaluate(() => document.documentElement.getBoundingClientRect().height);
        return box !== null && Math.abs(box.height - Math.ceil(inner)) <= 1;
      },
      10_000,
      'the element to take the frame’s height',
    );
    // Time for anything eager to show itself.
    await new Promise((r) => setTimeout(r, 1500));

    // The card: the hub, the embedding site, the payout address; the same rules as the page.
    const card = ((await frame.locator('#consent').textContent()) ?? '').replace(/\s+/g, ' ');
    expect(card).toContain(new URL(hub.hub.url).host);
    expect(card).toContain(new URL(host.origin).host);
    expect(card).toContain(PAYOUT);
    // The site's share of the credit, as the hub's operator set it (default 10%).
    expect(card).toMatch(/receives 10% of the credit you earn here/);
    expect(card).toMatch(/Nothing runs, downloads or connects before you say yes/);

    // Nothing started in the frame, nothing connected.
    expect(await counters(frame)).toMatchObject({ adapter: 0, workers: 0 });
    expect(sockets).toEqual([]);
    const urls = responses.map((r) => r.url);
    expect(urls.filter((u) => /ort|\.wasm|worker|\/v1\/|\/p2p/.test(u))).toEqual([]);

    // Bytes before the yes: everything that came from the hub, gzip-compressed here.
    const fromHub = responses.filter((r) => r.url.startsWith(`${hub.hub.url}/`));
    let gz = 0;
    const each: string[] = [];
    for (const r of fromHub) {
      const body = await r.response.body().catch(() => Buffer.alloc(0));
      const n = gzipSync(body, { level: 9 }).length;
      gz += n;
      each.push(`${new URL(r.url).pathname} ${body.length} B → ${n} B gzip`);
    }
    console.log(`before the yes, from the hub (${gz} B gzip):\n  ${each.join('\n  ')}`);
    const paths = fromHub.map((r) => new URL(r.url).pathname);
    expect(paths).toEqual(
      expect.arrayContaining(['/widget/hearth-widget.js', '/widget/allowed', '/widget/frame.html']),
    );
    // Asked once, though the upgrade reports two attributes and then connects.
    expect(paths.filter((p) => p === '/widget/allowed')).toHaveLength(1);
    expect(gz).toBeLessThanOrEqual(BEFORE_YES_GZIP);

    // The host: no mutation outside the element, no style sheet added, and no way in.
    const c = await counters(page);
    expect(c.mutations).toEqual([]);
    expect(c.sheetsAtParse).toBe(1);
    expect(c.sheets).toBe(c.sheetsAtParse);
    expect(c.adopted).toBe(0);
    expect(c.states).toEqual(['asking']);
    const reach = await page.evaluate(() => {
      const el = document.querySelector('hearth-widget') as HTMLElement;
      const tryRead = (f: () => unknown) => {
        try {
          return f() === undefined || f() === null ? 'nothing' : 'read';
        } catch (e) {
          return (e as Error).name;
        }
      };
      const child = (window as unknown as { __frame: Window }).__frame;
      return {
        shadowRoot: el.shadowRoot,
        iframesInDocument: document.querySelectorAll('iframe').length,
        // A frame in a shadow tree is not one of window.frames either.
        childFrames: window.frames.length,
        gotHandle: child !== undefined,
        document: tryRead(() => child.document),
        localStorage: tryRead(() => child.localStorage),
        indexedDB: tryRead(() => (child as Window & { indexedDB: IDBFactory }).indexedDB),
        volunteer: tryRead(() => (child as Window & { hearthVolunteer?: unknown }).hearthVolunteer),
      };
    });
    expect(reach).toEqual({
      shadowRoot: null,
      iframesInDocument: 0,
      childFrames: 0,
      gotHandle: true,
      document: 'SecurityError',
      localStorage: 'SecurityError',
      indexedDB: 'SecurityError',
      volunteer: 'SecurityError',
    });
    // The element's own style applies under the host's strict policy (no inline style allowed):
    // the frame has no border, where an iframe's default is 2px.
    expect(await frameEl.evaluate((el) => getComputedStyle(el as Element).borderTopWidth)).toBe('0px');
    // Even given the iframe element (DevTools can find it), its document is out of reach.
    expect(await frameEl.evaluate((el) => (el as HTMLIFrameElement).contentDocument)).toBeNull();
    const shadow = await shadowOf(page);
    expect(shadow).toMatchObject({ mode: 'closed', iframes: 1 });

    expect(await axeViolations(frame)).toEqual([]);
    const widgetBox = await page.locator('hearth-widget').boundingBox();
    await page.screenshot({
      path: 'docs/widget.png',
      clip: {
        x: 0,
        y: 0,
        width: 760,
        height: Math.ceil((widgetBox?.y ?? 0) + (widgetBox?.height ?? 0) + 32),
      },
    });
    expect(statSync('docs/widget.png').size).toBeLessThan(200 * 1024);
  }, 90_000);

  it('the yes in the frame: it connects, works a WGSL job, and the ledger names the host and payout', async () => {
    await frame.locator('#consent-yes').click();
    await waitFor(
      async () => ['connected', 'idle', 'working'].includes((await snapshot(frame))?.state ?? ''),
      60_000,
      'the frame to connect',
    );
    expect((await counters(frame)).workers).toBe(1);
    expect(sockets.some((u) => u.endsWith('/v1/volunteer'))).toBe(true);

    const { manifest, blobs } = await indexJob(4, { replication: 1, maxReplicas: 1 });
    await upload(hub.hub.url, token, blobs);
    const r = await fetch(`${hub.hub.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(manifest),
    });
    expect(r.status).toBe(201);
    const { job } = (await r.json()) as { job: string };
    await waitFor(() => hub.hub.scheduler.progress(job).validated === 4, 60_000, 'the job to validate');
    const entries = hub.hub.store.ledger().filter((e) => e.job === job);
    expect(entries).toHaveLength(4);
    for (const e of entries) {
      // The site's share (the hub's default 10%) is fixed on each entry when it is made.
      expect(e).toMatchObject({
        status: 'granted',
        site: host.origin,
        payout: PAYOUT,
        payoutCredits: e.credits / 10n,
      });
    }
    // What the payout address has earned as a site is exactly those shares (the voucher's amount
    // once the hub pays tokens; test/ui/wallet.node.test.ts claims it on a chain).
    const share = entries.reduce((s, e) => s + e.credits / 10n, 0n);
    const wallets = await import('../../src/hub/wallets.ts');
    const w = new wallets.HubWallets({
      store: hub.hub.store,
      rules: { chainId: 1, contract: `0x${'c0'.repeat(20)}`, embedShareBps: 1_000 },
      sign: async () => '0x',
    });
    expect(w.earned(PAYOUT).asSite).toBeGreaterThanOrEqual(share);
    await waitFor(async () => (await snapshot(frame))?.stats?.valid === 4, 10_000, 'the meter to count them');
    expect(await frame.locator('#valid').textContent()).toBe('4');
    expect(await frame.locator('#meter').isVisible()).toBe(true);

    // Still nothing touched on the host; it heard only coarse states.
    const c = await counters(page);
    expect(c.mutations).toEqual([]);
    expect(c.sheets).toBe(c.sheetsAtParse);
    expect(c.states[0]).toBe('asking');
    expect(c.states).toContain('working');
    expect(await axeViolations(frame)).toEqual([]);

    // The yes is remembered for this site: a reload resumes without asking.
    await page.reload();
    frame = await widgetFrame();
    await waitFor(
      async () => ['connected', 'idle', 'working'].includes((await snapshot(frame))?.state ?? ''),
      60_000,
      'a remembered yes to resume',
    );
    expect(await frame.locator('#consent').isHidden()).toBe(true);
  }, 120_000);

  it('a site the hub does not allow gets a sentence saying so and how to fix it, and no frame', async () => {
    const other = await context.newPage();
    try {
      await other.goto(`${stranger.origin}/`);
      await waitFor(async () => /does not allow/.test((await shadowOf(other)).text), 20_000, 'the refusal');
      const shadow = await shadowOf(other);
      expect(shadow.text).toContain(`does not allow widgets on ${stranger.origin}`);
      expect(shadow.text).toContain(`hearth hub --origin ${stranger.origin}`);
      expect(shadow.iframes).toBe(0);
      expect(other.frames()).toHaveLength(1);
    } finally {
      await other.close();
    }
  }, 60_000);
});
