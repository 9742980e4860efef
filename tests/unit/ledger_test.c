/*
 * ledger_test - unit tests for the SQLite ledger. They cover schema
 * versions, mailing creation, every recipient transition and its
 * counters, and the handoff decisions as recorded. They also cover lock
 * contention, queue events matched by queue id and time, leases,
 * suppression, and a randomized run whose counters must still add up.
 *
 * Each test gets its own ledger file in a fresh directory under /tmp that
 * its teardown removes. Some tests reach past the interface (through
 * ledger_sqlite.h or a second SQLite connection) to set up states the
 * interface cannot reach, or to hold a lock.
 */
#include "config.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "handoff.h"
#include "ledger.h"
#include "ledger_sqlite.h"

#define DIGEST_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DIGEST_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define T0       1700000000 /* handoff times of the tests, seconds since the epoch */

struct fixture {
	char dir[64];
	char path[128];
	struct ledger *l;
};

/* open_ledger - open path with the given busy timeout, failing the test on error */
static struct ledger *open_ledger(const char *path, int busy_timeout)
{
	struct ledger_options opts = {busy_timeout, 1};
	char err[512] = "";
	struct ledger *l = ledger_open(path, &opts, err, sizeof(err));

	if (l == NULL)
		fail_msg("ledger_open %s: %s", path, err);
	return l;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/ledger_test.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/ledger.db", fx->dir);
	fx->l = open_ledger(fx->path, 2000);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char name[160];

