/*
 * ledger_mailing - server registration, and creating and reading mailings
 * (SQLite backend).
 *
 * ledger_mailing_create() stores the mailing and all its recipients in one
 * transaction. Calling it again with the same input digest changes
 * nothing and reports that the mailing existed, so a create command can
 * be rerun after a crash. ledger_mailing_get() adds the counts taken from
 * recipient and handoff rows to the stored counters.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "ledger.h"
#include "ledger_sqlite.h"

enum ledger_rc ledger_server_register(struct ledger *l, const char *server_id, const char *host)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	rc = ledger_begin(l, "registering a server");
	if (rc != LEDGER_OK)
		return rc;
	st = ledger_stmt(l, STMT_SERVER_REGISTER,
	                 "INSERT INTO server (server_id, host, started_at, heartbeat_at)"
	                 " VALUES (?1, ?2, ?3, ?3) ON CONFLICT (server_id) DO UPDATE SET"
	                 " host = excluded.host, heartbeat_at = excluded.heartbeat_at");
	if (st == NULL)
		return ledger_finish(l, l->prepare_rc, "registering a server");
	ledger_bind_text(st, 1, server_id);
	ledger_bind_text(st, 2, host);
	sqlite3_bind_int64(st, 3, ledger_now());
	rc = ledger_exec(l, st, "registering a server");
	return ledger_finish(l, rc, "registering a server");
}

/*
 * ledger_mailing_find - a mailing's state, owner and input digest (owned,
 * may be NULL; pass NULL to skip it). *found is 0 for an unknown id.
 */
enum ledger_rc ledger_mailing_find(struct ledger *l, const char *mailing_id, int *found,
                                   enum mailing_state *state, char *server_id, char **input_digest)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	st = ledger_stmt(
	        l, STMT_MAILING_FIND,
	        "SELECT state, server_id, input_digest FROM mailing WHERE mailing_id = ?1");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	*found = ledger_row(l, st, "reading a mailing", &rc);
	if (!*found)
		return rc;

	if (mailing_state_parse((const char *)sqlite3_column_text(st, 0), state) != 0)
		rc = ledger_refuse(l, LEDGER_FAILED, "mailing %s has an invalid state", mailing_id);
	if (server_id != NULL)
		ledger_column_copy(st, 1, server_id, LEDGER_ID_MAX + 1);
	if (input_digest != NULL)
		*input_digest = ledger_column_dup(st, 2);
	sqlite3_reset(st);
	return rc;
}

