// Float64 references for the backward kernels: the forward functions they differentiate, the
// analytic gradients, and central finite differences to check those gradients independently.
// Plain loops, written for clarity, not speed.
//
// Element reads in the loops are `x[i] as number`: each function first checks (expectLength) that
// its inputs are as long as the sizes it is given say, so every index the loops form is in range.
import { at, expectLength } from '../../core/at.ts';
import { rng } from './harness.ts';

export type GradAct = 'relu' | 'gelu' | 'silu';

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/** The activations as shaders/matmul.wgsl computes them: gelu's tanh argument clamped to ±15. */
export function actForward(x: number, a: GradAct): number {
  switch (a) {
    case 'relu':
      return Math.max(x, 0);
    case 'gelu': {
      const u = Math.min(15, Math.max(-15, GELU_C * (x + GELU_A * x ** 3)));
      return 0.5 * x * (1 + Math.tanh(u));
    }
    case 'silu':
      return x / (1 + Math.exp(-x));
  }
}

/** d actForward / dx, analytically (relu′(0) = 0; no gradient through gelu's clamp). */
export function actDerivative(x: number, a: GradAct): number {
  switch (a) {
    case 'relu':
      return x > 0 ? 1 : 0;
    case 'gelu': {
      const inner = GELU_C * (x + GELU_A * x ** 3);
      const u = Math.min(15, Math.max(-15, inner));
      const t = Math.tanh(u);
      const du = Math.abs(inner) < 15 ? GELU_C * (1 + 3 * GELU_A * x * x) : 0;
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
    }
    case 'silu': {
      const s = 1 / (1 + Math.exp(-x));
      return s * (1 + x * (1 - s));
    }
  }
}

/** Σ a ⊙ b: the scalar loss L = Σ dy ⊙ y whose gradient a backward kernel computes. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expectLength(b, a.length, 'dot: b');
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}

/** `count` distinct indices in [0, n), seeded (all of them when n ≤ count). */
export function sampleIndices(seed: number, n: number, count: number): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const r = rng(seed);
  const picked = new Set<number>();
  while (picked.size < count) picked.add(Math.floor(r() * n));
  return [...picked].sort((a, b) => a - b);
}

/**
 * Central finite differences (f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h of a scalar function of x, at the
 * given indices. f sees a float64 copy of x with one element perturbed.
 */
export function finiteDiff(
  f: (x: Float64Array) => number,
  x: ArrayLike<number>,
  indices: readonly number[],
  h = 1e-4,
): Float64Array {
  const xs = Float64Array.from(x);
  const out = new Float64Array(indices.length);
  for (const [n, i] of indices.entries()) {
    const x0 = at(xs, i, 'finiteDiff: x');
    xs[i] = x0 + h;
    const up = f(xs);
    xs[i] = x0 - h;
    const down = f(xs);
    xs[i] = x0;
    out[n] = (up - down) / (2 * h);
  }
  return out;
}

/** The elements of `x` at `indices`. */
export function pick(x: ArrayLike<number>, indices: readonly number[]): Float64Array {
  return Float64Array.from(indices, (i) => at(x, i, 'pick: x'));
}

// ---- matmul ----

export interface MmDims {
  M: number;
  N: number;
  K: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  /** Batch strides; 0 broadcasts the operand. */
  strideA: number;
  strideB: number;
}

const idxA = (o: MmDims, b: number, m: number, k: number) =>
  b * o.strideA + (o.transA ? k * o.M + m : m * o.K + k);
const idxB = (o: MmDims, b: number, k: number, n: number) =>
  b * o.strideB + (o.transB ? n * o.K + k : k * o.N + n);

/** Elements a batched operand spans: `batch` matrices of `size`, `stride` apart (0 broadcasts). */
const spanOf = (batch: number, stride: number, size: number) =>
  batch > 0 && size > 0 ? (batch - 1) * stride + size : 0;

/** Checks that A and B hold every element idxA and idxB can name. */
function expectOperands(A: ArrayLike<number>, B: ArrayLike<number>, o: MmDims, what: string): void {
  expectLength(A, spanOf(o.batch, o.strideA, o.M * o.K), `${what}: A`);
  expectLength(B, spanOf(o.batch, o.strideB, o.K * o.N), `${what}: B`);
}

