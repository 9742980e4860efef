/*
 * ledger_handoff - the milter's handoff records and the Postfix log
 * follower's commit and delivery evidence (SQLite backend).
 *
 * ledger_record_handoff() reads the ledger's rows for (mailing, seq), lets
 * handoff_decide() choose, applies the choice and writes the audit row.
 * All of it is one BEGIN IMMEDIATE transaction, so two milter threads
 * handing off the same seq serialise on the write lock, and the second
 * reads the first's accepted row. An unknown mailing or seq is created on
 * the spot, so applications that make their own tokens are tracked too.
 *
 * ledger_apply_queue_event() ties a log line to a handoff by queue id and
 * time, because Postfix reuses short queue ids. The handoff is the latest
 * one with that queue id seen at most 60 seconds after the line (clock
 * skew between the milter and syslog) and at most 8 days before it.
 *
 * Errors are reported as in ledger_sqlite.c. Nothing is recorded unless
 * the whole transaction commits.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "handoff.h"
#include "ledger.h"
#include "ledger_sqlite.h"

#define QUEUE_ID_SKEW    60    /* seconds a log line may precede its handoff */
/*
 * Seconds a queue id is matched after its handoff. Postfix keeps a message
 * up to maximal_queue_lifetime (default 5 days) before it bounces it, so a
 * late delivery or bounce must still find its handoff. A reused short
 * queue id still maps to its newest use before the line.
 */
#define QUEUE_ID_MAX_AGE (8 * 86400)

/*
 * ledger_handoff_set_commit - record what Postfix did with a handoff. A
 * commit once seen stays: a later line saying otherwise cannot undo it.
 */
enum ledger_rc ledger_handoff_set_commit(struct ledger *l, int64_t handoff_id,
                                         const char *commit_state)
{
	sqlite3_stmt *st;

	st = ledger_stmt(l, STMT_HANDOFF_COMMIT_SET,
	                 "UPDATE handoff SET commit_state = ?2 WHERE id = ?1"
	                 " AND NOT (commit_state = 'committed' AND ?2 = 'not_committed')");
	if (st == NULL)
		return l->prepare_rc;
	sqlite3_bind_int64(st, 1, handoff_id);
	ledger_bind_text(st, 2, commit_state);
	return ledger_exec(l, st, "recording a commit");
}

/* handoff_mailing - the mailing's state, creating the mailing if unknown */
static enum ledger_rc handoff_mailing(struct ledger *l, const struct ledger_handoff *h,
                                      enum mailing_state *state)
{
	enum ledger_rc rc;
	int found;

	rc = ledger_mailing_find(l, h->mailing_id, &found, state, NULL, NULL);
	if (rc != LEDGER_OK || found)
		return rc;
	*state = MAILING_SENDING;
	return ledger_mailing_insert(l, h->mailing_id, h->server_id, MAILING_SENDING, NULL, NULL,
	                             NULL, h->now);
}

/* handoff_recipient - the recipient's row, creating it pending if unknown */
static enum ledger_rc handoff_recipient(struct ledger *l, const struct ledger_handoff *h,
                                        struct ledger_rcpt_state *r)
{
	struct ledger_new_recipient nr = {h->rcpt, NULL, RCPT_PENDING, NULL};
	enum ledger_rc rc;
	int found;

	rc = ledger_rcpt_read(l, h->mailing_id, h->seq, r, &found);
	if (rc != LEDGER_OK || found)
		return rc;
	rc = ledger_rcpt_insert(l, h->mailing_id, h->seq, &nr, h->now);
	if (rc == LEDGER_OK)
		rc = ledger_counters_move(l, h->mailing_id, -1, RCPT_PENDING, h->now);
	r->status = RCPT_PENDING;
	r->address = xstrdup(h->rcpt);
	return rc;
}

