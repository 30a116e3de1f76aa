// The researcher console end to end: the pages built by vite, served by a real hub (SQLite file),
// opened in headless Debian Chromium (playwright-core). A researcher signs in with a token, submits
// a job by choosing its manifest and blob files, follows it while two real volunteers (the
// volunteer runtime on Dawn, over the hub's WebSocket) run it — progress pushed over SSE, no
// polling — downloads an output as .npy (checked against the hub's bytes), and cancels another
// job after a confirm. axe-core finds no serious or critical accessibility violation.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubApi } from '../../src/client/hub-api.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { chromiumArgs } from '../../src/node/volunteers.ts';
import { npy } from '../../src/protocol/npy.ts';
import {
  expectedIndexOutput,
  indexJob,
  type NodeVolunteer,
  nodeVolunteer,
} from '../client/client-helpers.ts';
import { type TestHub, testHub, upload } from '../node/hub-helpers.ts';

const SHARDS = 6;
/** Where the screenshot goes: a temp file, or `HEARTH_CONSOLE_SCREENSHOT` (docs/console.png). */
const SCREENSHOT_TO = process.env.HEARTH_CONSOLE_SCREENSHOT;

let dir: string;
let t: TestHub;
let browser: Browser;
let token: string;
let api: HubApi;
const volunteers: NodeVolunteer[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hearth-console-'));
  const pagesDir = join(dir, 'dist');
  await build({ configFile: 'vite.config.ts', logLevel: 'error', build: { outDir: pagesDir } });
  t = await testHub({ pagesDir, maxBlobBytes: 1 << 20, expireEveryMs: 100, compileWgsl: false, peer: false });
  token = createToken(t.hub.store, 'alice').token;
  api = new HubApi({ hub: t.hub.url, token });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: chromiumArgs('swiftshader'),
  });
});

afterAll(async () => {
  for (const v of volunteers.splice(0)) await v.dispose();
  await browser?.close();
  await t?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** Serious and critical axe-core violations on the page as it is now. */
async function axeViolations(page: Page): Promise<{ id: string; impact: string; nodes: string[] }[]> {
  const source = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  await page.addScriptTag({ content: source });
  const found = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(): Promise<{ violations: unknown[] }> } }).axe;
    const r = await axe.run();
    return r.violations as { id: string; impact: string; nodes: { target: string[] }[] }[];
  });
  return found
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) }));
}

