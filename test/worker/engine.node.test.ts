import { afterAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.ts';
import { GpuRuntime } from '../../src/gpu/context.ts';
import { dawnGpu } from '../../src/node/dawn.ts';
import type { WgslShard } from '../../src/protocol/shard.ts';
import { ComputeEngine } from '../../src/worker/engine.ts';
import { saxpyShard } from './wgsl-shards.ts';

// A shard that keeps SwiftShader busy for a while: every invocation spins a long loop.
const SLOW = `@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  var s = 0.0;
  for (var i = 0u; i < 20000u; i++) { s += sin(f32(i + id.x)); }
  out[id.x] = s;
}`;
function slowShard(id: string, budgetMs?: number): WgslShard {
  return {
    v: 1,
    kind: 'wgsl',
    id,
    job: 'test',
    source: SLOW,
    bindings: [{ binding: 0, role: 'output', name: 'out', dtype: 'f32', shape: [64 * 64] }],
    dispatch: [64, 1, 1],
    ...(budgetMs ? { budgetMs } : {}),
  };
}

const engines: ComputeEngine[] = [];
function engine(): ComputeEngine {
  const e = new ComputeEngine({
    runtime: new GpuRuntime({ gpu: dawnGpu() }),
    blobs: { get: async () => null },
  });
  engines.push(e);
  return e;
}
afterAll(async () => {
  for (const e of engines) await e.dispose();
});

describe('compute engine (Dawn)', () => {
  it('refuses shards before probe(), then probes the device and runs a shard with hashed outputs', async () => {
    const e = engine();
    const { shard } = saxpyShard(256, 3);
    await expect(e.runShard(shard)).rejects.toMatchObject({ code: 'input/invalid', message: /before probe/ });
    const report = await e.probe();
    expect(report.adapter.summary).toBeTruthy();
    expect(report.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(Number.isFinite(report.matmulGflops) && report.matmulGflops > 0).toBe(true);
    expect(Number.isFinite(report.copyGBps) && report.copyGBps > 0).toBe(true);
    const progress: string[] = [];
    const r = await e.runShard(shard, (p) => progress.push(p.phase));
    expect(r).toMatchObject({ v: 1, shard: shard.id, job: 'test', kind: 'wgsl', backend: 'webgpu' });
    expect(r.outputs[0]!.sha256).toBe(await sha256Hex(r.outputs[0]!.data));
    expect(progress).toEqual(expect.arrayContaining(['compile', 'run', 'read', 'hash']));
  });

  it('validates shards from the network with errors that name the field', async () => {
    const e = engine();
    await e.probe();
    const { shard } = saxpyShard(8, 1);
    await expect(e.runShard({ ...shard, v: 2 })).rejects.toMatchObject({
      code: 'input/invalid',
      message: /protocol 1/,
    });
    await expect(e.runShard({ ...shard, dispatch: [1, 1] })).rejects.toMatchObject({
      message: /shard.dispatch/,
    });
    const badTensor = shard.bindings.map((b) =>
      b.role === 'input' ? { ...b, tensor: { ...b.tensor, data: new ArrayBuffer(3) } } : b,
    );
    await expect(e.runShard({ ...shard, bindings: badTensor })).rejects.toMatchObject({
      message: /shard.bindings\[1\].tensor: f32\[8\] needs 32 bytes of data, got 3/,
    });
    await expect(e.runShard('nonsense')).rejects.toMatchObject({ message: /shard: expected an object/ });
  });

  it('stops a shard over its budget with shard/timeout, and a cancelled one with shard/cancelled', async () => {
    const e = engine();
    await e.probe();
    await expect(e.runShard(slowShard('slow-1', 5))).rejects.toMatchObject({
      code: 'shard/timeout',
      message: /budget of 5 ms/,
    });
    const running = e.runShard(slowShard('slow-2'));
    expect(e.cancel('slow-2')).toBe(true);
    await expect(running).rejects.toMatchObject({ code: 'shard/cancelled' });
    expect(e.cancel('slow-2')).toBe(false);
    // The worker is still good for the next shard.
    const r = await e.runShard(saxpyShard(16, 1).shard);
    expect(r.outputs).toHaveLength(1);
  });

  it('reports a lost device and recovers for the next shard', async () => {
    const rt = new GpuRuntime({ gpu: dawnGpu() });
    const e = new ComputeEngine({ runtime: rt, blobs: { get: async () => null } });
    engines.push(e);
    await e.probe();
    const first = await rt.context();
    // Lose the device while the shard's dispatch is on it (what a driver reset looks like).
    const inFlight = e.runShard(slowShard('doomed'), (p) => {
      if (p.phase === 'run' && p.done === 0) first.device.destroy();
    });
    await expect(inFlight).rejects.toMatchObject({ code: 'gpu/device-lost' });
    const r = await e.runShard(saxpyShard(32, 2).shard);
    expect((await rt.context()) !== first).toBe(true);
    expect(r.outputs[0]!.shape).toEqual([32]);
  });
});
