// One model on one device: θ, its gradient and AdamW's moments as flat f32 tensors (layout in
// config.ts), the per-parameter tensors the kernels read copied out of θ after every update.
import { HearthError } from '../core/errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { Recorder } from '../gpu/recorder.ts';
import { emptyTensor, type GpuTensor, readTensor, uploadTensor } from '../gpu/tensor.ts';
import { adamw } from '../kernels/index.ts';
import { BYTE_VOCAB, type ModelConfig, type ParamEntry, paramCount, paramLayout } from './config.ts';
import { mlpStep } from './mlp.ts';
import { type GpuBatch, Params, Temps } from './model-types.ts';
import { transformerStep } from './transformer.ts';

/** A batch on the host. Transformer: token ids and next-token targets, [rows] each. */
export interface Batch {
  /** Transformer: Int32Array [rows] of token ids (rows = sequences · context). MLP: Float32Array [rows · inputs]. */
  readonly inputs: Int32Array | Float32Array;
  /** Class (next token) per row. */
  readonly targets: Int32Array;
}

/** AdamW's hyperparameters for the inner loop (the step count is the Trainer's). */
export interface InnerOptimizer {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

export const DEFAULT_INNER: InnerOptimizer = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 };

const BYTES = 4;

/** A trainer's whole optimizer state (`Trainer.exportState`): θ, AdamW's moments, its step count. */
export interface TrainerState {
  readonly theta: Float32Array;
  readonly m: Float32Array;
  readonly v: Float32Array;
  readonly steps: number;
}

/**
 * A model on a device, trained in place. Every step is one recording: forward, backward, the
 * gradient gathered into the flat vector, AdamW, θ copied back into the parameter tensors.
 *
 * @example
 * const tr = await Trainer.create(ctx, cfg, initParams(cfg, 1));
 * const loss = await tr.trainStep(batch, DEFAULT_INNER);
 * const theta = await tr.readTheta();
 * tr.destroy();
 */
export class Trainer {
  readonly ctx: GpuContext;
  readonly cfg: ModelConfig;
  readonly layout: readonly ParamEntry[];
  readonly size: number;
  private readonly theta: GpuTensor;
  private readonly grad: GpuTensor;
  private readonly m: GpuTensor;
  private readonly v: GpuTensor;
  private readonly params = new Params();
  private steps = 0;
  private destroyed = false;

  private constructor(ctx: GpuContext, cfg: ModelConfig) {
    this.ctx = ctx;
    this.cfg = cfg;
    this.layout = paramLayout(cfg);
    this.size = paramCount(cfg);
    this.theta = emptyTensor(ctx, [this.size], 'f32', 'train.theta');
    this.grad = emptyTensor(ctx, [this.size], 'f32', 'train.grad');
    this.m = emptyTensor(ctx, [this.size], 'f32', 'train.m');
    this.v = emptyTensor(ctx, [this.size], 'f32', 'train.v');
    for (const e of this.layout) this.params.set(e.name, emptyTensor(ctx, e.shape, 'f32', `train.${e.name}`));
  }

  /** A trainer holding `theta` (length paramCount(cfg)), moments zero. */
  static async create(ctx: GpuContext, cfg: ModelConfig, theta: Float32Array): Promise<Trainer> {
    const t = new Trainer(ctx, cfg);
    await t.setTheta(theta);
    return t;
  }

  /** AdamW steps taken since the last setTheta. */
  get step(): number {
    return this.steps;
  }

  /** Replaces θ and resets the optimizer (moments zero, step 0). */
  async setTheta(theta: Float32Array): Promise<void> {
    this.check(theta, 'θ');
    this.ctx.device.queue.writeBuffer(this.theta.buffer, 0, theta.buffer, theta.byteOffset, theta.byteLength);
    const zeros = new Float32Array(this.size);
    this.ctx.device.queue.writeBuffer(this.m.buffer, 0, zeros);
    this.ctx.device.queue.writeBuffer(this.v.buffer, 0, zeros);
    this.steps = 0;
    const rec = new Recorder(this.ctx, 'train.setTheta');
    this.scatterTheta(rec);
    await rec.submit();
  }

  readTheta(): Promise<Float32Array> {
    return readTensor(this.theta as GpuTensor<'f32'>);
  }