/** C[b] = op(A[b])·op(B[b]) (+ bias), [batch, M, N]. */
export function matmulForward(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  o: MmDims,
  bias?: ArrayLike<number>,
): Float64Array {
  expectOperands(A, B, o, 'matmulForward');
  if (bias) expectLength(bias, o.N, 'matmulForward: bias');
  const C = new Float64Array(o.batch * o.M * o.N);
  for (let b = 0; b < o.batch; b++)
    for (let m = 0; m < o.M; m++)
      for (let n = 0; n < o.N; n++) {
        let s = bias ? (bias[n] as number) : 0;
        for (let k = 0; k < o.K; k++) s += (A[idxA(o, b, m, k)] as number) * (B[idxB(o, b, k, n)] as number);
        C[(b * o.M + m) * o.N + n] = s;
      }
  return C;
}

/** ∂L/∂A, ∂L/∂B, ∂L/∂bias for L = Σ dC ⊙ C: a broadcast operand's gradient sums over the batch. */
export function matmulGradRef(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  dC: ArrayLike<number>,
  o: MmDims,
  sizeA: number,
  sizeB: number,
): { dA: Float64Array; dB: Float64Array; dBias: Float64Array } {
  expectOperands(A, B, o, 'matmulGradRef');
  expectLength(dC, o.batch * o.M * o.N, 'matmulGradRef: dC');
  const dA = new Float64Array(sizeA);
  const dB = new Float64Array(sizeB);
  expectOperands(dA, dB, o, 'matmulGradRef (sizeA, sizeB)');
  const dBias = new Float64Array(o.N);
  for (let b = 0; b < o.batch; b++)
    for (let m = 0; m < o.M; m++)
      for (let n = 0; n < o.N; n++) {
        const g = dC[(b * o.M + m) * o.N + n] as number;
        dBias[n] = (dBias[n] as number) + g;
        for (let k = 0; k < o.K; k++) {
          const ia = idxA(o, b, m, k);
          const ib = idxB(o, b, k, n);
          dA[ia] = (dA[ia] as number) + g * (B[ib] as number);
          dB[ib] = (dB[ib] as number) + g * (A[ia] as number);
        }
      }
  return { dA, dB, dBias };
}

// ---- softmax cross-entropy ----

/** Per-row loss (0 if ignored, NaN for a target outside [0, V)), gradient of the mean, and the count. */
export function crossEntropyRef(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  rows: number,
  V: number,
  ignoreIndex = -1,
): { loss: Float64Array; dlogits: Float64Array; count: number } {
  expectLength(logits, rows * V, 'crossEntropyRef: logits');
  expectLength(targets, rows, 'crossEntropyRef: targets');
  const loss = new Float64Array(rows);
  const dlogits = new Float64Array(rows * V);
  let count = 0;
  for (let r = 0; r < rows; r++) if (targets[r] !== ignoreIndex) count++;
  for (let r = 0; r < rows; r++) {
    const t = targets[r] as number;
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= V) {
      loss[r] = Number.NaN;
      continue;
    }
    let mx = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < V; j++) mx = Math.max(mx, logits[r * V + j] as number);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp((logits[r * V + j] as number) - mx);
    loss[r] = mx + Math.log(s) - (logits[r * V + t] as number);
    for (let j = 0; j < V; j++) {
      dlogits[r * V + j] = (Math.exp((logits[r * V + j] as number) - mx) / s - (j === t ? 1 : 0)) / count;
    }
  }
  return { loss, dlogits, count };
}

/** The mean loss over rows not ignored: the scalar whose gradient dlogits is. */
export function crossEntropyMean(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  rows: number,
  V: number,
  ignoreIndex = -1,
): number {
  const { loss, count } = crossEntropyRef(logits, targets, rows, V, ignoreIndex);
  let s = 0;
  for (let r = 0; r < rows; r++) if (targets[r] !== ignoreIndex) s += loss[r] as number;
  return count ? s / count : 0;
}

// ---- layernorm ----

