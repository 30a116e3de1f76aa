// WGSL programs (several passes, buffers that persist, repeated groups) on a real Dawn device:
// the heat example against float64, ping-pong order, progress per pass, cancel between passes,
// pipelines built once per device, and the limits checked before anything runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { pipelineBuilds } from '../../src/gpu/pipeline-cache.ts';
import { acquireDawn } from '../../src/node/dawn.ts';
import { heatJob } from '../../src/node/example.ts';
import { parseManifest, shardFromWork } from '../../src/protocol/kinds/index.ts';
import type { WgslProgramShard } from '../../src/protocol/kinds/wgsl.ts';
import { WGSL_PROGRAM_LIMITS } from '../../src/protocol/kinds/wgsl.ts';
import { runWgslShard } from '../../src/worker/runners/wgsl.ts';
import { HEAT_ATOL, heatReference, maxAbsDiff } from './heat-reference.ts';

let ctx: GpuContext;
const uncaptured: string[] = [];
beforeAll(async () => {
  ctx = await acquireDawn({ onUncapturedError: (e) => uncaptured.push(e.message) });
});
afterAll(() => ctx?.destroy());

async function shardsOf(job: ReturnType<typeof heatJob>): Promise<WgslProgramShard[]> {
  const m = parseManifest(job.manifest);
  if (m.kind !== 'wgsl') throw new Error('expected a WGSL job');
  const out: WgslProgramShard[] = [];
  for (const [i, spec] of m.shards.entries()) {
    const s = await shardFromWork(
      { kind: 'wgsl', spec },
      { shard: `heat/${i}`, job: 'heat', kernel: { source: m.source } },
      { get: async (sha) => job.blobs.get(sha)! },
    );
    out.push(s as WgslProgramShard);
  }
  return out;
}

/** The bands' outputs stacked back into the grid. */
async function runHeat(job: ReturnType<typeof heatJob>, onPass?: (done: number, total: number) => void) {
  const grid: number[] = [];
  for (const s of await shardsOf(job)) {
    const [out] = await runWgslShard(ctx, s, {
      onProgress: (p) => {
        if (p.phase === 'run') onPass?.(p.done, p.total);
      },
    });
    expect(out!.name).toBe('band');
    grid.push(...new Float32Array(out!.tensor.data));
  }
  return grid;
}

