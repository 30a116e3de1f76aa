// Real Chromium volunteers, end to end through one hub: the pages are built with vite, served by
// the hub itself, opened in headless Debian Chromium (SwiftShader WebGPU), given consent, and they
// run a real ONNX job (onnxruntime-web in the compute worker) and a WGSL job, with results
// validated across two browser identities. Then churn: a tab closed mid-job loses its shards to
// the others and the job still completes.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'vite';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { heatJob } from '../../src/node/example.ts';
import { launchVolunteers, type Volunteers } from '../../src/node/volunteers.ts';
import { parseManifest } from '../../src/protocol/kinds/index.ts';
import {
  expectedIndexOutput,
  expectedSpinOutput,
  indexJob,
  spinJob,
  waitFor,
} from '../client/client-helpers.ts';
import { heavy, mlp } from '../onnx/models.ts';
import { uniform } from '../onnx/reference.ts';
import { smallCorpus, tinyTrainJob, trainView } from '../train/job-helpers.ts';
import { HEAT_ATOL, heatReference, maxAbsDiff } from '../worker/heat-reference.ts';
import { hearth } from './cli-helpers.ts';
import { type TestHub, testHub, upload } from './hub-helpers.ts';

/** LCG steps per invocation in the churn job: long enough on SwiftShader that a tab can be caught mid-shard. */
const ITERS = 100_000_000;

let pagesDir: string;
let buildDir: string;
beforeAll(async () => {
  buildDir = mkdtempSync(join(tmpdir(), 'hearth-pages-'));
  pagesDir = join(buildDir, 'dist');
  await build({ configFile: 'vite.config.ts', logLevel: 'error', build: { outDir: pagesDir } });
});
afterAll(() => rmSync(buildDir, { recursive: true, force: true }));

let t: TestHub | undefined;
let child: ChildProcess | undefined;
let volunteers: Volunteers | undefined;
afterEach(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGKILL');
    await new Promise((r) => child?.once('exit', r));
  }
  child = undefined;
  await volunteers?.close();
  volunteers = undefined;
  await t?.dispose();
  t = undefined;
});

async function hub() {
  t = await testHub({ pagesDir, maxBlobBytes: 1 << 22, expireEveryMs: 100, allowedOrigins: [] });
  const { token } = createToken(t.hub.store, 'alice');
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const submit = async (manifest: unknown) => {
    const r = await fetch(`${t!.hub.url}/v1/jobs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify(manifest),
    });
    if (r.status !== 201) throw new Error(`submit: ${r.status} ${await r.text()}`);
    return ((await r.json()) as { job: string }).job;
  };
  const progress = async (job: string) =>
    (await (await fetch(`${t!.hub.url}/v1/jobs/${job}`, { headers: auth })).json()) as { validated: number };
  const results = async (job: string) =>
    (await (await fetch(`${t!.hub.url}/v1/jobs/${job}/results`, { headers: auth })).json()) as {
      shards: { shard: string; index: number }[];
    };
  const output = async (job: string, shard: string, name: string) =>
    new Float32Array(
      await (
        await fetch(`${t!.hub.url}/v1/jobs/${job}/results/${encodeURIComponent(shard)}/${name}`, {
          headers: auth,
        })
      ).arrayBuffer(),
    );
  return { hub: t.hub, token, submit, progress, results, output };
}

/** `hearth volunteer` as a child process; resolves once it says it started. */
function spawnVolunteers(hubUrl: string, count: number): Promise<{ out: () => string }> {
  const c = spawn(
    process.execPath,
    [
      'scripts/run-ts.mjs',
      'src/node/cli.ts',
      'volunteer',
      '--count',
      String(count),
      '--hub',
      hubUrl,
      '--adapter',
      'swiftshader',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } },
  );
  child = c;
  let out = '';
  c.stdout?.on('data', (d: Buffer) => (out += d));
  c.stderr?.on('data', (d: Buffer) => (out += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hearth volunteer did not start: ${out}`)), 90_000);
    c.stdout?.on('data', () => {
      if (out.includes('started')) {
        clearTimeout(timer);
        resolve({ out: () => out });
      }
    });
    c.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`hearth volunteer exited (${code}): ${out}`));
    });
  });
}

