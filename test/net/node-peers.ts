// Node peers for the data-plane tests: real WebRTC from node-datachannel, real PeerJS, a real hub
// PeerServer. Call installNodeWebRTC() before anything loads peerjs (PeerNode loads it lazily on
// open, so importing src/net first is fine).
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { PeerNode, type PeerNodeOptions } from '../../src/net/peer-node.ts';
import { type Hub, startHub } from '../../src/node/hub-server.ts';

export { seededBytes, seededFloats } from './seeded.ts';

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
export async function rawConnect(
  p: Pick<RawPeer, 'connect'>,
  to: string,
  tries = 3,
  opts: { serialization?: 'raw' | 'binary'; timeoutMs?: number } = {},
) {
  for (let i = 0; ; i++) {
    const conn = p.connect(to, { serialization: opts.serialization ?? 'raw', reliable: true });
    const opened = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), opts.timeoutMs ?? 5000);
      conn.once('open', () => {
        clearTimeout(timer);
        resolve(true);
      });
      conn.once('error', () => {
        clearTimeout(timer);
        resolve(false);
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

/**
 * A hub on 127.0.0.1:0 with a temp folder, for peers only (no pages, tiny blobs) — what the P2P
 * benches run against. `close()` stops it and removes the folder.
 */
export async function peerHub(tag: string): Promise<{ hub: Hub; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), `hearth-${tag}-`));
  const hub = await startHub({
    dbPath: join(dir, 'hub.db'),
    blobDir: join(dir, 'blobs'),
    maxBlobBytes: 4096,
    allowedOrigins: [],
    pagesDir: join(dir, 'no-pages'),
    peer: { maxConnectionsPerAddress: 64 },
  });
  return {
    hub,
    async close() {
      await hub.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