describe('WGSL programs (Dawn)', () => {
  it('the example heat job (256×256, 500 steps, 4 bands) matches float64', async () => {
    const job = heatJob();
    expect(job.spec).toMatchObject({ size: 256, steps: 500, halo: 256 });
    const got = await runHeat(job);
    const want = heatReference(job.spec);
    expect(got).toHaveLength(256 * 256);
    expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(HEAT_ATOL);
    // It moved: the result is not the initial grid.
    expect(maxAbsDiff(got, heatReference({ ...job.spec, steps: 0 }))).toBeGreaterThan(1e-3);
    expect(uncaptured).toEqual([]);
  });

  it('an odd number of steps ends in the scratch buffer and still matches', async () => {
    const job = heatJob({ size: 32, steps: 9, bands: 3, halo: 9 });
    expect(maxAbsDiff(await runHeat(job), heatReference(job.spec))).toBeLessThanOrEqual(HEAT_ATOL);
  });

  it('a halo shallower than the steps is not the whole grid’s answer (the halo is what makes bands exact)', async () => {
    const job = heatJob({ size: 64, steps: 40, bands: 4, halo: 2 });
    expect(maxAbsDiff(await runHeat(job), heatReference(job.spec))).toBeGreaterThan(HEAT_ATOL);
  });

  it('reports progress per pass and builds its pipelines once per device', async () => {
    const job = heatJob({ size: 32, steps: 12, bands: 2 });
    const shards = await shardsOf(job);
    const seen: [number, number][] = [];
    await runWgslShard(ctx, shards[0]!, {
      onProgress: (p) => p.phase === 'run' && seen.push([p.done, p.total]),
    });
    expect(seen[0]).toEqual([0, 13]);
    expect(seen.at(-1)).toEqual([13, 13]);
    for (let i = 1; i < seen.length; i++) expect(seen[i]![0]).toBeGreaterThanOrEqual(seen[i - 1]![0]);
    const builds = pipelineBuilds(ctx.device);
    await runWgslShard(ctx, shards[1]!);
    await runWgslShard(ctx, shards[0]!);
    expect(pipelineBuilds(ctx.device)).toBe(builds);
  });

  it('stops between passes when cancelled, with shard/cancelled', async () => {
    const job = heatJob({ size: 64, steps: 2000, bands: 1 });
    const [shard] = await shardsOf(job);
    const ac = new AbortController();
    let last = 0;
    const run = runWgslShard(ctx, shard!, {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.phase !== 'run') return;
        last = p.done;
        if (p.done > 0) ac.abort(new HearthError('shard/cancelled', 'cancelled by the test'));
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'shard/cancelled' });
    expect(last).toBeGreaterThan(0);
    expect(last).toBeLessThan(2001);
  });

  it('refuses programs over the limits before anything runs, naming the field', () => {
    const job = heatJob({ size: 16, steps: 4, bands: 1 });
    const m = job.manifest as { shards: { program: unknown[] }[] };
    const withProgram = (program: unknown[]) => ({ ...job.manifest, shards: [{ ...m.shards[0], program }] });
    const pass = (m.shards[0]!.program.at(-1) as Record<string, unknown>)!;
    expect(() =>
      parseManifest(withProgram([{ repeat: WGSL_PROGRAM_LIMITS.maxRepeat + 1, passes: [pass] }])),
    ).toThrow(/manifest\.shards\[0\]\.program\[0\]\.repeat/);
    expect(() =>
      parseManifest(
        withProgram([
          { repeat: WGSL_PROGRAM_LIMITS.maxRepeat, passes: [pass, pass] },
          { repeat: WGSL_PROGRAM_LIMITS.maxRepeat, passes: [pass] },
        ]),
      ),
    ).toThrow(/runs 300000 dispatches, over the 200000/);
    expect(() => parseManifest(withProgram([{ ...pass, bind: [{ binding: 1, buffer: 'nope' }] }]))).toThrow(
      /"nope" is not one of the shard's buffers/,
    );
    expect(() => parseManifest(withProgram([]))).toThrow(/at least one pass/);
    expect(() => parseManifest(withProgram(Array(WGSL_PROGRAM_LIMITS.maxSteps + 1).fill(pass)))).toThrow(
      /program: expected at most 64/,
    );
  });

  it('checks each pass against the shader before running: slots, access, entry points', async () => {
    const job = heatJob({ size: 16, steps: 2, bands: 1 });
    const [shard] = await shardsOf(job);
    const bad = (program: WgslProgramShard['program']) =>
      runWgslShard(ctx, { ...shard!, program }).then(
        () => null,
        (e: HearthError) => e,
      );
    const p = shard!.program.at(-1) as {
      entryPoint: string;
      bind: { binding: number; buffer: string }[];
      dispatch: [number, number, number];
    };
    // A uniform bound to a storage slot.
    const e1 = await bad([{ ...p, bind: [{ binding: 1, buffer: 'params' }] }]);
    expect(e1?.code).toBe('wgsl/manifest');
    expect(e1?.message).toMatch(
      /pass 0 \("band"\): slot 1 \(buffer "params" \(uniform\)\) needs var<uniform>, but line 3 declares "src" as var<storage, read>/,
    );
    // An entry point the shader does not have.
    const e2 = await bad([{ ...p, entryPoint: 'nope' }]);
    expect(e2?.message).toMatch(/no @compute entry point "nope" \(it has: step, band\)/);
    // The band pass uses slot 3 but does not bind it: the device refuses the pipeline.
    const e3 = await bad([{ ...p, bind: p.bind.filter((b) => b.binding !== 3) }]);
    expect(e3?.code).toBe('wgsl/manifest');
    expect(e3?.message).toMatch(/pass 0 \("band"\): the shader does not match its binding manifest/);
  });
});
