// Shared helpers for the hub tests: manifests, results with real hashes, a seeded RNG.
import { sha256Hex } from '../../src/core/hash.ts';
import { type Manifest, parseManifest } from '../../src/protocol/kinds/index.ts';
import type { ShardResult } from '../../src/protocol/shard.ts';

/** mulberry32: small, seeded, good enough to pick volunteers and lies deterministically. */
/** A kernel that declares what the fixture's shards bind: a uniform index, an f32 output. */
export const FIXTURE_KERNEL = `@group(0) @binding(0) var<uniform> index: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(1) fn main() { y[0] = f32(index.x); }`;

export function seededRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const H = (c: string) => c.repeat(64);
export const CAPS = { maxBufferBytes: 1 << 30, features: [] as string[] };

/** The honest answer of shard `i`: four floats that differ from every other shard's. */
export function truth(i: number): Float32Array {
  return Float32Array.from([i, i + 0.5, -i, 1 / (i + 1)]);
}

export function wgslManifest(
  shards: number,
  over: Record<string, unknown> = {},
  honeypots: { expected: string }[] = [],
): Manifest {
  const spec = (i: number) => ({
    dispatch: [1, 1, 1],
    bindings: [
      { binding: 0, role: 'uniform', name: 'index', sha256: (i % 16).toString(16).repeat(64) },
      { binding: 1, role: 'output', name: 'y', dtype: 'f32', shape: [4] },
    ],
  });
  return parseManifest({
    v: 1,
    kind: 'wgsl',
    source: FIXTURE_KERNEL,
    shards: Array.from({ length: shards }, (_, i) => spec(i)),
    replication: 2,
    maxReplicas: 5,
    tolerance: { rtol: 1e-4, atol: 1e-6 },
    deadlineMs: 10_000,
    creditRate: 0.5,
    flopsPerShard: 100,
    ...(honeypots.length
      ? {
          honeypots: honeypots.map((h, k) => ({
            ...spec(1000 + k),
            expected: [{ name: 'y', sha256: h.expected, dtype: 'f32', shape: [4] }],
          })),
        }
      : {}),
    ...over,
  });
}

export async function result(shard: string, job: string, y: Float32Array): Promise<ShardResult> {
  const data = y.slice().buffer;
  return {
    v: 1,
    shard,
    job,
    kind: 'wgsl',
    outputs: [{ name: 'y', dtype: 'f32', shape: [y.length], data, sha256: await sha256Hex(data) }],
    backend: 'webgpu',
    device: 'test',
    ms: 1,
  };
}

/** The shard's index from its id ("job-…/7" → 7). */
export const indexOf = (shard: string) => Number(shard.slice(shard.lastIndexOf('/') + 1));
