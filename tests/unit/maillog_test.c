/*
 * maillog_test - unit tests of the Postfix log line parser.
 *
 * Most lines come from tests/data/postfix-3.7-*.log, written by Postfix
 * 3.7.11 with maillog_file: short-ids.log with the default syslog_name
 * and short queue ids, long-ids-expiry.log with syslog_name postfix-test
 * and enable_long_queue_ids, where deferred messages also expired. The
 * expected counts of each event were taken from those files with grep,
 * independently of the parser. Lines in other timestamp formats are the
 * same lines with the timestamp rewritten.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "maillog.h"

#ifndef TEST_DATA_DIR
#define TEST_DATA_DIR "tests/data"
#endif

/* 2026-12-04 21:00:00 UTC, an hour after the captured lines. */
#define NOW ((time_t)1796418000)

static time_t utc(int year, int mon, int day, int hour, int min, int sec)
{
	struct tm tm = {0};

	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	return timegm(&tm);
}

static enum maillog_event parse(const char *line, struct maillog_record *rec)
{
	return maillog_parse(line, strlen(line), NOW, rec);
}

static int setup_utc(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(NOW, utc(2026, 12, 4, 21, 0, 0));
	return 0;
}

struct file_counts {
	const char *name;
	int lines;
	int count[MAILLOG_DEFERRED + 1];
};

/* count_file - parse every line of a data file and count the events. */
static void count_file(struct file_counts *fc)
{
	char path[512], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR, fc->name);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while ((len = getline(&line, &cap, fp)) > 0) {
		struct maillog_record rec;

		fc->count[maillog_parse(line, (size_t)len, NOW, &rec)]++;
		fc->lines++;

		/* Every line of these files is a Postfix line of today. */
		assert_true(rec.time >= utc(2026, 12, 4, 20, 0, 0));
		assert_true(rec.time <= utc(2026, 12, 4, 20, 10, 0));
		assert_true(strncmp(rec.program, "postfix", 7) == 0);
		assert_true(rec.pid > 0);
		if (rec.event != MAILLOG_NONE)
			assert_true(strlen(rec.queue_id) >= 10);
	}
	free(line);
	fclose(fp);
}

static void file_short_ids_counts(void **state)
{
	struct file_counts fc = {"postfix-3.7-short-ids.log", 0, {0}};

	(void)state;
	count_file(&fc);
	assert_int_equal(fc.lines, 81);
	assert_int_equal(fc.count[MAILLOG_COMMITTED], 8);
	assert_int_equal(fc.count[MAILLOG_NOT_COMMITTED], 5);
	assert_int_equal(fc.count[MAILLOG_DELIVERED], 1);
	assert_int_equal(fc.count[MAILLOG_BOUNCED], 2);
	assert_int_equal(fc.count[MAILLOG_DEFERRED], 5);
}

static void file_long_ids_counts(void **state)
{
	struct file_counts fc = {"postfix-3.7-long-ids-expiry.log", 0, {0}};

	(void)state;
	count_file(&fc);
	assert_int_equal(fc.lines, 151);
	assert_int_equal(fc.count[MAILLOG_COMMITTED], 36);
	assert_int_equal(fc.count[MAILLOG_NOT_COMMITTED], 3);
	assert_int_equal(fc.count[MAILLOG_DELIVERED], 7);
	assert_int_equal(fc.count[MAILLOG_BOUNCED], 4);
	assert_int_equal(fc.count[MAILLOG_DEFERRED], 29);
}

static void qmgr_committed_line(void **state)
{
	struct maillog_record rec;

	(void)state;
	assert_int_equal(parse("Dec 04 20:05:02 mx postfix/qmgr[9918]: 466ADA723D9: "
	                       "from=<sender@example.test>, size=360, nrcpt=1 (queue active)",
	                       &rec),
	                 MAILLOG_COMMITTED);
	assert_int_equal(rec.event, MAILLOG_COMMITTED);
	assert_string_equal(rec.queue_id, "466ADA723D9");
	assert_string_equal(rec.program, "postfix/qmgr");
	assert_int_equal(rec.pid, 9918);
	assert_int_equal(rec.time, utc(2026, 12, 4, 20, 5, 2));
}

