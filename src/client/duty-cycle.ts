// The GPU cap: how long a volunteer rests between shards so that the GPU is busy a chosen share
// of wall time (the volunteer page's "GPU cap", default 50%).

/** The GPU cap's bounds: the share of wall time the GPU may be busy with shards. */
export const DUTY_CYCLE = { min: 0.1, max: 1, default: 0.5 } as const;

/**
 * How long to rest after `busyMs` of GPU work so that busy time is `duty` of wall time:
 * busy / (busy + rest) = duty.
 *
 * @example
 * restAfter(300, 0.25); // 900
 */
export function restAfter(busyMs: number, duty: number): number {
  const d = Math.min(DUTY_CYCLE.max, Math.max(DUTY_CYCLE.min, duty));
  return Math.max(0, (busyMs * (1 - d)) / d);
}

/** A cap clamped to [min, max]; the default for a value that is not a number. */
export const clampDuty = (d: number) =>
  Number.isFinite(d) ? Math.min(DUTY_CYCLE.max, Math.max(DUTY_CYCLE.min, d)) : DUTY_CYCLE.default;
