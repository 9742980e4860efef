/*
 * conf_test - unit tests of the mailonce.conf reader.
 *
 * Each test writes a configuration to a temporary file, loads it and
 * checks the stored values or the exact error message, which must name
 * the file, the line and the key or value at fault.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "conf.h"

#define REQUIRED                                                                                   \
	"ServerID mail1\nDatabase /var/lib/mailonce/ledger.db\nKeyFile /etc/mailonce/keys\n"

struct fixture {
	char path[64];
	struct conf conf;
	char err[512];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	int fd;

	snprintf(f->path, sizeof(f->path), "%s/conf_test.XXXXXX", tmp ? tmp : "/tmp");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	close(fd);
	conf_init(&f->conf);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	conf_free(&f->conf);
	unlink(f->path);
	free(f);
	return 0;
}

/* load_text - write text to the fixture's file and load it over the defaults */
static int load_text(struct fixture *f, const char *text)
{
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);

	conf_free(&f->conf);
	conf_init(&f->conf);
	f->err[0] = '\0';
	return conf_load(&f->conf, f->path, f->err, sizeof(f->err));
}

/* expect_error - load text, expect failure with "PATH:LINE: message" */
static void expect_error(struct fixture *f, const char *text, int line, const char *message)
{
	char expected[512];

	if (line > 0)
		snprintf(expected, sizeof(expected), "%s:%d: %s", f->path, line, message);
	else
		snprintf(expected, sizeof(expected), "%s: %s", f->path, message);
	assert_int_equal(load_text(f, text), -1);
	assert_string_equal(f->err, expected);
}

/* expect_value_error - a one-key file after the required keys, expecting an invalid value */
static void expect_value_error(struct fixture *f, const char *key, const char *value,
                               const char *advice)
{
	char text[256];
	char message[256];

	snprintf(text, sizeof(text), REQUIRED "%s %s\n", key, value);
	snprintf(message, sizeof(message), "invalid value \"%s\" for %s: %s", value, key, advice);
	expect_error(f, text, 4, message);
}

static void test_defaults(void **state)
{
	struct fixture *f = *state;
	struct conf *c = &f->conf;

	assert_null(c->server_id);
	assert_null(c->database);
	assert_null(c->key_file);
	assert_int_equal(c->busy_timeout, 5000);
	assert_string_equal(c->socket, "local:/run/mailonce/milter.sock");
	assert_null(c->user_id);
	assert_int_equal(c->umask, 007);
	assert_string_equal(c->pid_file, "/run/mailonce/mailonce-milter.pid");
	assert_int_equal(c->verbose, 0);
	assert_int_equal(c->strip_token, 1);
	assert_int_equal(c->duplicate_action, ACTION_DISCARD);
	assert_int_equal(c->bad_token_action, ACTION_REJECT);
	assert_int_equal(c->ledger_error_action, ACTION_TEMPFAIL);
	assert_int_equal(c->conflict_action, ACTION_DISCARD);
	assert_int_equal(c->confirm_commits, 1);
	assert_int_equal(c->confirm_timeout, 600);
	assert_null(c->mail_log);
	assert_string_equal(c->submit_to, "inet:127.0.0.1:25");
	assert_string_equal(c->helo_name, "localhost");
	assert_int_equal(c->concurrency, 4);
	assert_int_equal(c->max_attempts, 5);
	assert_int_equal(c->retry_delay, 5);
	assert_int_equal(c->lease_time, 60);
	assert_int_equal(c->migrate_from_count, 0);
}

static void test_required_only(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load_text(f, REQUIRED), 0);
	assert_string_equal(f->conf.server_id, "mail1");
	assert_string_equal(f->conf.database, "/var/lib/mailonce/ledger.db");
	assert_string_equal(f->conf.key_file, "/etc/mailonce/keys");
	assert_string_equal(f->conf.path, f->path);
	assert_int_equal(f->conf.concurrency, 4);
	assert_string_equal(f->conf.helo_name, "localhost");
}

