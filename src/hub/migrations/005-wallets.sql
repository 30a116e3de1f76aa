-- Version 5 (issue 13): credit paid to wallets.
-- The embedding site's share of each entry, fixed when the entry is made (NULL where payout is),
-- and an index to sum what a payout address earned.
ALTER TABLE ledger ADD COLUMN payout_units INTEGER
  CHECK (payout_units IS NULL OR (typeof(payout_units) = 'integer' AND payout_units >= 0));
CREATE INDEX ledger_payout ON ledger (payout COLLATE NOCASE) WHERE payout IS NOT NULL;
-- A volunteer's Hearth identity bound to an address by Sign-In with Ethereum: one row per
-- volunteer, for good (the primary key refuses a second).
CREATE TABLE wallets (volunteer TEXT PRIMARY KEY, address TEXT NOT NULL, bound_at INTEGER NOT NULL);
CREATE INDEX wallets_address ON wallets (address COLLATE NOCASE);
-- A researcher token's credit budget in base units, as a decimal string (NULL: no limit).
ALTER TABLE tokens ADD COLUMN budget TEXT;
