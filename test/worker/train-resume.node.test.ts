// A training shard stopped mid-loop (a reload) goes on from its checkpoint and ends on the bits of
// an uninterrupted run; a checkpoint of other work or a damaged one is dropped, never used.
//
// The checkpoint store here is a Map behind the engine's `ShardCheckpoints` seam: IndexedDB does
// not exist in Node. The real store (store/checkpoints.ts on IndexedDB) is exercised by the
// Chromium reload test in test/node/volunteer-e2e.node.test.ts and by test/store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.ts';
import { GpuRuntime } from '../../src/gpu/context.ts';
import { HUB_KINDS } from '../../src/hub/kinds/index.ts';
import { dawnGpu } from '../../src/node/dawn.ts';
import { parseManifest } from '../../src/protocol/kinds/index.ts';
import type { TrainManifest, TrainShard, TrainWork } from '../../src/protocol/kinds/train.ts';
import type { ShardProgress, ShardResult } from '../../src/protocol/shard.ts';
import type { Checkpoint, CheckpointState } from '../../src/store/db.ts';
import { initParams } from '../../src/train/index.ts';
import { ComputeEngine, type ShardCheckpoints } from '../../src/worker/engine.ts';
import { smallCorpus, tinyTrainJob } from '../train/job-helpers.ts';

/** Checkpoints in memory, with every save kept for the assertions. */
class MemoryCheckpoints implements ShardCheckpoints {
  readonly byShard = new Map<string, Checkpoint>();
  readonly saves: number[] = [];
  async load(shard: string) {
    return this.byShard.get(shard) ?? null;
  }
  async save(shard: string, step: number, state: CheckpointState) {
    this.saves.push(step);
    this.byShard.set(shard, { shard, step, state: { ...state }, savedAt: Date.now() });
  }
  async clear(shard: string) {
    this.byShard.delete(shard);
  }
}

const H = 6;
let shard: TrainShard;
let straight: ShardResult;
const engines: ComputeEngine[] = [];
function engine(checkpoints?: ShardCheckpoints): ComputeEngine {
  const e = new ComputeEngine({
    runtime: new GpuRuntime({ gpu: dawnGpu() }),
    blobs: { get: async () => null },
    ...(checkpoints ? { checkpoints, checkpointEveryMs: 0 } : {}),
  });
  engines.push(e);
  return e;
}

const bits = (r: ShardResult) => r.outputs.map((o) => `${o.name}:${o.sha256}`);

beforeAll(async () => {
  const corpus = smallCorpus();
  const raw = parseManifest(await tinyTrainJob(corpus, { innerSteps: H })) as TrainManifest;
  const theta = initParams(raw.model, raw.seed);
  const m = { ...raw, theta0: await sha256Hex(theta) };
  const [first] = HUB_KINDS.train.plan(m);
  if (!first) throw new Error('the train kind planned no shard');
  shard = {
    v: 1,
    kind: 'train',
    id: 'shard-1',
    job: 'job-1',
    work: first.work as TrainWork,
    theta: theta.slice().buffer as ArrayBuffer,
    corpus: corpus.slice().buffer as ArrayBuffer,
  };
  const e = engine();
  await e.probe();
  straight = await e.runShard(shard);
}, 120_000);
afterAll(async () => {
  for (const e of engines) await e.dispose();
});

describe('train shard checkpoints (Dawn)', () => {
  it('a shard cancelled after step 3 resumes there and gives the bits of an uninterrupted run', async () => {
    const cps = new MemoryCheckpoints();
    const e = engine(cps);
    await e.probe();
    const first: ShardProgress[] = [];
    await expect(
      e.runShard(shard, (p) => {
        first.push(p);
        // As a reload would: the tab goes away right after a checkpoint.
        if (p.phase === 'checkpoint' && p.done === 3) e.cancel(shard.id);
      }),
    ).rejects.toMatchObject({ code: 'shard/cancelled' });
    expect(cps.saves).toEqual([1, 2, 3]);
    expect(cps.byShard.get(shard.id)?.step).toBe(3);
    expect(first.some((p) => p.phase === 'resume')).toBe(false);

    const again: ShardProgress[] = [];
    const resumed = await e.runShard(shard, (p) => again.push(p));
    expect(again.find((p) => p.phase === 'resume')).toMatchObject({ done: 3, total: H });
    // Steps 3..5 ran, not 0..5: saves go on from 4.
    expect(cps.saves).toEqual([1, 2, 3, 4, 5]);
    expect(bits(resumed)).toEqual(bits(straight));
    expect(cps.byShard.has(shard.id)).toBe(false);
  }, 120_000);

  it('a fresh engine (a reloaded tab: new device, new trainer) resumes to the same bits', async () => {
    const cps = new MemoryCheckpoints();
    const a = engine(cps);
    await a.probe();
    await expect(
      a.runShard(shard, (p) => {
        if (p.phase === 'checkpoint' && p.done === 4) a.cancel(shard.id);
      }),
    ).rejects.toMatchObject({ code: 'shard/cancelled' });
    await a.dispose();
    const b = engine(cps);
    await b.probe();
    const seen: ShardProgress[] = [];
    const r = await b.runShard(shard, (p) => seen.push(p));
    expect(seen.find((p) => p.phase === 'resume')?.done).toBe(4);
    expect(bits(r)).toEqual(bits(straight));
  }, 120_000);

  it('a checkpoint of other work, or a damaged one, is dropped and the shard starts from step 0', async () => {
    const cps = new MemoryCheckpoints();
    const e = engine(cps);
    await e.probe();
    await expect(
      e.runShard(shard, (p) => {
        if (p.phase === 'checkpoint' && p.done === 2) e.cancel(shard.id);
      }),
    ).rejects.toMatchObject({ code: 'shard/cancelled' });
    const good = cps.byShard.get(shard.id);
    if (!good) throw new Error('no checkpoint was saved');
    const spoiled: [string, Checkpoint][] = [
      ['another work under the same id', { ...good, state: { ...good.state, work: '{"other":1}' } }],
      ['a short θ', { ...good, state: { ...good.state, theta: new ArrayBuffer(8) } }],
      ['no moments', { ...good, state: { ...good.state, m: 'gone' } }],
      ['a step past the loop', { ...good, step: H }],
    ];
    for (const [why, cp] of spoiled) {
      cps.byShard.set(shard.id, cp);
      const seen: string[] = [];
      const r = await e.runShard(shard, (p) => seen.push(p.phase));
      expect(seen, why).not.toContain('resume');
      expect(bits(r), why).toEqual(bits(straight));
    }
  }, 240_000);
});
