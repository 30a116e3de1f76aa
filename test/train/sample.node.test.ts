// Sampling from the byte-level transformer: the Trainer's logits against the float64 reference,
// greedy text against the reference's argmax step by step, seeded draws reproducible, the
// host-side draw against softmax frequencies, and bad options refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isHearthError } from '../../src/core/errors.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { assertClose, type Tolerance } from '../../src/kernels/selftest/harness.ts';
import { acquireDawn } from '../../src/node/dawn.ts';
import { initParams, seededRandom, type TransformerConfig } from '../../src/train/config.ts';
import { sampleBatch } from '../../src/train/data.ts';
import { EMPTY_PROMPT_BYTE, sampleLogits, sampleText } from '../../src/train/sample.ts';
import { DEFAULT_INNER, Trainer } from '../../src/train/trainer.ts';
import { inErrorScope } from './gpu-scope.ts';
import { transformerLogits64 } from './reference64.ts';

/** f32 forward against float64: logits are O(1) sums of a few hundred f32 terms; 1e-4 is ≥ 10× the error seen. */
const LOGIT_TOL: Tolerance = { atol: 1e-4, rtol: 1e-4 };

const CFG: TransformerConfig = { kind: 'transformer', width: 8, depth: 2, heads: 2, context: 6, mlpRatio: 2 };

/** θ₀ plus uniform noise, so the logits spread out (θ₀'s are all near 0). */
function noisyTheta(cfg: TransformerConfig, seed: number, amp: number): Float32Array {
  const r = seededRandom(seed);
  return initParams(cfg, seed).map((x) => x + amp * (2 * r() - 1));
}

let ctx: GpuContext;
const uncaptured: string[] = [];
let tr: Trainer;
const theta = noisyTheta(CFG, 11, 0.3);
beforeAll(async () => {
  ctx = await acquireDawn({ onUncapturedError: (e) => uncaptured.push(e.message) });
  ctx.pool.poison = true;
  tr = await Trainer.create(ctx, CFG, theta);
});
afterAll(() => {
  tr?.destroy();
  ctx?.destroy();
});

/** The reference's logits at the last real position of a window built as sampleText builds it. */
function refNext(text: readonly number[]): Float64Array {
  const T = CFG.context;
  const window = new Int32Array(T);
  const tail = text.length === 0 ? [EMPTY_PROMPT_BYTE] : text.slice(-T);
  window.set(tail);
  const all = transformerLogits64(CFG, theta, window);
  return all.slice((tail.length - 1) * 256, tail.length * 256);
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if ((x[i] as number) > (x[best] as number)) best = i;
  return best;
}

async function expectConfigError(p: Promise<unknown>, words: string): Promise<void> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(isHearthError(e) && e.code).toBe('train/config');
  expect((e as Error).message).toContain(words);
}

