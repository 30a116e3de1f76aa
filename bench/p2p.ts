// bench: P2P data plane in Chromium: raw RTCDataChannel vs Hearth blob fetch, hub egress with 8 volunteers, 4-peer all-reduce bytes
//
// One run, headless Debian Chromium, everything on 127.0.0.1 through a real hub (its PeerServer at
// /p2p, its blob route, its pages):
//  (a) the ceiling: a plain RTCPeerConnection + RTCDataChannel between two tabs, 256 KiB messages,
//      bufferedAmount flow control (bench/p2p/throughput.ts);
//  (b) Hearth: PeerNode.fetchBlob between the same two tabs (test/net/page), by piece size and
//      send window, hash verified inside the timing;
//  (c) hub egress while 8 Chromium volunteers each get the same 32 MiB model: with the real
//      volunteer page and runtime when it has joined the swarm (src/client/volunteer.ts opens a
//      PeerNode; bench/p2p/swarm-volunteers.ts), and (c') 8 test tabs with a small tracker in
//      Node (bench/p2p/swarm-pages.ts) for comparison — the JSON's figure when the runtime has no
//      swarm yet or with --pages-swarm;
//  (d) bytes each peer sends in a 4-peer all-reduce (bench/p2p/allreduce.ts, when present).
// Numbers are MB/s (10^6 bytes/s), best of a few runs, rough on a shared 2-core machine where the
// two tabs, the GPU process and the hub compete for the same cores.
//
// Usage: npm run bench -- p2p [--quick] [--pages-swarm | --no-pages-swarm] [--mib N]
// Last line: {"p2p_vs_raw": x, "hub_egress_copies": x, "allreduce_efficiency": x}
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { sha256Hex } from '../src/core/hash.ts';
import { createToken } from '../src/hub/tokens.ts';
import { DEFAULT_LINK_TUNING } from '../src/net/link-tuning.ts';
import { MAX_PIECE_BYTES } from '../src/protocol/stream.ts';
import { type BuiltPage, buildP2PPage, chromiumPeer, launchChromium } from '../test/net/chromium-peers.ts';
import { type TestHub, testHub, upload } from '../test/node/hub-helpers.ts';
import { table } from './lib/timing.ts';
import { pageSwarm } from './p2p/swarm-pages.ts';
import { bigModel, volunteerSwarm } from './p2p/swarm-volunteers.ts';
import {
  type HearthRow,
  hearthThroughput,
  median,
  type PairedResult,
  pairedRatio,
  pairedRounds,
  type RawRow,
  rawThroughput,
} from './p2p/throughput.ts';

const MiB = 1024 * 1024;
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const forcePages = args.includes('--pages-swarm');
const noPagesSwarm = args.includes('--no-pages-swarm');
const mibArg = args.indexOf('--mib');
const SIZE = (mibArg >= 0 ? Number(args[mibArg + 1]) : quick ? 16 : 32) * MiB;
const REPEAT = quick ? 1 : 2;
const PIECES = quick ? [MAX_PIECE_BYTES] : [64 * 1024, 128 * 1024, MAX_PIECE_BYTES];
const WINDOWS = quick ? [4 * MiB] : [1 * MiB, 4 * MiB, 16 * MiB];
const RAW_WINDOWS = quick ? [4 * MiB] : [1 * MiB, 4 * MiB, 16 * MiB];
const ROUNDS = quick ? 2 : 6;
const SWARM = 8;
const log = (line: string) => process.stderr.write(`${line}\n`);
const f1 = (x: number) => x.toFixed(1);

let built: BuiltPage | undefined;
let th: TestHub | undefined;
let browser: Browser | undefined;

