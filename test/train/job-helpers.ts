// Helpers for `train` jobs through a real hub: a small corpus cut from the repository's, a tiny
// transformer's manifest, and readers of a job's rounds from the hub's routes.
import { readFileSync } from 'node:fs';
import { sha256Hex } from '../../src/core/hash.ts';

/** The first `bytes` of the repository's corpus (data/train/corpus.txt). */
export function smallCorpus(bytes = 24_000): Uint8Array<ArrayBuffer> {
  const all = readFileSync('data/train/corpus.txt');
  return new Uint8Array(all.subarray(0, bytes));
}

/** A tiny byte-level transformer job: ~30k parameters, so SwiftShader trains a round in seconds. */
export async function tinyTrainJob(corpus: Uint8Array, over: Record<string, unknown> = {}) {
  return {
    v: 1,
    kind: 'train',
    name: 'tiny',
    model: { kind: 'transformer', width: 32, depth: 1, heads: 2, context: 16 },
    corpus: await sha256Hex(corpus),
    corpusBytes: corpus.byteLength,
    heldOut: 0.1,
    innerSteps: 6,
    batch: 4,
    innerLr: 0.01,
    compression: { codec: 'int8' },
    evalBatches: 2,
    rounds: 3,
    groupSize: 2,
    outerLr: 0.7,
    outerMomentum: 0.9,
    seed: 7,
    replication: 2,
    maxReplicas: 4,
    tolerance: 'exact',
    deadlineMs: 60_000,
    creditRate: 1e-9,
    ...over,
  };
}

/** The training view of a job (GET /v1/jobs/:id/train). */
export async function trainView(url: string, auth: Record<string, string>, job: string) {
  const r = await fetch(`${url}/v1/jobs/${job}/train`, { headers: auth });
  if (r.status !== 200) throw new Error(`train view: ${r.status} ${await r.text()}`);
  return (await r.json()) as import('../../src/hub/train-view.ts').TrainView;
}
