// A real QuotaExceededError: Chromium's quota for the fixture's origin is set to 300 kB over the
// DevTools protocol (Storage.overrideQuotaForOrigin, before the page first opens its storage,
// in an incognito context: Chromium 156 enforces the override only there), then the page's
// store writes past it. The browser's own quota check refuses the transaction; the store must
// evict, retry, and otherwise answer with a typed 'store/quota' error — never an uncaught one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Browser,
  call,
  type FixtureSite,
  launchIncognito,
  ok,
  ready,
  serveFixture,
} from './page-harness.ts';

const QUOTA = 300_000;
let site: FixtureSite;
let browser: Browser | undefined;

beforeAll(async () => {
  site = await serveFixture();
});
afterAll(async () => {
  await browser?.close();
  await site?.close();
});

describe('store under a real storage quota', () => {
  it('evicts and retries, then answers store/quota with the bytes needed, and stays usable', async () => {
    browser = await launchIncognito();
    const { page, context } = browser;
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const cdp = await context.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: site.origin, quotaSize: QUOTA });
    await ready(page, site.url);

    // About 75 kB for the empty database, 42 kB per 40 kB blob: four fit, with room to spare.
    const older: string[] = [];
    for (let i = 0; i < 4; i++) older.push(ok(await call(page, 'putBlob', 40_000, i + 1)));

    // 100 kB more does not fit until the three least recently used blobs are evicted.
    const fits = ok(await call(page, 'putBlob', 100_000, 5));
    const left = await Promise.all(older.map(async (sha) => ok(await call(page, 'hasBlob', sha))));
    expect(left).toEqual([false, false, false, true]);
    expect(ok(await call(page, 'getBlob', fits))?.size).toBe(100_000);

    // 1 MB never fits: everything older is evicted, the retry is refused too, and the caller gets
    // a typed error saying how much was needed.
    const big = await call(page, 'putBlob', 1_000_000, 9);
    if (big.ok) throw new Error('a 1 MB put under a 300 kB quota was accepted');
    expect(big.code).toBe('store/quota');
    expect(big.details).toMatchObject({ needed: 1_000_000, evicted: 140_000 });
    expect(big.message).toContain('1000000 bytes');
    expect(ok(await call(page, 'blobCount'))).toBe(0);

    // The outbox reports quota the same way and keeps nothing half-written.
    const result = await call(page, 'addResult', 'job-q/0', 1, 1_000_000);
    expect(result.ok ? 'stored' : result.code).toBe('store/quota');
    expect(ok(await call(page, 'pending'))).toEqual([]);

    // Writes that fit work again (each store retries once after a pause, which covers the moment
    // Chromium's bookkeeping needs after a refused transaction).
    expect(ok(await call(page, 'addResult', 'job-q/1', 2))).toBe(true);
    expect(ok(await call(page, 'pending')).map((p) => p.shard)).toEqual(['job-q/1']);
    const small = ok(await call(page, 'putBlob', 40_000, 10));
    expect(ok(await call(page, 'getBlob', small))?.size).toBe(40_000);

    expect(pageErrors).toEqual([]);
  });
});