static void test_every_key_set(void **state)
{
	struct fixture *f = *state;
	struct conf *c = &f->conf;

	assert_int_equal(load_text(f, "ServerID mail-2.example_x\n"
	                              "Database /tmp/l.db\n"
	                              "KeyFile /tmp/keys\n"
	                              "BusyTimeout 250ms\n"
	                              "Socket inet:8890@127.0.0.1\n"
	                              "UserID mailonce:mail\n"
	                              "UMask 027\n"
	                              "PidFile /tmp/m.pid\n"
	                              "LogVerbose yes\n"
	                              "StripToken no\n"
	                              "DuplicateAction tag\n"
	                              "BadTokenAction accept\n"
	                              "LedgerErrorAction reject\n"
	                              "ConflictAction tempfail\n"
	                              "ConfirmCommits off\n"
	                              "ConfirmTimeout 2h\n"
	                              "MailLog /var/log/mail.log\n"
	                              "SubmitTo unix:/run/submit.sock\n"
	                              "HeloName sender.example.org\n"
	                              "Concurrency 64\n"
	                              "MaxAttempts 1\n"
	                              "RetryDelay 0\n"
	                              "LeaseTime 1d\n"
	                              "MigrateFrom old1\n"),
	                 0);
	assert_string_equal(c->server_id, "mail-2.example_x");
	assert_string_equal(c->database, "/tmp/l.db");
	assert_string_equal(c->key_file, "/tmp/keys");
	assert_int_equal(c->busy_timeout, 250);
	assert_string_equal(c->socket, "inet:8890@127.0.0.1");
	assert_string_equal(c->user_id, "mailonce:mail");
	assert_int_equal(c->umask, 027);
	assert_string_equal(c->pid_file, "/tmp/m.pid");
	assert_int_equal(c->verbose, 1);
	assert_int_equal(c->strip_token, 0);
	assert_int_equal(c->duplicate_action, ACTION_TAG);
	assert_int_equal(c->bad_token_action, ACTION_ACCEPT);
	assert_int_equal(c->ledger_error_action, ACTION_REJECT);
	assert_int_equal(c->conflict_action, ACTION_TEMPFAIL);
	assert_int_equal(c->confirm_commits, 0);
	assert_int_equal(c->confirm_timeout, 7200);
	assert_string_equal(c->mail_log, "/var/log/mail.log");
	assert_string_equal(c->submit_to, "unix:/run/submit.sock");
	assert_string_equal(c->helo_name, "sender.example.org");
	assert_int_equal(c->concurrency, 64);
	assert_int_equal(c->max_attempts, 1);
	assert_int_equal(c->retry_delay, 0);
	assert_int_equal(c->lease_time, 86400);
	assert_int_equal(c->migrate_from_count, 1);
	assert_string_equal(c->migrate_from[0], "old1");
	assert_null(c->migrate_from[1]);
}

static void test_unknown_key(void **state)
{
	struct fixture *f = *state;

	expect_error(f, REQUIRED "\nFoo bar\n", 5,
	             "unknown key \"Foo\"; see mailonce.conf(5) for the keys");
	expect_error(f, "ServerID=mail1\n", 1,
	             "\"ServerID=mail1\" is not \"Key value\"; separate the key from its value "
	             "with white space");
}

static void test_bad_bool(void **state)
{
	struct fixture *f = *state;

	expect_value_error(f, "StripToken", "maybe", "use yes or no");
	expect_value_error(f, "LogVerbose", "2", "use yes or no");
}

static void test_bool_spellings(void **state)
{
	static const struct {
		const char *text;
		int value;
	} cases[] = {{"yes", 1}, {"YES", 1}, {"true", 1},  {"On", 1},  {"1", 1},
	             {"no", 0},  {"No", 0},  {"false", 0}, {"off", 0}, {"0", 0}};
	size_t i;
	int value;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		value = -1;
		assert_int_equal(conf_parse_bool(cases[i].text, &value), 0);
		assert_int_equal(value, cases[i].value);
	}
	assert_int_equal(conf_parse_bool("", &value), -1);
	assert_int_equal(conf_parse_bool("yess", &value), -1);
	assert_int_equal(conf_parse_bool("y", &value), -1);
}

static void test_duplicate_key(void **state)
{
	struct fixture *f = *state;

	expect_error(f, REQUIRED "Socket unix:/a\n# note\nsocket unix:/b\n", 6,
	             "duplicate key Socket, first set on line 4; keep one of them");
	expect_error(f, "ServerID a\nServerID b\n", 2,
	             "duplicate key ServerID, first set on line 1; keep one of them");
}

static void test_missing_required(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "Database /d\nKeyFile /k\n", 0, "missing required key ServerID");
	expect_error(f, "ServerID s\nKeyFile /k\n", 0, "missing required key Database");
	expect_error(f, "ServerID s\nDatabase /d\n", 0, "missing required key KeyFile");
	expect_error(f, "", 0, "missing required key ServerID");
}