// ---- (a) and (b): two tabs ----------------------------------------------------------------------
let raw: RawRow[] = [];
let hearth: HearthRow[] = [];
let hashMs = Number.NaN;
const paired: ({ pieceSize: number; windowBytes: number; rawWindow: number } & PairedResult)[] = [];
try {
  log('building test/net/page…');
  built = await buildP2PPage();
  th = await testHub({
    pagesDir: built.pagesDir,
    maxBlobBytes: 40 << 20,
    allowedOrigins: [],
    peer: { maxConnectionsPerAddress: 64 },
  });
  browser = await launchChromium();
  const a = await chromiumPeer(browser, th.hub.url);
  const b = await chromiumPeer(browser, th.hub.url);
  log(`(a) raw RTCDataChannel, ${SIZE / MiB} MiB…`);
  raw = await rawThroughput(a, b, SIZE, RAW_WINDOWS, REPEAT);
  log(`(b) Hearth fetchBlob, ${SIZE / MiB} MiB, ${PIECES.length * WINDOWS.length} settings…`);
  hearth = await hearthThroughput(a, b, SIZE, PIECES, WINDOWS, REPEAT);
  // The sweep picks the settings; the figure comes from rounds that alternate raw and Hearth on
  // the same tabs, so a slow moment of the shared machine hits both.
  const best = hearth.reduce((x, y) => (y.mbps > x.mbps ? y : x));
  const rawWindow = raw.reduce((x, y) => (y.mbps > x.mbps ? y : x)).windowMiB * MiB;
  const settings = [{ pieceSize: best.pieceKiB * 1024, windowBytes: best.windowMiB * MiB }];
  const dflt = { pieceSize: MAX_PIECE_BYTES, windowBytes: DEFAULT_LINK_TUNING.windowBytes };
  if (settings[0]!.pieceSize !== dflt.pieceSize || settings[0]!.windowBytes !== dflt.windowBytes) {
    settings.push(dflt);
  }
  for (const setting of settings) {
    log(
      `(a+b) ${ROUNDS} alternating rounds, piece ${setting.pieceSize} B, window ${setting.windowBytes / MiB} MiB…`,
    );
    const r = await pairedRounds(a, b, SIZE, setting, rawWindow, ROUNDS);
    paired.push({ ...setting, rawWindow, ...r });
  }
  // Part of Hearth's cost that raw does not pay: verifying the blob (one SHA-256 over it).
  hashMs = await b.page.evaluate(async (n) => {
    const bytes = new Uint8Array(n).fill(7);
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await crypto.subtle.digest('SHA-256', bytes);
      best = Math.min(best, performance.now() - t0);
    }
    return best;
  }, SIZE);
  await a.kill();
  await b.kill();
} catch (e) {
  await browser?.close();
  await th?.dispose();
  built?.dispose();
  throw e;
}

