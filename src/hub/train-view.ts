// What a researcher reads of a `train` job: its rounds, each with the θ it started from, how many
// slots were accepted, the mean training loss of its inner steps and the validation loss of its θ
// — the loss curve — and, once the evaluation shard is in, the trained θ. Reads only, pure over
// the store (the Scheduler's records and the canonical results), like job-views.ts.
import { HearthError } from '../core/errors.ts';
import type { TrainManifest, TrainWork } from '../protocol/kinds/train.ts';
import { trainFlops } from '../protocol/kinds/train.ts';
import { paramCount, type TransformerConfig } from '../protocol/train-model.ts';
import { canonicalOf } from './job-views.ts';
import type { HubStore, JobStatus } from './store.ts';

export interface TrainRound {
  readonly round: number;
  /** SHA-256 of θ at the start of this round (f32, flat layout: protocol/train-model.ts). */
  readonly theta: string;
  readonly slots: number;
  readonly accepted: number;
  readonly failed: number;
  /** Mean training loss over the accepted slots' inner steps (absent until one is accepted). */
  readonly trainLoss?: number;
  /** Validation loss of this round's θ, on the held-out range. */
  readonly valLoss?: number;
  /** Tokens the accepted slots trained on. */
  readonly tokens: number;
}

export interface TrainView {
  readonly job: string;
  readonly status: JobStatus;
  readonly model: TransformerConfig;
  readonly params: number;
  readonly rounds: number;
  readonly groupSize: number;
  readonly codec: string;
  /** Rounds opened so far; the last entry (round = `rounds`) is the evaluation of the final θ. */
  readonly curve: readonly TrainRound[];
  /** The trained θ, once the evaluation shard is validated. */
  readonly final?: { readonly theta: string; readonly valLoss: number };
  /** FLOPs of the accepted shards (the credit formula's count). */
  readonly flops: number;
}

const mean = (xs: readonly number[]) =>
  xs.length === 0 ? undefined : xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * The training view of a job; 'job/unknown' when there is none, 'input/invalid' when it is not a
 * train job.
 */
export function trainView(s: HubStore, jobId: string): TrainView {
  const job = s.getJob(jobId);
  if (!job) throw new HearthError('job/unknown', `job ${jobId} does not exist.`, { details: { job: jobId } });
  if (job.manifest.kind !== 'train') {
    throw new HearthError('input/invalid', `job ${jobId} is a ${job.manifest.kind} job, not a train job.`, {
      details: { path: 'job', kind: job.manifest.kind },
    });
  }
  const m = job.manifest as TrainManifest;
  const byRound = new Map<number, { theta: string; shards: ReturnType<HubStore['shardsOfJob']> }>();
  for (const sh of s.shardsOfJob(jobId)) {
    const w = sh.work as TrainWork;
    const e = byRound.get(w.round) ?? { theta: w.theta, shards: [] };
    e.shards.push(sh);
    byRound.set(w.round, e);
  }
  let flops = 0;
  const curve: TrainRound[] = [];
  let final: TrainView['final'];
  for (const [round, { theta, shards }] of [...byRound.entries()].sort((a, b) => a[0] - b[0])) {
    const train: number[] = [];
    const val: number[] = [];
    let accepted = 0;
    let tokens = 0;
    for (const sh of shards) {
      if (sh.status !== 'validated') continue;
      const loss = canonicalOf(s, sh)?.outputs.find((o) => o.name === 'loss');
      if (!loss) continue;
      const w = sh.work as TrainWork;
      accepted++;
      flops += trainFlops(w);
      tokens += w.steps * w.batch * w.model.context;
      const l = new Float32Array(loss.data);
      const inner = [...l.subarray(0, l.length - 1)];
      const m2 = mean(inner);
      if (m2 !== undefined) train.push(m2);
      val.push(l[l.length - 1] as number);
    }
    const trainLoss = mean(train);
    const valLoss = mean(val);
    curve.push({
      round,
      theta,
      slots: shards.length,
      accepted,
      failed: shards.filter((x) => x.status === 'failed').length,
      ...(trainLoss === undefined ? {} : { trainLoss }),
      ...(valLoss === undefined ? {} : { valLoss }),
      tokens,
    });
    if (round === m.rounds && valLoss !== undefined) final = { theta, valLoss };
  }
  return {
    job: jobId,
    status: job.status,
    model: m.model,
    params: paramCount(m.model),
    rounds: m.rounds,
    groupSize: m.groupSize,
    codec: m.compression.codec,
    curve,
    ...(final ? { final } : {}),
    flops,
  };
}