static void test_missing_value(void **state)
{
	struct fixture *f = *state;

	expect_error(f, REQUIRED "HeloName   \n", 4, "missing value for HeloName");
	expect_error(f, REQUIRED "MailLog # comment only\n", 4, "missing value for MailLog");
}

static void test_comments_and_blanks(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load_text(f, "# mailonce.conf\n"
	                              "\n"
	                              "   \t\n"
	                              "  # indented comment\n"
	                              "ServerID mail1   # trailing comment\n"
	                              "Database /var/lib/x#1.db\n"
	                              "KeyFile\t/etc/keys\t\r\n"
	                              "HeloName\tmail#2\n"),
	                 0);
	assert_string_equal(f->conf.server_id, "mail1");
	assert_string_equal(f->conf.database, "/var/lib/x#1.db");
	assert_string_equal(f->conf.key_file, "/etc/keys");
	assert_string_equal(f->conf.helo_name, "mail#2");
}

static void test_keys_any_case(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load_text(f, "serverid a\nDATABASE /d\nkeyFILE /k\nconcurrency 9\n"), 0);
	assert_string_equal(f->conf.server_id, "a");
	assert_int_equal(f->conf.concurrency, 9);
}

static void test_migrate_from_accumulates(void **state)
{
	struct fixture *f = *state;
	struct conf *c = &f->conf;

	assert_int_equal(load_text(f, REQUIRED "MigrateFrom old1\n"
	                                       "MigrateFrom old2, old3\n"
	                                       "migratefrom  old4 old5,,old6\n"
	                                       "MigrateFrom old2\n"),
	                 0);
	assert_int_equal(c->migrate_from_count, 6);
	assert_string_equal(c->migrate_from[0], "old1");
	assert_string_equal(c->migrate_from[1], "old2");
	assert_string_equal(c->migrate_from[2], "old3");
	assert_string_equal(c->migrate_from[3], "old4");
	assert_string_equal(c->migrate_from[4], "old5");
	assert_string_equal(c->migrate_from[5], "old6");
	assert_null(c->migrate_from[6]);
}

static void test_migrate_from_errors(void **state)
{
	struct fixture *f = *state;
	char message[256];

	expect_error(f, REQUIRED "MigrateFrom old1, bad/id old2\n", 4,
	             "invalid value \"bad/id\" for MigrateFrom: use 1 to 64 letters, digits, "
	             "dots, hyphens or underscores");
	expect_error(f, REQUIRED "MigrateFrom ,\n", 4,
	             "invalid value \",\" for MigrateFrom: use one or more server ids separated "
	             "by commas or spaces");
	snprintf(message, sizeof(message),
	         "MigrateFrom lists mail1, which is the ServerID of this server; remove it from "
	         "MigrateFrom");
	expect_error(f, REQUIRED "MigrateFrom old1 mail1\n", 0, message);
}

static void test_durations(void **state)
{
	static const struct {
		const char *text;
		int seconds;
	} cases[] = {{"0", 0},
	             {"30", 30},
	             {"30s", 30},
	             {"5m", 300},
	             {"2h", 7200},
	             {"1d", 86400},
	             {"007s", 7},
	             {"2147483647", 2147483647},
	             {"24855d", 24855 * 86400}};
	size_t i;
	int seconds;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		seconds = -1;
		assert_int_equal(conf_parse_duration(cases[i].text, &seconds), 0);
		assert_int_equal(seconds, cases[i].seconds);
	}
}

static void test_bad_durations(void **state)
{
	static const char *const bad[] = {
	        "",    "s",    "-5",         "+5",     "5 s", " 5",  "5x", "5ss",
	        "5sm", "1.5h", "2147483648", "24856d", "5M",  "5ms", "m5", "99999999999999999999"};
	size_t i;
	int seconds;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		seconds = 12345;
		assert_int_equal(conf_parse_duration(bad[i], &seconds), -1);
		assert_int_equal(seconds, 12345);
	}
}

