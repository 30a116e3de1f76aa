// The models' GPU loss and gradient against float64 references of the same models: the loss
// directly, the gradient against central differences of the float64 loss at every parameter.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { assertClose, type Tolerance } from '../../src/kernels/selftest/harness.ts';
import { acquireDawn } from '../../src/node/dawn.ts';
import { initParams, type MlpConfig, seededRandom, type TransformerConfig } from '../../src/train/config.ts';
import { type Batch, Trainer } from '../../src/train/trainer.ts';
import { inErrorScope } from './gpu-scope.ts';
import { centralDifferences, mlpLoss64, transformerLoss64 } from './reference64.ts';

/** The GPU loss is f32 arithmetic over a few hundred terms per row: relative 1e-5 is 10× what it shows. */
const LOSS_TOL = 1e-5;
/**
 * Gradients: f32 forward and backward against f64 central differences (h = 1e-5, truncation
 * error ~h² · f‴ ≈ 1e-10): the error is f32 rounding, a few 1e-7 relative to the largest
 * gradient; atol is 1e-4 of the largest |gradient|, rtol 1e-3.
 */
const gradTol = (g: Float64Array): Tolerance => {
  let max = 0;
  for (const x of g) max = Math.max(max, Math.abs(x));
  return { rtol: 1e-3, atol: 1e-4 * max };
};

let ctx: GpuContext;
const uncaptured: string[] = [];
beforeAll(async () => {
  ctx = await acquireDawn({ onUncapturedError: (e) => uncaptured.push(e.message) });
});
afterAll(() => ctx?.destroy());

/** θ₀ plus uniform noise, so that no gradient is degenerate (layernorm gains away from 1, …). */
function noisyTheta(t: Float32Array, seed: number, amp: number): Float32Array {
  const r = seededRandom(seed);
  return t.map((x) => x + amp * (2 * r() - 1));
}

async function gpuLossAndGrad(cfg: TransformerConfig | MlpConfig, theta: Float32Array, batch: Batch) {
  return inErrorScope(ctx, uncaptured, async () => {
    const tr = await Trainer.create(ctx, cfg, theta);
    try {
      const loss = await tr.lossAndGrad(batch);
      return { loss, grad: await tr.readGrad() };
    } finally {
      tr.destroy();
    }
  });
}

describe('train/ gradients on Dawn', () => {
  it('transformer (C=8, L=2, H=2, T=6, 2 sequences): loss and every gradient element match float64', async () => {
    const cfg: TransformerConfig = {
      kind: 'transformer',
      width: 8,
      depth: 2,
      heads: 2,
      context: 6,
      mlpRatio: 2,
    };
    const theta = noisyTheta(initParams(cfg, 1), 2, 0.2);
    const r = seededRandom(3);
    const tokens = Int32Array.from({ length: 12 }, () => 97 + Math.floor(r() * 8));
    const targets = Int32Array.from({ length: 12 }, () => 97 + Math.floor(r() * 8));
    const { loss, grad } = await gpuLossAndGrad(cfg, theta, { inputs: tokens, targets });
    const want = transformerLoss64(cfg, theta, tokens, targets);
    expect(Math.abs(loss - want)).toBeLessThanOrEqual(LOSS_TOL * want);
    const fd = centralDifferences(theta, (t) => transformerLoss64(cfg, t, tokens, targets));
    assertClose(grad, fd, gradTol(fd), 'transformer gradient vs float64 central differences');
  }, 120_000);

  it('MLP classifier (5 → 7 → 6 → 3, 9 rows): loss and every gradient element match float64', async () => {
    const cfg: MlpConfig = { kind: 'mlp', inputs: 5, hidden: [7, 6], classes: 3 };
    const theta = noisyTheta(initParams(cfg, 4), 5, 0.1);
    const r = seededRandom(6);
    const features = Float32Array.from({ length: 45 }, () => 2 * r() - 1);
    const targets = Int32Array.from({ length: 9 }, () => Math.floor(r() * 3));
    const { loss, grad } = await gpuLossAndGrad(cfg, theta, { inputs: features, targets });
    const want = mlpLoss64(cfg, theta, features, targets);
    expect(Math.abs(loss - want)).toBeLessThanOrEqual(LOSS_TOL * want);
    const fd = centralDifferences(theta, (t) => mlpLoss64(cfg, t, features, targets));
    assertClose(grad, fd, gradTol(fd), 'MLP gradient vs float64 central differences');
  }, 60_000);
});
