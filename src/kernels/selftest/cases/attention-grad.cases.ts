import { causalAttention } from '../../../kernels/attention.ts';
import { causalAttentionBackward } from '../../../kernels/attention-grad.ts';
import {
  assertClose,
  assertDeterministic,
  assertRejects,
  type KernelCase,
  randn,
  runKernel,
  type Tolerance,
} from '../harness.ts';
import { causalAttentionBackwardRef } from '../reference-attention.ts';

/**
 * f32: each gradient element is a sum over up to T terms of products of a recomputed
 * probability (error ~1e-7 relative) with D-term dot products of values in [-1, 1]; over T ≤ 70
 * and D ≤ 40 the worst error seen on SwiftShader is a few 1e-7, under these bounds by 10×.
 */
const ATTN_GRAD_F32: Tolerance = { rtol: 1e-4, atol: 5e-6 };

interface Attn {
  B: number;
  H: number;
  T: number;
  D: number;
  scale?: number;
}

async function runGrad(ctx: Parameters<KernelCase['run']>[0], c: Attn, seed: number) {
  const n = c.B * c.H * c.T * c.D;
  const shape = [c.B, c.H, c.T, c.D];
  const q = randn(seed, n);
  const k = randn(seed + 1, n);
  const v = randn(seed + 2, n);
  const dO = randn(seed + 3, n);
  const opts = c.scale === undefined ? {} : { scale: c.scale };
  const { outputs } = await runKernel(
    ctx,
    [
      { data: q, shape },
      { data: k, shape },
      { data: v, shape },
      { data: dO, shape },
    ],
    async (rec, qt, kt, vt, gt) => {
      const o = await causalAttention(rec, qt, kt, vt, opts);
      rec.releaseAfterSubmit(o.buffer);
      const g = await causalAttentionBackward(rec, qt, kt, vt, o, gt, opts);
      return [g.dq, g.dk, g.dv];
    },
  );
  return { outputs, q, k, v, dO };
}

function gradCase(name: string, c: Attn, seed: number): KernelCase {
  return {
    name: `attention backward ${name}`,
    async run(ctx) {
      const { outputs, q, k, v, dO } = await runGrad(ctx, c, seed);
      const want = causalAttentionBackwardRef(q, k, v, dO, c);
      assertClose(outputs[0] as Float32Array, want.dq, ATTN_GRAD_F32, `attention backward ${name}: dq`);
      assertClose(outputs[1] as Float32Array, want.dk, ATTN_GRAD_F32, `attention backward ${name}: dk`);
      assertClose(outputs[2] as Float32Array, want.dv, ATTN_GRAD_F32, `attention backward ${name}: dv`);
    },
  };
}

export const cases: KernelCase[] = [
  gradCase('T=1 1×1×1×8', { B: 1, H: 1, T: 1, D: 8 }, 300),
  gradCase('D odd 1×2×13×7', { B: 1, H: 2, T: 13, D: 7 }, 301),
  gradCase('B,H>1 2×2×19×16', { B: 2, H: 2, T: 19, D: 16 }, 302),
  gradCase('past a workgroup 1×1×70×12, scale 0.5', { B: 1, H: 1, T: 70, D: 12, scale: 0.5 }, 303),
  {
    name: 'attention backward is bit-identical across runs',
    async run(ctx) {
      const c = { B: 1, H: 2, T: 33, D: 16 };
      await assertDeterministic(
        async () => (await runGrad(ctx, c, 310)).outputs,
        'attention backward 1×2×33×16',
      );
    },
  },
  {
    name: 'attention backward rejects dO of another shape',
    async run(ctx) {
      const s = [1, 1, 4, 8];
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 32), shape: s },
              { data: randn(2, 32), shape: s },
              { data: randn(3, 32), shape: s },
              { data: randn(4, 32), shape: s },
              { data: randn(5, 24), shape: [1, 1, 3, 8] },
            ],
            async (rec, q, k, v, o, g) => {
              const r = await causalAttentionBackward(rec, q, k, v, o, g);
              return [r.dq, r.dk, r.dv];
            },
          ),
        'tensor/shape',
        ['dO must have the shape of q', '[1, 1, 3, 8]'],
        'attention backward dO shape',
      );
    },
  },
];
