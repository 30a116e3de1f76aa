import { afterAll, beforeAll, describe, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { suite } from '../../src/kernels/selftest/suite.ts';
import { acquireDawn } from '../../src/node/dawn.ts';

let ctx: GpuContext;
const uncaptured: string[] = [];

beforeAll(async () => {
  ctx = await acquireDawn({ onUncapturedError: (e) => uncaptured.push(e.message) });
  ctx.pool.poison = true;
});
afterAll(() => ctx?.destroy());

describe('kernels on Dawn (Node)', () => {
  for (const c of suite) {
    it(c.name, async (t) => {
      const r = await c.run(ctx);
      if (uncaptured.length) throw new Error(`uncaptured GPU errors: ${uncaptured.splice(0).join('; ')}`);
      if (r && 'skip' in r) {
        console.log(`skipped "${c.name}": ${r.skip}`);
        t.skip(r.skip);
      }
    });
  }
});
