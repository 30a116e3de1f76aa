// A database of its own for a test file, on the run's throwaway cluster (test/setup/postgres.ts).
import postgres from 'postgres';
import { inject } from 'vitest';

let n = 0;

/** Creates an empty database and returns its URL. */
export async function freshDatabase(prefix: string): Promise<string> {
  const base = inject('pgUrl');
  const name = `${prefix.replace(/[^a-z0-9]/g, '_')}_${process.pid}_${n++}`;
  const admin = postgres(`${base}/postgres`, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return `${base}/${name}`;
}
