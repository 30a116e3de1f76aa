// A train job's results on disk (`hearth results JOB --out DIR` for a train job): the trained θ
// — or, while the job runs, the latest round's — split into one .npy per tensor with config.json,
// the loss curve as CSV and PNG (node/train-results.ts), the model as ONNX (train/onnx-export.ts)
// and the hub's view of the rounds as train.json. θ is fetched by hash and checked against it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HubApi } from '../client/hub-api.ts';
import { HearthError } from '../core/errors.ts';
import type { TrainProgress } from '../protocol/api.ts';
import { paramCount, parseModelConfig, type TransformerConfig } from '../protocol/train-model.ts';
import { exportTransformerOnnx } from '../train/onnx-export.ts';
import { writeTrainResults } from './train-results.ts';

/** A train job's model: its config and the θ of its last round (the trained one when final). */
export async function trainedModel(
  api: HubApi,
  job: string,
): Promise<{
  view: TrainProgress;
  cfg: TransformerConfig;
  theta: Float32Array;
  round: number;
  final: boolean;
}> {
  const view = await api.train(job);
  const cfg = parseModelConfig(view.model);
  if (cfg.kind !== 'transformer') {
    throw new HearthError('train/config', `job ${job} trains a ${cfg.kind}; only transformers are written.`);
  }
  const last = view.curve.at(-1);
  const sha = view.final?.theta ?? last?.theta;
  if (!sha || !last)
    throw new HearthError('job/unknown', `job ${job} has no rounds yet.`, { details: { job } });
  const bytes = await api.blob(sha);
  const n = paramCount(cfg);
  if (bytes.byteLength !== 4 * n) {
    throw new HearthError(
      'train/layout',
      `θ ${sha.slice(0, 12)}… is ${bytes.byteLength} bytes; the model has ${n} f32 parameters.`,
    );
  }
  const theta = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return { view, cfg, theta, round: last.round, final: view.final !== undefined };
}

export async function downloadTrainResults(api: HubApi, job: string, out: string) {
  const { view, cfg, theta, round, final } = await trainedModel(api, job);
  const files = await writeTrainResults(out, { cfg, theta, curve: view.curve, name: job });
  writeFileSync(join(out, 'model.onnx'), exportTransformerOnnx(cfg, theta));
  writeFileSync(join(out, 'train.json'), `${JSON.stringify(view, null, 2)}\n`);
  return {
    files: [...files, join(out, 'model.onnx'), join(out, 'train.json')],
    tensors: files.filter((f) => f.endsWith('.npy')).length,
    params: theta.length,
    round,
    final,
    status: view.status,
  };
}
