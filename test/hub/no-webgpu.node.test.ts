// A volunteer whose browser has no WebGPU reports `maxBufferBytes: 0`: the hub leases it ONNX
// shards (onnxruntime-web runs them on WebAssembly) and never a WGSL shard.
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import { parseManifest } from '../../src/protocol/kinds/index.ts';
import { CAPS, H, wgslManifest } from './fixtures.ts';

const NO_GPU = { maxBufferBytes: 0, features: [] as string[] };

describe('volunteers without WebGPU', () => {
  it('get ONNX shards and never WGSL ones; a GPU volunteer gets the WGSL shards', () => {
    const s = new Scheduler(new MemoryStore());
    const wgsl = s.submit(wgslManifest(2), 0);
    const onnx = s.submit(
      parseManifest({
        v: 1,
        kind: 'onnx',
        model: H('a'),
        inputs: { x: { sha256: H('b'), dtype: 'f32', shape: [8, 4] } },
        batchInput: 'x',
        shardSize: 4,
        replication: 1,
        tolerance: { rtol: 1e-4, atol: 1e-6 },
        deadlineMs: 10_000,
        creditRate: 1,
        flopsPerShard: 10,
      }),
      0,
    );
    const got = [];
    for (let i = 0; i < 4; i++) got.push(s.lease(`plain-${i}`, NO_GPU, 0)?.job);
    // The WGSL job came first, yet only the two ONNX shards went out.
    expect(got).toEqual([onnx, onnx, undefined, undefined]);
    expect(s.lease('gpu', CAPS, 0)?.job).toBe(wgsl);
  });
});