/* handoff_commit_facts - the accepted handoff's commit state and the log time */
static enum ledger_rc handoff_commit_facts(struct ledger *l, const struct ledger_rcpt_state *r,
                                           struct handoff_facts *f)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	st = ledger_stmt(l, STMT_HANDOFF_COMMIT_GET,
	                 "SELECT commit_state FROM handoff WHERE id = ?1");
	if (st == NULL)
		return l->prepare_rc;
	sqlite3_bind_int64(st, 1, r->accepted_handoff);
	f->commit = COMMIT_UNKNOWN;
	if (ledger_row(l, st, "reading a commit state", &rc) &&
	    handoff_commit_parse((const char *)sqlite3_column_text(st, 0), &f->commit) != 0)
		f->commit = COMMIT_UNKNOWN;
	sqlite3_reset(st);
	if (rc != LEDGER_OK)
		return rc;

	st = ledger_stmt(l, STMT_LOG_TIME, "SELECT coalesce(max(line_time), 0) FROM log_position");
	if (st == NULL)
		return l->prepare_rc;
	if (ledger_row(l, st, "reading the log position", &rc))
		f->log_time = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc;
}

/* handoff_insert - write the audit row of one handoff */
static enum ledger_rc handoff_insert(struct ledger *l, const struct ledger_handoff *h,
                                     const struct handoff_verdict *v, int64_t *id)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	st = ledger_stmt(l, STMT_HANDOFF_INSERT,
	                 "INSERT INTO handoff (mailing_id, seq, attempt_at, queue_id, client, rcpt,"
	                 " digest, decision, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, h->mailing_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)h->seq);
	sqlite3_bind_int64(st, 3, h->now);
	ledger_bind_text(st, 4, h->queue_id);
	ledger_bind_text(st, 5, h->client);
	ledger_bind_text(st, 6, h->rcpt);
	ledger_bind_text(st, 7, h->digest);
	ledger_bind_text(st, 8, handoff_decision_name(v->decision));
	ledger_bind_text(st, 9, v->detail);
	rc = ledger_exec(l, st, "recording a handoff");
	*id = sqlite3_last_insert_rowid(l->db);
	return rc;
}

/* handoff_accept - make handoff id the recipient's accepted one */
static enum ledger_rc handoff_accept(struct ledger *l, const struct ledger_handoff *h, int anew,
                                     int64_t id)
{
	sqlite3_stmt *st;
	enum ledger_rc rc = LEDGER_OK;

	if (anew)
		rc = ledger_rcpt_move(l, h->mailing_id, h->seq, RCPT_ACCEPTED, RCPT_PENDING,
		                      h->now);
	if (rc == LEDGER_OK)
		rc = ledger_rcpt_move(l, h->mailing_id, h->seq, RCPT_PENDING, RCPT_ACCEPTED,
		                      h->now);
	if (rc != LEDGER_OK)
		return rc;

	st = ledger_stmt(l, STMT_RCPT_ACCEPT,
	                 "UPDATE recipient SET queue_id = ?3, digest = ?4, accepted_at = ?5,"
	                 " accepted_handoff = ?6 WHERE mailing_id = ?1 AND seq = ?2");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, h->mailing_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)h->seq);
	ledger_bind_text(st, 3, h->queue_id);
	ledger_bind_text(st, 4, h->digest);
	sqlite3_bind_int64(st, 5, h->now);
	sqlite3_bind_int64(st, 6, id);
	return ledger_exec(l, st, "recording an accepted handoff");
}

/* record_handoff - the body of ledger_record_handoff, inside its transaction */
static enum ledger_rc record_handoff(struct ledger *l, const struct ledger_handoff *h,
                                     struct ledger_handoff_result *res)
{
	struct ledger_rcpt_state r = {0};
	struct handoff_facts f = {0};
	struct handoff_verdict v;
	enum ledger_rc rc;
	int64_t id = 0;

	rc = handoff_mailing(l, h, &f.state);
	if (rc == LEDGER_OK)
		rc = handoff_recipient(l, h, &r);
	if (rc != LEDGER_OK)
		goto out;

	f.status = r.status;
	f.address = r.address;
	f.rcpt = h->rcpt;
	f.accepted_digest = r.has_digest ? r.digest : NULL;
	f.digest = h->digest;
	f.confirm_commits = h->confirm_commits;
	f.accepted_at = r.accepted_at;
	f.confirm_timeout = h->confirm_timeout;
	if (r.status == RCPT_ACCEPTED && h->confirm_commits)
		rc = handoff_commit_facts(l, &r, &f);
	if (rc != LEDGER_OK)
		goto out;
	handoff_decide(&f, &v);