describe('Chromium volunteers from `hearth volunteer`, through the hub', () => {
  it('run an ONNX job and a WGSL job; results validated across two browser identities', async () => {
    const h = await hub();
    const model = mlp(9);
    const rows = 8;
    const x = Float32Array.from(uniform(4, rows * model.dims.D, -1, 1));
    const xBytes = new Uint8Array(x.buffer);
    const { manifest: wgsl, blobs } = await indexJob(3);
    await upload(h.hub.url, h.token, [model.bytes as Uint8Array<ArrayBuffer>, xBytes, ...blobs]);
    const onnxJob = await h.submit({
      v: 1,
      kind: 'onnx',
      model: await sha256Hex(model.bytes),
      inputs: { x: { sha256: await sha256Hex(xBytes), dtype: 'f32', shape: [rows, model.dims.D] } },
      batchInput: 'x',
      shardSize: 4,
      replication: 2,
      maxReplicas: 4,
      // WebGPU (SwiftShader) in one tab and wasm in another may both compute a shard: agree within fp32 noise.
      tolerance: { rtol: 1e-4, atol: 1e-5 },
      deadlineMs: 60_000,
      creditRate: 1,
      flopsPerShard: 1000,
    });
    const wgslJob = await h.submit(wgsl);

    const proc = await spawnVolunteers(h.hub.url, 2);
    await waitFor(
      async () => (await h.progress(onnxJob)).validated === 2 && (await h.progress(wgslJob)).validated === 3,
      240_000,
      `both jobs validated; volunteer output:\n${proc.out()}`,
    );

    const ref = model.reference(x, rows);
    const TOL = { rtol: 1e-4, atol: 1e-5 };
    for (const s of (await h.results(onnxJob)).shards) {
      for (const name of ['probs', 'logits'] as const) {
        const got = await h.output(onnxJob, s.shard, name);
        expect(got.length).toBe(4 * model.dims.O);
        got.forEach((v, i) => {
          const want = ref[name][s.index * 4 * model.dims.O + i]!;
          expect(Number.isFinite(v)).toBe(true);
          expect(Math.abs(v - want)).toBeLessThanOrEqual(TOL.atol + TOL.rtol * Math.abs(want));
        });
      }
    }
    for (const s of (await h.results(wgslJob)).shards) {
      expect([...(await h.output(wgslJob, s.shard, 'y'))]).toEqual(expectedIndexOutput(s.index));
    }
    // Two distinct browser identities each earned granted credit for all five shards.
    const ledger = h.hub.store.ledger();
    const who = new Set(ledger.map((e) => e.volunteer));
    expect(who.size).toBe(2);
    for (const id of who) {
      const mine = ledger.filter((e) => e.volunteer === id);
      expect(mine).toHaveLength(5);
      expect(mine.every((e) => e.status === 'granted')).toBe(true);
    }
    // SIGTERM: the command closes its browsers and exits 0.
    const exited = new Promise<number | null>((r) => child?.once('exit', (code) => r(code)));
    child?.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('churn: a tab closed mid-job loses its leases to the other tabs at once; the job completes', async () => {
    const h = await hub();
    const { manifest, blobs } = await spinJob(12, ITERS, {
      replication: 1,
      maxReplicas: 3,
      deadlineMs: 60_000,
    });
    await upload(h.hub.url, h.token, blobs);
    const job = await h.submit(manifest);
    volunteers = await launchVolunteers({ hubUrl: h.hub.url, count: 3, adapter: 'swiftshader' });
    // Close one tab while it holds a lease. The deadline is 60 s, so only the disconnect can
    // free that lease within the 10 s the test waits.
    let victim: { index: number; volunteerId: string | null } | undefined;
    await waitFor(
      async () => {
        victim = (await volunteers!.report()).find(
          (r) => r.volunteerId && h.hub.store.leasesOfVolunteer(r.volunteerId).length > 0,
        );
        return victim !== undefined;
      },
      90_000,
      'a tab holding a lease',
    );
    const victimId = victim!.volunteerId!;
    await volunteers.kill(victim!.index);
    await waitFor(
      () => h.hub.store.leasesOfVolunteer(victimId).length === 0,
      10_000,
      'the closed tab’s lease released',
    );
    await waitFor(async () => (await h.progress(job)).validated === 12, 180_000, 'the job to complete');
    for (const s of (await h.results(job)).shards) {
      expect([...(await h.output(job, s.shard, 'y'))]).toEqual(expectedSpinOutput(s.index, ITERS));
    }
    // Every shard is credited exactly once, and the other two tabs finished the job.
    const ledger = h.hub.store.ledger();
    expect(new Set(ledger.filter((e) => e.status === 'granted').map((e) => e.shard)).size).toBe(12);
    expect(ledger.filter((e) => e.status === 'granted')).toHaveLength(12);
  });

  it('a reloaded tab resumes by itself with the same identity, and the job completes', async () => {
    const h = await hub();
    const { manifest, blobs } = await spinJob(6, ITERS, {
      replication: 1,
      maxReplicas: 3,
      deadlineMs: 60_000,
    });
    await upload(h.hub.url, h.token, blobs);
    const job = await h.submit(manifest);
    volunteers = await launchVolunteers({ hubUrl: h.hub.url, count: 1, adapter: 'swiftshader' });
    let id = '';
    // Reload while the tab holds a lease, after it has finished at least one shard.
    await waitFor(
      async () => {
        id = (await volunteers!.report())[0]?.volunteerId ?? '';
        return (
          id !== '' && h.hub.store.ledger(id).length >= 1 && h.hub.store.leasesOfVolunteer(id).length === 1
        );
      },
      120_000,
      'one shard done and another in hand',
    );
    await volunteers.reload(0);
    await waitFor(
      async () => (await h.progress(job)).validated === 6,
      180_000,
      'the job to complete after the reload',
    );
    const [after] = await volunteers.report();
    // No second click was needed, and the key pair in IndexedDB survived: one identity did it all.
    expect(after?.volunteerId).toBe(id);
    expect(after?.state).not.toBe('asking');
    const ledger = h.hub.store.ledger();
    expect(ledger).toHaveLength(6);
    expect(ledger.every((e) => e.volunteer === id && e.status === 'granted')).toBe(true);
  });

  it('`hearth volunteer` refuses bad flags (exit 2) and a hub without pages (exit 1, saying how to build them)', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const c = spawn(process.execPath, ['scripts/run-ts.mjs', 'src/node/cli.ts', 'volunteer', ...args], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        c.stdout?.on('data', (d: Buffer) => (out += d));
        c.stderr?.on('data', (d: Buffer) => (out += d));
        c.once('exit', (code) => resolve({ code, out }));
      });
    const bad = await run(['--adapter', 'bogus']);
    expect(bad.code).toBe(2);
    expect(bad.out).toMatch(/--adapter: expected one of auto, swiftshader, native/);
    expect((await run(['--count', '0'])).code).toBe(2);
    t = await testHub({ pagesDir: join(buildDir, 'no-such-folder'), allowedOrigins: [] });
    const missing = await run(['--hub', t.hub.url, '--adapter', 'swiftshader']);
    expect(missing.code).toBe(1);
    expect(missing.out).toMatch(/answered 404.*npm run build/s);
  });

  it('swarm: tabs fetch the model from the first tab, not the hub; the hub serves it once', async () => {
    const h = await hub();
    const model = heavy(8, 256).bytes as Uint8Array<ArrayBuffer>;
    const x = new Uint8Array(Float32Array.from(uniform(6, 6 * 256, -1, 1)).buffer);
    await upload(h.hub.url, h.token, [model, x]);
    const modelSha = await sha256Hex(model);
    const job = await h.submit({
      v: 1,
      kind: 'onnx',
      model: modelSha,
      inputs: { x: { sha256: await sha256Hex(x), dtype: 'f32', shape: [6, 256] } },
      batchInput: 'x',
      shardSize: 2,
      replication: 3,
      maxReplicas: 4,
      tolerance: { rtol: 1e-4, atol: 1e-5 },
      deadlineMs: 60_000,
      creditRate: 1,
    });
    volunteers = await launchVolunteers({ hubUrl: h.hub.url, count: 1, adapter: 'swiftshader' });
    await waitFor(
      () => (h.hub.swarm?.holders(modelSha, 8).length ?? 0) > 0,
      120_000,
      'the first tab to announce the model',
    );
    const more = await launchVolunteers({ hubUrl: h.hub.url, count: 2, adapter: 'swiftshader' });
    try {
      await waitFor(
        async () => (await h.progress(job)).validated === 3,
        240_000,
        'three shards validated by three tabs',
      );
      const reports = await more.report();
      for (const r of reports) expect(r.stats?.peerBytes ?? 0).toBeGreaterThanOrEqual(model.byteLength);
      // One copy of the model from the hub; the input at most once per tab.
      expect(h.hub.stats.blobBytesServed).toBeLessThanOrEqual(model.byteLength + 3 * x.byteLength);
    } finally {
      await more.close();
    }
  });

  it('runs the heat-diffusion program through the CLI on two volunteers within tolerance of float64; a broken kernel fails with its error', async () => {
    const h = await hub();
    const env = { HEARTH_HUB: h.hub.url, HEARTH_TOKEN: h.token };
    const dir = mkdtempSync(join(tmpdir(), 'hearth-heat-'));
    try {
      expect((await hearth(['example', '--out', dir])).code).toBe(0);
      const sub = await hearth(['submit', join(dir, 'heat-job.json')], env);
      expect(sub.code, sub.stderr).toBe(0);
      const job = sub.stdout.trim().split('\n').at(-1)!.trim();
      // The same job with a syntax error in its kernel is refused at submit, with line and column.
      const heat = JSON.parse(readFileSync(join(dir, 'heat-job.json'), 'utf8')) as Record<string, unknown>;
      const broken = { ...heat, source: String(heat.source).replace('let c = src[i];', 'let c = src[i;') };
      writeFileSync(join(dir, 'broken-job.json'), JSON.stringify(broken));
      const refused = await hearth(['submit', join(dir, 'broken-job.json')], env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/400 wgsl\/compile: .*at line 19, column \d+/);
      // A hub without a device cannot tell (it checks declarations only): the volunteers find it,
      // and the researcher hears it from `hearth status`.
      const late = h.hub.scheduler.submit(parseManifest(broken), Date.now(), { owner: 'alice' });
      const vols = await spawnVolunteers(h.hub.url, 2);
      const watched = await hearth(['status', job, '--watch'], env);
      expect(watched.code, `${watched.stdout}${watched.stderr}${vols.out()}`).toBe(0);
      expect(watched.stdout).toMatch(/4\/4 validated .* done/);
      await waitFor(
        async () => (await hearth(['status', late], env)).code === 1,
        60_000,
        'the broken job to fail',
      );
      const failed = await hearth(['status', late], env);
      expect(failed.stdout).toMatch(
        /job failed: wgsl\/compile: WGSL error in shader .* at line 19, column \d+/,
      );
      // Results: each band's rows, stacked, are the whole grid within HEAT_ATOL of float64.
      const out = join(dir, 'results');
      expect((await hearth(['results', job, '--out', out], env)).code).toBe(0);
      const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as {
        shards: { index: number; replicas: number; outputs: { file: string }[] }[];
      };
      expect(index.shards.map((s) => s.index)).toEqual([0, 1, 2, 3]);
      // Replication 2, no exceptions: every band rests on two agreeing volunteers.
      expect(index.shards.every((s) => s.replicas === 2)).toBe(true);
      const grid: number[] = [];
      for (const s of index.shards) {
        const bytes = readFileSync(join(out, s.outputs[0]!.file));
        const start = 10 + bytes.readUInt16LE(8);
        grid.push(
          ...new Float32Array(bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + bytes.length)),
        );
      }
      const spec = heatJob().spec;
      expect(grid).toHaveLength(spec.size * spec.size);
      expect(maxAbsDiff(grid, heatReference(spec))).toBeLessThanOrEqual(HEAT_ATOL);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('train: Chromium tabs run a DiLoCo job through the hub, one tab leaves and another joins mid-run, and the validation loss falls', async () => {
    const h = await hub();
    const corpus = smallCorpus();
    await upload(h.hub.url, h.token, [corpus]);
    const job = await h.submit(await tinyTrainJob(corpus, { rounds: 3, innerSteps: 4 }));
    const auth = { authorization: `Bearer ${h.token}` };
    volunteers = await launchVolunteers({ hubUrl: h.hub.url, count: 3, adapter: 'swiftshader' });
    // Churn, a third of the group each way: once round 0 is closed, one tab leaves and a new one joins.
    await waitFor(
      async () => (await trainView(h.hub.url, auth, job)).curve.length >= 2,
      240_000,
      'round 0 to close',
    );
    await volunteers.kill(0);
    const more = await launchVolunteers({ hubUrl: h.hub.url, count: 1, adapter: 'swiftshader' });
    try {
      await waitFor(
        async () => (await trainView(h.hub.url, auth, job)).status !== 'running',
        420_000,
        'the train job to end',
      );
    } finally {
      await more.close();
    }
    const view = await trainView(h.hub.url, auth, job);
    expect(view.status).toBe('done');
    const val = view.curve.map((r) => r.valLoss ?? Number.NaN);
    expect(val).toHaveLength(4);
    expect(val[0]).toBeGreaterThan(5.3);
    expect(val[3]).toBeLessThan((val[0] as number) - 1);
    // Every training Δ was recomputed by a second tab and agreed bit for bit (same adapter).
    for (const r of view.curve.slice(0, 3)) expect(r.accepted).toBe(2);
    const ids = new Set(h.hub.store.ledger().map((e) => e.volunteer));
    expect(ids.size).toBeGreaterThanOrEqual(2);
    expect(h.hub.store.ledger().every((e) => e.status === 'granted')).toBe(true);
  }, 720_000);

  it('train: a tab reloaded mid-shard resumes from its IndexedDB checkpoint, and its Δ agrees bit for bit with its replica', async () => {
    const h = await hub();
    const corpus = smallCorpus();
    await upload(h.hub.url, h.token, [corpus]);
    // One slot, two replicas: the reloaded tab's late result must agree with the other tab's.
    const job = await h.submit(await tinyTrainJob(corpus, { rounds: 1, groupSize: 1, innerSteps: 40 }));
    const auth = { authorization: `Bearer ${h.token}` };
    volunteers = await launchVolunteers({ hubUrl: h.hub.url, count: 2, adapter: 'swiftshader' });
    let victim: (typeof volunteers extends { report(): Promise<(infer R)[]> } ? R : never) | undefined;
    await waitFor(
      async () => {
        victim = (await volunteers!.report()).find(
          (r) => r.state === 'working' && (r.stats?.checkpoints ?? 0) >= 1,
        );
        return victim !== undefined;
      },
      240_000,
      'a tab to checkpoint its training shard',
    );
    const index = victim!.index;
    const id = victim!.volunteerId!;
    const t0 = Date.now();
    await volunteers.reload(index);
    await waitFor(
      async () => (await trainView(h.hub.url, auth, job)).status !== 'running',
      300_000,
      'the train job to end after the reload',
    );
    const after = (await volunteers.report())[index];
    console.log(
      `reload: resumed ${after?.stats?.resumed} shard from step ${after?.stats?.resumedSteps} of 40; the job ended ${Date.now() - t0} ms after the reload`,
    );
    // The same identity, resumed by itself: one shard taken up again, from a step past 0.
    expect(after?.volunteerId).toBe(id);
    expect(after?.stats?.resumed).toBe(1);
    // The first checkpoint comes 10 s into the loop, often after step 1 only (the first step
    // compiles the pipelines); test/client/volunteer-resume shows the step itself carried over.
    expect(after?.stats?.resumedSteps).toBeGreaterThanOrEqual(1);
    const view = await trainView(h.hub.url, auth, job);
    expect(view.status).toBe('done');
    // Both replicas agreed (exact tolerance): the resumed Δ has the uninterrupted run's bits.
    expect(view.curve[0]?.accepted).toBe(1);
    // The reloaded tab's late result was taken (not refused, not failed) and credited: it is one
    // of the two agreeing replicas of the round's shard, so its Δ matched the other tab's.
    expect(after?.stats?.refused).toBe(0);
    expect(after?.stats?.failed).toBe(0);
    const shard0 = h.hub.store.shardsOfJob(job).find((s) => (s.work as { round?: number }).round === 0);
    const granted = h.hub.store.ledger().filter((e) => e.status === 'granted' && e.shard === shard0?.id);
    expect(granted.map((e) => e.volunteer)).toContain(id);
    expect(granted).toHaveLength(2);
  }, 600_000);
});
