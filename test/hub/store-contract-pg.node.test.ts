// The HubStore contract (store-contract.ts) on PostgreSQL: a real server, the run's throwaway
// cluster (test/setup/postgres.ts), one database for this file, emptied before each store.
import { PgChannel } from '../../src/hub/pg-channel.ts';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { freshDatabase } from '../node/pg-helpers.ts';
import { describeStore } from './store-contract.ts';

const url = await freshDatabase('contract');
const TABLES =
  'jobs, shards, leases, results, result_outputs, volunteers, ledger, tokens, wallets, allreduce_reports';

describeStore('PostgresStore', () => {
  const store = new PostgresStore(url);
  const admin = new PgChannel(url);
  try {
    admin.run([{ sql: `TRUNCATE ${TABLES} RESTART IDENTITY`, want: 'none' }]);
  } finally {
    admin.close();
  }
  return store;
});