// ---- (c): hub egress with 8 volunteers ----------------------------------------------------------
const volunteerSrc = readFileSync(
  fileURLToPath(new URL('../src/client/volunteer.ts', import.meta.url)),
  'utf8',
);
const integrated = /PeerNode/.test(volunteerSrc);
/** One measurement of (c): what ran, its table, and the hub's egress in model copies. */
const swarms: { note: string; rows: string[][]; copies: number }[] = [];
let copies = Number.NaN;
if (integrated && !forcePages) {
  // The two-tab browser and hub are idle now; free the cores for eight volunteers.
  await browser.close();
  browser = undefined;
  try {
    log(`(c) ${SWARM} real volunteers (src/ui/volunteer), 32 MiB ONNX model…`);
    const s = await volunteerSwarm(SWARM, log);
    copies = s.copies;
    swarms.push({
      note:
        `real volunteer page + runtime (launchVolunteers; swarm found in src/client/volunteer.ts): ` +
        `${s.holding}/${SWARM} volunteers hold the ${s.modelBytes} B model after ${f1(s.seconds)} s (from launch); the hub's ` +
        `blob route sent ${s.servedBytes} B (the model, plus the ${s.inputBytes} B input tensor per hub download of it); ` +
        `swarm time, first blob request → last volunteer holding the model: ${f1(s.swarmSeconds)} s ` +
        `(${s.swarmClock === 'runtime' ? "the volunteers' own clocks" : "the bench's 250 ms polls"}` +
        `${s.polledSeconds === undefined ? '' : `; polled: ${f1(s.polledSeconds)} s`})`,
      rows: [
        [
          'volunteer',
          'from hub B',
          'from peers B',
          'leases',
          'holders served',
          'blobs in after s',
          'fallbacks/stalls/waits out',
        ],
        ...s.rows.map((r) => {
          const first = Math.min(...s.rows.map((x) => x.fetchStartedAt ?? Number.POSITIVE_INFINITY));
          return [
            String(r.index),
            String(r.fromHub),
            String(r.fromPeers),
            String(r.leases),
            r.holdersServed === undefined ? 'n/a' : String(r.holdersServed),
            r.fetchDoneAt === undefined || !Number.isFinite(first)
              ? 'n/a'
              : f1((r.fetchDoneAt - first) / 1000),
            r.fallbacks,
          ];
        }),
      ],
      copies: s.copies,
    });
  } catch (e) {
    log(`(c) with real volunteers failed (${(e as Error).message}); the figure comes from the test page`);
  }
}
if (!noPagesSwarm || Number.isNaN(copies)) {
  // Always run (it is quick): the same swarm with a tracker that holds requesters back while a
  // hub download is in flight, for comparison with the runtime's behaviour.
  browser ??= await launchChromium();
  const model = bigModel();
  const { token } = createToken(th.hub.store, 'bench');
  await upload(th.hub.url, token, [model]);
  log(`(c') ${SWARM} test tabs with an in-bench tracker, ${model.byteLength} B blob…`);
  const s = await pageSwarm(browser, th.hub, await sha256Hex(model), model.byteLength, SWARM);
  if (Number.isNaN(copies)) copies = s.copies;
  swarms.push({
    note:
      `TEST PAGE, not the volunteer runtime (${integrated ? 'comparison' : 'src/client/volunteer.ts has no PeerNode yet'}): ` +
      `${SWARM} tabs started at once; a tracker in the bench hands out up to 3 announced holders and, while a ` +
      `hub download is in flight, holds requesters back (≤ 60 s); HTTP fallback to the hub; ${f1(s.seconds)} s; ` +
      `the hub's blob route sent ${s.servedBytes} B`,
    rows: [
      ['tab', 'via', 'holders offered', 'holders served', 'ms', 'MB/s'],
      ...[...s.rows]
        .sort((x, y) => x.tab - y.tab)
        .map((r) => [
          String(r.tab),
          r.via,
          String(r.holdersOffered),
          String(r.holdersServed),
          r.ms.toFixed(0),
          f1(model.byteLength / 1e6 / (r.ms / 1000)),
        ]),
    ],
    copies: s.copies,
  });
}
await browser?.close();
await th.dispose();
built.dispose();

// ---- (d): all-reduce ---------------------------------------------------------------------------
interface AllReduceResult {
  bytesPerPeer: number;
  idealBytes: number;
  efficiency: number;
  ms: number;
}
let allreduce: AllReduceResult | undefined;
let allreduceNote = '';
const arPath = fileURLToPath(new URL('./p2p/allreduce.ts', import.meta.url));
if (existsSync(arPath)) {
  try {
    const mod = (await import('./p2p/allreduce.ts' as string)) as {
      allReduceBench?: (o: { peers: number; floats: number }) => Promise<AllReduceResult>;
    };
    if (typeof mod.allReduceBench !== 'function')
      allreduceNote = 'bench/p2p/allreduce.ts exports no allReduceBench';
    else {
      log('(d) 4-peer all-reduce…');
      allreduce = await mod.allReduceBench({ peers: 4, floats: 1 << 20 });
    }
  } catch (e) {
    allreduceNote = `allReduceBench failed: ${(e as Error).message}`;
  }
} else allreduceNote = 'bench/p2p/allreduce.ts is missing (another agent writes it): no all-reduce figure';

