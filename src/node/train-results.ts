// What a finished training run leaves on disk, for people and for NumPy:
//   config.json          the model config, its parameter count and the flat layout (name, shape,
//                        offset and file of every tensor; offsets in f32 elements of θ)
//   weights/<name>.npy   one little-endian f32 .npy per parameter tensor, in its shape
//                        (names as in train/config.ts, e.g. weights/h0.ln1.g.npy)
//   loss.csv             round,train_loss,val_loss,tokens — an empty cell where a value is missing
//   loss.png             train and validation loss by round (node/loss-plot.ts)
// Existing files of these names are overwritten; nothing else in the folder is touched.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HearthError } from '../core/errors.ts';
import { npy } from '../protocol/npy.ts';
import { type ModelConfig, paramCount, paramLayout } from '../train/config.ts';
import { type LossPoint, lossPlotPng } from './loss-plot.ts';

export type { LossPoint } from './loss-plot.ts';

/** A run's results: the model, its final θ (flat layout) and its loss curve by round. */
export interface TrainResults {
  readonly cfg: ModelConfig;
  readonly theta: Float32Array;
  readonly curve: readonly LossPoint[];
  /** The run's name, recorded in config.json. Default 'model'. */
  readonly name?: string;
}

/** config.json's `format`; bump `version` when its fields change meaning. */
export const TRAIN_RESULTS_FORMAT = { format: 'hearth-train-results', version: 1 } as const;

const CSV_HEADER = 'round,train_loss,val_loss,tokens';

function invalid(message: string, details: Record<string, unknown>): HearthError {
  return new HearthError('input/invalid', message, { details });
}

function checkCurve(curve: readonly LossPoint[]): void {
  if (!Array.isArray(curve))
    throw invalid('curve must be a list of { round, trainLoss?, valLoss?, tokens? }.', {});
  curve.forEach((p, i) => {
    if (typeof p !== 'object' || p === null || !Number.isFinite(p.round)) {
      throw invalid(`curve[${i}].round must be a finite number, got ${JSON.stringify(p?.round)}.`, {
        index: i,
      });
    }
    for (const k of ['trainLoss', 'valLoss', 'tokens'] as const) {
      if (p[k] !== undefined && typeof p[k] !== 'number') {
        throw invalid(`curve[${i}].${k} must be a number or absent, got ${JSON.stringify(p[k])}.`, {
          index: i,
          field: k,
        });
      }
    }
  });
}

/** loss.csv's text: one line per curve point, in the order given. */
export function lossCsv(curve: readonly LossPoint[]): string {
  const cell = (v: number | undefined) => (v === undefined ? '' : String(v));
  const rows = curve.map((p) => [p.round, p.trainLoss, p.valLoss, p.tokens].map(cell).join(','));
  return `${[CSV_HEADER, ...rows].join('\n')}\n`;
}

/**
 * Writes a run's results into `dir` (made if missing; see the top of this file) and returns the
 * paths written, `dir` joined with config.json, each weights/*.npy in layout order, loss.csv and
 * loss.png. A θ of the wrong length is a 'train/layout' error, a malformed curve 'input/invalid'.
 *
 * @example
 * const files = await writeTrainResults('out/run-1', { cfg, theta: await tr.readTheta(), curve });
 * // python: np.load('out/run-1/weights/wte.npy').shape == (256, C)
 */
export async function writeTrainResults(dir: string, r: TrainResults): Promise<string[]> {
  const { cfg, theta, curve, name = 'model' } = r;
  const n = paramCount(cfg);
  if (!(theta instanceof Float32Array) || theta.length !== n) {
    throw new HearthError(
      'train/layout',
      `θ must be a Float32Array of ${n} elements (the model's parameter count), got ${theta?.length}.`,
      { details: { expected: n, got: theta?.length } },
    );
  }
  if (typeof name !== 'string') throw invalid('name must be a string.', { name });
  checkCurve(curve);
  const layout = paramLayout(cfg);
  const weights = (tensor: string) => `weights/${tensor}.npy`;
  const config = {
    ...TRAIN_RESULTS_FORMAT,
    name,
    model: cfg,
    params: n,
    dtype: 'f32',
    tensors: layout.map((e) => ({ name: e.name, shape: e.shape, offset: e.offset, file: weights(e.name) })),
    curve: { csv: 'loss.csv', png: 'loss.png', points: curve.length },
  };
  await mkdir(join(dir, 'weights'), { recursive: true });
  const written: string[] = [];
  const put = async (rel: string, data: string | Uint8Array) => {
    const path = join(dir, rel);
    await writeFile(path, data);
    written.push(path);
  };
  await put('config.json', `${JSON.stringify(config, null, 2)}\n`);
  for (const e of layout) {
    const bytes = new Uint8Array(theta.buffer, theta.byteOffset + e.offset * 4, e.size * 4);
    await put(weights(e.name), npy('f32', e.shape, bytes));
  }
  await put('loss.csv', lossCsv(curve));
  await put('loss.png', lossPlotPng(curve));
  return written;
}
