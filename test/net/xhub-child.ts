// A hub in a process of its own, on a shared PostgreSQL database with a short peer lease, for the
// test that SIGKILLs it (xhub.node.test.ts). Usage: run-ts.mjs xhub-child.ts DATABASE_URL DIR
// Prints "listening on URL" once up.
import { join } from 'node:path';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { startHub } from '../../src/node/hub-server.ts';
import { XHUB_PEERS } from './xhub-helpers.ts';

const [url, dir] = process.argv.slice(2);
if (!url || !dir) throw new Error('usage: xhub-child.ts DATABASE_URL DIR');
const hub = await startHub({
  store: new PostgresStore(url, { peers: XHUB_PEERS }),
  blobDir: join(dir, 'blobs'),
  maxBlobBytes: 4096,
  allowedOrigins: ['https://embed.example'],
  pagesDir: join(dir, 'no-pages'),
  peer: { maxConnectionsPerAddress: 64, requireIssuedIds: true },
});
process.stdout.write(`listening on ${hub.url}\n`);