static void smtp_sent_line(void **state)
{
	struct maillog_record rec;

	(void)state;
	assert_int_equal(parse("Dec 04 20:05:02 mx postfix/smtp[10364]: 466ADA723D9: "
	                       "to=<a@example.com>, relay=127.0.0.1[127.0.0.1]:24536, "
	                       "delay=0.08, delays=0.06/0.02/0/0, dsn=2.0.0, status=sent "
	                       "(250 2.0.0 Ok)",
	                       &rec),
	                 MAILLOG_DELIVERED);
	assert_string_equal(rec.queue_id, "466ADA723D9");
	assert_string_equal(rec.program, "postfix/smtp");
	assert_string_equal(rec.dsn, "2.0.0");
	assert_string_equal(rec.text, "250 2.0.0 Ok");
}

static void smtp_bounced_line(void **state)
{
	struct maillog_record rec;

	(void)state;
	assert_int_equal(parse("Dec 04 20:05:33 mx postfix/smtp[10364]: B88F7A72341: "
	                       "to=<bounce@example.com>, relay=127.0.0.1[127.0.0.1]:24536, "
	                       "delay=0.06, delays=0.04/0/0/0.01, dsn=5.1.1, status=bounced "
	                       "(host 127.0.0.1[127.0.0.1] said: 550 5.1.1 Recipient unknown "
	                       "(in reply to RCPT TO command))",
	                       &rec),
	                 MAILLOG_BOUNCED);
	assert_string_equal(rec.queue_id, "B88F7A72341");
	assert_string_equal(rec.dsn, "5.1.1");
	assert_string_equal(rec.text, "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 Recipient "
	                              "unknown (in reply to RCPT TO command)");
}

static void smtp_deferred_line(void **state)
{
	struct maillog_record rec;

	(void)state;
	assert_int_equal(parse("Dec 04 20:05:41 mx postfix/smtp[10364]: ADDC9A724D1: "
	                       "to=<defer@example.com>, relay=none, delay=0.05, "
	                       "delays=0.05/0/0/0, dsn=4.4.1, status=deferred (connect to "
	                       "127.0.0.1[127.0.0.1]:24536: Connection refused)",
	                       &rec),
	                 MAILLOG_DEFERRED);
	assert_string_equal(rec.dsn, "4.4.1");
	assert_string_equal(rec.text, "connect to 127.0.0.1[127.0.0.1]:24536: Connection refused");
}

static void qmgr_expired_line(void **state)
{
	struct maillog_record rec;

	(void)state;
	assert_int_equal(parse("Dec 04 20:06:52 mx postfix-test/qmgr[13180]: ADDC9A724D1: "
	                       "from=<sender@example.test>, status=expired, returned to sender",
	                       &rec),
	                 MAILLOG_BOUNCED);
	assert_string_equal(rec.queue_id, "ADDC9A724D1");
	assert_string_equal(rec.program, "postfix-test/qmgr");
	assert_string_equal(rec.text, "expired, returned to sender");
	assert_int_equal(rec.time, utc(2026, 12, 4, 20, 6, 52));
}

static void cleanup_milter_reject_lines(void **state)
{
	struct maillog_record rec;

	(void)state;
	assert_int_equal(parse("Dec 04 20:05:08 mx postfix/cleanup[10350]: DE805A7209A: "
	                       "milter-reject: END-OF-MESSAGE from unknown[127.0.0.1]: 4.7.1 "
	                       "test tempfail; from=<sender@example.test> "
	                       "to=<tempfail@example.com> proto=ESMTP helo=<[127.0.0.1]>",
	                       &rec),
	                 MAILLOG_NOT_COMMITTED);
	assert_string_equal(rec.queue_id, "DE805A7209A");
	assert_string_equal(rec.text,
	                    "END-OF-MESSAGE from unknown[127.0.0.1]: 4.7.1 test tempfail");

	assert_int_equal(parse("Dec 04 20:05:08 mx postfix/cleanup[10350]: AD32AA7209A: "
	                       "milter-reject: END-OF-MESSAGE from unknown[127.0.0.1]: 5.7.1 "
	                       "test reject; from=<sender@example.test> "
	                       "to=<reject@example.com> proto=ESMTP helo=<[127.0.0.1]>",
	                       &rec),
	                 MAILLOG_NOT_COMMITTED);
	assert_string_equal(rec.queue_id, "AD32AA7209A");
	assert_string_equal(rec.text, "END-OF-MESSAGE from unknown[127.0.0.1]: 5.7.1 test reject");
}

