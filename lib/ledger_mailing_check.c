/*
 * ledger_mailing_check - moving mailings between servers and checking
 * their counters (SQLite backend).
 *
 * ledger_mailing_migrate() changes the owner and writes the migration
 * row in one transaction. ledger_check_counters() recounts the recipient
 * rows in one query, so it compares against one consistent snapshot.
 */
#include "config.h"

#include <string.h>

#include "ledger.h"
#include "ledger_sqlite.h"

/* migrate - the body of ledger_mailing_migrate, inside its transaction */
static enum ledger_rc migrate(struct ledger *l, const char *mailing_id, const char *from_server,
                              const char *to_server)
{
	char owner[LEDGER_ID_MAX + 1];
	enum mailing_state state;
	int64_t now = ledger_now();
	sqlite3_stmt *st;
	enum ledger_rc rc;
	int found;

	rc = ledger_mailing_find(l, mailing_id, &found, &state, owner, NULL);
	if (rc != LEDGER_OK)
		return rc;
	if (!found)
		return ledger_refuse(l, LEDGER_NOTFOUND, "mailing %s not found", mailing_id);
	if (strcmp(owner, from_server) != 0)
		return ledger_refuse(l, LEDGER_REFUSED, "mailing %s is owned by %s, not by %s",
		                     mailing_id, owner, from_server);
	if (state == MAILING_COMPLETE || state == MAILING_CANCELLED)
		return ledger_refuse(l, LEDGER_REFUSED,
		                     "mailing %s is %s; only unfinished"
		                     " mailings migrate",
		                     mailing_id, mailing_state_name(state));

	st = ledger_stmt(
	        l, STMT_MAILING_MIGRATE,
	        "UPDATE mailing SET server_id = ?2, updated_at = ?3 WHERE mailing_id = ?1");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	ledger_bind_text(st, 2, to_server);
	sqlite3_bind_int64(st, 3, now);
	rc = ledger_exec(l, st, "migrating a mailing");
	if (rc != LEDGER_OK)
		return rc;

	st = ledger_stmt(l, STMT_MIGRATION_INSERT,
	                 "INSERT INTO migration (mailing_id, from_server, to_server, at)"
	                 " VALUES (?1, ?2, ?3, ?4)");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	ledger_bind_text(st, 2, from_server);
	ledger_bind_text(st, 3, to_server);
	sqlite3_bind_int64(st, 4, now);
	return ledger_exec(l, st, "recording a migration");
}

enum ledger_rc ledger_mailing_migrate(struct ledger *l, const char *mailing_id,
                                      const char *from_server, const char *to_server)
{
	enum ledger_rc rc = ledger_begin(l, "migrating a mailing");

	if (rc != LEDGER_OK)
		return rc;
	rc = migrate(l, mailing_id, from_server, to_server);
	return ledger_finish(l, rc, "migrating a mailing");
}

static const char *const counter_names[] = {
        "num_profiles", "num_sent", "num_errors", "num_skipped", "num_delivered", "num_bounced",
};

enum ledger_rc ledger_check_counters(struct ledger *l, const char *mailing_id,
                                     ledger_mismatch_fn fn, void *ctx, int *mismatches)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;
	int rows = 0;

	*mismatches = 0;
	st = ledger_stmt(l, STMT_CHECK_COUNTERS,
	                 "SELECT m.mailing_id,"
	                 " m.num_profiles, count(r.seq),"
	                 " m.num_sent, coalesce(sum(r.status IN"
	                 "  ('queued', 'deferred', 'delivered', 'bounced')), 0),"
	                 " m.num_errors, coalesce(sum(r.status = 'error'), 0),"
	                 " m.num_skipped, coalesce(sum(r.status = 'skipped'), 0),"
	                 " m.num_delivered, coalesce(sum(r.status = 'delivered'), 0),"
	                 " m.num_bounced, coalesce(sum(r.status = 'bounced'), 0)"
	                 " FROM mailing m LEFT JOIN recipient r ON r.mailing_id = m.mailing_id"
	                 " WHERE ?1 IS NULL OR m.mailing_id = ?1"
	                 " GROUP BY m.mailing_id ORDER BY m.mailing_id");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	while (ledger_row(l, st, "checking counters", &rc)) {
		const char *id = (const char *)sqlite3_column_text(st, 0);

		rows++;
		for (int i = 0; i < 6; i++) {
			int64_t stored = sqlite3_column_int64(st, 1 + 2 * i);
			int64_t counted = sqlite3_column_int64(st, 2 + 2 * i);

			if (stored == counted)
				continue;
			(*mismatches)++;
			if (fn != NULL)
				fn(id, counter_names[i], stored, counted, ctx);
		}
	}
	sqlite3_reset(st);
	if (rc == LEDGER_OK && rows == 0 && mailing_id != NULL)
		rc = ledger_refuse(l, LEDGER_NOTFOUND, "mailing %s not found", mailing_id);
	return rc;
}
