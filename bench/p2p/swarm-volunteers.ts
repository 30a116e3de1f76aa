// Hub egress with the real volunteer runtime: the pages built with vite (vite.config.ts → the
// volunteer page) and served by the hub, `count` Chromium volunteers launched with
// launchVolunteers (consent clicked, SwiftShader WebGPU), and an ONNX job whose model is one
// MatMul over a 2048×4096 f32 initializer (32 MiB). Every volunteer that takes a lease needs the
// model; the volunteer runtime asks the hub for holders, fetches from peers, falls back to the
// hub's blob route, and announces. We wait until every volunteer holds the model (its counters:
// bytes from the hub + bytes from peers) and read the hub's blob egress, how many peers served
// each follower (peers still fetching the model serve the pieces they have), and the swarm's
// time from the first volunteer's first blob request to the last one holding the model.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'vite';
import { sha256Hex } from '../../src/core/hash.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { launchVolunteers, type Volunteers } from '../../src/node/volunteers.ts';
import { initializer, onnxModel, value } from '../../src/onnx/model-builder.ts';
import { testHub, upload } from '../../test/node/hub-helpers.ts';

const K = 2048;
const N = 4096;
const ROWS = 32;

export interface VolunteerRow {
  readonly index: number;
  readonly fromHub: number;
  readonly fromPeers: number;
  readonly leases: number;
  /** Most peers that served pieces of one blob to it (undefined: a runtime that does not count). */
  readonly holdersServed: number | undefined;
  /** Its first lease's blobs: requested and all in (epoch ms; undefined when not counted yet). */
  readonly fetchStartedAt: number | undefined;
  readonly fetchDoneAt: number | undefined;
  /** Peer fetches that fell back to the hub, those stopped for lack of progress, waits that ran out. */
  readonly fallbacks: string;
  /** Why its last peer fetch fell back ('' when none did). */
  readonly lastFallback: string;
}

export interface VolunteerSwarmResult {
  readonly modelBytes: number;
  /** Bytes the hub's blob route sent (the model and the small input tensor). */
  readonly servedBytes: number;
  readonly copies: number;
  readonly holding: number;
  readonly rows: readonly VolunteerRow[];
  readonly seconds: number;
  readonly inputBytes: number;
  /**
   * First blob request → last volunteer holding the model, seconds: from the volunteers' own
   * clocks where the runtime reports them, else from the bench's polls (every 250 ms).
   */
  readonly swarmSeconds: number;
  /** Where swarmSeconds came from. */
  readonly swarmClock: 'runtime' | 'polled';
  /** The bench's polled figure as well, when the runtime's clock gave swarmSeconds. */
  readonly polledSeconds?: number;
}

