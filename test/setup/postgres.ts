// Vitest global setup of the node project: one throwaway PostgreSQL cluster per test run
// (pg-cluster.ts), stopped at the end. Test files get its URL with `inject('pgUrl')` and make a
// database of their own (test/node/pg-helpers.ts). Missing binaries fail the run, loudly: the
// PostgreSQL tests are never skipped.
import type { TestProject } from 'vitest/node';
import { startPgCluster } from './pg-cluster.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `postgres://hearth@127.0.0.1:PORT` (no database: add `/NAME`). */
    pgUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  const cluster = await startPgCluster();
  project.provide('pgUrl', cluster.url);
  return () => cluster.stop();
}