static void test_duration_keys(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load_text(f, REQUIRED "BusyTimeout 250ms\nConfirmTimeout 90\n"
	                                       "RetryDelay 1m\nLeaseTime 2h\n"),
	                 0);
	assert_int_equal(f->conf.busy_timeout, 250);
	assert_int_equal(f->conf.confirm_timeout, 90);
	assert_int_equal(f->conf.retry_delay, 60);
	assert_int_equal(f->conf.lease_time, 7200);

	assert_int_equal(load_text(f, REQUIRED "BusyTimeout 2m\n"), 0);
	assert_int_equal(f->conf.busy_timeout, 120000);

	assert_int_equal(load_text(f, REQUIRED "BusyTimeout 0ms\n"), 0);
	assert_int_equal(f->conf.busy_timeout, 0);

	expect_value_error(f, "BusyTimeout", "5x", "use a duration such as 250ms, 5s or 1m");
	expect_value_error(f, "BusyTimeout", "5sms", "use a duration such as 250ms, 5s or 1m");
	expect_value_error(f, "BusyTimeout", "ms", "use a duration such as 250ms, 5s or 1m");
	expect_value_error(f, "BusyTimeout", "-5ms", "use a duration such as 250ms, 5s or 1m");
	expect_value_error(f, "BusyTimeout", "2147483648ms",
	                   "use a duration such as 250ms, 5s or 1m");
	expect_value_error(f, "BusyTimeout", "30d", "use a duration such as 250ms, 5s or 1m");
	expect_value_error(f, "RetryDelay", "soon",
	                   "use a duration such as 30 or 30s (seconds), 5m, 2h or 1d");
	expect_value_error(f, "LeaseTime", "0", "use a duration of at least 1s");
}

static void test_int_limits(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load_text(f, REQUIRED "Concurrency 1\nMaxAttempts 100\n"), 0);
	assert_int_equal(f->conf.concurrency, 1);
	assert_int_equal(f->conf.max_attempts, 100);

	expect_value_error(f, "Concurrency", "0", "use a whole number from 1 to 64");
	expect_value_error(f, "Concurrency", "65", "use a whole number from 1 to 64");
	expect_value_error(f, "Concurrency", "-3", "use a whole number from 1 to 64");
	expect_value_error(f, "Concurrency", "4x", "use a whole number from 1 to 64");
	expect_value_error(f, "MaxAttempts", "101", "use a whole number from 1 to 100");
	expect_value_error(f, "MaxAttempts", "99999999999999999999999",
	                   "use a whole number from 1 to 100");
}

static void test_action_subsets(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load_text(f, REQUIRED "DuplicateAction HOLD\nConflictAction reject\n"), 0);
	assert_int_equal(f->conf.duplicate_action, ACTION_HOLD);
	assert_int_equal(f->conf.conflict_action, ACTION_REJECT);

	expect_value_error(f, "DuplicateAction", "accept", "use discard, reject, hold or tag");
	expect_value_error(f, "BadTokenAction", "discard", "use accept, reject or tempfail");
	expect_value_error(f, "LedgerErrorAction", "accept", "use reject or tempfail");
	expect_value_error(f, "ConflictAction", "tag", "use discard, reject, tempfail or hold");

	assert_string_equal(conf_action_name(ACTION_ACCEPT), "accept");
	assert_string_equal(conf_action_name(ACTION_TEMPFAIL), "tempfail");
	assert_string_equal(conf_action_name(ACTION_TAG), "tag");
}

static void test_umask(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load_text(f, REQUIRED "UMask 0077\n"), 0);
	assert_int_equal(f->conf.umask, 077);
	assert_int_equal(load_text(f, REQUIRED "UMask 2\n"), 0);
	assert_int_equal(f->conf.umask, 02);

	expect_value_error(f, "UMask", "008", "use an octal mode from 000 to 777, such as 007");
	expect_value_error(f, "UMask", "1777", "use an octal mode from 000 to 777, such as 007");
	expect_value_error(f, "UMask", "u=rwx", "use an octal mode from 000 to 777, such as 007");
}

static void test_server_id(void **state)
{
	struct fixture *f = *state;
	char text[256];
	char line[128];
	char id[66];

	memset(id, 'a', 64);
	id[64] = '\0';
	snprintf(text, sizeof(text), "ServerID %s\nDatabase /d\nKeyFile /k\n", id);
	assert_int_equal(load_text(f, text), 0);
	assert_string_equal(f->conf.server_id, id);

	id[64] = 'a';
	id[65] = '\0';
	snprintf(text, sizeof(text),
	         "invalid value \"%s\" for ServerID: use 1 to 64 letters, "
	         "digits, dots, hyphens or underscores",
	         id);
	snprintf(line, sizeof(line), "ServerID %s\n", id);
	expect_error(f, line, 1, text);
	expect_error(f, "ServerID mail 1\n", 1,
	             "invalid value \"mail 1\" for ServerID: use 1 to 64 letters, digits, dots, "
	             "hyphens or underscores");
	expect_error(f, "ServerID m\xc3\xa9l\n", 1,
	             "invalid value \"m\\xC3\\xA9l\" for ServerID: use 1 to 64 letters, digits, "
	             "dots, hyphens or underscores");
}