	ledger_close(fx->l);
	unlink(fx->path);
	snprintf(name, sizeof(name), "%s-wal", fx->path);
	unlink(name);
	snprintf(name, sizeof(name), "%s-shm", fx->path);
	unlink(name);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* sql_int - the first column of the first row of a query on the ledger */
static int64_t sql_int(struct ledger *l, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	assert_int_equal(sqlite3_prepare_v2(l->db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* sql_exec - run SQL on the ledger's connection, outside the interface */
static void sql_exec(struct ledger *l, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(l->db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
}

/* make_mailing - mailing id with n pending recipients rN@example.org, sending */
static void make_mailing(struct ledger *l, const char *id, size_t n)
{
	struct ledger_new_recipient *r = calloc(n ? n : 1, sizeof(*r));
	char(*addr)[64] = calloc(n ? n : 1, sizeof(*addr));
	int existed = -1;

	for (size_t i = 0; i < n; i++) {
		snprintf(addr[i], sizeof(addr[i]), "r%zu@example.org", i + 1);
		r[i].address = addr[i];
		r[i].fields = "{}";
		r[i].status = RCPT_PENDING;
	}
	assert_int_equal(ledger_mailing_create(l, id, "srv1", "Subject: hi\n\nbody\n",
	                                       "bounce@example.org", "digest-1", r, n, &existed),
	                 LEDGER_OK);
	assert_int_equal(existed, 0);
	assert_int_equal(ledger_mailing_set_state(l, id, MAILING_SENDING), LEDGER_OK);
	free(addr);
	free(r);
}

/* handoff_at - record a handoff of (m, seq) to rN@example.org */
static enum ledger_rc handoff_at(struct ledger *l, const char *m, uint64_t seq,
                                 const char *queue_id, const char *digest, int64_t now, int confirm,
                                 struct ledger_handoff_result *res)
{
	char rcpt[64];
	struct ledger_handoff h;

	snprintf(rcpt, sizeof(rcpt), "r%" PRIu64 "@example.org", seq);
	memset(&h, 0, sizeof(h));
	h.mailing_id = m;
	h.seq = seq;
	h.rcpt = rcpt;
	h.queue_id = queue_id;
	h.client = "localhost[127.0.0.1]";
	h.digest = digest;
	h.server_id = "srv1";
	h.now = now;
	h.confirm_commits = confirm;
	h.confirm_timeout = 600;
	return ledger_record_handoff(l, &h, res);
}

static enum rcpt_status status_of(struct ledger *l, const char *m, uint64_t seq)
{
	struct ledger_recipient r;
	enum rcpt_status s;

	assert_int_equal(ledger_recipient_get(l, m, seq, &r), LEDGER_OK);
	s = r.status;
	ledger_recipient_clear(&r);
	return s;
}

/* queue_id_of - the recipient's queue id, in a static buffer */
static const char *queue_id_of(struct ledger *l, const char *m, uint64_t seq)
{
	static char q[LEDGER_QUEUE_ID_MAX + 1];
	struct ledger_recipient r;

	assert_int_equal(ledger_recipient_get(l, m, seq, &r), LEDGER_OK);
	snprintf(q, sizeof(q), "%s", r.queue_id);
	ledger_recipient_clear(&r);
	return q;
}

/* assert_counters_match - the mailing's counters equal those of statuses */
static void assert_counters_match(struct ledger *l, const char *id,
                                  const enum rcpt_status *statuses, size_t n)
{
	int64_t want[RCPT_STATUS_COUNT] = {0};
	struct ledger_mailing m;
	int mismatches = -1;

	for (size_t i = 0; i < n; i++)
		want[statuses[i]]++;
	assert_int_equal(ledger_mailing_get(l, id, &m), LEDGER_OK);
	assert_int_equal(m.num_profiles, (int64_t)n);
	assert_int_equal(m.num_sent, want[RCPT_QUEUED] + want[RCPT_DEFERRED] +
	                                     want[RCPT_DELIVERED] + want[RCPT_BOUNCED]);
	assert_int_equal(m.num_errors, want[RCPT_ERROR]);
	assert_int_equal(m.num_skipped, want[RCPT_SKIPPED]);
	assert_int_equal(m.num_delivered, want[RCPT_DELIVERED]);
	assert_int_equal(m.num_bounced, want[RCPT_BOUNCED]);
	assert_int_equal(m.num_pending, want[RCPT_PENDING]);
	assert_int_equal(m.num_accepted, want[RCPT_ACCEPTED]);
	assert_int_equal(m.num_queued, want[RCPT_QUEUED]);
	assert_int_equal(m.num_deferred, want[RCPT_DEFERRED]);
	ledger_mailing_clear(&m);
	assert_int_equal(ledger_check_counters(l, id, NULL, NULL, &mismatches), LEDGER_OK);
	assert_int_equal(mismatches, 0);
}

/* queue_event - apply a queue event without saving a log position */
static int queue_event(struct ledger *l, const char *queue_id, int64_t at, enum queue_event ev,
                       const char *text)
{
	int matched = -1;

	assert_int_equal(ledger_apply_queue_event(l, queue_id, at, ev, text, NULL, 0, 0, &matched),
	                 LEDGER_OK);
	return matched;
}

/* move_to - take (m, seq) from its status to status to through the interface */
static void move_to(struct ledger *l, const char *m, uint64_t seq, enum rcpt_status to)
{
	struct ledger_handoff_result res;
	char q[32];
	int dup = -1;

	snprintf(q, sizeof(q), "Q%" PRIu64, seq);
	switch (to) {
	case RCPT_ACCEPTED:
		assert_int_equal(handoff_at(l, m, seq, q, DIGEST_A, T0 + (int64_t)seq, 0, &res),
		                 LEDGER_OK);
		assert_int_equal(res.decision, HANDOFF_ACCEPT);
		break;
	case RCPT_SKIPPED:
		assert_int_equal(ledger_mark_skipped(l, m, seq, "invalid address"), LEDGER_OK);
		break;
	case RCPT_ERROR:
		assert_int_equal(ledger_mark_error(l, m, seq, "550 5.1.1 no such user"), LEDGER_OK);
		break;
	case RCPT_QUEUED:
		assert_int_equal(ledger_mark_queued(l, m, seq, q, &dup), LEDGER_OK);
		assert_int_equal(dup, 0);
		break;
	case RCPT_PENDING:
		assert_int_equal(queue_event(l, q, T0 + (int64_t)seq, QEVENT_NOT_COMMITTED, NULL),
		                 1);
		break;
	case RCPT_DELIVERED:
		assert_int_equal(
		        queue_event(l, q, T0 + (int64_t)seq + 10, QEVENT_DELIVERED, "250 2.0.0 Ok"),
		        1);
		break;
	case RCPT_BOUNCED:
		assert_int_equal(queue_event(l, q, T0 + (int64_t)seq + 10, QEVENT_BOUNCED,
		                             "550 5.1.1 unknown user"),
		                 1);
		break;
	case RCPT_DEFERRED:
		assert_int_equal(queue_event(l, q, T0 + (int64_t)seq + 10, QEVENT_DEFERRED,
		                             "451 4.4.1 try later"),
		                 1);
		break;
	}
	assert_int_equal(status_of(l, m, seq), to);
}

/* drive - take a pending (m, seq) to status target by the usual path */
static void drive(struct ledger *l, const char *m, uint64_t seq, enum rcpt_status target)
{
	switch (target) {
	case RCPT_PENDING:
		return;
	case RCPT_SKIPPED:
	case RCPT_ERROR:
	case RCPT_ACCEPTED:
		move_to(l, m, seq, target);
		return;
	case RCPT_QUEUED:
		drive(l, m, seq, RCPT_ACCEPTED);
		break;
	case RCPT_DELIVERED:
	case RCPT_BOUNCED:
	case RCPT_DEFERRED:
		drive(l, m, seq, RCPT_QUEUED);
		break;
	}
	move_to(l, m, seq, target);
}

static void test_schema_fresh_version(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(ledger_schema_version(fx->l), 1);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM schema_version"), 1);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
	                                " AND name IN ('server', 'mailing', 'recipient', 'batch',"
	                                " 'handoff', 'suppression', 'migration', 'log_position')"),
	                 8);

	/* Opening again applies nothing twice. */
	ledger_close(fx->l);
	fx->l = open_ledger(fx->path, 2000);
	assert_int_equal(ledger_schema_version(fx->l), 1);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM schema_version"), 1);
	assert_int_equal(sql_int(fx->l, "PRAGMA foreign_keys"), 1);
	assert_int_equal(sql_int(fx->l, "PRAGMA synchronous"), 2);
}

static void test_schema_newer_rejected(void **state)
{
	struct fixture *fx = *state;
	struct ledger_options opts = {100, 1};
	char err[512] = "";
	char want[256];

	sql_exec(fx->l, "INSERT INTO schema_version VALUES (99, 0)");
	ledger_close(fx->l);
	fx->l = ledger_open(fx->path, &opts, err, sizeof(err));
	assert_null(fx->l);
	snprintf(want, sizeof(want),
	         "%s: schema version 99 is newer than this build supports (1); upgrade mailonce",
	         fx->path);
	assert_string_equal(err, want);

	/* Leave a ledger for the teardown to close. */
	sqlite3 *raw;
	assert_int_equal(sqlite3_open(fx->path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "DELETE FROM schema_version WHERE version = 99", NULL,
	                              NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(raw);
	fx->l = open_ledger(fx->path, 100);
}

static void test_open_missing_file(void **state)
{
	struct fixture *fx = *state;
	struct ledger_options opts = {100, 0};
	char path[200], err[512] = "";

	snprintf(path, sizeof(path), "%s/absent.db", fx->dir);
	assert_null(ledger_open(path, &opts, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "must exist"));
	assert_int_equal(access(path, F_OK), -1);

	/* A memory database cannot use WAL, so it is no ledger. */
	opts.create = 1;
	assert_null(ledger_open(":memory:", &opts, err, sizeof(err)));
	assert_non_null(strstr(err, "journal mode memory"));
}

static void test_mailing_create_idempotent(void **state)
{
	struct fixture *fx = *state;
	struct ledger_new_recipient r[3] = {
	        {"a@example.org", "{\"name\":\"A\"}", RCPT_PENDING, NULL},
	        {"b@example", "{}", RCPT_SKIPPED, "invalid address"},
	        {"c@example.org", "{}", RCPT_PENDING, NULL},
	};
	struct ledger_recipient rr;
	struct ledger_mailing m;
	int existed = -1;

	assert_int_equal(ledger_mailing_create(fx->l, "M1", "srv1", "tpl", "from@example.org", "d1",
	                                       r, 3, &existed),
	                 LEDGER_OK);
	assert_int_equal(existed, 0);
	assert_int_equal(ledger_mailing_create(fx->l, "M1", "srv1", "tpl", "from@example.org", "d1",
	                                       r, 3, &existed),
	                 LEDGER_OK);
	assert_int_equal(existed, 1);
	assert_int_equal(ledger_mailing_create(fx->l, "M1", "srv1", "tpl2", "from@example.org",
	                                       "d2", r, 2, &existed),
	                 LEDGER_EXISTS);
	assert_non_null(strstr(ledger_errmsg(fx->l), "M1"));

	assert_int_equal(ledger_mailing_get(fx->l, "M1", &m), LEDGER_OK);
	assert_int_equal(m.state, MAILING_DRAFT);
	assert_string_equal(m.server_id, "srv1");
	assert_string_equal(m.template, "tpl");
	assert_string_equal(m.envelope_from, "from@example.org");
	assert_int_equal(m.num_profiles, 3);
	assert_int_equal(m.num_skipped, 1);
	assert_int_equal(m.num_pending, 2);
	ledger_mailing_clear(&m);

	assert_int_equal(ledger_recipient_get(fx->l, "M1", 2, &rr), LEDGER_OK);
	assert_string_equal(rr.address, "b@example");
	assert_int_equal(rr.status, RCPT_SKIPPED);
	assert_string_equal(rr.last_error, "invalid address");
	ledger_recipient_clear(&rr);
	assert_int_equal(ledger_recipient_get(fx->l, "M1", 1, &rr), LEDGER_OK);
	assert_string_equal(rr.fields, "{\"name\":\"A\"}");
	ledger_recipient_clear(&rr);
	assert_int_equal(ledger_recipient_get(fx->l, "M1", 4, &rr), LEDGER_NOTFOUND);
	assert_int_equal(ledger_mailing_get(fx->l, "M2", &m), LEDGER_NOTFOUND);
}

static void test_allowed_transitions(void **state)
{
	static const enum rcpt_status moves[][2] = {
	        {RCPT_PENDING, RCPT_ACCEPTED}, {RCPT_PENDING, RCPT_SKIPPED},
	        {RCPT_PENDING, RCPT_ERROR},    {RCPT_ACCEPTED, RCPT_QUEUED},
	        {RCPT_ACCEPTED, RCPT_PENDING}, {RCPT_ACCEPTED, RCPT_ERROR},
	        {RCPT_QUEUED, RCPT_DELIVERED}, {RCPT_QUEUED, RCPT_BOUNCED},
	        {RCPT_QUEUED, RCPT_DEFERRED},  {RCPT_DEFERRED, RCPT_DELIVERED},
	        {RCPT_DEFERRED, RCPT_BOUNCED},
	};
#define N (sizeof(moves) / sizeof(moves[0]))
	struct fixture *fx = *state;
	enum rcpt_status statuses[N];

	make_mailing(fx->l, "M", N);
	for (size_t i = 0; i < N; i++)
		statuses[i] = RCPT_PENDING;

	for (size_t i = 0; i < N; i++) {
		uint64_t seq = i + 1;

		drive(fx->l, "M", seq, moves[i][0]);
		statuses[i] = moves[i][0];
		assert_counters_match(fx->l, "M", statuses, N);

		move_to(fx->l, "M", seq, moves[i][1]);
		statuses[i] = moves[i][1];
		assert_counters_match(fx->l, "M", statuses, N);
	}
#undef N
}

static void test_outcome_text_kept(void **state)
{
	struct fixture *fx = *state;
	struct ledger_recipient r;

	make_mailing(fx->l, "M", 2);
	drive(fx->l, "M", 1, RCPT_BOUNCED);
	assert_int_equal(ledger_recipient_get(fx->l, "M", 1, &r), LEDGER_OK);
	assert_string_equal(r.last_error, "550 5.1.1 unknown user");
	assert_string_equal(r.queue_id, "Q1");
	ledger_recipient_clear(&r);

	/* A second deferral keeps the status and the newest text. */
	drive(fx->l, "M", 2, RCPT_DEFERRED);
	assert_int_equal(queue_event(fx->l, "Q2", T0 + 100, QEVENT_DEFERRED, "451 4.4.2 again"), 1);
	assert_int_equal(ledger_recipient_get(fx->l, "M", 2, &r), LEDGER_OK);
	assert_int_equal(r.status, RCPT_DEFERRED);
	assert_string_equal(r.last_error, "451 4.4.2 again");
	ledger_recipient_clear(&r);
}

/* row_snapshot - a recipient's status and queue id with its mailing's counters */
static void row_snapshot(struct ledger *l, char *out, size_t size)
{
	sqlite3_stmt *st;

	assert_int_equal(
	        sqlite3_prepare_v2(l->db,
	                           "SELECT r.status || '/' || coalesce(r.queue_id, '') || '/'"
	                           " || m.num_profiles || ',' || m.num_sent || ','"
	                           " || m.num_errors || ',' || m.num_skipped || ','"
	                           " || m.num_delivered || ',' || m.num_bounced"
	                           " FROM recipient r JOIN mailing m USING (mailing_id)"
	                           " WHERE r.mailing_id = 'M' AND r.seq = 1",
	                           -1, &st, NULL),
	        SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static void test_forbidden_transitions(void **state)
{
	struct fixture *fx = *state;
	char before[200], after[200], sql[200];
	int refused = 0;

	make_mailing(fx->l, "M", 1);
	for (int from = 0; from < RCPT_STATUS_COUNT; from++) {
		for (int to = 0; to < RCPT_STATUS_COUNT; to++) {
			if (ledger_transition_allowed(from, to))
				continue;
			snprintf(sql, sizeof(sql),
			         "UPDATE recipient SET status = '%s', queue_id = 'QX'"
			         " WHERE mailing_id = 'M'",
			         rcpt_status_name(from));
			sql_exec(fx->l, sql);
			row_snapshot(fx->l, before, sizeof(before));

			assert_int_equal(ledger_begin(fx->l, "test"), LEDGER_OK);
			enum ledger_rc rc = ledger_rcpt_move(fx->l, "M", 1, from, to, T0);
			assert_int_equal(ledger_finish(fx->l, rc, "test"), LEDGER_REFUSED);
			assert_non_null(strstr(ledger_errmsg(fx->l), rcpt_status_name(to)));

			row_snapshot(fx->l, after, sizeof(after));
			assert_string_equal(before, after);
			refused++;
		}
	}
	/* 64 pairs less the 11 allowed moves. */
	assert_int_equal(refused, 53);
}

static void test_forbidden_calls_unchanged(void **state)
{
	struct fixture *fx = *state;
	char before[200], after[200];
	int dup = -1;

	make_mailing(fx->l, "M", 1);

	/* pending: it cannot be queued before the milter has seen it. */
	row_snapshot(fx->l, before, sizeof(before));
	assert_int_equal(ledger_mark_queued(fx->l, "M", 1, "Q1", &dup), LEDGER_REFUSED);
	row_snapshot(fx->l, after, sizeof(after));
	assert_string_equal(before, after);

	/* accepted: neither skipped nor queued under another queue id. */
	drive(fx->l, "M", 1, RCPT_ACCEPTED);
	row_snapshot(fx->l, before, sizeof(before));
	assert_int_equal(ledger_mark_skipped(fx->l, "M", 1, "late"), LEDGER_REFUSED);
	assert_int_equal(ledger_mark_queued(fx->l, "M", 1, "OTHER", &dup), LEDGER_REFUSED);
	row_snapshot(fx->l, after, sizeof(after));
	assert_string_equal(before, after);
	assert_string_equal(before, "accepted/Q1/1,0,0,0,0,0");

	/* delivered: nothing moves it any more. */
	move_to(fx->l, "M", 1, RCPT_QUEUED);
	move_to(fx->l, "M", 1, RCPT_DELIVERED);
	row_snapshot(fx->l, before, sizeof(before));
	assert_int_equal(ledger_mark_error(fx->l, "M", 1, "550 late"), LEDGER_REFUSED);
	assert_int_equal(ledger_mark_skipped(fx->l, "M", 1, "late"), LEDGER_REFUSED);
	assert_int_equal(queue_event(fx->l, "Q1", T0 + 20, QEVENT_BOUNCED, "550 late"), 1);
	assert_int_equal(queue_event(fx->l, "Q1", T0 + 20, QEVENT_NOT_COMMITTED, NULL), 1);
	assert_int_equal(ledger_mark_queued(fx->l, "M", 1, "Q1", &dup), LEDGER_OK);
	assert_int_equal(dup, 0);
	row_snapshot(fx->l, after, sizeof(after));
	assert_string_equal(before, after);
	assert_string_equal(before, "delivered/Q1/1,1,0,0,1,0");

	assert_int_equal(ledger_mark_error(fx->l, "M", 9, "550"), LEDGER_NOTFOUND);
}

static void test_handoff_accept_recorded(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;
	struct ledger_recipient r;

	make_mailing(fx->l, "M", 2);
	assert_int_equal(handoff_at(fx->l, "M", 1, "4XyZ1", DIGEST_A, T0, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_ACCEPT);
	assert_int_equal(res.prior, RCPT_PENDING);
	assert_string_equal(res.first_queue_id, "4XyZ1");
	assert_int_equal(res.first_at, T0);

	assert_int_equal(ledger_recipient_get(fx->l, "M", 1, &r), LEDGER_OK);
	assert_int_equal(r.status, RCPT_ACCEPTED);
	assert_string_equal(r.queue_id, "4XyZ1");
	ledger_recipient_clear(&r);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM handoff WHERE decision = 'accept'"
	                                " AND commit_state = 'unknown' AND queue_id = '4XyZ1'"
	                                " AND client = 'localhost[127.0.0.1]'"),
	                 1);
	assert_int_equal(sql_int(fx->l, "SELECT accepted_at FROM recipient WHERE seq = 1"), T0);
	assert_int_equal(sql_int(fx->l, "SELECT digest = '" DIGEST_A "' FROM recipient"
	                                " WHERE seq = 1"),
	                 1);
}

static void test_handoff_duplicate_queued(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;

	make_mailing(fx->l, "M", 1);
	drive(fx->l, "M", 1, RCPT_QUEUED);
	assert_int_equal(handoff_at(fx->l, "M", 1, "QRETRY", DIGEST_A, T0 + 30, 1, &res),
	                 LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_DUPLICATE);
	assert_int_equal(res.prior, RCPT_QUEUED);
	assert_string_equal(res.first_queue_id, "Q1");
	assert_int_equal(res.first_at, T0 + 1);
	assert_string_equal(queue_id_of(fx->l, "M", 1), "Q1");
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM handoff WHERE decision = 'duplicate'"
	                                " AND queue_id = 'QRETRY'"),
	                 1);
}

static void test_handoff_duplicate_unconfirmed(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;
	struct ledger_mailing m;

	make_mailing(fx->l, "M", 1);
	drive(fx->l, "M", 1, RCPT_ACCEPTED);
	assert_int_equal(handoff_at(fx->l, "M", 1, "QRETRY", DIGEST_A, T0 + 5000, 0, &res),
	                 LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_DUPLICATE);
	assert_int_equal(res.prior, RCPT_ACCEPTED);
	assert_string_equal(res.first_queue_id, "Q1");
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_ACCEPTED);
	assert_string_equal(queue_id_of(fx->l, "M", 1), "Q1");
	assert_int_equal(ledger_mailing_get(fx->l, "M", &m), LEDGER_OK);
	assert_int_equal(m.num_duplicates, 1);
	assert_int_equal(m.num_conflicts, 0);
	ledger_mailing_clear(&m);
}

static void test_handoff_conflict_digest(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;
	struct ledger_mailing m;

	make_mailing(fx->l, "M", 1);
	drive(fx->l, "M", 1, RCPT_DELIVERED);
	assert_int_equal(handoff_at(fx->l, "M", 1, "QOTHER", DIGEST_B, T0 + 30, 1, &res),
	                 LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_CONFLICT);
	assert_string_equal(res.detail, "body digest differs");
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_DELIVERED);
	assert_int_equal(ledger_mailing_get(fx->l, "M", &m), LEDGER_OK);
	assert_int_equal(m.num_conflicts, 1);
	ledger_mailing_clear(&m);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM handoff WHERE decision = 'conflict'"
	                                " AND detail = 'body digest differs'"),
	                 1);
}

