-- Version 1: columns the lease query filters on (copied out of the JSON documents), the replica count
-- per shard kept by triggers, and the indexes the hot path reads.
ALTER TABLE jobs ADD COLUMN status TEXT NOT NULL DEFAULT 'running';
UPDATE jobs SET status = json_extract(doc, '$.status');
CREATE INDEX jobs_status ON jobs (status, created_at, id);
ALTER TABLE shards ADD COLUMN honeypot INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shards ADD COLUMN wanted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shards ADD COLUMN replicas INTEGER NOT NULL DEFAULT 0;
UPDATE shards SET honeypot = coalesce(json_extract(doc, '$.honeypot'), 0),
  wanted = json_extract(doc, '$.wanted');
ALTER TABLE leases ADD COLUMN job TEXT NOT NULL DEFAULT '';
UPDATE leases SET job = json_extract(doc, '$.job');
ALTER TABLE results ADD COLUMN volunteer TEXT NOT NULL DEFAULT '';
UPDATE results SET volunteer = json_extract(doc, '$.volunteer');
UPDATE shards SET replicas = (SELECT count(*) FROM leases l WHERE l.shard = shards.id)
  + (SELECT count(*) FROM results r WHERE r.shard = shards.id);
DROP INDEX IF EXISTS shards_status;
DROP INDEX IF EXISTS leases_shard;
DROP INDEX IF EXISTS results_shard;
CREATE INDEX shards_open ON shards (job, honeypot, status);
-- Only shards that want more replicas are in it: a lease reads its first row not touched by the
-- volunteer, never the in-flight or judged ones ahead of it.
CREATE INDEX shards_wanting ON shards (job, honeypot, idx) WHERE status = 'open' AND replicas < wanted;
-- Honeypots are few; without their own index a honeypot look-up walks every shard of the job.
CREATE INDEX shards_honeypot ON shards (job, idx) WHERE honeypot = 1 AND status = 'open';
CREATE INDEX leases_shard_volunteer ON leases (shard, volunteer);
CREATE INDEX results_shard_volunteer ON results (shard, volunteer);
CREATE INDEX ledger_job ON ledger (job, status);
CREATE TRIGGER leases_add AFTER INSERT ON leases BEGIN
  UPDATE shards SET replicas = replicas + 1 WHERE id = NEW.shard; END;
CREATE TRIGGER leases_drop AFTER DELETE ON leases BEGIN
  UPDATE shards SET replicas = replicas - 1 WHERE id = OLD.shard; END;
CREATE TRIGGER results_add AFTER INSERT ON results BEGIN
  UPDATE shards SET replicas = replicas + 1 WHERE id = NEW.shard; END;
CREATE TRIGGER results_drop AFTER DELETE ON results BEGIN
  UPDATE shards SET replicas = replicas - 1 WHERE id = OLD.shard; END;
