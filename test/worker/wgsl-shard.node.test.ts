import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { acquireDawn } from '../../src/node/dawn.ts';
import { runWgslShard } from '../../src/worker/runners/wgsl.ts';
import { badShards, saxpyShard } from './wgsl-shards.ts';

let ctx: GpuContext;
const uncaptured: string[] = [];
beforeAll(async () => {
  ctx = await acquireDawn({ onUncapturedError: (e) => uncaptured.push(e.message) });
});
afterAll(() => ctx?.destroy());

describe('WGSL shards (Dawn)', () => {
  it('runs a correct shard: out = a·x + y', async () => {
    const n = 1000;
    const { shard, x, y } = saxpyShard(n, 2.5);
    const phases: string[] = [];
    const out = await runWgslShard(ctx, shard, { onProgress: (p) => phases.push(p.phase) });
    expect(out.map((o) => o.name)).toEqual(['out']);
    expect(out[0]!.tensor.shape).toEqual([n]);
    const got = new Float32Array(out[0]!.tensor.data);
    for (let i = 0; i < n; i++) expect(got[i]).toBe(Math.fround(Math.fround(2.5 * x[i]!) + y[i]!));
    expect(phases).toContain('run');
    expect(uncaptured).toEqual([]);
  });

  for (const bad of badShards()) {
    it(`refuses a shard: ${bad.what}`, async () => {
      const err = await runWgslShard(ctx, bad.shard).then(
        () => null,
        (e: unknown) => e as { name: string; code: string; message: string },
      );
      expect(err?.name).toBe('HearthError');
      expect(err?.code).toBe(bad.code);
      for (const part of bad.parts) expect(err?.message).toContain(part);
      expect(uncaptured).toEqual([]);
    });
  }

  it('stops a cancelled shard with shard/cancelled', async () => {
    const { shard } = saxpyShard(64, 1);
    const ac = new AbortController();
    ac.abort();
    await expect(runWgslShard(ctx, shard, { signal: ac.signal })).rejects.toMatchObject({
      code: 'shard/cancelled',
    });
  });
});
