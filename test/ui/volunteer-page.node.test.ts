// The volunteer page in real headless Chromium (SwiftShader WebGPU) against a real hub serving
// the pages built by vite: consent first (nothing loads, connects or touches the GPU before the
// yes, read from the network log and from counters an init script puts on navigator.gpu and
// Worker), then a real job through the compute worker with the GPU cap held at 25% and 75%, no
// long task on the main thread, pause within a second of the tab being hidden, and axe-core on
// both states. Saves docs/volunteer.png (the README shows it).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VolunteerSnapshot } from '../../src/client/controller.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { chromiumArgs } from '../../src/node/volunteers.ts';
import { spinJob, waitFor } from '../client/client-helpers.ts';
import { type TestHub, testHub, upload } from '../node/hub-helpers.ts';
import { mlp } from '../onnx/models.ts';
import { uniform } from '../onnx/reference.ts';

/** The GPU cap must hold within this share of its set value over whole shard cycles (the issue's ±10%). */
const DUTY_RTOL = 0.1;
/** LCG steps per invocation: a shard of a few hundred ms in Chromium's SwiftShader. */
const ITERS = 16_000_000;

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let dir: string;
let hub: TestHub;
let token: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const requests: string[] = [];
const sockets: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hearth-ui-'));
  await build({ configFile: 'vite.config.ts', logLevel: 'error', build: { outDir: join(dir, 'dist') } });
  hub = await testHub({
    pagesDir: join(dir, 'dist'),
    maxBlobBytes: 1 << 22,
    expireEveryMs: 100,
    allowedOrigins: [],
  });
  token = createToken(hub.hub.store, 'alice').token;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: chromiumArgs('swiftshader'),
  });
  context = await browser.newContext({ viewport: { width: 800, height: 1100 } });
  await context.grantPermissions(['microphone']);
  // Counters on the page's GPU and worker entry points, and every long task, from the first script.
  await context.addInitScript(() => {
    const w = window as unknown as {
      __hearth: { adapter: number; workers: number; longTasks: [number, number][] };
    };
    w.__hearth = { adapter: 0, workers: 0, longTasks: [] };
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
    new PerformanceObserver((list) => {
      for (const e of list.getEntries())
        w.__hearth.longTasks.push([e.startTime + performance.timeOrigin, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  });
  page = await context.newPage();
  page.on('request', (r) => requests.push(r.url()));
  page.on('websocket', (ws) => sockets.push(ws.url()));
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await hub?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const counters = () =>
  page.evaluate(
    () =>
      (window as unknown as { __hearth: { adapter: number; workers: number; longTasks: [number, number][] } })
        .__hearth,
  );
const snapshot = () =>
  page.evaluate(
    () =>
      (window as unknown as { hearthVolunteer: { snapshot: VolunteerSnapshot } }).hearthVolunteer.snapshot,
  );

/** axe-core's serious and critical violations on the page as it is now. */
async function axeViolations(): Promise<string[]> {
  await page.addScriptTag({ content: AXE });
  return page.evaluate(async () => {
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

/**
 * The GPU's share of wall time over whole cycles after `from` (epoch ms): from the first shard
 * finished after it to the last, the shards' own timings over the time between.
 */
function duty(finished: readonly { at: number; ms: number }[], from: number) {
  const after = finished.filter((f) => f.at > from);
  const first = after[0];
  const last = after.at(-1);
  if (!first || !last || after.length < 2) return { duty: Number.NaN, cycles: 0 };
  const busy = after.slice(1).reduce((n, f) => n + f.ms, 0);
  return { duty: busy / (last.at - first.at), cycles: after.length - 1 };
}

describe('the volunteer page', () => {
  it('asks first: no worker, no GPU adapter, no ONNX runtime, no hub connection before the yes', async () => {
    await page.goto(`${hub.hub.url}/volunteer/`);
    await page.locator('#consent-yes').waitFor();
    // Time for anything eager to show itself.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await counters()).toMatchObject({ adapter: 0, workers: 0 });
    expect(sockets).toEqual([]);
    expect(requests.filter((u) => /ort|\.wasm|worker|\/v1\/|\/p2p/.test(u))).toEqual([]);
    const consent = await page.locator('#consent').textContent();
    expect(consent).toContain(new URL(hub.hub.url).host);
    expect(consent).toMatch(/busy at most\s+50%/);
    expect(consent).toMatch(/Nothing runs, downloads or connects before you say yes/);
    expect(await axeViolations()).toEqual([]);

    await page.locator('#consent-yes').click();
    await waitFor(async () => (await snapshot()).state === 'connected', 60_000, 'the page to connect');
    expect((await counters()).workers).toBe(1);
    expect(sockets.some((u) => u.endsWith('/v1/volunteer'))).toBe(true);
    expect(requests.some((u) => /worker/.test(u))).toBe(true);
  }, 120_000);

  it('computes under a 25% and a 75% GPU cap, keeps the main thread free, pauses when hidden', async () => {
    const { manifest, blobs } = await spinJob(80, ITERS, {
      replication: 1,
      maxReplicas: 1,
      deadlineMs: 600_000,
    });
    await upload(hub.hub.url, token, blobs);
    const r = await fetch(`${hub.hub.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(manifest),
    });
    expect(r.status).toBe(201);
    await waitFor(async () => (await snapshot()).finished.length >= 2, 60_000, 'the first shards');
    const computing = Date.now();

    // The GPU cap through its control, by keyboard (50% → 25%: five steps of 5).
    await page.locator('#cap').focus();
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowLeft');
    await waitFor(async () => (await snapshot()).settings.dutyCycle === 0.25, 5000, 'the cap at 25%');
    let from = Date.now();
    await waitFor(
      async () => Date.now() - from > 10_000 && duty((await snapshot()).finished, from).cycles >= 6,
      90_000,
      'six shards at 25%',
    );
    const at25 = duty((await snapshot()).finished, from);
    for (let i = 0; i < 10; i++) await page.keyboard.press('ArrowRight');
    await waitFor(async () => (await snapshot()).settings.dutyCycle === 0.75, 5000, 'the cap at 75%');
    from = Date.now();
    await waitFor(
      async () => Date.now() - from > 10_000 && duty((await snapshot()).finished, from).cycles >= 6,
      90_000,
      'six shards at 75%',
    );
    const at75 = duty((await snapshot()).finished, from);
    expect(Math.abs(at25.duty - 0.25) / 0.25, `25%: measured ${at25.duty.toFixed(3)}`).toBeLessThanOrEqual(
      DUTY_RTOL,
    );
    expect(Math.abs(at75.duty - 0.75) / 0.75, `75%: measured ${at75.duty.toFixed(3)}`).toBeLessThanOrEqual(
      DUTY_RTOL,
    );
    // The page shows it: busy share, the chart, the cap kept for the next visit.
    expect(await page.locator('#busy').textContent()).toMatch(/^\d+%$/);
    expect(await page.locator('#chart canvas').count()).toBeGreaterThan(0);
    expect(JSON.parse((await page.evaluate(() => JSON.stringify(localStorage))) as string)).toMatchObject({
      [`hearth-settings:${hub.hub.url}`]: JSON.stringify({
        dutyCycle: 0.75,
        paused: false,
        background: false,
      }),
    });
    // No task over 50 ms on the main thread while the worker computed.
    expect((await counters()).longTasks.filter(([at]) => at > computing)).toEqual([]);
    await page.screenshot({ path: 'docs/volunteer.png' });
    expect(await axeViolations()).toEqual([]);

    // Hidden: headless Chromium never hides a page by itself (no window to minimise), so the test
    // sets what the browser would — document.visibilityState — and fires the same event.
    const pausedAfterMs = await page.evaluate(
      () =>
        new Promise<number>((resolve) => {
          const c = (
            window as unknown as {
              hearthVolunteer: {
                snapshot: VolunteerSnapshot;
                subscribe(l: (s: VolunteerSnapshot) => void): () => void;
              };
            }
          ).hearthVolunteer;
          const t0 = performance.now();
          const off = c.subscribe((s) => {
            if (s.state === 'paused') {
              off();
              resolve(performance.now() - t0);
            }
          });
          Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
          document.dispatchEvent(new Event('visibilitychange'));
        }),
    );
    expect(pausedAfterMs).toBeLessThan(1000);
    expect((await snapshot()).pausedBy).toBe('hidden');
    expect(await page.locator('#paused-why').textContent()).toMatch(/hidden/);
    const done = (await snapshot()).finished.length;
    await new Promise((r) => setTimeout(r, 1500));
    expect((await snapshot()).finished.length).toBe(done);
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await waitFor(
      async () => (await snapshot()).finished.length > done,
      30_000,
      'work to resume when visible',
    );
  }, 300_000);

  it('without WebGPU runs ONNX shards on WebAssembly, is leased no WGSL shard, and says so', async () => {
    // Chromium without --enable-unsafe-webgpu: navigator.gpu gives no adapter.
    const plain = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: chromiumArgs('swiftshader').filter((a) => !/webgpu/.test(a)),
    });
    try {
      const model = mlp(3);
      const rows = 8;
      const x = new Uint8Array(Float32Array.from(uniform(5, rows * model.dims.D, -1, 1)).buffer);
      await upload(hub.hub.url, token, [model.bytes as Uint8Array<ArrayBuffer>, x]);
      const wgsl = await spinJob(4, 1000, { replication: 1, maxReplicas: 1 });
      await upload(hub.hub.url, token, wgsl.blobs);
      const submit = async (m: unknown) => {
        const r = await fetch(`${hub.hub.url}/v1/jobs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(m),
        });
        expect(r.status).toBe(201);
        return ((await r.json()) as { job: string }).job;
      };
      // The WGSL job first: a volunteer without WebGPU must pass it by.
      const wgslJob = await submit(wgsl.manifest);
      const onnxJob = await submit({
        v: 1,
        kind: 'onnx',
        model: await sha256Hex(model.bytes),
        inputs: { x: { sha256: await sha256Hex(x), dtype: 'f32', shape: [rows, model.dims.D] } },
        batchInput: 'x',
        shardSize: 4,
        replication: 1,
        tolerance: { rtol: 1e-4, atol: 1e-6 },
        deadlineMs: 60_000,
        creditRate: 1e-6,
        flopsPerShard: 1000,
      });
      // The GPU page of the tests above would take the WGSL shards: it stops first.
      await page.evaluate(() =>
        (window as unknown as { hearthVolunteer: { stop(): Promise<void> } }).hearthVolunteer.stop(),
      );
      const ctx = await plain.newContext();
      await ctx.grantPermissions(['microphone']);
      const p = await ctx.newPage();
      await p.goto(`${hub.hub.url}/volunteer/`);
      await p.locator('#consent-yes').click();
      const snap = () =>
        p.evaluate(
          () =>
            (window as unknown as { hearthVolunteer: { snapshot: VolunteerSnapshot } }).hearthVolunteer
              .snapshot,
        );
      await waitFor(async () => (await snap()).stats?.valid === 2, 90_000, 'two ONNX shards on WebAssembly');
      const s = await snap();
      expect(s.webgpu).toBe(false);
      expect(s.stats?.leases).toBe(2);
      expect(s.current).toMatch(/on wasm/);
      expect(await p.locator('#no-webgpu').isVisible()).toBe(true);
      const jobs = async (id: string) =>
        (await (
          await fetch(`${hub.hub.url}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${token}` } })
        ).json()) as {
          validated: number;
          inFlight: number;
        };
      expect((await jobs(onnxJob)).validated).toBe(2);
      expect(await jobs(wgslJob)).toMatchObject({ validated: 0, inFlight: 0 });
    } finally {
      await plain.close();
    }
  }, 180_000);
});
