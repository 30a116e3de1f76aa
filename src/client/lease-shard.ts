// A lease names its work by blob hashes; the worker runs protocol Shards with bytes. This turns
// one into the other: parse the work (a lease is network input), then assemble the Shard
// (protocol/work.ts) from verified blobs; the worker's parseShard checks it once more.
import type { LeaseMessage } from '../protocol/control.ts';
import { parseShardWork, shardFromWork } from '../protocol/kinds/index.ts';
import type { Shard } from '../protocol/shard.ts';
import type { BlobGetter } from '../protocol/work.ts';

export type { BlobGetter } from '../protocol/work.ts';

/**
 * The Shard a lease asks for, with its input bytes. For ONNX work the model itself is not
 * loaded here: the worker reads it from the shared blob cache.
 *
 * @example
 * const shard = await shardFromLease(lease, blobs);
 * const result = await worker.runShard(shard);
 */
export function shardFromLease(
  lease: LeaseMessage,
  blobs: BlobGetter,
  opts: { budgetMs?: number } = {},
): Promise<Shard> {
  const work = parseShardWork(lease.work, 'lease.work');
  return shardFromWork(
    work,
    {
      shard: lease.shard,
      job: lease.job,
      ...(lease.kernel ? { kernel: lease.kernel } : {}),
      ...(lease.outputs ? { outputs: lease.outputs } : {}),
      ...(opts.budgetMs === undefined ? {} : { budgetMs: opts.budgetMs }),
    },
    blobs,
  );
}
