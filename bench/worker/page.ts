// Runs in Chromium: the same ONNX model and batches (a) through a bare session in a worker and
// (b) as Hearth shards through the compute worker, protocol and blob cache; rounds interleave
// (a) and (b) so machine noise hits both alike.
import { sha256Hex } from '../../src/core/hash.ts';
import type { OnnxShard } from '../../src/protocol/shard.ts';
import { startComputeWorker } from '../../src/worker/client.ts';
import { heavy } from '../../test/onnx/models.ts';
import { uniform } from '../../test/onnx/reference.ts';

export interface WorkerBenchResult {
  adapter: string;
  backend: string;
  probeMs: number;
  modelBytes: number;
  batches: number;
  rows: number;
  rounds: { rawMs: number; hearthMs: number }[];
  maxAbsDiff: number;
}

const params = new URLSearchParams(location.search);
const LAYERS = Number(params.get('layers') ?? 8);
const ROWS = Number(params.get('rows') ?? 64);
const BATCHES = Number(params.get('batches') ?? 20);
const ROUNDS = Number(params.get('rounds') ?? 5);
const SIZE = 256;

async function main(): Promise<WorkerBenchResult> {
  const model = heavy(LAYERS, SIZE).bytes;
  const batches = Array.from({ length: BATCHES }, (_, i) => uniform(1000 + i, ROWS * SIZE));

  const hearth = startComputeWorker({ dbName: `hearth-bench-${Date.now()}` });
  const t0 = performance.now();
  const caps = await hearth.probe();
  const probeMs = performance.now() - t0;
  // No real GPU (a fallback adapter): both sides on the wasm EP, as the issue asks.
  const backend = caps.adapter.isFallbackAdapter ? 'wasm' : 'webgpu';
  const sha = await hearth.putBlob(model.slice());

  const raw = new Worker(new URL('./raw.worker.ts', import.meta.url), { type: 'module' });
  const ask = (msg: unknown, transfer: Transferable[] = []) =>
    new Promise<{ y?: ArrayBuffer }>((resolve) => {
      raw.onmessage = (ev) => resolve(ev.data);
      raw.postMessage(msg, transfer);
    });
  await ask({ cmd: 'load', model: model.slice(), ep: backend });

  const runRawOne = async (b: Float32Array): Promise<ArrayBuffer> => {
    const x = b.slice().buffer;
    return (await ask({ cmd: 'run', x, shape: [ROWS, SIZE] }, [x])).y!;
  };
  let n = 0;
  const runHearthOne = async (b: Float32Array): Promise<ArrayBuffer> => {
    const shard: OnnxShard = {
      v: 1,
      kind: 'onnx',
      id: `bench-${n++}`,
      job: 'bench',
      model: sha,
      backend,
      inputs: { x: { dtype: 'f32', shape: [ROWS, SIZE], data: b.slice().buffer } },
    };
    return (await hearth.runShard(shard)).outputs[0]!.data;
  };
  const runRaw = async (): Promise<ArrayBuffer[]> => {
    const outs: ArrayBuffer[] = [];
    for (const b of batches) outs.push(await runRawOne(b));
    return outs;
  };
  const runHearth = async (): Promise<ArrayBuffer[]> => {
    const outs: ArrayBuffer[] = [];
    for (const b of batches) outs.push(await runHearthOne(b));
    return outs;
  };

  const a = await runRaw();
  const h = await runHearth();
  let maxAbsDiff = 0;
  for (let i = 0; i < a.length; i++) {
    const x = new Float32Array(a[i]!);
    const y = new Float32Array(h[i]!);
    for (let j = 0; j < x.length; j++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(x[j]! - y[j]!));
    if ((await sha256Hex(a[i]!)) !== (await sha256Hex(h[i]!)) && maxAbsDiff > 1e-5) break;
  }

  // Interleaved batch by batch, not side by side: a burst of load on a busy machine then lands
  // on both paths alike instead of on one side of a round. Which path goes first alternates with
  // the batch and the round, so neither always runs warm.
  const rounds: WorkerBenchResult['rounds'] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const round = { rawMs: 0, hearthMs: 0 };
    for (const [i, b] of batches.entries()) {
      const rawFirst = (i + r) % 2 === 0;
      for (const side of rawFirst ? ['raw', 'hearth'] : ['hearth', 'raw']) {
        const s = performance.now();
        await (side === 'raw' ? runRawOne(b) : runHearthOne(b));
        round[side === 'raw' ? 'rawMs' : 'hearthMs'] += performance.now() - s;
      }
    }
    rounds.push(round);
  }
  raw.terminate();
  await hearth.terminate();
  return {
    adapter: caps.adapter.summary,
    backend,
    probeMs,
    modelBytes: model.byteLength,
    batches: BATCHES,
    rows: ROWS,
    rounds,
    maxAbsDiff,
  };
}

const w = window as unknown as { __bench?: Promise<WorkerBenchResult> };
w.__bench = main();
w.__bench.then(
  (r) => {
    document.getElementById('log')!.textContent = JSON.stringify(r, null, 2);
  },
  (e: Error) => {
    document.getElementById('log')!.textContent = `failed: ${e.message}`;
  },
);
