// A `train` job through a real hub (HTTP + WebSocket, SQLite file, blob folder) with Node
// volunteers on Dawn (SwiftShader): DiLoCo rounds of a tiny byte-level transformer, every
// pseudo-gradient recomputed by a second volunteer, the outer step on the hub. The Chromium run
// is in test/ui/train.node.test.ts; here are the rules that need many runs: the loss falls, every
// θ is the f32 outer step of the accepted frames, and bad volunteers are caught.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ShardRunner } from '../../src/client/volunteer.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { acquireDawn } from '../../src/node/dawn.ts';
import { shardSeed, slotRange, type TrainShard } from '../../src/protocol/kinds/train.ts';
import { decodePseudoGradient, encodePseudoGradient } from '../../src/protocol/pseudo-gradient.ts';
import type { OutputTensor, ShardResult } from '../../src/protocol/shard.ts';
import { sketch } from '../../src/protocol/sketch.ts';
import { paramCount, paramLayout } from '../../src/protocol/train-model.ts';
import { sampleText } from '../../src/train/sample.ts';
import { Trainer } from '../../src/train/trainer.ts';
import {
  EMBED_ORIGIN,
  type NodeVolunteer,
  nodeSocket,
  nodeVolunteer,
  waitFor,
} from '../client/client-helpers.ts';
import { smallCorpus, tinyTrainJob, trainView } from '../train/job-helpers.ts';
import { hearth } from './cli-helpers.ts';
import { ORIGIN } from './control-helpers.ts';
import { type HubProcess, killHub, spawnHubWith } from './crash-helpers.ts';
import { type TestHub, testHub, upload } from './hub-helpers.ts';

let t: TestHub | undefined;
const vols: NodeVolunteer[] = [];
afterEach(async () => {
  for (const v of vols.splice(0)) await v.dispose();
  await t?.dispose();
  t = undefined;
});

async function hubWithToken() {
  t = await testHub({ allowedOrigins: [EMBED_ORIGIN], maxBlobBytes: 1 << 22, expireEveryMs: 100 });
  const { token } = createToken(t.hub.store, 'alice');
  return {
    hub: t.hub,
    token,
    auth: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
  };
}

async function submit(url: string, auth: Record<string, string>, manifest: unknown) {
  const r = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: auth, body: JSON.stringify(manifest) });
  return {
    status: r.status,
    body: (await r.json()) as { job?: string; error?: { code: string; message: string } },
  };
}

/** A port free on 127.0.0.1 right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** The exported model against the training kernels' forward: |got − want| ≤ atol + rtol·|want|. */
const ONNX_ATOL = 1e-3;
const ONNX_RTOL = 1e-3;

/** The final θ of the honest run: the red team's run of the same job must end on the same bits. */
let honestFinal: string | undefined;

type Tamper = (r: ShardResult, shard: TrainShard) => Promise<ShardResult>;

async function withOutputs(r: ShardResult, replace: Record<string, ArrayBuffer>): Promise<ShardResult> {
  const outputs: OutputTensor[] = [];
  for (const o of r.outputs) {
    const data = replace[o.name];
    if (!data) outputs.push(o);
    else
      outputs.push({
        ...o,
        shape: [data.byteLength / 4],
        data,
        sha256: await sha256Hex(new Uint8Array(data)),
      });
  }
  return { ...r, outputs };
}

const frameBytes = (r: ShardResult) => {
  const d = r.outputs.find((o) => o.name === 'delta');
  if (!d) throw new Error('no delta');
  const payload = new DataView(d.data).getUint32(16, true);
  return new Uint8Array(d.data).slice(0, 24 + payload);
};
const padded = (frame: Uint8Array) => {
  const p = new Uint8Array(Math.ceil(frame.byteLength / 4) * 4);
  p.set(frame);
  return p.buffer;
};

/** Replaces Δ by f(Δ) in both the frame and the sketch: a consistent lie only recomputation can catch. */
const lieAboutDelta =
  (f: (d: Float32Array) => Float32Array): Tamper =>
  async (r, shard) => {
    if (shard.work.steps === 0) return r;
    const n = paramCount(shard.work.model);
    const lie = f(decodePseudoGradient(frameBytes(r), n));
    return withOutputs(r, {
      delta: padded(encodePseudoGradient(lie, shard.work.compression)),
      sketch: sketch(lie, shard.work.seed).buffer as ArrayBuffer,
    });
  };

