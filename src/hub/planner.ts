// Splits a manifest into shards, by its kind's hub module (hub/kinds/). A shard's work is a small
// JSON description (blob hashes, a row range, a program); a volunteer turns it into a Shard with
// bytes when it takes the lease.
import type { Manifest, ShardWork } from '../protocol/kinds/index.ts';
import { HUB_KINDS, type HubKinds, hubKindOf } from './kinds/index.ts';
import type { PlannedShard as KindPlannedShard } from './kinds/kind.ts';

export type { OnnxWork, ShardWork, WgslWork } from '../protocol/work.ts';

export type PlannedShard = KindPlannedShard<ShardWork>;

/**
 * The job's shards in order, followed by its honeypots.
 *
 * @example
 * planShards(manifest).length; // ceil(rows / shardSize) + honeypots
 */
export function planShards(m: Manifest, kinds: HubKinds = HUB_KINDS): PlannedShard[] {
  return hubKindOf(kinds, m.kind).plan(m);
}
