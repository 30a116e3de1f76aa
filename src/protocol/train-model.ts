// Model configurations (part of a `train` manifest; train/config.ts re-exports this file) and the flat parameter layout. θ, its gradient, AdamW's two moments and a
// pseudo-gradient are each ONE f32 vector of `paramCount(cfg)` elements, so each is one tensor
// with one hash. The layout is the concatenation, in the order `paramLayout` lists them, of
// every parameter tensor stored row-major (C order); nothing pads between them.
//
// Transformer (pre-norm, GPT-2 shape, byte-level: vocab 256), names and shapes in layout order:
//   wte [V, C]   token embedding            wpe [T, C]  position embedding
//   per layer l = 0 … L−1 (prefix `h{l}.`):
//     ln1.g [C], ln1.b [C]
//     wq [C, C], bq [C], wk [C, C], bk [C], wv [C, C], bv [C]   (y = x·W + b; heads are C/H wide)
//     wo [C, C], bo [C]
//     ln2.g [C], ln2.b [C]
//     w1 [C, M·C], b1 [M·C], w2 [M·C, C], b2 [C]                 (gelu between, tanh form)
//   lnf.g [C], lnf.b [C], head [C, V]       (logits = lnf(x)·head; not tied to wte)
// MLP classifier, per layer i (prefix `l{i}.`): w [in, out], b [out]; relu between layers.
import { HearthError } from '../core/errors.ts';

/** Byte-level tokens: every byte value is a token. */
export const BYTE_VOCAB = 256;

export interface TransformerConfig {
  readonly kind: 'transformer';
  /** Residual width C. */
  readonly width: number;
  /** Number of blocks L. */
  readonly depth: number;
  /** Attention heads H; width/heads is the head dimension (≤ 128). */
  readonly heads: number;
  /** Context length T (tokens per sequence). */
  readonly context: number;
  /** MLP hidden width as a multiple M of the width. Default 4. */
  readonly mlpRatio?: number;
}

export interface MlpConfig {
  readonly kind: 'mlp';
  /** Features per example. */
  readonly inputs: number;
  /** Hidden layer widths (relu after each). */
  readonly hidden: readonly number[];
  /** Number of classes (the logits' width). */
  readonly classes: number;
}

export type ModelConfig = TransformerConfig | MlpConfig;

/** One parameter tensor's place in the flat vector. */
export interface ParamEntry {
  readonly name: string;
  readonly shape: readonly number[];
  /** First element in the flat vector. */
  readonly offset: number;
  readonly size: number;
  /** How `initParams` fills it: normal with this std, or a constant. */
  readonly init: { readonly std: number } | { readonly value: number };
}

/** Bounds a configuration must respect (sizes a tab can train; a stranger's manifest names them). */
export const MODEL_LIMITS = {
  maxWidth: 1024,
  maxDepth: 32,
  maxContext: 1024,
  maxHeadDim: 128,
  maxMlpRatio: 8,
  maxFeatures: 4096,
  maxParams: 64 * 1024 * 1024,
} as const;

function configError(message: string, details: Record<string, unknown>): HearthError {
  return new HearthError('train/config', message, { details });
}

function posInt(v: unknown, name: string, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw configError(`model.${name} must be an integer from 1 to ${max}, got ${JSON.stringify(v)}.`, {
      field: name,
      value: v,
    });
  }
  return v;
}

/**
 * Checks a model configuration (from a manifest: any JSON) and returns it typed, with defaults.
 * A 'train/config' error names the bad field and its allowed range.
 *
 * @example
 * const cfg = parseModelConfig({ kind: 'transformer', width: 64, depth: 2, heads: 4, context: 64 });
 */
