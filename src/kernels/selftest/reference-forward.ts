// Float64 references for the forward kernels (elementwise, reduce, softmax, layernorm,
// transpose): plain loops, written for clarity, not speed.
//
// Element reads in the loops are `x[i] as number`: each function first checks (expectLength) that
// its inputs are as long as the sizes it is given say, so every index the loops form is in range.
import { at, expectLength } from '../../core/at.ts';
import { type Act, act } from './reference.ts';

/** a ∘ b with b repeating along a's leading dimensions (b.length divides a.length). */
export function binaryRef(a: ArrayLike<number>, b: ArrayLike<number>, op: 'add' | 'mul'): Float64Array {
  if (a.length > 0) expectLength(b, 1, 'binaryRef: b');
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i % b.length] as number;
    out[i] = op === 'add' ? x + y : x * y;
  }
  return out;
}

export function unaryRef(x: ArrayLike<number>, f: (v: number) => number): Float64Array {
  return Float64Array.from(x, f);
}

export function actRef(x: ArrayLike<number>, a: Act): Float64Array {
  return unaryRef(x, (v) => act(v, a));
}

/** Sum, max or mean along `axis` of a tensor of `shape`. */
export function reduceRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  axis: number,
  op: 'sum' | 'max' | 'mean',
): Float64Array {
  const ax = axis < 0 ? axis + shape.length : axis;
  const outer = shape.slice(0, ax).reduce((u, v) => u * v, 1);
  const n = at(shape, ax, 'reduceRef: shape');
  const inner = shape.slice(ax + 1).reduce((u, v) => u * v, 1);
  expectLength(x, outer * n * inner, 'reduceRef: x');
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = op === 'max' ? Number.NEGATIVE_INFINITY : 0;
      for (let k = 0; k < n; k++) {
        const v = x[(o * n + k) * inner + i] as number;
        acc = op === 'max' ? Math.max(acc, v) : acc + v;
      }
      out[o * inner + i] = op === 'mean' ? acc / n : acc;
    }
  }
  return out;
}

/** Softmax of each row of C elements. */
export function softmaxRef(x: ArrayLike<number>, C: number): Float64Array {
  expectLength(x, Math.ceil(x.length / C) * C, 'softmaxRef: x (whole rows of C)');
  const out = new Float64Array(x.length);
  for (let r = 0; r * C < x.length; r++) {
    let m = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < C; k++) m = Math.max(m, x[r * C + k] as number);
    let s = 0;
    for (let k = 0; k < C; k++) s += Math.exp((x[r * C + k] as number) - m);
    for (let k = 0; k < C; k++) out[r * C + k] = Math.exp((x[r * C + k] as number) - m) / s;
  }
  return out;
}

/** Layer norm of each row of C elements (biased variance), with each row's mean and rstd. */
export function layernormRef(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  C: number,
  eps: number,
): { y: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const rows = x.length / C;
  expectLength(x, Math.ceil(rows) * C, 'layernormRef: x (whole rows of C)');
  expectLength(gamma, C, 'layernormRef: gamma');
  expectLength(beta, C, 'layernormRef: beta');
  const y = new Float64Array(x.length);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = 0; k < C; k++) s += x[r * C + k] as number;
    const mu = s / C;
    let q = 0;
    for (let k = 0; k < C; k++) q += ((x[r * C + k] as number) - mu) ** 2;
    const rs = 1 / Math.sqrt(q / C + eps);
    for (let k = 0; k < C; k++) {
      y[r * C + k] = ((x[r * C + k] as number) - mu) * rs * (gamma[k] as number) + (beta[k] as number);
    }
    mean[r] = mu;
    rstd[r] = rs;
  }
  return { y, mean, rstd };
}

/** x of `shape` with its axes permuted: output axis i is input axis perm[i]. */
export function transposeRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  perm: readonly number[],
): Float64Array {
  const rank = shape.length;
  expectLength(perm, rank, 'transposeRef: perm');
  expectLength(
    x,
    shape.reduce((u, v) => u * v, 1),
    'transposeRef: x',
  );
  const inStride = new Array<number>(rank);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    inStride[d] = s;
    s *= shape[d] as number;
  }
  const outShape = perm.map((a) => at(shape, a, 'transposeRef: shape'));
  // The input stride of each output axis, and the output's index counter (last axis fastest).
  const outStride = perm.map((a) => at(inStride, a, 'transposeRef: strides'));
  const out = new Float64Array(x.length);
  const idx = new Array<number>(rank).fill(0);
  for (let i = 0; i < x.length; i++) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += (idx[d] as number) * (outStride[d] as number);
    out[i] = x[src] as number;
    for (let d = rank - 1; d >= 0; d--) {
      const next = (idx[d] as number) + 1;
      if (next < (outShape[d] as number)) {
        idx[d] = next;
        break;
      }
      idx[d] = 0;
    }
  }
  return out;
}
