// What researchers read of a job: its progress (counts, why it failed, what it waits for) and its
// canonical results. Reads only; the Scheduler answers with these.
import { HearthError } from '../core/errors.ts';
import type { OutputTensor } from '../protocol/shard.ts';
import type { HubStore, JobStatus, ShardRecord } from './store.ts';
import type { ShardError } from './validation.ts';

export interface ShardFailure {
  readonly shard: string;
  readonly index: number;
  readonly code?: string;
  readonly message: string;
}

export interface JobProgress {
  readonly job: string;
  readonly status: JobStatus;
  readonly shards: number;
  readonly validated: number;
  readonly failed: number;
  /** Shards with a live lease right now. */
  readonly inFlight: number;
  /** Shards with at least one result still waiting for agreement. */
  readonly done: number;
  /** validated / shards, in [0, 1]. */
  readonly progress: number;
  /** Why the job failed, when one error explains it (a kernel that does not compile). */
  readonly error?: ShardError;
  /** Failed shards with the reason, the first few (`failed` counts them all). */
  readonly failures?: readonly ShardFailure[];
  /** What the job is waiting for, when it waits on something other than compute in flight. */
  readonly waiting?: string;
}

/** A canonical result, and how many volunteers' results agreed on it. */
export interface CanonicalResult {
  readonly shard: string;
  readonly index: number;
  readonly outputs: readonly OutputTensor[];
  /** Agreeing results it rests on: 1 for a single-replica shard (adaptive replication). */
  readonly replicas: number;
}

/** Failed shards listed in progress. */
const MAX_FAILURES_SHOWN = 5;

/** Shard counts and progress of one job, with why it failed or what it waits for. */
export function jobProgress(s: HubStore, jobId: string): JobProgress {
  const job = s.getJob(jobId);
  if (!job) throw new HearthError('job/unknown', `job ${jobId} does not exist.`, { details: { job: jobId } });
  const { shards, validated, failed, inFlight, done } = s.shardStats(jobId);
  let failures: ShardFailure[] | undefined;
  if (failed > 0) {
    // Only a job with failed shards pays for the walk.
    failures = s
      .shardsOfJob(jobId)
      .filter((sh) => !sh.honeypot && sh.status === 'failed')
      .slice(0, MAX_FAILURES_SHOWN)
      .map((sh) => ({
        shard: sh.id,
        index: sh.index,
        ...(sh.error
          ? { code: sh.error.code, message: sh.error.message }
          : { message: `its replicas never agreed within maxReplicas (${job.manifest.maxReplicas}).` }),
      }));
  }
  const r = job.manifest.replication;
  const waiting =
    job.status === 'running' && done > 0 && inFlight === 0
      ? `${done} shard${done === 1 ? ' has' : 's have'} a result and wait${done === 1 ? 's' : ''} for another volunteer: replication ${r} needs ${r} different volunteers to agree, and every connected volunteer has already done ${done === 1 ? 'it' : 'them'}.`
      : undefined;
  return {
    job: jobId,
    status: job.status,
    shards,
    validated,
    failed,
    inFlight,
    done,
    progress: shards === 0 ? 1 : validated / shards,
    ...(job.error ? { error: job.error } : {}),
    ...(failures ? { failures } : {}),
    ...(waiting ? { waiting } : {}),
  };
}

/** The canonical result of each validated shard of a job, in shard order. */
export function jobResults(s: HubStore, jobId: string): CanonicalResult[] {
  return s
    .shardsOfJob(jobId)
    .filter((sh) => !sh.honeypot && sh.status === 'validated')
    .map((sh) => canonicalOf(s, sh))
    .filter((r) => r !== undefined);
}

/**
 * The canonical result of one validated shard, by its id or its index in the job (undefined
 * when it is not validated). One look-up, where `results()` reads every shard of the job.
 */
export function jobResult(
  s: HubStore,
  jobId: string,
  shard: { readonly id: string } | { readonly index: number },
): CanonicalResult | undefined {
  // Regular shards are named `${job}/${index}` at submit.
  const sh = s.getShard('id' in shard ? shard.id : `${jobId}/${shard.index}`);
  if (!sh || sh.job !== jobId || sh.honeypot || sh.status !== 'validated') return undefined;
  return canonicalOf(s, sh);
}

export function canonicalOf(s: HubStore, sh: ShardRecord): CanonicalResult | undefined {
  const results = s.resultsOfShard(sh.id);
  const r = results.find((x) => x.id === sh.canonical);
  if (!r) return undefined;
  const replicas = results.filter((x) => x.status === 'valid').length;
  return { shard: sh.id, index: sh.index, outputs: r.outputs, replicas };
}