export function parseModelConfig(v: unknown): ModelConfig {
  if (typeof v !== 'object' || v === null) throw configError('model must be an object.', { value: v });
  const o = v as Record<string, unknown>;
  let cfg: ModelConfig;
  if (o.kind === 'transformer') {
    const width = posInt(o.width, 'width', MODEL_LIMITS.maxWidth);
    const heads = posInt(o.heads, 'heads', width);
    if (width % heads !== 0 || width / heads > MODEL_LIMITS.maxHeadDim) {
      throw configError(
        `model.width ${width} must be a multiple of model.heads ${heads} with at most ${MODEL_LIMITS.maxHeadDim} per head.`,
        { width, heads },
      );
    }
    cfg = {
      kind: 'transformer',
      width,
      heads,
      depth: posInt(o.depth, 'depth', MODEL_LIMITS.maxDepth),
      context: posInt(o.context, 'context', MODEL_LIMITS.maxContext),
      mlpRatio: o.mlpRatio === undefined ? 4 : posInt(o.mlpRatio, 'mlpRatio', MODEL_LIMITS.maxMlpRatio),
    };
  } else if (o.kind === 'mlp') {
    if (!Array.isArray(o.hidden) || o.hidden.length > MODEL_LIMITS.maxDepth) {
      throw configError(`model.hidden must be a list of at most ${MODEL_LIMITS.maxDepth} widths.`, {
        field: 'hidden',
      });
    }
    cfg = {
      kind: 'mlp',
      inputs: posInt(o.inputs, 'inputs', MODEL_LIMITS.maxFeatures),
      hidden: o.hidden.map((h, i) => posInt(h, `hidden[${i}]`, MODEL_LIMITS.maxFeatures)),
      classes: posInt(o.classes, 'classes', MODEL_LIMITS.maxFeatures),
    };
  } else {
    throw configError(`model.kind must be "transformer" or "mlp", got ${JSON.stringify(o.kind)}.`, {
      field: 'kind',
      value: o.kind,
    });
  }
  const n = paramCount(cfg);
  if (n > MODEL_LIMITS.maxParams) {
    throw configError(`the model has ${n} parameters; at most ${MODEL_LIMITS.maxParams} are allowed.`, {
      params: n,
    });
  }
  return cfg;
}

/**
 * The flat layout of a model's parameters (see the top of this file), in order.
 *
 * @example
 * const layout = paramLayout(cfg); layout.find((e) => e.name === 'wte')?.offset; // 0
 */
export function paramLayout(cfg: ModelConfig): ParamEntry[] {
  const out: ParamEntry[] = [];
  let offset = 0;
  const push = (name: string, shape: number[], init: ParamEntry['init']) => {
    const size = shape.reduce((a, b) => a * b, 1);
    out.push({ name, shape, offset, size, init });
    offset += size;
  };
  if (cfg.kind === 'mlp') {
    const widths = [cfg.inputs, ...cfg.hidden, cfg.classes];
    for (let i = 0; i + 1 < widths.length; i++) {
      const a = widths[i] as number;
      const b = widths[i + 1] as number;
      push(`l${i}.w`, [a, b], { std: Math.sqrt(2 / a) });
      push(`l${i}.b`, [b], { value: 0 });
    }
    return out;
  }
  const C = cfg.width;
  const M = (cfg.mlpRatio ?? 4) * C;
  const std = 0.02;
  // GPT-2: the projections into the residual stream shrink with depth.
  const resid = std / Math.sqrt(2 * cfg.depth);
  push('wte', [BYTE_VOCAB, C], { std });
  push('wpe', [cfg.context, C], { std: 0.01 });
  for (let l = 0; l < cfg.depth; l++) {
    const p = `h${l}.`;
    push(`${p}ln1.g`, [C], { value: 1 });
    push(`${p}ln1.b`, [C], { value: 0 });
    for (const w of ['q', 'k', 'v']) {
      push(`${p}w${w}`, [C, C], { std });
      push(`${p}b${w}`, [C], { value: 0 });
    }
    push(`${p}wo`, [C, C], { std: resid });
    push(`${p}bo`, [C], { value: 0 });
    push(`${p}ln2.g`, [C], { value: 1 });
    push(`${p}ln2.b`, [C], { value: 0 });
    push(`${p}w1`, [C, M], { std });
    push(`${p}b1`, [M], { value: 0 });
    push(`${p}w2`, [M, C], { std: resid });
    push(`${p}b2`, [C], { value: 0 });
  }
  push('lnf.g', [C], { value: 1 });
  push('lnf.b', [C], { value: 0 });
  push('head', [C, BYTE_VOCAB], { std });
  return out;
}

/** Number of f32 elements in θ. */
export function paramCount(cfg: ModelConfig): number {
  const l = paramLayout(cfg);
  const last = l[l.length - 1];
  return last ? last.offset + last.size : 0;
}

/** Mulberry32: the seeded generator every train/ draw uses (initialisation, batches). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * θ₀ for a model: each tensor by its entry's `init` (normal draws by Box–Muller from `seed`, in
 * layout order). Math.log and Math.cos are not bit-specified across JavaScript engines, so θ₀
 * is made once (by the hub) and shipped by hash; every later θ is a deterministic f32 function
 * of it.
 */
export function initParams(cfg: ModelConfig, seed: number): Float32Array {
  const layout = paramLayout(cfg);
  const theta = new Float32Array(paramCount(cfg));
  const r = seededRandom(seed);
  for (const e of layout) {
    if ('value' in e.init) {
      theta.fill(e.init.value, e.offset, e.offset + e.size);
      continue;
    }
    for (let i = 0; i < e.size; i++) {
      const u = 1 - r();
      const n = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
      theta[e.offset + i] = n * e.init.std;
    }
  }
  return theta;
}
