// bench: hub shard cycles/s (SQLite vs memory store, in-process and over WebSockets) and memory per connected volunteer
//
// (a) Shard lifecycle throughput: lease → result → validate → credit, with many concurrent
//     volunteers on a WGSL job of tiny shards (answers computed in JS, no GPU).
//     1. In this process, straight on the Scheduler: MemoryStore vs SqliteStore (a real file, WAL,
//        FULL sync for results) vs JournaledStore (open work and its reads in memory, writes journaled to the same
//        kind of file in group commits; the hub's store), replication 1 and 2.
//     2. End to end: a real hub (`startHub`, JournaledStore in a temp dir, 127.0.0.1:0) in its own child
//        process, volunteers in another child over real WebSockets with real P-256 keys.
// (b) Memory per connected volunteer: a fresh hub process; N authenticated idle volunteers from
//     child processes (at most 5,000 each: 20,000 open files per process); the hub's RSS and heap
//     after full GCs, before and after, divided by N.
//
// Flags: --quick (fewer volunteers, shorter runs), --volunteers=N (idle volunteers for (b)),
// --profile (CPU profile of the end-to-end hub; prints where its time goes).
// Last line: {"shard_cycles_per_s": x, "volunteers": n, "kb_per_volunteer": x} — the end-to-end
// figure at replication 1 (every round trip a full cycle), and RSS per idle volunteer.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JournaledStore } from '../src/hub/journaled-store.ts';
import { MemoryStore } from '../src/hub/memory-store.ts';
import { Scheduler } from '../src/hub/scheduler.ts';
import { SqliteStore } from '../src/hub/sqlite-store.ts';
import type { HubStore } from '../src/hub/store.ts';
import type { ShardResult } from '../src/protocol/shard.ts';
import { manifest } from './hub/manifest.ts';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const profile = argv.includes('--profile');
const flag = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const IDLE = Number(flag('volunteers') ?? (quick ? 1000 : 10_000));
const WORKERS = quick ? 32 : 64;
const CORE_MS = quick ? 1000 : 2500;
const NET_MS = quick ? 3000 : 8000;
const PER_CLIENT_PROC = 5000;

