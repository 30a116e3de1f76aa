// Honeypots the hub computes itself on its own Dawn device (and onnxruntime-web in Node): the
// answers are checked against the kernel's known truth and a float64 reference, and the
// scheduler then accepts a right answer to such a honeypot and rejects a wrong one.
import { afterAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.ts';
import { GpuRuntime } from '../../src/gpu/context.ts';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { type OracleBlobs, withHubHoneypots } from '../../src/hub/oracle.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import { dawnGpu } from '../../src/node/dawn.ts';
import { runOnnx } from '../../src/onnx/run.ts';
import { parseManifest } from '../../src/protocol/kinds/index.ts';
import type { WgslDispatchSpec } from '../../src/protocol/manifest.ts';
import { ComputeEngine } from '../../src/worker/engine.ts';
import { expectedIndexOutput, indexJob } from '../client/client-helpers.ts';
import { mlp } from '../onnx/models.ts';
import { uniform } from '../onnx/reference.ts';
import { CAPS, seededRng } from './fixtures.ts';

class MapBlobs implements OracleBlobs {
  readonly map = new Map<string, Uint8Array>();
  read(sha: string) {
    return this.map.get(sha);
  }
  async write(bytes: Uint8Array) {
    const h = await sha256Hex(bytes);
    this.map.set(h, bytes.slice());
    return h;
  }
}

const blobs = new MapBlobs();
const engine = new ComputeEngine({
  runtime: new GpuRuntime({ gpu: dawnGpu() }),
  blobs: { get: async (h) => blobs.map.get(h) ?? null },
  onnx: (shard, model, opts) => runOnnx(shard, model, opts),
});
afterAll(() => engine.dispose());

describe('hub-computed honeypots', () => {
  it('WGSL: runs randomly chosen shards of the job on Dawn and keeps their true answers', async () => {
    await engine.probe();
    const { manifest, blobs: uniforms } = await indexJob(6, { autoHoneypots: 2 });
    for (const u of uniforms) await blobs.write(u);
    const m = parseManifest(manifest);
    const out = await withHubHoneypots(m, { runner: engine, blobs, random: seededRng(3) });
    expect(out.kind).toBe('wgsl');
    if (out.kind !== 'wgsl' || m.kind !== 'wgsl') return;
    expect(out.honeypots).toHaveLength(2);
    expect(out.shards).toEqual(m.shards);
    for (const h of out.honeypots!) {
      const uniformSha = (h as WgslDispatchSpec).bindings.find((b) => b.role === 'uniform');
      const index = uniforms.findIndex(
        (_, i) =>
          ((m.shards[i] as WgslDispatchSpec).bindings[0] as { sha256: string }).sha256 ===
          (uniformSha as { sha256: string }).sha256,
      );
      expect(index).toBeGreaterThanOrEqual(0);
      const truth = new Float32Array(expectedIndexOutput(index));
      expect(h.expected).toEqual([
        { name: 'y', sha256: await sha256Hex(truth.buffer), dtype: 'f32', shape: [4] },
      ]);
    }
    // Two different shards were picked.
    expect(new Set(out.honeypots!.map((h) => JSON.stringify((h as WgslDispatchSpec).bindings))).size).toBe(2);
    // A manifest that asks for none is returned as it is.
    expect(
      await withHubHoneypots(m.kind === 'wgsl' ? { ...m, autoHoneypots: 0 } : m, { runner: engine, blobs }),
    ).toEqual({
      ...m,
      autoHoneypots: 0,
    });
  });

  it('ONNX: a honeypot is a row slice stored as its own blob, answered within tolerance; the scheduler uses it', async () => {
    await engine.probe();
    const model = mlp(5);
    const rows = 12;
    const x = Float32Array.from(uniform(8, rows * model.dims.D, -1, 1));
    const modelSha = await blobs.write(model.bytes);
    const xSha = await blobs.write(new Uint8Array(x.buffer));
    const m = parseManifest({
      v: 1,
      kind: 'onnx',
      model: modelSha,
      inputs: { x: { sha256: xSha, dtype: 'f32', shape: [rows, model.dims.D] } },
      batchInput: 'x',
      shardSize: 4,
      outputs: ['probs'],
      replication: 2,
      tolerance: { rtol: 1e-4, atol: 1e-6 },
      deadlineMs: 10_000,
      creditRate: 1,
      flopsPerShard: 10,
      autoHoneypots: 1,
    });
    const out = await withHubHoneypots(m, { runner: engine, blobs, random: seededRng(9) });
    if (out.kind !== 'onnx') throw new Error('expected an ONNX manifest');
    const [hp] = out.honeypots!;
    const slice = hp!.inputs.x!;
    expect(slice.shape).toEqual([4, model.dims.D]);
    const sliceBytes = blobs.read(slice.sha256)!;
    const sliceRows = new Float32Array(sliceBytes.buffer, sliceBytes.byteOffset, sliceBytes.byteLength / 4);
    // The slice is one of the job's shards: find which rows it holds.
    const start = [0, 4, 8].find((s) => sliceRows.every((v, i) => v === x[s * model.dims.D + i]));
    expect(start).toBeDefined();
    const probsBlob = blobs.read(hp!.expected[0]!.sha256)!;
    const probs = new Float32Array(probsBlob.buffer, probsBlob.byteOffset, probsBlob.byteLength / 4);
    const ref = model.reference(x, rows).probs;
    probs.forEach((p, i) => {
      const want = ref[start! * model.dims.O + i]!;
      expect(Math.abs(p - want)).toBeLessThanOrEqual(1e-6 + 1e-4 * Math.abs(want));
    });

    // Through the scheduler: the honeypot is leased like any shard; the hub's answer is the truth.
    const store = new MemoryStore();
    const s = new Scheduler(store, {
      honeypotRate: 1,
      rng: seededRng(1),
      blob: (h) => {
        const b = blobs.read(h);
        return b ? (b.slice().buffer as ArrayBuffer) : undefined;
      },
    });
    const job = s.submit(out, 0);
    const honest = s.lease('honest', CAPS, 0)!;
    const liar = s.lease('liar', CAPS, 0)!;
    expect(honest.work).toMatchObject({ kind: 'onnx', inputs: { x: { sha256: slice.sha256 } } });
    expect(liar.shard).toBe(honest.shard);
    const answer = async (v: string, shard: string, data: ArrayBuffer) =>
      s.submitResult(
        v,
        {
          v: 1,
          shard,
          job,
          kind: 'onnx',
          outputs: [
            { name: 'probs', dtype: 'f32', shape: [4, model.dims.O], data, sha256: await sha256Hex(data) },
          ],
          backend: 'wasm',
          device: 'test',
          ms: 1,
        },
        1,
      );
    // Within tolerance of the hub's answer (not bit-equal): still valid.
    const near = probs.slice();
    near[0] = near[0]! * (1 + 1e-6);
    expect((await answer('honest', honest.shard, near.buffer)).status).toBe('valid');
    const wrong = probs.slice();
    wrong[3] = wrong[3]! + 0.25;
    expect((await answer('liar', liar.shard, wrong.buffer)).status).toBe('invalid');
    expect(s.volunteer('liar').reputation).toBeLessThan(s.volunteer('honest').reputation);
  });
});