static void cleanup_discard_and_hold(void **state)
{
	struct maillog_record rec;

	(void)state;
	assert_int_equal(parse("Dec 04 20:07:47 mx postfix-test/cleanup[13228]: "
	                       "4jh2bl0lgzz1bY75: milter-discard: END-OF-MESSAGE from "
	                       "unknown[127.0.0.1]: milter triggers DISCARD action; "
	                       "from=<sender@example.test> to=<longdisc@example.com> "
	                       "proto=ESMTP helo=<[127.0.0.1]>",
	                       &rec),
	                 MAILLOG_NOT_COMMITTED);
	assert_string_equal(rec.queue_id, "4jh2bl0lgzz1bY75");
	assert_string_equal(rec.program, "postfix-test/cleanup");

	/* A held message is committed to the hold queue. */
	assert_int_equal(parse("Dec 04 20:07:47 mx postfix-test/cleanup[13228]: "
	                       "4jh2bl1twGz1bY75: milter-hold: END-OF-MESSAGE from "
	                       "unknown[127.0.0.1]: milter triggers HOLD action; "
	                       "from=<sender@example.test> to=<longhold@example.com> "
	                       "proto=ESMTP helo=<[127.0.0.1]>",
	                       &rec),
	                 MAILLOG_NONE);
	assert_string_equal(rec.queue_id, "4jh2bl1twGz1bY75");
	assert_string_equal(rec.text, "");
}

static void long_id_and_syslog_name(void **state)
{
	struct maillog_record rec;

	(void)state;
	assert_int_equal(parse("Dec 04 20:07:54 mx postfix-test/smtp[14432]: 4jh2bk6gWyz1bY5R: "
	                       "to=<longok@example.com>, relay=127.0.0.1[127.0.0.1]:24536, "
	                       "delay=7.9, delays=7.9/0/0/0, dsn=2.0.0, status=sent "
	                       "(250 2.0.0 Ok)",
	                       &rec),
	                 MAILLOG_DELIVERED);
	assert_string_equal(rec.queue_id, "4jh2bk6gWyz1bY5R");
	assert_string_equal(rec.program, "postfix-test/smtp");

	/* A syslog_name with a slash, as in master.cf "-o syslog_name=postfix/submission". */
	assert_int_equal(parse("Dec 04 20:07:54 mx postfix/submission/qmgr[1]: "
	                       "4jh2bk6gWyz1bY5R: from=<a@b>, size=1, nrcpt=1 (queue active)",
	                       &rec),
	                 MAILLOG_COMMITTED);
	assert_string_equal(rec.program, "postfix/submission/qmgr");
}

static void lines_of_no_interest(void **state)
{
	static const char *const lines[] = {
	        "Dec 04 20:05:02 mx postfix/qmgr[9918]: 466ADA723D9: removed",
	        "Dec 04 20:05:02 mx postfix/smtpd[10347]: 466ADA723D9: client=unknown[127.0.0.1]",
	        "Dec 04 20:05:02 mx postfix/cleanup[10350]: 466ADA723D9: "
	        "message-id=<20261204200502.466ADA723D9@mx.test>",
	        "Dec 04 20:05:33 mx postfix/bounce[12299]: B88F7A72341: sender non-delivery "
	        "notification: C6211A72454",
	        "Dec 04 20:05:02 mx postfix/smtpd[10347]: error: open database /etc/aliases.db: "
	        "No such file or directory",
	        "Dec 04 20:05:02 mx postfix/smtpd[10347]: NOQUEUE: reject: RCPT from "
	        "unknown[127.0.0.1]: 554 5.7.1 <x@y>: Relay access denied; from=<a@b> "
	        "to=<x@y> proto=ESMTP helo=<h>",
	        /* smtpd refuses one RCPT; the message may still be committed for others. */
	        "Dec 04 20:05:02 mx postfix/smtpd[10347]: 466ADA723D9: reject: RCPT from "
	        "unknown[127.0.0.1]: 550 5.1.1 <x@y>: Recipient address rejected; "
	        "from=<a@b> to=<x@y> proto=ESMTP helo=<h>",
	        "Dec 04 20:05:02 mx sshd[411]: Accepted publickey for root from 127.0.0.1",
	        "Dec 04 20:05:02 mx kernel: [ 1.000000] Linux version 6.1",
	        "Dec 04 20:05:02 mx opendkim[77]: 466ADA723D9: to=<a@b>, dsn=2.0.0, "
	        "status=sent (250 2.0.0 Ok)",
	        "Dec 04 20:05:02 mx postfix/qmgr[9918]: warning: 466ADA723D9: from=<a@b>, "
	        "size=1, nrcpt=1 (queue active)",
	        "Dec 04 20:05:02 mx postfix/smtp[10364]: 466ADA723D9: to=<a@b>, dsn=2.0.0, "
	        "status=deliverable (250 2.0.0 Ok)",
	        "",
	        "garbage",
	        "Dec 04 20:05:02",
	        "Dec 04 20:05:02 mx",
	        "Xyz 04 20:05:02 mx postfix/qmgr[9918]: 466ADA723D9: from=<a@b>, size=1, "
	        "nrcpt=1 (queue active)",
	        "Dec 04 25:05:02 mx postfix/qmgr[9918]: 466ADA723D9: from=<a@b>, size=1, "
	        "nrcpt=1 (queue active)",
	};
	struct maillog_record rec;

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(parse(lines[i], &rec), MAILLOG_NONE);
		assert_int_equal(rec.event, MAILLOG_NONE);
	}

	/* A line of another program still has its time, for the saved position. */
	parse(lines[7], &rec);
	assert_int_equal(rec.time, utc(2026, 12, 4, 20, 5, 2));
	assert_string_equal(rec.queue_id, "");
	parse(lines[16], &rec);
	assert_int_equal(rec.time, -1);
}

