/*
 * ledger_recipient - recipients of a mailing and the transitions of their
 * status (SQLite backend).
 *
 * ledger_rcpt_move() is the only code that writes recipient.status; it
 * checks the transition against the table below and moves the mailing
 * counters in the same transaction. The public functions here are each
 * one transaction. A transition the table does not allow returns
 * LEDGER_REFUSED, rolls back and leaves the row and counters unchanged.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "handoff.h"
#include "ledger.h"
#include "ledger_sqlite.h"

/* transitions[from][to] is 1 for each move that the diagram in ledger.h allows. */
static const unsigned char transitions[RCPT_STATUS_COUNT][RCPT_STATUS_COUNT] = {
        [RCPT_PENDING] = {[RCPT_ACCEPTED] = 1, [RCPT_SKIPPED] = 1, [RCPT_ERROR] = 1},
        [RCPT_ACCEPTED] = {[RCPT_QUEUED] = 1, [RCPT_PENDING] = 1, [RCPT_ERROR] = 1},
        [RCPT_QUEUED] = {[RCPT_DELIVERED] = 1, [RCPT_BOUNCED] = 1, [RCPT_DEFERRED] = 1},
        [RCPT_DEFERRED] = {[RCPT_DELIVERED] = 1, [RCPT_BOUNCED] = 1},
};

int ledger_transition_allowed(enum rcpt_status from, enum rcpt_status to)
{
	if ((unsigned)from >= RCPT_STATUS_COUNT || (unsigned)to >= RCPT_STATUS_COUNT)
		return 0;
	return transitions[from][to];
}

/* counter_weights - what one recipient in status s adds to each counter */
static void counter_weights(enum rcpt_status s, int64_t w[5])
{
	memset(w, 0, 5 * sizeof(w[0]));
	w[0] = s == RCPT_QUEUED || s == RCPT_DEFERRED || s == RCPT_DELIVERED ||
	       s == RCPT_BOUNCED; /* num_sent */
	w[1] = s == RCPT_ERROR;
	w[2] = s == RCPT_SKIPPED;
	w[3] = s == RCPT_DELIVERED;
	w[4] = s == RCPT_BOUNCED;
}

/*
 * ledger_counters_move - move the mailing counters for one recipient going
 * from status from to status to; from is -1 for a new recipient.
 */
enum ledger_rc ledger_counters_move(struct ledger *l, const char *mailing_id, int from,
                                    enum rcpt_status to, int64_t now)
{
	int64_t before[5] = {0}, after[5];
	sqlite3_stmt *st;

	st = ledger_stmt(l, STMT_MAILING_COUNTERS,
	                 "UPDATE mailing SET num_profiles = num_profiles + ?2,"
	                 " num_sent = num_sent + ?3, num_errors = num_errors + ?4,"
	                 " num_skipped = num_skipped + ?5, num_delivered = num_delivered + ?6,"
	                 " num_bounced = num_bounced + ?7, updated_at = ?8"
	                 " WHERE mailing_id = ?1");
	if (st == NULL)
		return l->prepare_rc;
	if (from >= 0)
		counter_weights((enum rcpt_status)from, before);
	counter_weights(to, after);

	ledger_bind_text(st, 1, mailing_id);
	sqlite3_bind_int64(st, 2, from < 0 ? 1 : 0);
	for (int i = 0; i < 5; i++)
		sqlite3_bind_int64(st, 3 + i, after[i] - before[i]);
	sqlite3_bind_int64(st, 8, now);
	return ledger_exec(l, st, "updating mailing counters");
}

/*
 * ledger_rcpt_move - change a recipient's status from from to to, with the
 * counters. Going back to pending forgets the accepted handoff.
 */
enum ledger_rc ledger_rcpt_move(struct ledger *l, const char *mailing_id, uint64_t seq,
                                enum rcpt_status from, enum rcpt_status to, int64_t now)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	if (!ledger_transition_allowed(from, to))
		return ledger_refuse(l, LEDGER_REFUSED,
		                     "recipient %s/%" PRIu64 " is %s and cannot become %s",
		                     mailing_id, seq, rcpt_status_name(from), rcpt_status_name(to));

	st = ledger_stmt(l, STMT_RCPT_MOVE,
	                 "UPDATE recipient SET status = ?3, updated_at = ?4,"
	                 " queue_id = CASE WHEN ?3 = 'pending' THEN NULL ELSE queue_id END,"
	                 " digest = CASE WHEN ?3 = 'pending' THEN NULL ELSE digest END,"
	                 " accepted_at = CASE WHEN ?3 = 'pending' THEN NULL ELSE accepted_at END,"
	                 " accepted_handoff = CASE WHEN ?3 = 'pending' THEN NULL"
	                 " ELSE accepted_handoff END"
	                 " WHERE mailing_id = ?1 AND seq = ?2 AND status = ?5");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	ledger_bind_text(st, 3, rcpt_status_name(to));
	sqlite3_bind_int64(st, 4, now);
	ledger_bind_text(st, 5, rcpt_status_name(from));
	rc = ledger_exec(l, st, "changing a recipient status");
	if (rc != LEDGER_OK)
		return rc;
	if (sqlite3_changes(l->db) != 1)
		return ledger_refuse(l, LEDGER_REFUSED, "recipient %s/%" PRIu64 " is no longer %s",
		                     mailing_id, seq, rcpt_status_name(from));
	return ledger_counters_move(l, mailing_id, from, to, now);
}