static void test_handoff_conflict_recipient(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;
	struct ledger_handoff h;

	make_mailing(fx->l, "M", 1);
	memset(&h, 0, sizeof(h));
	h.mailing_id = "M";
	h.seq = 1;
	h.rcpt = "mallory@example.org";
	h.queue_id = "QM";
	h.digest = DIGEST_A;
	h.now = T0;
	assert_int_equal(ledger_record_handoff(fx->l, &h, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_CONFLICT);
	assert_string_equal(res.detail, "recipient differs");
	assert_string_equal(res.first_queue_id, "");
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_PENDING);

	/* The same address in other case is the same recipient. */
	h.rcpt = "R1@Example.ORG";
	assert_int_equal(ledger_record_handoff(fx->l, &h, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_ACCEPT);
}

static void test_handoff_paused_cancelled(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;

	make_mailing(fx->l, "M", 2);
	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_PAUSED), LEDGER_OK);
	assert_int_equal(handoff_at(fx->l, "M", 1, "QP", DIGEST_A, T0, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_PAUSED);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_PENDING);

	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_CANCELLED), LEDGER_OK);
	assert_int_equal(handoff_at(fx->l, "M", 2, "QC", DIGEST_A, T0, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_CANCELLED);
	assert_int_equal(status_of(fx->l, "M", 2), RCPT_PENDING);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM handoff WHERE decision IN"
	                                " ('paused', 'cancelled')"),
	                 2);
}

