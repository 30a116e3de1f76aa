import reduceWgsl from '../../shaders/reduce.wgsl?raw';
import { at } from '../core/at.ts';
import { HearthError } from '../core/errors.ts';
import { shapeToString } from '../core/tensor.ts';
import { grid1d, type Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor } from '../gpu/tensor.ts';
import { floatDType, kernelPipeline, shapeError, uniforms } from './common.ts';

export type ReduceOp = 'sum' | 'max' | 'mean';
const OP_CODE: Record<ReduceOp, number> = { sum: 0, max: 1, mean: 2 };

export interface ReduceOptions {
  readonly op: ReduceOp;
  /** The axis to reduce; negative counts from the end (-1 is the last). */
  readonly axis: number;
  /** Label of the output buffer. */
  readonly label?: string;
}

const WG = 256;

function pow2AtLeast(v: number): number {
  let p = 1;
  while (p < v && p < WG) p *= 2;
  return p;
}

/**
 * How one workgroup splits its 256 invocations: `cols` adjacent outputs, each folded by `ks`
 * invocations. A short axis leaves invocations to spare for more columns; at least 16 columns
 * (where there are that many) keep a workgroup's loads of a strided axis adjacent. A function of
 * the shape only, so a shape always reduces in the same order.
 */
function reduceLayout(n: number, inner: number): { cols: number; ks: number } {
  const cols = Math.min(pow2AtLeast(inner), Math.max(16, WG / pow2AtLeast(n)));
  return { cols, ks: WG / cols };
}

/**
 * Sum, max or mean of x along one axis; returns a new tensor with that axis removed. Any axis
 * works: x is viewed as [outer, n, inner]. Deterministic: a fixed-order tree reduction, so the
 * same inputs give the same bits on every run.
 *
 * @example
 * const colSums = await reduce(rec, x, { op: 'sum', axis: 0 }); // x [R, C] → [C]
 */
export async function reduce(rec: Recorder, x: GpuTensor, opts: ReduceOptions): Promise<GpuTensor> {
  const ctx = rec.ctx;
  const dtype = floatDType('reduce', x);
  const rank = x.shape.length;
  const { axis: given, op } = opts;
  if (!Object.hasOwn(OP_CODE, op)) {
    throw new HearthError('input/invalid', `reduce: unknown op "${op}"; use sum, max or mean.`, {
      details: { kernel: 'reduce', op },
    });
  }
  if (!Number.isInteger(given) || given < -rank || given >= rank) {
    throw shapeError(
      'reduce',
      `axis ${given} is out of range for a tensor of shape ${shapeToString(x.shape)} (rank ${rank}); use an integer in [${-rank}, ${rank - 1}].`,
      { axis: given, shape: x.shape },
    );
  }
  const axis = given < 0 ? given + rank : given;
  const n = at(x.shape, axis, 'x shape'); // axis checked above
  if (n === 0 && op !== 'sum') {
    throw shapeError(
      'reduce',
      `${op} over axis ${axis} of ${shapeToString(x.shape)}, which is empty, is undefined.`,
      {
        axis,
        shape: x.shape,
      },
    );
  }
  const outer = x.shape.slice(0, axis).reduce((u, v) => u * v, 1);
  const inner = x.shape.slice(axis + 1).reduce((u, v) => u * v, 1);
  const outShape = [...x.shape.slice(0, axis), ...x.shape.slice(axis + 1)];
  const out = emptyTensor(ctx, outShape, dtype, opts.label ?? `reduce.${op}.out`);
  if (outer * inner === 0) return out;
  const { cols, ks } = reduceLayout(n, inner);
  const colBlocks = Math.ceil(inner / cols);
  const pipeline = await kernelPipeline(ctx, 'reduce', reduceWgsl, dtype, { OP: OP_CODE[op] });
  rec.dispatch({
    pipeline,
    uniforms: uniforms([outer, n, inner, colBlocks, cols, ks, 0, 0]),
    buffers: [x.buffer, out.buffer],
    workgroups: grid1d(ctx, outer * colBlocks),
  });
  return out;
}