/* ledger_mailing_insert - add a mailing row with no recipients counted */
enum ledger_rc ledger_mailing_insert(struct ledger *l, const char *mailing_id,
                                     const char *server_id, enum mailing_state state,
                                     const char *template, const char *envelope_from,
                                     const char *input_digest, int64_t now)
{
	sqlite3_stmt *st;

	st = ledger_stmt(l, STMT_MAILING_INSERT,
	                 "INSERT INTO mailing (mailing_id, server_id, state, template,"
	                 " envelope_from, input_digest, created_at, updated_at)"
	                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	ledger_bind_text(st, 2, server_id ? server_id : "");
	ledger_bind_text(st, 3, mailing_state_name(state));
	ledger_bind_text(st, 4, template);
	ledger_bind_text(st, 5, envelope_from);
	ledger_bind_text(st, 6, input_digest);
	sqlite3_bind_int64(st, 7, now);
	return ledger_exec(l, st, "creating a mailing");
}

/* same_digest - whether two input digests, either possibly NULL, are equal */
static int same_digest(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* mailing_create - the body of ledger_mailing_create, inside its transaction */
static enum ledger_rc mailing_create(struct ledger *l, const char *mailing_id,
                                     const char *server_id, const char *template,
                                     const char *envelope_from, const char *input_digest,
                                     const struct ledger_new_recipient *rcpts, size_t n,
                                     int *existed)
{
	int64_t now = ledger_now();
	enum mailing_state state;
	char *digest = NULL;
	enum ledger_rc rc;
	int found;

	rc = ledger_mailing_find(l, mailing_id, &found, &state, NULL, &digest);
	if (rc != LEDGER_OK || found) {
		if (rc == LEDGER_OK && same_digest(digest, input_digest))
			*existed = 1;
		else if (rc == LEDGER_OK)
			rc = ledger_refuse(l, LEDGER_EXISTS,
			                   "mailing %s already exists with other inputs;"
			                   " choose another mailing id",
			                   mailing_id);
		free(digest);
		return rc;
	}

	rc = ledger_mailing_insert(l, mailing_id, server_id, MAILING_DRAFT, template, envelope_from,
	                           input_digest, now);
	for (size_t i = 0; rc == LEDGER_OK && i < n; i++) {
		if (rcpts[i].status != RCPT_PENDING && rcpts[i].status != RCPT_SKIPPED)
			return ledger_refuse(l, LEDGER_REFUSED,
			                     "recipient %zu of mailing %s is %s; a new recipient"
			                     " is pending or skipped",
			                     i + 1, mailing_id, rcpt_status_name(rcpts[i].status));
		rc = ledger_rcpt_insert(l, mailing_id, i + 1, &rcpts[i], now);
		if (rc == LEDGER_OK)
			rc = ledger_counters_move(l, mailing_id, -1, rcpts[i].status, now);
	}
	return rc;
}

enum ledger_rc ledger_mailing_create(struct ledger *l, const char *mailing_id,
                                     const char *server_id, const char *template,
                                     const char *envelope_from, const char *input_digest,
                                     const struct ledger_new_recipient *rcpts, size_t n,
                                     int *existed)
{
	enum ledger_rc rc;

	*existed = 0;
	rc = ledger_begin(l, "creating a mailing");
	if (rc != LEDGER_OK)
		return rc;
	rc = mailing_create(l, mailing_id, server_id, template, envelope_from, input_digest, rcpts,
	                    n, existed);
	return ledger_finish(l, rc, "creating a mailing");
}

void ledger_mailing_clear(struct ledger_mailing *m)
{
	free(m->template);
	free(m->envelope_from);
	m->template = m->envelope_from = NULL;
}

/* mailing_row_counts - fill the counts taken from recipient and handoff rows */
static enum ledger_rc mailing_row_counts(struct ledger *l, struct ledger_mailing *m)
{
	enum rcpt_status status;
	sqlite3_stmt *st;
	enum ledger_rc rc;

	st = ledger_stmt(l, STMT_MAILING_STATUS_COUNTS,
	                 "SELECT status, count(*) FROM recipient WHERE mailing_id = ?1"
	                 " AND status IN ('pending', 'accepted', 'queued', 'deferred')"
	                 " GROUP BY status");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, m->mailing_id);
	while (ledger_row(l, st, "counting recipients", &rc)) {
		if (rcpt_status_parse((const char *)sqlite3_column_text(st, 0), &status) != 0)
			continue;
		int64_t count = sqlite3_column_int64(st, 1);
		if (status == RCPT_PENDING)
			m->num_pending = count;
		else if (status == RCPT_ACCEPTED)
			m->num_accepted = count;
		else if (status == RCPT_QUEUED)
			m->num_queued = count;
		else
			m->num_deferred = count;
	}
	sqlite3_reset(st);
	if (rc != LEDGER_OK)
		return rc;

	st = ledger_stmt(l, STMT_MAILING_DECISION_COUNTS,
	                 "SELECT sum(decision = 'duplicate'), sum(decision = 'conflict')"
	                 " FROM handoff WHERE mailing_id = ?1");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, m->mailing_id);
	if (ledger_row(l, st, "counting handoffs", &rc)) {
		m->num_duplicates = sqlite3_column_int64(st, 0);
		m->num_conflicts = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return rc;
}

enum ledger_rc ledger_mailing_get(struct ledger *l, const char *mailing_id,
                                  struct ledger_mailing *m)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	memset(m, 0, sizeof(*m));
	st = ledger_stmt(l, STMT_MAILING_GET,
	                 "SELECT mailing_id, server_id, state, num_profiles, num_sent, num_errors,"
	                 " num_skipped, num_delivered, num_bounced, template, envelope_from,"
	                 " created_at, updated_at FROM mailing WHERE mailing_id = ?1");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	if (!ledger_row(l, st, "reading a mailing", &rc))
		return rc == LEDGER_OK ? ledger_refuse(l, LEDGER_NOTFOUND, "mailing %s not found",
		                                       mailing_id)
		                       : rc;

	ledger_column_copy(st, 0, m->mailing_id, sizeof(m->mailing_id));
	ledger_column_copy(st, 1, m->server_id, sizeof(m->server_id));
	if (mailing_state_parse((const char *)sqlite3_column_text(st, 2), &m->state) != 0)
		m->state = MAILING_CANCELLED; /* the CHECK constraint rules this out */
	m->num_profiles = sqlite3_column_int64(st, 3);
	m->num_sent = sqlite3_column_int64(st, 4);
	m->num_errors = sqlite3_column_int64(st, 5);
	m->num_skipped = sqlite3_column_int64(st, 6);
	m->num_delivered = sqlite3_column_int64(st, 7);
	m->num_bounced = sqlite3_column_int64(st, 8);
	m->template = ledger_column_dup(st, 9);
	m->envelope_from = ledger_column_dup(st, 10);
	m->created_at = sqlite3_column_int64(st, 11);
	m->updated_at = sqlite3_column_int64(st, 12);
	sqlite3_reset(st);

	rc = mailing_row_counts(l, m);
	if (rc != LEDGER_OK)
		ledger_mailing_clear(m);
	return rc;
}
