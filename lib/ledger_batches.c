/*
 * ledger_batches - list the batches of a mailing and their leases
 * (SQLite backend).
 *
 * A read-only query for reports: a sender that finds no free batch uses
 * it to report which process has leased which batch, and until when. It
 * runs rarely, so its statement is prepared on each call instead of
 * being cached.
 */
#include "config.h"

#include <string.h>

#include "ledger.h"
#include "ledger_sqlite.h"

enum ledger_rc ledger_batches_list(struct ledger *l, const char *mailing_id, ledger_batch_fn fn,
                                   void *ctx)
{
	static const char sql[] = "SELECT batch_no, first_seq, last_seq, state, holder,"
	                          " coalesce(lease_until, 0) FROM batch WHERE mailing_id = ?1"
	                          " ORDER BY batch_no";
	struct ledger_batch b;
	sqlite3_stmt *st;
	enum ledger_rc rc = LEDGER_OK;
	int prc;

	prc = sqlite3_prepare_v2(l->db, sql, -1, &st, NULL);
	if (prc != SQLITE_OK)
		return ledger_db_error(l, "listing batches", prc);
	ledger_bind_text(st, 1, mailing_id);
	while (ledger_row(l, st, "listing batches", &rc)) {
		memset(&b, 0, sizeof(b));
		b.batch_no = sqlite3_column_int64(st, 0);
		b.first_seq = (uint64_t)sqlite3_column_int64(st, 1);
		b.last_seq = (uint64_t)sqlite3_column_int64(st, 2);
		b.state = (const char *)sqlite3_column_text(st, 3);
		b.holder = (const char *)sqlite3_column_text(st, 4);
		b.lease_until = sqlite3_column_int64(st, 5);
		if (b.state == NULL)
			b.state = "free";
		if (fn(&b, ctx) != 0)
			break;
	}
	sqlite3_finalize(st);
	return rc;
}
