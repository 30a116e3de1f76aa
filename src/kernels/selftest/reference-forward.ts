// Float64 references for the forward kernels (elementwise, reduce, softmax, layernorm,
// transpose): plain loops, written for clarity, not speed.
import { type Act, act } from './reference.ts';

/** a ∘ b with b repeating along a's leading dimensions (b.length divides a.length). */
export function binaryRef(a: ArrayLike<number>, b: ArrayLike<number>, op: 'add' | 'mul'): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const y = b[i % b.length]!;
    out[i] = op === 'add' ? a[i]! + y : a[i]! * y;
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
  const n = shape[ax]!;
  const inner = shape.slice(ax + 1).reduce((u, v) => u * v, 1);
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = op === 'max' ? Number.NEGATIVE_INFINITY : 0;
      for (let k = 0; k < n; k++) {
        const v = x[(o * n + k) * inner + i]!;
        acc = op === 'max' ? Math.max(acc, v) : acc + v;
      }
      out[o * inner + i] = op === 'mean' ? acc / n : acc;
    }
  }
  return out;
}

/** Softmax of each row of C elements. */
export function softmaxRef(x: ArrayLike<number>, C: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r * C < x.length; r++) {
    let m = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < C; k++) m = Math.max(m, x[r * C + k]!);
    let s = 0;
    for (let k = 0; k < C; k++) s += Math.exp(x[r * C + k]! - m);
    for (let k = 0; k < C; k++) out[r * C + k] = Math.exp(x[r * C + k]! - m) / s;
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
  const y = new Float64Array(x.length);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = 0; k < C; k++) s += x[r * C + k]!;
    const mu = s / C;
    let q = 0;
    for (let k = 0; k < C; k++) q += (x[r * C + k]! - mu) ** 2;
    const rs = 1 / Math.sqrt(q / C + eps);
    for (let k = 0; k < C; k++) y[r * C + k] = (x[r * C + k]! - mu) * rs * gamma[k]! + beta[k]!;
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
  const inStride = new Array<number>(rank);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    inStride[d] = s;
    s *= shape[d]!;
  }
  const outShape = perm.map((a) => shape[a]!);
  const out = new Float64Array(x.length);
  const idx = new Array<number>(rank).fill(0);
  for (let i = 0; i < x.length; i++) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += idx[d]! * inStride[perm[d]!]!;
    out[i] = x[src]!;
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < outShape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}
