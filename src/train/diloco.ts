// DiLoCo (Douillard et al., 2023): each member runs H inner AdamW steps from the round's θ on
// its own data shard and sends Δ = θ − θ_local; the round's θ moves by an outer Nesterov step on
// the average Δ. Here the inner loop runs on the GPU (Trainer), and everything after it — Δ,
// the average and the outer step — is f32 arithmetic in TypeScript in a fixed order
// (Math.fround after every operation), so every member and the hub that hold the same frames
// compute the same θ bits on any machine. Compressed Δs are all-gathered and summed in group
// order (protocol/pseudo-gradient.ts says why not a ring).
//
// The inner optimizer state starts fresh every round (moments zero, step 1): a shard is then a
// pure function of (θ, data range, seed, hyperparameters), which is what lets another volunteer
// or the hub recompute it bit for bit and lets a new volunteer take any shard.
import { HearthError } from '../core/errors.ts';
import { decodeAdd } from '../protocol/pseudo-gradient.ts';
import { type DataRange, sampleBatch } from './data.ts';
import type { Batch, InnerOptimizer, Trainer, TrainerState } from './trainer.ts';

/** What one member's inner loop needs besides θ. */
export interface InnerSpec {
  /** Inner steps H. */
  readonly steps: number;
  /** Sequences per batch (each `context` tokens). */
  readonly sequences: number;
  readonly optimizer: InnerOptimizer;
  /** The member's data shard. */
  readonly shard: DataRange;
  /** Draws the batches: the same seed, the same batches. */
  readonly seed: number;
  /** Learning-rate factor of inner step s (0-based); default 1 (constant). */
  readonly lrFactor?: (step: number) => number;
  /** Called after each inner step with its index and loss (progress; a throw stops the loop). */
  readonly onStep?: (step: number, loss: number) => void;
  /**
   * Start from this checkpoint of the same call (same θ, data, seed and hyperparameters) instead
   * of step 0: the steps after it give the bits an uninterrupted run gives.
   */
  readonly resume?: InnerCheckpoint;
  /**
   * Called after each inner step but the last: when it answers true, the loop's state is read
   * from the device and handed to `onCheckpoint` (awaited) before the next step.
   */
  readonly checkpointDue?: (stepsDone: number) => boolean;
  readonly onCheckpoint?: (cp: InnerCheckpoint) => Promise<void>;
}

/** The inner loop after `step` of its steps: the trainer's state and the losses so far. */
export interface InnerCheckpoint {
  readonly step: number;
  readonly losses: readonly number[];
  readonly state: TrainerState;
}

export interface InnerResult {
  /** Δ = θ − θ_local, f32, in the model's flat layout. */
  readonly delta: Float32Array;
  /** θ_local after the H steps. */
  readonly thetaLocal: Float32Array;
  /** Each inner step's training loss (the batch's mean, before the step's update). */
  readonly losses: number[];
}

/**
 * Runs H inner AdamW steps from θ on the member's shard and returns Δ. `trainer` is reset to θ
 * first (moments zero), so a call is a pure function of its arguments on one adapter.
 *
 * @example
 * const { delta } = await innerLoop(trainer, theta, corpus, { steps: 20, sequences: 8, optimizer, shard, seed });
 */
