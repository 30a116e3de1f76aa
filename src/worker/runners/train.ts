// The `train` kind in the worker: one DiLoCo shard. From the round's θ it measures the validation
// loss, runs H inner AdamW steps on its data shard (train/diloco.ts innerLoop), and returns the
// pseudo-gradient Δ = θ − θ_local compressed, the sketch of the raw Δ and the losses (the
// outputs are listed in protocol/kinds/train.ts). An evaluation shard (H = 0) returns only the
// validation loss.
//
// One Trainer per device and model shape, reused across shards: `innerLoop` resets θ and the
// moments first, so a shard stays a pure function of its work.
//
// Checkpoints (when the engine has a store: the tab's IndexedDB): every `checkpointEveryMs` the
// inner loop's whole state — θ_local, AdamW's moments and step count, the losses so far — is
// saved under the shard's id with the work it belongs to. A reloaded tab that runs the same
// shard again (client/volunteer.ts resumes its unfinished training leases) goes on from there;
// batches and learning rates are functions of the step index, so the result has the bits of an
// uninterrupted run. The checkpoint is cleared when the result is made.
//
// Error feedback (top-k only: the codecs without it lose too little to carry) is kept here, per
// job and slot, in this worker's memory: what this volunteer's frame dropped in one round is
// added to its Δ the next time it runs the same slot. A reload loses it (nothing is lost but
// that delay); a replica's residual counts its own frame, which may not be the one the hub used.
import { HearthError } from '../../core/errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { corpusSplit, type TrainShard } from '../../protocol/kinds/train.ts';
import { ErrorFeedback, encodePseudoGradient } from '../../protocol/pseudo-gradient.ts';
import type { HostTensor } from '../../protocol/shard.ts';
import { sketch } from '../../protocol/sketch.ts';
import type { TransformerConfig } from '../../protocol/train-model.ts';
import type { CheckpointState } from '../../store/db.ts';
import { validationBatches } from '../../train/data.ts';
import { type InnerCheckpoint, innerLoop, meanLoss } from '../../train/diloco.ts';
import { DEFAULT_INNER, Trainer } from '../../train/trainer.ts';
import { checkAborted } from '../abort.ts';
import { CHECKPOINT_EVERY_MS, type KindRunner, type ShardCheckpoints } from './runner.ts';

const trainers = new WeakMap<GpuContext, Map<string, Trainer>>();

async function trainerFor(ctx: GpuContext, cfg: TransformerConfig, theta: Float32Array): Promise<Trainer> {
  let byCfg = trainers.get(ctx);
  if (!byCfg) trainers.set(ctx, (byCfg = new Map()));
  const key = JSON.stringify(cfg);
  const have = byCfg.get(key);
  if (have) return have;
  // One model at a time per device: a volunteer rarely trains two shapes, and each holds θ,
  // its gradient and two moments on the GPU.
  for (const t of byCfg.values()) t.destroy();
  byCfg.clear();
  const t = await Trainer.create(ctx, cfg, theta);
  byCfg.set(key, t);
  return t;
}

/** Residuals of error feedback by `job/slot`, the few most recent. */
const residuals = new Map<string, ErrorFeedback>();
const MAX_RESIDUALS = 8;

function feedbackFor(job: string, slot: number, size: number): ErrorFeedback {
  const key = `${job}/${slot}`;
  let ef = residuals.get(key);
  if (!ef || ef.residual.length !== size) {
    ef = new ErrorFeedback(size);
    residuals.set(key, ef);
    while (residuals.size > MAX_RESIDUALS) {
      const oldest = residuals.keys().next().value;
      if (oldest === undefined) break;
      residuals.delete(oldest);
    }
  }
  return ef;
}

const f32 = (xs: readonly number[] | Float32Array): HostTensor => {
  const a = Float32Array.from(xs);
  return { dtype: 'f32', shape: [a.length], data: a.buffer as ArrayBuffer };
};

/** A frame's bytes as a u32 tensor, zero-padded to a multiple of 4 bytes. */
function frameTensor(frame: Uint8Array): HostTensor {
  const padded = new Uint8Array(Math.ceil(frame.byteLength / 4) * 4);
  padded.set(frame);
  return { dtype: 'u32', shape: [padded.byteLength / 4], data: padded.buffer as ArrayBuffer };
}

/** The inner learning rate's factor at step s of H. */
export function lrFactor(schedule: 'constant' | 'cosine', steps: number): (s: number) => number {
  if (schedule === 'constant' || steps <= 1) return () => 1;
  return (s) => 0.1 + 0.45 * (1 + Math.cos((Math.PI * s) / (steps - 1)));
}

