// When do two results say the same thing? Bit-exact jobs compare hashes; tolerance jobs compare
// every element with |a−b| ≤ atol + rtol·max(|a|,|b|) (symmetric, so the order of replicas does
// not matter). NaN never agrees with anything: a NaN usually means a broken device, and letting
// two broken devices outvote a good one would accept garbage.
import { f16BitsToF32 } from '../core/f16.ts';
import type { DType } from '../core/tensor.ts';
import type { Tolerance } from '../protocol/manifest.ts';
import type { OutputTensor } from '../protocol/shard.ts';

function values(dtype: DType, data: ArrayBuffer): ArrayLike<number> {
  switch (dtype) {
    case 'f32':
      return new Float32Array(data);
    case 'i32':
      return new Int32Array(data);
    case 'u32':
      return new Uint32Array(data);
    default: {
      const h = new Uint16Array(data);
      const f = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) f[i] = f16BitsToF32(h[i] as number);
      return f;
    }
  }
}

/** True when tensors a and b have the same dtype and shape and agree elementwise within tolerance. */
export function tensorsAgree(
  a: Pick<OutputTensor, 'dtype' | 'shape' | 'data' | 'sha256'>,
  b: Pick<OutputTensor, 'dtype' | 'shape' | 'data' | 'sha256'>,
  tol: Tolerance,
): boolean {
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length) return false;
  if (a.shape.some((d, i) => d !== b.shape[i])) return false;
  if (tol === 'exact') return a.sha256 === b.sha256;
  if (a.data.byteLength !== b.data.byteLength) return false;
  const x = values(a.dtype, a.data);
  const y = values(b.dtype, b.data); // as long as x: same dtype, same byte length
  for (let i = 0; i < x.length; i++) {
    const p = x[i] as number;
    const q = y[i] as number;
    if (p === q) continue;
    // NaN and ±Infinity agree with nothing but (for infinities) themselves; without this check an
    // infinite bound (rtol·∞) would accept ∞ against any number.
    if (!Number.isFinite(p) || !Number.isFinite(q)) return false;
    if (!(Math.abs(p - q) <= tol.atol + tol.rtol * Math.max(Math.abs(p), Math.abs(q)))) return false;
  }
  return true;
}

/**
 * True when two results have the same output names and every pair agrees.
 *
 * @example
 * resultsAgree(r1.outputs, r2.outputs, { rtol: 1e-4, atol: 1e-6 });
 */
export function resultsAgree(
  a: readonly OutputTensor[],
  b: readonly OutputTensor[],
  tol: Tolerance,
): boolean {
  if (a.length !== b.length) return false;
  for (const t of a) {
    const u = b.find((o) => o.name === t.name);
    if (!u || !tensorsAgree(t, u, tol)) return false;
  }
  return true;
}
