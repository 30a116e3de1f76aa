// Float64 references for the kernels: plain loops, written for clarity, not speed.
//
// Element reads in the loops are `x[i] as number`: each function first checks (expectLength) that
// its inputs are as long as the sizes it is given say, so every index the loops form is in range.
import { expectLength } from '../../core/at.ts';

export type Act = 'none' | 'relu' | 'gelu' | 'silu';

export function act(x: number, a: Act): number {
  switch (a) {
    case 'relu':
      return Math.max(x, 0);
    case 'gelu':
      return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    case 'silu':
      return x / (1 + Math.exp(-x));
    default:
      return x;
  }
}

/** C[b] = act(op(A[b])·op(B[b]) + bias); a stride of 0 broadcasts. */
export function matmulRef(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  o: {
    M: number;
    N: number;
    K: number;
    batch?: number;
    transA?: boolean;
    transB?: boolean;
    strideA?: number;
    strideB?: number;
    bias?: ArrayLike<number>;
    act?: Act;
  },
): Float64Array {
  const { M, N, K } = o;
  const batch = o.batch ?? 1;
  const sA = o.strideA ?? M * K;
  const sB = o.strideB ?? K * N;
  // Batch b's operands start at b·stride (0: broadcast) and span M·K and K·N elements.
  if (batch > 0 && M * K > 0) expectLength(A, (batch - 1) * sA + M * K, 'matmulRef: A');
  if (batch > 0 && K * N > 0) expectLength(B, (batch - 1) * sB + K * N, 'matmulRef: B');
  if (o.bias) expectLength(o.bias, N, 'matmulRef: bias');
  const C = new Float64Array(batch * M * N);
  for (let b = 0; b < batch; b++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const a = (o.transA ? A[b * sA + k * M + m] : A[b * sA + m * K + k]) as number;
          const bb = (o.transB ? B[b * sB + n * K + k] : B[b * sB + k * N + n]) as number;
          s += a * bb;
        }
        if (o.bias) s += o.bias[n] as number;
        C[b * M * N + m * N + n] = act(s, o.act ?? 'none');
      }
    }
  }
  return C;
}