	rc = handoff_insert(l, h, &v, &id);
	if (rc == LEDGER_OK && v.decision == HANDOFF_ACCEPT)
		rc = handoff_accept(l, h, v.accept_anew, id);
	if (rc != LEDGER_OK)
		goto out;

	res->decision = v.decision;
	res->prior = r.status;
	res->detail = v.detail;
	if (v.decision == HANDOFF_ACCEPT) {
		snprintf(res->first_queue_id, sizeof(res->first_queue_id), "%s", h->queue_id);
		res->first_at = h->now;
	} else {
		snprintf(res->first_queue_id, sizeof(res->first_queue_id), "%s", r.queue_id);
		res->first_at = r.accepted_at;
	}
out:
	ledger_rcpt_state_clear(&r);
	return rc;
}

enum ledger_rc ledger_record_handoff(struct ledger *l, const struct ledger_handoff *h,
                                     struct ledger_handoff_result *res)
{
	enum ledger_rc rc;

	memset(res, 0, sizeof(*res));
	if (h->mailing_id == NULL || h->rcpt == NULL || h->queue_id == NULL || h->seq == 0 ||
	    h->seq > INT64_MAX)
		return ledger_refuse(l, LEDGER_REFUSED,
		                     "handoff lacks a mailing id, recipient, queue id or a seq"
		                     " in 1..2^63-1");

	rc = ledger_begin(l, "recording a handoff");
	if (rc != LEDGER_OK)
		return rc;
	rc = record_handoff(l, h, res);
	return ledger_finish(l, rc, "recording a handoff");
}

/* log_position_save - remember how far the follower of log_name has read */
static enum ledger_rc log_position_save(struct ledger *l, const char *log_name, uint64_t inode,
                                        uint64_t offset, int64_t line_time)
{
	sqlite3_stmt *st;

	st = ledger_stmt(l, STMT_LOG_SAVE,
	                 "INSERT INTO log_position (log_name, log_inode, log_offset, line_time)"
	                 " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (log_name) DO UPDATE SET"
	                 " log_inode = excluded.log_inode, log_offset = excluded.log_offset,"
	                 " line_time = excluded.line_time");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, log_name);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)inode);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)offset);
	sqlite3_bind_int64(st, 4, line_time);
	return ledger_exec(l, st, "saving the log position");
}

enum ledger_rc ledger_save_log_position(struct ledger *l, const char *log_name, uint64_t inode,
                                        uint64_t offset, int64_t line_time)
{
	enum ledger_rc rc = ledger_begin(l, "saving the log position");

	if (rc != LEDGER_OK)
		return rc;
	rc = log_position_save(l, log_name, inode, offset, line_time);
	return ledger_finish(l, rc, "saving the log position");
}

enum ledger_rc ledger_log_position(struct ledger *l, const char *log_name, uint64_t *inode,
                                   uint64_t *offset, int64_t *line_time)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	*inode = *offset = 0;
	*line_time = 0;
	st = ledger_stmt(l, STMT_LOG_GET,
	                 "SELECT log_inode, log_offset, line_time FROM log_position"
	                 " WHERE log_name = ?1");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, log_name);
	if (!ledger_row(l, st, "reading the log position", &rc))
		return rc == LEDGER_OK ? LEDGER_NOTFOUND : rc;
	*inode = (uint64_t)sqlite3_column_int64(st, 0);
	*offset = (uint64_t)sqlite3_column_int64(st, 1);
	*line_time = sqlite3_column_int64(st, 2);
	sqlite3_reset(st);
	return LEDGER_OK;
}

/* queue_event_handoff - the handoff a log line about queue_id at time at belongs to */
static enum ledger_rc queue_event_handoff(struct ledger *l, const char *queue_id, int64_t at,
                                          int64_t *id, char *mailing_id, uint64_t *seq)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	*id = 0;
	st = ledger_stmt(l, STMT_HANDOFF_BY_QUEUE_ID,
	                 "SELECT id, mailing_id, seq FROM handoff WHERE queue_id = ?1"
	                 " AND attempt_at <= ?2 AND attempt_at >= ?3"
	                 " ORDER BY attempt_at DESC, id DESC LIMIT 1");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, queue_id);
	sqlite3_bind_int64(st, 2, at + QUEUE_ID_SKEW);
	sqlite3_bind_int64(st, 3, at - QUEUE_ID_MAX_AGE);
	if (ledger_row(l, st, "finding a handoff by queue id", &rc)) {
		*id = sqlite3_column_int64(st, 0);
		ledger_column_copy(st, 1, mailing_id, LEDGER_ID_MAX + 1);
		*seq = (uint64_t)sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	return rc;
}

