// One "hub" of the lease race (pg-lease-race.node.test.ts): a Scheduler on the shared PostgreSQL
// database that, once told "go" on stdin, leases shards for its volunteer as fast as it can until
// none is left, then prints the shard ids it got as one JSON line.
import { createInterface } from 'node:readline';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';

const [url, volunteer] = process.argv.slice(2);
if (!url || !volunteer) throw new Error('usage: pg-race-child.ts URL VOLUNTEER');
const store = new PostgresStore(url);
const s = new Scheduler(store, { honeypotRate: 0 });
const caps = { maxBufferBytes: 1 << 30, features: [] as string[] };
process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line !== 'go') continue;
  const got: string[] = [];
  for (;;) {
    const g = s.lease(volunteer, caps, Date.now());
    if (!g) break;
    got.push(g.shard);
  }
  process.stdout.write(`${JSON.stringify(got)}\n`);
  break;
}
lines.close();
store.close();
