// The published credit formula (DESIGN.md invariant 5: credits are a deterministic function of
// validated work). For now both kinds use the FLOPs the manifest declares per shard: counting
// them from an ONNX graph (MatMul/Gemm 2·M·N·K, Conv, 1 per element for elementwise ops) needs a
// protobuf reader on the hub and is left for a later change; the formula below stays the same.
import type { Manifest } from './manifest.ts';

/** FLOPs credited for one validated shard of this job. */
export function flopsPerShard(m: Manifest): number {
  return m.flopsPerShard;
}

/**
 * Credit for one validated shard: FLOPs × the job's credit rate.
 *
 * @example
 * shardCredit({ ...manifest, flopsPerShard: 2e9, creditRate: 1e-9 }); // 2
 */
export function shardCredit(m: Manifest): number {
  return flopsPerShard(m) * m.creditRate;
}
