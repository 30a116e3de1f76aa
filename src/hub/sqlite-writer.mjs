// The worker thread behind sqlite-writer.ts: its own connection to the hub's SQLite file (WAL,
// synchronous FULL, as the main thread's) runs each group of writes in one transaction. Plain
// JavaScript on purpose, like pg-worker.mjs: a worker thread does not run through the loaders
// the main thread has (tsx, vitest's), so a `.ts` worker would not start under every runner.
//
// Messages on `port`, run in order:
//   { id, ops: [{ sql, params, unchanged? }], reply }   sql: a name in workerData.sql
//   { id, close: true, reply }                          closes the connection
// Answers { id } or { id, error }: on `port` with a signal on `flag` when reply is 'sync' (the main
// thread waits in Atomics.wait), on parentPort when 'async'. After a failure every later group
// fails with the same error: the main thread has stopped promising anything by then.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const { path, sql, port, flag } = workerData;
const signal = new Int32Array(flag);

let db;
let statements;
let failure;
try {
  db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  statements = Object.fromEntries(Object.entries(sql).map(([name, text]) => [name, db.prepare(text)]));
} catch (e) {
  failure = e instanceof Error ? e.message : String(e);
}

const runOp = (op) => {
  const info = statements[op.sql].run(...op.params);
  if (info.changes === 0 && op.unchanged) for (const o of op.unchanged) runOp(o);
};
const apply = db
  ? db.transaction((ops) => {
      for (const op of ops) runOp(op);
    })
  : undefined;

const answer = (m, reply) => {
  if (reply === 'sync') {
    port.postMessage(m);
    Atomics.store(signal, 0, 1);
    Atomics.notify(signal, 0);
  } else parentPort.postMessage(m);
};

port.on('message', (m) => {
  if (m.close) {
    try {
      db?.close();
    } catch {
      // Closing is best effort: the file is as the last commit left it.
    }
    answer({ id: m.id }, m.reply);
    port.close();
    return;
  }
  if (failure !== undefined) return answer({ id: m.id, error: failure }, m.reply);
  try {
    // IMMEDIATE: the write lock up front, waiting (busy timeout) for another process's writer.
    apply.immediate(m.ops);
    answer({ id: m.id }, m.reply);
  } catch (e) {
    failure = e instanceof Error ? e.message : String(e);
    answer({ id: m.id, error: failure }, m.reply);
  }
});
