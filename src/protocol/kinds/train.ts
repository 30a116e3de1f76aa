// The `train` job kind on the protocol layer: data-parallel training of a built-in byte-level
// transformer by DiLoCo across volunteers' tabs. A job runs `rounds` rounds; in each, `groupSize`
// shards (one per slot, each on its own slice of the corpus) run H inner AdamW steps from the
// round's θ and return their pseudo-gradient Δ = θ − θ_local compressed, its sketch and their
// losses; the hub averages the accepted Δs, takes the outer Nesterov step and opens the next
// round with the new θ (hub/kinds/train.ts). After the last round one evaluation shard (H = 0)
// measures the final θ: the job's last shard names the trained weights.
//
// A shard's work carries everything its worker needs (hyperparameters, θ and the corpus by
// SHA-256, its data range and seed), so it is a pure function of the work: the same work gives
// the same Δ bits on one adapter, which is what lets another volunteer recompute it.
//
// Outputs of a result (checked by the hub against the work):
//   delta   u32[⌈L/4⌉]  the compressed Δ frame (protocol/pseudo-gradient.ts), L bytes zero-padded
//                        to a multiple of 4; absent for an evaluation shard
//   sketch  f32[32]     the keyed sketch of the raw Δ (protocol/sketch.ts); absent likewise
//   loss    f32[H + 1]  the H inner steps' training losses, then the validation loss of the
//                        round's θ (before the inner steps) on the held-out range
import { HearthError } from '../../core/errors.ts';
import { isSha256Hex } from '../../core/hash.ts';
import { MANIFEST_LIMITS, type ManifestBase, manifestError } from '../manifest.ts';
import { type Compression, topkCount } from '../pseudo-gradient.ts';
import { SHARD_LIMITS } from '../shard.ts';
import { SKETCH_ROWS } from '../sketch.ts';
import { paramCount, parseModelConfig, type TransformerConfig } from '../train-model.ts';
import { bytes, int, obj, oneOf, onlyKeys } from '../validate.ts';
import type { ProtocolKind } from './kind.ts';

/** Bounds on a `train` manifest (a stranger writes it). */
export const TRAIN_LIMITS = {
  maxRounds: 10_000,
  maxGroupSize: 256,
  maxInnerSteps: 10_000,
  maxBatch: 1024,
  maxEvalBatches: 64,
  /** The corpus is one blob a tab downloads whole. */
  maxCorpusBytes: 64 * 1024 * 1024,
} as const;

export type InnerSchedule = 'constant' | 'cosine';

/** The hyperparameters every shard of a job shares (copied into each shard's work). */
export interface TrainRecipe {
  readonly model: TransformerConfig;
  /** SHA-256 of the corpus (bytes; a byte is a token) and its length. */
  readonly corpus: string;
  readonly corpusBytes: number;
  /** Fraction of the corpus held out at its end for validation loss. */
  readonly heldOut: number;
  /** Inner steps H per shard. */
  readonly innerSteps: number;
  /** Sequences (of `model.context` tokens) per inner step. */
  readonly batch: number;
  readonly innerLr: number;
  /** Inner learning rate over a shard's H steps: constant, or cosine from innerLr to 10% of it. */
  readonly innerSchedule: InnerSchedule;
  readonly weightDecay: number;
  readonly compression: Compression;
  /** Validation batches each shard evaluates (of `batch` sequences). */
  readonly evalBatches: number;
}

export interface TrainManifest extends ManifestBase, TrainRecipe {
  readonly kind: 'train';
  readonly rounds: number;
  /** Shards (slots) per round: the corpus's training range is cut into this many data shards. */
  readonly groupSize: number;
  readonly outerLr: number;
  readonly outerMomentum: number;
  /** Seeds θ₀ and every shard's batches. */
  readonly seed: number;
  /** Set by the hub at submit, never by a researcher: the SHA-256 of θ₀ (f32, flat layout). */
  readonly theta0?: string;
  /** Never set: a train job is checked by recomputation, not honeypots. */
  readonly honeypots?: readonly never[];
}

