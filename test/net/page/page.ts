// A bare page for the data-plane tests and bench/p2p: one PeerNode against the hub that serves
// this page (same origin, so its PeerServer admits us), driven from Node by Playwright through
// `window.hearthP2P`. Errors cross page.evaluate as plain { code, message, details } objects:
// a thrown HearthError would arrive as a bare string.
//
// Also a plain RTCPeerConnection + RTCDataChannel (signalled by the test, not PeerJS) for the
// ceiling the bench compares Hearth's blob path with.
import { HearthError, isHearthError } from '../../../src/core/errors.ts';
import { sha256Hex } from '../../../src/core/hash.ts';
import { allReduceMean, allReduceProtocol } from '../../../src/net/allreduce.ts';
import type { LinkTuning } from '../../../src/net/link-tuning.ts';
import { type FetchAttempt, PeerNode } from '../../../src/net/peer-node.ts';
import { seededBytes, seededFloats } from '../seeded.ts';

export interface OpenOptions {
  readonly id?: string;
  readonly tuning?: Partial<LinkTuning>;
  /** Serve every blob with some bytes flipped (a lying holder). */
  readonly corrupt?: boolean;
}

export interface PlainError {
  readonly code: string;
  readonly message: string;
  readonly details?: unknown;
}

export interface PlainAttempt {
  readonly peer: string;
  readonly fromPiece: number;
  readonly toPiece: number;
  readonly error?: PlainError;
}

export type FetchOutcome =
  | {
      readonly ok: true;
      /** SHA-256 of the bytes the page holds now, computed again here. */
      readonly sha256: string;
      readonly bytes: number;
      readonly ms: number;
      readonly attempts: readonly PlainAttempt[];
      /** Where the bytes came from: peers, or the hub's HTTP route after the peers failed. */
      readonly via: 'peer' | 'hub';
    }
  | { readonly ok: false; readonly error: PlainError; readonly ms: number };

export type AllReduceOutcome =
  | {
      readonly ok: true;
      /** SHA-256 of the mean's bytes (bit-identical peers have equal hashes). */
      readonly meanSha: string;
      /** The first 8 values of the mean, to check against a reference. */
      readonly head: number[];
      readonly contributors: readonly string[];
      readonly contributions: readonly { peer: string; sha256: string }[];
      readonly inputSha: string;
      readonly bytesSent: number;
    }
  | { readonly ok: false; readonly error: PlainError };

export interface HearthP2P {
  open(opts?: OpenOptions): Promise<string>;
  /** Averages `floats` seeded values (seededFloats(floats, seed)) with the group; see allReduceMean. */
  allReduce(opts: {
    round: string;
    group: string[];
    seed: number;
    floats: number;
    timeoutMs?: number;
  }): Promise<AllReduceOutcome>;
  /** The ring step this tab last started (-1 before any). */
  allReduceStep: number;
  /** Makes `size` seeded bytes (the same as test/net/node-peers.ts seededBytes), serves them; → SHA-256. */
  serve(seed: number, size: number): Promise<string>;
  /** Opens (or reuses) a link to `peer`, so a timed fetch does not include the dial. */
  connect(peer: string): Promise<void>;
  fetch(
    holders: readonly string[],
    sha256: string,
    opts?: { pieceSize?: number; parallel?: number },
  ): Promise<FetchOutcome>;
  /** fetch, then the hub's `GET /v1/blobs/:sha256` if no holder delivered; serves the blob after. */
  fetchOrHub(
    holders: readonly string[],
    sha256: string,
    opts?: { pieceSize?: number },
  ): Promise<FetchOutcome>;
  /** The last piece that landed in a fetch: which holder sent it and how far along it is. */
  progress: { peer: string; done: number; count: number };
  score(peer: string): number;
  links(): number;
  close(): void;
  rawOffer(): Promise<RTCSessionDescriptionInit>;
  rawAnswer(offer: RTCSessionDescriptionInit): Promise<RTCSessionDescriptionInit>;
  rawAccept(answer: RTCSessionDescriptionInit): Promise<void>;
  /** Sends `total` bytes in `messageBytes` messages with a `windowBytes` bufferedAmount cap; → ms until the far side confirmed all. */
  rawSend(total: number, messageBytes: number, windowBytes: number): Promise<number>;
  rawClose(): void;
}

