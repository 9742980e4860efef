/*
 * ledger_lease - batches of a mailing and the leases senders hold on them
 * (SQLite backend).
 *
 * A batch is free, leased (holder and lease_until set) or done. A sender
 * takes a free batch, or a leased one whose lease_until has passed, which
 * is how the batches of a dead sender are taken over. Times are whole
 * seconds, so a lease covers the whole second lease_until names: one
 * taken late in a second still lasts its full LeaseTime. The holder string
 * names the sending process; the part before its first colon is kept as
 * the batch's server_id. Each function is one transaction.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "ledger.h"
#include "ledger_sqlite.h"

struct batch_split {
	int64_t count;       /* number of batches */
	uint64_t first_last; /* last seq of batch 1 */
};

/* batch_plan - how a mailing of max_seq seqs splits into batches of size */
static struct batch_split batch_plan(uint64_t max_seq, uint64_t size)
{
	struct batch_split p = {0, 0};

	if (max_seq == 0)
		return p;
	if (size == 0 || size >= max_seq) {
		p.count = 1;
		p.first_last = max_seq;
	} else {
		p.count = (int64_t)((max_seq + size - 1) / size);
		p.first_last = size;
	}
	return p;
}

/* batch_current - the existing split of a mailing (count 0: none yet) */
static enum ledger_rc batch_current(struct ledger *l, const char *mailing_id,
                                    struct batch_split *cur)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	memset(cur, 0, sizeof(*cur));
	st = ledger_stmt(
	        l, STMT_BATCH_COUNT,
	        "SELECT count(*), coalesce(sum(CASE WHEN batch_no = 1 THEN last_seq END), 0)"
	        " FROM batch WHERE mailing_id = ?1");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	if (ledger_row(l, st, "reading batches", &rc)) {
		cur->count = sqlite3_column_int64(st, 0);
		cur->first_last = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return rc;
}

/* max_seq - the highest seq of a mailing, 0 without recipients */
static enum ledger_rc max_seq(struct ledger *l, const char *mailing_id, uint64_t *max)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;

	*max = 0;
	st = ledger_stmt(l, STMT_BATCH_MAX_SEQ,
	                 "SELECT coalesce(max(seq), 0) FROM recipient WHERE mailing_id = ?1");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	if (ledger_row(l, st, "finding the last seq", &rc))
		*max = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc;
}

/* batches_define - the body of ledger_batches_define, inside a transaction */
static enum ledger_rc batches_define(struct ledger *l, const char *mailing_id, uint64_t size)
{
	struct batch_split cur, plan;
	enum mailing_state state;
	sqlite3_stmt *st;
	uint64_t max;
	enum ledger_rc rc;
	int found;

	rc = ledger_mailing_find(l, mailing_id, &found, &state, NULL, NULL);
	if (rc == LEDGER_OK && !found)
		rc = ledger_refuse(l, LEDGER_NOTFOUND, "mailing %s not found", mailing_id);
	if (rc == LEDGER_OK)
		rc = max_seq(l, mailing_id, &max);
	if (rc == LEDGER_OK)
		rc = batch_current(l, mailing_id, &cur);
	if (rc != LEDGER_OK)
		return rc;

	plan = batch_plan(max, size);
	if (cur.count > 0) {
		if (cur.count == plan.count && cur.first_last == plan.first_last)
			return LEDGER_OK;
		return ledger_refuse(l, LEDGER_EXISTS,
		                     "mailing %s is already split into %" PRId64 " batches",
		                     mailing_id, cur.count);
	}

	for (int64_t b = 0; b < plan.count; b++) {
		uint64_t first = (uint64_t)b * plan.first_last + 1;
		uint64_t last = first + plan.first_last - 1;

		st = ledger_stmt(l, STMT_BATCH_INSERT,
		                 "INSERT INTO batch (mailing_id, batch_no, first_seq, last_seq)"
		                 " VALUES (?1, ?2, ?3, ?4)");
		if (st == NULL)
			return l->prepare_rc;
		ledger_bind_text(st, 1, mailing_id);
		sqlite3_bind_int64(st, 2, b + 1);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)first);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)(last > max ? max : last));
		rc = ledger_exec(l, st, "defining batches");
		if (rc != LEDGER_OK)
			return rc;
	}
	return LEDGER_OK;
}

enum ledger_rc ledger_batches_define(struct ledger *l, const char *mailing_id, uint64_t size)
{
	enum ledger_rc rc = ledger_begin(l, "defining batches");

	if (rc != LEDGER_OK)
		return rc;
	rc = batches_define(l, mailing_id, size);
	return ledger_finish(l, rc, "defining batches");
}

/* batch_pick - the batch to lease: one holder already has, or a free one */
static enum ledger_rc batch_pick(struct ledger *l, const char *mailing_id, const char *holder,
                                 int64_t now, int64_t *batch_no, uint64_t *first, uint64_t *last)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;
	int found;

	st = ledger_stmt(l, STMT_BATCH_HELD,
	                 "SELECT batch_no, first_seq, last_seq FROM batch WHERE mailing_id = ?1"
	                 " AND state = 'leased' AND holder = ?2 ORDER BY batch_no LIMIT 1");
	if (st == NULL)
		return l->prepare_rc;
	ledger_bind_text(st, 1, mailing_id);
	ledger_bind_text(st, 2, holder);
	found = ledger_row(l, st, "finding a held batch", &rc);
	if (!found && rc == LEDGER_OK) {
		st = ledger_stmt(
		        l, STMT_BATCH_FREE,
		        "SELECT batch_no, first_seq, last_seq FROM batch WHERE mailing_id = ?1"
		        " AND (state = 'free' OR (state = 'leased' AND lease_until < ?2))"
		        " ORDER BY batch_no LIMIT 1");
		if (st == NULL)
			return l->prepare_rc;
		ledger_bind_text(st, 1, mailing_id);
		sqlite3_bind_int64(st, 2, now);
		found = ledger_row(l, st, "finding a free batch", &rc);
	}
	if (!found)
		return rc == LEDGER_OK ? ledger_refuse(l, LEDGER_NOTFOUND,
		                                       "mailing %s has no free batch", mailing_id)
		                       : rc;
	*batch_no = sqlite3_column_int64(st, 0);
	*first = (uint64_t)sqlite3_column_int64(st, 1);
	*last = (uint64_t)sqlite3_column_int64(st, 2);
	sqlite3_reset(st);
	return LEDGER_OK;
}

