// The `train` kind on the hub: DiLoCo rounds (protocol/kinds/train.ts says what a shard is).
//
// - Planning: round 0 only, one shard per slot from θ₀, which the hub makes at submit
//   (`prepare`: initParams from the job's seed, stored as a blob) — θ₀ uses Math.log and Math.cos,
//   which engines may round differently, so it is made once and shipped by hash.
// - Validation by recomputation: a shard wants `replication` (≥ 2) agreeing results, so every
//   pseudo-gradient is recomputed by a second volunteer from the same θ, data and seed, unless
//   the job opts into adaptive replication and its volunteer has earned trust (then it is
//   recomputed at the spot-check rate). Replicas agree on the Δ's sketch and the losses (bit for
//   bit under 'exact'), not on the frame: top-k's error feedback makes honest frames differ.
//   Before that, each result's frame must parse, and — for codecs without error feedback — decode
//   to what its sketch says (FRAME_SKETCH_GAP): a result whose frame and sketch disagree is left
//   out as if it had disagreed with everyone.
// - The outer step (`afterJudged`): when the last shard of a round is judged, the accepted Δs
//   (each validated shard's canonical frame, in slot order) are averaged, the outer Nesterov step
//   is taken in f32 (train/diloco.ts), θ and the momentum are stored as blobs, and the next
//   round's shards — whose work names both — are added in the same transaction: θ and the
//   optimizer state are durable every round, and a hub killed between rounds resumes from them.
//   A slot whose shard failed (nobody could be shown right) is left out of the average. After
//   the last round one evaluation shard (H = 0) measures the final θ; it names the trained
//   weights.
import { HearthError, isHearthError } from '../../core/errors.ts';
import {
  recipeOf,
  shardSeed,
  slotRange,
  type TrainManifest,
  type TrainWork,
  trainOutputs,
} from '../../protocol/kinds/train.ts';
import { decodePseudoGradient, frameInfo } from '../../protocol/pseudo-gradient.ts';
import type { OutputTensor } from '../../protocol/shard.ts';
import { SKETCH_ROWS, sketch, sketchGap } from '../../protocol/sketch.ts';
import { initParams, paramCount } from '../../protocol/train-model.ts';
import { averageFrames, outerStep } from '../../train/diloco.ts';
import type { ShardRecord } from '../store.ts';
import { type Candidate, type Decision, decideReplicas } from '../validation.ts';
import type { HubKind, KindOps, PlannedShard, SubmitEnv } from './kind.ts';

/**
 * How far a frame without error feedback may decode from its own sketch (‖sketch(decode(frame)) −
 * sketch‖ / ‖sketch‖): quantization's relative error, with room. A zero, scaled or random frame
 * sent beside an honest sketch is at 1 or more.
 */
export const FRAME_SKETCH_GAP = { none: 1e-5, int8: 0.1, '4bit': 0.5 } as const;

function work(m: TrainManifest, round: number, slot: number, theta: string, momentum?: string): TrainWork {
  const evaluation = round === m.rounds;
  return {
    kind: 'train',
    ...recipeOf(m),
    round,
    slot,
    theta,
    ...(momentum ? { momentum } : {}),
    range: slotRange(m, evaluation ? 1 : m.groupSize, evaluation ? 0 : slot),
    steps: evaluation ? 0 : m.innerSteps,
    seed: shardSeed(m.seed, round, slot),
  };
}

function roundShards(
  m: TrainManifest,
  round: number,
  theta: string,
  momentum?: string,
): PlannedShard<TrainWork>[] {
  const slots = round === m.rounds ? 1 : m.groupSize;
  return Array.from({ length: slots }, (_, slot) => ({ work: work(m, round, slot, theta, momentum) }));
}

function plan(m: TrainManifest): PlannedShard<TrainWork>[] {
  if (!m.theta0) {
    throw new HearthError(
      'input/invalid',
      'manifest.theta0: a train job is planned after the hub made θ₀ (prepare).',
      {
        details: { path: 'manifest.theta0' },
      },
    );
  }
  return roundShards(m, 0, m.theta0);
}