declare global {
  interface Window {
    hearthP2P: HearthP2P;
  }
}

function plain(e: unknown): PlainError {
  if (isHearthError(e)) return JSON.parse(JSON.stringify(e.toJSON())) as PlainError;
  return { code: 'unknown', message: e instanceof Error ? e.message : String(e) };
}

function plainAttempts(a: readonly FetchAttempt[]): PlainAttempt[] {
  return a.map((x) => ({
    peer: x.peer,
    fromPiece: x.fromPiece,
    toPiece: x.toPiece,
    ...(x.error ? { error: plain(x.error) } : {}),
  }));
}

const blobs = new Map<string, Uint8Array>();
let corrupt = false;
let node: PeerNode | undefined;

const source = {
  async get(sha256: string): Promise<Uint8Array | null> {
    const b = blobs.get(sha256);
    if (!b || !corrupt) return b ?? null;
    // Same length, so every piece passes its framing checks; one byte per 64 KiB is wrong.
    const bad = b.slice();
    for (let i = 1000; i < bad.length; i += 65_536) bad[i]! ^= 0xff;
    return bad;
  },
};

function need(): PeerNode {
  if (!node) throw new HearthError('input/invalid', 'hearthP2P.open() first.');
  return node;
}

let pc: RTCPeerConnection | undefined;
let dc: RTCDataChannel | undefined;
let dcOpen: Promise<void> | undefined;

async function gathered(p: RTCPeerConnection): Promise<RTCSessionDescriptionInit> {
  if (p.iceGatheringState !== 'complete') {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 5000);
      p.addEventListener('icegatheringstatechange', () => {
        if (p.iceGatheringState === 'complete') {
          clearTimeout(t);
          resolve();
        }
      });
    });
  }
  const d = p.localDescription;
  if (!d) throw new Error('no local description');
  return { type: d.type, sdp: d.sdp };
}

