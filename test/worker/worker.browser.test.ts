// The real compute worker (comlink, module worker) in Chromium: WebGPU on SwiftShader,
// onnxruntime-web, IndexedDB blob cache.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import type { OnnxShard, WgslDispatchShard as WgslShard } from '../../src/protocol/shard.ts';
import { type ComputeWorker, startComputeWorker } from '../../src/worker/client.ts';
import { mlp } from '../onnx/models.ts';
import { assertClose, uniform } from '../onnx/reference.ts';
import { badShards, saxpyShard } from './wgsl-shards.ts';

/** MLP outputs vs float64: f32 on either backend, K ≤ 32. */
const MLP_TOL = { rtol: 1e-4, atol: 1e-5 };

let worker: ComputeWorker;
beforeAll(() => {
  worker = startComputeWorker({ dbName: `hearth-worker-test-${Date.now()}` });
});
afterAll(async () => worker?.terminate());

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

describe('compute worker in Chromium (comlink)', () => {
  it('does no GPU work before probe(): a shard is refused with a HearthError, not a string', async () => {
    const err = await rejection(worker.runShard(saxpyShard(8, 1).shard));
    expect(err).toBeInstanceOf(HearthError);
    expect((err as HearthError).code).toBe('input/invalid');
    expect((err as HearthError).message).toMatch(/before probe/);
  });

  it('probes the adapter: info, limits, features and measured rates', async () => {
    const caps = await worker.probe();
    expect(caps.adapter.summary).toMatch(/swiftshader|\w/i);
    expect(caps.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
    expect(typeof caps.features.shaderF16).toBe('boolean');
    expect(caps.matmulGflops).toBeGreaterThan(0);
    expect(caps.copyGBps).toBeGreaterThan(0);
  });

  it('runs a WGSL shard; inputs are transferred, outputs come back hashed', async () => {
    const { shard, x, y } = saxpyShard(500, -1.5);
    const input = (shard.bindings[1] as Extract<WgslShard['bindings'][number], { role: 'input' }>).tensor
      .data;
    const phases: string[] = [];
    const r = await worker.runShard(shard, (p) => phases.push(p.phase));
    expect(input.byteLength).toBe(0); // transferred to the worker, not copied
    expect(r.backend).toBe('webgpu');
    const out = r.outputs[0]!;
    expect(out.sha256).toBe(await sha256Hex(out.data));
    const got = new Float32Array(out.data);
    for (let i = 0; i < 500; i++) expect(got[i]).toBe(Math.fround(Math.fround(-1.5 * x[i]!) + y[i]!));
    await new Promise((r) => setTimeout(r, 50)); // progress callbacks are messages too
    expect(phases).toEqual(expect.arrayContaining(['compile', 'run', 'read']));
  });

  for (const [i, { what }] of badShards().entries()) {
    it(`returns a typed error for a WGSL shard: ${what}`, async () => {
      // Fresh buffers each time: runShard transfers (detaches) a shard's inputs.
      const bad = badShards()[i]!;
      const err = await rejection(worker.runShard(bad.shard));
      expect(err).toBeInstanceOf(HearthError);
      expect((err as HearthError).code).toBe(bad.code);
      for (const part of bad.parts) expect((err as HearthError).message).toContain(part);
    });
  }

  for (const backend of ['auto', 'wasm'] as const) {
    it(`runs an ONNX shard from the blob cache (backend ${backend})`, async () => {
      const model = mlp(5);
      const sha = await worker.putBlob(model.bytes.slice());
      expect(sha).toBe(await sha256Hex(model.bytes));
      const batch = 7;
      const x = uniform(42, batch * model.dims.D);
      const shard: OnnxShard = {
        v: 1,
        kind: 'onnx',
        id: `mlp-${backend}`,
        job: 'test',
        model: sha,
        backend,
        inputs: { x: { dtype: 'f32', shape: [batch, model.dims.D], data: x.slice().buffer } },
      };
      const r = await worker.runShard(shard);
      expect(r.backend).toBe(backend === 'auto' ? 'webgpu' : 'wasm');
      const want = model.reference(x, batch);
      const probs = r.outputs.find((o) => o.name === 'probs')!;
      expect(probs.shape).toEqual([batch, model.dims.O]);
      assertClose(new Float32Array(probs.data), want.probs, MLP_TOL, `probs (${r.backend})`);
      for (const o of r.outputs) expect(o.sha256).toBe(await sha256Hex(o.data));
    });
  }

  it('reports a model missing from the cache as blob/missing', async () => {
    const shard: OnnxShard = {
      v: 1,
      kind: 'onnx',
      id: 'no-model',
      job: 'test',
      model: 'cd'.repeat(32),
      inputs: { x: { dtype: 'f32', shape: [1], data: new ArrayBuffer(4) } },
    };
    const err = await rejection(worker.runShard(shard));
    expect(err).toBeInstanceOf(HearthError);
    expect((err as HearthError).code).toBe('blob/missing');
  });

  it('cancels a running shard', async () => {
    const slow: WgslShard = {
      v: 1,
      kind: 'wgsl',
      id: 'slow',
      job: 'test',
      source: `@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  var s = 0.0;
  for (var i = 0u; i < 20000u; i++) { s += sin(f32(i + id.x)); }
  out[id.x] = s;
}`,
      bindings: [{ binding: 0, role: 'output', name: 'out', dtype: 'f32', shape: [64 * 64] }],
      dispatch: [64, 1, 1],
    };
    const running = worker.runShard(slow);
    await new Promise((r) => setTimeout(r, 20));
    expect(await worker.cancel('slow')).toBe(true);
    const err = await rejection(running);
    expect(err).toBeInstanceOf(HearthError);
    expect((err as HearthError).code).toBe('shard/cancelled');
  });
});