static void test_handoff_closed(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;
	enum rcpt_status statuses[2] = {RCPT_SKIPPED, RCPT_ERROR};

	make_mailing(fx->l, "M", 2);
	drive(fx->l, "M", 1, RCPT_SKIPPED);
	drive(fx->l, "M", 2, RCPT_ERROR);
	assert_int_equal(handoff_at(fx->l, "M", 1, "QS", DIGEST_A, T0, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_CLOSED);
	assert_int_equal(res.prior, RCPT_SKIPPED);
	assert_int_equal(handoff_at(fx->l, "M", 2, "QE", DIGEST_A, T0, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_CLOSED);
	assert_int_equal(res.prior, RCPT_ERROR);
	assert_counters_match(fx->l, "M", statuses, 2);
}

static void test_handoff_creates_mailing(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;
	struct ledger_mailing m;
	enum rcpt_status statuses[1] = {RCPT_ACCEPTED};

	assert_int_equal(handoff_at(fx->l, "APP", 7, "QA", DIGEST_A, T0, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_ACCEPT);
	assert_int_equal(res.prior, RCPT_PENDING);

	assert_int_equal(ledger_mailing_get(fx->l, "APP", &m), LEDGER_OK);
	assert_int_equal(m.state, MAILING_SENDING);
	assert_string_equal(m.server_id, "srv1");
	assert_null(m.template);
	ledger_mailing_clear(&m);
	assert_counters_match(fx->l, "APP", statuses, 1);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM recipient WHERE mailing_id = 'APP'"
	                                " AND seq = 7 AND address = 'r7@example.org'"),
	                 1);
}

static void test_handoff_creates_seq(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;
	enum rcpt_status statuses[3] = {RCPT_PENDING, RCPT_PENDING, RCPT_PENDING};

	make_mailing(fx->l, "M", 2);
	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_PAUSED), LEDGER_OK);

	/* Even a refused handoff of an unknown seq leaves its recipient row. */
	assert_int_equal(handoff_at(fx->l, "M", 3, "Q3", DIGEST_A, T0, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_PAUSED);
	assert_counters_match(fx->l, "M", statuses, 3);

	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_SENDING), LEDGER_OK);
	assert_int_equal(handoff_at(fx->l, "M", 3, "Q3b", DIGEST_A, T0, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_ACCEPT);
	statuses[2] = RCPT_ACCEPTED;
	assert_counters_match(fx->l, "M", statuses, 3);
}

static void test_confirm_committed_duplicate(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;

	make_mailing(fx->l, "M", 1);
	drive(fx->l, "M", 1, RCPT_ACCEPTED);
	sql_exec(fx->l, "UPDATE handoff SET commit_state = 'committed'");
	assert_int_equal(handoff_at(fx->l, "M", 1, "QR", DIGEST_A, T0 + 9999, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_DUPLICATE);
	assert_string_equal(res.first_queue_id, "Q1");
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_ACCEPTED);
}

static void test_confirm_not_committed_anew(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;
	enum rcpt_status statuses[1] = {RCPT_ACCEPTED};
	int dup = -1;

	make_mailing(fx->l, "M", 1);
	drive(fx->l, "M", 1, RCPT_ACCEPTED);
	sql_exec(fx->l, "UPDATE handoff SET commit_state = 'not_committed'");
	assert_int_equal(handoff_at(fx->l, "M", 1, "QNEW", DIGEST_A, T0 + 10, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_ACCEPT);
	assert_int_equal(res.prior, RCPT_ACCEPTED);
	assert_string_equal(res.first_queue_id, "QNEW");
	assert_int_equal(res.first_at, T0 + 10);
	assert_string_equal(queue_id_of(fx->l, "M", 1), "QNEW");
	assert_counters_match(fx->l, "M", statuses, 1);

	/* Only the new handoff's 250 counts now. */
	assert_int_equal(ledger_mark_queued(fx->l, "M", 1, "Q1", &dup), LEDGER_REFUSED);
	assert_int_equal(ledger_mark_queued(fx->l, "M", 1, "QNEW", &dup), LEDGER_OK);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_QUEUED);
}

static void test_confirm_after_not_committed(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;

	make_mailing(fx->l, "M", 1);
	drive(fx->l, "M", 1, RCPT_ACCEPTED);
	assert_int_equal(queue_event(fx->l, "Q1", T0 + 2, QEVENT_NOT_COMMITTED, NULL), 1);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_PENDING);
	assert_string_equal(queue_id_of(fx->l, "M", 1), "");

	assert_int_equal(handoff_at(fx->l, "M", 1, "Q1b", DIGEST_B, T0 + 60, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_ACCEPT);
	assert_int_equal(res.prior, RCPT_PENDING);
	assert_int_equal(sql_int(fx->l, "SELECT commit_state = 'not_committed' FROM handoff"
	                                " WHERE queue_id = 'Q1'"),
	                 1);
}

