// Float64 reference for causal self-attention: plain loops, written for clarity, not speed.
//
// Element reads in the loops are `x[i] as number`: the function first checks (expectLength) that
// q, k and v hold B·H·T·D elements, so every index the loops form is in range.
import { expectLength } from '../../core/at.ts';

/**
 * out[b, h, t] = Σ_{s≤t} softmax_s(q_t·k_s·scale) · v_s for q, k, v laid out [B, H, T, D]
 * (contiguous). The softmax subtracts the row maximum, so large scores stay finite.
 */
export function causalAttentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  o: { B: number; H: number; T: number; D: number; scale?: number },
): Float64Array {
  const { B, H, T, D } = o;
  const scale = o.scale ?? 1 / Math.sqrt(D);
  for (const [x, name] of [
    [q, 'q'],
    [k, 'k'],
    [v, 'v'],
  ] as const) {
    expectLength(x, B * H * T * D, `causalAttentionRef: ${name}`);
  }
  const out = new Float64Array(B * H * T * D);
  const scores = new Float64Array(T);
  for (let bh = 0; bh < B * H; bh++) {
    const base = bh * T * D;
    for (let t = 0; t < T; t++) {
      let max = Number.NEGATIVE_INFINITY;
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += (q[base + t * D + d] as number) * (k[base + s * D + d] as number);
        const score = dot * scale;
        scores[s] = score;
        max = Math.max(max, score);
      }
      let sum = 0;
      for (let s = 0; s <= t; s++) sum += scores[s] = Math.exp((scores[s] as number) - max);
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let s = 0; s <= t; s++) acc += (scores[s] as number) * (v[base + s * D + d] as number);
        out[base + t * D + d] = acc / sum;
      }
    }
  }
  return out;
}

/**
 * Gradients of {@link causalAttentionRef} with respect to q, k and v for dO = ∂L/∂out, by the
 * chain rule through the explicit softmax: dP_ts = dO_t·v_s, dS_ts = P_ts (dP_ts − Σ_u P_tu dP_tu).
 */
export function causalAttentionBackwardRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dO: ArrayLike<number>,
  o: { B: number; H: number; T: number; D: number; scale?: number },
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, H, T, D } = o;
  const scale = o.scale ?? 1 / Math.sqrt(D);
  for (const [x, name] of [
    [q, 'q'],
    [k, 'k'],
    [v, 'v'],
    [dO, 'dO'],
  ] as const) {
    expectLength(x, B * H * T * D, `causalAttentionBackwardRef: ${name}`);
  }
  const n = B * H * T * D;
  const dq = new Float64Array(n);
  const dk = new Float64Array(n);
  const dv = new Float64Array(n);
  const P = new Float64Array(T);
  const dP = new Float64Array(T);
  for (let bh = 0; bh < B * H; bh++) {
    const base = bh * T * D;
    for (let t = 0; t < T; t++) {
      let max = Number.NEGATIVE_INFINITY;
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += (q[base + t * D + d] as number) * (k[base + s * D + d] as number);
        P[s] = dot * scale;
        max = Math.max(max, P[s] as number);
      }
      let sum = 0;
      for (let s = 0; s <= t; s++) sum += P[s] = Math.exp((P[s] as number) - max);
      let pdp = 0;
      for (let s = 0; s <= t; s++) {
        P[s] = (P[s] as number) / sum;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += (dO[base + t * D + d] as number) * (v[base + s * D + d] as number);
        dP[s] = dot;
        pdp += (P[s] as number) * dot;
      }
      for (let s = 0; s <= t; s++) {
        const p = P[s] as number;
        const ds = p * ((dP[s] as number) - pdp) * scale;
        for (let d = 0; d < D; d++) {
          const ti = base + t * D + d;
          const si = base + s * D + d;
          dv[si] = (dv[si] as number) + p * (dO[ti] as number);
          dq[ti] = (dq[ti] as number) + ds * (k[si] as number);
          dk[si] = (dk[si] as number) + ds * (q[ti] as number);
        }
      }
    }
  }
  return { dq, dk, dv };
}
