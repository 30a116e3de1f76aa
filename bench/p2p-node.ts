// bench: Node↔Node blob throughput over PeerJS (node-datachannel) by piece size and send window, against a raw RTCDataChannel
//
// Two Node peers on a hub's PeerServer (127.0.0.1). For each piece size (64, 128, 256 KiB — the
// last is the largest piece a 262144-byte message holds) and send window (bufferedAmount high
// mark; the low mark is half of it), one holder serves a 32 MiB blob and a getter fetches it with
// PeerNode.fetchBlob (framing, flow control, SHA-256 verification, ack). The ceiling: the same
// bytes pushed as plain 256 KiB messages on a raw DataConnection with the same kind of flow
// control and nothing else. Best of REPEAT runs each; numbers are MB/s (10^6 bytes/s), rough
// on a shared 2-core machine.
//
// Usage: npm run bench -- p2p-node [MiB]   (default 32)
import { PeerNode } from '../src/net/peer-node.ts';
import { MAX_PIECE_BYTES } from '../src/protocol/stream.ts';
import {
  installNodeWebRTC,
  LOOPBACK_RTC,
  mapSource,
  peerHub,
  rawConnect,
  rawPeer,
  seededBytes,
  sha,
} from '../test/net/node-peers.ts';

const MiB = 1024 * 1024;
const SIZE = Number(process.argv[2] ?? 32) * MiB;
const REPEAT = 2;
const PIECES = [64 * 1024, 128 * 1024, MAX_PIECE_BYTES];
const WINDOWS = [1 * MiB, 4 * MiB, 16 * MiB];

await installNodeWebRTC();
const { hub, close: closeHub } = await peerHub('bench-p2p');
const blob = seededBytes(SIZE, 1);
const hash = sha(blob);
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);
const open = (over: Partial<Parameters<typeof PeerNode.open>[0]> = {}) =>
  PeerNode.open({ host: '127.0.0.1', port: hub.port, rtcConfig: LOOPBACK_RTC, ...over });

async function hearth(pieceSize: number, windowBytes: number): Promise<number> {
  const holder = await open({ source: mapSource(blob), tuning: { windowBytes } });
  const getter = await open({ tuning: { maxBlobBytes: SIZE } });
  try {
    await getter.connect(holder.id); // the handshake is not part of the transfer
    let best = 0;
    for (let r = 0; r < REPEAT; r++) {
      const t0 = performance.now();
      const got = await getter.fetchBlob(holder.id, hash, { pieceSize });
      const ms = performance.now() - t0;
      if (got.bytes.byteLength !== SIZE) throw new Error('short blob');
      best = Math.max(best, mbps(SIZE, ms));
    }
    return best;
  } finally {
    getter.close();
    holder.close();
  }
}

/** The ceiling: 256 KiB raw messages, window 16 MiB / low mark 8 MiB, receiver just counts. */
async function raw(): Promise<number> {
  const a = await rawPeer(hub.port, `raw-a-${Date.now()}`);
  const b = await rawPeer(hub.port, `raw-b-${Date.now()}`);
  try {
    let best = 0;
    for (let r = 0; r < REPEAT; r++) {
      const received = new Promise<number>((resolve) => {
        // Every incoming connection counts (a dial may be retried, see rawConnect).
        b.on('connection', (conn) => {
          let n = 0;
          conn.on('data', (d) => {
            n += (d as ArrayBuffer).byteLength;
            if (n >= SIZE) resolve(performance.now());
          });
        });
      });
      const conn = await rawConnect(a, b.id);
      const dc = conn.dataChannel;
      dc.bufferedAmountLowThreshold = 8 * MiB;
      const t0 = performance.now();
      for (let off = 0; off < SIZE; off += 256 * 1024) {
        while (dc.bufferedAmount > 16 * MiB) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 250);
            dc.addEventListener(
              'bufferedamountlow',
              () => {
                clearTimeout(t);
                resolve();
              },
              { once: true },
            );
          });
        }
        dc.send(blob.subarray(off, Math.min(off + 256 * 1024, SIZE)));
      }
      best = Math.max(best, mbps(SIZE, (await received) - t0));
      conn.close();
      b.removeAllListeners('connection');
    }
    return best;
  } finally {
    a.destroy();
    b.destroy();
  }
}

const rows: { piece_kib: number; window_mib: number; mb_s: number }[] = [];
const rawMbps = await raw();
console.log(`raw RTCDataChannel (256 KiB messages, 16 MiB window): ${rawMbps.toFixed(1)} MB/s`);
console.log('piece KiB  window MiB   Hearth MB/s   vs raw');
for (const p of PIECES) {
  for (const w of WINDOWS) {
    const v = await hearth(p, w);
    rows.push({ piece_kib: Math.round(p / 1024), window_mib: w / MiB, mb_s: Number(v.toFixed(1)) });
    console.log(
      `${String(Math.round(p / 1024)).padStart(9)}  ${String(w / MiB).padStart(10)}  ${v.toFixed(1).padStart(12)}  ${(v / rawMbps).toFixed(2).padStart(7)}`,
    );
  }
}
const best = rows.reduce((a, b) => (b.mb_s > a.mb_s ? b : a));
await closeHub();
console.log(
  JSON.stringify({
    blob_mib: SIZE / MiB,
    raw_mb_s: Number(rawMbps.toFixed(1)),
    best_mb_s: best.mb_s,
    best_piece_kib: best.piece_kib,
    best_window_mib: best.window_mib,
    p2p_vs_raw_node: Number((best.mb_s / rawMbps).toFixed(2)),
  }),
);
process.exit(0);
