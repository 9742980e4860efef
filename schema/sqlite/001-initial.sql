-- 001-initial.sql - the first mailonce ledger schema (SQLite).
--
-- Times are seconds since the epoch. Sequence numbers are 1 .. 2^63-1 and
-- fit SQLite's signed 64-bit integers. The programs run this file in one
-- transaction and then insert the schema_version row themselves.

-- Each mailonce server (an MTA host running the milter or the sender).
CREATE TABLE server (
	server_id TEXT PRIMARY KEY,
	host TEXT NOT NULL,
	started_at INTEGER NOT NULL,
	heartbeat_at INTEGER NOT NULL
);

-- A mailing and its counters. The counters move in the same transaction
-- as the recipient status they count. input_digest identifies the
-- template and recipient list the mailing was created from, so creating
-- it again with the same inputs is recognised.
CREATE TABLE mailing (
	mailing_id TEXT PRIMARY KEY,
	server_id TEXT NOT NULL,
	state TEXT NOT NULL
		CHECK (state IN ('draft', 'sending', 'paused', 'complete', 'cancelled')),
	num_profiles INTEGER NOT NULL DEFAULT 0,
	num_sent INTEGER NOT NULL DEFAULT 0,
	num_errors INTEGER NOT NULL DEFAULT 0,
	num_skipped INTEGER NOT NULL DEFAULT 0,
	num_delivered INTEGER NOT NULL DEFAULT 0,
	num_bounced INTEGER NOT NULL DEFAULT 0,
	template TEXT,
	envelope_from TEXT,
	input_digest TEXT,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE INDEX mailing_server ON mailing (server_id, state);

-- One row per sequence number. queue_id, digest, accepted_at and
-- accepted_handoff describe the handoff that counts (the accepted one);
-- they are cleared when the recipient goes back to pending. The
-- accepted_handoff column has no foreign key because handoff refers to
-- recipient, and a cycle would make deleting a mailing order-dependent.
CREATE TABLE recipient (
	mailing_id TEXT NOT NULL REFERENCES mailing (mailing_id) ON DELETE CASCADE,
	seq INTEGER NOT NULL CHECK (seq >= 1),
	address TEXT NOT NULL,
	fields TEXT,
	status TEXT NOT NULL
		CHECK (status IN ('pending', 'accepted', 'queued', 'delivered', 'bounced',
				  'deferred', 'skipped', 'error')),
	queue_id TEXT,
	digest TEXT,
	accepted_at INTEGER,
	accepted_handoff INTEGER,
	attempts INTEGER NOT NULL DEFAULT 0,
	last_error TEXT,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (mailing_id, seq)
);

-- The sender's work list: seqs still to hand off, in seq order.
CREATE INDEX recipient_work ON recipient (mailing_id, seq)
	WHERE status IN ('pending', 'accepted');
-- Per-status counts of one mailing.
CREATE INDEX recipient_status ON recipient (mailing_id, status);

-- Batches of a mailing and their leases. holder names the sending process
-- that holds the lease; server_id is the part of it before the first
-- colon.
CREATE TABLE batch (
	mailing_id TEXT NOT NULL REFERENCES mailing (mailing_id) ON DELETE CASCADE,
	batch_no INTEGER NOT NULL CHECK (batch_no >= 1),
	first_seq INTEGER NOT NULL,
	last_seq INTEGER NOT NULL,
	server_id TEXT,
	holder TEXT,
	state TEXT NOT NULL DEFAULT 'free' CHECK (state IN ('free', 'leased', 'done')),
	lease_until INTEGER,
	PRIMARY KEY (mailing_id, batch_no)
);

-- Every handoff the milter decided on: the audit trail of suppressions.
-- commit_state records whether Postfix was seen to commit the queue file.
CREATE TABLE handoff (
	id INTEGER PRIMARY KEY,
	mailing_id TEXT NOT NULL,
	seq INTEGER NOT NULL,
	attempt_at INTEGER NOT NULL,
	queue_id TEXT NOT NULL,
	client TEXT,
	rcpt TEXT NOT NULL,
	digest TEXT,
	decision TEXT NOT NULL
		CHECK (decision IN ('accept', 'duplicate', 'conflict', 'confirming', 'paused',
				    'cancelled', 'closed')),
	detail TEXT,
	commit_state TEXT NOT NULL DEFAULT 'unknown'
		CHECK (commit_state IN ('unknown', 'committed', 'not_committed')),
	FOREIGN KEY (mailing_id, seq) REFERENCES recipient (mailing_id, seq) ON DELETE CASCADE
);

CREATE INDEX handoff_recipient ON handoff (mailing_id, seq);
-- Postfix reuses short queue ids, so a lookup also narrows by time.
CREATE INDEX handoff_queue_id ON handoff (queue_id, attempt_at);

-- Addresses, lower-cased, that must not be mailed.
CREATE TABLE suppression (
	address TEXT PRIMARY KEY,
	reason TEXT,
	added_at INTEGER NOT NULL
);

-- Mailings adopted from another server.
CREATE TABLE migration (
	id INTEGER PRIMARY KEY,
	mailing_id TEXT NOT NULL REFERENCES mailing (mailing_id) ON DELETE CASCADE,
	from_server TEXT NOT NULL,
	to_server TEXT NOT NULL,
	at INTEGER NOT NULL
);

-- How far the Postfix log follower has read each log file; line_time is
-- the time of the last line it applied.
CREATE TABLE log_position (
	log_name TEXT PRIMARY KEY,
	log_inode INTEGER NOT NULL,
	log_offset INTEGER NOT NULL,
	line_time INTEGER NOT NULL
);

CREATE TABLE schema_version (
	version INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
);