/** A 32 MiB ONNX model: y[rows, 4096] = x[rows, 2048] · W, W seeded (an LCG, fast to make). */
export function bigModel(): Uint8Array<ArrayBuffer> {
  const w = new Float32Array(K * N);
  let s = 12345;
  for (let i = 0; i < w.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    w[i] = (s / 2 ** 32 - 0.5) * 0.01;
  }
  return onnxModel({
    name: 'big-matmul',
    nodes: [{ opType: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] }],
    inputs: [value('x', 'float', ['rows', K])],
    outputs: [value('y', 'float', ['rows', N])],
    initializers: [initializer('w', 'float', [K, N], w)],
    opsets: { '': 17 },
  }) as Uint8Array<ArrayBuffer>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function volunteerSwarm(
  count: number,
  log: (line: string) => void,
  waitMs = 420_000,
): Promise<VolunteerSwarmResult> {
  const buildDir = mkdtempSync(join(tmpdir(), 'hearth-bench-pages-'));
  const pagesDir = join(buildDir, 'dist');
  let volunteers: Volunteers | undefined;
  const th = await (async () => {
    log('building the volunteer page with vite…');
    await build({ configFile: 'vite.config.ts', logLevel: 'error', build: { outDir: pagesDir } });
    return testHub({
      pagesDir,
      maxBlobBytes: 40 << 20,
      allowedOrigins: [],
      expireEveryMs: 500,
      peer: { maxConnectionsPerAddress: 64 },
      volunteers: { maxConnectionsPerAddress: 64 },
    });
  })();
  try {
    const hub = th.hub;
    log('building the 32 MiB model…');
    const model = bigModel();
    const x = new Uint8Array(ROWS * K * 4);
    new Float32Array(x.buffer).forEach((_, i, a) => {
      a[i] = ((i * 7919) % 1000) / 1000 - 0.5;
    });
    const { token } = createToken(hub.store, 'bench');
    await upload(hub.url, token, [model, x]);
    const modelSha = await sha256Hex(model);
    const r = await fetch(`${hub.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        v: 1,
        kind: 'onnx',
        model: modelSha,
        inputs: { x: { sha256: await sha256Hex(x), dtype: 'f32', shape: [ROWS, K] } },
        batchInput: 'x',
        shardSize: 1,
        replication: 2,
        maxReplicas: 3,
        tolerance: { rtol: 1e-3, atol: 1e-4 },
        deadlineMs: 180_000,
        creditRate: 1,
      }),
    });
    if (r.status !== 201) throw new Error(`submit: ${r.status} ${await r.text()}`);
    const before = hub.stats.blobBytesServed;
    const t0 = performance.now();
    log(`launching ${count} Chromium volunteers…`);
    volunteers = await launchVolunteers({
      hubUrl: hub.url,
      count,
      adapter: 'swiftshader',
      startTimeoutMs: 120_000,
      onLog: (i, line) => {
        if (/error/i.test(line)) log(`volunteer ${i}: ${line.slice(0, 300)}`);
      },
    });
    const rowsOf = async (): Promise<VolunteerRow[]> =>
      (await volunteers!.report()).map((v) => {
        const s = (v.stats ?? {}) as {
          downloadedBytes?: number;
          peerBytes?: number;
          leases?: number;
          peerHolders?: number;
          fetchStartedAt?: number;
          fetchDoneAt?: number;
          peerFallbacks?: number;
          peerStalls?: number;
          peerWaitsExpired?: number;
          lastPeerFallback?: string;
        };
        return {
          index: v.index,
          fromHub: s.downloadedBytes ?? 0,
          fromPeers: s.peerBytes ?? 0,
          leases: s.leases ?? 0,
          holdersServed: s.peerHolders,
          fetchStartedAt: s.fetchStartedAt || undefined,
          fetchDoneAt: s.fetchDoneAt || undefined,
          fallbacks:
            s.peerFallbacks === undefined
              ? 'n/a'
              : `${s.peerFallbacks}/${s.peerStalls ?? 0}/${s.peerWaitsExpired ?? 0}`,
          lastFallback: s.lastPeerFallback ?? '',
        };
      });
    // A volunteer holds the model once it has moved at least its size (the input is far smaller).
    const holds = (v: VolunteerRow) => v.fromHub + v.fromPeers >= model.byteLength;
    const deadline = Date.now() + waitMs;
    let rows = await rowsOf();
    let lastLog = 0;
    // The bench's own clock, for a runtime that reports no times: the first poll that sees a
    // lease (its blobs are asked for at once) to the first that sees every volunteer holding.
    let firstLeaseSeen: number | undefined;
    let allHeldSeen: number | undefined;
    while (Date.now() < deadline) {
      rows = await rowsOf();
      if (firstLeaseSeen === undefined && rows.some((r) => r.leases > 0)) firstLeaseSeen = Date.now();
      if (rows.every(holds)) {
        allHeldSeen = Date.now();
        break;
      }
      if (Date.now() - lastLog > 15_000) {
        lastLog = Date.now();
        log(
          `  ${rows.filter(holds).length}/${count} volunteers hold the model; hub served ${hub.stats.blobBytesServed} B`,
        );
      }
      await sleep(250);
    }
    const servedBytes = hub.stats.blobBytesServed - before;
    const starts = rows.map((r) => r.fetchStartedAt);
    const dones = rows.map((r) => r.fetchDoneAt);
    const runtimeClock = [...starts, ...dones].every((x) => x !== undefined);
    const polled =
      firstLeaseSeen !== undefined && allHeldSeen !== undefined
        ? (allHeldSeen - firstLeaseSeen) / 1000
        : Number.NaN;
    const swarmSeconds = runtimeClock
      ? (Math.max(...(dones as number[])) - Math.min(...(starts as number[]))) / 1000
      : polled;
    return {
      modelBytes: model.byteLength,
      servedBytes,
      copies: servedBytes / model.byteLength,
      holding: rows.filter(holds).length,
      rows,
      seconds: (performance.now() - t0) / 1000,
      inputBytes: x.byteLength,
      swarmSeconds,
      swarmClock: runtimeClock ? 'runtime' : 'polled',
      ...(runtimeClock ? { polledSeconds: polled } : {}),
    };
  } finally {
    await volunteers?.close();
    await th.dispose();
    rmSync(buildDir, { recursive: true, force: true });
  }
}
