import { at } from '../../../core/at.ts';
import { fromF16Array, toF16Array } from '../../../core/f16.ts';
import type { Recorder } from '../../../gpu/recorder.ts';
import type { GpuTensor } from '../../../gpu/tensor.ts';
import { add, gelu, mul, relu, scale, silu } from '../../../kernels/elementwise.ts';
import {
  assertClose,
  assertDeterministic,
  assertRejects,
  assertShape,
  type KernelCase,
  randn,
  runKernel,
  type Tolerance,
} from '../harness.ts';
import type { Act } from '../reference.ts';
import { actRef, binaryRef, unaryRef } from '../reference-forward.ts';

/** One f32 rounding of an exact sum or product of f32 values: half an ulp, 6e-8 relative. */
const ARITH_F32: Tolerance = { rtol: 2e-7, atol: 0 };
/** exp and tanh are not correctly rounded in WGSL (a few ulp); cancellation near 0 in gelu. */
const ACTIVATION_F32: Tolerance = { rtol: 1e-5, atol: 5e-6 };
/** f16 storage: inputs are exact f16 values, the output is rounded to 11 bits. */
const ELEMENTWISE_F16: Tolerance = { rtol: 1e-3, atol: 1e-4 };

const prod = (s: readonly number[]) => s.reduce((u, v) => u * v, 1);

function binaryCase(op: 'add' | 'mul', aShape: number[], bShape: number[], seed: number): KernelCase {
  const fn = op === 'add' ? add : mul;
  return {
    name: `${op} ${aShape.join('×')} ∘ ${bShape.join('×') || 'scalar'}`,
    async run(ctx) {
      const A = randn(seed, prod(aShape), -4, 4);
      const B = randn(seed + 1, prod(bShape), -4, 4);
      const { outputs } = await runKernel(
        ctx,
        [
          { data: A, shape: aShape },
          { data: B, shape: bShape },
        ],
        async (rec, a, b) => {
          const y = await fn(rec, a, b);
          assertShape(y, aShape, op);
          return y;
        },
      );
      assertClose(outputs[0] as Float32Array, binaryRef(A, B, op), ARITH_F32, `${op} ${aShape}`);
    },
  };
}

const ACT: Record<Exclude<Act, 'none'>, (rec: Recorder, x: GpuTensor) => Promise<GpuTensor>> = {
  relu,
  gelu,
  silu,
};

function activationCase(a: Exclude<Act, 'none'>, shape: number[], seed: number): KernelCase {
  return {
    name: `${a} ${shape.join('×')}`,
    async run(ctx) {
      // Wide range: gelu's tanh argument passes its ±15 clamp, silu's exp(−x) gets large.
      const X = randn(seed, prod(shape), -12, 12);
      const { outputs } = await runKernel(ctx, [{ data: X, shape }], (rec, x) => ACT[a](rec, x));
      assertClose(outputs[0] as Float32Array, actRef(X, a), ACTIVATION_F32, `${a} ${shape}`);
    },
  };
}

