// Float64 references for the test models, written as plain loops for clarity, plus the seeded
// generator and the comparison the ONNX tests use.

// The seeded generator and the comparison are the kernel suite's own.
export { assertClose, randn as uniform, rng, type Tolerance } from '../../src/kernels/selftest/harness.ts';

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
