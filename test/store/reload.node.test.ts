// "Reload the page and find outbox and cache intact": a real Chromium, a real page that uses
// src/store, a real reload (and a browser restart) — driven from Node with playwright-core,
// since a vitest browser test cannot reload its own page.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Browser,
  call,
  type FixtureSite,
  launch,
  ok,
  profile,
  ready,
  serveFixture,
} from './page-harness.ts';

let site: FixtureSite;
let prof: Awaited<ReturnType<typeof profile>>;
let browser: Browser | undefined;

beforeAll(async () => {
  site = await serveFixture();
  prof = await profile();
});
afterAll(async () => {
  await browser?.close();
  await site?.close();
  await prof?.remove();
});

describe('store across reloads', () => {
  it('keeps the blob cache, the outbox and checkpoints through reloads and a browser restart', async () => {
    browser = await launch(prof.dir);
    const { page } = browser;
    await ready(page, site.url);

    const sha = ok(await call(page, 'putBlob', 100_000, 7));
    expect(ok(await call(page, 'addResult', 'job-reload/0', 1))).toBe(true);
    expect(ok(await call(page, 'addResult', 'job-reload/1', 2))).toBe(true);
    ok(await call(page, 'saveCheckpoint', 'train/0', 12, 3));

    await ready(page);
    expect(ok(await call(page, 'getBlob', sha))).toEqual({ size: 100_000, sha256: sha });
    const pending = ok(await call(page, 'pending'));
    expect(pending.map((p) => p.shard)).toEqual(['job-reload/0', 'job-reload/1']);
    expect(pending[0]!.outputs).toEqual([{ isArrayBuffer: true, byteLength: 1024, hashOk: true }]);
    expect(ok(await call(page, 'loadCheckpoint', 'train/0'))?.step).toBe(12);

    // The hub acknowledges one result: after the next reload only the other is left.
    expect(ok(await call(page, 'ack', 'job-reload/0'))).toBe(true);
    await ready(page);
    expect(ok(await call(page, 'pending')).map((p) => p.shard)).toEqual(['job-reload/1']);
    expect(ok(await call(page, 'ack', 'job-reload/1'))).toBe(true);
    await ready(page);
    expect(ok(await call(page, 'pending'))).toEqual([]);
    expect(ok(await call(page, 'hasBlob', sha))).toBe(true);

    // Closing the browser and starting it again on the same profile: the cache is on disk.
    await browser.close();
    browser = await launch(prof.dir);
    await ready(browser.page, site.url);
    expect(ok(await call(browser.page, 'getBlob', sha))).toEqual({ size: 100_000, sha256: sha });
    expect(ok(await call(browser.page, 'loadCheckpoint', 'train/0'))?.step).toBe(12);
  });
});