export const cases: KernelCase[] = [
  binaryCase('add', [1], [1], 1),
  binaryCase('add', [67, 45], [67, 45], 2),
  binaryCase('add', [3, 5, 37], [37], 3),
  binaryCase('add', [2, 3, 7, 11], [7, 11], 4),
  binaryCase('add', [5, 3], [], 5),
  binaryCase('mul', [257], [257], 6),
  binaryCase('mul', [4, 33], [33], 7),
  binaryCase('mul', [3, 2, 129], [2, 129], 8),
  {
    name: 'scale 3×1000 by −0.37',
    async run(ctx) {
      const X = randn(10, 3000, -4, 4);
      const s = -0.37;
      const { outputs } = await runKernel(ctx, [{ data: X, shape: [3, 1000] }], (rec, x) => scale(rec, x, s));
      const sf = Math.fround(s);
      assertClose(
        outputs[0] as Float32Array,
        unaryRef(X, (v) => v * sf),
        ARITH_F32,
        'scale',
      );
    },
  },
  activationCase('relu', [1], 11),
  activationCase('relu', [5, 77], 12),
  activationCase('gelu', [5, 77], 13),
  activationCase('gelu', [3, 2, 131], 14),
  activationCase('silu', [5, 77], 15),
  activationCase('silu', [1001], 16),
  {
    name: 'elementwise ops chain in one recording (add, scale, gelu)',
    async run(ctx) {
      const X = randn(17, 6 * 50, -3, 3);
      const B = randn(18, 50, -3, 3);
      const { outputs } = await runKernel(
        ctx,
        [
          { data: X, shape: [6, 50] },
          { data: B, shape: [50] },
        ],
        async (rec, x, b) => {
          const h = await add(rec, x, b);
          const s = await scale(rec, h, 0.5);
          const y = await gelu(rec, s);
          // The intermediates are still in the recording: their buffers go back after submit.
          rec.releaseAfterSubmit(h.buffer);
          rec.releaseAfterSubmit(s.buffer);
          return y;
        },
      );
      const want = actRef(
        unaryRef(binaryRef(X, B, 'add'), (v) => Math.fround(v) * 0.5),
        'gelu',
      );
      assertClose(outputs[0] as Float32Array, want, ACTIVATION_F32, 'add→scale→gelu');
    },
  },
  {
    name: 'elementwise is bit-identical across runs',
    async run(ctx) {
      const X = randn(19, 3 * 3000, -6, 6);
      const B = randn(20, 3000);
      await assertDeterministic(
        async () =>
          (
            await runKernel(
              ctx,
              [
                { data: X, shape: [3, 3000] },
                { data: B, shape: [3000] },
              ],
              async (rec, x, b) => [await mul(rec, x, b), await silu(rec, x)],
            )
          ).outputs,
        'mul and silu 3×3000',
      );
    },
  },
  {
    name: 'add rejects shapes that do not broadcast',
    async run(ctx) {
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(1, 6), shape: [2, 3] },
              { data: randn(2, 2), shape: [2] },
            ],
            (rec, a, b) => add(rec, a, b),
          ),
        'tensor/shape',
        ['add', 'b [2]', "a's shape [2, 3]", 'trailing part'],
        'add [2,3] + [2]',
      );
      await assertRejects(
        () =>
          runKernel(
            ctx,
            [
              { data: randn(3, 3), shape: [3] },
              { data: randn(4, 6), shape: [2, 3] },
            ],
            (rec, a, b) => mul(rec, a, b),
          ),
        'tensor/shape',
        ['mul', 'b [2, 3]', '[3]'],
        'mul [3] · [2,3]',
      );
    },
  },
  {
    name: 'elementwise f16 (shader-f16)',
    async run(ctx) {
      if (!ctx.features.shaderF16) return { skip: `adapter "${ctx.adapter.summary}" has no shader-f16` };
      const X = toF16Array(randn(30, 7 * 37, -4, 4));
      const B = toF16Array(randn(31, 37, -4, 4));
      const { outputs } = await runKernel(
        ctx,
        [
          { data: X, shape: [7, 37] },
          { data: B, shape: [37] },
        ],
        async (rec, x, b) => [await add(rec, x, b), await gelu(rec, x), await scale(rec, x, 3)],
      );
      const x = fromF16Array(X);
      const b = fromF16Array(B);
      const got = outputs.map((o) => fromF16Array(o as Uint16Array));
      assertClose(at(got, 0, 'outputs'), binaryRef(x, b, 'add'), ELEMENTWISE_F16, 'add f16');
      assertClose(at(got, 1, 'outputs'), actRef(x, 'gelu'), ELEMENTWISE_F16, 'gelu f16');
      assertClose(
        at(got, 2, 'outputs'),
        unaryRef(x, (v) => v * 3),
        ELEMENTWISE_F16,
        'scale f16',
      );
    },
  },
];
