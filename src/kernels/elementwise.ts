import elementwiseWgsl from '../../shaders/elementwise.wgsl?raw';
import { HearthError } from '../core/errors.ts';
import { shapeToString } from '../core/tensor.ts';
import { grid1d, type Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import { floatDType, kernelPipeline, shapeError, uniforms } from './common.ts';

/** The shader's OP codes. */
const OP = { add: 0, mul: 1, scale: 2, relu: 3, gelu: 4, silu: 5 } as const;
type Op = keyof typeof OP;

const WG = 256;

export interface ElementwiseOptions {
  /** Label of the output buffer. */
  readonly label?: string;
}

async function run(
  rec: Recorder,
  op: Op,
  x: GpuTensor,
  b: GpuTensor | null,
  s: number,
  label: string | undefined,
): Promise<GpuTensor> {
  const ctx = rec.ctx;
  const dtype = b ? floatDType(op, x, b) : floatDType(op, x);
  const out = emptyTensor(ctx, x.shape, dtype, label ?? `${op}.out`);
  const n = x.numel;
  if (n === 0) return out;
  const pipeline = await kernelPipeline(ctx, 'elementwise', elementwiseWgsl, dtype, { OP: OP[op] });
  rec.dispatch({
    pipeline,
    uniforms: uniforms([n, b ? b.numel : n, { f: s }, 0]),
    // Unary ops still have b's binding in the layout: x stands in and is never read.
    buffers: [x.buffer, (b ?? x).buffer, out.buffer],
    workgroups: grid1d(ctx, Math.ceil(n / WG)),
  });
  return out;
}

function checkBroadcast(op: Op, a: GpuTensor, b: GpuTensor): void {
  const ar = a.shape.length;
  const br = b.shape.length;
  if (br > ar || b.shape.some((d, i) => d !== a.shape[ar - br + i])) {
    throw shapeError(
      op,
      `b ${shapeToString(b.shape)} must equal a's shape ${shapeToString(a.shape)} or a trailing part of it (b broadcasts along a's leading dimensions).`,
      { a: a.shape, b: b.shape },
    );
  }
}

/**
 * a + b elementwise. b has a's shape, or a trailing part of it and broadcasts along a's leading
 * dimensions (a [B, T, C] + b [C]). Returns a new tensor of a's shape.
 *
 * @example
 * const h = await add(rec, x, bias); // x [B, T, C], bias [C]
 */
export function add(
  rec: Recorder,
  a: GpuTensor,
  b: GpuTensor,
  opts: ElementwiseOptions = {},
): Promise<GpuTensor> {
  checkBroadcast('add', a, b);
  return run(rec, 'add', a, b, 0, opts.label);
}

/**
 * a · b elementwise, with b broadcast like {@link add}.
 *
 * @example
 * const y = await mul(rec, x, mask); // x [B, T, C], mask [T, C]
 */
export function mul(
  rec: Recorder,
  a: GpuTensor,
  b: GpuTensor,
  opts: ElementwiseOptions = {},
): Promise<GpuTensor> {
  checkBroadcast('mul', a, b);
  return run(rec, 'mul', a, b, 0, opts.label);
}

/**
 * x · s for a finite number s (rounded to f32).
 *
 * @example
 * const y = await scale(rec, x, 1 / Math.sqrt(headDim));
 */
export function scale(
  rec: Recorder,
  x: GpuTensor,
  s: number,
  opts: ElementwiseOptions = {},
): Promise<GpuTensor> {
  if (typeof s !== 'number' || !Number.isFinite(s)) {
    throw new HearthError('input/invalid', `scale: the factor must be a finite number, got ${s}.`, {
      details: { kernel: 'scale', s },
    });
  }
  return run(rec, 'scale', x, null, s, opts.label);
}

/**
 * max(x, 0) elementwise.
 *
 * @example
 * const y = await relu(rec, x);
 */
export function relu(rec: Recorder, x: GpuTensor, opts: ElementwiseOptions = {}): Promise<GpuTensor> {
  return run(rec, 'relu', x, null, 0, opts.label);
}

/**
 * GELU, tanh form (GPT-2's): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), the tanh argument
 * clamped to ±15 exactly as in matmul's epilogue.
 *
 * @example
 * const y = await gelu(rec, x);
 */
export function gelu(rec: Recorder, x: GpuTensor, opts: ElementwiseOptions = {}): Promise<GpuTensor> {
  return run(rec, 'gelu', x, null, 0, opts.label);
}

/**
 * SiLU (swish): x / (1 + e^−x).
 *
 * @example
 * const y = await silu(rec, x);
 */
export function silu(rec: Recorder, x: GpuTensor, opts: ElementwiseOptions = {}): Promise<GpuTensor> {
  return run(rec, 'silu', x, null, 0, opts.label);
}
