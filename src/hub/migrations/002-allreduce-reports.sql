-- Version 2: all-reduce reports (issue 5), one per round and reporting peer, as JSON documents.
CREATE TABLE allreduce_reports (round TEXT NOT NULL, reporter_peer TEXT NOT NULL,
  received_at INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (round, reporter_peer));