static void truncated_lines(void **state)
{
	static const char *const lines[] = {
	        "Dec 04 20:05:02 mx postfix/qmgr[9918]: 466ADA723D9: "
	        "from=<sender@example.test>, size=360, nrcpt=1 (queue active)",
	        "Dec 04 20:05:02 mx postfix/smtp[10364]: 466ADA723D9: to=<a@example.com>, "
	        "relay=127.0.0.1[127.0.0.1]:24536, delay=0.08, delays=0.06/0.02/0/0, "
	        "dsn=2.0.0, status=sent (250 2.0.0 Ok)",
	        "Dec 04 20:05:41 mx postfix/smtp[10364]: ADDC9A724D1: to=<defer@example.com>, "
	        "relay=none, delay=0.05, delays=0.05/0/0/0, dsn=4.4.1, status=deferred "
	        "(connect to 127.0.0.1[127.0.0.1]:24536: Connection refused)",
	        "Dec 04 20:05:08 mx postfix/cleanup[10350]: DE805A7209A: milter-reject: "
	        "END-OF-MESSAGE from unknown[127.0.0.1]: 4.7.1 test tempfail; "
	        "from=<sender@example.test> to=<tempfail@example.com> proto=ESMTP "
	        "helo=<[127.0.0.1]>",
	};
	struct maillog_record full, cut;

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		size_t len = strlen(lines[i]);

		assert_int_not_equal(parse(lines[i], &full), MAILLOG_NONE);
		for (size_t n = 0; n < len; n++) {
			maillog_parse(lines[i], n, NOW, &cut);
			if (cut.event == MAILLOG_NONE)
				continue;

			/* A cut that still reads as a complete line must be the same event. */
			assert_int_equal(cut.event, full.event);
			assert_string_equal(cut.queue_id, full.queue_id);
			assert_true(lines[i][n - 1] == ')' || lines[i][n - 1] == '>');
		}

		/* Without its last character no line here is complete. */
		assert_int_equal(maillog_parse(lines[i], len - 1, NOW, &cut), MAILLOG_NONE);
	}
}

static void classic_syslog_time(void **state)
{
	struct maillog_record rec;
	const char *line = "Dec  4 20:05:02 mx postfix/qmgr[9918]: 466ADA723D9: "
	                   "from=<sender@example.test>, size=360, nrcpt=1 (queue active)";

	(void)state;
	assert_int_equal(parse(line, &rec), MAILLOG_COMMITTED);
	assert_int_equal(rec.time, utc(2026, 12, 4, 20, 5, 2));
}

