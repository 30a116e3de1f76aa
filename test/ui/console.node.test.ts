// The researcher console end to end: the pages built by vite, served by a real hub (SQLite file),
// opened in headless Debian Chromium (playwright-core). A researcher signs in with a token, submits
// a job by choosing its manifest and blob files, follows it while two real volunteers (the
// volunteer runtime on Dawn, over the hub's WebSocket) run it — progress pushed over SSE, no
// polling — downloads an output as .npy (checked against the hub's bytes), and cancels another
// job after a confirm. axe-core finds no serious or critical accessibility violation. A followed
// train job shows its round and its loss curve, which gains a point as each round closes.
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
import { smallCorpus, tinyTrainJob } from '../train/job-helpers.ts';

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

  it('follows a train job: its round and a loss curve that gains a point as each round closes', async () => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 1100 } });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const requests: string[] = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/v1/')) requests.push(`${r.method()} ${u.pathname}`);
    });
    const corpus = smallCorpus();
    await upload(t.hub.url, token, [corpus]);
    const { job } = await api.submit(
      JSON.stringify(await tinyTrainJob(corpus, { rounds: 2, innerSteps: 4 })),
    );

    await page.goto(`${t.hub.url}/console/`);
    await page.getByLabel('Researcher token').fill(token);
    await page.getByLabel('Researcher token').press('Enter');
    // A job of another kind has no training panel.
    const other = (await api.jobs()).jobs.find((j) => j.kind !== 'train');
    if (!other) throw new Error('no job of another kind on the hub');
    await page.getByRole('button', { name: `Follow job ${other.job}` }).click();
    await page.locator('#d-job').filter({ hasText: other.job }).waitFor();
    expect(await page.locator('#training').isHidden()).toBe(true);

    // The train job, before any volunteer: round 1 of 2, no point yet.
    await page.getByRole('button', { name: `Follow job ${job}` }).click();
    await page.locator('#training').waitFor({ state: 'visible' });
    await page.locator('#t-round').filter({ hasText: 'round 1 of 2' }).waitFor();
    expect(await page.locator('#t-loss').textContent()).toContain('no loss yet');
    expect(await page.locator('#loss-body tr').count()).toBe(0);
    // Record every count of rounds the page shows while volunteers train.
    await page.evaluate(`(() => {
      const body = document.getElementById('loss-body');
      const seen = [body.children.length];
      window.seenRounds = seen;
      new MutationObserver(() => seen.push(body.children.length)).observe(body, { childList: true });
    })()`);
    const trainStart = requests.filter((r) => r === `GET /v1/jobs/${job}/train`).length;
    for (let i = 0; i < 2; i++) volunteers.push(await nodeVolunteer(t.hub.url));
    for (const v of volunteers) v.volunteer.start();
    await page.locator('#d-status').filter({ hasText: 'done' }).waitFor({ timeout: 240_000 });
    await page.locator('#t-round').filter({ hasText: 'trained: 2 of 2 rounds' }).waitFor({ timeout: 15_000 });
    await page.locator('#loss-body tr').nth(2).waitFor({ state: 'attached', timeout: 15_000 });

    // Rounds 0 and 1 and the evaluation of the final θ: three points, added as rounds closed
    // (the page showed fewer before it showed all, and never a step back).
    const seen = (await page.evaluate('window.seenRounds')) as number[];
    expect(seen[0]).toBe(0);
    expect(seen.at(-1)).toBe(3);
    expect(seen.filter((n) => n > 0)).toEqual([...seen.filter((n) => n > 0)].sort((a, b) => a - b));
    expect(seen.some((n) => n > 0 && n < 3)).toBe(true);
    // The table and the chart say what the hub's view says.
    const view = await api.train(job);
    const cells = await page
      .locator('#loss-body tr')
      .evaluateAll((rows) =>
        rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent ?? '')),
      );
    expect(cells).toEqual(
      view.curve.map((r) => [
        r.round === 2 ? '2 (final)' : String(r.round),
        r.trainLoss === undefined ? '–' : r.trainLoss.toFixed(3),
        r.valLoss === undefined ? '–' : r.valLoss.toFixed(3),
        `${r.accepted} / ${r.slots}`,
      ]),
    );
    const val = view.curve.map((r) => r.valLoss ?? Number.NaN);
    expect(val[2]).toBeLessThan(val[0] as number);
    expect(await page.locator('#t-loss').textContent()).toBe(
      `validation loss ${val[0]?.toFixed(3)} at round 0 → ${val[2]?.toFixed(3)} at round 2`,
    );
    expect(await page.locator('#loss-chart canvas').count()).toBe(1);
    expect(await page.locator('#loss-chart').getAttribute('data-points')).toBe('3');
    // Read when the pushed events said the shards changed (5 shards), not on a timer.
    const reads = requests.filter((r) => r === `GET /v1/jobs/${job}/train`).length - trainStart;
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(reads).toBeLessThanOrEqual(2 * 5 + 2);

    await page.getByText('Loss by round, as a table').click();
    if (process.env.HEARTH_CONSOLE_TRAIN_SCREENSHOT) {
      await page.locator('#detail').screenshot({ path: process.env.HEARTH_CONSOLE_TRAIN_SCREENSHOT });
    }
    expect(await axeViolations(page)).toEqual([]);
    for (const v of volunteers.splice(0)) await v.dispose();
    expect(pageErrors).toEqual([]);
    await context.close();
  }, 300_000);
});