function opened(ch: RTCDataChannel): Promise<void> {
  ch.binaryType = 'arraybuffer';
  if (ch.readyState === 'open') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('data channel did not open in 20 s')), 20_000);
    ch.addEventListener('open', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** The receiving side: counts bytes after a `start:<n>` message and answers `done` at n. */
function receiver(ch: RTCDataChannel): void {
  let want = -1;
  let got = 0;
  ch.addEventListener('message', (e: MessageEvent) => {
    if (typeof e.data === 'string') {
      if (e.data.startsWith('start:')) {
        want = Number(e.data.slice(6));
        got = 0;
      }
      return;
    }
    got += (e.data as ArrayBuffer).byteLength;
    if (want >= 0 && got >= want) {
      want = -1;
      ch.send('done');
    }
  });
}

window.hearthP2P = {
  progress: { peer: '', done: 0, count: 0 },
  allReduceStep: -1,

  async allReduce({ round, group, seed, floats, timeoutMs }) {
    try {
      const tensor = seededFloats(floats, seed);
      const r = await allReduceMean(need(), {
        round,
        group,
        tensor,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
        onStep: (p) => {
          window.hearthP2P.allReduceStep = p.step;
        },
      });
      return {
        ok: true,
        meanSha: await sha256Hex(r.mean),
        head: [...r.mean.subarray(0, 8)],
        contributors: [...r.contributors],
        contributions: r.contributions.map((c) => ({ peer: c.peer, sha256: c.sha256 })),
        inputSha: await sha256Hex(tensor),
        bytesSent: r.bytesSent,
      };
    } catch (e) {
      return { ok: false, error: plain(e) };
    }
  },

  async open(opts = {}) {
    corrupt = opts.corrupt ?? false;
    node = await PeerNode.open({
      host: location.hostname,
      port: Number(location.port),
      secure: location.protocol === 'https:',
      iceServers: [],
      source,
      connectTimeoutMs: 10_000,
      ...(opts.id === undefined ? {} : { id: opts.id }),
      ...(opts.tuning ? { tuning: opts.tuning } : {}),
      // Registered as the node opens, so all-reduce messages that arrive before this tab starts
      // a round are kept.
      protocols: [allReduceProtocol],
    });
    return node.id;
  },

  async serve(seed, size) {
    const bytes = seededBytes(size, seed);
    const sha = await sha256Hex(bytes);
    blobs.set(sha, bytes);
    return sha;
  },

  async connect(peer) {
    await need().connect(peer);
  },

  async fetch(holders, sha256, opts = {}) {
    const t0 = performance.now();
    try {
      const got = await need().fetchBlob(holders, sha256, {
        ...(opts.pieceSize === undefined ? {} : { pieceSize: opts.pieceSize }),
        ...(opts.parallel === undefined ? {} : { parallel: opts.parallel }),
        onProgress: (peer, done, count) => {
          window.hearthP2P.progress = { peer, done, count };
        },
      });
      const ms = performance.now() - t0;
      blobs.set(sha256, got.bytes);
      return {
        ok: true,
        sha256: await sha256Hex(got.bytes),
        bytes: got.bytes.byteLength,
        ms,
        attempts: plainAttempts(got.attempts),
        via: 'peer',
      };
    } catch (e) {
      return { ok: false, error: plain(e), ms: performance.now() - t0 };
    }
  },

  async fetchOrHub(holders, sha256, opts = {}) {
    const t0 = performance.now();
    let peerFailure: PlainError | undefined;
    if (holders.length > 0) {
      const r = await window.hearthP2P.fetch(holders, sha256, opts);
      if (r.ok) return r;
      peerFailure = r.error;
    }
    try {
      const res = await fetch(`/v1/blobs/${sha256}`);
      if (!res.ok) throw new HearthError('blob/missing', `the hub answered ${res.status} for ${sha256}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const got = await sha256Hex(bytes);
      if (got !== sha256) throw new HearthError('blob/corrupt', `the hub's copy hashes to ${got}`);
      blobs.set(sha256, bytes);
      const attempts = peerFailure ? [{ peer: 'peers', fromPiece: 0, toPiece: 0, error: peerFailure }] : [];
      return {
        ok: true,
        sha256: got,
        bytes: bytes.byteLength,
        ms: performance.now() - t0,
        attempts,
        via: 'hub',
      };
    } catch (e) {
      return { ok: false, error: plain(e), ms: performance.now() - t0 };
    }
  },

  score: (peer) => need().scores.score(peer),
  links: () => need().links,
  close() {
    node?.close();
    node = undefined;
  },

  async rawOffer() {
    pc = new RTCPeerConnection({ iceServers: [] });
    dc = pc.createDataChannel('raw', { ordered: true });
    dcOpen = opened(dc);
    await pc.setLocalDescription(await pc.createOffer());
    return gathered(pc);
  },

  async rawAnswer(offer) {
    pc = new RTCPeerConnection({ iceServers: [] });
    pc.addEventListener('datachannel', (e) => {
      dc = e.channel;
      void opened(e.channel);
      receiver(e.channel);
    });
    await pc.setRemoteDescription(offer);
    await pc.setLocalDescription(await pc.createAnswer());
    return gathered(pc);
  },

  async rawAccept(answer) {
    if (!pc || !dcOpen) throw new Error('rawOffer() first');
    await pc.setRemoteDescription(answer);
    await dcOpen;
  },

  async rawSend(total, messageBytes, windowBytes) {
    const ch = dc;
    if (ch?.readyState !== 'open') throw new Error('no open raw data channel');
    const payload = seededBytes(messageBytes, 7);
    ch.bufferedAmountLowThreshold = Math.floor(windowBytes / 2);
    const done = new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('raw transfer not confirmed in 300 s')), 300_000);
      const on = (e: MessageEvent) => {
        if (e.data === 'done') {
          clearTimeout(t);
          ch.removeEventListener('message', on);
          resolve(performance.now());
        }
      };
      ch.addEventListener('message', on);
    });
    const t0 = performance.now();
    ch.send(`start:${total}`);
    for (let sent = 0; sent < total; sent += messageBytes) {
      while (ch.bufferedAmount + messageBytes > windowBytes) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 250);
          ch.addEventListener(
            'bufferedamountlow',
            () => {
              clearTimeout(t);
              resolve();
            },
            { once: true },
          );
        });
      }
      ch.send(payload.subarray(0, Math.min(messageBytes, total - sent)));
    }
    return (await done) - t0;
  },

  rawClose() {
    dc?.close();
    pc?.close();
    pc = undefined;
    dc = undefined;
  },
};