/** One shard's work: a round's slot, or (steps 0) the evaluation of the final θ. */
export interface TrainWork extends TrainRecipe {
  readonly kind: 'train';
  readonly round: number;
  readonly slot: number;
  /** θ of the round (f32, flat layout), by SHA-256. */
  readonly theta: string;
  /**
   * The hub's outer momentum before this round, by SHA-256 (absent in round 0: zeros). Volunteers
   * ignore it; it is here so that θ and the optimizer state are durable in the same record.
   */
  readonly momentum?: string;
  /** This slot's data shard [start, end) of the corpus. */
  readonly range: readonly [number, number];
  /** Inner steps of this shard: the recipe's H, or 0 for the evaluation shard. */
  readonly steps: number;
  /** Seeds this shard's batches and its Δ's sketch. */
  readonly seed: number;
}

/** A train shard with bytes, as the worker runs it. */
export interface TrainShard {
  readonly v: 1;
  readonly kind: 'train';
  readonly id: string;
  readonly job: string;
  readonly budgetMs?: number;
  readonly work: TrainWork;
  /** θ's bytes (f32, little-endian). */
  readonly theta: ArrayBuffer;
  /** The corpus's bytes. */
  readonly corpus: ArrayBuffer;
}

const RECIPE_KEYS = [
  'model',
  'corpus',
  'corpusBytes',
  'heldOut',
  'innerSteps',
  'batch',
  'innerLr',
  'innerSchedule',
  'weightDecay',
  'compression',
  'evalBatches',
] as const;

const KEYS = [...RECIPE_KEYS, 'rounds', 'groupSize', 'outerLr', 'outerMomentum', 'seed'] as const;

function num(v: unknown, path: string, min: number, max: number, bad: (p: string, m: string) => HearthError) {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw bad(path, `expected a finite number in [${min}, ${max}], got ${JSON.stringify(v)}.`);
  }
  return v;
}

const workError = (path: string, message: string) =>
  new HearthError('input/invalid', `${path}: ${message}`, { details: { path } });

function compression(v: unknown, path: string, bad: typeof manifestError): Compression {
  const o = obj(v, path);
  const codec = oneOf(o.codec, `${path}.codec`, ['none', 'int8', '4bit', 'topk'] as const);
  if (codec === 'none') {
    onlyKeys(o, path, ['codec']);
    return { codec };
  }
  const chunk = o.chunk === undefined ? undefined : int(o.chunk, `${path}.chunk`, 1, 1 << 20);
  if (codec === 'topk') {
    onlyKeys(o, path, ['codec', 'density', 'chunk']);
    const density = num(o.density, `${path}.density`, 1e-6, 1, bad);
    return { codec, density, ...(chunk === undefined ? {} : { chunk }) };
  }
  onlyKeys(o, path, ['codec', 'chunk']);
  return { codec, ...(chunk === undefined ? {} : { chunk }) };
}

/** The model config, as a manifest error (input/invalid) naming the field when it is bad. */
function transformer(v: unknown, path: string): TransformerConfig {
  let cfg: ReturnType<typeof parseModelConfig>;
  try {
    cfg = parseModelConfig(v);
  } catch (e) {
    const field = e instanceof HearthError ? e.details['field'] : undefined;
    const p = typeof field === 'string' ? `${path}.${field}` : path;
    throw manifestError(p, (e as Error).message);
  }
  if (cfg.kind !== 'transformer') {
    throw manifestError(`${path}.kind`, 'a train job trains a "transformer" on a byte corpus.');
  }
  return cfg;
}

