// Every GPU test of train/ runs inside a validation error scope, with uncaptured errors counted.
import type { GpuContext } from '../../src/gpu/context.ts';

/** Runs `fn` inside a validation error scope; a GPU error or an uncaptured one fails it. */
export async function inErrorScope<T>(
  ctx: GpuContext,
  uncaptured: string[],
  fn: () => Promise<T>,
): Promise<T> {
  ctx.device.pushErrorScope('validation');
  let result: { ok: true; value: T } | { ok: false; error: unknown };
  try {
    result = { ok: true, value: await fn() };
  } catch (error) {
    result = { ok: false, error };
  }
  const err = await ctx.device.popErrorScope();
  if (!result.ok) throw result.error;
  if (err) throw new Error(`GPU validation error: ${err.message}`);
  if (uncaptured.length) throw new Error(`uncaptured GPU errors: ${uncaptured.splice(0).join('; ')}`);
  return result.value;
}