/* ledger_rcpt_insert - add one recipient row; the caller moves the counters */
enum ledger_rc ledger_rcpt_insert(struct ledger *l, const char *mailing_id, uint64_t seq,
                                  const struct ledger_new_recipient *nr, int64_t now)
{
	sqlite3_stmt *st;

	st = ledger_stmt(l, STMT_RCPT_INSERT,
	                 "INSERT INTO recipient (mailing_id, seq, address, fields, status,"
	                 " last_error, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	ledger_bind_text(st, 3, nr->address);
	ledger_bind_text(st, 4, nr->fields);
	ledger_bind_text(st, 5, rcpt_status_name(nr->status));
	ledger_bind_text(st, 6, nr->reason);
	sqlite3_bind_int64(st, 7, now);
	return ledger_exec(l, st, "adding a recipient");
}

/* ledger_rcpt_note - count attempts and keep text as last_error */
enum ledger_rc ledger_rcpt_note(struct ledger *l, const char *mailing_id, uint64_t seq,
                                int attempts, const char *text, int64_t now)
{
	sqlite3_stmt *st;

	st = ledger_stmt(l, STMT_RCPT_NOTE,
	                 "UPDATE recipient SET attempts = attempts + ?3,"
	                 " last_error = coalesce(?4, last_error), updated_at = ?5"
	                 " WHERE mailing_id = ?1 AND seq = ?2");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	sqlite3_bind_int(st, 3, attempts);
	ledger_bind_text(st, 4, text);
	sqlite3_bind_int64(st, 5, now);
	return ledger_exec(l, st, "noting a delivery attempt");
}

void ledger_rcpt_state_clear(struct ledger_rcpt_state *r)
{
	free(r->address);
	r->address = NULL;
}

/* ledger_rcpt_read - the status and accepted handoff of one recipient */
enum ledger_rc ledger_rcpt_read(struct ledger *l, const char *mailing_id, uint64_t seq,
                                struct ledger_rcpt_state *out, int *found)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	memset(out, 0, sizeof(*out));
	*found = 0;
	st = ledger_stmt(l, STMT_RCPT_STATE,
	                 "SELECT status, address, queue_id, digest, accepted_at, accepted_handoff"
	                 " FROM recipient WHERE mailing_id = ?1 AND seq = ?2");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	if (!ledger_row(l, st, "reading a recipient", &rc))
		return rc;

	if (rcpt_status_parse((const char *)sqlite3_column_text(st, 0), &out->status) != 0) {
		sqlite3_reset(st);
		return ledger_refuse(l, LEDGER_FAILED,
		                     "recipient %s/%" PRIu64 " has an invalid status", mailing_id,
		                     seq);
	}
	out->address = ledger_column_dup(st, 1);
	ledger_column_copy(st, 2, out->queue_id, sizeof(out->queue_id));
	out->has_digest = sqlite3_column_type(st, 3) != SQLITE_NULL;
	ledger_column_copy(st, 3, out->digest, sizeof(out->digest));
	out->accepted_at = sqlite3_column_int64(st, 4);
	out->accepted_handoff = sqlite3_column_int64(st, 5);
	sqlite3_reset(st);
	*found = 1;
	return LEDGER_OK;
}

/* ledger_rcpt_need - read a recipient inside a transaction; NOTFOUND if none */
static enum ledger_rc ledger_rcpt_need(struct ledger *l, const char *mailing_id, uint64_t seq,
                                       struct ledger_rcpt_state *r)
{
	enum ledger_rc rc;
	int found;

	rc = ledger_rcpt_read(l, mailing_id, seq, r, &found);
	if (rc == LEDGER_OK && !found)
		rc = ledger_refuse(l, LEDGER_NOTFOUND, "mailing %s has no recipient %" PRIu64,
		                   mailing_id, seq);
	return rc;
}

void ledger_recipient_clear(struct ledger_recipient *r)
{
	free(r->address);
	free(r->fields);
	free(r->last_error);
	r->address = r->fields = r->last_error = NULL;
}