/* queue_event_outcome - apply a delivery, bounce or deferral to the recipient */
static enum ledger_rc queue_event_outcome(struct ledger *l, const char *mailing_id, uint64_t seq,
                                          enum rcpt_status status, enum queue_event event,
                                          const char *text, int64_t now)
{
	enum rcpt_status to = RCPT_DEFERRED;
	enum ledger_rc rc = LEDGER_OK;

	if (event == QEVENT_DELIVERED)
		to = RCPT_DELIVERED;
	else if (event == QEVENT_BOUNCED)
		to = RCPT_BOUNCED;

	/* A delivery attempt proves the commit the log may not have shown. */
	if (status == RCPT_ACCEPTED) {
		rc = ledger_rcpt_move(l, mailing_id, seq, RCPT_ACCEPTED, RCPT_QUEUED, now);
		status = RCPT_QUEUED;
	}
	if (rc != LEDGER_OK || (status != RCPT_QUEUED && status != RCPT_DEFERRED))
		return rc;
	if (status != to)
		rc = ledger_rcpt_move(l, mailing_id, seq, status, to, now);
	if (rc == LEDGER_OK && to != RCPT_DELIVERED)
		rc = ledger_rcpt_note(l, mailing_id, seq, 0, text, now);
	return rc;
}

/* queue_event_apply - apply one event to handoff id of (mailing_id, seq) */
static enum ledger_rc queue_event_apply(struct ledger *l, int64_t id, const char *mailing_id,
                                        uint64_t seq, enum queue_event event, const char *text)
{
	struct ledger_rcpt_state r;
	int64_t now = ledger_now();
	enum ledger_rc rc;
	int found, current;

	rc = ledger_rcpt_read(l, mailing_id, seq, &r, &found);
	if (rc != LEDGER_OK)
		return rc;
	current = found && r.accepted_handoff == id;

	/* Only the handoff that counts moves the recipient; others are audit rows. */
	rc = ledger_handoff_set_commit(
	        l, id, event == QEVENT_NOT_COMMITTED ? "not_committed" : "committed");
	if (rc != LEDGER_OK || !current)
		goto out;

	switch (event) {
	case QEVENT_COMMITTED:
		if (r.status == RCPT_ACCEPTED)
			rc = ledger_rcpt_move(l, mailing_id, seq, RCPT_ACCEPTED, RCPT_QUEUED, now);
		break;
	case QEVENT_NOT_COMMITTED:
		if (r.status == RCPT_ACCEPTED)
			rc = ledger_rcpt_move(l, mailing_id, seq, RCPT_ACCEPTED, RCPT_PENDING, now);
		break;
	default:
		rc = queue_event_outcome(l, mailing_id, seq, r.status, event, text, now);
		break;
	}
out:
	ledger_rcpt_state_clear(&r);
	return rc;
}

enum ledger_rc ledger_apply_queue_event(struct ledger *l, const char *queue_id, int64_t at,
                                        enum queue_event event, const char *text,
                                        const char *log_name, uint64_t log_inode,
                                        uint64_t log_offset, int *matched)
{
	char mailing_id[LEDGER_ID_MAX + 1];
	uint64_t seq = 0;
	int64_t id;
	enum ledger_rc rc;

	*matched = 0;
	rc = ledger_begin(l, "applying a queue event");
	if (rc != LEDGER_OK)
		return rc;

	rc = queue_event_handoff(l, queue_id, at, &id, mailing_id, &seq);
	if (rc == LEDGER_OK && id != 0) {
		*matched = 1;
		rc = queue_event_apply(l, id, mailing_id, seq, event, text);
	}
	if (rc == LEDGER_OK && log_name != NULL)
		rc = log_position_save(l, log_name, log_inode, log_offset, at);

	rc = ledger_finish(l, rc, "applying a queue event");
	if (rc != LEDGER_OK)
		*matched = 0;
	return rc;
}