  /**
   * θ, AdamW's two moments and its step count: everything a later `importState` needs to go on
   * bit for bit where this trainer is (a checkpoint of the inner loop).
   */
  async exportState(): Promise<TrainerState> {
    const [theta, m, v] = await Promise.all(
      [this.theta, this.m, this.v].map((t) => readTensor(t as GpuTensor<'f32'>)),
    );
    return { theta: theta as Float32Array, m: m as Float32Array, v: v as Float32Array, steps: this.steps };
  }

  /** Puts back a state from `exportState` (of a trainer of the same model). */
  async importState(state: TrainerState): Promise<void> {
    this.check(state.theta, 'θ');
    this.check(state.m, 'the first moment');
    this.check(state.v, 'the second moment');
    if (!(Number.isSafeInteger(state.steps) && state.steps >= 0)) {
      throw new HearthError(
        'train/layout',
        `the optimizer's step count must be a whole number ≥ 0, got ${state.steps}.`,
      );
    }
    const q = this.ctx.device.queue;
    for (const [dst, src] of [
      [this.theta, state.theta],
      [this.m, state.m],
      [this.v, state.v],
    ] as const) {
      q.writeBuffer(dst.buffer, 0, src.buffer, src.byteOffset, src.byteLength);
    }
    this.steps = state.steps;
    const rec = new Recorder(this.ctx, 'train.importState');
    this.scatterTheta(rec);
    await rec.submit();
  }

  /** The gradient of the last `lossAndGrad` (or `trainStep`), flat. */
  readGrad(): Promise<Float32Array> {
    return readTensor(this.grad as GpuTensor<'f32'>);
  }

  /** Mean loss of a batch (forward only). */
  async loss(batch: Batch): Promise<number> {
    return this.record('train.loss', batch, false, null);
  }

  /**
   * The logits of the forward pass over `inputs` (transformer: token ids in whole sequences of
   * `context`; MLP: features [rows · inputs]): [rows, classes] row-major, classes = 256 for the
   * transformer. It is the same recording as `loss` (targets all 0), so the logits are the bits
   * the loss is computed from. With `row`, only that row's logits are read back [classes].
   *
   * @example
   * const last = await tr.logits(ids, { row: ids.length - 1 }); // next-byte logits, 256 floats
   */
  async logits(
    inputs: Int32Array | Float32Array,
    opts: { readonly row?: number } = {},
  ): Promise<Float32Array> {
    if (this.destroyed) throw new HearthError('input/invalid', 'this Trainer was destroyed; make a new one.');
    const cfg = this.cfg;
    const classes = cfg.kind === 'mlp' ? cfg.classes : BYTE_VOCAB;
    const rows = cfg.kind === 'mlp' ? Math.floor(inputs.length / cfg.inputs) : inputs.length;
    const { row } = opts;
    if (row !== undefined && !(Number.isInteger(row) && row >= 0 && row < rows)) {
      throw new HearthError(
        'input/invalid',
        `logits: row must be an integer from 0 to ${rows - 1}, got ${row}.`,
        {
          details: { row, rows },
        },
      );
    }
    const gb = this.upload({ inputs, targets: new Int32Array(rows) });
    const tmp = new Temps();
    tmp.keep(gb.inputs);
    tmp.keep(gb.targets);
    const rec = new Recorder(this.ctx, 'train.logits');
    try {
      const step = cfg.kind === 'mlp' ? mlpStep : transformerStep;
      const { logits } = await (step as typeof mlpStep)(rec, cfg as never, this.params, gb, tmp, null);
      let out = logits;
      if (row !== undefined) {
        out = tmp.keep(emptyTensor(this.ctx, [classes], 'f32', 'train.logits.row'));
        rec.copy(logits.buffer, row * classes * BYTES, out.buffer, 0, classes * BYTES);
      }
      await rec.submit();
      return await readTensor(out as GpuTensor<'f32'>);
    } finally {
      tmp.releaseAll();
    }
  }

  /** Mean loss of a batch and its gradient, kept on the device (`readGrad`, `applyGrad`). */
  async lossAndGrad(batch: Batch): Promise<number> {
    return this.record('train.grad', batch, true, null);
  }

  /** One AdamW step with `grad` (flat, host) instead of the device's own: data-parallel training. */
  async applyGrad(grad: Float32Array, opt: InnerOptimizer): Promise<void> {
    this.check(grad, 'gradient');
    this.ctx.device.queue.writeBuffer(this.grad.buffer, 0, grad.buffer, grad.byteOffset, grad.byteLength);
    const rec = new Recorder(this.ctx, 'train.adamw');
    await this.recordUpdate(rec, opt);
    await rec.submit();
  }