static void test_confirm_unknown_log_time(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;
	int64_t at = T0 + 1; /* the accepted handoff of seq 1 */

	make_mailing(fx->l, "M", 1);
	drive(fx->l, "M", 1, RCPT_ACCEPTED);

	/* No log follower: the commit cannot be confirmed. */
	assert_int_equal(handoff_at(fx->l, "M", 1, "QR1", DIGEST_A, at + 5000, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_CONFIRMING);
	assert_string_equal(res.first_queue_id, "Q1");
	assert_int_equal(res.first_at, at);

	assert_int_equal(ledger_save_log_position(fx->l, "/var/log/mail.log", 5, 100, at + 599),
	                 LEDGER_OK);
	assert_int_equal(handoff_at(fx->l, "M", 1, "QR2", DIGEST_A, at + 5000, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_CONFIRMING);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_ACCEPTED);

	assert_int_equal(ledger_save_log_position(fx->l, "/var/log/mail.log", 5, 200, at + 600),
	                 LEDGER_OK);
	assert_int_equal(handoff_at(fx->l, "M", 1, "QR3", DIGEST_A, at + 5000, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_ACCEPT);
	assert_int_equal(res.prior, RCPT_ACCEPTED);
	assert_string_equal(queue_id_of(fx->l, "M", 1), "QR3");
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM handoff"), 4);
}

static double elapsed_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

static void test_busy_records_nothing(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;
	struct ledger_mailing m;
	struct ledger *second = open_ledger(fx->path, 200);
	struct timespec start;
	sqlite3 *raw;

	assert_int_equal(sqlite3_open(fx->path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

	clock_gettime(CLOCK_MONOTONIC, &start);
	assert_int_equal(handoff_at(second, "MB", 1, "QB", DIGEST_A, T0, 1, &res), LEDGER_BUSY);
	assert_true(elapsed_since(&start) >= 0.19);
	assert_non_null(strstr(ledger_errmsg(second), "recording a handoff"));
	assert_non_null(strstr(ledger_errmsg(second), "locked"));
	assert_non_null(strstr(ledger_errmsg(second), "200 ms"));

	assert_int_equal(sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	assert_int_equal(ledger_mailing_get(fx->l, "MB", &m), LEDGER_NOTFOUND);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM handoff"), 0);

	/* The handle is usable once the lock is gone. */
	assert_int_equal(handoff_at(second, "MB", 1, "QB", DIGEST_A, T0, 1, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_ACCEPT);
	ledger_close(second);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM handoff"), 1);
}

/* handoff_worker - a child process handing off seqs 1..n of mailing C */
static int handoff_worker(const char *path, int worker, int n)
{
	struct ledger_options opts = {10000, 0};
	struct ledger_handoff_result res;
	char err[512], q[32];
	struct ledger *l = ledger_open(path, &opts, err, sizeof(err));

	if (l == NULL)
		return 1;
	for (int seq = 1; seq <= n; seq++) {
		snprintf(q, sizeof(q), "W%dS%d", worker, seq);
		if (handoff_at(l, "C", (uint64_t)seq, q, DIGEST_A, T0 + seq, 0, &res) != LEDGER_OK)
			return 2;
	}
	ledger_close(l);
	return 0;
}

static void test_concurrent_handoffs_once(void **state)
{
	struct fixture *fx = *state;
	enum { WORKERS = 4, SEQS = 150 };
	pid_t pids[WORKERS];
	int status, mismatches = -1;

	for (int w = 0; w < WORKERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] == 0)
			_exit(handoff_worker(fx->path, w, SEQS));
	}
	for (int w = 0; w < WORKERS; w++) {
		assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}

	/* Every seq was accepted exactly once; every other copy is a duplicate. */
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM handoff WHERE decision = 'accept'"),
	                 SEQS);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM handoff"
	                                " WHERE decision = 'duplicate'"),
	                 (WORKERS - 1) * SEQS);
	assert_int_equal(sql_int(fx->l,
	                         "SELECT count(*) FROM (SELECT seq FROM handoff"
	                         " WHERE decision = 'accept' GROUP BY seq HAVING count(*) > 1)"),
	                 0);
	assert_int_equal(ledger_check_counters(fx->l, "C", NULL, NULL, &mismatches), LEDGER_OK);
	assert_int_equal(mismatches, 0);
}

struct mismatch_log {
	int calls;
	char counter[32];
	int64_t stored, counted;
};

static void note_mismatch(const char *mailing_id, const char *counter, int64_t stored,
                          int64_t counted, void *ctx)
{
	struct mismatch_log *log = ctx;

	assert_string_equal(mailing_id, "M");
	log->calls++;
	snprintf(log->counter, sizeof(log->counter), "%s", counter);
	log->stored = stored;
	log->counted = counted;
}

static void test_corrupt_counter_named(void **state)
{
	struct fixture *fx = *state;
	struct mismatch_log log = {0};
	int mismatches = -1;

	make_mailing(fx->l, "M", 3);
	make_mailing(fx->l, "N", 2);
	drive(fx->l, "M", 1, RCPT_DELIVERED);
	sql_exec(fx->l, "UPDATE mailing SET num_sent = num_sent + 3 WHERE mailing_id = 'M'");

	assert_int_equal(ledger_check_counters(fx->l, NULL, note_mismatch, &log, &mismatches),
	                 LEDGER_OK);
	assert_int_equal(mismatches, 1);
	assert_int_equal(log.calls, 1);
	assert_string_equal(log.counter, "num_sent");
	assert_int_equal(log.stored, 4);
	assert_int_equal(log.counted, 1);

	assert_int_equal(ledger_check_counters(fx->l, "N", NULL, NULL, &mismatches), LEDGER_OK);
	assert_int_equal(mismatches, 0);
	assert_int_equal(ledger_check_counters(fx->l, "X", NULL, NULL, &mismatches),
	                 LEDGER_NOTFOUND);
}

static uint32_t rng_state;

/* rng - xorshift32, enough to vary the operations reproducibly */
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

#define RANDOM_SEQS 45 /* 40 created, 5 more appear through handoffs */

/* statuses_read - every recipient's status of mailing M; -1 for no row */
static void statuses_read(struct ledger *l, int *out)
{
	sqlite3_stmt *st;
	enum rcpt_status s;

	for (int i = 0; i <= RANDOM_SEQS; i++)
		out[i] = -1;
	assert_int_equal(sqlite3_prepare_v2(
	                         l->db, "SELECT seq, status FROM recipient WHERE mailing_id = 'M'",
	                         -1, &st, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		assert_int_equal(rcpt_status_parse((const char *)sqlite3_column_text(st, 1), &s),
		                 0);
		out[sqlite3_column_int(st, 0)] = (int)s;
	}
	sqlite3_finalize(st);
}

/* status_known - whether mailing M has a recipient seq */
static int status_known(struct ledger *l, uint64_t seq)
{
	struct ledger_recipient r;

	if (ledger_recipient_get(l, "M", seq, &r) != LEDGER_OK)
		return 0;
	ledger_recipient_clear(&r);
	return 1;
}

/* change_allowed - whether one call may take a recipient from one status to another */
static int change_allowed(int from, int to)
{
	if (from == to || (from == -1 && to == RCPT_PENDING) || (from == -1 && to == RCPT_ACCEPTED))
		return 1;
	if (from == -1)
		return 0;
	if (from == RCPT_ACCEPTED &&
	    (to == RCPT_DELIVERED || to == RCPT_BOUNCED || to == RCPT_DEFERRED))
		return 1; /* through queued, in one transaction */
	return ledger_transition_allowed(from, to);
}

/* random_op - one random call on mailing M at step i */
static enum ledger_rc random_op(struct ledger *l, int i)
{
	static const enum queue_event events[] = {QEVENT_COMMITTED, QEVENT_NOT_COMMITTED,
	                                          QEVENT_DELIVERED, QEVENT_BOUNCED,
	                                          QEVENT_DEFERRED};
	static const enum mailing_state states[] = {MAILING_SENDING, MAILING_PAUSED,
	                                            MAILING_COMPLETE, MAILING_SENDING};
	uint64_t seq = 1 + rng() % RANDOM_SEQS;
	struct ledger_handoff_result res;
	char q[LEDGER_QUEUE_ID_MAX + 8];
	int dup, matched, complete;

	snprintf(q, sizeof(q), "R%u", rng() % (unsigned)(i + 1));
	switch (rng() % 9) {
	case 0:
	case 1:
		snprintf(q, sizeof(q), "R%d", i);
		if (rng() % 20 == 0) {
			struct ledger_handoff h = {
			        "M", seq, "stranger@example.org", q, NULL, DIGEST_A, "srv1", T0 + i,
			        1,   600};
			return ledger_record_handoff(l, &h, &res);
		}
		return handoff_at(l, "M", seq, q, rng() % 10 ? DIGEST_A : DIGEST_B, T0 + i,
		                  (int)(rng() % 2), &res);
	case 2:
		if (rng() % 4 && status_known(l, seq))
			snprintf(q, sizeof(q), "%s", queue_id_of(l, "M", seq));
		return ledger_mark_queued(l, "M", seq, q, &dup);
	case 3:
		return rng() % 2 ? ledger_mark_error(l, "M", seq, "550 no")
		                 : ledger_mark_skipped(l, "M", seq, "suppressed");
	case 4:
		return ledger_note_attempt(l, "M", seq, "451 later");
	case 5:
	case 6:
		return ledger_apply_queue_event(l, q, T0 + i, events[rng() % 5], "text",
		                                rng() % 2 ? "/var/log/mail.log" : NULL, 1,
		                                (uint64_t)i, &matched);
	case 7:
		if (rng() % 4)
			return ledger_save_log_position(l, "/var/log/mail.log", 1, (uint64_t)i,
			                                T0 + i);
		return ledger_mailing_try_complete(l, "M", &complete);
	default:
		return ledger_mailing_set_state(l, "M", states[rng() % 4]);
	}
}

static void test_random_counters(void **state)
{
	struct fixture *fx = *state;
	const char *env = getenv("LEDGER_TEST_SEED");
	int before[RANDOM_SEQS + 1], after[RANDOM_SEQS + 1];
	int mismatches = -1, ok = 0;
	uint32_t seed;

	seed = env ? (uint32_t)strtoul(env, NULL, 10) : (uint32_t)time(NULL);
	if (seed == 0)
		seed = 1;
	rng_state = seed;
	printf("# ledger random seed %u (set LEDGER_TEST_SEED to repeat)\n", seed);

	make_mailing(fx->l, "M", 40);
	statuses_read(fx->l, before);
	for (int i = 0; i < 3000; i++) {
		enum ledger_rc rc = random_op(fx->l, i);

		if (rc != LEDGER_OK && rc != LEDGER_REFUSED && rc != LEDGER_NOTFOUND)
			fail_msg("step %d: %s: %s", i, ledger_rc_name(rc), ledger_errmsg(fx->l));
		ok += rc == LEDGER_OK;
		statuses_read(fx->l, after);
		for (int s = 1; s <= RANDOM_SEQS; s++) {
			if (!change_allowed(before[s], after[s]))
				fail_msg("step %d: seq %d went from %s to %s", i, s,
				         before[s] < 0 ? "none" : rcpt_status_name(before[s]),
				         rcpt_status_name(after[s]));
		}
		memcpy(before, after, sizeof(before));
	}
	assert_true(ok > 1000);
	assert_int_equal(ledger_check_counters(fx->l, NULL, NULL, NULL, &mismatches), LEDGER_OK);
	assert_int_equal(mismatches, 0);
}

static void test_lease_takeover(void **state)
{
	struct fixture *fx = *state;
	int64_t batch = 0;
	uint64_t first = 0, last = 0;

	make_mailing(fx->l, "M", 10);
	assert_int_equal(
	        ledger_lease_acquire(fx->l, "M", "s1:h1:100", 1000, 60, &batch, &first, &last),
	        LEDGER_OK);
	assert_int_equal(batch, 1);
	assert_int_equal(first, 1);
	assert_int_equal(last, 10);

	/* The second holder gets nothing while the lease runs. */
	assert_int_equal(
	        ledger_lease_acquire(fx->l, "M", "s2:h2:200", 1059, 60, &batch, &first, &last),
	        LEDGER_NOTFOUND);
	assert_int_equal(ledger_lease_renew(fx->l, "M", 1, "s2:h2:200", 1059, 60), LEDGER_REFUSED);

	/* The same holder asking again keeps its batch and extends the lease. */
	assert_int_equal(
	        ledger_lease_acquire(fx->l, "M", "s1:h1:100", 1010, 60, &batch, &first, &last),
	        LEDGER_OK);
	assert_int_equal(batch, 1);
	assert_int_equal(
	        ledger_lease_acquire(fx->l, "M", "s2:h2:200", 1069, 60, &batch, &first, &last),
	        LEDGER_NOTFOUND);

	/*
	 * The lease runs to 1070 and covers that whole second, because the
	 * clock has whole seconds: a lease taken late in a second must still
	 * last its full time. Expired at 1071: taken over.
	 */
	assert_int_equal(
	        ledger_lease_acquire(fx->l, "M", "s2:h2:200", 1070, 60, &batch, &first, &last),
	        LEDGER_NOTFOUND);
	assert_int_equal(
	        ledger_lease_acquire(fx->l, "M", "s2:h2:200", 1071, 60, &batch, &first, &last),
	        LEDGER_OK);
	assert_int_equal(batch, 1);
	assert_int_equal(sql_int(fx->l, "SELECT server_id = 's2' AND holder = 's2:h2:200'"
	                                " AND lease_until = 1131 FROM batch"),
	                 1);
	assert_int_equal(ledger_lease_renew(fx->l, "M", 1, "s1:h1:100", 1071, 60), LEDGER_REFUSED);
	assert_int_equal(ledger_lease_release(fx->l, "M", 1, "s1:h1:100", 1), LEDGER_REFUSED);
	assert_int_equal(ledger_lease_renew(fx->l, "M", 1, "s2:h2:200", 1071, 60), LEDGER_OK);

	/* Released done, it is never handed out again. */
	assert_int_equal(ledger_lease_release(fx->l, "M", 1, "s2:h2:200", 1), LEDGER_OK);
	assert_int_equal(
	        ledger_lease_acquire(fx->l, "M", "s1:h1:100", 9999, 60, &batch, &first, &last),
	        LEDGER_NOTFOUND);
	assert_int_equal(
	        ledger_lease_acquire(fx->l, "NOPE", "s1:h1:100", 9999, 60, &batch, &first, &last),
	        LEDGER_NOTFOUND);
}

static void test_batches_split(void **state)
{
	struct fixture *fx = *state;
	int64_t batch = 0;
	uint64_t first = 0, last = 0;

	make_mailing(fx->l, "M", 25);
	assert_int_equal(ledger_batches_define(fx->l, "M", 10), LEDGER_OK);
	assert_int_equal(ledger_batches_define(fx->l, "M", 10), LEDGER_OK);
	assert_int_equal(ledger_batches_define(fx->l, "M", 5), LEDGER_EXISTS);
	assert_int_equal(ledger_batches_define(fx->l, "M", 0), LEDGER_EXISTS);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM batch"), 3);

	assert_int_equal(ledger_lease_acquire(fx->l, "M", "a", 0, 60, &batch, &first, &last),
	                 LEDGER_OK);
	assert_int_equal(batch, 1);
	assert_int_equal(first, 1);
	assert_int_equal(last, 10);
	assert_int_equal(ledger_lease_acquire(fx->l, "M", "b", 0, 60, &batch, &first, &last),
	                 LEDGER_OK);
	assert_int_equal(batch, 2);
	assert_int_equal(first, 11);
	assert_int_equal(last, 20);
	assert_int_equal(ledger_lease_acquire(fx->l, "M", "c", 0, 60, &batch, &first, &last),
	                 LEDGER_OK);
	assert_int_equal(batch, 3);
	assert_int_equal(first, 21);
	assert_int_equal(last, 25);
	assert_int_equal(ledger_lease_acquire(fx->l, "M", "d", 0, 60, &batch, &first, &last),
	                 LEDGER_NOTFOUND);

	/* Released without done, batch 2 is free again. */
	assert_int_equal(ledger_lease_release(fx->l, "M", 2, "b", 0), LEDGER_OK);
	assert_int_equal(ledger_lease_acquire(fx->l, "M", "d", 0, 60, &batch, &first, &last),
	                 LEDGER_OK);
	assert_int_equal(batch, 2);
}

static void test_queue_id_reused(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;

	make_mailing(fx->l, "M", 2);
	assert_int_equal(handoff_at(fx->l, "M", 1, "ABC", DIGEST_A, T0, 1, &res), LEDGER_OK);
	assert_int_equal(handoff_at(fx->l, "M", 2, "ABC", DIGEST_A, T0 + 3600, 1, &res), LEDGER_OK);

	/* A line from before the second handoff belongs to the first. */
	assert_int_equal(queue_event(fx->l, "ABC", T0 + 5, QEVENT_COMMITTED, NULL), 1);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_QUEUED);
	assert_int_equal(status_of(fx->l, "M", 2), RCPT_ACCEPTED);

	/* Syslog 10 s behind the milter's clock still finds the second. */
	assert_int_equal(queue_event(fx->l, "ABC", T0 + 3590, QEVENT_DELIVERED, "250 ok"), 1);
	assert_int_equal(status_of(fx->l, "M", 2), RCPT_DELIVERED);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_QUEUED);

	/* Too early for both, or more than 8 days after both: no match. */
	assert_int_equal(queue_event(fx->l, "ABC", T0 - 120, QEVENT_BOUNCED, "550"), 0);
	assert_int_equal(queue_event(fx->l, "ABC", T0 + 3600 + 8 * 86400 + 1, QEVENT_BOUNCED, "550"),
	                 0);
	assert_int_equal(queue_event(fx->l, "NOSUCH", T0, QEVENT_BOUNCED, "550"), 0);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_QUEUED);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM handoff"
	                                " WHERE commit_state = 'committed'"),
	                 2);
}