static void year_change(void **state)
{
	const char *december = "Dec 31 23:59:59 mx postfix/qmgr[1]: 466ADA723D9: "
	                       "from=<a@b>, size=1, nrcpt=1 (queue active)";
	const char *january = "Jan  1 00:05:00 mx postfix/qmgr[1]: 466ADA723D9: "
	                      "from=<a@b>, size=1, nrcpt=1 (queue active)";
	time_t new_year = utc(2027, 1, 1, 0, 10, 0);
	struct maillog_record rec;

	(void)state;
	maillog_parse(december, strlen(december), new_year, &rec);
	assert_int_equal(rec.time, utc(2026, 12, 31, 23, 59, 59));
	maillog_parse(january, strlen(january), new_year, &rec);
	assert_int_equal(rec.time, utc(2027, 1, 1, 0, 5, 0));

	/* Late in December, a line of January 1st is from this year, not the next. */
	maillog_parse(january, strlen(january), utc(2026, 12, 31, 23, 0, 0), &rec);
	assert_int_equal(rec.time, utc(2026, 1, 1, 0, 5, 0));
}

static void rfc3339_time(void **state)
{
	struct maillog_record rec;

	(void)state;
	assert_int_equal(parse("2026-12-04T21:05:02.123456+01:00 mx postfix/qmgr[9918]: "
	                       "466ADA723D9: from=<a@b>, size=360, nrcpt=1 (queue active)",
	                       &rec),
	                 MAILLOG_COMMITTED);
	assert_int_equal(rec.time, utc(2026, 12, 4, 20, 5, 2));
	parse("2026-12-04T20:05:02Z mx postfix/qmgr[9918]: 466ADA723D9: removed", &rec);
	assert_int_equal(rec.time, utc(2026, 12, 4, 20, 5, 2));
	parse("2026-12-04T15:05:02-05:00 mx postfix/qmgr[9918]: 466ADA723D9: removed", &rec);
	assert_int_equal(rec.time, utc(2026, 12, 4, 20, 5, 2));
}

static void same_queue_id_twice(void **state)
{
	const char *first = "Dec 03 20:05:02 mx postfix/qmgr[1]: 466ADA723D9: "
	                    "from=<a@b>, size=1, nrcpt=1 (queue active)";
	const char *second = "Dec 04 20:05:02 mx postfix/smtp[2]: 466ADA723D9: to=<c@d>, "
	                     "relay=none, dsn=2.0.0, status=sent (250 2.0.0 Ok)";
	struct maillog_record a, b;

	(void)state;
	assert_int_equal(parse(first, &a), MAILLOG_COMMITTED);
	assert_int_equal(parse(second, &b), MAILLOG_DELIVERED);
	assert_string_equal(a.queue_id, b.queue_id);
	assert_int_equal(b.time - a.time, 86400);
}

static void quoted_address_not_fooled(void **state)
{
	struct maillog_record rec;

	(void)state;
	assert_int_equal(parse("Dec 04 20:05:41 mx postfix/smtp[1]: ADDC9A724D1: "
	                       "to=<\"x, dsn=2.0.0, status=sent (ok)\"@example.com>, "
	                       "relay=none, delay=0.05, dsn=4.4.1, status=deferred (connect "
	                       "failed)",
	                       &rec),
	                 MAILLOG_DEFERRED);
	assert_string_equal(rec.dsn, "4.4.1");
	assert_string_equal(rec.text, "connect failed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(file_short_ids_counts),
	        cmocka_unit_test(file_long_ids_counts),
	        cmocka_unit_test(qmgr_committed_line),
	        cmocka_unit_test(smtp_sent_line),
	        cmocka_unit_test(smtp_bounced_line),
	        cmocka_unit_test(smtp_deferred_line),
	        cmocka_unit_test(qmgr_expired_line),
	        cmocka_unit_test(cleanup_milter_reject_lines),
	        cmocka_unit_test(cleanup_discard_and_hold),
	        cmocka_unit_test(long_id_and_syslog_name),
	        cmocka_unit_test(lines_of_no_interest),
	        cmocka_unit_test(truncated_lines),
	        cmocka_unit_test(classic_syslog_time),
	        cmocka_unit_test(year_change),
	        cmocka_unit_test(rfc3339_time),
	        cmocka_unit_test(same_queue_id_twice),
	        cmocka_unit_test(quoted_address_not_fooled),
	};

	return cmocka_run_group_tests_name("maillog", tests, setup_utc, NULL);
}
