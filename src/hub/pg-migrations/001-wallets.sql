-- Version 1 (issue 13): credit paid to wallets. The embedding site's share of each entry, fixed
-- when the entry is made (NULL where payout is), an index to sum what a payout address earned,
-- wallet bindings (one per volunteer, for good: the primary key refuses a second), and a
-- researcher token's credit budget in base units (NULL: no limit).
ALTER TABLE ledger ADD COLUMN payout_units NUMERIC(40, 0) CHECK (payout_units IS NULL OR payout_units >= 0);
CREATE INDEX ledger_payout ON ledger (lower(payout)) WHERE payout IS NOT NULL;
CREATE TABLE wallets (volunteer TEXT PRIMARY KEY, address TEXT NOT NULL, bound_at BIGINT NOT NULL);
CREATE INDEX wallets_address ON wallets (lower(address));
ALTER TABLE tokens ADD COLUMN budget NUMERIC(40, 0) CHECK (budget IS NULL OR budget >= 0);