/* A message deferred for days (maximal_queue_lifetime is 5d) still ends bounced. */
static void test_late_bounce_matched(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;

	make_mailing(fx->l, "M", 1);
	assert_int_equal(handoff_at(fx->l, "M", 1, "LATE", DIGEST_A, T0, 1, &res), LEDGER_OK);
	assert_int_equal(queue_event(fx->l, "LATE", T0 + 2, QEVENT_COMMITTED, NULL), 1);
	assert_int_equal(queue_event(fx->l, "LATE", T0 + 60, QEVENT_DEFERRED, "451 try later"), 1);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_DEFERRED);

	assert_int_equal(queue_event(fx->l, "LATE", T0 + 5 * 86400 + 30, QEVENT_BOUNCED,
	                             "message expired"),
	                 1);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_BOUNCED);
	assert_int_equal(sql_int(fx->l, "SELECT num_bounced FROM mailing WHERE mailing_id = 'M'"), 1);
}

static void test_queue_event_saves_position(void **state)
{
	struct fixture *fx = *state;
	uint64_t inode = 0, offset = 0;
	int64_t line_time = 0;
	int matched = -1;

	assert_int_equal(
	        ledger_log_position(fx->l, "/var/log/mail.log", &inode, &offset, &line_time),
	        LEDGER_NOTFOUND);
	make_mailing(fx->l, "M", 1);
	drive(fx->l, "M", 1, RCPT_ACCEPTED);

	assert_int_equal(ledger_apply_queue_event(fx->l, "Q1", T0 + 3, QEVENT_COMMITTED, NULL,
	                                          "/var/log/mail.log", 42, 1234, &matched),
	                 LEDGER_OK);
	assert_int_equal(matched, 1);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_QUEUED);
	assert_int_equal(
	        ledger_log_position(fx->l, "/var/log/mail.log", &inode, &offset, &line_time),
	        LEDGER_OK);
	assert_int_equal(inode, 42);
	assert_int_equal(offset, 1234);
	assert_int_equal(line_time, T0 + 3);

	/* An unknown queue id still moves the position. */
	assert_int_equal(ledger_apply_queue_event(fx->l, "ZZZ", T0 + 9, QEVENT_COMMITTED, NULL,
	                                          "/var/log/mail.log", 42, 2000, &matched),
	                 LEDGER_OK);
	assert_int_equal(matched, 0);
	assert_int_equal(
	        ledger_log_position(fx->l, "/var/log/mail.log", &inode, &offset, &line_time),
	        LEDGER_OK);
	assert_int_equal(offset, 2000);
	assert_int_equal(line_time, T0 + 9);
}

