// Throughput between two Chromium tabs on loopback: (a) a plain RTCPeerConnection + RTCDataChannel
// (signalled by Node, no PeerJS) pushing 256 KiB messages with bufferedAmount flow control — the
// ceiling; (b) Hearth's blob path (PeerNode.fetchBlob: PeerJS raw DataConnection, framing, flow
// control, ack, SHA-256 verification) over the same pages, by piece size and send window.
import type { ChromiumPeer } from '../../test/net/chromium-peers.ts';

const MiB = 1024 * 1024;
/** Chromium's largest data-channel message (a larger one closes the connection). */
const RAW_MESSAGE = 262_144;

export const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

export interface RawRow {
  readonly windowMiB: number;
  readonly mbps: number;
}

/** Best of `repeat` raw transfers of `size` bytes from `a` to `b`, per send window. */
export async function rawThroughput(
  a: ChromiumPeer,
  b: ChromiumPeer,
  size: number,
  windows: readonly number[],
  repeat: number,
): Promise<RawRow[]> {
  const offer = await a.page.evaluate(() => window.hearthP2P.rawOffer());
  const answer = await b.page.evaluate((o) => window.hearthP2P.rawAnswer(o), offer);
  await a.page.evaluate((ans) => window.hearthP2P.rawAccept(ans), answer);
  const rows: RawRow[] = [];
  try {
    for (const w of windows) {
      let best = 0;
      for (let r = 0; r < repeat; r++) {
        const ms = await a.page.evaluate(([total, msg, win]) => window.hearthP2P.rawSend(total, msg, win), [
          size,
          RAW_MESSAGE,
          w,
        ] as const);
        best = Math.max(best, mbps(size, ms));
      }
      rows.push({ windowMiB: w / MiB, mbps: best });
    }
  } finally {
    await a.page.evaluate(() => window.hearthP2P.rawClose());
    await b.page.evaluate(() => window.hearthP2P.rawClose());
  }
  return rows;
}

export interface HearthRow {
  readonly pieceKiB: number;
  readonly windowMiB: number;
  readonly mbps: number;
}

/**
 * Best of `repeat` fetches of a `size`-byte blob that `a` serves and `b` fetches, for each piece
 * size and window (the holder's `windowBytes`; its low mark is half). The link is opened before
 * the clock starts; every fetch is verified against the blob's SHA-256 inside the timing.
 */
export async function hearthThroughput(
  a: ChromiumPeer,
  b: ChromiumPeer,
  size: number,
  pieces: readonly number[],
  windows: readonly number[],
  repeat: number,
): Promise<HearthRow[]> {
  const rows: HearthRow[] = [];
  await b.open({});
  try {
    for (const windowBytes of windows) {
      await a.close();
      const holder = await a.open({ tuning: { windowBytes } });
      const sha = await a.serve(1, size);
      await b.connect(holder);
      for (const pieceSize of pieces) {
        let best = 0;
        for (let r = 0; r < repeat; r++) {
          const got = await b.fetch([holder], sha, { pieceSize });
          if (!got.ok) throw new Error(`Hearth fetch failed: ${got.error.code}: ${got.error.message}`);
          if (got.sha256 !== sha || got.bytes !== size) throw new Error('Hearth fetch returned other bytes');
          best = Math.max(best, mbps(size, got.ms));
        }
        rows.push({ pieceKiB: pieceSize / 1024, windowMiB: windowBytes / MiB, mbps: best });
      }
    }
  } finally {
    await a.close();
    await b.close();
  }
  return rows;
}

export interface PairedResult {
  readonly raw: readonly number[];
  readonly hearth: readonly number[];
}

/** Median of Hearth/raw per round: each round's two transfers ran back to back. */
export function pairedRatio(p: PairedResult): number {
  return median(p.hearth.map((h, i) => h / p.raw[i]!));
}

/**
 * `rounds` alternating transfers of `size` bytes between the same two tabs — raw (with
 * `rawWindow`) then Hearth (with `setting`), swapping which goes first each round — so that
 * drift on a shared machine lands on both sides alike. MB/s per transfer.
 */
export async function pairedRounds(
  a: ChromiumPeer,
  b: ChromiumPeer,
  size: number,
  setting: { readonly pieceSize: number; readonly windowBytes: number },
  rawWindow: number,
  rounds: number,
): Promise<PairedResult> {
  const offer = await a.page.evaluate(() => window.hearthP2P.rawOffer());
  const answer = await b.page.evaluate((o) => window.hearthP2P.rawAnswer(o), offer);
  await a.page.evaluate((ans) => window.hearthP2P.rawAccept(ans), answer);
  const holder = await a.open({ tuning: { windowBytes: setting.windowBytes } });
  await b.open({});
  const sha = await a.serve(1, size);
  await b.connect(holder);
  const raw: number[] = [];
  const hearth: number[] = [];
  const oneRaw = async () => {
    const ms = await a.page.evaluate(([total, msg, win]) => window.hearthP2P.rawSend(total, msg, win), [
      size,
      RAW_MESSAGE,
      rawWindow,
    ] as const);
    raw.push(mbps(size, ms));
  };
  const oneHearth = async () => {
    const got = await b.fetch([holder], sha, { pieceSize: setting.pieceSize });
    if (!got.ok) throw new Error(`Hearth fetch failed: ${got.error.code}: ${got.error.message}`);
    if (got.sha256 !== sha) throw new Error('Hearth fetch returned other bytes');
    hearth.push(mbps(size, got.ms));
  };
  try {
    // One of each first, not counted: a fresh SCTP association starts with a small congestion
    // window, and the first fetch on a link pays for its pieces' buffers.
    await oneRaw();
    await oneHearth();
    raw.length = 0;
    hearth.length = 0;
    for (let r = 0; r < rounds; r++) {
      if (r % 2 === 0) {
        await oneRaw();
        await oneHearth();
      } else {
        await oneHearth();
        await oneRaw();
      }
    }
  } finally {
    await a.page.evaluate(() => window.hearthP2P.rawClose());
    await b.page.evaluate(() => window.hearthP2P.rawClose());
    await a.close();
    await b.close();
  }
  return { raw, hearth };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
