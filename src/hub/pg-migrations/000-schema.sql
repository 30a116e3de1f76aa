-- Hearth hub schema on PostgreSQL, version 0 (postgres-store.ts runs each file once, in order, in
-- one transaction under an advisory lock, and records it in hearth_schema).
-- Document-shaped like the SQLite store: each record is a JSONB document plus the columns that
-- queries filter or order on, so an optional field added to a record needs no migration.
-- The exactly-once rules are keys of this schema: a ledger entry per (volunteer, shard), a result
-- per id, a token per name and per hash. The replica count of a shard is kept by triggers, so a
-- lease or a result takes the shard's row lock: hubs that race for one shard serialise there.
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  seq BIGSERIAL UNIQUE,
  created_at BIGINT NOT NULL,
  status TEXT NOT NULL,
  -- The record without its manifest (status, owner, cancelledAt, error: what changes).
  doc JSONB NOT NULL,
  -- The manifest, written once: hubs cache it parsed and read only `doc` afterwards.
  manifest JSONB NOT NULL
);
CREATE INDEX jobs_status ON jobs (status, created_at, seq);

CREATE TABLE shards (
  id TEXT PRIMARY KEY,
  job TEXT NOT NULL,
  idx INTEGER NOT NULL,
  status TEXT NOT NULL,
  honeypot BOOLEAN NOT NULL,
  wanted INTEGER NOT NULL,
  replicas INTEGER NOT NULL DEFAULT 0,
  doc JSONB NOT NULL
);
CREATE INDEX shards_job ON shards (job, idx);
CREATE INDEX shards_wanting ON shards (job, idx) WHERE status = 'open' AND NOT honeypot AND replicas < wanted;
CREATE INDEX shards_honeypot ON shards (job, idx) WHERE honeypot AND status = 'open';
-- hasOpenShards after every validation: without it, a scan past the job's judged shards.
CREATE INDEX shards_open ON shards (job) WHERE status = 'open' AND NOT honeypot;

CREATE TABLE leases (
  id TEXT PRIMARY KEY,
  shard TEXT NOT NULL,
  job TEXT NOT NULL,
  volunteer TEXT NOT NULL,
  deadline BIGINT NOT NULL,
  doc JSONB NOT NULL
);
CREATE INDEX leases_shard_volunteer ON leases (shard, volunteer);
CREATE INDEX leases_volunteer ON leases (volunteer);
CREATE INDEX leases_deadline ON leases (deadline);
CREATE INDEX leases_job ON leases (job);

CREATE TABLE results (
  id TEXT PRIMARY KEY,
  shard TEXT NOT NULL,
  volunteer TEXT NOT NULL,
  received_at BIGINT NOT NULL,
  seq BIGSERIAL,
  -- The record without its outputs' bytes; `outputs` keeps their metadata, in order.
  doc JSONB NOT NULL
);
CREATE INDEX results_shard_volunteer ON results (shard, volunteer);

CREATE TABLE result_outputs (
  result TEXT NOT NULL REFERENCES results (id) ON DELETE CASCADE,
  i INTEGER NOT NULL,
  data BYTEA NOT NULL,
  PRIMARY KEY (result, i)
);

CREATE TABLE volunteers (id TEXT PRIMARY KEY, doc JSONB NOT NULL);

CREATE TABLE ledger (
  volunteer TEXT NOT NULL,
  shard TEXT NOT NULL,
  job TEXT NOT NULL,
  -- Base units: integers, exact (NUMERIC, since a total may pass 2^63 one day).
  credits NUMERIC(40, 0) NOT NULL CHECK (credits >= 0),
  status TEXT NOT NULL,
  site TEXT,
  payout TEXT,
  PRIMARY KEY (volunteer, shard)
);
CREATE INDEX ledger_job ON ledger (job, status);
CREATE INDEX ledger_status ON ledger (status, volunteer);

CREATE TABLE tokens (
  name TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT,
  seq BIGSERIAL
);

CREATE TABLE allreduce_reports (
  round TEXT NOT NULL,
  reporter_peer TEXT NOT NULL,
  received_at BIGINT NOT NULL,
  seq BIGSERIAL,
  doc JSONB NOT NULL,
  PRIMARY KEY (round, reporter_peer)
);
CREATE INDEX allreduce_reports_received ON allreduce_reports (received_at);

-- One row per hub connection: a synced commit here makes every earlier asynchronous commit
-- durable (WAL is flushed in order), which is how a group of changes is "settled".
CREATE TABLE hub_sync (pid INTEGER PRIMARY KEY, at TIMESTAMPTZ NOT NULL);

CREATE FUNCTION hearth_replicas_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE shards SET replicas = replicas + 1 WHERE id = NEW.shard;
  RETURN NULL;
END $$;
CREATE FUNCTION hearth_replicas_drop() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE shards SET replicas = replicas - 1 WHERE id = OLD.shard;
  RETURN NULL;
END $$;
CREATE TRIGGER leases_add AFTER INSERT ON leases FOR EACH ROW EXECUTE FUNCTION hearth_replicas_add();
CREATE TRIGGER leases_drop AFTER DELETE ON leases FOR EACH ROW EXECUTE FUNCTION hearth_replicas_drop();
CREATE TRIGGER results_add AFTER INSERT ON results FOR EACH ROW EXECUTE FUNCTION hearth_replicas_add();
CREATE TRIGGER results_drop AFTER DELETE ON results FOR EACH ROW EXECUTE FUNCTION hearth_replicas_drop();