describe('sampling on Dawn', () => {
  it('Trainer.logits (2 sequences) match the float64 forward; one row reads the same bits', async () => {
    await inErrorScope(ctx, uncaptured, async () => {
      const r = seededRandom(3);
      const ids = Int32Array.from({ length: 2 * CFG.context }, () => Math.floor(r() * 256));
      const got = await tr.logits(ids);
      expect(got.length).toBe(ids.length * 256);
      const worst = assertClose(got, transformerLogits64(CFG, theta, ids), LOGIT_TOL, 'logits vs float64');
      console.log(`logits vs float64: max |err| ${worst.toExponential(2)}`);
      const row = await tr.logits(ids, { row: 7 });
      expect(Buffer.from(row.buffer).equals(Buffer.from(got.slice(7 * 256, 8 * 256).buffer))).toBe(true);
    });
  });

  it('greedy text (past the context, and from an empty prompt) is the float64 argmax at every step', async () => {
    await inErrorScope(ctx, uncaptured, async () => {
      for (const prompt of [[104, 105, 33], []]) {
        const out = await sampleText(tr, Uint8Array.from(prompt), { tokens: 10, temperature: 0 });
        expect(out.length).toBe(10);
        const text = [...prompt];
        let minMargin = Number.POSITIVE_INFINITY;
        for (const b of out) {
          const ref = refNext(text);
          const best = argmax(ref);
          const sorted = [...ref].sort((x, y) => y - x);
          minMargin = Math.min(minMargin, (sorted[0] as number) - (sorted[1] as number));
          // Only a near-tie (within the logits' tolerance) may go either way.
          if (b !== best)
            expect((ref[best] as number) - (ref[b] as number)).toBeLessThanOrEqual(2 * LOGIT_TOL.atol);
          text.push(b);
        }
        console.log(
          `greedy from [${prompt}]: ${out.join(' ')}; smallest top-2 margin ${minMargin.toExponential(2)}`,
        );
      }
    });
  });

  it('seeded draws are reproducible; another seed differs; topK 1 is greedy', async () => {
    await inErrorScope(ctx, uncaptured, async () => {
      const prompt = new TextEncoder().encode('ab');
      const a = await sampleText(tr, prompt, { tokens: 16, temperature: 1, seed: 5 });
      const b = await sampleText(tr, prompt, { tokens: 16, temperature: 1, seed: 5 });
      const c = await sampleText(tr, prompt, { tokens: 16, temperature: 1, seed: 6 });
      expect([...a]).toEqual([...b]);
      expect([...a]).not.toEqual([...c]);
      const g = await sampleText(tr, prompt, { tokens: 8, temperature: 0 });
      const k1 = await sampleText(tr, prompt, { tokens: 8, temperature: 1.5, topK: 1, seed: 9 });
      expect([...k1]).toEqual([...g]);
    });
  });

  it('a model trained on a repeating pattern continues it greedily', async () => {
    await inErrorScope(ctx, uncaptured, async () => {
      const cfg: TransformerConfig = {
        kind: 'transformer',
        width: 16,
        depth: 1,
        heads: 2,
        context: 8,
        mlpRatio: 2,
      };
      const corpus = new TextEncoder().encode('0123456789'.repeat(40));
      const range = { start: 0, end: corpus.length };
      const t = await Trainer.create(ctx, cfg, initParams(cfg, 4));
      try {
        let loss = Number.POSITIVE_INFINITY;
        for (let step = 0; step < 50; step++) {
          loss = await t.trainStep(sampleBatch(corpus, range, cfg.context, 8, 1, step), {
            ...DEFAULT_INNER,
            lr: 1e-2,
          });
        }
        const out = await sampleText(t, new TextEncoder().encode('345'), { tokens: 12, temperature: 0 });
        console.log(
          `pattern: loss ${loss.toFixed(3)} after 50 steps; greedy "${new TextDecoder().decode(out)}"`,
        );
        expect(new TextDecoder().decode(out)).toBe('678901234567');
      } finally {
        t.destroy();
      }
    });
  }, 120_000);

  it('refuses bad options with train/config', async () => {
    const p = new Uint8Array([1]);
    for (const tokens of [0, -1, 1.5, 1e9, Number.NaN])
      await expectConfigError(sampleText(tr, p, { tokens }), 'tokens');
    for (const temperature of [-0.1, Number.NaN, Number.POSITIVE_INFINITY])
      await expectConfigError(sampleText(tr, p, { tokens: 1, temperature }), 'temperature');
    for (const topK of [0, 257, 2.5]) await expectConfigError(sampleText(tr, p, { tokens: 1, topK }), 'topK');
    await expectConfigError(sampleText(tr, [1, 2] as unknown as Uint8Array, { tokens: 1 }), 'Uint8Array');
    const mlp = await Trainer.create(
      ctx,
      { kind: 'mlp', inputs: 2, hidden: [], classes: 3 },
      new Float32Array(9),
    );
    try {
      await expectConfigError(sampleText(mlp, p, { tokens: 1 }), 'transformer');
    } finally {
      mlp.destroy();
    }
  });
});

describe('sampleLogits', () => {
  it('draws bytes with softmax(logits / temperature) frequencies, restricted to topK', () => {
    const logits = [2, 1, 0.5, -1, 1];
    const draws = 40_000;
    for (const [temperature, topK] of [
      [1, 5],
      [0.5, 5],
      [1, 2],
    ] as const) {
      const r = seededRandom(temperature * 100 + topK);
      const counts = new Array<number>(logits.length).fill(0);
      for (let i = 0; i < draws; i++) {
        const v = sampleLogits(logits, temperature, topK, r());
        counts[v] = (counts[v] as number) + 1;
      }
      // topK 2 keeps 2 and the first of the tied 1s (index 1).
      const kept = topK === 2 ? [0, 1] : [0, 1, 2, 3, 4];
      const w = logits.map((l, i) => (kept.includes(i) ? Math.exp(l / temperature) : 0));
      const z = w.reduce((a, b) => a + b, 0);
      for (let v = 0; v < logits.length; v++) {
        const p = (w[v] as number) / z;
        // 5 standard deviations of a binomial count: fails by chance about once in 10⁶ runs.
        const sd = Math.sqrt(draws * p * (1 - p));
        expect(Math.abs((counts[v] as number) - draws * p)).toBeLessThanOrEqual(5 * sd + 1e-9);
      }
    }
  });

  it('temperature 0 is the argmax (first on a tie); NaN logits are train/diverged', () => {
    expect(sampleLogits([0, 3, 3, 1], 0, 256, 0.99)).toBe(1);
    let err: unknown;
    try {
      sampleLogits([0, Number.NaN, 1], 1, 256, 0.5);
    } catch (e) {
      err = e;
    }
    expect(isHearthError(err) && err.code).toBe('train/diverged');
  });
});
