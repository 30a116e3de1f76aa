// A store's schema as SQL files, one per version (`NNN-name.sql`, NNN from 000 with no gap),
// read from a folder beside the store's module — the same under tsx, vitest and the CLI. Shared by
// the SQLite and PostgreSQL stores; each applies them its own way.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HearthError } from '../core/errors.ts';

/** The files of `dir` in version order; `what` names the store in errors ("hub database"). */
export function readMigrationFiles(dir: URL, what: string): { name: string; sql: string }[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^\d{3}-[a-z0-9-]+\.sql$/.test(n));
  } catch (e) {
    throw new HearthError(
      'store/failed',
      `${what}: the schema's SQL files are missing (${fileURLToPath(dir)}); reinstall hearth.`,
      { cause: e },
    );
  }
  names.sort();
  names.forEach((n, i) => {
    // A gap or a duplicate number would skip or repeat a version on some database.
    if (Number(n.slice(0, 3)) !== i) {
      throw new HearthError(
        'store/failed',
        `${what}: migration ${n} is out of sequence (expected version ${i}) in ${fileURLToPath(dir)}.`,
      );
    }
  });
  if (names.length === 0) {
    throw new HearthError('store/failed', `${what}: no schema files in ${fileURLToPath(dir)}.`);
  }
  return names.map((name) => ({ name, sql: readFileSync(new URL(name, dir), 'utf8') }));
}
