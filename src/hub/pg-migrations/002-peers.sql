-- Version 2 (issue 15, past one hub): the swarm and all-reduce across hubs on one database.
-- Each hub keeps a row it refreshes every few seconds (hub_alive); a hub whose row went stale is
-- dead (SIGKILLed, cut off), and its peers are no longer named as holders by anyone.
-- peer_ids: every PeerJS id a hub issued, where (hub), to whom (volunteer and public key, so that
-- another hub can verify the contributions a member signed), and when its connection closed
-- (kept for an hour after, for reports of rounds the peer has since left).
-- blob_holders: which open peer holds which blob, with its hub (the liveness join).
-- swept: another hub found this one dead and removed its holdings; the hub's next beat, which
-- takes the row's lock as the sweep's mark does, reads and clears it, and lists its peers again.
CREATE TABLE hub_alive (
  hub TEXT PRIMARY KEY,
  seen_at TIMESTAMPTZ NOT NULL,
  swept BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE peer_ids (
  peer TEXT PRIMARY KEY,
  hub TEXT NOT NULL,
  volunteer TEXT NOT NULL,
  public_key TEXT,
  issued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  closed_at TIMESTAMPTZ
);
CREATE INDEX peer_ids_open ON peer_ids (hub) WHERE closed_at IS NULL;
CREATE INDEX peer_ids_closed ON peer_ids (closed_at) WHERE closed_at IS NOT NULL;
CREATE TABLE blob_holders (
  blob TEXT NOT NULL,
  peer TEXT NOT NULL,
  hub TEXT NOT NULL,
  PRIMARY KEY (blob, peer)
);
CREATE INDEX blob_holders_peer ON blob_holders (peer);
CREATE INDEX blob_holders_hub ON blob_holders (hub);
-- All-reduce rounds averaged through the hubs (rounds.ts's fallback): a round's group and size,
-- the members' tensors until it is averaged, then its mean and contributors, which the first hub
-- to settle it writes and every other hub reads (pg-rounds.ts). Swept some minutes after.
CREATE TABLE allreduce_rounds (
  round TEXT PRIMARY KEY,
  grp JSONB NOT NULL,
  elements INTEGER NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  mean BYTEA,
  contributors JSONB
);
CREATE INDEX allreduce_rounds_created ON allreduce_rounds (created_at);
CREATE TABLE allreduce_contributions (
  round TEXT NOT NULL,
  peer TEXT NOT NULL,
  volunteer TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  data BYTEA NOT NULL,
  PRIMARY KEY (round, peer)
);