function recipe(o: Readonly<Record<string, unknown>>, path: string, bad: typeof manifestError): TrainRecipe {
  const model = transformer(o.model, `${path}.model`);
  if (!isSha256Hex(o.corpus)) throw bad(`${path}.corpus`, 'expected a SHA-256 as 64 lowercase hex digits.');
  return {
    model,
    corpus: o.corpus,
    corpusBytes: int(o.corpusBytes, `${path}.corpusBytes`, 1, TRAIN_LIMITS.maxCorpusBytes),
    heldOut: o.heldOut === undefined ? 0.1 : num(o.heldOut, `${path}.heldOut`, 0.001, 0.5, bad),
    innerSteps: int(o.innerSteps, `${path}.innerSteps`, 1, TRAIN_LIMITS.maxInnerSteps),
    batch: int(o.batch, `${path}.batch`, 1, TRAIN_LIMITS.maxBatch),
    innerLr: num(o.innerLr, `${path}.innerLr`, 0, 1, bad),
    innerSchedule:
      o.innerSchedule === undefined
        ? 'constant'
        : oneOf(o.innerSchedule, `${path}.innerSchedule`, ['constant', 'cosine'] as const),
    weightDecay: o.weightDecay === undefined ? 0 : num(o.weightDecay, `${path}.weightDecay`, 0, 1, bad),
    compression:
      o.compression === undefined
        ? { codec: 'int8' }
        : compression(o.compression, `${path}.compression`, bad),
    evalBatches:
      o.evalBatches === undefined
        ? 2
        : int(o.evalBatches, `${path}.evalBatches`, 1, TRAIN_LIMITS.maxEvalBatches),
  };
}

/** The corpus's split: training bytes [0, cut), validation [cut, corpusBytes). */
export function corpusSplit(r: Pick<TrainRecipe, 'corpusBytes' | 'heldOut'>): {
  train: readonly [number, number];
  validation: readonly [number, number];
} {
  const cut = Math.floor(r.corpusBytes * (1 - r.heldOut));
  return { train: [0, cut], validation: [cut, r.corpusBytes] };
}

/** Slot `slot` of `groupSize`: its data shard of the training range. */
export function slotRange(r: Pick<TrainRecipe, 'corpusBytes' | 'heldOut'>, groupSize: number, slot: number) {
  const [start, end] = corpusSplit(r).train;
  const n = end - start;
  return [
    start + Math.floor((n * slot) / groupSize),
    start + Math.floor((n * (slot + 1)) / groupSize),
  ] as const;
}

/** The seed of a round's slot: distinct per (job seed, round, slot), the same on every machine. */
export function shardSeed(seed: number, round: number, slot: number): number {
  let h = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(round + 1, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15), 0xc2b2ae35) ^ Math.imul(slot + 1, 0x27d4eb2f);
  return (h ^ (h >>> 13)) >>> 0;
}

function parseManifest(
  o: Readonly<Record<string, unknown>>,
  base: ManifestBase,
  hp: readonly unknown[] | undefined,
): TrainManifest {
  if (hp !== undefined) {
    throw manifestError(
      'manifest.honeypots',
      'a train job has no honeypots: its pseudo-gradients are checked by recomputation (replication ≥ 2).',
    );
  }
  if (base.autoHoneypots) {
    throw manifestError(
      'manifest.autoHoneypots',
      'a train job has no honeypots: its pseudo-gradients are checked by recomputation (replication ≥ 2).',
    );
  }
  if (base.replication < 2) {
    throw manifestError(
      'manifest.replication',
      'a train job needs replication ≥ 2: a second volunteer recomputing a pseudo-gradient is how it is checked (adaptiveReplication lets trusted volunteers skip it at the spot-check rate).',
    );
  }
  const r = recipe(o, 'manifest', manifestError);
  const rounds = int(o.rounds, 'manifest.rounds', 1, TRAIN_LIMITS.maxRounds);
  const groupSize = int(o.groupSize, 'manifest.groupSize', 1, TRAIN_LIMITS.maxGroupSize);
  if (rounds * groupSize + 1 > MANIFEST_LIMITS.maxShards) {
    throw manifestError('manifest.rounds', `rounds × groupSize is over ${MANIFEST_LIMITS.maxShards} shards.`);
  }
  const { train, validation } = corpusSplit(r);
  const ctx = r.model.context;
  const perSlot = Math.floor((train[1] - train[0]) / groupSize);
  if (perSlot <= ctx) {
    throw manifestError(
      'manifest.groupSize',
      `each of the ${groupSize} data shards would hold ${perSlot} bytes, not more than the context of ${ctx}: use a larger corpus, fewer slots or a shorter context.`,
    );
  }
  if (validation[1] - validation[0] < r.batch * (ctx + 1)) {
    throw manifestError(
      'manifest.heldOut',
      `the held-out range (${validation[1] - validation[0]} bytes) cannot hold one validation batch of ${r.batch} × ${ctx + 1} bytes: raise heldOut or use a larger corpus.`,
    );
  }
  if (o.theta0 !== undefined) {
    throw manifestError('manifest.theta0', 'set by the hub at submit; leave it out.');
  }
  return {
    ...base,
    ...r,
    kind: 'train',
    rounds,
    groupSize,
    outerLr: num(o.outerLr ?? 0.7, 'manifest.outerLr', 0, 10, manifestError),
    outerMomentum: num(o.outerMomentum ?? 0.9, 'manifest.outerMomentum', 0, 0.999, manifestError),
    seed: int(o.seed ?? 1, 'manifest.seed', 0, 2 ** 32 - 1),
  };
}

