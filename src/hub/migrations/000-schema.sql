-- Schema version 0: what a hub wrote before PRAGMA user_version was kept. A new file starts
-- here too, then every later file runs in order, so the upgrade path is the path every test
-- takes. A file NNN-*.sql brings a database to user_version NNN; each runs once, in one
-- transaction (src/hub/sqlite-store.ts). Never edit a file a hub has shipped: add the next one.
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (id TEXT PRIMARY KEY, job TEXT NOT NULL, idx INTEGER NOT NULL,
  status TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS shards_job ON shards (job, idx);
CREATE INDEX IF NOT EXISTS shards_status ON shards (status);
CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, shard TEXT NOT NULL, volunteer TEXT NOT NULL,
  deadline INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS leases_shard ON leases (shard);
CREATE INDEX IF NOT EXISTS leases_volunteer ON leases (volunteer);
CREATE INDEX IF NOT EXISTS leases_deadline ON leases (deadline);
CREATE TABLE IF NOT EXISTS results (id TEXT PRIMARY KEY, shard TEXT NOT NULL, received_at INTEGER NOT NULL,
  doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS results_shard ON results (shard);
CREATE TABLE IF NOT EXISTS result_outputs (result TEXT NOT NULL, i INTEGER NOT NULL, name TEXT NOT NULL,
  dtype TEXT NOT NULL, shape TEXT NOT NULL, sha256 TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (result, i));
CREATE TABLE IF NOT EXISTS volunteers (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (volunteer TEXT NOT NULL, shard TEXT NOT NULL, job TEXT NOT NULL,
  credits REAL NOT NULL, status TEXT NOT NULL, PRIMARY KEY (volunteer, shard));
CREATE TABLE IF NOT EXISTS tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL, revoked_at INTEGER);
