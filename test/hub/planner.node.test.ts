import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { planShards } from '../../src/hub/planner.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import { parseManifest } from '../../src/protocol/kinds/index.ts';
import { CAPS, H, wgslManifest } from './fixtures.ts';

const onnx = parseManifest({
  v: 1,
  kind: 'onnx',
  model: H('a'),
  inputs: {
    x: { sha256: H('b'), dtype: 'f32', shape: [10, 4] },
    w: { sha256: H('c'), dtype: 'f32', shape: [4] },
  },
  batchInput: 'x',
  shardSize: 3,
  replication: 1,
  tolerance: 'exact',
  deadlineMs: 60_000,
  creditRate: 1,
  flopsPerShard: 24,
  honeypots: [
    {
      inputs: {
        x: { sha256: H('d'), dtype: 'f32', shape: [1, 4] },
        w: { sha256: H('c'), dtype: 'f32', shape: [4] },
      },
      expected: [{ name: 'y', sha256: H('e'), dtype: 'f32', shape: [1] }],
    },
  ],
});

describe('shard planning', () => {
  it('splits an onnx batch along dim 0, the last shard shorter, honeypots after', () => {
    const plan = planShards(onnx);
    expect(plan.map((p) => (p.work.kind === 'onnx' ? p.work.rows : undefined))).toEqual([
      [0, 3],
      [3, 6],
      [6, 9],
      [9, 10],
      undefined,
    ]);
    expect(plan[4]!.expected).toHaveLength(1);
  });

  it('plans one wgsl shard per listed dispatch', () => {
    expect(planShards(wgslManifest(3))).toHaveLength(3);
  });

  it('hands out onnx work with its row range', () => {
    const s = new Scheduler(new MemoryStore(), { honeypotRate: 0 });
    const job = s.submit(onnx, 0);
    const g = s.lease('a', CAPS, 0)!;
    expect(g.work).toMatchObject({ kind: 'onnx', model: H('a'), batchInput: 'x', rows: [0, 3] });
    expect(s.progress(job).shards).toBe(4);
  });
});
