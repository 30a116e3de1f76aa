// The hub bench's job: many tiny WGSL shards whose results are computed in JS, no GPU.
import { parseManifest } from '../../src/protocol/kinds/index.ts';

/** A WGSL job of `n` tiny shards (one f32[4] output each), for the hub bench. */
export function manifest(n: number, replication: number) {
  return parseManifest({
    v: 1,
    kind: 'wgsl',
    source: '@compute @workgroup_size(1) fn main() {}',
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
