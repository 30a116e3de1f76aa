// Vitest global setup of the node project: one throwaway PostgreSQL cluster per test run (initdb
// in a temporary folder, pg_ctl on a free loopback port), stopped at the end. Test files get its
// URL with `inject('pgUrl')` and make a database of their own (test/node/pg-helpers.ts).
// PostgreSQL refuses to run as root: as root (CI) the cluster runs as the `postgres` user through
// runuser. Missing binaries fail the run, loudly: the PostgreSQL tests are never skipped.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `postgres://hearth@127.0.0.1:PORT` (no database: add `/NAME`). */
    pgUrl: string;
  }
}

/** The newest `/usr/lib/postgresql/N/bin` with initdb, or $HEARTH_PG_BIN. */
function pgBin(): string {
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

export default async function setup(project: TestProject): Promise<() => void> {
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
  project.provide('pgUrl', `postgres://hearth@127.0.0.1:${port}`);
  return () => {
    try {
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}
