// The hub bench's job: many tiny WGSL shards whose results are computed in JS, no GPU.
import { parseManifest } from '../../src/protocol/kinds/index.ts';

/** A WGSL job of `n` tiny shards (one f32[4] output each), for the hub bench. */
/** A kernel that declares what the fixture's shards bind: a uniform index, an f32 output. */
export const FIXTURE_KERNEL = `@group(0) @binding(0) var<uniform> index: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(1) fn main() { y[0] = f32(index.x); }`;

export function manifest(n: number, replication: number) {
  return parseManifest({
    v: 1,
    kind: 'wgsl',
    source: FIXTURE_KERNEL,
    shards: Array.from({ length: n }, (_, i) => ({
      dispatch: [1, 1, 1],
      bindings: [
        { binding: 0, role: 'uniform', name: 'index', sha256: (i % 16).toString(16).repeat(64) },
        { binding: 1, role: 'output', name: 'y', dtype: 'f32', shape: [4] },
      ],
    })),
    replication,
    maxReplicas: replication + 2,
    tolerance: { rtol: 1e-4, atol: 1e-6 },
    deadlineMs: 600_000,
    creditRate: 0.5,
    flopsPerShard: 100,
  });
}
