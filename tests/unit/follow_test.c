/*
 * follow_test - unit tests of the mail log follower against a real
 * SQLite ledger in a temporary directory.
 *
 * Each test creates a mailing of three recipients, records an accepted
 * handoff for each (queue ids 4AAAA0001 to 4AAAA0003, a few seconds ago), writes log
 * lines in the maillog_file format about them, and checks what the
 * follower read (its counts), what the ledger contains (recipient status,
 * mailing counters) and the saved position. A restart is a new follower
 * on the same ledger.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "conf.h"
#include "follow.h"
#include "ledger.h"
#include "log.h"

#define MAILING "m-follow"
#define DIGEST  "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static const char *const queue_ids[] = {"4AAAA0001", "4AAAA0002", "4AAAA0003"};
static const char *const rcpts[] = {"a@example.com", "b@example.com", "c@example.com"};

struct fixture {
	char dir[64];
	char *db, *log;
	struct ledger *ledger;
	struct follower *follower;
	time_t now;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct ledger_options opts = {2000, 1};
	struct ledger_new_recipient nr[3];
	char err[256];
	int existed;

	snprintf(f->dir, sizeof(f->dir), "/tmp/follow_test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->db = xasprintf("%s/ledger.db", f->dir);
	f->log = xasprintf("%s/maillog", f->dir);
	f->ledger = ledger_open(f->db, &opts, err, sizeof(err));
	assert_non_null(f->ledger);
	f->now = time(NULL);

	for (int i = 0; i < 3; i++) {
		nr[i].address = rcpts[i];
		nr[i].fields = "{}";
		nr[i].status = RCPT_PENDING;
		nr[i].reason = NULL;
	}
	assert_int_equal(ledger_mailing_create(f->ledger, MAILING, "srv1", "Subject: t\n\nx\n",
	                                       "sender@example.test", DIGEST, nr, 3, &existed),
	                 LEDGER_OK);
	assert_int_equal(ledger_mailing_set_state(f->ledger, MAILING, MAILING_SENDING), LEDGER_OK);

	/* Accepted a few seconds before the log lines that follow. */
	for (int i = 0; i < 3; i++) {
		struct ledger_handoff h = {0};
		struct ledger_handoff_result res;

		h.mailing_id = MAILING;
		h.seq = (uint64_t)i + 1;
		h.rcpt = rcpts[i];
		h.queue_id = queue_ids[i];
		h.client = "127.0.0.1";
		h.digest = DIGEST;
		h.server_id = "srv1";
		h.now = f->now - 5;
		h.confirm_commits = 1;
		h.confirm_timeout = 600;
		assert_int_equal(ledger_record_handoff(f->ledger, &h, &res), LEDGER_OK);
		assert_int_equal(res.decision, HANDOFF_ACCEPT);
	}
	f->follower = follower_new(f->ledger, f->log);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->dir);

	follower_free(f->follower);
	ledger_close(f->ledger);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f->db);
	free(f->log);
	free(f);
	return 0;
}