describe('the researcher console', () => {
  it('signs in, submits, follows a job live, downloads .npy, cancels; no serious a11y violations', async () => {
    const context = await browser.newContext({
      viewport: { width: 1000, height: 900 },
      acceptDownloads: true,
    });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const requests: string[] = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/v1/')) requests.push(`${r.method()} ${u.pathname}`);
    });

    await page.goto(`${t.hub.url}/console/`);
    expect(await page.title()).toBe('Hearth — researcher console');
    expect(await axeViolations(page)).toEqual([]);

    // A wrong token is refused and not kept.
    await page.getByLabel('Researcher token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'does not know this token' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    // Signed in with the keyboard: the token goes to sessionStorage, never into the URL.
    await page.getByLabel('Researcher token').fill(token);
    await page.getByLabel('Researcher token').press('Enter');
    await page.locator('#app').waitFor({ state: 'visible' });
    expect(await page.evaluate(() => sessionStorage.getItem('hearth-console-token'))).toBe(token);
    expect(page.url()).not.toContain(token);
    await page.getByText('No jobs yet').waitFor();

    // Submit by choosing the manifest and its blobs (file names need not be their hashes).
    const { manifest, blobs } = await indexJob(SHARDS, { deadlineMs: 30_000 });
    await page.getByLabel('Manifest (.json) and its blob files').setInputFiles([
      { name: 'job.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(manifest)) },
      ...blobs.map((b, i) => ({
        name: `uniform-${i}.bin`,
        mimeType: 'application/octet-stream',
        buffer: Buffer.from(b),
      })),
    ]);
    await page.getByRole('button', { name: 'Upload and submit' }).click();
    const status = page.locator('#submit-status');
    await status.filter({ hasText: /^submitted job-/ }).waitFor({ timeout: 30_000 });
    expect(await status.textContent()).toContain(`${SHARDS} blobs uploaded`);
    const list = await api.jobs();
    expect(list.total).toBe(1);
    const job = list.jobs[0]!.job;
    // The new job is followed at once, and listed.
    await page.locator('#d-job').filter({ hasText: job }).waitFor();
    await page.getByRole('button', { name: `Follow job ${job}` }).waitFor();
    await page.locator('#d-status').filter({ hasText: 'running' }).waitFor();
    expect(await page.locator('#d-shards').textContent()).toBe(String(SHARDS));

    // Record every validated count the page shows while volunteers run the job.
    await page.evaluate(() => {
      const el = document.getElementById('d-validated')!;
      const seen: string[] = [el.textContent ?? ''];
      (window as unknown as { seen: string[] }).seen = seen;
      new MutationObserver(() => seen.push(el.textContent ?? '')).observe(el, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
    const followedAt = Date.now();
    for (let i = 0; i < 2; i++) volunteers.push(await nodeVolunteer(t.hub.url));
    for (const v of volunteers) v.volunteer.start();
    await page.locator('#d-status').filter({ hasText: 'done' }).waitFor({ timeout: 60_000 });
    const seen = (await page.evaluate(() => (window as unknown as { seen: string[] }).seen)).map(Number);
    expect(seen[0]).toBe(0);
    expect(seen.at(-1)).toBe(SHARDS);
    expect(seen).toEqual([...seen].sort((a, b) => a - b)); // never a step backwards
    expect(await page.locator('#d-validated').textContent()).toBe(String(SHARDS));
    expect(await page.locator('#d-live').textContent()).toBe('final');
    // Pushed, not polled: the page never asked for the job's progress; the list and stats were
    // read at most once per 2 s after events (plus the 10 s refresh).
    expect(requests.filter((r) => r === `GET /v1/jobs/${job}`)).toEqual([]);
    expect(requests.filter((r) => r === `GET /v1/jobs/${job}/events`).length).toBeGreaterThanOrEqual(1);
    const statsCalls = requests.filter((r) => r === 'GET /v1/stats').length;
    expect(statsCalls).toBeLessThanOrEqual(3 + Math.ceil((Date.now() - followedAt) / 2000));

    // Latency and the chart come from the stats (refreshed after the events).
    await page.locator('#d-latency').filter({ hasText: / \/ / }).waitFor({ timeout: 15_000 });
    await page.locator('#s-volunteers').filter({ hasText: '2' }).waitFor({ timeout: 15_000 });
    expect(await page.locator('#chart canvas').count()).toBe(1);
    await page
      .locator('#outputs-body tr')
      .nth(SHARDS - 1)
      .waitFor({ timeout: 15_000 });

    const shot = SCREENSHOT_TO ?? join(dir, 'console.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeLessThan(200 * 1024);

    // Download shard 0's output: the .npy of the hub's bytes.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download .npy of shard 0 output y' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(`${job}-0-y.npy`);
    const got = readFileSync((await download.path())!);
    const hubBytes = await api.output(job, 0, 'y');
    expect(new Uint8Array(got)).toEqual(npy('f32', [4], hubBytes));
    expect([...new Float32Array(hubBytes.buffer, hubBytes.byteOffset, 4)]).toEqual(expectedIndexOutput(0));

    // No volunteers now: a second job stays running; cancel it from the page.
    for (const v of volunteers.splice(0)) await v.dispose();
    await upload(t.hub.url, token, blobs);
    const { job: other } = await api.submit(JSON.stringify((await indexJob(2)).manifest));
    // A reload signs in again from sessionStorage and lists it.
    await page.reload();
    await page.locator('#app').waitFor({ state: 'visible' });
    await page.getByRole('button', { name: `Follow job ${other}` }).click();
    await page.locator('#d-status').filter({ hasText: 'running' }).waitFor();
    // Running with nobody to run it: no recent rate, so no ETA rather than a made-up one.
    await page.locator('#d-eta').filter({ hasText: 'unknown: no shard validated' }).waitFor();
    // Dismissed: nothing happens. Accepted: cancelled, and the pushed stream says so.
    page.once('dialog', (d) => void d.dismiss());
    await page.getByRole('button', { name: 'Cancel this job…' }).click();
    await page.waitForTimeout(300);
    expect((await api.progress(other)).status).toBe('running');
    page.once('dialog', (d) => {
      expect(d.message()).toContain(other);
      void d.accept();
    });
    await page.getByRole('button', { name: 'Cancel this job…' }).click();
    await page.locator('#d-status').filter({ hasText: 'cancelled' }).waitFor({ timeout: 15_000 });
    expect((await api.progress(other)).status).toBe('cancelled');
    expect(await page.getByRole('button', { name: 'Cancel this job…' }).isDisabled()).toBe(true);

    // The console with a job open, its results and the chart: no serious or critical violation.
    await page.getByRole('button', { name: `Follow job ${job}` }).click();
    await page.locator('#outputs-body tr').first().waitFor();
    expect(await axeViolations(page)).toEqual([]);

    await page.getByRole('button', { name: 'Sign out' }).click();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.getByLabel('Researcher token').waitFor();
    expect(pageErrors).toEqual([]);
    await context.close();
  });
});