async function prepare(m: TrainManifest, env: SubmitEnv): Promise<TrainManifest> {
  const corpus = env.blob(m.corpus);
  if (corpus && corpus.byteLength !== m.corpusBytes) {
    throw new HearthError(
      'input/invalid',
      `manifest.corpusBytes: the corpus blob ${m.corpus} has ${corpus.byteLength} bytes, the manifest says ${m.corpusBytes}.`,
      { details: { path: 'manifest.corpusBytes', expected: m.corpusBytes, got: corpus.byteLength } },
    );
  }
  if (!env.write) {
    throw new HearthError(
      'input/invalid',
      'manifest.kind: this hub cannot store blobs, so it cannot run train jobs.',
      {
        details: { path: 'manifest.kind' },
      },
    );
  }
  const theta = initParams(m.model, m.seed);
  return { ...m, theta0: env.write(new Uint8Array(theta.buffer)) };
}

/** The frame bytes of a `delta` output (its header says how many of the padded bytes are the frame). */
export function frameOf(o: OutputTensor): Uint8Array {
  const raw = new Uint8Array(o.data);
  if (raw.byteLength < 24)
    throw new HearthError('train/frame', 'pseudo-gradient frame: shorter than its header.');
  const payload = new DataView(o.data).getUint32(16, true);
  const len = 24 + payload;
  if (len > raw.byteLength)
    throw new HearthError('train/frame', 'pseudo-gradient frame: longer than its output.');
  return raw.subarray(0, len);
}

const out = (outputs: readonly OutputTensor[], name: string) => outputs.find((o) => o.name === name);

/**
 * Why a result's frame cannot be used, or undefined when it can: it must parse as a frame of the
 * model's size in the job's codec, and (codecs without error feedback) decode to what its sketch
 * says.
 */
export function frameProblem(w: TrainWork, outputs: readonly OutputTensor[]): string | undefined {
  const d = out(outputs, 'delta');
  const s = out(outputs, 'sketch');
  if (!d || !s) return 'missing delta or sketch';
  const n = paramCount(w.model);
  let frame: Uint8Array;
  try {
    frame = frameOf(d);
    const info = frameInfo(frame, n);
    if (info.codec !== w.compression.codec)
      return `frame codec ${info.codec}, the job's is ${w.compression.codec}`;
  } catch (e) {
    return isHearthError(e) ? e.message : String(e);
  }
  const claimed = new Float32Array(s.data);
  for (const v of claimed) if (!Number.isFinite(v)) return 'the sketch is not finite';
  if (w.compression.codec === 'topk') return undefined;
  const decoded = decodePseudoGradient(frame, n);
  const gap = sketchGap(sketch(decoded, w.seed), claimed);
  const limit = FRAME_SKETCH_GAP[w.compression.codec];
  return gap <= limit
    ? undefined
    : `the frame decodes ${gap.toFixed(3)} (relative) away from its sketch (limit ${limit})`;
}

function validate(
  shard: ShardRecord,
  results: readonly Candidate[],
  rule: Parameters<typeof decideReplicas>[1],
): Decision {
  const w = shard.work as TrainWork;
  // What replicas compare: the sketch and the losses. A result whose frame is unusable keeps a
  // token output of its own, so it agrees with nobody and is judged invalid with the rest.
  const compared: Candidate[] = results.map((r) => {
    if (r.error) return r;
    const problem = w.steps > 0 ? frameProblem(w, r.outputs) : undefined;
    const keep = problem
      ? [
          {
            name: `unusable:${r.id}`,
            dtype: 'u32' as const,
            shape: [0],
            data: new ArrayBuffer(0),
            sha256: r.id,
          },
        ]
      : r.outputs.filter((o) => o.name === 'sketch' || o.name === 'loss');
    return { ...r, outputs: keep };
  });
  return decideReplicas(compared, rule);
}