/* append - add text to a file as it is, without a newline of its own. */
static void append(const char *path, const char *text)
{
	FILE *fp = fopen(path, "a");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* line - a maillog_file line of now for queue id number i (0..2). */
static char *line(const struct fixture *f, const char *program, int i, const char *rest)
{
	char stamp[32];
	struct tm tm;

	localtime_r(&f->now, &tm);
	strftime(stamp, sizeof(stamp), "%b %d %H:%M:%S", &tm);
	return xasprintf("%s mx postfix/%s[%d]: %s: %s\n", stamp, program, 100 + i, queue_ids[i],
	                 rest);
}

static void append_line(const struct fixture *f, const char *program, int i, const char *rest)
{
	char *text = line(f, program, i, rest);

	append(f->log, text);
	free(text);
}

#define COMMITTED "from=<sender@example.test>, size=360, nrcpt=1 (queue active)"
#define SENT                                                                                       \
	"to=<x@example.com>, relay=127.0.0.1[127.0.0.1]:24536, delay=0.1, dsn=2.0.0, "             \
	"status=sent (250 2.0.0 Ok)"
#define BOUNCED                                                                                    \
	"to=<x@example.com>, relay=127.0.0.1[127.0.0.1]:24536, delay=0.1, "                        \
	"dsn=5.1.1, status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 "                    \
	"Recipient unknown (in reply to RCPT TO command))"
#define DEFERRED                                                                                   \
	"to=<x@example.com>, relay=none, delay=0.1, dsn=4.4.1, status=deferred "                   \
	"(connect to 127.0.0.1[127.0.0.1]:24536: Connection refused)"
#define NOISE "Dec  4 20:05:02 mx postfix/smtpd[7]: connect from unknown[127.0.0.1]\n"

static enum rcpt_status status_of(const struct fixture *f, uint64_t seq)
{
	struct ledger_recipient r;
	enum rcpt_status status;

	assert_int_equal(ledger_recipient_get(f->ledger, MAILING, seq, &r), LEDGER_OK);
	status = r.status;
	ledger_recipient_clear(&r);
	return status;
}

static void assert_counters(const struct fixture *f, int64_t delivered, int64_t bounced)
{
	struct ledger_mailing m;
	int mismatches = -1;

	assert_int_equal(ledger_mailing_get(f->ledger, MAILING, &m), LEDGER_OK);
	assert_int_equal(m.num_delivered, delivered);
	assert_int_equal(m.num_bounced, bounced);
	assert_int_equal(m.num_sent, 3);
	ledger_mailing_clear(&m);
	assert_int_equal(ledger_check_counters(f->ledger, MAILING, NULL, NULL, &mismatches),
	                 LEDGER_OK);
	assert_int_equal(mismatches, 0);
}

static void assert_saved_at_end(const struct fixture *f)
{
	uint64_t inode, offset;
	int64_t line_time;
	struct stat st;

	assert_int_equal(stat(f->log, &st), 0);
	assert_int_equal(ledger_log_position(f->ledger, f->log, &inode, &offset, &line_time),
	                 LEDGER_OK);
	assert_int_equal(inode, (uint64_t)st.st_ino);
	assert_int_equal(offset, (uint64_t)st.st_size);
}

/* restart - a new follower on the same ledger, as after a crash. */
static void restart(struct fixture *f)
{
	follower_free(f->follower);
	f->follower = follower_new(f->ledger, f->log);
}

/* write_outcomes - committed and an outcome for each queue id, with noise. */
static void write_outcomes(const struct fixture *f)
{
	append(f->log, NOISE);
	for (int i = 0; i < 3; i++)
		append_line(f, "qmgr", i, COMMITTED);
	append_line(f, "smtp", 0, SENT);
	append_line(f, "smtp", 1, BOUNCED);
	append(f->log, NOISE);
	append_line(f, "smtp", 2, DEFERRED);
}

static void outcomes_applied(void **state)
{
	struct fixture *f = *state;
	const struct follow_counts *c;

	write_outcomes(f);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	c = follower_counts(f->follower);
	assert_int_equal(c->lines, 8);
	assert_int_equal(c->events, 6);
	assert_int_equal(c->matched, 6);
	assert_int_equal(status_of(f, 1), RCPT_DELIVERED);
	assert_int_equal(status_of(f, 2), RCPT_BOUNCED);
	assert_int_equal(status_of(f, 3), RCPT_DEFERRED);
	assert_counters(f, 1, 1);
	assert_saved_at_end(f);
}

static void restart_resumes_once(void **state)
{
	struct fixture *f = *state;

	write_outcomes(f);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	restart(f);

	/* Nothing is read twice. */
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	assert_int_equal(follower_counts(f->follower)->lines, 0);
	assert_int_equal(follower_counts(f->follower)->events, 0);
	assert_counters(f, 1, 1);

	/* The deferred one is delivered later: only that line is new. */
	append_line(f, "smtp", 2, SENT);
	restart(f);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	assert_int_equal(follower_counts(f->follower)->lines, 1);
	assert_int_equal(follower_counts(f->follower)->events, 1);
	assert_int_equal(status_of(f, 3), RCPT_DELIVERED);
	assert_counters(f, 2, 1);
	assert_saved_at_end(f);
}

static void partial_line_waits(void **state)
{
	struct fixture *f = *state;
	char *text = line(f, "smtp", 0, SENT);
	size_t half = strlen(text) / 2;

	for (int i = 0; i < 3; i++)
		append_line(f, "qmgr", i, COMMITTED);
	text[half] = '\0';
	append(f->log, text);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	assert_int_equal(follower_counts(f->follower)->lines, 3);
	assert_int_equal(status_of(f, 1), RCPT_QUEUED);

	/* The rest of the line arrives, after a restart in between. */
	restart(f);
	free(text);
	text = line(f, "smtp", 0, SENT);
	append(f->log, text + half);
	free(text);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	assert_int_equal(follower_counts(f->follower)->lines, 1);
	assert_int_equal(follower_counts(f->follower)->events, 1);
	assert_int_equal(status_of(f, 1), RCPT_DELIVERED);
	assert_saved_at_end(f);
}

static void rotation_by_rename(void **state)
{
	struct fixture *f = *state;
	char *old = xasprintf("%s.0", f->log);

	for (int i = 0; i < 3; i++)
		append_line(f, "qmgr", i, COMMITTED);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);

	/* Lines written to the old file after the last pass, then a new file. */
	append_line(f, "smtp", 0, SENT);
	assert_int_equal(rename(f->log, old), 0);
	append_line(f, "smtp", 1, BOUNCED);

	restart(f);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	assert_int_equal(follower_counts(f->follower)->rotations, 1);
	assert_int_equal(follower_counts(f->follower)->events, 2);
	assert_int_equal(status_of(f, 1), RCPT_DELIVERED);
	assert_int_equal(status_of(f, 2), RCPT_BOUNCED);
	assert_saved_at_end(f);

	/* Another restart reads neither file again. */
	restart(f);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	assert_int_equal(follower_counts(f->follower)->lines, 0);
	assert_counters(f, 1, 1);
	free(old);
}

