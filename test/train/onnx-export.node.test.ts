// The exported ONNX transformer run by real onnxruntime-web (its Node build, wasm EP, one
// thread) against the Trainer's forward on Dawn and the float64 reference, on the same θ.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isHearthError } from '../../src/core/errors.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { assertClose, type Tolerance } from '../../src/kernels/selftest/harness.ts';
import { acquireDawn } from '../../src/node/dawn.ts';
import { loadOrt } from '../../src/onnx/ort.ts';
import { initParams, seededRandom, type TransformerConfig } from '../../src/train/config.ts';
import { exportTransformerOnnx } from '../../src/train/onnx-export.ts';
import { Trainer } from '../../src/train/trainer.ts';
import { inErrorScope } from './gpu-scope.ts';
import { transformerLogits64 } from './reference64.ts';

/**
 * ORT (f32, its own summation order and tanh) against the GPU's f32 forward and the float64
 * reference: logits are O(1) and the f32 paths differ by ~1e-6 (measured), so 1e-4 is a wide
 * margin that still catches any wrong formula (a missing scale or ε moves logits by ≥ 1e-2).
 */
const ORT_TOL: Tolerance = { atol: 1e-4, rtol: 1e-4 };

const CFG: TransformerConfig = {
  kind: 'transformer',
  width: 16,
  depth: 2,
  heads: 2,
  context: 8,
  mlpRatio: 2,
};

let ctx: GpuContext;
const uncaptured: string[] = [];
let tr: Trainer;
const r0 = seededRandom(21);
// θ₀ plus noise: layernorm gains and biases away from 1 and 0, logits spread out.
const theta = initParams(CFG, 20).map((x) => x + 0.3 * (2 * r0() - 1));
beforeAll(async () => {
  ctx = await acquireDawn({ onUncapturedError: (e) => uncaptured.push(e.message) });
  ctx.pool.poison = true;
  tr = await Trainer.create(ctx, CFG, theta);
});
afterAll(() => {
  tr?.destroy();
  ctx?.destroy();
});

async function runOrt(model: Uint8Array, ids: Int32Array, dims: [number, number]) {
  const ort = await loadOrt();
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'] });
  try {
    const out = await session.run({ tokens: new ort.Tensor('int32', ids, dims) });
    const logits = out.logits;
    if (!logits) throw new Error('the session returned no "logits"');
    return { data: logits.data as Float32Array, dims: logits.dims };
  } finally {
    await session.release();
  }
}

function randomIds(n: number, seed: number): Int32Array {
  const r = seededRandom(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * 256));
}

describe('ONNX export of the transformer', () => {
  it('onnxruntime-web (wasm) gives the Trainer’s Dawn logits and the float64 logits, batch 2 × context', async () => {
    const model = exportTransformerOnnx(CFG, theta);
    const ids = randomIds(2 * CFG.context, 22);
    const ort = await runOrt(model, ids, [2, CFG.context]);
    expect(ort.dims).toEqual([2, CFG.context, 256]);
    expect(ort.data).toBeInstanceOf(Float32Array);
    const gpu = await inErrorScope(ctx, uncaptured, () => tr.logits(ids));
    const vsGpu = assertClose(ort.data, gpu, ORT_TOL, 'ORT logits vs Dawn logits');
    const vs64 = assertClose(
      ort.data,
      transformerLogits64(CFG, theta, ids),
      ORT_TOL,
      'ORT logits vs float64',
    );
    console.log(`ORT vs Dawn: max |err| ${vsGpu.toExponential(2)}; ORT vs float64: ${vs64.toExponential(2)}`);
  });

  it('T is symbolic: 3 sequences of 5 tokens give the first 5 positions of the padded windows', async () => {
    const model = exportTransformerOnnx(CFG, theta);
    const B = 3;
    const T = 5;
    const ids = randomIds(B * T, 23);
    const ort = await runOrt(model, ids, [B, T]);
    expect(ort.dims).toEqual([B, T, 256]);
    // Causal attention: positions < T of a window padded to the context see only these tokens.
    const padded = new Int32Array(B * CFG.context);
    for (let b = 0; b < B; b++) padded.set(ids.subarray(b * T, (b + 1) * T), b * CFG.context);
    const gpu = await inErrorScope(ctx, uncaptured, () => tr.logits(padded));
    const want = new Float32Array(B * T * 256);
    for (let b = 0; b < B; b++)
      want.set(gpu.subarray(b * CFG.context * 256, (b * CFG.context + T) * 256), b * T * 256);
    const worst = assertClose(ort.data, want, ORT_TOL, 'ORT logits (T = 5) vs Dawn');
    console.log(`T = 5: ORT vs Dawn max |err| ${worst.toExponential(2)}`);
  });

  it('T past the context fails in onnxruntime rather than reading past wpe', async () => {
    const model = exportTransformerOnnx(CFG, theta);
    // wpe is sliced to at most `context` rows, so adding it to T > context embeddings cannot broadcast.
    await expect(runOrt(model, randomIds(CFG.context + 1, 24), [1, CFG.context + 1])).rejects.toThrow(
      /x0|broadcast/i,
    );
  });

  it('refuses a config that is not a transformer, and a θ of the wrong length', () => {
    const codeOf = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return isHearthError(e) ? e.code : `not a HearthError: ${e}`;
      }
      return 'no error';
    };
    const mlp = { kind: 'mlp', inputs: 2, hidden: [], classes: 2 } as unknown as TransformerConfig;
    expect(codeOf(() => exportTransformerOnnx(mlp, new Float32Array(6)))).toBe('train/config');
    expect(codeOf(() => exportTransformerOnnx(CFG, theta.subarray(1)))).toBe('train/layout');
    expect(
      codeOf(() => exportTransformerOnnx(CFG, Float64Array.from(theta) as unknown as Float32Array)),
    ).toBe('train/layout');
  });
});
