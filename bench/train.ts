// bench: DiLoCo with compressed pseudo-gradients vs data-parallel vs one worker; a training step vs TensorFlow.js WebGPU
//
// Same small transformer, same corpus (data/train/corpus.txt), same tokens processed by each of:
//   (a) data-parallel: every step, each of 4 workers computes the gradient of its own batch and
//       the f32 gradients are all-reduced (a ring: each worker sends 2·(G−1) chunks of P/G
//       floats), then one AdamW step;
//   (b) DiLoCo: rounds of H AdamW steps per worker on its shard, Δ compressed (topk with 2-bit
//       values, error feedback) and all-gathered (each worker sends its frame to the G−1 others),
//       the outer Nesterov step on the average;
//   (b′) the same DiLoCo with a denser codec (4bit, error feedback): the trade-off row;
//   (c) one worker alone: as many AdamW steps of the same batch size as (a) and (b) took together.
// The 4 workers run in this process, one after another, on one Dawn device (their arithmetic is
// what it would be apart: nothing is shared but the device). Bytes are what each worker would
// put on the wire: frames and ring chunks with their headers. Then one training step of the
// same model on Hearth's kernels and on TensorFlow.js's WebGPU backend (its own autograd and
// Adam) on the same adapter, and the cost of recomputation spot-checks: a member's shard rerun
// from the same θ, data and seed must give the same Δ bits; at spot-check rate r the re-executed
// compute is r × (one shard) / (one shard), measured. The last line is one JSON object.
import { readFileSync } from 'node:fs';
import { acquireDawn, dawnGpu } from '../src/node/dawn.ts';
import { type Compression, ErrorFeedback } from '../src/protocol/pseudo-gradient.ts';
import {
  averageFrames,
  DEFAULT_INNER,
  type InnerOptimizer,
  initParams,
  innerLoop,
  meanLoss,
  outerStep,
  paramCount,
  sampleBatch,
  shardRanges,
  splitCorpus,
  Trainer,
  type TransformerConfig,
  validationBatches,
} from '../src/train/index.ts';
import { installDispatchProfile } from './lib/dispatch-profile.ts';
import { loadTfjsWebGpu } from './lib/tfjs-node.ts';
import { tfjsTransformer } from './lib/tfjs-transformer.ts';
import { table } from './lib/timing.ts';

const arg = (name: string, dflt: number) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : dflt;
};
const QUICK = process.argv.includes('--quick');
/** `--profile`: also a per-dispatch profile of one Hearth training step (on stderr). */
const PROFILE = process.argv.includes('--profile');
const CFG: TransformerConfig = {
  kind: 'transformer',
  width: arg('width', 32),
  depth: arg('depth', 1),
  heads: arg('heads', 2),
  context: arg('context', 32),
  mlpRatio: 4,
};
const G = 4;
const SEQ = arg('seq', 2);
const ROUNDS = arg('rounds', 2);
const H = arg('inner', QUICK ? 4 : 25);
const DENSITY = arg('density', 0.03);
const SPOT_RATE = arg('spot', 0.05);
const COMPRESSION: Compression = { codec: 'topk', density: DENSITY, chunk: 256 };
/** The trade-off row (b′): a denser codec, fewer bytes saved, less loss. `--no-alt` skips it. */
const ALT: Compression = { codec: '4bit', chunk: 256 };
const WITH_ALT = !process.argv.includes('--no-alt');
const INNER: InnerOptimizer = { ...DEFAULT_INNER, lr: arg('lr', 3e-3) };
const OUTER = { lr: arg('outerlr', 0.7), momentum: arg('momentum', 0.9) };
/** Size of the all-reduce message header (protocol/allreduce.ts: 96 fixed bytes + round id etc.). */
const RING_HEADER = 128;

const corpus = new Uint8Array(readFileSync(new URL('../data/train/corpus.txt', import.meta.url)));
const { train, validation } = splitCorpus(corpus.length);
const shards = shardRanges(train, G);
const val = validationBatches(corpus, validation, CFG.context, 8, QUICK ? 2 : 8);
const P = paramCount(CFG);
const theta0 = initParams(CFG, 1);
const tokensPerRun = ROUNDS * H * G * SEQ * CFG.context;

const ctx = await acquireDawn();
const log = (s: string) => process.stderr.write(`${s}\n`);
log(
  `transformer C=${CFG.width} L=${CFG.depth} H=${CFG.heads} T=${CFG.context}: ${P} parameters; ` +
    `${G} workers × ${ROUNDS} rounds × ${H} steps × ${SEQ}×${CFG.context} tokens = ${tokensPerRun} tokens per run`,
);
const tr = await Trainer.create(ctx, CFG, theta0);
const initialLoss = await meanLoss(tr, val);

