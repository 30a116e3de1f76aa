// DiLoCo on the tiny transformer: Δ is a pure function of (θ, data, seed) to the bit, and a few
// compressed rounds lower the held-out loss.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { acquireDawn } from '../../src/node/dawn.ts';
import { ErrorFeedback } from '../../src/protocol/pseudo-gradient.ts';
import {
  averageFrames,
  DEFAULT_INNER,
  initParams,
  innerLoop,
  meanLoss,
  outerStep,
  shardRanges,
  splitCorpus,
  Trainer,
  type TransformerConfig,
  validationBatches,
} from '../../src/train/index.ts';
import { inErrorScope } from './gpu-scope.ts';

const corpus = new Uint8Array(readFileSync(new URL('../../data/train/corpus.txt', import.meta.url)));
const CFG: TransformerConfig = {
  kind: 'transformer',
  width: 16,
  depth: 1,
  heads: 2,
  context: 16,
  mlpRatio: 2,
};

let ctx: GpuContext;
const uncaptured: string[] = [];
beforeAll(async () => {
  ctx = await acquireDawn({ onUncapturedError: (e) => uncaptured.push(e.message) });
});
afterAll(() => ctx?.destroy());

describe('DiLoCo on Dawn', () => {
  it('the same θ, shard and seed give a bit-identical Δ (fresh trainers); another seed does not', async () => {
    await inErrorScope(ctx, uncaptured, async () => {
      const theta = initParams(CFG, 1);
      const { train } = splitCorpus(corpus.length);
      const spec = { steps: 3, sequences: 2, optimizer: DEFAULT_INNER, shard: train, seed: 42 };
      const run = async (seed: number) => {
        const tr = await Trainer.create(ctx, CFG, theta);
        try {
          return (await innerLoop(tr, theta, corpus, { ...spec, seed })).delta;
        } finally {
          tr.destroy();
        }
      };
      const a = await run(42);
      const b = await run(42);
      const c = await run(43);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
      expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
      expect(a.some((x) => x !== 0)).toBe(true);
    });
  }, 60_000);

  it('3 rounds of 2 members (H = 6, int8 with error feedback) lower the held-out loss', async () => {
    await inErrorScope(ctx, uncaptured, async () => {
      let theta: Float32Array = initParams(CFG, 7);
      let momentum: Float32Array = new Float32Array(theta.length);
      const { train, validation } = splitCorpus(corpus.length);
      const shards = shardRanges(train, 2);
      const val = validationBatches(corpus, validation, CFG.context, 8, 2);
      const ef = shards.map(() => new ErrorFeedback(theta.length));
      const tr = await Trainer.create(ctx, CFG, theta);
      try {
        const before = await meanLoss(tr, val);
        for (let round = 0; round < 3; round++) {
          const frames: Uint8Array[] = [];
          for (const [m, shard] of shards.entries()) {
            const optimizer = { ...DEFAULT_INNER, lr: 1e-2 };
            const r = await innerLoop(tr, theta, corpus, {
              steps: 6,
              sequences: 4,
              optimizer,
              shard,
              seed: round * 16 + m,
            });
            frames.push((ef[m] as ErrorFeedback).encode(r.delta, { codec: 'int8' }));
          }
          ({ theta, momentum } = outerStep(theta, momentum, averageFrames(frames, theta.length), {
            lr: 0.7,
            momentum: 0.9,
          }));
        }
        await tr.setTheta(theta);
        const after = await meanLoss(tr, val);
        expect(before).toBeGreaterThan(5);
        expect(after).toBeLessThan(before - 1);
      } finally {
        tr.destroy();
      }
    });
  }, 120_000);
});
