// `npm start`'s training job: a tiny byte-level transformer trained by DiLoCo on the repository's
// corpus (data/train/corpus.txt) across the run's volunteers, next to the demo jobs (start.ts).
// Here: its manifest and corpus, what the board reads while it runs (`GET /v1/jobs/:id/train`),
// and what the run leaves of it at the end — `hearth results` style files (weights, loss.csv,
// loss.png, model.onnx, train.json: train-download.ts), the loss at its first and last round,
// and a line of text sampled from the trained model on this machine's GPU (Dawn), as
// `hearth sample` prints it.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HubApi } from '../client/hub-api.ts';
import type { TrainProgress } from '../protocol/api.ts';
import { sampleText } from '../train/sample.ts';
import { Trainer } from '../train/trainer.ts';
import { acquireDawn } from './dawn.ts';
import { downloadTrainResults, trainedModel } from './train-download.ts';

const CORPUS = fileURLToPath(new URL('../../data/train/corpus.txt', import.meta.url));

/**
 * The sizes of the run's training job. Small (CI, `--small`): ~30k parameters, 2 rounds of 4
 * inner steps on 24 kB of the corpus — 5 shards, each computed twice: about a minute of SwiftShader
 * time in Chromium. Full: the same model, 3 rounds of 6 steps on the whole corpus.
 */
export const START_TRAIN = {
  small: { corpusBytes: 24_000, rounds: 2, innerSteps: 4 },
  full: { corpusBytes: Number.POSITIVE_INFINITY, rounds: 3, innerSteps: 6 },
  /** `hearth sample`'s line in the summary: prompt, bytes, temperature, seed, top-k. */
  sample: { prompt: 'The ', tokens: 24, temperature: 0.8, seed: 1, topK: 40 },
} as const;

/** The training job's manifest and its one blob, the corpus (bytes are tokens). */
export function trainDemoJob(small: boolean): {
  manifest: Record<string, unknown>;
  blobs: Map<string, Uint8Array>;
} {
  const size = small ? START_TRAIN.small : START_TRAIN.full;
  const all = readFileSync(CORPUS);
  const corpus = new Uint8Array(all.subarray(0, Math.min(all.byteLength, size.corpusBytes)));
  const sha = createHash('sha256').update(corpus).digest('hex');
  return {
    manifest: {
      v: 1,
      kind: 'train',
      name: 'tiny transformer on the village corpus',
      model: { kind: 'transformer', width: 32, depth: 1, heads: 2, context: 16 },
      corpus: sha,
      corpusBytes: corpus.byteLength,
      heldOut: 0.1,
      innerSteps: size.innerSteps,
      batch: 4,
      innerLr: 0.01,
      compression: { codec: 'int8' },
      evalBatches: 2,
      rounds: size.rounds,
      groupSize: 2,
      outerLr: 0.7,
      outerMomentum: 0.9,
      seed: 7,
      replication: 2,
      maxReplicas: 4,
      tolerance: 'exact',
      deadlineMs: 120_000,
      creditRate: 1e-9,
    },
    blobs: new Map([[sha, corpus]]),
  };
}

/** Where a train job stands, for the board: rounds closed, the latest losses. */
export interface TrainStand {
  /** The round running now (0-based; `rounds` is the evaluation of the final θ). */
  readonly round: number;
  readonly rounds: number;
  /** Rounds (and the evaluation) whose every slot has been judged. */
  readonly closed: number;
  readonly valLoss?: number;
  readonly trainLoss?: number;
  readonly final: boolean;
}

/** The board's reading of a train view. */
export function trainStand(view: TrainProgress): TrainStand {
  const last = view.curve.at(-1);
  const latest = (k: 'valLoss' | 'trainLoss') =>
    [...view.curve].reverse().find((r) => r[k] !== undefined)?.[k];
  const valLoss = latest('valLoss');
  const trainLoss = latest('trainLoss');
  return {
    round: last?.round ?? 0,
    rounds: view.rounds,
    closed: view.curve.filter((r) => r.accepted + r.failed >= r.slots).length,
    ...(valLoss === undefined ? {} : { valLoss }),
    ...(trainLoss === undefined ? {} : { trainLoss }),
    final: view.final !== undefined,
  };
}

/** One round of the run's curve, as the summary prints it. */
export interface StartLossPoint {
  readonly round: number;
  readonly trainLoss?: number;
  readonly valLoss?: number;
}

/** What the run leaves of its training job. */
export interface StartTrain {
  readonly rounds: number;
  readonly params: number;
  /** FLOPs of the accepted shards, by the credit formula (train-6N/1). */
  readonly flops: number;
  /** Every round's losses; the last entry is the evaluation of the final θ. */
  readonly curve: readonly StartLossPoint[];
  /** Files written (weights/*.npy, config.json, loss.csv, loss.png, model.onnx, train.json). */
  readonly files: readonly string[];
  /** Text sampled from the trained model (prompt included), or why there is none. */
  readonly sample?: string;
  readonly sampleError?: string;
}

/** The validation loss at the first and the last round that has one. */
export function lossEnds(t: StartTrain): { first?: StartLossPoint; last?: StartLossPoint } {
  const withVal = t.curve.filter((p) => p.valLoss !== undefined);
  const first = withVal[0];
  const last = withVal.at(-1);
  return { ...(first ? { first } : {}), ...(last ? { last } : {}) };
}

/**
 * Writes the job's `hearth results` files into `out` and samples a line from the trained θ.
 * Sampling needs a WebGPU adapter in this process (Dawn); without one the run still has its
 * curve and weights, and `sampleError` says why there is no text.
 */
export async function finishTrain(
  api: HubApi,
  job: string,
  out: string,
  opts: { sample: boolean },
): Promise<StartTrain> {
  const written = await downloadTrainResults(api, job, out);
  const view = await api.train(job);
  const curve = view.curve.map((r) => ({
    round: r.round,
    ...(r.trainLoss === undefined ? {} : { trainLoss: r.trainLoss }),
    ...(r.valLoss === undefined ? {} : { valLoss: r.valLoss }),
  }));
  const base = { rounds: view.rounds, params: view.params, flops: view.flops, curve, files: written.files };
  if (!opts.sample) return base;
  try {
    return { ...base, sample: await sampleLine(api, job) };
  } catch (e) {
    return { ...base, sampleError: e instanceof Error ? e.message : String(e) };
  }
}

/** `hearth sample JOB --prompt "The " --tokens 24`, as one line (newlines shown as spaces). */
async function sampleLine(api: HubApi, job: string): Promise<string> {
  const { cfg, theta } = await trainedModel(api, job);
  const s = START_TRAIN.sample;
  const prompt = new TextEncoder().encode(s.prompt);
  const ctx = await acquireDawn();
  try {
    const trainer = await Trainer.create(ctx, cfg, theta);
    try {
      const text = await sampleText(trainer, prompt, {
        tokens: s.tokens,
        temperature: s.temperature,
        seed: s.seed,
        topK: s.topK,
      });
      return `${s.prompt}${new TextDecoder().decode(text)}`.replace(/\s+/g, ' ');
    } finally {
      trainer.destroy();
    }
  } finally {
    ctx.destroy();
  }
}

/** The results folder's files, relative names, for the summary. */
export const TRAIN_FILES = 'weights/*.npy, config.json, loss.csv, loss.png, model.onnx, train.json';
