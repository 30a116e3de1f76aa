// `hearth token … --store URL` and `hearth hub --store URL` on a real PostgreSQL (the run's
// throwaway cluster): tokens made by the CLI authenticate on the database a hub shares, and bad
// store arguments are usage errors that say what to give.
import { describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { authenticate } from '../../src/hub/tokens.ts';
import { hearth } from './cli-helpers.ts';
import { freshDatabase } from './pg-helpers.ts';

describe('hearth … --store postgres://…', () => {
  it('creates, lists and revokes tokens in the database; --db with --store, or a URL of another kind, is refused', async () => {
    const url = await freshDatabase('cli');
    const made = await hearth(['token', 'create', '--name', 'alice', '--store', url]);
    expect(made.code).toBe(0);
    const secret = made.stdout.trim();
    const store = new PostgresStore(url);
    try {
      expect(authenticate(store, secret)).toEqual({ kind: 'researcher', name: 'alice' });
      const list = await hearth(['token', 'list', '--store', url]);
      expect(list.stdout).toMatch(/^alice\s+created .* active\s+no budget$/m);
      expect((await hearth(['token', 'revoke', '--name', 'alice', '--store', url])).code).toBe(0);
      expect(authenticate(store, secret)).toBeUndefined();
    } finally {
      store.close();
    }
    const both = await hearth(['token', 'list', '--store', url, '--db', 'x.db']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--db and --store: give one/);
    const mysql = await hearth(['hub', '--store', 'mysql://root@127.0.0.1/hearth', '--port', '0']);
    expect(mysql.code).toBe(2);
    expect(mysql.stderr).toMatch(/--store: expected a PostgreSQL URL like postgres:\/\//);
    // A server that is not there: the hub says so and exits 1 instead of listening.
    const down = await hearth(['hub', '--store', 'postgres://hearth@127.0.0.1:1/none', '--port', '0']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/PostgreSQL at postgres:\/\/hearth@127\.0\.0\.1:1\/none could not be opened/);
  });
});