static void test_socket(void **state)
{
	static const char *const good[] = {
	        "unix:/run/m.sock", "local:/run/m.sock", "inet:8890@127.0.0.1",
	        "inet:1@localhost", "inet:65535@[::1]",  "inet6:8890@::1",
	        "inet:8890"};
	static const char *const bad[] = {"/run/m.sock", "unix:",        "tcp:8890@127.0.0.1",
	                                  "inet:0@h",    "inet:65536@h", "inet:@h",
	                                  "inet:x@h",    "inet:25@",     "inet:25 @h"};
	struct fixture *f = *state;
	char text[256];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), REQUIRED "Socket %s\n", good[i]);
		assert_int_equal(load_text(f, text), 0);
		assert_string_equal(f->conf.socket, good[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_value_error(f, "Socket", bad[i],
		                   "use unix:/path, local:/path or inet:PORT@HOST with a port "
		                   "from 1 to 65535");
}

static void test_submit_to(void **state)
{
	static const char *const good[] = {"inet:127.0.0.1:25", "inet:localhost:587",
	                                   "inet:[::1]:2525", "unix:/run/postfix/submit"};
	static const char *const bad[] = {"127.0.0.1:25", "inet:127.0.0.1", "inet::25",
	                                  "inet:h:0",     "inet:h:99999",   "unix:relative",
	                                  "unix:",        "inet:h:25x"};
	struct fixture *f = *state;
	char text[256];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), REQUIRED "SubmitTo %s\n", good[i]);
		assert_int_equal(load_text(f, text), 0);
		assert_string_equal(f->conf.submit_to, good[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_value_error(f, "SubmitTo", bad[i],
		                   "use inet:HOST:PORT with a port from 1 to 65535, or "
		                   "unix:/path");
}

static void test_unreadable_file(void **state)
{
	struct fixture *f = *state;
	char expected[256];

	unlink(f->path);
	assert_int_equal(conf_load(&f->conf, f->path, f->err, sizeof(f->err)), -1);
	snprintf(expected, sizeof(expected), "%s: cannot open: No such file or directory", f->path);
	assert_string_equal(f->err, expected);
}

static void test_error_leaves_earlier_values(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load_text(f, "ServerID a\nConcurrency 7\nStripToken maybe\n"
	                              "HeloName later\n"),
	                 -1);
	assert_string_equal(f->conf.server_id, "a");
	assert_int_equal(f->conf.concurrency, 7);
	assert_int_equal(f->conf.strip_token, 1);
	assert_string_equal(f->conf.helo_name, "localhost");
}

/* print_to_string - the output of conf_print */
static char *print_to_string(const struct conf *conf)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	assert_non_null(fp);
	conf_print(conf, fp);
	assert_int_equal(fclose(fp), 0);
	return text;
}

static void test_print_round_trip(void **state)
{
	struct fixture *f = *state;
	char *first;
	char *second;

	assert_int_equal(load_text(f, REQUIRED "BusyTimeout 1500ms\nConfirmTimeout 3600\n"
	                                       "MigrateFrom b a\nUMask 0\n"),
	                 0);
	first = print_to_string(&f->conf);
	assert_non_null(strstr(first, "ServerID mail1\n"));
	assert_non_null(strstr(first, "BusyTimeout 1500ms\n"));
	assert_non_null(strstr(first, "ConfirmTimeout 1h\n"));
	assert_non_null(strstr(first, "RetryDelay 5s\n"));
	assert_non_null(strstr(first, "UMask 000\n"));
	assert_non_null(strstr(first, "StripToken yes\n"));
	assert_non_null(strstr(first, "DuplicateAction discard\n"));
	assert_non_null(strstr(first, "MigrateFrom b a\n"));
	assert_non_null(strstr(first, "# UserID (not set)\n"));

	/* What conf_print writes loads back to the same configuration. */
	assert_int_equal(load_text(f, first), 0);
	second = print_to_string(&f->conf);
	assert_string_equal(first, second);
	free(first);
	free(second);
}

