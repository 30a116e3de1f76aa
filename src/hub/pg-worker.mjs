// The worker thread behind pg-channel.ts: it owns the hub's PostgreSQL connections (the
// `postgres` client, which is asynchronous) and answers the main thread, which waits for each
// answer synchronously (Atomics.wait). Plain JavaScript on purpose: a worker thread does not run
// through the loaders the main thread has (tsx, vitest's), so a `.ts` worker would not start
// under every runner that starts a hub.
//
// Messages on `port` (in order; each is answered before the next is read):
//   { op: 'batch', stmts: [{ sql, params, want }] }   want: 'rows' | 'count' | 'none'
//     → { results: [rows | count | null, …] } or { error: { message, code } }
//   The statements run on one reserved connection (where a transaction lives), pipelined: all are
//   sent before the first answer is awaited, so a batch costs one round trip.
//   { id, stmts } (with an id): the same, in the same order, but answered on parentPort
//     ({ id, ok, results } or { id, error }): the main thread does not wait for it.
// Messages on `parentPort` (asynchronous, answered on parentPort with the same id):
//   { id, op: 'sync' }          a synced commit on another connection: every asynchronous commit
//                               before it is durable once it is (WAL is flushed in order)
//   { id, op: 'listen', channel } then { op: 'notify', channel, payload } for each notification
//   { id, op: 'notify', channel, payload }   NOTIFY on another connection than the main thread's
//   { id, op: 'close' }
import { parentPort, workerData } from 'node:worker_threads';
import postgres from 'postgres';

const { url, port, flag, applicationName } = workerData;
const signal = new Int32Array(flag);

/** int8 as a JavaScript number: ids, times in ms and counts fit in 2^53; credits are NUMERIC. */
const int8 = { to: 20, from: [20], serialize: (x) => String(x), parse: (x) => Number(x) };

let sql;
let conn;
let failure;
try {
  sql = postgres(url, {
    max: 3,
    onnotice: () => {},
    types: { int8 },
    connection: { application_name: applicationName },
  });
} catch (e) {
  failure = e;
}

const describe = (e) => ({
  message: e instanceof Error ? e.message : String(e),
  code: typeof e?.code === 'string' ? e.code : undefined,
  detail: typeof e?.detail === 'string' ? e.detail : undefined,
});

const answer = (m) => {
  port.postMessage(m);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
};

async function batch(stmts) {
  if (failure) throw failure;
  conn ??= await sql.reserve();
  // Every statement is sent before any answer is awaited: one round trip for the batch.
  const pending = stmts.map((s) =>
    s.simple ? conn.unsafe(s.sql).simple() : conn.unsafe(s.sql, s.params ?? [], { prepare: true }),
  );
  // Settle all, so none is left rejecting unobserved; report the first failure.
  const settled = await Promise.allSettled(pending);
  const bad = settled.find((r) => r.status === 'rejected');
  if (bad) throw bad.reason;
  return settled.map((r, i) => {
    const want = stmts[i].want;
    const v = r.value;
    if (want === 'rows') return [...v];
    if (want === 'count') return v.count;
    return null;
  });
}

let queue = Promise.resolve();
port.on('message', (m) => {
  queue = queue.then(async () => {
    if (m.id !== undefined) {
      // Posted, not awaited by the main thread (a grouped change's COMMIT): the answer goes to
      // parentPort, where a promise waits for it.
      try {
        const results = await batch(m.stmts);
        parentPort.postMessage({ id: m.id, ok: true, results });
      } catch (e) {
        parentPort.postMessage({ id: m.id, error: describe(e) });
      }
      return;
    }
    try {
      answer({ results: await batch(m.stmts) });
    } catch (e) {
      // A broken connection is dropped, so the next batch opens a new one.
      if (conn && !(e instanceof postgres.PostgresError)) {
        try {
          conn.release();
        } catch {}
        conn = undefined;
      }
      answer({ error: describe(e) });
    }
  });
});

parentPort.on('message', async (m) => {
  try {
    if (m.op === 'sync') {
      await sql.begin(async (t) => {
        await t.unsafe('SET LOCAL synchronous_commit = on');
        await t.unsafe(
          'INSERT INTO hub_sync (pid, at) VALUES (pg_backend_pid(), now()) ON CONFLICT (pid) DO UPDATE SET at = excluded.at',
        );
      });
      parentPort.postMessage({ id: m.id, ok: true });
    } else if (m.op === 'listen') {
      await sql.listen(m.channel, (payload) =>
        parentPort.postMessage({ op: 'notify', channel: m.channel, payload }),
      );
      parentPort.postMessage({ id: m.id, ok: true });
    } else if (m.op === 'notify') {
      await sql.notify(m.channel, m.payload);
      parentPort.postMessage({ id: m.id, ok: true });
    } else if (m.op === 'close') {
      await queue;
      conn?.release();
      await sql?.end({ timeout: 2 });
      parentPort.postMessage({ id: m.id, ok: true });
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: describe(e) });
  }
});
