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
// (a3) The end-to-end cycle on PostgreSQL (a throwaway cluster started here): one hub process, then
//     two hub processes on one database with the volunteers split between them; the hubs' CPU
//     time per cycle shows whether adding hubs adds cost per cycle (goal: 2 hubs ≤ 1.2 × 1 hub).
// Last line: {"shard_cycles_per_s": x, "volunteers": n, "kb_per_volunteer": x,
// "pg_cycles_per_s_1hub", "pg_cycles_per_s_2hubs", "pg_cpu_us_per_cycle_1hub",
// "pg_cpu_us_per_cycle_2hubs"} — the SQLite end-to-end figure at replication 1 (every round trip
// a full cycle), RSS per idle volunteer, and (a3)'s figures.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { JournaledStore } from '../src/hub/journaled-store.ts';
import { MemoryStore } from '../src/hub/memory-store.ts';
import { Scheduler } from '../src/hub/scheduler.ts';
import { SqliteStore } from '../src/hub/sqlite-store.ts';
import type { HubStore } from '../src/hub/store.ts';
import type { ShardResult } from '../src/protocol/shard.ts';
import { startPgCluster } from '../test/setup/pg-cluster.ts';
import { manifest } from './hub/manifest.ts';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const profile = argv.includes('--profile');
const flag = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const IDLE = Number(flag('volunteers') ?? (quick ? 1000 : 10_000));
/** Parts to run (`--only=a2` or `--only=a1,a2`): a1, a2, a3, b; all by default. */
const only = new Set((flag('only') ?? 'a1,a2,a3,b').split(','));
/** Replications of (a1) and (a2) (`--replication=1`): 1 and 2 by default. */
const REPLICATIONS = (flag('replication') ?? '1,2').split(',').map(Number);
/** Shards per message in (a2)'s batched run (lease-batch → results), `--batch=N`; 1 skips that run. */
const BATCH = Number(flag('batch') ?? 16);
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

  constructor(file: string, nodeFlags: string[] = [], args: string[] = []) {
    this.child = spawn(process.execPath, [...nodeFlags, 'scripts/run-ts.mjs', file, ...args], {
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
  /** CPU time of this process (every thread) over the run, µs. */
  readonly cpuUs: number;
}

async function coreCycles(store: HubStore, replication: number, ms: number): Promise<CoreRun> {
  const s = new Scheduler(store, { honeypotRate: 0 });
  const caps = { maxBufferBytes: 2 ** 30, features: [] };
  const jobs: string[] = [];
  const more = () => jobs.push(s.submit(manifest(20_000, replication), Date.now()));
  more();
  let results = 0;
  const cpu0 = process.cpuUsage();
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
  const cpu = process.cpuUsage(cpu0);
  const validated = jobs.reduce((n, j) => n + s.progress(j).validated, 0);
  store.close();
  return { results, validated, ms: elapsed, cpuUs: cpu.user + cpu.system };
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
  /** CPU time the volunteers' process spent during the run, µs. */
  readonly clientCpuUs: number;
  readonly profileDir?: string;
}

async function netCycles(replication: number, ms: number, withProfile: boolean, batch = 1): Promise<NetRun> {
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
    const w = await clients.ask<{
      acks: Record<string, number>;
      errors: number;
      idle: number;
      ms: number;
      cpuUs: number;
    }>({ cmd: 'work', ms, batch });
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
      clientCpuUs: w.cpuUs,
      ...(profileDir ? { profileDir } : {}),
    };
  } finally {
    await clients.close();
    await hub.close();
  }
}

interface PgRun {
  readonly results: number;
  readonly ms: number;
  readonly errors: number;
  /** Lease requests answered no-work. */
  readonly idle: number;
  /** CPU time of all the hub processes together during the run, µs. */
  readonly hubCpuUs: number;
}

/**
 * The same end-to-end cycle on PostgreSQL: `hubs` hub processes on one database (a fresh one in
 * the bench's throwaway cluster) and one blob folder, the volunteers split evenly between them.
 */
