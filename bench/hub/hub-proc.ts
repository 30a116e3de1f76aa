// The hub of the hub bench, alone in its own process so that its memory is its own: a real
// `startHub` on 127.0.0.1:0 over a real SQLite file (or, with `--pg=URL`, a PostgreSQL database
// that other hub processes of the bench may share, and `--blobs=DIR` their blob folder), with the per-address connection limit and
// the message rate raised (every bench volunteer comes from 127.0.0.1 and sends as fast as it
// can). Driven over IPC:
//   { cmd: 'submit', shards, replication } → { job }   (straight to the scheduler: the bench's
//        volunteers compute answers from the shard index, so no blob is ever fetched)
//   { cmd: 'mem' }                          → memoryUsage after two full GCs, and volunteers
//   { cmd: 'cpu' }                          → process.cpuUsage() (µs of user and system time)
//   { cmd: 'prof-start' } / { cmd: 'prof-stop', file } → a V8 CPU profile of just that window
//   { cmd: 'close' }                        → closes the hub and exits
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JournaledStore } from '../../src/hub/journaled-store.ts';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { startHub } from '../../src/node/hub-server.ts';
import { manifest } from './manifest.ts';

const dir = mkdtempSync(join(tmpdir(), 'hearth-bench-hub-'));
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const pg = arg('pg');
const hub = await startHub({
  // HEARTH_BENCH_WRITER=inline: group commits on the event loop (JournaledStore writerThread false).
  store: pg
    ? new PostgresStore(pg)
    : new JournaledStore(join(dir, 'hub.db'), {
        writerThread: process.env.HEARTH_BENCH_WRITER !== 'inline',
        ...(process.env.HEARTH_BENCH_WINDOW
          ? { groupWindowMs: Number(process.env.HEARTH_BENCH_WINDOW) }
          : {}),
      }),
  blobDir: arg('blobs') ?? join(dir, 'blobs'),
  maxBlobBytes: 2 ** 20,
  allowedOrigins: [],
  volunteers: {
    allowMissingOrigin: true,
    maxConnectionsPerAddress: 1_000_000,
    messagesPerSecond: 1_000_000,
    burst: 1_000_000,
    authTimeoutMs: 300_000,
    onInternalError: (e) => console.error('hub internal error:', e),
  },
});

const session = new Session();
const gc = (globalThis as { gc?: () => void }).gc;

type Command =
  | { cmd: 'submit'; shards: number; replication: number }
  | { cmd: 'mem' }
  | { cmd: 'cpu' }
  | { cmd: 'prof-start' }
  | { cmd: 'prof-stop'; file: string }
  | { cmd: 'close' };

process.on('message', (m: Command) => {
  const reply = (x: unknown) => process.send?.(x);
  if (m.cmd === 'submit') {
    reply({ job: hub.scheduler.submit(manifest(m.shards, m.replication), Date.now()) });
  } else if (m.cmd === 'prof-start') {
    session.connect();
    session
      .post('Profiler.enable')
      .then(() => session.post('Profiler.start'))
      .then(() => reply({ ok: true }));
  } else if (m.cmd === 'prof-stop') {
    session.post('Profiler.stop').then(({ profile }) => {
      writeFileSync(m.file, JSON.stringify(profile));
      session.disconnect();
      reply({ ok: true });
    });
  } else if (m.cmd === 'cpu') {
    reply(process.cpuUsage());
  } else if (m.cmd === 'mem') {
    gc?.();
    gc?.();
    reply({ ...process.memoryUsage(), volunteers: hub.controlPlane.volunteers(), gc: gc !== undefined });
  } else {
    hub.close().then(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    });
  }
});
process.send?.({ url: hub.url.replace('http', 'ws') + '/v1/volunteer' });