function range(v: unknown, path: string, max: number): readonly [number, number] {
  if (!Array.isArray(v) || v.length !== 2) throw workError(path, 'expected [start, end).');
  const start = int(v[0], `${path}[0]`, 0, max);
  const end = int(v[1], `${path}[1]`, start + 1, max);
  return [start, end];
}

function parseWork(o: Readonly<Record<string, unknown>>, path: string): TrainWork {
  onlyKeys(o, path, ['kind', ...RECIPE_KEYS, 'round', 'slot', 'theta', 'momentum', 'range', 'steps', 'seed']);
  const r = recipe(o, path, workError);
  if (!isSha256Hex(o.theta))
    throw workError(`${path}.theta`, 'expected a SHA-256 as 64 lowercase hex digits.');
  if (o.momentum !== undefined && !isSha256Hex(o.momentum)) {
    throw workError(`${path}.momentum`, 'expected a SHA-256 as 64 lowercase hex digits.');
  }
  const rg = range(o.range, `${path}.range`, r.corpusBytes);
  if (rg[1] - rg[0] <= r.model.context) {
    throw workError(
      `${path}.range`,
      `the range must hold more than the context of ${r.model.context} bytes.`,
    );
  }
  return {
    kind: 'train',
    ...r,
    round: int(o.round, `${path}.round`, 0, TRAIN_LIMITS.maxRounds),
    slot: int(o.slot, `${path}.slot`, 0, TRAIN_LIMITS.maxGroupSize - 1),
    theta: o.theta,
    ...(o.momentum === undefined ? {} : { momentum: o.momentum as string }),
    range: rg,
    steps: int(o.steps, `${path}.steps`, 0, TRAIN_LIMITS.maxInnerSteps),
    seed: int(o.seed, `${path}.seed`, 0, 2 ** 32 - 1),
  };
}

function parseShard(
  o: Readonly<Record<string, unknown>>,
  head: { v: 1; id: string; job: string; budgetMs?: number },
): TrainShard {
  onlyKeys(o, 'shard', ['v', 'kind', 'id', 'job', 'budgetMs', 'work', 'theta', 'corpus']);
  const work = parseWork(obj(o.work, 'shard.work'), 'shard.work');
  const n = paramCount(work.model);
  const theta = bytes(o.theta, 'shard.theta', SHARD_LIMITS.maxTensorBytes);
  if (theta.byteLength !== n * 4) {
    throw workError(
      'shard.theta',
      `θ of this model is ${n} f32 values (${n * 4} bytes), got ${theta.byteLength} bytes.`,
    );
  }
  const corpus = bytes(o.corpus, 'shard.corpus', TRAIN_LIMITS.maxCorpusBytes);
  if (corpus.byteLength !== work.corpusBytes) {
    throw workError('shard.corpus', `the corpus is ${work.corpusBytes} bytes, got ${corpus.byteLength}.`);
  }
  return { ...head, kind: 'train', work, theta, corpus };
}

