// `npm start` end to end, small: real pages built by vite, a real hub on a SQLite file, two real
// headless Chromium volunteers (SwiftShader WebGPU, onnxruntime-web), four jobs to validation and
// a small train job to its trained model, results downloaded, the picture written, credit
// granted. Then the summary is what is asserted.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { isHearthError } from '../../src/core/errors.ts';
import { fractalJob } from '../../src/node/fractal.ts';
import { pagesStale, runStart, type StartSummary } from '../../src/node/start.ts';
import { lossEnds } from '../../src/node/start-train.ts';
import { bar, board, summaryText } from '../../src/node/start-view.ts';
import type { TrainProgress } from '../../src/protocol/api.ts';

const tmp = mkdtempSync(join(tmpdir(), 'hearth-start-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Escape counts of the kernel's arithmetic in f32 (Math.fround after each operation). */
function mandelbrotF32(width: number, height: number, maxIter: number): Uint32Array {
  const f = Math.fround;
  const step = f(3 / width);
  const x0 = f(-2.2);
  const y0 = f(-(height * (3 / width)) / 2);
  const out = new Uint32Array(width * height);
  for (let py = 0; py < height; py++) {
    for (let px = 0; px < width; px++) {
      const cx = f(x0 + f(f(px) * step));
      const cy = f(y0 + f(f(py) * step));
      let x = 0;
      let y = 0;
      let i = 0;
      while (i < maxIter && f(f(x * x) + f(y * y)) <= 4) {
        const xt = f(f(f(x * x) - f(y * y)) + cx);
        y = f(f(f(2 * x) * y) + cy);
        x = xt;
        i++;
      }
      out[py * width + px] = i;
    }
  }
  return out;
}

describe('npm start (hearth start --small)', () => {
  let summary: StartSummary;
  let log = '';

  it('runs four jobs to validated results and trains a tiny transformer with two Chromium volunteers, and prints the summary', async () => {
    const run = await runStart({
      dir: join(tmp, 'run'),
      small: true,
      volunteers: 2,
      adapter: 'swiftshader',
      pagesDir: join(tmp, 'pages'),
      timeoutMs: 240_000,
      write: (t) => (log += t),
    });
    summary = run.summary;
    expect(summary.reason).toBeUndefined();
    expect(summary.ok).toBe(true);
    expect(summary.jobs.map((j) => [j.name, j.kind, j.status])).toEqual([
      ['mlp', 'onnx', 'done'],
      ['heat', 'wgsl', 'done'],
      ['mandelbrot', 'wgsl', 'done'],
      ['saxpy', 'wgsl', 'done'],
      ['tiny-lm', 'train', 'done'],
    ]);
    for (const j of summary.jobs) {
      expect(j.shards, j.name).toBeGreaterThan(0);
      expect(j.validated, j.name).toBe(j.shards);
      // Replication 2: every validated shard rests on two agreeing results.
      expect(j.replicas, j.name).toBe(2 * j.shards);
      if (j.kind === 'train') continue;
      const index = JSON.parse(readFileSync(join(j.results, 'index.json'), 'utf8')) as { shards: unknown[] };
      expect(index.shards, j.name).toHaveLength(j.shards);
    }

    // The training job: 2 rounds of 2 slots and the evaluation of the final θ; its validation
    // loss falls from about ln 256 (θ₀ predicts bytes uniformly) at round 0 to the last round's.
    const lm = summary.jobs.find((j) => j.kind === 'train');
    const train = lm?.train;
    if (!lm || !train) throw new Error('no train job in the summary');
    expect(lm.shards).toBe(2 * 2 + 1);
    expect(train.curve.map((p) => p.round)).toEqual([0, 1, 2]);
    const { first, last } = lossEnds(train);
    expect(first?.round).toBe(0);
    expect(last?.round).toBe(2);
    expect(first?.valLoss).toBeGreaterThan(5.3);
    expect(first?.valLoss).toBeLessThan(5.8);
    expect(last?.valLoss).toBeLessThan((first?.valLoss ?? 0) - 0.5);
    expect(lm.flops).toBeGreaterThan(0);
    // `hearth results` files: one .npy per parameter tensor, the curve as CSV and PNG, the model.
    expect(readdirSync(join(lm.results, 'weights')).filter((f) => f.endsWith('.npy')).length).toBeGreaterThan(
      10,
    );
    const csv = readFileSync(join(lm.results, 'loss.csv'), 'utf8').trim().split('\n');
    expect(csv).toHaveLength(1 + 3);
    expect(csv[1]).toMatch(/^0,[\d.]+,[\d.]+,\d+$/);
    for (const f of ['loss.png', 'model.onnx', 'config.json', 'train.json']) {
      expect(existsSync(join(lm.results, f)), f).toBe(true);
    }
    expect(PNG.sync.read(readFileSync(join(lm.results, 'loss.png'))).width).toBeGreaterThan(100);
    // A line of text from the trained model, sampled here on Dawn (as `hearth sample`).
    expect(train.sampleError).toBeUndefined();
    expect(train.sample).toMatch(/^The .{10,}/);
    // The board showed its rounds and losses while it ran; the summary its first and last loss.
    expect(log).toMatch(/tiny-lm\s+train\s+\[[#.]+\] round 2\/2 · val loss \d\.\d{3} · train loss \d\.\d{3}/);
    expect(log).toContain(
      `validation loss ${first?.valLoss?.toFixed(3)} at round 0 → ${last?.valLoss?.toFixed(3)} at round 2`,
    );
    expect(log).toContain(`sampled: ${JSON.stringify(train.sample)}`);
    expect(summary.credits).toHaveLength(2);
    for (const c of summary.credits) {
      expect(c.leases).toBeGreaterThan(0);
      expect(c.granted).toBeGreaterThan(0n);
      expect(c.pending).toBe(0n);
      // The local chain: each volunteer signed in with its own wallet and claimed through the
      // hub's relayer; its token balance is exactly the credit it was granted.
      expect(c.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
      expect(c.tokens).toBe(c.granted);
    }
    expect(new Set(summary.credits.map((c) => c.address)).size).toBe(2);
    expect(log).toMatch(/chain http:\/\/127\.0\.0\.1:\d+ \(id 31337\) · HearthCredit 0x/);
    expect(log).toMatch(/claimed as tokens by wallets holding no ETH/);
    expect(log).toContain('building the pages');
    expect(log).toMatch(/done in \d+ s: every shard validated/);
    expect(log).toMatch(/mandelbrot\s+wgsl\s+done\s+2\s+2\s+0\s+4/);
  }, 400_000);

  it('wrote the Mandelbrot picture from the volunteers\u2019 counts (an f32 reference agrees)', () => {
    const png = PNG.sync.read(readFileSync(summary.picture ?? ''));
    const spec = fractalJob({ width: 96, height: 64, bands: 2 }).spec;
    expect([png.width, png.height]).toEqual([spec.width, spec.height]);
    const ref = mandelbrotF32(spec.width, spec.height, spec.maxIter);
    let inside = 0;
    let agree = 0;
    for (let p = 0; p < ref.length; p++) {
      const black = png.data[p * 4] === 0 && png.data[p * 4 + 1] === 0 && png.data[p * 4 + 2] === 0;
      if (black) inside++;
      // Inside the set is black; a fused multiply-add on the adapter may move a few edge pixels.
      if (black === (ref[p] === spec.maxIter)) agree++;
    }
    expect(inside).toBeGreaterThan(ref.length * 0.1);
    expect(inside).toBeLessThan(ref.length * 0.5);
    expect(agree / ref.length).toBeGreaterThan(0.99);
  });

  it('refuses a folder that is not empty, before starting anything', async () => {
    const dir = join(tmp, 'used');
    mkdirSync(dir);
    writeFileSync(join(dir, 'x'), 'x');
    const e = await runStart({ dir, write: () => {} }).catch((x: unknown) => x);
    expect(isHearthError(e, 'input/invalid')).toBe(true);
    expect(String((e as Error).message)).toMatch(/is not empty/);
  });

  it('knows stale pages and says why a run failed', () => {
    expect(pagesStale(join(tmp, 'nowhere'))).toBe(true);
    expect(pagesStale(join(tmp, 'pages'))).toBe(false);
    expect(bar(1, 4, 8)).toBe('[##......]');
    expect(bar(0, 0, 4)).toBe('[####]');
    const failed = summaryText({ ...summary, ok: false, reason: 'heat failed' });
    expect(failed).toMatch(/FAILED after \d+ s: heat failed$/);
  });

  it('shows a train job on the board by rounds, with its latest losses', () => {
    const view = (curve: TrainProgress['curve']): TrainProgress => ({
      job: 'job-1',
      status: 'running',
      model: {},
      params: 10,
      rounds: 3,
      groupSize: 2,
      codec: 'int8',
      curve,
      flops: 0,
    });
    const round = (r: number, accepted: number, losses: { trainLoss?: number; valLoss?: number } = {}) => ({
      round: r,
      theta: 'a'.repeat(64),
      slots: 2,
      accepted,
      failed: 0,
      tokens: 0,
      ...losses,
    });
    const progress = {
      job: 'job-1',
      status: 'running',
      shards: 4,
      validated: 3,
      failed: 0,
      done: 0,
      inFlight: 1,
    };
    const row = (train: TrainProgress) => ({
      id: 'job-1',
      name: 'lm',
      kind: 'train',
      progress: progress as never,
      train,
    });
    const [line] = board(
      [
        row(
          view([
            round(0, 2, { trainLoss: 5.1, valLoss: 5.5 }),
            round(1, 1, { trainLoss: 4.2, valLoss: 4.5 }),
          ]),
        ),
      ],
      [],
      0,
    );
    // Round 0 closed of 3 rounds and the evaluation: a quarter of the bar.
    expect(line).toBe(
      'lm train [######..................] round 2/3 · val loss 4.500 · train loss 4.200 · 3/4 validated · 1 in flight',
    );
    const [evaluating] = board([row(view([round(0, 2), round(1, 2), round(2, 2), round(3, 0)]))], [], 0);
    expect(evaluating).toMatch(/\[#{18}\.{6}\] evaluating the trained model · 3\/4 validated/);
  });
});
