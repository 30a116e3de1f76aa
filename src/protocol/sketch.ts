// A keyed random sketch of a pseudo-gradient: SKETCH_ROWS sums Σᵢ sⱼ(i)·xᵢ with signs sⱼ(i) = ±1
// drawn from a hash of (seed, i). A `train` result carries the sketch of its raw Δ beside the
// compressed frame, and replicas compare sketches, not frames: with top-k's error feedback, two
// honest volunteers who computed the same Δ send different frames (each adds its own residual),
// but the same sketch. 32 numbers stand for the whole vector (Johnson–Lindenstrauss: a Δ that
// differs from another by more than rounding differs in its sketch with overwhelming odds), and
// the sketch is linear, so the hub checks that a frame without error feedback decodes to what its
// sketch says (`sketchGap`).
//
// Deterministic everywhere: the hash is 32-bit integer arithmetic, the sums run in index order in
// float64 and are rounded to f32 once at the end — the same x gives the same bits on any engine.

/** Rows of a sketch: one 32-bit hash per element gives every row its sign. */
export const SKETCH_ROWS = 32;

function mix(seed: number, i: number): number {
  let h = Math.imul(i ^ seed, 0x9e3779b1) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The sketch of `x` under `seed`: SKETCH_ROWS f32 values.
 *
 * @example
 * const s = sketch(delta, work.seed); // compare with a replica's: same Δ, same bits
 */
export function sketch(x: Float32Array, seed: number): Float32Array {
  const acc = new Float64Array(SKETCH_ROWS);
  const s = seed >>> 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i] as number;
    if (v === 0) continue;
    const h = mix(s, i);
    for (let j = 0; j < SKETCH_ROWS; j++) acc[j] = (acc[j] as number) + ((h >>> j) & 1 ? v : -v);
  }
  return Float32Array.from(acc);
}

/** Euclidean norm of a sketch (or any short vector), in float64. */
export function norm(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] as number) ** 2;
  return Math.sqrt(s);
}

/** ‖a − b‖ / max(‖b‖, tiny): how far a sketch is from another, relative to the second. */
export function sketchGap(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += ((a[i] as number) - (b[i] as number)) ** 2;
  return Math.sqrt(d) / Math.max(norm(b), 1e-30);
}
