// A throwaway PostgreSQL cluster: initdb in a temporary folder, pg_ctl on a free loopback port,
// stopped (and its folder removed) by `stop()`. Used by the node tests' global setup
// (postgres.ts) and by `npm run bench -- hub`. PostgreSQL refuses to run as root: as root (CI)
// the cluster runs as the `postgres` user through runuser. Missing binaries throw, loudly.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The newest `/usr/lib/postgresql/N/bin` with initdb, or $HEARTH_PG_BIN. */
export function pgBin(): string {
  const env = process.env.HEARTH_PG_BIN;
  if (env) return env;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(
      'PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb. The hub tests on PostgreSQL need it: ' +
        'apt-get install -y postgresql (.ci/run does), or set HEARTH_PG_BIN to a folder with initdb and pg_ctl.',
    );
  }
  return join(root, versions[0] as string, 'bin');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface PgCluster {
  /** `postgres://hearth@127.0.0.1:PORT` (no database: add `/NAME`). */
  readonly url: string;
  /** Stops the server (immediately: nothing in it is kept) and removes its folder. */
  stop(): void;
}

/** Starts a cluster with trust authentication for the user `hearth`, on 127.0.0.1 only. */
export async function startPgCluster(): Promise<PgCluster> {
  const bin = pgBin();
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'hearth-pg-'));
  if (root) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), 0);
  const run = (cmd: string, args: string[]) => {
    const file = join(bin, cmd);
    try {
      execFileSync(root ? 'runuser' : file, root ? ['-u', 'postgres', '--', file, ...args] : args, {
        stdio: 'pipe',
        timeout: 60_000,
      });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      const log = existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8').slice(-2000) : '';
      throw new Error(`${cmd} failed: ${err.stderr?.toString() ?? err.message}\n${log}`);
    }
  };
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'hearth', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  run('pg_ctl', [
    '-D',
    data,
    '-l',
    join(dir, 'log'),
    '-w',
    '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=300`,
    'start',
  ]);
  return {
    url: `postgres://hearth@127.0.0.1:${port}`,
    stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