async function valLoss(theta: Float32Array): Promise<number> {
  await tr.setTheta(theta);
  return meanLoss(tr, val);
}

// (a) data-parallel, f32 gradients ring-all-reduced every step.
let t0 = performance.now();
await tr.setTheta(theta0);
let dpBytes = 0;
for (let step = 0; step < ROUNDS * H; step++) {
  const sum = new Float32Array(P);
  for (let w = 0; w < G; w++) {
    // Every replica holds the same θ; the trainer computes each worker's gradient in turn.
    await tr.lossAndGrad(
      sampleBatch(corpus, shards[w] as (typeof shards)[0], CFG.context, SEQ, 1000 + w, step),
    );
    const g = await tr.readGrad();
    for (let i = 0; i < P; i++) sum[i] = Math.fround((sum[i] as number) + (g[i] as number));
  }
  for (let i = 0; i < P; i++) sum[i] = Math.fround((sum[i] as number) / G);
  await tr.applyGrad(sum, INNER);
  dpBytes += 2 * (G - 1) * (RING_HEADER + (4 * P) / G);
}
const dpTheta = await tr.readTheta();
const dpLoss = await valLoss(dpTheta);
const dpMs = performance.now() - t0;
log(`(a) data-parallel: val loss ${dpLoss.toFixed(4)}, ${(dpMs / 1000).toFixed(1)} s`);

// (b) DiLoCo with compressed Δ, all-gathered.
interface DilocoRun {
  loss: number;
  bytes: number;
  trainMs: number;
  shardMs: number;
  firstSpot: { theta: Float32Array; seed: number; delta: Float32Array };
}
async function diloco(compression: Compression): Promise<DilocoRun> {
  const t = performance.now();
  let theta: Float32Array = theta0;
  let momentum: Float32Array = new Float32Array(P);
  const ef = shards.map(() => new ErrorFeedback(P));
  let bytes = 0;
  let shardMs = 0;
  let firstSpot: DilocoRun['firstSpot'] | null = null;
  for (let round = 0; round < ROUNDS; round++) {
    const frames: Uint8Array[] = [];
    for (let w = 0; w < G; w++) {
      const seed = round * G + w;
      const s0 = performance.now();
      const shard = shards[w] as (typeof shards)[0];
      const r = await innerLoop(tr, theta, corpus, {
        steps: H,
        sequences: SEQ,
        optimizer: INNER,
        shard,
        seed,
      });
      shardMs += performance.now() - s0;
      firstSpot ??= { theta, seed, delta: r.delta };
      const frame = (ef[w] as ErrorFeedback).encode(r.delta, compression);
      frames.push(frame);
      // All-gather: this worker's frame to each of the G − 1 others.
      bytes += (G - 1) * frame.byteLength;
    }
    ({ theta, momentum } = outerStep(theta, momentum, averageFrames(frames, P), OUTER));
  }
  const trainMs = performance.now() - t;
  return {
    loss: await valLoss(theta),
    // Bytes each worker sent: the mean over the G workers (frames differ a little in length).
    bytes: bytes / G,
    trainMs,
    shardMs,
    firstSpot: firstSpot as DilocoRun['firstSpot'],
  };
}
const dl = await diloco(COMPRESSION);
const dlLoss = dl.loss;
const dlBytes = dl.bytes;
const dlTrainMs = dl.trainMs;
log(`(b) DiLoCo ${COMPRESSION.codec}: val loss ${dlLoss.toFixed(4)}, ${(dlTrainMs / 1000).toFixed(1)} s`);
const alt = WITH_ALT ? await diloco(ALT) : null;
if (alt)
  log(`(b′) DiLoCo ${ALT.codec}: val loss ${alt.loss.toFixed(4)}, ${(alt.trainMs / 1000).toFixed(1)} s`);

