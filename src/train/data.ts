// Byte-level data for the transformer: the corpus is bytes, a data shard is an index range of
// it, and a batch is `sequences` windows of context+1 bytes drawn from the shard by a seed (the
// first `context` bytes are the inputs, the same window shifted by one the targets).
import { HearthError } from '../core/errors.ts';
import { seededRandom } from './config.ts';
import type { Batch } from './trainer.ts';

/** A half-open byte range [start, end) of the corpus. */
export interface DataRange {
  readonly start: number;
  readonly end: number;
}

/** The corpus split: the first `1 − heldOut` for training, the rest held out for validation. */
export function splitCorpus(length: number, heldOut = 0.1): { train: DataRange; validation: DataRange } {
  if (!(heldOut > 0 && heldOut < 1)) {
    throw new HearthError('train/data', `heldOut must be in (0, 1), got ${heldOut}.`, {
      details: { heldOut },
    });
  }
  const cut = Math.floor(length * (1 - heldOut));
  return { train: { start: 0, end: cut }, validation: { start: cut, end: length } };
}

/** `range` cut into `parts` contiguous shards of (nearly) equal length, in order. */
export function shardRanges(range: DataRange, parts: number): DataRange[] {
  const n = range.end - range.start;
  return Array.from({ length: parts }, (_, i) => ({
    start: range.start + Math.floor((n * i) / parts),
    end: range.start + Math.floor((n * (i + 1)) / parts),
  }));
}

function checkRange(corpus: Uint8Array, r: DataRange, context: number): void {
  if (
    !(
      Number.isInteger(r.start) &&
      Number.isInteger(r.end) &&
      r.start >= 0 &&
      r.end <= corpus.length &&
      r.end - r.start > context
    )
  ) {
    throw new HearthError(
      'train/data',
      `data range [${r.start}, ${r.end}) must lie in the corpus (${corpus.length} bytes) and hold more than the context of ${context} bytes.`,
      { details: { start: r.start, end: r.end, corpus: corpus.length, context } },
    );
  }
}

function window(
  corpus: Uint8Array,
  at: number,
  context: number,
  inputs: Int32Array,
  targets: Int32Array,
  row: number,
): void {
  for (let t = 0; t < context; t++) {
    inputs[row * context + t] = corpus[at + t] as number; // at + context < range end ≤ corpus.length
    targets[row * context + t] = corpus[at + t + 1] as number;
  }
}

/**
 * The batch of inner step `step` (0-based) on `range`: `sequences` windows at offsets drawn from
 * seed and step alone, so a recomputation of the same shard sees the same bytes.
 *
 * @example
 * const b = sampleBatch(corpus, shard, 64, 8, seed, step); // 8 × 64 tokens
 */
export function sampleBatch(
  corpus: Uint8Array,
  range: DataRange,
  context: number,
  sequences: number,
  seed: number,
  step: number,
): Batch {
  checkRange(corpus, range, context);
  const r = seededRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0);
  const inputs = new Int32Array(sequences * context);
  const targets = new Int32Array(sequences * context);
  const span = range.end - range.start - context;
  for (let s = 0; s < sequences; s++)
    window(corpus, range.start + Math.floor(r() * span), context, inputs, targets, s);
  return { inputs, targets };
}

/**
 * The fixed validation batches of `range`: consecutive non-overlapping windows from its start,
 * `sequences` per batch, at most `batches` batches.
 */
export function validationBatches(
  corpus: Uint8Array,
  range: DataRange,
  context: number,
  sequences: number,
  batches: number,
): Batch[] {
  checkRange(corpus, range, context);
  const out: Batch[] = [];
  let at = range.start;
  for (let b = 0; b < batches; b++) {
    if (at + sequences * (context + 1) > range.end) break;
    const inputs = new Int32Array(sequences * context);
    const targets = new Int32Array(sequences * context);
    for (let s = 0; s < sequences; s++, at += context + 1) window(corpus, at, context, inputs, targets, s);
    out.push({ inputs, targets });
  }
  return out;
}