export const runTrainShard: KindRunner<TrainShard> = async (shard, env) => {
  const w = shard.work;
  const ctx = await env.runtime.context();
  const theta = new Float32Array(shard.theta);
  const corpus = new Uint8Array(shard.corpus);
  const trainer = await trainerFor(ctx, w.model, theta);
  const total = w.steps + 1;
  const progress = (done: number) => env.onProgress?.({ shard: shard.id, phase: 'run', done, total });
  progress(0);
  checkAborted(env.signal);
  const [vs, ve] = corpusSplit(w).validation;
  const evalSet = validationBatches(corpus, { start: vs, end: ve }, w.model.context, w.batch, w.evalBatches);
  if (evalSet.length === 0) {
    throw new HearthError('train/data', `the held-out range [${vs}, ${ve}) holds no validation batch.`, {
      details: { start: vs, end: ve },
    });
  }
  await trainer.setTheta(theta);
  const valLoss = await meanLoss(trainer, evalSet);
  progress(1);
  if (w.steps === 0) {
    return {
      outputs: [{ name: 'loss', tensor: f32([valLoss]) }],
      backend: 'webgpu',
      device: ctx.adapter.summary,
    };
  }
  const work = JSON.stringify(w);
  const cps = env.checkpoints;
  const resume = cps ? await loadInner(cps, shard.id, work, trainer.size, w.steps) : undefined;
  if (resume) env.onProgress?.({ shard: shard.id, phase: 'resume', done: resume.step, total: w.steps });
  const everyMs = env.checkpointEveryMs ?? CHECKPOINT_EVERY_MS;
  let lastSave = performance.now();
  const r = await innerLoop(trainer, theta, corpus, {
    ...(resume ? { resume } : {}),
    ...(cps
      ? {
          checkpointDue: () => performance.now() - lastSave >= everyMs,
          onCheckpoint: async (cp: InnerCheckpoint) => {
            checkAborted(env.signal);
            // A checkpoint that cannot be written (quota, a closed database) costs a restart after a
            // reload, never the shard.
            const saved = await cps.save(shard.id, cp.step, innerState(work, cp)).then(
              () => true,
              () => false,
            );
            lastSave = performance.now();
            if (saved)
              env.onProgress?.({ shard: shard.id, phase: 'checkpoint', done: cp.step, total: w.steps });
          },
        }
      : {}),
    steps: w.steps,
    sequences: w.batch,
    optimizer: { ...DEFAULT_INNER, lr: w.innerLr, weightDecay: w.weightDecay },
    shard: { start: w.range[0], end: w.range[1] },
    seed: w.seed,
    lrFactor: lrFactor(w.innerSchedule, w.steps),
    onStep: (s) => {
      checkAborted(env.signal);
      progress(s + 2);
    },
  });
  const frame =
    w.compression.codec === 'topk'
      ? feedbackFor(shard.job, w.slot, r.delta.length).encode(r.delta, w.compression)
      : encodePseudoGradient(r.delta, w.compression);
  // The result is about to go to the outbox; the checkpoint has done its work.
  await cps?.clear(shard.id).catch(() => {});
  return {
    outputs: [
      { name: 'delta', tensor: frameTensor(frame) },
      { name: 'sketch', tensor: f32(sketch(r.delta, w.seed)) },
      { name: 'loss', tensor: f32([...r.losses, valLoss]) },
    ],
    backend: 'webgpu',
    device: ctx.adapter.summary,
  };
};

/** A checkpoint as stored: the work it belongs to, θ_local, AdamW's moments and step, the losses. */
function innerState(work: string, cp: InnerCheckpoint): CheckpointState {
  const copy = (a: Float32Array | Float64Array): ArrayBuffer => a.slice().buffer as ArrayBuffer;
  return {
    work,
    theta: copy(cp.state.theta),
    m: copy(cp.state.m),
    v: copy(cp.state.v),
    adamSteps: cp.state.steps,
    losses: copy(Float64Array.from(cp.losses)),
  };
}

/**
 * The shard's checkpoint when it is one of this very work (θ, data, seed, hyperparameters) and
 * whole; anything else — another work under the same id, a short tensor, a missing field, a
 * storage error — is dropped and the shard starts from step 0: a bad checkpoint costs time,
 * never a wrong result.
 */
async function loadInner(
  cps: ShardCheckpoints,
  shard: string,
  work: string,
  size: number,
  steps: number,
): Promise<InnerCheckpoint | undefined> {
  const cp = await cps.load(shard).catch(() => null);
  if (!cp) return undefined;
  const s = cp.state;
  const f32 = (v: unknown) =>
    v instanceof ArrayBuffer && v.byteLength === size * 4 ? new Float32Array(v) : undefined;
  const theta = f32(s.theta);
  const m = f32(s.m);
  const v = f32(s.v);
  const losses =
    s.losses instanceof ArrayBuffer && s.losses.byteLength === cp.step * 8 ? s.losses : undefined;
  const adamSteps = s.adamSteps;
  if (
    s.work !== work ||
    !theta ||
    !m ||
    !v ||
    !losses ||
    typeof adamSteps !== 'number' ||
    !(Number.isInteger(cp.step) && cp.step > 0 && cp.step < steps)
  ) {
    await cps.clear(shard).catch(() => {});
    return undefined;
  }
  return { step: cp.step, losses: [...new Float64Array(losses)], state: { theta, m, v, steps: adamSteps } };
}