static void test_mark_queued_duplicate(void **state)
{
	struct fixture *fx = *state;
	struct ledger_handoff_result res;
	int dup = -1;

	make_mailing(fx->l, "M", 1);
	drive(fx->l, "M", 1, RCPT_ACCEPTED);
	assert_int_equal(handoff_at(fx->l, "M", 1, "QDUP", DIGEST_A, T0 + 5, 0, &res), LEDGER_OK);
	assert_int_equal(res.decision, HANDOFF_DUPLICATE);

	/* The 250 of the discarded copy changes nothing. */
	assert_int_equal(ledger_mark_queued(fx->l, "M", 1, "QDUP", &dup), LEDGER_OK);
	assert_int_equal(dup, 1);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_ACCEPTED);

	assert_int_equal(ledger_mark_queued(fx->l, "M", 1, "Q1", &dup), LEDGER_OK);
	assert_int_equal(dup, 0);
	assert_int_equal(status_of(fx->l, "M", 1), RCPT_QUEUED);
	assert_int_equal(sql_int(fx->l, "SELECT commit_state = 'committed' FROM handoff"
	                                " WHERE queue_id = 'Q1'"),
	                 1);
}

static void test_note_attempt_and_error(void **state)
{
	struct fixture *fx = *state;
	struct ledger_recipient r;

	make_mailing(fx->l, "M", 1);
	drive(fx->l, "M", 1, RCPT_ACCEPTED);
	assert_int_equal(ledger_note_attempt(fx->l, "M", 1, "451 4.3.0 try again"), LEDGER_OK);
	assert_int_equal(ledger_note_attempt(fx->l, "M", 1, "452 4.2.2 full"), LEDGER_OK);
	assert_int_equal(ledger_mark_error(fx->l, "M", 1, "554 5.7.1 rejected"), LEDGER_OK);
	assert_int_equal(ledger_recipient_get(fx->l, "M", 1, &r), LEDGER_OK);
	assert_int_equal(r.status, RCPT_ERROR);
	assert_int_equal(r.attempts, 2);
	assert_string_equal(r.last_error, "554 5.7.1 rejected");
	ledger_recipient_clear(&r);
	assert_int_equal(sql_int(fx->l, "SELECT commit_state = 'not_committed' FROM handoff"), 1);
	assert_int_equal(ledger_note_attempt(fx->l, "M", 2, "451"), LEDGER_NOTFOUND);
}

static void test_suppression_case(void **state)
{
	struct fixture *fx = *state;
	char *reason = NULL;
	int listed = -1;

	assert_int_equal(ledger_suppression_add(fx->l, "Ann@Example.ORG", "unsubscribed"),
	                 LEDGER_OK);
	assert_int_equal(ledger_suppressed(fx->l, "ann@example.org", &listed, &reason), LEDGER_OK);
	assert_int_equal(listed, 1);
	assert_string_equal(reason, "unsubscribed");
	free(reason);

	assert_int_equal(ledger_suppression_add(fx->l, "ANN@example.org", "complained"), LEDGER_OK);
	assert_int_equal(ledger_suppressed(fx->l, "ann@EXAMPLE.org", &listed, &reason), LEDGER_OK);
	assert_string_equal(reason, "complained");
	free(reason);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM suppression"), 1);

	assert_int_equal(ledger_suppression_remove(fx->l, "aNN@example.ORG"), LEDGER_OK);
	assert_int_equal(ledger_suppressed(fx->l, "ann@example.org", &listed, &reason), LEDGER_OK);
	assert_int_equal(listed, 0);
	assert_null(reason);
	assert_int_equal(ledger_suppression_remove(fx->l, "ann@example.org"), LEDGER_NOTFOUND);
}

static void test_mailing_states(void **state)
{
	struct fixture *fx = *state;
	struct ledger_new_recipient r[1] = {{"r1@example.org", "{}", RCPT_PENDING, NULL}};
	int existed, complete = -1;

	assert_int_equal(ledger_mailing_create(fx->l, "M", "srv1", "t", "f", "d", r, 1, &existed),
	                 LEDGER_OK);
	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_PAUSED), LEDGER_REFUSED);
	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_COMPLETE), LEDGER_REFUSED);
	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_DRAFT), LEDGER_OK);
	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_SENDING), LEDGER_OK);
	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_PAUSED), LEDGER_OK);
	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_SENDING), LEDGER_OK);

	/* Not complete while a recipient is pending or accepted. */
	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_COMPLETE), LEDGER_REFUSED);
	assert_non_null(strstr(ledger_errmsg(fx->l), "pending or accepted"));
	assert_int_equal(ledger_mailing_try_complete(fx->l, "M", &complete), LEDGER_OK);
	assert_int_equal(complete, 0);
	drive(fx->l, "M", 1, RCPT_ACCEPTED);
	assert_int_equal(ledger_mailing_try_complete(fx->l, "M", &complete), LEDGER_OK);
	assert_int_equal(complete, 0);
	move_to(fx->l, "M", 1, RCPT_QUEUED);
	assert_int_equal(ledger_mailing_try_complete(fx->l, "M", &complete), LEDGER_OK);
	assert_int_equal(complete, 1);
	assert_int_equal(ledger_mailing_try_complete(fx->l, "M", &complete), LEDGER_OK);
	assert_int_equal(complete, 1);

	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_CANCELLED), LEDGER_REFUSED);
	assert_int_equal(ledger_mailing_set_state(fx->l, "M", MAILING_SENDING), LEDGER_REFUSED);
	assert_int_equal(ledger_mailing_set_state(fx->l, "X", MAILING_SENDING), LEDGER_NOTFOUND);
	assert_int_equal(ledger_mailing_try_complete(fx->l, "X", &complete), LEDGER_NOTFOUND);
}

