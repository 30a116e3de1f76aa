// Honeypots whose answers the hub computes itself (issue 4: "computed on its own Dawn device, or
// given in the manifest"). At submit, for a job that asks for `autoHoneypots: n`, the hub picks
// n of the job's own shards at random, runs them on its own device, and adds them as honeypots
// with the answers it got. They look exactly like the job's other shards to a volunteer — same
// kernel or model, same kind of inputs — so a volunteer cannot tell them apart and skip them.
import { at } from '../core/at.ts';
import { HearthError } from '../core/errors.ts';
import { type Manifest, type ShardWork, shardContextOf, shardFromWork } from '../protocol/kinds/index.ts';
import type { ExpectedOutput } from '../protocol/manifest.ts';
import type { Shard, ShardResult } from '../protocol/shard.ts';
import { HUB_KINDS, type HubKinds, hubKindOf } from './kinds/index.ts';
import type { OracleEnv } from './kinds/kind.ts';

/** Runs a shard on the hub's own device (the node layer passes a ComputeEngine on Dawn). */
export interface OracleRunner {
  runShard(shard: Shard): Promise<ShardResult>;
}

/** The hub's blob folder: verified reads, and writes of bytes it made itself. */
export interface OracleBlobs {
  read(sha256: string): ArrayBuffer | Uint8Array | undefined;
  /** Stores bytes under their SHA-256 and resolves with it. */
  write(bytes: Uint8Array): Promise<string>;
}

export interface OracleOptions {
  readonly runner: OracleRunner;
  readonly blobs: OracleBlobs;
  /** Uniform in [0, 1); seeded in tests. */
  readonly random?: () => number;
}

/**
 * The manifest with `autoHoneypots` of its shards computed by the hub and appended to its
 * honeypots (their expected outputs, and for tolerance jobs the output bytes, stored as blobs).
 * A manifest without `autoHoneypots` comes back unchanged.
 *
 * @example
 * const m2 = await withHubHoneypots(manifest, { runner: engine, blobs });
 * m2.honeypots?.length; // manifest's own + autoHoneypots
 */
export async function withHubHoneypots(
  m: Manifest,
  opts: OracleOptions,
  kinds: HubKinds = HUB_KINDS,
): Promise<Manifest> {
  const n = m.autoHoneypots ?? 0;
  if (n === 0) return m;
  const random = opts.random ?? Math.random;
  const blob = async (sha: string): Promise<Uint8Array> => {
    const b = opts.blobs.read(sha);
    if (!b)
      throw new HearthError('blob/missing', `blob ${sha} is not on the hub.`, { details: { sha256: sha } });
    return b instanceof Uint8Array ? b : new Uint8Array(b);
  };
  const env: OracleEnv<ShardWork> = {
    run: async (work, i) =>
      opts.runner.runShard(
        await shardFromWork(
          work,
          { shard: `hub-honeypot/${i}`, job: 'hub-oracle', ...shardContextOf(m) },
          { get: blob },
        ),
      ),
    async expectedOf(r: ShardResult): Promise<ExpectedOutput[]> {
      const out: ExpectedOutput[] = [];
      for (const o of r.outputs) {
        // Tolerance jobs compare values, so the scheduler needs the bytes, not only the hash.
        if (m.tolerance !== 'exact') await opts.blobs.write(new Uint8Array(o.data));
        out.push({ name: o.name, sha256: o.sha256, dtype: o.dtype, shape: [...o.shape] });
      }
      return out;
    },
    blob,
    write: (bytes) => opts.blobs.write(bytes),
    pick: (count, k) => pick(count, k, random),
  };
  return hubKindOf(kinds, m.kind).addHoneypots(m, n, env);
}

/** `n` distinct indices in [0, count), at random (all of them when count ≤ n). */
function pick(count: number, n: number, random: () => number): number[] {
  const all = Array.from({ length: count }, (_, i) => i);
  const k = Math.min(n, count);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (count - i));
    [all[i], all[j]] = [at(all, j, 'shard indices'), at(all, i, 'shard indices')];
  }
  return all.slice(0, k);
}