function checkOutputs(w: TrainWork, outputs: readonly OutputTensor[]): void {
  const want = trainOutputs(w);
  const fail = (message: string, output?: string) =>
    new HearthError('input/invalid', `result.outputs: ${message}`, {
      details: { path: 'result.outputs', ...(output ? { output } : {}) },
    });
  if (outputs.length !== want.length) {
    throw fail(`a train shard returns ${want.map((x) => x.name).join(', ')}; got ${outputs.length} outputs.`);
  }
  for (const x of want) {
    const o = out(outputs, x.name);
    const len = o?.shape[0];
    const exact = x.name !== 'delta';
    if (
      !o ||
      o.dtype !== x.dtype ||
      o.shape.length !== 1 ||
      len === undefined ||
      len > x.maxShape ||
      (exact && len !== x.maxShape) ||
      len === 0
    ) {
      throw fail(
        `expected output "${x.name}" as ${x.dtype}[${exact ? x.maxShape : `≤ ${x.maxShape}`}].`,
        x.name,
      );
    }
  }
  const sk = out(outputs, 'sketch');
  if (sk && sk.shape[0] !== SKETCH_ROWS) throw fail(`expected a sketch of ${SKETCH_ROWS} values.`, 'sketch');
}

function bytesOf(ops: KindOps<TrainWork>, sha: string, what: string): Float32Array {
  const b = ops.blob(sha);
  if (!b) {
    throw new HearthError(
      'blob/missing',
      `train: the ${what} blob ${sha.slice(0, 12)}… is not on this hub.`,
      {
        details: { sha256: sha },
      },
    );
  }
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** The outer step, once the last shard of a round is judged (see the top of this file). */
function afterJudged(m: TrainManifest, judged: ShardRecord, ops: KindOps<TrainWork>): void {
  const w = judged.work as TrainWork;
  if (w.round === m.rounds) return; // the evaluation shard: the job ends when it closes
  const all = ops.shards();
  const round = all.filter((s) => !s.honeypot && (s.work as TrainWork).round === w.round);
  if (round.some((s) => s.status === 'open')) return;
  if (all.some((s) => (s.work as TrainWork).round > w.round)) return; // already stepped
  const n = paramCount(m.model);
  const frames: Uint8Array[] = [];
  for (const s of round.sort((a, b) => (a.work as TrainWork).slot - (b.work as TrainWork).slot)) {
    if (s.status !== 'validated') continue;
    const d = ops.canonical(s)?.find((o) => o.name === 'delta');
    if (d) frames.push(frameOf(d));
  }
  const theta = bytesOf(ops, w.theta, 'θ');
  const momentum = w.momentum ? bytesOf(ops, w.momentum, 'momentum') : new Float32Array(n);
  let next = { theta, momentum };
  // No accepted Δ: θ and the momentum stay as they were (nothing is known to move them).
  if (frames.length > 0) {
    next = outerStep(theta, momentum, averageFrames(frames, n), { lr: m.outerLr, momentum: m.outerMomentum });
  }
  const thetaSha = ops.writeBlob(new Uint8Array(next.theta.buffer));
  const momentumSha = ops.writeBlob(new Uint8Array(next.momentum.buffer));
  ops.addShards(roundShards(m, w.round + 1, thetaSha, momentumSha));
}

/** The `train` kind on the hub (registered in ./index.ts). */
export const trainHub: HubKind<TrainManifest, TrainWork> = {
  kind: 'train',
  needsGpu: true,
  plan,
  prepare,
  checkOutputs,
  addHoneypots() {
    return Promise.reject(
      new HearthError(
        'input/invalid',
        'manifest.autoHoneypots: a train job is checked by recomputation, not honeypots.',
        {
          details: { path: 'manifest.autoHoneypots' },
        },
      ),
    );
  },
  validate,
  jobWideErrors: new Set(['train/config', 'train/diverged']),
  afterJudged,
};
