// Timing that is fair to both sides of a comparison: warm-up first (pipelines compiled, pools
// filled), then repetitions that alternate which side goes first, each a run of back-to-back
// iterations that all end with the GPU idle; the per-iteration median over repetitions is reported.

export interface TimingOptions {
  /** Repetitions per side (the median is taken over these). */
  readonly reps: number;
  /** Aim for each repetition to take about this long; sets the iterations per repetition. */
  readonly targetMs: number;
  readonly maxIters: number;
  readonly warmups: number;
}

export interface PairTiming {
  /** Median milliseconds per iteration of each side. */
  readonly aMs: number;
  readonly bMs: number;
  readonly iters: number;
  readonly reps: number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timed(fn: () => Promise<void>, iters: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await fn();
  return (performance.now() - t0) / iters;
}

/**
 * Times `a` and `b`, each a function that does one iteration and resolves once the GPU has
 * finished it. Both get the same number of iterations per repetition.
 */
export async function timePair(
  a: () => Promise<void>,
  b: () => Promise<void>,
  opts: TimingOptions,
): Promise<PairTiming> {
  let ta = 0;
  let tb = 0;
  for (let i = 0; i < opts.warmups; i++) {
    ta = await timed(a, 1);
    tb = await timed(b, 1);
  }
  const iters = Math.max(1, Math.min(opts.maxIters, Math.round(opts.targetMs / Math.max(ta, tb, 1e-3))));
  const as: number[] = [];
  const bs: number[] = [];
  for (let r = 0; r < opts.reps; r++) {
    if (r % 2 === 0) {
      as.push(await timed(a, iters));
      bs.push(await timed(b, iters));
    } else {
      bs.push(await timed(b, iters));
      as.push(await timed(a, iters));
    }
  }
  return { aMs: median(as), bMs: median(bs), iters, reps: opts.reps };
}

/** Left-aligned text columns: the first row is the header, a rule under it. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((x, c) => x.padEnd(widths[c]!))
      .join('  ')
      .trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}
