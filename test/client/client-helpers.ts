// Node volunteers for the client-runtime tests: the real Volunteer runtime with a real
// ComputeEngine on Dawn (SwiftShader) and onnxruntime-web's wasm EP, talking to a real hub over
// real WebSockets. Node has no IndexedDB, so these use the in-memory outbox and blob store; the
// browser tests run the same runtime on the IndexedDB ones.
import WebSocket from 'ws';
import { MemoryBlobStore } from '../../src/client/blobs.ts';
import type { SocketLike } from '../../src/client/hub-session.ts';
import {
  MemoryResultQueue,
  type ShardRunner,
  Volunteer,
  type VolunteerEvent,
  type VolunteerOptions,
} from '../../src/client/volunteer.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import { GpuRuntime } from '../../src/gpu/context.ts';
import { dawnGpu } from '../../src/node/dawn.ts';
import { runOnnx } from '../../src/onnx/run.ts';
import { ComputeEngine } from '../../src/worker/engine.ts';
import { TestKey } from '../node/control-helpers.ts';

export const EMBED_ORIGIN = 'https://embed.example';

/** ws in Node with the Origin a page on an allowed embedding site would send. */
export const nodeSocket =
  (origin = EMBED_ORIGIN) =>
  (url: string) =>
    new WebSocket(url, { origin }) as unknown as SocketLike;

export interface NodeVolunteer {
  readonly volunteer: Volunteer;
  readonly key: TestKey;
  readonly engine: ComputeEngine;
  readonly outbox: MemoryResultQueue;
  readonly blobs: MemoryBlobStore;
  readonly events: VolunteerEvent[];
  dispose(): Promise<void>;
}

/** A volunteer with its own key and engine; `wrap` lets a test interpose on the runner. */
export async function nodeVolunteer(
  hubUrl: string,
  over: Partial<VolunteerOptions> & { wrap?: (r: ShardRunner) => ShardRunner } = {},
): Promise<NodeVolunteer> {
  const key = await TestKey.create();
  const blobs = new MemoryBlobStore();
  const engine = new ComputeEngine({
    runtime: new GpuRuntime({ gpu: dawnGpu() }),
    blobs,
    onnx: (shard, model, opts) => runOnnx(shard, model, opts),
  });
  const caps = await engine.probe();
  const outbox = new MemoryResultQueue();
  const events: VolunteerEvent[] = [];
  const runner: ShardRunner = {
    runShard: (s, p) => engine.runShard(s, p),
    cancel: (id) => engine.cancel(id),
  };
  const { wrap, ...rest } = over;
  const volunteer = new Volunteer({
    hubUrl,
    identity: { id: key.id, publicKey: key.publicKey, sign: (n) => key.sign(n) },
    capabilities: { maxBufferBytes: caps.limits.maxBufferSize, features: [] },
    runner: wrap ? wrap(runner) : runner,
    outbox,
    blobs,
    socket: nodeSocket(),
    idleMs: 50,
    backoff: { minMs: 50, maxMs: 500 },
    onEvent: (e) => events.push(e),
    ...rest,
  });
  return {
    volunteer,
    key,
    engine,
    outbox,
    blobs,
    events,
    async dispose() {
      await volunteer.stop();
      await engine.dispose();
    },
  };
}

/** A WGSL kernel whose output says which shard ran it: y[i] = 10·index + i. */
export const INDEX_KERNEL = `struct Params { index: u32, a: u32, b: u32, c: u32 }
@group(0) @binding(0) var<uniform> index: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(4)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  y[g.x] = f32(index.index) * 10.0 + f32(g.x);
}`;

export const expectedIndexOutput = (i: number) => [0, 1, 2, 3].map((x) => i * 10 + x);

/** A WGSL job of `n` shards of INDEX_KERNEL, and the uniform blobs it names. */
export async function indexJob(n: number, over: Record<string, unknown> = {}) {
  const blobs = Array.from({ length: n }, (_, i) => new Uint8Array(Uint32Array.from([i, 0, 0, 0]).buffer));
  const shas = await Promise.all(blobs.map((b) => sha256Hex(b)));
  const manifest = {
    v: 1,
    kind: 'wgsl',
    source: INDEX_KERNEL,
    shards: shas.map((sha256) => ({
      dispatch: [1, 1, 1],
      bindings: [
        { binding: 0, role: 'uniform', name: 'index', sha256 },
        { binding: 1, role: 'output', name: 'y', dtype: 'f32', shape: [4] },
      ],
    })),
    replication: 2,
    maxReplicas: 4,
    tolerance: 'exact',
    deadlineMs: 5_000,
    creditRate: 1,
    flopsPerShard: 4,
    ...over,
  };
  return { manifest, blobs };
}

/** Polls `cond` (which may be async) every 25 ms until it holds or `ms` pass. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A WGSL kernel that spins `iters` steps of an LCG before writing, so a shard takes long enough
 * to be interrupted: y[i] = 10·index + i + (state mod 7).
 */
export const SPIN_KERNEL = `struct Params { index: u32, iters: u32, b: u32, c: u32 }
@group(0) @binding(0) var<uniform> index: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(4)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  var s = index.index;
  for (var k = 0u; k < index.iters; k++) { s = s * 1664525u + 1013904223u; }
  y[g.x] = f32(index.index) * 10.0 + f32(g.x) + f32(s % 7u);
}`;

export function expectedSpinOutput(i: number, iters: number): number[] {
  let s = i >>> 0;
  for (let k = 0; k < iters; k++) s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  return [0, 1, 2, 3].map((x) => i * 10 + x + (s % 7));
}

/** A WGSL job of `n` SPIN_KERNEL shards. */
export async function spinJob(n: number, iters: number, over: Record<string, unknown> = {}) {
  const blobs = Array.from(
    { length: n },
    (_, i) => new Uint8Array(Uint32Array.from([i, iters, 0, 0]).buffer),
  );
  const { manifest } = await indexJob(n, over);
  const shas = await Promise.all(blobs.map((b) => sha256Hex(b)));
  const shards = (manifest.shards as { bindings: { sha256?: string }[] }[]).map((s, i) => ({
    ...s,
    bindings: s.bindings.map((b) => (b.sha256 ? { ...b, sha256: shas[i] } : b)),
  }));
  return { manifest: { ...manifest, source: SPIN_KERNEL, shards }, blobs };
}
