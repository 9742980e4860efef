/*
 * ledger_mailing_state - a mailing's life: state changes, completion,
 * listing, migration between servers and the counter check (SQLite
 * backend).
 *
 * Allowed state changes: draft -> sending, sending <-> paused,
 * draft/sending/paused -> cancelled, and sending -> complete once no
 * recipient is pending or accepted. Setting the current state again is
 * LEDGER_OK; anything else is LEDGER_REFUSED with nothing changed. Each
 * changing function is one transaction.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "ledger.h"
#include "ledger_sqlite.h"

/* state_move_allowed - whether a mailing may go from one state to another */
static int state_move_allowed(enum mailing_state from, enum mailing_state to)
{
	switch (to) {
	case MAILING_SENDING:
		return from == MAILING_DRAFT || from == MAILING_PAUSED;
	case MAILING_PAUSED:
	case MAILING_COMPLETE:
		return from == MAILING_SENDING;
	case MAILING_CANCELLED:
		return from == MAILING_DRAFT || from == MAILING_SENDING || from == MAILING_PAUSED;
	case MAILING_DRAFT:
		break;
	}
	return 0;
}

/* open_count - the number of recipients pending or accepted */
static enum ledger_rc open_count(struct ledger *l, const char *mailing_id, int64_t *count)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	*count = 0;
	st = ledger_stmt(l, STMT_MAILING_OPEN_COUNT,
	                 "SELECT count(*) FROM recipient WHERE mailing_id = ?1"
	                 " AND status IN ('pending', 'accepted')");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	if (ledger_row(l, st, "counting open recipients", &rc))
		*count = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc;
}

/* state_write - store a mailing's new state */
static enum ledger_rc state_write(struct ledger *l, const char *mailing_id,
                                  enum mailing_state state)
{
	sqlite3_stmt *st;

	st = ledger_stmt(l, STMT_MAILING_SET_STATE,
	                 "UPDATE mailing SET state = ?2, updated_at = ?3 WHERE mailing_id = ?1");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	ledger_bind_text(st, 2, mailing_state_name(state));
	sqlite3_bind_int64(st, 3, ledger_now());
	return ledger_exec(l, st, "changing a mailing state");
}

/* set_state - the body of ledger_mailing_set_state, inside its transaction */
static enum ledger_rc set_state(struct ledger *l, const char *mailing_id, enum mailing_state to)
{
	enum mailing_state from;
	enum ledger_rc rc;
	int64_t open;
	int found;

	rc = ledger_mailing_find(l, mailing_id, &found, &from, NULL, NULL);
	if (rc != LEDGER_OK)
		return rc;
	if (!found)
		return ledger_refuse(l, LEDGER_NOTFOUND, "mailing %s not found", mailing_id);
	if (from == to)
		return LEDGER_OK;
	if (!state_move_allowed(from, to))
		return ledger_refuse(l, LEDGER_REFUSED, "mailing %s is %s and cannot become %s",
		                     mailing_id, mailing_state_name(from), mailing_state_name(to));

	if (to == MAILING_COMPLETE) {
		rc = open_count(l, mailing_id, &open);
		if (rc != LEDGER_OK)
			return rc;
		if (open > 0)
			return ledger_refuse(l, LEDGER_REFUSED,
			                     "mailing %s has %" PRId64 " recipients pending or"
			                     " accepted, so it is not complete",
			                     mailing_id, open);
	}
	return state_write(l, mailing_id, to);
}

enum ledger_rc ledger_mailing_set_state(struct ledger *l, const char *mailing_id,
                                        enum mailing_state state)
{
	enum ledger_rc rc = ledger_begin(l, "changing a mailing state");

	if (rc != LEDGER_OK)
		return rc;
	rc = set_state(l, mailing_id, state);
	return ledger_finish(l, rc, "changing a mailing state");
}

/* try_complete - the body of ledger_mailing_try_complete */
static enum ledger_rc try_complete(struct ledger *l, const char *mailing_id, int *complete)
{
	enum mailing_state state;
	enum ledger_rc rc;
	int64_t open;
	int found;

	rc = ledger_mailing_find(l, mailing_id, &found, &state, NULL, NULL);
	if (rc != LEDGER_OK)
		return rc;
	if (!found)
		return ledger_refuse(l, LEDGER_NOTFOUND, "mailing %s not found", mailing_id);
	if (state == MAILING_COMPLETE)
		*complete = 1;
	if (state != MAILING_SENDING)
		return LEDGER_OK;

	rc = open_count(l, mailing_id, &open);
	if (rc != LEDGER_OK || open > 0)
		return rc;
	*complete = 1;
	return state_write(l, mailing_id, MAILING_COMPLETE);
}

enum ledger_rc ledger_mailing_try_complete(struct ledger *l, const char *mailing_id, int *complete)
{
	enum ledger_rc rc = ledger_begin(l, "completing a mailing");

	*complete = 0;
	if (rc != LEDGER_OK)
		return rc;
	rc = try_complete(l, mailing_id, complete);
	if (rc != LEDGER_OK)
		*complete = 0;
	return ledger_finish(l, rc, "completing a mailing");
}

/* list_wanted - whether a mailing passes the filters of ledger_mailings_list */
static int list_wanted(const char *const *server_ids, int unfinished_only, const char *owner,
                       const char *state)
{
	if (unfinished_only && (strcmp(state, "complete") == 0 || strcmp(state, "cancelled") == 0))
		return 0;
	if (server_ids == NULL)
		return 1;
	for (size_t i = 0; server_ids[i] != NULL; i++) {
		if (strcmp(server_ids[i], owner) == 0)
			return 1;
	}
	return 0;
}

/*
 * ledger_mailings_list - the ids are collected first, so fn may use the
 * ledger, even change the mailing it is given.
 */
enum ledger_rc ledger_mailings_list(struct ledger *l, const char *const *server_ids,
                                    int unfinished_only, ledger_mailing_fn fn, void *ctx)
{
	struct ledger_mailing m;
	char **ids = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	enum ledger_rc rc;

	st = ledger_stmt(l, STMT_MAILING_IDS,
	                 "SELECT mailing_id, server_id, state FROM mailing"
	                 " ORDER BY created_at, mailing_id");
	if (st == NULL)
		return l->prepare_rc;
	while (ledger_row(l, st, "listing mailings", &rc)) {
		if (!list_wanted(server_ids, unfinished_only,
		                 (const char *)sqlite3_column_text(st, 1),
		                 (const char *)sqlite3_column_text(st, 2)))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			ids = xrealloc(ids, cap * sizeof(*ids));
		}
		ids[n++] = ledger_column_dup(st, 0);
	}
	sqlite3_reset(st);

	for (size_t i = 0; rc == LEDGER_OK && i < n; i++) {
		rc = ledger_mailing_get(l, ids[i], &m);
		if (rc == LEDGER_NOTFOUND) {
			rc = LEDGER_OK; /* deleted since the ids were read */
			continue;
		}
		if (rc != LEDGER_OK)
			break;
		int stop = fn(&m, ctx);
		ledger_mailing_clear(&m);
		if (stop)
			break;
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return rc;
}