/* read_source_file - the text of a file under top_srcdir, or NULL without one */
static char *read_source_file(const char *name)
{
	const char *srcdir = getenv("top_srcdir");
	char path[1024];
	char *text;
	FILE *fp;
	long len;

	if (srcdir == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/%s", srcdir, name);
	fp = fopen(path, "r");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	rewind(fp);
	text = xcalloc(1, (size_t)len + 2);
	text[0] = '\n';
	assert_int_equal(fread(text + 1, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	return text;
}

/* has_default - whether conf_print wrote a value for the key named in name */
static int has_default(const char *printed, const char *name)
{
	char want[64];

	snprintf(want, sizeof(want), "\n%s ", name);
	return strstr(printed, want) != NULL || strncmp(printed, want + 1, strlen(want + 1)) == 0;
}

/*
 * The manual must describe every key, and the example file must show
 * every key at the start of a line, commented out or not.
 */
static void test_docs_name_every_key(void **state)
{
	struct conf defaults;
	char *printed;
	char *man;
	char *example;
	char *line;
	char *save = NULL;
	char want[256];
	char name[32];
	int keys = 0;

	man = read_source_file("man/mailonce.conf.5");
	example = read_source_file("conf/mailonce.conf");
	if (man == NULL || example == NULL)
		skip();

	conf_init(&defaults);
	printed = print_to_string(&defaults);
	for (line = strtok_r(printed, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		keys++;
		assert_int_equal(sscanf(line[0] == '#' ? line + 2 : line, "%31s", name), 1);

		snprintf(want, sizeof(want), "\n.B %s\n", name);
		if (strstr(man, want) == NULL)
			fail_msg("man/mailonce.conf.5 has no \".B %s\" entry", name);

		snprintf(want, sizeof(want), "\n#%s ", name);
		if (strstr(example, want) == NULL && strstr(example, want + 2) == NULL)
			fail_msg("conf/mailonce.conf does not show %s", name);
	}
	assert_int_equal(keys, 24);
	free(printed);
	free(man);
	free(example);
	conf_free(&defaults);
}

/*
 * Each "#Key value" line of the example file shows the key's default:
 * uncommenting all of them must leave the configuration the example
 * file sets as it was.
 */
static void test_example_shows_defaults(void **state)
{
	struct fixture *f = *state;
	struct buf text = BUF_INIT;
	char *example;
	char *printed;
	char *expected;
	char *line;
	char *save = NULL;
	char name[32];

	example = read_source_file("conf/mailonce.conf");
	if (example == NULL)
		skip();
	assert_int_equal(load_text(f, example), 0);
	expected = print_to_string(&f->conf);

	for (line = strtok_r(example, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' && sscanf(line + 1, "%31s", name) == 1 &&
		    has_default(expected, name))
			line++;
		buf_printf(&text, "%s\n", line);
	}
	assert_int_equal(load_text(f, text.data), 0);
	printed = print_to_string(&f->conf);
	assert_string_equal(printed, expected);

	free(printed);
	free(expected);
	free(example);
	buf_free(&text);
}

static void test_example_file_loads(void **state)
{
	struct fixture *f = *state;
	const char *srcdir = getenv("top_srcdir");
	char path[1024];

	if (srcdir == NULL)
		skip();
	snprintf(path, sizeof(path), "%s/conf/mailonce.conf", srcdir);
	assert_int_equal(conf_load(&f->conf, path, f->err, sizeof(f->err)), 0);
	assert_string_equal(f->conf.server_id, "mail1");
	assert_string_equal(f->conf.database, "/var/lib/mailonce/ledger.db");
	assert_string_equal(f->conf.key_file, "/etc/mailonce/keys");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_required_only, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_every_key_set, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_bool, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bool_spellings, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_duplicate_key, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_missing_required, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_missing_value, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_comments_and_blanks, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_keys_any_case, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_migrate_from_accumulates, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_migrate_from_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_durations, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_duration_keys, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_int_limits, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_action_subsets, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_umask, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_server_id, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_socket, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_submit_to, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_unreadable_file, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_error_leaves_earlier_values, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_print_round_trip, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_docs_name_every_key, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_example_file_loads, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_example_shows_defaults, setup, teardown),
	};

	return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