/** y = (x − mean)·rstd·gamma + beta per row of D, with the statistics it used. */
export function layernormForward(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  rows: number,
  D: number,
  eps: number,
): { y: Float64Array; mean: Float64Array; rstd: Float64Array } {
  expectLength(x, rows * D, 'layernormForward: x');
  expectLength(gamma, D, 'layernormForward: gamma');
  expectLength(beta, D, 'layernormForward: beta');
  const y = new Float64Array(rows * D);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < D; j++) s += x[r * D + j] as number;
    const mu = s / D;
    let v = 0;
    for (let j = 0; j < D; j++) v += ((x[r * D + j] as number) - mu) ** 2;
    const rs = 1 / Math.sqrt(v / D + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < D; j++) {
      y[r * D + j] = ((x[r * D + j] as number) - mu) * rs * (gamma[j] as number) + (beta[j] as number);
    }
  }
  return { y, mean, rstd };
}

/** Analytic backward of layernormForward, from its statistics. */
export function layernormGradRef(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  dy: ArrayLike<number>,
  mean: ArrayLike<number>,
  rstd: ArrayLike<number>,
  rows: number,
  D: number,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  expectLength(x, rows * D, 'layernormGradRef: x');
  expectLength(dy, rows * D, 'layernormGradRef: dy');
  expectLength(gamma, D, 'layernormGradRef: gamma');
  expectLength(mean, rows, 'layernormGradRef: mean');
  expectLength(rstd, rows, 'layernormGradRef: rstd');
  const dx = new Float64Array(rows * D);
  const dgamma = new Float64Array(D);
  const dbeta = new Float64Array(D);
  for (let r = 0; r < rows; r++) {
    const mu = mean[r] as number;
    const rs = rstd[r] as number;
    let a = 0;
    let c = 0;
    for (let j = 0; j < D; j++) {
      const i = r * D + j;
      const dyi = dy[i] as number;
      const xh = ((x[i] as number) - mu) * rs;
      const g = dyi * (gamma[j] as number);
      a += g;
      c += g * xh;
      dgamma[j] = (dgamma[j] as number) + dyi * xh;
      dbeta[j] = (dbeta[j] as number) + dyi;
    }
    for (let j = 0; j < D; j++) {
      const i = r * D + j;
      const xh = ((x[i] as number) - mu) * rs;
      dx[i] = rs * ((dy[i] as number) * (gamma[j] as number) - a / D - (xh * c) / D);
    }
  }
  return { dx, dgamma, dbeta };
}

// ---- embedding ----

/** out[t] = table[ids[t]], zeros for an id outside [0, V). */
export function embeddingForward(
  table: ArrayLike<number>,
  ids: ArrayLike<number>,
  V: number,
  D: number,
): Float64Array {
  expectLength(table, V * D, 'embeddingForward: table');
  const out = new Float64Array(ids.length * D);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t] as number;
    if (id < 0 || id >= V) continue;
    for (let d = 0; d < D; d++) out[t * D + d] = table[id * D + d] as number;
  }
  return out;
}

/** dTable[v] = Σ dy[t] over tokens with ids[t] = v; out-of-range ids ignored. */
export function embeddingGradRef(
  ids: ArrayLike<number>,
  dy: ArrayLike<number>,
  V: number,
  D: number,
): Float64Array {
  expectLength(dy, ids.length * D, 'embeddingGradRef: dy');
  const dt = new Float64Array(V * D);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t] as number;
    if (id < 0 || id >= V) continue;
    for (let d = 0; d < D; d++) dt[id * D + d] = (dt[id * D + d] as number) + (dy[t * D + d] as number);
  }
  return dt;
}

// ---- AdamW ----

export interface AdamWRefOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

/** One AdamW step in float64, in place (PyTorch's torch.optim.AdamW, amsgrad off). */
export function adamwRef(
  p: Float64Array,
  g: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  o: AdamWRefOptions,
): void {
  expectLength(g, p.length, 'adamwRef: g');
  expectLength(m, p.length, 'adamwRef: m');
  expectLength(v, p.length, 'adamwRef: v');
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] as number;
    const mi = o.beta1 * (m[i] as number) + (1 - o.beta1) * gi;
    const vi = o.beta2 * (v[i] as number) + (1 - o.beta2) * gi ** 2;
    m[i] = mi;
    v[i] = vi;
    p[i] =
      (p[i] as number) * (1 - o.lr * o.weightDecay) -
      ((o.lr / bc1) * mi) / (Math.sqrt(vi) / Math.sqrt(bc2) + o.eps);
  }
}