#define RCPT_COLUMNS                                                                               \
	"mailing_id, seq, address, fields, status, queue_id, attempts, last_error, updated_at"

/* recipient_fill - read a row of RCPT_COLUMNS */
static void recipient_fill(sqlite3_stmt *st, struct ledger_recipient *r)
{
	memset(r, 0, sizeof(*r));
	ledger_column_copy(st, 0, r->mailing_id, sizeof(r->mailing_id));
	r->seq = (uint64_t)sqlite3_column_int64(st, 1);
	r->address = ledger_column_dup(st, 2);
	r->fields = ledger_column_dup(st, 3);
	if (rcpt_status_parse((const char *)sqlite3_column_text(st, 4), &r->status) != 0)
		r->status = RCPT_ERROR; /* the CHECK constraint rules this out */
	ledger_column_copy(st, 5, r->queue_id, sizeof(r->queue_id));
	r->attempts = sqlite3_column_int(st, 6);
	r->last_error = ledger_column_dup(st, 7);
	r->updated_at = sqlite3_column_int64(st, 8);
}

enum ledger_rc ledger_recipient_get(struct ledger *l, const char *mailing_id, uint64_t seq,
                                    struct ledger_recipient *out)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	memset(out, 0, sizeof(*out));
	st = ledger_stmt(l, STMT_RCPT_GET,
	                 "SELECT " RCPT_COLUMNS
	                 " FROM recipient WHERE mailing_id = ?1 AND seq = ?2");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	if (!ledger_row(l, st, "reading a recipient", &rc)) {
		if (rc == LEDGER_OK)
			rc = ledger_refuse(l, LEDGER_NOTFOUND,
			                   "mailing %s has no recipient %" PRIu64, mailing_id, seq);
		return rc;
	}
	recipient_fill(st, out);
	sqlite3_reset(st);
	return LEDGER_OK;
}

/*
 * ledger_recipients_list - every recipient of a mailing in seq order.
 * fn runs while the query is open, so it must not use this handle.
 */
enum ledger_rc ledger_recipients_list(struct ledger *l, const char *mailing_id,
                                      ledger_recipient_fn fn, void *ctx)
{
	struct ledger_recipient r;
	sqlite3_stmt *st;
	enum ledger_rc rc;
	int stop = 0;

	st = ledger_stmt(l, STMT_RCPT_LIST,
	                 "SELECT " RCPT_COLUMNS
	                 " FROM recipient WHERE mailing_id = ?1 ORDER BY seq");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	while (!stop && ledger_row(l, st, "listing recipients", &rc)) {
		recipient_fill(st, &r);
		stop = fn(&r, ctx);
		ledger_recipient_clear(&r);
	}
	sqlite3_reset(st);
	return rc;
}

enum ledger_rc ledger_work_list(struct ledger *l, const char *mailing_id, uint64_t first,
                                uint64_t last, int with_accepted, uint64_t *out, size_t max,
                                size_t *n)
{
	sqlite3_stmt *st;
	enum ledger_rc rc = LEDGER_OK;

	*n = 0;
	st = ledger_stmt(l, STMT_WORK_LIST,
	                 "SELECT seq FROM recipient WHERE mailing_id = ?1"
	                 " AND status IN ('pending', 'accepted') AND seq >= ?2 AND seq <= ?3"
	                 " AND (?4 OR status = 'pending') ORDER BY seq LIMIT ?5");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)first);
	sqlite3_bind_int64(st, 3, last == 0 || last > INT64_MAX ? INT64_MAX : (sqlite3_int64)last);
	sqlite3_bind_int(st, 4, with_accepted != 0);
	sqlite3_bind_int64(st, 5, max > INT64_MAX ? INT64_MAX : (sqlite3_int64)max);
	while (*n < max && ledger_row(l, st, "listing work", &rc))
		out[(*n)++] = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc;
}

/* handoff_of_queue_id - the latest handoff of (M,S) with queue_id */
static enum ledger_rc handoff_of_queue_id(struct ledger *l, const char *mailing_id, uint64_t seq,
                                          const char *queue_id, int64_t *id, int *accepted)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	*id = 0;
	*accepted = 0;
	st = ledger_stmt(l, STMT_HANDOFF_OF_RCPT,
	                 "SELECT id, decision = 'accept' FROM handoff"
	                 " WHERE mailing_id = ?1 AND seq = ?2 AND queue_id = ?3"
	                 " ORDER BY id DESC LIMIT 1");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	ledger_bind_text(st, 3, queue_id);
	if (ledger_row(l, st, "finding a handoff", &rc)) {
		*id = sqlite3_column_int64(st, 0);
		*accepted = sqlite3_column_int(st, 1);
	}
	sqlite3_reset(st);
	return rc;
}