struct list_seen {
	int count;
	char ids[8][LEDGER_ID_MAX + 1];
};

static int list_note(const struct ledger_mailing *m, void *ctx)
{
	struct list_seen *seen = ctx;

	if (seen->count < 8)
		snprintf(seen->ids[seen->count], sizeof(seen->ids[0]), "%s", m->mailing_id);
	seen->count++;
	return 0;
}

/* struct migrate_ctx - the callback migrates what it is given, using the ledger */
struct migrate_ctx {
	struct ledger *l;
	int migrated;
};

static int list_migrate(const struct ledger_mailing *m, void *ctx)
{
	struct migrate_ctx *mc = ctx;

	assert_int_equal(ledger_mailing_migrate(mc->l, m->mailing_id, m->server_id, "srv9"),
	                 LEDGER_OK);
	mc->migrated++;
	return 0;
}

static void test_list_and_migrate(void **state)
{
	struct fixture *fx = *state;
	const char *const old[] = {"srv1", "srv2", NULL};
	struct ledger_handoff_result res;
	struct migrate_ctx mc = {fx->l, 0};
	struct list_seen seen = {0};
	struct ledger_mailing m;

	make_mailing(fx->l, "A", 1);
	make_mailing(fx->l, "B", 1);
	drive(fx->l, "B", 1, RCPT_QUEUED);
	assert_int_equal(ledger_mailing_set_state(fx->l, "B", MAILING_COMPLETE), LEDGER_OK);
	struct ledger_handoff h = {"C", 1,  "c@example.org", "QC", NULL, DIGEST_A, "srv2", T0,
	                           0,   600};
	assert_int_equal(ledger_record_handoff(fx->l, &h, &res), LEDGER_OK);
	h.mailing_id = "D";
	h.server_id = "srv3";
	assert_int_equal(ledger_record_handoff(fx->l, &h, &res), LEDGER_OK);

	assert_int_equal(ledger_mailings_list(fx->l, NULL, 0, list_note, &seen), LEDGER_OK);
	assert_int_equal(seen.count, 4);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(ledger_mailings_list(fx->l, old, 1, list_note, &seen), LEDGER_OK);
	/* Oldest first: C was handed off at T0, long before A was created. */
	assert_int_equal(seen.count, 2);
	assert_string_equal(seen.ids[0], "C");
	assert_string_equal(seen.ids[1], "A");

	assert_int_equal(ledger_mailing_migrate(fx->l, "A", "srv2", "srv9"), LEDGER_REFUSED);
	assert_int_equal(ledger_mailing_migrate(fx->l, "B", "srv1", "srv9"), LEDGER_REFUSED);
	assert_int_equal(ledger_mailing_migrate(fx->l, "Z", "srv1", "srv9"), LEDGER_NOTFOUND);
	assert_int_equal(ledger_mailings_list(fx->l, old, 1, list_migrate, &mc), LEDGER_OK);
	assert_int_equal(mc.migrated, 2);
	assert_int_equal(ledger_mailing_get(fx->l, "C", &m), LEDGER_OK);
	assert_string_equal(m.server_id, "srv9");
	ledger_mailing_clear(&m);
	assert_int_equal(sql_int(fx->l, "SELECT count(*) FROM migration WHERE to_server = 'srv9'"),
	                 2);
	assert_int_equal(ledger_server_register(fx->l, "srv9", "mx.example.org"), LEDGER_OK);
	assert_int_equal(ledger_server_register(fx->l, "srv9", "mx2.example.org"), LEDGER_OK);
	assert_int_equal(
	        sql_int(fx->l, "SELECT count(*) FROM server WHERE host = 'mx2.example.org'"), 1);
}

static void test_work_list(void **state)
{
	struct fixture *fx = *state;
	uint64_t out[10];
	size_t n = 99;

	make_mailing(fx->l, "M", 8);
	drive(fx->l, "M", 2, RCPT_ACCEPTED);
	drive(fx->l, "M", 3, RCPT_QUEUED);
	drive(fx->l, "M", 5, RCPT_SKIPPED);
	drive(fx->l, "M", 6, RCPT_ACCEPTED);

	assert_int_equal(ledger_work_list(fx->l, "M", 1, 0, 0, out, 10, &n), LEDGER_OK);
	assert_int_equal(n, 4);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[1], 4);
	assert_int_equal(out[2], 7);
	assert_int_equal(out[3], 8);

	assert_int_equal(ledger_work_list(fx->l, "M", 2, 6, 1, out, 10, &n), LEDGER_OK);
	assert_int_equal(n, 3);
	assert_int_equal(out[0], 2);
	assert_int_equal(out[1], 4);
	assert_int_equal(out[2], 6);

	assert_int_equal(ledger_work_list(fx->l, "M", 1, 0, 1, out, 2, &n), LEDGER_OK);
	assert_int_equal(n, 2);
	assert_int_equal(out[1], 2);
	assert_int_equal(ledger_work_list(fx->l, "NONE", 1, 0, 1, out, 10, &n), LEDGER_OK);
	assert_int_equal(n, 0);
}

static int list_rcpt(const struct ledger_recipient *r, void *ctx)
{
	uint64_t *sum = ctx;

	*sum = *sum * 10 + r->seq;
	return r->seq == 3;
}

static void test_recipients_list_order(void **state)
{
	struct fixture *fx = *state;
	uint64_t sum = 0;

	make_mailing(fx->l, "M", 5);
	assert_int_equal(ledger_recipients_list(fx->l, "M", list_rcpt, &sum), LEDGER_OK);
	assert_int_equal(sum, 123);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	        T(test_schema_fresh_version),
	        T(test_schema_newer_rejected),
	        T(test_open_missing_file),
	        T(test_mailing_create_idempotent),
	        T(test_allowed_transitions),
	        T(test_outcome_text_kept),
	        T(test_forbidden_transitions),
	        T(test_forbidden_calls_unchanged),
	        T(test_handoff_accept_recorded),
	        T(test_handoff_duplicate_queued),
	        T(test_handoff_duplicate_unconfirmed),
	        T(test_handoff_conflict_digest),
	        T(test_handoff_conflict_recipient),
	        T(test_handoff_paused_cancelled),
	        T(test_handoff_closed),
	        T(test_handoff_creates_mailing),
	        T(test_handoff_creates_seq),
	        T(test_confirm_committed_duplicate),
	        T(test_confirm_not_committed_anew),
	        T(test_confirm_after_not_committed),
	        T(test_confirm_unknown_log_time),
	        T(test_busy_records_nothing),
	        T(test_concurrent_handoffs_once),
	        T(test_corrupt_counter_named),
	        T(test_random_counters),
	        T(test_lease_takeover),
	        T(test_batches_split),
	        T(test_queue_id_reused),
	        T(test_late_bounce_matched),
	        T(test_queue_event_saves_position),
	        T(test_mark_queued_duplicate),
	        T(test_note_attempt_and_error),
	        T(test_suppression_case),
	        T(test_mailing_states),
	        T(test_list_and_migrate),
	        T(test_work_list),
	        T(test_recipients_list_order),
#undef T
	};

	return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}
