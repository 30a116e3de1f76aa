// The protocol fuzz suite (fuzz-suite.ts) against a hub on PostgreSQL: the run's throwaway
// cluster, a database of this file's own. "Every table unchanged" reads every row of every table
// through a second connection, as the SQLite run reads the file.
import postgres from 'postgres';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { describeFuzz } from './fuzz-suite.ts';
import { freshDatabase } from './pg-helpers.ts';

const url = await freshDatabase('fuzz');

describeFuzz({
  name: 'PostgreSQL',
  open: async () => ({ store: new PostgresStore(url) }),
  dump: async () => {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      // hub_sync is the synced-commit bookkeeping (a timestamp per connection), not hub state; the
      // peer directory (hub_alive, peer_ids, blob_holders) is who is connected now — a heartbeat
      // and the fuzzers' own connections — which a hub on SQLite keeps in memory, unread here.
      const tables = await sql<{ name: string }[]>`
        SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = 'public'
          AND table_name NOT IN ('hub_sync', 'hub_alive', 'peer_ids', 'blob_holders')
        ORDER BY table_name`;
      const out: Record<string, unknown> = {};
      for (const { name } of tables) {
        const [row] = await sql.unsafe(
          `SELECT coalesce(json_agg(t ORDER BY t::text), '[]') AS rows FROM "${name}" t`,
        );
        out[name] = row?.rows;
      }
      return JSON.stringify(out);
    } finally {
      await sql.end();
    }
  },
});
