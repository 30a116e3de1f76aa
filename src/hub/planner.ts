// Splits a manifest into shards. A shard's work is a small JSON description (blob hashes, a row
// range); the server turns it into a protocol Shard with bytes when it hands it out.
import type { ExpectedOutput, Manifest } from '../protocol/manifest.ts';
import type { ShardWork } from '../protocol/work.ts';

export type { OnnxWork, ShardWork, WgslWork } from '../protocol/work.ts';

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