/* lease_acquire - the body of ledger_lease_acquire, inside a transaction */
static enum ledger_rc lease_acquire(struct ledger *l, const char *mailing_id, const char *holder,
                                    int64_t now, int seconds, int64_t *batch_no, uint64_t *first,
                                    uint64_t *last)
{
	struct batch_split cur;
	sqlite3_stmt *st;
	enum ledger_rc rc;
	char *server_id;

	/* A mailing never split is one batch. */
	rc = batch_current(l, mailing_id, &cur);
	if (rc == LEDGER_OK && cur.count == 0)
		rc = batches_define(l, mailing_id, 0);
	if (rc == LEDGER_OK)
		rc = batch_pick(l, mailing_id, holder, now, batch_no, first, last);
	if (rc != LEDGER_OK)
		return rc;

	st = ledger_stmt(l, STMT_BATCH_TAKE,
	                 "UPDATE batch SET state = 'leased', holder = ?3, server_id = ?4,"
	                 " lease_until = ?5 WHERE mailing_id = ?1 AND batch_no = ?2");
	if (st == NULL)
		return l->prepare_rc;
	server_id = xstrndup(holder, strcspn(holder, ":"));
	ledger_bind_text(st, 1, mailing_id);
	sqlite3_bind_int64(st, 2, *batch_no);
	ledger_bind_text(st, 3, holder);
	ledger_bind_text(st, 4, server_id);
	sqlite3_bind_int64(st, 5, now + seconds);
	rc = ledger_exec(l, st, "leasing a batch");
	free(server_id);
	return rc;
}

enum ledger_rc ledger_lease_acquire(struct ledger *l, const char *mailing_id, const char *holder,
                                    int64_t now, int seconds, int64_t *batch_no, uint64_t *first,
                                    uint64_t *last)
{
	enum ledger_rc rc = ledger_begin(l, "leasing a batch");

	if (rc != LEDGER_OK)
		return rc;
	rc = lease_acquire(l, mailing_id, holder, now, seconds, batch_no, first, last);
	return ledger_finish(l, rc, "leasing a batch");
}

enum ledger_rc ledger_lease_renew(struct ledger *l, const char *mailing_id, int64_t batch_no,
                                  const char *holder, int64_t now, int seconds)
{
	sqlite3_stmt *st;
	enum ledger_rc rc = ledger_begin(l, "renewing a lease");

	if (rc != LEDGER_OK)
		return rc;
	st = ledger_stmt(l, STMT_BATCH_RENEW,
	                 "UPDATE batch SET lease_until = ?4 WHERE mailing_id = ?1 AND batch_no = ?2"
	                 " AND holder = ?3 AND state = 'leased'");
	if (st == NULL)
		return ledger_finish(l, l->prepare_rc, "renewing a lease");
	ledger_bind_text(st, 1, mailing_id);
	sqlite3_bind_int64(st, 2, batch_no);
	ledger_bind_text(st, 3, holder);
	sqlite3_bind_int64(st, 4, now + seconds);
	rc = ledger_exec(l, st, "renewing a lease");
	if (rc == LEDGER_OK && sqlite3_changes(l->db) == 0)
		rc = ledger_refuse(l, LEDGER_REFUSED,
		                   "%s no longer holds batch %" PRId64 " of mailing %s", holder,
		                   batch_no, mailing_id);
	return ledger_finish(l, rc, "renewing a lease");
}

enum ledger_rc ledger_lease_release(struct ledger *l, const char *mailing_id, int64_t batch_no,
                                    const char *holder, int done)
{
	sqlite3_stmt *st;
	enum ledger_rc rc = ledger_begin(l, "releasing a lease");

	if (rc != LEDGER_OK)
		return rc;
	st = ledger_stmt(
	        l, STMT_BATCH_RELEASE,
	        "UPDATE batch SET state = CASE WHEN ?4 THEN 'done' ELSE 'free' END,"
	        " holder = NULL, lease_until = NULL WHERE mailing_id = ?1 AND batch_no = ?2"
	        " AND holder = ?3 AND state = 'leased'");
	if (st == NULL)
		return ledger_finish(l, l->prepare_rc, "releasing a lease");
	ledger_bind_text(st, 1, mailing_id);
	sqlite3_bind_int64(st, 2, batch_no);
	ledger_bind_text(st, 3, holder);
	sqlite3_bind_int(st, 4, done != 0);
	rc = ledger_exec(l, st, "releasing a lease");
	if (rc == LEDGER_OK && sqlite3_changes(l->db) == 0)
		rc = ledger_refuse(l, LEDGER_REFUSED,
		                   "%s does not hold batch %" PRId64 " of mailing %s", holder,
		                   batch_no, mailing_id);
	return ledger_finish(l, rc, "releasing a lease");
}