static void rotation_waits_for_writer(void **state)
{
	struct fixture *f = *state;
	char *old = xasprintf("%s.1", f->log);
	char *text;
	FILE *fp;

	for (int i = 0; i < 3; i++)
		append_line(f, "qmgr", i, COMMITTED);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);

	/* Renamed, and the new file is still empty: the writer may append to the old one. */
	assert_int_equal(rename(f->log, old), 0);
	fp = fopen(f->log, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	assert_int_equal(follower_counts(f->follower)->rotations, 0);

	text = line(f, "smtp", 0, SENT);
	append(old, text);
	free(text);
	append_line(f, "smtp", 1, SENT);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	assert_int_equal(follower_counts(f->follower)->rotations, 1);
	assert_int_equal(status_of(f, 1), RCPT_DELIVERED);
	assert_int_equal(status_of(f, 2), RCPT_DELIVERED);
	assert_saved_at_end(f);
	free(old);
}

static void truncation_starts_over(void **state)
{
	struct fixture *f = *state;

	write_outcomes(f);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);

	/* Truncated in place (copytruncate), then one shorter line. */
	assert_int_equal(truncate(f->log, 0), 0);
	append_line(f, "smtp", 2, SENT);
	restart(f);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	assert_int_equal(follower_counts(f->follower)->truncations, 1);
	assert_int_equal(follower_counts(f->follower)->lines, 1);
	assert_int_equal(status_of(f, 3), RCPT_DELIVERED);
	assert_counters(f, 2, 1);
	assert_saved_at_end(f);
}

static void unknown_queue_id_skipped(void **state)
{
	struct fixture *f = *state;
	char *text = line(f, "smtp", 0, SENT);

	/* Same shape, another queue id: applied, matches nothing, changes nothing. */
	memcpy(strstr(text, queue_ids[0]), "4BBBB", 5);
	append(f->log, text);
	free(text);
	assert_int_equal(follower_catch_up(f->follower, f->now), 0);
	assert_int_equal(follower_counts(f->follower)->events, 1);
	assert_int_equal(follower_counts(f->follower)->matched, 0);
	assert_int_equal(status_of(f, 1), RCPT_ACCEPTED);
	assert_saved_at_end(f);
}

static void missing_log_fails(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(follower_catch_up(f->follower, f->now), -1);
	assert_int_equal(follower_counts(f->follower)->lines, 0);
}

static void thread_follows_log(void **state)
{
	struct fixture *f = *state;
	struct timespec pause = {0, 50 * 1000000L};
	struct conf conf;
	char err[256];
	int i;

	conf_init(&conf);
	conf.database = xstrdup(f->db);
	conf.mail_log = xstrdup(f->log);
	append_line(f, "qmgr", 0, COMMITTED);
	assert_int_equal(follow_start(&conf, err, sizeof(err)), 0);
	assert_int_equal(follow_start(&conf, err, sizeof(err)), -1);

	/* The thread polls every FOLLOW_POLL_MS; give it up to 10 s. */
	append_line(f, "smtp", 0, SENT);
	for (i = 0; i < 200 && status_of(f, 1) != RCPT_DELIVERED; i++)
		nanosleep(&pause, NULL);
	follow_stop();
	assert_int_equal(status_of(f, 1), RCPT_DELIVERED);
	assert_saved_at_end(f);

	/* Stopping again does nothing; without MailLog it does not start. */
	follow_stop();
	free(conf.mail_log);
	conf.mail_log = NULL;
	assert_int_equal(follow_start(&conf, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "MailLog"));
	conf_free(&conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(outcomes_applied, setup, teardown),
	        cmocka_unit_test_setup_teardown(restart_resumes_once, setup, teardown),
	        cmocka_unit_test_setup_teardown(partial_line_waits, setup, teardown),
	        cmocka_unit_test_setup_teardown(rotation_by_rename, setup, teardown),
	        cmocka_unit_test_setup_teardown(rotation_waits_for_writer, setup, teardown),
	        cmocka_unit_test_setup_teardown(truncation_starts_over, setup, teardown),
	        cmocka_unit_test_setup_teardown(unknown_queue_id_skipped, setup, teardown),
	        cmocka_unit_test_setup_teardown(missing_log_fails, setup, teardown),
	        cmocka_unit_test_setup_teardown(thread_follows_log, setup, teardown),
	};

	log_init("follow_test", LOG_DEST_STDERR, 0);
	return cmocka_run_group_tests_name("follow", tests, NULL, NULL);
}
