-- Version 3 (issue 11): credit in integer base units (src/protocol/credit.ts), where it was a REAL
-- number of credits — hearth_credit_units, a function the hub registers, converts each old amount
-- to the nearest base unit of its decimal form, and the CHECK keeps a float from ever coming back
-- (INTEGER affinity alone stores 1.5 as REAL); and jobs get `seq`, their arrival order, since job ids are random now and cannot order jobs of one
-- millisecond (old ids were numbered, but compared as text: job-x-10 sorted before job-x-9).
ALTER TABLE jobs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
-- Numbered in the order they listed before: by time, then id.
UPDATE jobs SET seq = r.n
  FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM jobs) AS r WHERE r.id = jobs.id;
CREATE UNIQUE INDEX jobs_seq ON jobs (seq);
DROP INDEX jobs_status;
CREATE INDEX jobs_status ON jobs (status, created_at, seq);
CREATE TABLE ledger_units (volunteer TEXT NOT NULL, shard TEXT NOT NULL, job TEXT NOT NULL,
  credits INTEGER NOT NULL CHECK (typeof(credits) = 'integer' AND credits >= 0),
  status TEXT NOT NULL, PRIMARY KEY (volunteer, shard));
INSERT INTO ledger_units (volunteer, shard, job, credits, status)
  SELECT volunteer, shard, job, hearth_credit_units(credits), status FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_units RENAME TO ledger;
CREATE INDEX ledger_job ON ledger (job, status);
