// Splits a manifest into shards. A shard's work is a small JSON description (blob hashes, a row
// range); the server turns it into a protocol Shard with bytes when it hands it out.
import type { ExpectedOutput, Manifest, TensorBlob, WgslShardSpec } from '../protocol/manifest.ts';

/** An ONNX shard: rows [start, end) of the batch input, every other input whole. */
export interface OnnxWork {
  readonly kind: 'onnx';
  readonly model: string;
  readonly inputs: Readonly<Record<string, TensorBlob>>;
  readonly batchInput: string;
  /** Absent for honeypots, whose inputs are already one batch. */
  readonly rows?: readonly [number, number];
}
export interface WgslWork {
  readonly kind: 'wgsl';
  readonly spec: WgslShardSpec;
}
export type ShardWork = OnnxWork | WgslWork;

export interface PlannedShard {
  readonly work: ShardWork;
  readonly expected?: readonly ExpectedOutput[];
}

/**
 * The job's shards in order, followed by its honeypots.
 *
 * @example
 * planShards(manifest).length; // ceil(rows / shardSize) + honeypots
 */
export function planShards(m: Manifest): PlannedShard[] {
  if (m.kind === 'wgsl') {
    return [
      ...m.shards.map((spec) => ({ work: { kind: 'wgsl' as const, spec } })),
      ...(m.honeypots ?? []).map(({ expected, ...spec }) => ({
        work: { kind: 'wgsl' as const, spec },
        expected,
      })),
    ];
  }
  const rows = m.inputs[m.batchInput]!.shape[0]!;
  const out: PlannedShard[] = [];
  for (let start = 0; start < rows; start += m.shardSize) {
    out.push({
      work: {
        kind: 'onnx',
        model: m.model,
        inputs: m.inputs,
        batchInput: m.batchInput,
        rows: [start, Math.min(rows, start + m.shardSize)],
      },
    });
  }
  for (const h of m.honeypots ?? []) {
    out.push({
      work: { kind: 'onnx', model: m.model, inputs: h.inputs, batchInput: m.batchInput },
      expected: h.expected,
    });
  }
  return out;
}
