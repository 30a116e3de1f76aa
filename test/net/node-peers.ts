// Node peers for the data-plane tests: real WebRTC from node-datachannel, real PeerJS, a real hub
// PeerServer. Call installNodeWebRTC() before anything loads peerjs (PeerNode loads it lazily on
// open, so importing src/net first is fine).
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { PeerNode, type PeerNodeOptions } from '../../src/net/peer-node.ts';

let installed = false;

/** Puts node-datachannel's WebRTC classes and `ws` where PeerJS looks for the browser's. */
export async function installNodeWebRTC(): Promise<void> {
  if (installed) return;
  const polyfill = await import('node-datachannel/polyfill');
  Object.assign(globalThis, {
    RTCPeerConnection: polyfill.RTCPeerConnection,
    RTCSessionDescription: polyfill.RTCSessionDescription,
    RTCIceCandidate: polyfill.RTCIceCandidate,
    RTCDataChannel: polyfill.RTCDataChannel,
    WebSocket,
  });
  installed = true;
}

/** node-datachannel's own option: without it ICE never completes on loopback. */
export const LOOPBACK_RTC = { bindAddress: '127.0.0.1' } as const;

/** A PeerNode on the hub at 127.0.0.1:`port` (PeerServer at /p2p, key 'hearth'). */
export async function nodeAt(
  port: number,
  over: Partial<Omit<PeerNodeOptions, 'host' | 'port'>> = {},
): Promise<PeerNode> {
  await installNodeWebRTC();
  return PeerNode.open({ host: '127.0.0.1', port, rtcConfig: LOOPBACK_RTC, ...over });
}

/** Deterministic bytes from a seed (mulberry32), so two processes can make the same blob. */
export function seededBytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i += 4) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    t = (t ^ (t >>> 14)) >>> 0;
    out[i] = t & 0xff;
    if (i + 1 < n) out[i + 1] = (t >>> 8) & 0xff;
    if (i + 2 < n) out[i + 2] = (t >>> 16) & 0xff;
    if (i + 3 < n) out[i + 3] = t >>> 24;
  }
  return out;
}

/** Seeded floats in [−1, 1) (mulberry32); test/net/page/page.ts has the same one for tabs. */
export function seededFloats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

export const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A BlobSource over a Map (what a volunteer's cache answers). */
export function mapSource(...blobs: Uint8Array[]) {
  const m = new Map(blobs.map((b) => [sha(b), b]));
  return { get: async (h: string) => m.get(h) ?? null };
}

/**
 * A bare PeerJS peer with raw connections: the test drives it frame by frame to play a broken or
 * hostile peer that Hearth's own PeerLink would never be.
 */
export async function rawPeer(port: number, id: string) {
  await installNodeWebRTC();
  const { Peer } = await import('peerjs');
  const p = new Peer(id, {
    host: '127.0.0.1',
    port,
    path: '/p2p',
    key: 'hearth',
    secure: false,
    debug: 0,
    config: { iceServers: [], ...LOOPBACK_RTC } as RTCConfiguration,
  });
  await new Promise<void>((resolve, reject) => {
    p.once('open', () => resolve());
    p.once('error', reject);
  });
  return p;
}

/**
 * Opens a raw DataConnection from a bare PeerJS peer, dialling again when a dial breaks: PeerJS
 * sometimes closes the RTCPeerConnection on a negotiation race (PeerNode retries the same way).
 */
export async function rawConnect(p: RawPeer, to: string, tries = 3) {
  for (let i = 0; ; i++) {
    const conn = p.connect(to, { serialization: 'raw', reliable: true });
    const opened = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      conn.once('open', () => {
        clearTimeout(timer);
        resolve(true);
      });
      const pc = conn.peerConnection;
      pc?.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'closed' || pc.connectionState === 'failed') {
          clearTimeout(timer);
          resolve(false);
        }
      });
    });
    if (opened) return conn;
    conn.close();
    if (i + 1 >= tries) throw new Error(`no raw connection to ${to} after ${tries} dials`);
  }
}
type RawPeer = Awaited<ReturnType<typeof rawPeer>>;