/* mark_queued - the body of ledger_mark_queued, inside its transaction */
static enum ledger_rc mark_queued(struct ledger *l, const char *mailing_id, uint64_t seq,
                                  const char *queue_id, int *duplicate)
{
	struct ledger_rcpt_state r;
	int64_t handoff_id;
	int accepted;
	enum ledger_rc rc;

	rc = ledger_rcpt_need(l, mailing_id, seq, &r);
	if (rc != LEDGER_OK)
		return rc;
	rc = handoff_of_queue_id(l, mailing_id, seq, queue_id, &handoff_id, &accepted);
	if (rc != LEDGER_OK)
		goto out;

	/* A 250 for a message the milter suppressed proves nothing. */
	if (handoff_id != 0 && !accepted) {
		*duplicate = 1;
		goto out;
	}

	switch (r.status) {
	case RCPT_QUEUED:
	case RCPT_DELIVERED:
	case RCPT_BOUNCED:
	case RCPT_DEFERRED:
		break;
	case RCPT_ACCEPTED:
		if (handoff_id == 0 || handoff_id != r.accepted_handoff) {
			rc = ledger_refuse(l, LEDGER_REFUSED,
			                   "%s: not the accepted handoff of %s/%" PRIu64
			                   " (that is %s)",
			                   queue_id, mailing_id, seq, r.queue_id);
			break;
		}
		rc = ledger_handoff_set_commit(l, handoff_id, "committed");
		if (rc == LEDGER_OK)
			rc = ledger_rcpt_move(l, mailing_id, seq, RCPT_ACCEPTED, RCPT_QUEUED,
			                      ledger_now());
		break;
	default:
		rc = ledger_refuse(l, LEDGER_REFUSED,
		                   "%s: recipient %s/%" PRIu64 " is %s, so it cannot be queued"
		                   " (is the milter in the Postfix smtpd_milters?)",
		                   queue_id, mailing_id, seq, rcpt_status_name(r.status));
		break;
	}
out:
	ledger_rcpt_state_clear(&r);
	return rc;
}

enum ledger_rc ledger_mark_queued(struct ledger *l, const char *mailing_id, uint64_t seq,
                                  const char *queue_id, int *duplicate)
{
	enum ledger_rc rc;

	*duplicate = 0;
	rc = ledger_begin(l, "marking a recipient queued");
	if (rc != LEDGER_OK)
		return rc;
	rc = mark_queued(l, mailing_id, seq, queue_id, duplicate);
	return ledger_finish(l, rc, "marking a recipient queued");
}

/* mark_closed - move pending (or accepted) to status to with a reason */
static enum ledger_rc mark_closed(struct ledger *l, const char *mailing_id, uint64_t seq,
                                  enum rcpt_status to, const char *text, const char *op)
{
	struct ledger_rcpt_state r;
	int64_t now = ledger_now();
	enum ledger_rc rc;

	rc = ledger_begin(l, op);
	if (rc != LEDGER_OK)
		return rc;
	rc = ledger_rcpt_need(l, mailing_id, seq, &r);

	/* A refusal after the milter accepted it means Postfix did not commit it. */
	if (rc == LEDGER_OK && r.status == RCPT_ACCEPTED && to == RCPT_ERROR)
		rc = ledger_handoff_set_commit(l, r.accepted_handoff, "not_committed");
	if (rc == LEDGER_OK)
		rc = ledger_rcpt_move(l, mailing_id, seq, r.status, to, now);
	if (rc == LEDGER_OK)
		rc = ledger_rcpt_note(l, mailing_id, seq, 0, text, now);
	ledger_rcpt_state_clear(&r);
	return ledger_finish(l, rc, op);
}

enum ledger_rc ledger_mark_error(struct ledger *l, const char *mailing_id, uint64_t seq,
                                 const char *reply)
{
	return mark_closed(l, mailing_id, seq, RCPT_ERROR, reply, "marking a recipient failed");
}

enum ledger_rc ledger_mark_skipped(struct ledger *l, const char *mailing_id, uint64_t seq,
                                   const char *reason)
{
	return mark_closed(l, mailing_id, seq, RCPT_SKIPPED, reason, "marking a recipient skipped");
}

enum ledger_rc ledger_note_attempt(struct ledger *l, const char *mailing_id, uint64_t seq,
                                   const char *reply)
{
	struct ledger_rcpt_state r;
	enum ledger_rc rc;

	rc = ledger_begin(l, "noting a delivery attempt");
	if (rc != LEDGER_OK)
		return rc;
	rc = ledger_rcpt_need(l, mailing_id, seq, &r);
	if (rc == LEDGER_OK)
		rc = ledger_rcpt_note(l, mailing_id, seq, 1, reply, ledger_now());
	ledger_rcpt_state_clear(&r);
	return ledger_finish(l, rc, "noting a delivery attempt");
}
