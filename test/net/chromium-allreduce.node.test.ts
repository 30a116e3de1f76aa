// All-reduce between real Chromium tabs (each its own browser context, real WebRTC on loopback,
// the hub's PeerServer): 4 tabs average seeded tensors and get bit-identical means that match a
// float64 reference, with every contribution's hash reported; a tab closed mid-round is left out
// and the other 3 agree on the mean of their own inputs.
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChromiumPeer, chromiumHarness } from './chromium-peers.ts';
import { seededFloats } from './node-peers.ts';
import type { AllReduceOutcome } from './page/page.ts';

/** |mean − reference| allowed per element: f32 sums of 3–4 values in [−1, 1), then ÷ N. */
const MEAN_ATOL = 1e-6;

const h = chromiumHarness();
let tabs: ChromiumPeer[] = [];
afterEach(() => {
  tabs = [];
});

const shaOf = (f: Float32Array) => createHash('sha256').update(new Uint8Array(f.buffer)).digest('hex');

async function open(n: number): Promise<string[]> {
  const ids: string[] = [];
  // Liveness loose enough for a loaded CI machine, tight enough to notice a closed tab in seconds.
  const tuning = { pingIntervalMs: 250, idleTimeoutMs: 4000, stallTimeoutMs: 4000 };
  for (let i = 0; i < n; i++) {
    const p = await h.tab();
    tabs.push(p);
    ids.push(await p.open({ tuning }));
  }
  return ids;
}

const run = (p: ChromiumPeer, o: { round: string; group: string[]; seed: number; floats: number }) =>
  p.page.evaluate(
    (x) => window.hearthP2P.allReduce({ ...x, timeoutMs: 120_000 }),
    o,
  ) as Promise<AllReduceOutcome>;

describe('all-reduce between Chromium tabs', () => {
  it('4 tabs: bit-identical means equal to a float64 reference, every contribution hashed', async () => {
    const floats = 50_001;
    const group = await open(4);
    const seeds = [11, 12, 13, 14];
    const out = await Promise.all(
      tabs.map((p, i) => run(p, { round: 'r1', group, seed: seeds[i]!, floats })),
    );
    const inputs = seeds.map((s) => seededFloats(floats, s));
    for (const o of out) if (!o.ok) throw new Error(`all-reduce failed: ${JSON.stringify(o.error)}`);
    const ok = out as Extract<AllReduceOutcome, { ok: true }>[];
    expect(new Set(ok.map((o) => o.meanSha)).size).toBe(1);
    for (const o of ok) {
      expect(o.contributors).toEqual(group);
      expect(o.contributions).toEqual(group.map((peer, i) => ({ peer, sha256: shaOf(inputs[i]!) })));
      o.head.forEach((v, k) => {
        const want = inputs.reduce((s, x) => s + x[k]!, 0) / 4;
        expect(Number.isFinite(v)).toBe(true);
        expect(Math.abs(v - want)).toBeLessThanOrEqual(MEAN_ATOL);
      });
      // Bandwidth-optimal: about 2(N−1)/N of the tensor per tab, plus framing.
      expect((floats * 4 * 1.5) / o.bytesSent).toBeGreaterThanOrEqual(0.9);
    }
  }, 240_000);

  it('a tab closed mid-round is left out; the other 3 agree on the mean of their inputs', async () => {
    const floats = 2_000_003;
    const group = await open(4);
    const seeds = [21, 22, 23, 24];
    const victim = 2;
    const running = tabs.map((p, i) =>
      i === victim ? Promise.resolve(undefined) : run(p, { round: 'r2', group, seed: seeds[i]!, floats }),
    );
    const v = tabs[victim]!;
    void v.page
      .evaluate((x) => window.hearthP2P.allReduce({ ...x, timeoutMs: 120_000 }), {
        round: 'r2',
        group,
        seed: seeds[victim]!,
        floats,
      })
      .catch(() => {});
    // Close the victim once it is inside the ring (its first reduce step started).
    const end = Date.now() + 60_000;
    while ((await v.page.evaluate(() => window.hearthP2P.allReduceStep)) < 0) {
      if (Date.now() > end) throw new Error('the victim never started a ring step');
      await new Promise((r) => setTimeout(r, 20));
    }
    await v.kill();
    const out = (await Promise.all(running)).filter((o): o is AllReduceOutcome => o !== undefined);
    for (const o of out) if (!o.ok) throw new Error(`all-reduce failed: ${JSON.stringify(o.error)}`);
    const ok = out as Extract<AllReduceOutcome, { ok: true }>[];
    const survivors = group.filter((_, i) => i !== victim);
    const inputs = seeds.filter((_, i) => i !== victim).map((s) => seededFloats(floats, s));
    expect(new Set(ok.map((o) => o.meanSha)).size).toBe(1);
    for (const o of ok) {
      expect(o.contributors).toEqual(survivors);
      o.head.forEach((x, k) => {
        const want = inputs.reduce((s, t) => s + t[k]!, 0) / 3;
        expect(Math.abs(x - want)).toBeLessThanOrEqual(MEAN_ATOL);
      });
    }
  }, 300_000);
});
