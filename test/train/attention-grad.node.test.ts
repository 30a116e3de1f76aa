// The attention backward cases alone (they are also in the full kernel suite), for a quick run.
import { afterAll, beforeAll, describe, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { cases } from '../../src/kernels/selftest/cases/attention-grad.cases.ts';
import { acquireDawn } from '../../src/node/dawn.ts';

let ctx: GpuContext;
const uncaptured: string[] = [];
beforeAll(async () => {
  ctx = await acquireDawn({ onUncapturedError: (e) => uncaptured.push(e.message) });
  ctx.pool.poison = true;
});
afterAll(() => ctx?.destroy());

describe('causal attention backward on Dawn', () => {
  for (const c of cases) {
    it(c.name, async () => {
      await c.run(ctx);
      if (uncaptured.length) throw new Error(`uncaptured GPU errors: ${uncaptured.splice(0).join('; ')}`);
    }, 60_000);
  }
});
