// Helpers for the crash-safety test: `hearth hub` as a child process that can be SIGKILLed and
// restarted on the same SQLite file, and Node volunteers that keep working across hub restarts.
import { type ChildProcess, spawn } from 'node:child_process';
import { encodeResult } from '../../src/protocol/control.ts';
import type { ShardResult } from '../../src/protocol/shard.ts';
import { indexOf, result, truth } from '../hub/fixtures.ts';
import { authenticated, type Conn, ORIGIN, sleep, type TestKey } from './control-helpers.ts';

const CLI = ['scripts/run-ts.mjs', 'src/node/cli.ts'];

/** One `hearth hub` process. */
export interface HubProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Resolves once the process has exited (any way). */
  readonly exited: Promise<void>;
  /** Whatever it wrote on stderr so far (for failure messages). */
  stderr(): string;
}

/** Starts `hearth hub` on a free port and waits for its "listening on URL" line. */
export function spawnHub(
  db: string,
  timeoutMs = 20_000,
  extraArgs: readonly string[] = [],
): Promise<HubProcess> {
  return spawnHubWith(['--db', db, ...extraArgs], timeoutMs);
}

/** `hearth hub ARGS --port PORT --origin ORIGIN` (e.g. `--store URL --blobs DIR`), as `spawnHub`; port 0: any. */
export function spawnHubWith(args: readonly string[], timeoutMs = 20_000, port = 0): Promise<HubProcess> {
  const child = spawn(
    process.execPath,
    [...CLI, 'hub', ...args, '--port', String(port), '--origin', ORIGIN],
    {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return new Promise<HubProcess>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`hub did not say "listening on" within ${timeoutMs} ms; stderr: ${err}`));
    }, timeoutMs);
    child.stderr?.on('data', (c: Buffer) => (err += c));
    child.stdout?.on('data', (c: Buffer) => {
      out += c;
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, exited, stderr: () => err });
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`hub exited (${code ?? signal}) before listening; stderr: ${err}`));
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** SIGKILLs a hub (no cleanup runs in it) and waits until the process is gone. */
export async function killHub(h: HubProcess): Promise<void> {
  if (h.child.exitCode === null && h.child.signalCode === null) h.child.kill('SIGKILL');
  await h.exited;
}

/** An ack with outcome `valid` or `pending` that a volunteer saw, and in which hub life. */
export interface SeenAck {
  readonly volunteer: string;
  readonly shard: string;
  readonly outcome: string;
  /** How many kills happened before this ack arrived. */
  readonly life: number;
}

/** Where volunteers should connect now; `undefined` while the hub is down. */
export interface HubPointer {
  url: string | undefined;
  life: number;
}

/**
 * A volunteer that loops lease → honest result → ack against whatever hub `ptr` names, and
 * reconnects (to the new URL) whenever its connection dies. Stops when `stop()` says so.
 */
export async function runVolunteer(
  key: TestKey,
  job: string,
  ptr: HubPointer,
  acks: SeenAck[],
  stop: () => boolean,
  pace: () => number,
): Promise<void> {
  while (!stop()) {
    const url = ptr.url;
    if (url === undefined) {
      await sleep(20);
      continue;
    }
    let conn: Conn | undefined;
    try {
      conn = (await authenticated(`${url.replace('http', 'ws')}/v1/volunteer`, key)).conn;
      while (!stop()) {
        conn.send({ v: 2, type: 'lease-request' });
        const m = await conn.msg();
        if (m.type === 'no-work' || m.type === 'error') {
          // Replicas still out, or stale leases of a killed hub waiting for their deadline.
          await sleep(120);
          continue;
        }
        if (m.type !== 'lease') continue;
        const r: ShardResult = await result(m.shard, job, truth(indexOf(m.shard)));
        await sleep(pace());
        const life = ptr.life;
        conn.send({ v: 2, type: 'result', result: encodeResult(r) });
        const ack = await conn.msg();
        if (ack.type === 'ack') {
          acks.push({ volunteer: key.id, shard: ack.shard, outcome: ack.outcome, life });
        }
        await sleep(pace());
      }
    } catch {
      // The hub died under us (closed socket, refused connection, silence): try again.
      await sleep(30);
    } finally {
      conn?.ws.terminate();
    }
  }
}