// (c) one worker, as many steps as all of (a)'s workers took together.
t0 = performance.now();
await tr.setTheta(theta0);
for (let step = 0; step < ROUNDS * H * G; step++) {
  await tr.trainStep(sampleBatch(corpus, train, CFG.context, SEQ, 7, step), INNER);
}
const soloLoss = await valLoss(await tr.readTheta());
log(`(c) one worker: val loss ${soloLoss.toFixed(4)}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);

// Spot-check: rerun the first member's shard, compare Δ bits, time it.
const spot = dl.firstSpot;
const s0 = performance.now();
const re = await innerLoop(tr, spot.theta, corpus, {
  steps: H,
  sequences: SEQ,
  optimizer: INNER,
  shard: shards[0] as (typeof shards)[0],
  seed: spot.seed,
});
const recomputeMs = performance.now() - s0;
const identical = Buffer.from(re.delta.buffer).equals(Buffer.from(spot.delta.buffer));
const meanShardMs = dl.shardMs / (ROUNDS * G);
const recomputePct = (SPOT_RATE * recomputeMs * 100) / meanShardMs;
log(
  `spot-check: recomputed Δ ${identical ? 'bit-identical' : 'DIFFERENT'}, ${recomputeMs.toFixed(0)} ms vs ${meanShardMs.toFixed(0)} ms per shard`,
);

// One training step, Hearth vs TensorFlow.js WebGPU, on the same batch from the same θ.
const batch = sampleBatch(corpus, train, CFG.context, SEQ, 99, 0);
const tf = await loadTfjsWebGpu(dawnGpu());
const tfm = tfjsTransformer(tf, CFG, theta0, INNER);
await tr.setTheta(theta0);
const hearthLoss0 = await tr.trainStep(batch, INNER);
const tfLoss0 = await tfm.step(batch);
const reps = QUICK ? 3 : 9;
const hs: number[] = [];
const ts: number[] = [];
for (let i = 0; i < reps; i++) {
  const a = performance.now();
  await tr.trainStep(batch, INNER);
  hs.push(performance.now() - a);
  const b = performance.now();
  await tfm.step(batch);
  ts.push(performance.now() - b);
}
const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1] as number;
const hearthStepMs = med(hs);
const tfStepMs = med(ts);
if (PROFILE) {
  // Where a Hearth step's time goes, dispatch by dispatch (bench/lib/dispatch-profile.ts).
  const prof = installDispatchProfile();
  for (let i = 0; i < reps; i++) await tr.trainStep(batch, INNER);
  prof.uninstall();
  const rows = prof.rows();
  const total = rows.reduce((a, r) => a + r.ms, 0);
  log(
    table([
      ['dispatch (profiled step)', 'ms per step', 'share', 'calls per step'],
      ...rows.map((r) => [
        r.label,
        (r.ms / reps).toFixed(1),
        `${((100 * r.ms) / total).toFixed(1)}%`,
        String(r.calls / reps),
      ]),
    ]),
  );
}
tfm.dispose();
tr.destroy();

const fmt = (b: number) => (b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : `${(b / 1e3).toFixed(1)} kB`);
console.log(
  table([
    ['run', 'val loss', 'bytes sent per worker', 'notes'],
    [
      '(a) data-parallel, f32 ring all-reduce every step',
      dpLoss.toFixed(4),
      fmt(dpBytes),
      `${ROUNDS * H} steps of ${G}×${SEQ} sequences`,
    ],
    [
      `(b) DiLoCo, topk ${DENSITY * 100}% + 2-bit, all-gather`,
      dlLoss.toFixed(4),
      fmt(dlBytes),
      `${ROUNDS} rounds × H=${H}, outer lr ${OUTER.lr}, μ ${OUTER.momentum}`,
    ],
    ...(alt
      ? [
          [
            `(b′) DiLoCo, ${ALT.codec}, all-gather`,
            alt.loss.toFixed(4),
            fmt(alt.bytes),
            `comm reduction ${(dpBytes / alt.bytes).toFixed(1)}×, loss gap ${(((alt.loss - dpLoss) / dpLoss) * 100).toFixed(1)}%`,
          ],
        ]
      : []),
    ['(c) one worker', soloLoss.toFixed(4), '0', `${ROUNDS * H * G} steps of ${SEQ} sequences`],
  ]),
);
console.log(
  table([
    ['one training step', 'ms (median)', 'first-step loss'],
    ['Hearth kernels', hearthStepMs.toFixed(1), hearthLoss0.toFixed(5)],
    ['TensorFlow.js webgpu', tfStepMs.toFixed(1), tfLoss0.toFixed(5)],
  ]),
);
console.log(
  `initial val loss ${initialLoss.toFixed(4)}; ` +
    `spot-check at rate ${SPOT_RATE}: Δ ${identical ? 'bit-identical' : 'NOT bit-identical'}; ${P} parameters; ${tokensPerRun} tokens per run`,
);
console.log(
  JSON.stringify({
    comm_reduction: Number((dpBytes / dlBytes).toFixed(1)),
    loss_gap_pct: Number((((dlLoss - dpLoss) / dpLoss) * 100).toFixed(2)),
    tokens_per_s: Number((tokensPerRun / (dlTrainMs / 1000)).toFixed(1)),
    train_step_vs_tfjs: Number((tfStepMs / hearthStepMs).toFixed(2)),
    recompute_pct: Number(recomputePct.toFixed(2)),
  }),
);
ctx.destroy();
process.exit(0);