function cheat(tamper: Tamper, before?: (s: TrainShard) => TrainShard): (r: ShardRunner) => ShardRunner {
  return (inner) => ({
    runShard: async (s, p) => {
      const shard = s as TrainShard;
      const r = await inner.runShard(before ? before(shard) : shard, p);
      return tamper(r, shard);
    },
    cancel: (id) => inner.cancel(id),
  });
}

describe('train jobs through a real hub', () => {
  it('three Node volunteers train a tiny transformer for 3 rounds: validation loss falls, every Δ recomputed', async () => {
    const { hub, token, auth } = await hubWithToken();
    const corpus = smallCorpus();
    await upload(hub.url, token, [corpus]);
    const manifest = await tinyTrainJob(corpus);
    const { status, body } = await submit(hub.url, auth, manifest);
    expect(status, JSON.stringify(body)).toBe(201);
    const job = body.job as string;
    for (let i = 0; i < 3; i++) vols.push(await nodeVolunteer(hub.url));
    for (const v of vols) v.volunteer.start();
    await waitFor(
      async () => (await trainView(hub.url, auth, job)).status !== 'running',
      240_000,
      'the job to end',
    );
    const view = await trainView(hub.url, auth, job);
    expect(view.status).toBe('done');
    expect(view.curve.map((r) => r.round)).toEqual([0, 1, 2, 3]);
    expect(view.curve.slice(0, 3).every((r) => r.accepted === 2 && r.failed === 0)).toBe(true);
    const val = view.curve.map((r) => r.valLoss ?? Number.NaN);
    // Byte-level: θ₀ predicts ~uniformly over 256 bytes, ln 256 ≈ 5.55.
    expect(val[0]).toBeGreaterThan(5.3);
    expect(val[0]).toBeLessThan(5.8);
    // It falls: from ~5.55 to under 4 in three rounds (measured here: 5.55, 3.9, 3.35, 3.35 —
    // unigram statistics first, and outer momentum 0.9 may overshoot a little on a plateau).
    expect(val[1]).toBeLessThan((val[0] as number) - 0.5);
    expect(val[3]).toBeLessThan(4);
    expect(view.final?.valLoss).toBe(val[3]);

    // The trained θ is on the hub, by hash, with the model's parameter count.
    const theta = await (await fetch(`${hub.url}/v1/blobs/${view.final?.theta}`)).arrayBuffer();
    expect(theta.byteLength).toBe(4 * paramCount(view.model));
    expect(await sha256Hex(new Uint8Array(theta))).toBe(view.final?.theta);
    // Every training shard was computed twice (replication 2, no trust yet): 6 shards × 2 + eval × 2.
    const leases = vols.reduce((n, v) => n + v.volunteer.stats.leases, 0);
    expect(leases).toBeGreaterThanOrEqual(14);
    expect(vols.reduce((n, v) => n + v.volunteer.stats.invalid, 0)).toBe(0);
    honestFinal = view.final?.theta;

    // `hearth results`: the trained weights, the curve, the model as ONNX.
    const out = mkdtempSync(join(tmpdir(), 'hearth-train-results-'));
    try {
      const env = { HEARTH_HUB: hub.url, HEARTH_TOKEN: token };
      const r = await hearth(['results', job, '--out', out], env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('trained weights');
      const layout = paramLayout(view.model);
      expect(readdirSync(join(out, 'weights')).sort()).toEqual(layout.map((e) => `${e.name}.npy`).sort());
      const csv = readFileSync(join(out, 'loss.csv'), 'utf8').trim().split('\n');
      expect(csv).toHaveLength(1 + view.curve.length);
      const onnx = new Uint8Array(readFileSync(join(out, 'model.onnx')));

      // The exported model runs as an `onnx` job on the volunteers and gives the training
      // kernels' logits (the Trainer's forward on this machine's Dawn device) within tolerance.
      const T = view.model.context;
      const B = 4;
      const tokens = Int32Array.from(corpus.subarray(corpus.length - B * T), (b) => b);
      const tokenBytes = new Uint8Array(tokens.buffer);
      await upload(hub.url, token, [onnx, tokenBytes]);
      const onnxJob = await submit(hub.url, auth, {
        v: 1,
        kind: 'onnx',
        model: await sha256Hex(onnx),
        inputs: { tokens: { sha256: await sha256Hex(tokenBytes), dtype: 'i32', shape: [B, T] } },
        batchInput: 'tokens',
        shardSize: 2,
        replication: 2,
        maxReplicas: 4,
        tolerance: { rtol: 1e-4, atol: 1e-4 },
        deadlineMs: 60_000,
        creditRate: 1e-9,
        // The hub's graph counter cannot follow the export's symbolic shapes: 2·N per token.
        flopsPerShard: 2 * paramCount(view.model) * 2 * T,
      });
      expect(onnxJob.status, JSON.stringify(onnxJob.body)).toBe(201);
      const oj = onnxJob.body.job as string;
      await waitFor(
        async () =>
          ((await (await fetch(`${hub.url}/v1/jobs/${oj}`, { headers: auth })).json()) as { status: string })
            .status === 'done',
        120_000,
        'the ONNX job',
      );
      const ctx = await acquireDawn();
      const trainer = await Trainer.create(ctx, view.model, new Float32Array(theta));
      try {
        const want = await trainer.logits(tokens);
        const got = new Float32Array(B * T * 256);
        for (let shard = 0; shard < 2; shard++) {
          const res = await fetch(`${hub.url}/v1/jobs/${oj}/results/${shard}/logits`, { headers: auth });
          got.set(new Float32Array(await res.arrayBuffer()), shard * 2 * T * 256);
        }
        let worst = 0;
        for (let i = 0; i < got.length; i++) {
          const d =
            Math.abs((got[i] as number) - (want[i] as number)) /
            (ONNX_ATOL + ONNX_RTOL * Math.abs(want[i] as number));
          worst = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(worst, d);
        }
        expect(worst).toBeLessThanOrEqual(1);

        // `hearth sample`, greedy: the same bytes as greedy sampling here on the same θ.
        const s = await hearth(['sample', job, '--prompt', 'the ', '--tokens', '24', '--temperature', '0'], {
          ...env,
          VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES ?? '',
          XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '',
        });
        expect(s.code, s.stderr).toBe(0);
        const greedy = await sampleText(trainer, new TextEncoder().encode('the '), {
          tokens: 24,
          temperature: 0,
        });
        expect(s.stdout).toBe(`the ${new TextDecoder().decode(greedy)}\n`);
      } finally {
        trainer.destroy();
        ctx.destroy();
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 420_000);

  it("red team — zeros, noise, a scaled Δ, another shard's Δ, a Δ from a stale θ: each caught by recomputation and left out, θ ends on the honest bits", async () => {
    const { hub, token, auth } = await hubWithToken();
    const corpus = smallCorpus();
    await upload(hub.url, token, [corpus]);
    // Room for every liar on one shard before two honest results agree.
    const { body } = await submit(hub.url, auth, await tinyTrainJob(corpus, { maxReplicas: 8 }));
    const job = body.job as string;
    let seed = 12345;
    const noise = (n: number) =>
      Float32Array.from({ length: n }, () => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return (seed / 2 ** 32 - 0.5) * 1e-2;
      });
    let firstTheta: ArrayBuffer | undefined;
    const liars: Record<string, (r: ShardRunner) => ShardRunner> = {
      zeros: cheat(lieAboutDelta((d) => new Float32Array(d.length))),
      noise: cheat(lieAboutDelta((d) => noise(d.length))),
      scaled: cheat(lieAboutDelta((d) => d.map((x) => 2 * x))),
      // Another shard's Δ for this one: the other slot's data and seed, honestly computed.
      copy: cheat(
        async (r) => r,
        (s) => {
          if (s.work.steps === 0) return s;
          const other = (s.work.slot + 1) % 2;
          const seed = shardSeed(7, s.work.round, other);
          return { ...s, work: { ...s.work, range: slotRange(s.work, 2, other), seed } };
        },
      ),
      // Honest work, from the first θ it was ever given.
      stale: cheat(
        async (r) => r,
        (s) => {
          firstTheta ??= s.theta.slice(0);
          return { ...s, theta: firstTheta.slice(0) };
        },
      ),
    };
    const liarVols = new Map<string, NodeVolunteer>();
    for (const [name, wrap] of Object.entries(liars)) {
      const v = await nodeVolunteer(hub.url, { wrap });
      liarVols.set(name, v);
      vols.push(v);
    }
    const honest: NodeVolunteer[] = [];
    for (let i = 0; i < 3; i++) {
      const v = await nodeVolunteer(hub.url);
      honest.push(v);
      vols.push(v);
    }
    // The liars first, so that they get to lie before the honest ones have done everything.
    // The liars alone first: they never agree with each other, so round 0 stays open and each
    // of them gets a shard to lie on (stale's round 0 is honest work) before the honest start.
    for (const v of liarVols.values()) v.volunteer.start();
    await waitFor(
      () =>
        [...liarVols.values()].every((v) =>
          hub.store
            .shardsOfJob(job)
            .some((sh) => hub.store.resultsOfShard(sh.id).some((r) => r.volunteer === v.key.id)),
        ),
      300_000,
      'every liar to send a result',
    );
    for (const v of honest) v.volunteer.start();
    await waitFor(
      async () => (await trainView(hub.url, auth, job)).status !== 'running',
      600_000,
      'the job to end',
    );
    const view = await trainView(hub.url, auth, job);
    expect(view.status).toBe('done');
    expect(view.curve.slice(0, 3).every((r) => r.accepted === 2)).toBe(true);
    // Every liar's training result that lied is invalid, and every accepted Δ is honest work.
    const honestIds = new Set(honest.map((v) => v.key.id));
    const shards = hub.store.shardsOfJob(job);
    const all = shards.flatMap((sh) => hub.store.resultsOfShard(sh.id));
    const roundOf = (shard: string) =>
      (shards.find((x) => x.id === shard)?.work as { round: number } | undefined)?.round;
    const honestMoments = new Set<string>();
    const lied: Record<string, number> = {};
    for (const [name, v] of liarVols) {
      const training = all
        .filter((r) => r.volunteer === v.key.id && r.outputs.some((o) => o.name === 'delta'))
        .sort((a, b) => a.receivedAt - b.receivedAt);
      // A liar's honest moments (stale's round 0) may pass; its lies never.
      for (const r of training) {
        if (name === 'stale' && roundOf(r.shard) === 0) {
          honestMoments.add(r.id);
        } else expect(r.status, `${name} on ${r.shard}`).toBe('invalid');
      }
      lied[name] = training.filter((r) => r.status === 'invalid').length;
      // Reputation fell with each caught lie.
      if ((lied[name] ?? 0) > 0) expect(hub.store.getVolunteer(v.key.id)?.reputation ?? 0).toBeLessThan(0);
    }
    for (const sh of shards) {
      expect(sh.status).toBe('validated');
      const canonical = all.find((r) => r.id === sh.canonical);
      const ok = honestIds.has(canonical?.volunteer ?? '') || honestMoments.has(canonical?.id ?? '');
      expect(ok, `canonical of ${sh.id}`).toBe(true);
    }
    // Each liar that lies from its first shard was caught at least once; stale lies only from
    // round 1, which it may not get (then its round-0 work stood, as honest work should).
    for (const name of ['zeros', 'noise', 'scaled', 'copy']) expect(lied[name], name).toBeGreaterThan(0);
    // Left out, so the training is bit for bit the honest run's.
    expect(honestFinal).toBeDefined();
    expect(view.final?.theta).toBe(honestFinal);
  }, 700_000);

  it('a hub SIGKILLed between rounds restarts on its file and resumes from the last θ: the run ends on the honest bits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-train-crash-'));
    let h: HubProcess | undefined;
    try {
      const db = join(dir, 'hub.db');
      const setup = new SqliteStore(db);
      const { token } = createToken(setup, 'trainer');
      setup.close();
      const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      // One port for both lives of the hub, so the volunteers' reconnects find the second.
      const port = await freePort();
      h = await spawnHubWith(['--db', db], 20_000, port);
      const corpus = smallCorpus();
      await upload(h.url, token, [corpus]);
      const { status, body } = await submit(h.url, auth, await tinyTrainJob(corpus));
      expect(status).toBe(201);
      const job = body.job as string;
      for (let i = 0; i < 2; i++) vols.push(await nodeVolunteer(h.url, { socket: nodeSocket(ORIGIN) }));
      for (const v of vols) v.volunteer.start();
      // Round 0 closed, round 1 opened with θ₁: kill the hub there.
      await waitFor(
        async () => (await trainView(h!.url, auth, job)).curve.length >= 2,
        180_000,
        'round 1 to open',
      );
      const before = await trainView(h.url, auth, job);
      const theta1 = before.curve[1]?.theta;
      await killHub(h);
      h = await spawnHubWith(['--db', db], 20_000, port);
      await waitFor(
        async () => (await trainView(h!.url, auth, job)).status !== 'running',
        240_000,
        'the job to end',
      );
      const view = await trainView(h.url, auth, job);
      expect(view.status).toBe('done');
      // The restarted hub went on from θ₁ (not from θ₀ again) and its run is the honest one.
      expect(view.curve[1]?.theta).toBe(theta1);
      expect(view.curve.map((r) => r.round)).toEqual([0, 1, 2, 3]);
      expect(honestFinal).toBeDefined();
      expect(view.final?.theta).toBe(honestFinal);
    } finally {
      for (const v of vols.splice(0)) await v.dispose();
      if (h) await killHub(h);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 480_000);
});