// ---- report ------------------------------------------------------------------------------------
const bestRaw = Math.max(...raw.map((r) => r.mbps));
const bestHearth = hearth.reduce((x, y) => (y.mbps > x.mbps ? y : x));
console.log(
  `\n(a) raw RTCDataChannel, Chromium ↔ Chromium, ${SIZE / MiB} MiB, 256 KiB messages (best of ${REPEAT})`,
);
console.log(table([['window MiB', 'MB/s'], ...raw.map((r) => [String(r.windowMiB), f1(r.mbps)])]));
console.log(
  `\n(b) Hearth PeerNode.fetchBlob, same tabs, ${SIZE / MiB} MiB, SHA-256 verified (best of ${REPEAT}; sweep)`,
);
console.log(
  table([
    ['piece KiB', 'window MiB', 'MB/s', 'vs best raw'],
    ...hearth.map((h) => [f1(h.pieceKiB), String(h.windowMiB), f1(h.mbps), (h.mbps / bestRaw).toFixed(2)]),
  ]),
);
console.log(
  `\n(a)/(b) alternating rounds on the same tabs (${ROUNDS} rounds after one uncounted warm-up pair; medians)`,
);
const pairedRows = paired.map((p) => {
  const r = median(p.raw);
  const h = median(p.hearth);
  return [
    `${f1(p.pieceSize / 1024)} KiB / ${p.windowBytes / MiB} MiB${p === paired[0] ? ' (best of sweep)' : ' (default)'}`,
    `${p.rawWindow / MiB} MiB`,
    f1(r),
    f1(h),
    pairedRatio(p).toFixed(3),
    p.raw.map(f1).join(' '),
    p.hearth.map(f1).join(' '),
  ];
});
console.log(
  table([
    [
      'Hearth piece / window',
      'raw window',
      'raw MB/s',
      'Hearth MB/s',
      'Hearth/raw',
      'raw runs',
      'Hearth runs',
    ],
    ...pairedRows,
  ]),
);
{
  const hearthMs = (SIZE / 1e6 / median(paired[0]!.hearth)) * 1000;
  console.log(
    `SHA-256 of ${SIZE / MiB} MiB in the page (crypto.subtle, best of 3): ${hashMs.toFixed(0)} ms = ` +
      `${((100 * hashMs) / hearthMs).toFixed(1)}% of a median Hearth transfer (verification raw does not do)`,
  );
}
// The sweep's best-of-two is noisy on a shared machine: the settings are decided by the paired
// rounds, between the sweep's pick and the defaults.
const bestPaired = paired.reduce((x, y) => (pairedRatio(y) > pairedRatio(x) ? y : x));
const p2pVsRaw = pairedRatio(bestPaired);
console.log(
  `best settings: piece ${bestPaired.pieceSize} B, window ${bestPaired.windowBytes / MiB} MiB (low mark half) → ` +
    `p2p_vs_raw ${p2pVsRaw.toFixed(3)} (sweep's pick: piece ${f1(bestHearth.pieceKiB)} KiB, window ${bestHearth.windowMiB} MiB)`,
);
for (const [i, sw] of swarms.entries()) {
  console.log(`\n(c${i ? "'" : ''}) hub egress, ${SWARM} volunteers, one 32 MiB model: ${sw.note}`);
  console.log(table(sw.rows));
  console.log(
    `hub egress: ${sw.copies.toFixed(2)} copies of the model${i ? ' (comparison, not in the JSON)' : ' (goal ≤ 2)'}`,
  );
}
console.log(
  '\n(d) 4-peer all-reduce of 2^20 f32 (bench/p2p/allreduce.ts: Node peers, node-datachannel, same hub PeerServer)',
);
if (allreduce) {
  console.log(
    table([
      ['bytes sent per peer', 'ideal 2(N−1)/N bytes', 'efficiency', 'ms'],
      [
        String(allreduce.bytesPerPeer),
        String(allreduce.idealBytes),
        allreduce.efficiency.toFixed(3),
        allreduce.ms.toFixed(0),
      ],
    ]),
  );
} else console.log(allreduceNote);
console.log('goals: p2p_vs_raw ≥ 0.9, hub_egress_copies ≤ 2, allreduce_efficiency ≥ 0.9');
console.log(
  JSON.stringify({
    p2p_vs_raw: Number(p2pVsRaw.toFixed(3)),
    hub_egress_copies: Number(copies.toFixed(2)),
    allreduce_efficiency: allreduce ? Number(allreduce.efficiency.toFixed(3)) : null,
  }),
);
process.exit(0);
