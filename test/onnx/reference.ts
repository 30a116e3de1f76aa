// Float64 references for the test models, written as plain loops for clarity, plus the seeded
// generator and the comparison the ONNX tests use.

/** Mulberry32: a small seeded generator, so every run draws the same "random" numbers. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi), rounded to f32. */
export function uniform(seed: number, n: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

export interface Tolerance {
  readonly rtol: number;
  readonly atol: number;
}

/**
 * Throws unless |got − want| ≤ atol + rtol·|want| everywhere and the lengths match. A NaN or an
 * infinity in `got` always fails, whatever `want` holds. Returns the worst absolute error.
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance,
  what: string,
): number {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length}, expected ${want.length}`);
  const bad: string[] = [];
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const err = Math.abs(g - w);
    if (!Number.isFinite(g) || !(err <= tol.atol + tol.rtol * Math.abs(w))) {
      if (bad.length < 5) bad.push(`[${i}] got ${g}, want ${w}`);
      worst = Number.POSITIVE_INFINITY;
    } else {
      worst = Math.max(worst, err);
    }
  }
  if (bad.length)
    throw new Error(`${what}: mismatch (rtol ${tol.rtol}, atol ${tol.atol}): ${bad.join('; ')}`);
  return worst;
}

/** C[M×N] = A[M×K]·B[K×N] (+ bias[N]). */
export function matmul(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  M: number,
  K: number,
  N: number,
  bias?: ArrayLike<number>,
): Float64Array {
  const C = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n]! : 0;
      for (let k = 0; k < K; k++) s += A[m * K + k]! * B[k * N + n]!;
      C[m * N + n] = s;
    }
  }
  return C;
}

/** GELU, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

export function map(x: ArrayLike<number>, f: (v: number) => number): Float64Array {
  return Float64Array.from({ length: x.length }, (_, i) => f(x[i]!));
}

/** Softmax over the last axis of rows×cols. */
export function softmaxRows(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < cols; c++) max = Math.max(max, x[r * cols + c]!);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[r * cols + c]! - max);
    for (let c = 0; c < cols; c++) out[r * cols + c] = Math.exp(x[r * cols + c]! - max) / sum;
  }
  return out;
}

/** NCHW convolution, OIHW weights, stride 1, symmetric zero padding `pad`. */
export function conv2d(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  o: { N: number; C: number; H: number; W: number; O: number; k: number; pad: number },
): { y: Float64Array; H: number; W: number } {
  const { N, C, H, W, O, k, pad } = o;
  const Ho = H + 2 * pad - k + 1;
  const Wo = W + 2 * pad - k + 1;
  const y = new Float64Array(N * O * Ho * Wo);
  for (let n = 0; n < N; n++) {
    for (let oc = 0; oc < O; oc++) {
      for (let i = 0; i < Ho; i++) {
        for (let j = 0; j < Wo; j++) {
          let s = b[oc]!;
          for (let c = 0; c < C; c++) {
            for (let ki = 0; ki < k; ki++) {
              for (let kj = 0; kj < k; kj++) {
                const yi = i + ki - pad;
                const xj = j + kj - pad;
                if (yi < 0 || yi >= H || xj < 0 || xj >= W) continue;
                s += x[((n * C + c) * H + yi) * W + xj]! * w[((oc * C + c) * k + ki) * k + kj]!;
              }
            }
          }
          y[((n * O + oc) * Ho + i) * Wo + j] = s;
        }
      }
    }
  }
  return { y, H: Ho, W: Wo };
}

/** Mean over the last `hw` elements of each of `groups` groups. */
export function meanGroups(x: ArrayLike<number>, groups: number, hw: number): Float64Array {
  const out = new Float64Array(groups);
  for (let g = 0; g < groups; g++) {
    let s = 0;
    for (let i = 0; i < hw; i++) s += x[g * hw + i]!;
    out[g] = s / hw;
  }
  return out;
}
