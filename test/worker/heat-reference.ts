// A float64 reference of the heat example (src/node/example.ts heatJob): the whole grid, the same
// explicit scheme, the grid's edges held at their initial values.
import type { HeatSpec } from '../../src/node/example.ts';
import { heatInitial } from '../../src/node/example.ts';

/** Max |a − b| the f32 program may be from float64 after the example's steps (values in [0, 1]). */
export const HEAT_ATOL = 1e-4;

export function heatReference(spec: HeatSpec): Float64Array {
  const n = spec.size;
  let u = Float64Array.from(heatInitial(n));
  let v = new Float64Array(n * n);
  for (let s = 0; s < spec.steps; s++) {
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        const i = y * n + x;
        if (x === 0 || y === 0 || x === n - 1 || y === n - 1) {
          v[i] = u[i]!;
          continue;
        }
        const c = u[i]!;
        v[i] = c + spec.alpha * (u[i - 1]! + u[i + 1]! + u[i - n]! + u[i + n]! - 4 * c);
      }
    }
    [u, v] = [v, u];
  }
  return u;
}

/** Largest absolute difference; NaN anywhere makes it NaN (which fails every ≤ check). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.NaN;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = d; // NaN propagates: NaN <= m is false
  }
  return m;
}
