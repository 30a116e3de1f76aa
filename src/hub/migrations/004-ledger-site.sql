-- Version 4 (issue 12): who embedded the volunteer when it earned an entry — the site of the
-- `<hearth-widget>` page (an exact origin) and the payout address that site named — as the
-- volunteer's connection said in its hello. NULL for the hub's own page, Node volunteers and every
-- entry made before this version. The wallet issue pays from these columns.
ALTER TABLE ledger ADD COLUMN site TEXT;
ALTER TABLE ledger ADD COLUMN payout TEXT;