const tmp = mkdtempSync(join(tmpdir(), 'hearth-bench-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------- child processes over IPC

class Proc {
  readonly child: ChildProcess;
  #waiters: ((m: unknown) => void)[] = [];
  #first: Promise<unknown>;

  constructor(file: string, nodeFlags: string[] = []) {
    this.child = spawn(process.execPath, [...nodeFlags, 'scripts/run-ts.mjs', file], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#first = new Promise((resolve) => this.#waiters.push(resolve));
    this.child.on('message', (m) => this.#waiters.shift()?.(m));
    this.child.on('exit', (code, signal) => {
      for (const w of this.#waiters.splice(0)) w({ exited: code ?? signal });
    });
  }

  /** The child's first message (it sends one when ready). */
  ready<T>(): Promise<T> {
    return this.#first as Promise<T>;
  }

  ask<T>(m: unknown): Promise<T> {
    return new Promise<T>((resolve) => {
      this.#waiters.push(resolve as (m: unknown) => void);
      this.child.send(m as object);
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ cmd: 'close' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await gone;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- (a1) in-process scheduler

function resultFor(shard: string, job: string): ShardResult {
  const i = Number(shard.slice(shard.lastIndexOf('/') + 1));
  const data = Float32Array.from([i, i + 0.5, -i, 1 / (i + 1)]).buffer;
  const sha256 = createHash('sha256').update(new Uint8Array(data)).digest('hex');
  return {
    v: 1,
    shard,
    job,
    kind: 'wgsl',
    outputs: [{ name: 'y', dtype: 'f32', shape: [4], data, sha256 }],
    backend: 'webgpu',
    device: 'bench',
    ms: 0,
  };
}

interface CoreRun {
  readonly results: number;
  readonly validated: number;
  readonly ms: number;
}

async function coreCycles(store: HubStore, replication: number, ms: number): Promise<CoreRun> {
  const s = new Scheduler(store, { honeypotRate: 0 });
  const caps = { maxBufferBytes: 2 ** 30, features: [] };
  const jobs: string[] = [];
  const more = () => jobs.push(s.submit(manifest(20_000, replication), Date.now()));
  more();
  let results = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  const volunteer = async (id: string) => {
    while (performance.now() < end) {
      const g = s.lease(id, caps, Date.now());
      if (!g) {
        more();
        continue;
      }
      await s.submitResult(id, resultFor(g.shard, g.job), Date.now());
      results++;
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, (_, i) => volunteer(`v${i}`)));
  const elapsed = performance.now() - t0;
  const validated = jobs.reduce((n, j) => n + s.progress(j).validated, 0);
  store.close();
  return { results, validated, ms: elapsed };
}

// ---------------------------------------------------------------- (a2) end to end

interface NetRun {
  readonly results: number;
  readonly acks: Record<string, number>;
  readonly errors: number;
  readonly idle: number;
  readonly ms: number;
  /** CPU time the hub process spent during the run, µs. */
  readonly hubCpuUs: number;
  readonly profileDir?: string;
}

async function netCycles(replication: number, ms: number, withProfile: boolean): Promise<NetRun> {
  const profileDir = withProfile ? mkdtempSync(join(tmp, 'prof-')) : undefined;
  const hub = new Proc('bench/hub/hub-proc.ts');
  const clients = new Proc('bench/hub/clients.ts');
  try {
    const { url } = await hub.ready<{ url: string }>();
    await clients.ready();
    // Enough shards for ~12,000 round trips a second, so the job never runs dry mid-run.
    await hub.ask({ cmd: 'submit', shards: Math.ceil((ms / 1000) * 12_000), replication });
    const c = await clients.ask<{ connected: number; failed: number; firstError?: string }>({
      cmd: 'connect',
      url,
      count: WORKERS,
      parallel: 16,
    });
    if (c.connected !== WORKERS)
      throw new Error(`only ${c.connected} of ${WORKERS} volunteers connected: ${c.firstError}`);
    // Profiled over the work window only: not the start-up, not the job's submission.
    if (profileDir) await hub.ask({ cmd: 'prof-start' });
    const cpu0 = await hub.ask<{ user: number; system: number }>({ cmd: 'cpu' });
    const w = await clients.ask<{ acks: Record<string, number>; errors: number; idle: number; ms: number }>({
      cmd: 'work',
      ms,
    });
    const cpu1 = await hub.ask<{ user: number; system: number }>({ cmd: 'cpu' });
    const hubCpuUs = cpu1.user + cpu1.system - cpu0.user - cpu0.system;
    if (profileDir) await hub.ask({ cmd: 'prof-stop', file: join(profileDir, 'hub.cpuprofile') });
    const results = Object.values(w.acks).reduce((a, b) => a + b, 0);
    return {
      results,
      acks: w.acks,
      errors: w.errors,
      idle: w.idle,
      ms: w.ms,
      hubCpuUs,
      ...(profileDir ? { profileDir } : {}),
    };
  } finally {
    await clients.close();
    await hub.close();
  }
}

/** Self time by function from a V8 .cpuprofile, largest first, as % of all samples. */
function topSelf(dir: string, n: number): { fn: string; pct: number }[] {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return [];
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const cf = byId.get(id)?.callFrame;
    if (!cf) return;
    const where = cf.url ? `${cf.url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, t]) => ({ fn, pct: (100 * t) / total }));
}

// ---------------------------------------------------------------- (b) memory per volunteer

interface Mem {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  volunteers: number;
  gc: boolean;
}

async function memoryPerVolunteer(n: number) {
  const hub = new Proc('bench/hub/hub-proc.ts', ['--expose-gc']);
  const procs: Proc[] = [];
  try {
    const { url } = await hub.ready<{ url: string }>();
    const before = await hub.ask<Mem>({ cmd: 'mem' });
    const t0 = performance.now();
    const parts = Math.ceil(n / PER_CLIENT_PROC);
    for (let i = 0; i < parts; i++) procs.push(new Proc('bench/hub/clients.ts'));
    await Promise.all(procs.map((p) => p.ready()));
    const outs = await Promise.all(
      procs.map((p, i) =>
        p.ask<{ connected: number; failed: number; firstError?: string }>({
          cmd: 'connect',
          url,
          count: Math.min(PER_CLIENT_PROC, n - i * PER_CLIENT_PROC),
          parallel: 64,
        }),
      ),
    );
    const connectMs = performance.now() - t0;
    const connected = outs.reduce((a, o) => a + o.connected, 0);
    const failed = outs.reduce((a, o) => a + o.failed, 0);
    const after = await hub.ask<Mem>({ cmd: 'mem' });
    return {
      before,
      after,
      connected,
      failed,
      connectMs,
      firstError: outs.find((o) => o.firstError)?.firstError,
    };
  } finally {
    await Promise.all(procs.map((p) => p.close()));
    await hub.close();
  }
}

// ---------------------------------------------------------------- run

const pad = (s: string | number, w: number) => String(s).padEnd(w);
const fmt = (x: number) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
console.log(
  `hub bench${quick ? ' (--quick)' : ''}: ${WORKERS} concurrent volunteers, Node ${process.version}\n`,
);

console.log('(a1) in-process Scheduler, lease → result → validate → credit');
console.log(
  `${pad('store', 16)}${pad('replication', 13)}${pad('results/s', 12)}${pad('validated/s', 13)}ratio vs memory`,
);
const core: Record<string, CoreRun> = {};
for (const replication of [1, 2]) {
  for (const [name, make] of [
    ['MemoryStore', () => new MemoryStore()],
    ['SqliteStore', () => new SqliteStore(join(mkdtempSync(join(tmp, 'db-')), 'hub.db'))],
    ['JournaledStore', () => new JournaledStore(join(mkdtempSync(join(tmp, 'db-')), 'hub.db'))],
  ] as const) {
    const r = await coreCycles(make(), replication, CORE_MS);
    core[`${name}/${replication}`] = r;
    const rate = (r.results / r.ms) * 1000;
    const memRate =
      (core[`MemoryStore/${replication}`]!.results / core[`MemoryStore/${replication}`]!.ms) * 1000;
    console.log(
      `${pad(name, 16)}${pad(replication, 13)}${pad(fmt(rate), 12)}${pad(fmt((r.validated / r.ms) * 1000), 13)}${(rate / memRate).toFixed(2)}`,
    );
  }
}

console.log('\n(a2) end to end: hub process + volunteer process, real WebSockets on loopback, SQLite file');
console.log(
  `${pad('replication', 13)}${pad('results/s', 12)}${pad('hub CPU/cycle', 15)}${pad('per hub core', 14)}${pad('outcomes', 34)}${pad('errors', 8)}no-work`,
);
const net: Record<number, NetRun> = {};
for (const replication of [1, 2]) {
  const r = await netCycles(replication, NET_MS, profile && replication === 1);
  net[replication] = r;
  console.log(
    `${pad(replication, 13)}${pad(fmt((r.results / r.ms) * 1000), 12)}${pad(`${Math.round(r.hubCpuUs / r.results)} µs`, 15)}${pad(`${fmt((r.results / r.hubCpuUs) * 1e6)}/s`, 14)}${pad(JSON.stringify(r.acks), 34)}${pad(r.errors, 8)}${r.idle}`,
  );
}
console.log(
  '(hub CPU/cycle: the hub process\u2019s user+system CPU time over the run / results; "per hub core" is what\n' +
    ' one fully busy core would sustain — here the volunteers\u2019 process shares the same 2 cores.)',
);
if (profile && net[1]?.profileDir) {
  console.log('\nwhere the end-to-end hub spends its time (self time, replication 1):');
  for (const { fn, pct } of topSelf(net[1].profileDir, 20))
    console.log(`  ${pct.toFixed(1).padStart(5)}%  ${fn}`);
}

console.log(`\n(b) memory of the hub process per connected, authenticated, idle volunteer (N = ${IDLE})`);
const m = await memoryPerVolunteer(IDLE);
const kb = (bytes: number) => bytes / 1024 / Math.max(1, m.connected);
console.log(
  `connected ${m.connected} (failed ${m.failed}${m.firstError ? `: ${m.firstError}` : ''}) in ${fmt(m.connectMs)} ms; hub sees ${m.after.volunteers}; GC ${m.after.gc ? 'forced' : 'not available'}`,
);
console.log(
  `${pad('per volunteer', 16)}${pad('RSS', 10)}${pad('heap', 10)}${pad('external', 10)}arrayBuffers`,
);
console.log(
  `${pad('KB', 16)}${pad(kb(m.after.rss - m.before.rss).toFixed(1), 10)}${pad(kb(m.after.heapUsed - m.before.heapUsed).toFixed(1), 10)}${pad(kb(m.after.external - m.before.external).toFixed(1), 10)}${kb(m.after.arrayBuffers - m.before.arrayBuffers).toFixed(1)}`,
);

const e2e = net[1]!;
console.log(
  JSON.stringify({
    shard_cycles_per_s: Math.round((e2e.results / e2e.ms) * 1000),
    volunteers: m.connected,
    kb_per_volunteer: Number(kb(m.after.rss - m.before.rss).toFixed(1)),
  }),
);
process.exit(0);