  /** One inner step: forward, backward and AdamW in one recording. Returns the batch's mean loss. */
  async trainStep(batch: Batch, opt: InnerOptimizer): Promise<number> {
    return this.record('train.step', batch, true, opt);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const t of [this.theta, this.grad, this.m, this.v, ...this.params.values()]) t.release();
  }

  private check(x: Float32Array, what: string): void {
    if (this.destroyed) throw new HearthError('input/invalid', 'this Trainer was destroyed; make a new one.');
    if (!(x instanceof Float32Array) || x.length !== this.size) {
      throw new HearthError(
        'train/layout',
        `${what} must be a Float32Array of ${this.size} elements (the model's parameter count), got ${x.length}.`,
        { details: { expected: this.size, got: x.length } },
      );
    }
  }

  private scatterTheta(rec: Recorder): void {
    for (const e of this.layout) {
      rec.copy(this.theta.buffer, e.offset * BYTES, this.params.get(e.name).buffer, 0, e.size * BYTES);
    }
  }

  private async recordUpdate(rec: Recorder, opt: InnerOptimizer): Promise<void> {
    this.steps++;
    await adamw(rec, this.theta, this.grad, this.m, this.v, { ...opt, step: this.steps });
    this.scatterTheta(rec);
  }

  private upload(batch: Batch): GpuBatch {
    const rows = batch.targets.length;
    const cfg = this.cfg;
    const want = cfg.kind === 'mlp' ? rows * cfg.inputs : rows;
    const okKind =
      cfg.kind === 'mlp' ? batch.inputs instanceof Float32Array : batch.inputs instanceof Int32Array;
    const okRows = cfg.kind === 'mlp' || rows % cfg.context === 0;
    if (!okKind || batch.inputs.length !== want || rows === 0 || !okRows) {
      throw new HearthError(
        'train/data',
        cfg.kind === 'mlp'
          ? `an MLP batch needs Float32Array inputs of rows·${cfg.inputs} and ≥ 1 row; got ${batch.inputs.length} inputs for ${rows} targets.`
          : `a transformer batch needs Int32Array token ids, one target each, in whole sequences of ${cfg.context}; got ${batch.inputs.length} ids for ${rows} targets.`,
        { details: { rows, inputs: batch.inputs.length } },
      );
    }
    const inputs = uploadTensor(
      this.ctx,
      batch.inputs,
      cfg.kind === 'mlp' ? [rows, cfg.inputs] : [rows],
      'train.inputs',
    );
    const targets = uploadTensor(this.ctx, batch.targets, [rows], 'train.targets');
    return { inputs, targets, rows };
  }

  private async record(
    label: string,
    batch: Batch,
    withGrad: boolean,
    opt: InnerOptimizer | null,
  ): Promise<number> {
    if (this.destroyed) throw new HearthError('input/invalid', 'this Trainer was destroyed; make a new one.');
    const gb = this.upload(batch);
    const tmp = new Temps();
    tmp.keep(gb.inputs);
    tmp.keep(gb.targets);
    const rec = new Recorder(this.ctx, label);
    try {
      const grads = withGrad ? new Map<string, GpuTensor>() : null;
      const step = this.cfg.kind === 'mlp' ? mlpStep : transformerStep;
      // Both step functions take their own config kind; `cfg` is the one this Trainer was made for.
      const { loss } = await (step as typeof mlpStep)(rec, this.cfg as never, this.params, gb, tmp, grads);
      if (grads) {
        for (const e of this.layout) {
          const g = grads.get(e.name);
          if (!g) throw new HearthError('train/layout', `no gradient was made for "${e.name}".`);
          rec.copy(g.buffer, 0, this.grad.buffer, e.offset * BYTES, e.size * BYTES);
        }
      }
      if (opt) await this.recordUpdate(rec, opt);
      await rec.submit();
      const rows = await readTensor(loss as GpuTensor<'f32'>);
      let sum = 0;
      for (let i = 0; i < rows.length; i++) sum += rows[i] as number;
      const mean = sum / rows.length;
      if (!Number.isFinite(mean)) {
        throw new HearthError(
          'train/diverged',
          `the loss is ${mean} at step ${this.steps}: lower the learning rate or check the data.`,
          { details: { step: this.steps } },
        );
      }
      return mean;
    } finally {
      tmp.releaseAll();
    }
  }
}