export async function innerLoop(
  trainer: Trainer,
  theta: Float32Array,
  corpus: Uint8Array,
  spec: InnerSpec,
): Promise<InnerResult> {
  if (trainer.cfg.kind !== 'transformer') {
    throw new HearthError(
      'train/config',
      'innerLoop on a byte corpus needs a transformer; give an MLP its own batches.',
    );
  }
  if (!(Number.isInteger(spec.steps) && spec.steps >= 1)) {
    throw new HearthError('train/config', `inner steps H must be an integer ≥ 1, got ${spec.steps}.`, {
      details: { steps: spec.steps },
    });
  }
  const context = trainer.cfg.context;
  const from = spec.resume;
  if (
    from &&
    !(
      Number.isInteger(from.step) &&
      from.step >= 0 &&
      from.step < spec.steps &&
      from.losses.length === from.step
    )
  ) {
    throw new HearthError(
      'train/config',
      `a checkpoint after step ${from.step} with ${from.losses.length} losses cannot resume a loop of ${spec.steps} steps.`,
      { details: { step: from.step, losses: from.losses.length, steps: spec.steps } },
    );
  }
  if (from) await trainer.importState(from.state);
  else await trainer.setTheta(theta);
  const losses: number[] = from ? [...from.losses] : [];
  for (let s = from ? from.step : 0; s < spec.steps; s++) {
    const batch = sampleBatch(corpus, spec.shard, context, spec.sequences, spec.seed, s);
    const lr = spec.optimizer.lr * (spec.lrFactor ? spec.lrFactor(s) : 1);
    const loss = await trainer.trainStep(batch, { ...spec.optimizer, lr });
    losses.push(loss);
    spec.onStep?.(s, loss);
    if (s + 1 < spec.steps && spec.onCheckpoint && spec.checkpointDue?.(s + 1)) {
      await spec.onCheckpoint({ step: s + 1, losses: [...losses], state: await trainer.exportState() });
    }
  }
  const thetaLocal = await trainer.readTheta();
  return { delta: pseudoGradient(theta, thetaLocal), thetaLocal, losses };
}

/** Δ = θ − θ_local in f32. */
export function pseudoGradient(theta: Float32Array, thetaLocal: Float32Array): Float32Array {
  if (theta.length !== thetaLocal.length) {
    throw new HearthError('train/layout', `θ has ${theta.length} elements, θ_local ${thetaLocal.length}.`);
  }
  const d = new Float32Array(theta.length);
  for (let i = 0; i < d.length; i++) d[i] = Math.fround((theta[i] as number) - (thetaLocal[i] as number));
  return d;
}

/**
 * The average of the members' frames: decoded and added in the order given (group order), in
 * f32, then scaled by 1/G in f32. Any holder of the same frames in the same order gets the same
 * bits. A bad frame throws 'train/frame' (the caller leaves its member out and averages again).
 */
export function averageFrames(frames: readonly Uint8Array[], size: number): Float32Array {
  if (frames.length === 0) throw new HearthError('train/data', 'no pseudo-gradients to average.');
  const acc = new Float32Array(size);
  for (const f of frames) decodeAdd(f, acc);
  const inv = Math.fround(1 / frames.length);
  for (let i = 0; i < size; i++) acc[i] = Math.fround((acc[i] as number) * inv);
  return acc;
}

/** The outer optimizer's hyperparameters: SGD with Nesterov momentum (DiLoCo: lr 0.7, momentum 0.9). */
export interface OuterOptimizer {
  readonly lr: number;
  readonly momentum: number;
}

export const DEFAULT_OUTER: OuterOptimizer = { lr: 0.7, momentum: 0.9 };

/**
 * The outer Nesterov step, PyTorch's SGD(nesterov=True) form, every operation rounded to f32:
 * b ← μ·b + Δ; θ ← θ − lr·(Δ + μ·b). `momentum` (b) is the state the hub keeps beside θ.
 * Returns the new θ and the new momentum (the inputs are not changed).
 */
export function outerStep(
  theta: Float32Array,
  momentum: Float32Array,
  avgDelta: Float32Array,
  opt: OuterOptimizer,
): { theta: Float32Array; momentum: Float32Array } {
  if (theta.length !== momentum.length || theta.length !== avgDelta.length) {
    throw new HearthError('train/layout', 'θ, the outer momentum and Δ must have the same length.', {
      details: { theta: theta.length, momentum: momentum.length, delta: avgDelta.length },
    });
  }
  const f = Math.fround;
  const lr = f(opt.lr);
  const mu = f(opt.momentum);
  const t = new Float32Array(theta.length);
  const b = new Float32Array(theta.length);
  for (let i = 0; i < t.length; i++) {
    const d = avgDelta[i] as number;
    const bi = f(f(mu * (momentum[i] as number)) + d);
    b[i] = bi;
    t[i] = f((theta[i] as number) - f(lr * f(d + f(mu * bi))));
  }
  return { theta: t, momentum: b };
}

/** Mean loss over batches (each batch's mean, averaged), forward only. */
export async function meanLoss(trainer: Trainer, batches: readonly Batch[]): Promise<number> {
  let sum = 0;
  for (const b of batches) sum += await trainer.loss(b);
  return sum / batches.length;
}