/**
 * FLOPs credited for one accepted shard (TRAIN_FLOPS_FORMULA, published in the README beside the
 * ONNX table): 6·N per trained token (forward 2·N, backward 4·N) for H·batch·context tokens, plus
 * 2·N per evaluated token for evalBatches·batch·context tokens, N = the model's parameters.
 */
export function trainFlops(
  w: Pick<TrainWork, 'model' | 'batch' | 'evalBatches'> & { steps: number },
): number {
  const n = paramCount(w.model);
  const tokens = w.batch * w.model.context;
  return 6 * n * w.steps * tokens + 2 * n * w.evalBatches * tokens;
}

export const TRAIN_FLOPS_FORMULA = 'train-6N/1';

/** The recipe part of a manifest (what each shard's work copies). */
export function recipeOf(m: TrainManifest): TrainRecipe {
  const out: Record<string, unknown> = {};
  for (const k of RECIPE_KEYS) out[k] = m[k];
  return out as unknown as TrainRecipe;
}

/** The `train` kind (registered in ./index.ts). */
export const trainKind: ProtocolKind<TrainManifest, TrainWork, TrainShard> = {
  kind: 'train',
  manifestKeys: KEYS,
  flopsRequired: false,
  parseManifest: (o, base, hp) => parseManifest(o, base, hp),
  parseWork,
  workBlobs: (w) => [w.theta, w.corpus],
  manifestBlobs: (m) => [m.corpus, ...(m.theta0 ? [m.theta0] : [])],
  manifestTensors: () => [],
  flops: (m, work) => trainFlops({ ...m, steps: work ? work.steps : m.innerSteps }),
  shardContext: () => ({}),
  async shardFromWork(work, ctx, blobs) {
    const theta = await blobs.get(work.theta);
    const corpus = await blobs.get(work.corpus);
    const n = paramCount(work.model);
    if (theta.byteLength !== n * 4) {
      throw workError(
        'work.theta',
        `θ of this model is ${n * 4} bytes; blob ${work.theta} has ${theta.byteLength}.`,
      );
    }
    if (corpus.byteLength !== work.corpusBytes) {
      throw workError(
        'work.corpus',
        `the corpus is ${work.corpusBytes} bytes; blob ${work.corpus} has ${corpus.byteLength}.`,
      );
    }
    return {
      v: 1,
      kind: 'train',
      id: ctx.shard,
      job: ctx.job,
      ...(ctx.budgetMs === undefined ? {} : { budgetMs: ctx.budgetMs }),
      work,
      theta: theta.slice().buffer as ArrayBuffer,
      corpus: corpus.slice().buffer as ArrayBuffer,
    };
  },
  parseShard,
  transferables: (s) => [s.theta, s.corpus],
};

/** Bytes of a frame of `n` elements at most, for a compression: bounds a result's `delta`. */
export function maxFrameBytes(n: number, c: Compression): number {
  const header = 24;
  const chunk = c.codec === 'none' ? 1 : (c.chunk ?? 256);
  switch (c.codec) {
    case 'none':
      return header + 4 * n;
    case 'int8':
      return header + 4 * Math.ceil(n / chunk) + n;
    case '4bit':
      return header + 4 * Math.ceil(n / chunk) + Math.ceil(n / 2);
    case 'topk': {
      const k = topkCount(n, c.density);
      return header + 4 * Math.ceil(k / chunk) + Math.ceil(k / 4) + 5 * k;
    }
  }
}

/** The outputs a train shard's result has, by name: shape and dtype. */
export function trainOutputs(w: TrainWork): { name: string; dtype: 'u32' | 'f32'; maxShape: number }[] {
  const n = paramCount(w.model);
  if (w.steps === 0) return [{ name: 'loss', dtype: 'f32', maxShape: 1 }];
  return [
    { name: 'delta', dtype: 'u32', maxShape: Math.ceil(maxFrameBytes(n, w.compression) / 4) },
    { name: 'sketch', dtype: 'f32', maxShape: SKETCH_ROWS },
    { name: 'loss', dtype: 'f32', maxShape: w.steps + 1 },
  ];
}