async function pgCycles(clusterUrl: string, hubs: number, ms: number, withProfile = false): Promise<PgRun> {
  const db = `bench_${hubs}_${Date.now()}`;
  const admin = postgres(`${clusterUrl}/postgres`, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${db}`);
  await admin.end();
  const blobs = mkdtempSync(join(tmp, 'pg-blobs-'));
  const procs = Array.from(
    { length: hubs },
    () => new Proc('bench/hub/hub-proc.ts', [], [`--pg=${clusterUrl}/${db}`, `--blobs=${blobs}`]),
  );
  const clients = new Proc('bench/hub/clients.ts');
  try {
    const urls = await Promise.all(procs.map((p) => p.ready<{ url: string }>()));
    await clients.ready();
    const first = procs[0];
    if (!first) throw new Error('no hub');
    await first.ask({ cmd: 'submit', shards: Math.ceil((ms / 1000) * 6_000), replication: 1 });
    for (const [i, u] of urls.entries()) {
      const c = await clients.ask<{ connected: number; failed: number; firstError?: string }>({
        cmd: 'connect',
        url: u.url,
        count: WORKERS / hubs,
        parallel: 16,
      });
      if (c.connected !== ((i + 1) * WORKERS) / hubs)
        throw new Error(`only ${c.connected} volunteers connected: ${c.firstError}`);
    }
    const cpu = async () =>
      (await Promise.all(procs.map((p) => p.ask<{ user: number; system: number }>({ cmd: 'cpu' })))).reduce(
        (n, c) => n + c.user + c.system,
        0,
      );
    const profileDir = withProfile ? mkdtempSync(join(tmp, 'pg-prof-')) : undefined;
    if (profileDir) await Promise.all(procs.map((p) => p.ask({ cmd: 'prof-start' })));
    const cpu0 = await cpu();
    const w = await clients.ask<{ acks: Record<string, number>; errors: number; idle: number; ms: number }>({
      cmd: 'work',
      ms,
    });
    const hubCpuUs = (await cpu()) - cpu0;
    if (profileDir) {
      await first.ask({ cmd: 'prof-stop', file: join(profileDir, 'hub.cpuprofile') });
      for (const p of procs.slice(1))
        await p.ask({ cmd: 'prof-stop', file: join(tmp, 'ignored.cpuprofile') });
      console.log(`  where the first of ${hubs} PostgreSQL hub(s) spends its main thread's time (self):`);
      for (const { fn, pct } of topSelf(profileDir, 12))
        console.log(`    ${pct.toFixed(1).padStart(5)}%  ${fn}`);
    }
    const results = Object.values(w.acks).reduce((a, b) => a + b, 0);
    return { results, ms: w.ms, errors: w.errors, idle: w.idle, hubCpuUs };
  } finally {
    await clients.close();
    for (const p of procs) await p.close();
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

const core: Record<string, CoreRun> = {};
const net: Record<number, NetRun> = {};
const pgRuns: Record<number, PgRun> = {};
let m: Awaited<ReturnType<typeof memoryPerVolunteer>> | undefined;
if (only.has('a1')) {
  console.log('(a1) in-process Scheduler, lease → result → validate → credit');
  console.log(
    `${pad('store', 18)}${pad('replication', 13)}${pad('results/s', 12)}${pad('validated/s', 13)}${pad('CPU/cycle', 11)}ratio vs memory`,
  );
  for (const replication of REPLICATIONS) {
    for (const [name, make] of [
      ['MemoryStore', () => new MemoryStore()],
      ['SqliteStore', () => new SqliteStore(join(mkdtempSync(join(tmp, 'db-')), 'hub.db'))],
      [
        'Journaled inline',
        () => new JournaledStore(join(mkdtempSync(join(tmp, 'db-')), 'hub.db'), { writerThread: false }),
      ],
      ['JournaledStore', () => new JournaledStore(join(mkdtempSync(join(tmp, 'db-')), 'hub.db'))],
    ] as const) {
      const r = await coreCycles(make(), replication, CORE_MS);
      core[`${name}/${replication}`] = r;
      const rate = (r.results / r.ms) * 1000;
      const memRate =
        (core[`MemoryStore/${replication}`]!.results / core[`MemoryStore/${replication}`]!.ms) * 1000;
      console.log(
        `${pad(name, 18)}${pad(replication, 13)}${pad(fmt(rate), 12)}${pad(fmt((r.validated / r.ms) * 1000), 13)}${pad(`${Math.round(r.cpuUs / r.results)} µs`, 11)}${(rate / memRate).toFixed(2)}`,
      );
    }
  }
}

let batched: NetRun | undefined;
if (only.has('a2')) {
  console.log('\n(a2) end to end: hub process + volunteer process, real WebSockets on loopback, SQLite file');
  console.log(
    `${pad('replication', 13)}${pad('per message', 13)}${pad('results/s', 12)}${pad('hub CPU/cycle', 15)}${pad('per hub core', 14)}${pad('vol. CPU/cycle', 16)}${pad('outcomes', 34)}${pad('errors', 8)}no-work`,
  );
  const row = (replication: number, batch: number, r: NetRun) =>
    console.log(
      `${pad(replication, 13)}${pad(batch, 13)}${pad(fmt((r.results / r.ms) * 1000), 12)}${pad(`${Math.round(r.hubCpuUs / r.results)} µs`, 15)}${pad(`${fmt((r.results / r.hubCpuUs) * 1e6)}/s`, 14)}${pad(`${Math.round(r.clientCpuUs / r.results)} µs`, 16)}${pad(JSON.stringify(r.acks), 34)}${pad(r.errors, 8)}${r.idle}`,
    );
  for (const replication of REPLICATIONS) {
    const r = await netCycles(replication, NET_MS, profile && replication === 1);
    net[replication] = r;
    row(replication, 1, r);
  }
  // The same cycle with lease-batch → results: BATCH shards a message each way.
  if (BATCH > 1) {
    batched = await netCycles(1, NET_MS, profile, BATCH);
    row(1, BATCH, batched);
  }
  console.log(
    '(hub CPU/cycle: the hub process\u2019s user+system CPU time over the run / results; "per hub core" is what\n' +
      ' one fully busy core would sustain — here the volunteers\u2019 process shares the same 2 cores; "vol. CPU/cycle"\n' +
      ' is the volunteers\u2019 process\u2019s CPU time / results; "per message": shards per lease and result message.)',
  );
  for (const [what, r] of [
    ['one shard a message', net[1]],
    [`${BATCH} shards a message`, batched],
  ] as const) {
    if (!profile || !r?.profileDir) continue;
    console.log(`\nwhere the end-to-end hub spends its time (self time, replication 1, ${what}):`);
    for (const { fn, pct } of topSelf(r.profileDir, 20))
      console.log(`  ${pct.toFixed(1).padStart(5)}%  ${fn}`);
  }
}

if (only.has('a3')) {
  console.log(
    '\n(a3) end to end on PostgreSQL (a throwaway local cluster, fsync on): 1 hub, then 2 hubs on one database',
  );
  console.log(
    `${pad('hubs', 7)}${pad('results/s', 12)}${pad('hub CPU/cycle', 15)}${pad('errors', 8)}no-work`,
  );
  const cluster = await startPgCluster();
  try {
    for (const hubs of [1, 2]) {
      const r = await pgCycles(cluster.url, hubs, NET_MS, profile);
      pgRuns[hubs] = r;
      console.log(
        `${pad(hubs, 7)}${pad(fmt((r.results / r.ms) * 1000), 12)}${pad(`${Math.round(r.hubCpuUs / r.results)} µs`, 15)}${pad(r.errors, 8)}${r.idle}`,
      );
    }
  } finally {
    cluster.stop();
  }
  console.log(
    '(replication 1; hub CPU/cycle: the hub processes’ CPU time together / results, PostgreSQL’s own CPU\n' +
      ' not counted; on these 2 cores the hubs, the volunteers’ process and PostgreSQL share the machine.)',
  );
}

if (only.has('b')) {
  console.log(`\n(b) memory of the hub process per connected, authenticated, idle volunteer (N = ${IDLE})`);
  const mem = await memoryPerVolunteer(IDLE);
  m = mem;
  const kb = (bytes: number) => bytes / 1024 / Math.max(1, mem.connected);
  console.log(
    `connected ${m.connected} (failed ${m.failed}${m.firstError ? `: ${m.firstError}` : ''}) in ${fmt(m.connectMs)} ms; hub sees ${m.after.volunteers}; GC ${m.after.gc ? 'forced' : 'not available'}`,
  );
  console.log(
    `${pad('per volunteer', 16)}${pad('RSS', 10)}${pad('heap', 10)}${pad('external', 10)}arrayBuffers`,
  );
  console.log(
    `${pad('KB', 16)}${pad(kb(m.after.rss - m.before.rss).toFixed(1), 10)}${pad(kb(m.after.heapUsed - m.before.heapUsed).toFixed(1), 10)}${pad(kb(m.after.external - m.before.external).toFixed(1), 10)}${kb(m.after.arrayBuffers - m.before.arrayBuffers).toFixed(1)}`,
  );
}

const e2e = net[1];
const kb = (bytes: number) => bytes / 1024 / Math.max(1, m?.connected ?? 0);
console.log(
  JSON.stringify({
    ...(e2e ? { shard_cycles_per_s: Math.round((e2e.results / e2e.ms) * 1000) } : {}),
    ...(batched ? { shard_cycles_per_s_batched: Math.round((batched.results / batched.ms) * 1000) } : {}),
    ...(m
      ? { volunteers: m.connected, kb_per_volunteer: Number(kb(m.after.rss - m.before.rss).toFixed(1)) }
      : {}),
    ...Object.fromEntries(
      ([1, 2] as const).flatMap((h) => {
        const r = pgRuns[h];
        return r
          ? [
              [`pg_cycles_per_s_${h}hub${h > 1 ? 's' : ''}`, Math.round((r.results / r.ms) * 1000)],
              [`pg_cpu_us_per_cycle_${h}hub${h > 1 ? 's' : ''}`, Math.round(r.hubCpuUs / r.results)],
            ]
          : [];
      }),
    ),
  }),
);
process.exit(0);
