// All-reduce bytes and time between Node peers (node-datachannel WebRTC, PeerJS) on a hub's own
// PeerServer at 127.0.0.1: `peers` peers average seeded tensors of `floats` f32 values with
// allReduceMean. Bytes are the nodes' data-plane frame counters (payload, envelopes, headers,
// piece framing, acknowledgements, pings); efficiency = ideal ÷ bytes sent by the busiest peer,
// ideal = 2(N−1)/N × tensor bytes. Time is one round after the ring's links are open (the
// handshakes are not part of an all-reduce), rough on a shared 2-core machine.
//
// bench/p2p.ts calls allReduceBench; run alone: node scripts/run-ts.mjs bench/p2p/allreduce.ts [peers] [floats]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { allReduceMean, allReduceProtocol } from '../../src/net/allreduce.ts';
import { PeerNode } from '../../src/net/peer-node.ts';
import { installNodeWebRTC, LOOPBACK_RTC, peerHub, seededFloats } from '../../test/net/node-peers.ts';

export interface AllReduceBenchResult {
  /** Data-plane bytes sent by the busiest peer during the round. */
  readonly bytesPerPeer: number;
  /** 2(N−1)/N × the tensor's bytes: the least any all-reduce must send per peer. */
  readonly idealBytes: number;
  /** idealBytes ÷ bytesPerPeer (1 is perfect). */
  readonly efficiency: number;
  /** Wall time of the round on the slowest peer, in ms. */
  readonly ms: number;
}

/**
 * Runs one all-reduce of `peers` Node peers over `floats` f32 values on a private hub, and
 * reports bytes per peer against the ideal and the round's time.
 *
 * @example
 * const r = await allReduceBench({ peers: 4, floats: 1 << 20 }); // 4 MiB tensors
 * console.log(r.efficiency); // ≈ 0.998
 */
export async function allReduceBench(opts: { peers: number; floats: number }): Promise<AllReduceBenchResult> {
  await installNodeWebRTC();
  const { hub, close: closeHub } = await peerHub('bench-allreduce');
  const nodes: PeerNode[] = [];
  try {
    const stamp = Date.now().toString(36);
    for (let i = 0; i < opts.peers; i++) {
      const node = await PeerNode.open({
        host: '127.0.0.1',
        port: hub.port,
        rtcConfig: LOOPBACK_RTC,
        id: `bench-ar-${stamp}-${i}`,
        // Chunks of large tensors exceed the default 64 MiB push limit only past 128 Mi floats.
        tuning: {
          maxPushBytes: Math.max(64 * 1024 * 1024, Math.ceil((opts.floats * 4) / opts.peers) + 4096),
        },
        protocols: [allReduceProtocol],
      });
      nodes.push(node);
    }
    const group = nodes.map((n) => n.id);
    // Open the ring's links first: the handshakes are not part of an all-reduce.
    await Promise.all(nodes.map((n, i) => n.connect(group[(i + 1) % group.length]!)));
    const inputs = nodes.map((_, i) => seededFloats(opts.floats, 1000 + i));
    const t0 = performance.now();
    const results = await Promise.all(
      nodes.map((node, i) =>
        allReduceMean(node, { round: `bench-${stamp}`, group, tensor: inputs[i]!, timeoutMs: 600_000 }),
      ),
    );
    const ms = performance.now() - t0;
    const bytesPerPeer = Math.max(...results.map((r) => r.bytesSent));
    const idealBytes = ((2 * (opts.peers - 1)) / opts.peers) * opts.floats * 4;
    return { bytesPerPeer, idealBytes, efficiency: idealBytes / bytesPerPeer, ms };
  } finally {
    for (const n of nodes) n.close();
    await closeHub();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const peers = Number(process.argv[2] ?? 4);
  const floats = Number(process.argv[3] ?? 1 << 20);
  const r = await allReduceBench({ peers, floats });
  process.stdout.write(`${JSON.stringify({ peers, floats, ...r })}\n`);
}
