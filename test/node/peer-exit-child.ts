// Child process of hub-peer.node.test.ts: starts a hub, puts two peers on its PeerServer (so
// PeerServer's timers and realm are busy), closes the hub and returns. The process must then exit
// by itself: anything of the hub's still armed (PeerServer's timers, sockets) would keep it alive.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startHub } from '../../src/node/hub-server.ts';
import { PEER_WS_PATH } from '../../src/node/peer-server.ts';

const dir = mkdtempSync(join(tmpdir(), 'hearth-peer-exit-'));
const hub = await startHub({
  dbPath: join(dir, 'hub.db'),
  blobDir: join(dir, 'blobs'),
  maxBlobBytes: 4096,
  allowedOrigins: [],
  pagesDir: join(dir, 'no-pages'),
  peer: { key: 'k', expireTimeoutMs: 100 },
});
const open = (id: string) =>
  new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${hub.port}${PEER_WS_PATH}?key=k&id=${id}&token=t`);
    ws.once('message', () => resolve(ws));
    ws.once('error', reject);
  });
const a = await open('a');
await open('b');
// A message for a peer that never comes: queued, for PeerServer's expiry timer to handle.
a.send(JSON.stringify({ type: 'OFFER', dst: 'nobody', payload: {} }));
await hub.close();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(`closed ${JSON.stringify(process.getActiveResourcesInfo())}\n`);
