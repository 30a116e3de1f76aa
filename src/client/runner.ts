// What a Volunteer runs shards with and keeps results in: the interfaces, and the in-memory
// result queue Node volunteers use (a tab's is IndexedDB: store/outbox.ts).
import type { Shard, ShardProgress, ShardResult } from '../protocol/shard.ts';

/** Runs shards: the page's ComputeWorker, or a ComputeEngine in Node. */
export interface ShardRunner {
  runShard(shard: Shard, onProgress?: (p: ShardProgress) => void): Promise<ShardResult>;
  cancel(shardId: string): Promise<boolean> | boolean;
}

/** Results between "computed" and "the hub has it": the IndexedDB ResultOutbox in a tab. */
export interface ResultQueue {
  add(result: ShardResult): Promise<boolean>;
  pending(): Promise<ShardResult[]>;
  ack(shard: string): Promise<boolean>;
}

/** A ResultQueue in memory, for Node volunteers (the browser's is durable; see store/outbox.ts). */
export class MemoryResultQueue implements ResultQueue {
  readonly #items = new Map<string, ShardResult>();
  async add(r: ShardResult): Promise<boolean> {
    if (this.#items.has(r.shard)) return false;
    this.#items.set(r.shard, r);
    return true;
  }
  async pending(): Promise<ShardResult[]> {
    return [...this.#items.values()];
  }
  async ack(shard: string): Promise<boolean> {
    return this.#items.delete(shard);
  }
}
