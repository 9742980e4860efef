/*
 * milter_decide_test - the table from a verdict and the *Action keys to the
 * milter's status, SMTP reply, header changes and log line.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "milter_decide.h"

static const struct milter_subject subject = {
        .queue_id = "4XyZ1k2Lmnz7abc",
        .rcpt = "alice@example.org",
        .nrcpt = 1,
        .mailing = "spring-2026",
        .seq = 42,
};

/* default_rules - the defaults of mailonce.conf */
static struct milter_rules default_rules(void)
{
	struct milter_rules rules = {
	        .strip_token = 1,
	        .duplicate_action = ACTION_DISCARD,
	        .bad_token_action = ACTION_REJECT,
	        .ledger_error_action = ACTION_TEMPFAIL,
	        .conflict_action = ACTION_REJECT,
	        .confirm_commits = 1,
	        .confirm_timeout = 600,
	};
	return rules;
}

static struct ledger_handoff_result result_of(enum handoff_decision decision)
{
	struct ledger_handoff_result res;

	memset(&res, 0, sizeof(res));
	res.decision = decision;
	res.prior = RCPT_ACCEPTED;
	strcpy(res.first_queue_id, "4Xfirst0000001");
	return res;
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* assert_no_changes - no header change and no quarantine */
static void assert_no_changes(const struct milter_outcome *out)
{
	assert_int_equal(out->strip, 0);
	assert_int_equal(out->hold, 0);
	assert_string_equal(out->tag, "");
}

static void bad_token_reject(void **state)
{
	struct milter_rules rules = default_rules();
	struct milter_outcome out;

	milter_decide_bad_token(&rules, &subject, "MAC mismatch", &out);
	assert_int_equal(out.status, MILTER_REJECT);
	assert_string_equal(out.rcode, "550");
	assert_string_equal(out.xcode, "5.7.1");
	assert_contains(out.reply, "MAC mismatch");
	assert_no_changes(&out);
	assert_string_equal(out.log, "4XyZ1k2Lmnz7abc: rcpt=<alice@example.org> action=reject "
	                             "reason=\"MAC mismatch\"");
}

static void bad_token_tempfail(void **state)
{
	struct milter_rules rules = default_rules();
	struct milter_outcome out;

	rules.bad_token_action = ACTION_TEMPFAIL;
	milter_decide_bad_token(&rules, &subject, "unknown key id", &out);
	assert_int_equal(out.status, MILTER_TEMPFAIL);
	assert_string_equal(out.rcode, "451");
	assert_string_equal(out.xcode, "4.7.1");
	assert_contains(out.reply, "unknown key id");
	assert_contains(out.log, " action=tempfail reason=\"unknown key id\"");
}

static void bad_token_accept_strips(void **state)
{
	struct milter_rules rules = default_rules();
	struct milter_outcome out;
	struct milter_subject two = subject;

	two.nrcpt = 2;
	rules.bad_token_action = ACTION_ACCEPT;
	milter_decide_bad_token(&rules, &two, "several envelope recipients", &out);
	assert_int_equal(out.status, MILTER_CONTINUE);
	assert_string_equal(out.rcode, "");
	assert_int_equal(out.strip, 1);
	assert_int_equal(out.hold, 0);
	assert_string_equal(out.log, "4XyZ1k2Lmnz7abc: rcpt=<alice@example.org> nrcpt=2 "
	                             "action=accept reason=\"several envelope recipients\"");
}

static void ledger_error_tempfail(void **state)
{
	struct milter_rules rules = default_rules();
	struct milter_outcome out;

	milter_decide_ledger_error(&rules, &subject, "database is locked", &out);
	assert_int_equal(out.status, MILTER_TEMPFAIL);
	assert_string_equal(out.rcode, "451");
	assert_string_equal(out.xcode, "4.3.0");
	assert_contains(out.reply, "ledger unavailable");
	assert_no_changes(&out);
	assert_string_equal(out.log, "4XyZ1k2Lmnz7abc: mailing=spring-2026 seq=42 "
	                             "rcpt=<alice@example.org> action=tempfail "
	                             "reason=\"ledger unavailable: database is locked\"");
}

static void ledger_error_reject(void **state)
{
	struct milter_rules rules = default_rules();
	struct milter_outcome out;

	rules.ledger_error_action = ACTION_REJECT;
	milter_decide_ledger_error(&rules, &subject, "disk I/O error", &out);
	assert_int_equal(out.status, MILTER_REJECT);
	assert_string_equal(out.rcode, "550");
	assert_string_equal(out.xcode, "5.3.0");
	assert_contains(out.log, " action=reject reason=\"ledger unavailable: disk I/O error\"");
}

static void ledger_error_never_accepts(void **state)
{
	struct milter_rules rules = default_rules();
	struct milter_outcome out;

	rules.ledger_error_action = ACTION_ACCEPT;
	milter_decide_ledger_error(&rules, &subject, "disk full", &out);
	assert_int_equal(out.status, MILTER_TEMPFAIL);
	assert_string_equal(out.rcode, "451");
}

static void accept_strips_token(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_ACCEPT);
	struct milter_outcome out;

	res.prior = RCPT_PENDING;
	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_CONTINUE);
	assert_int_equal(out.strip, 1);
	assert_int_equal(out.hold, 0);
	assert_string_equal(out.rcode, "");
	assert_string_equal(out.tag, "");
	assert_string_equal(out.log, "4XyZ1k2Lmnz7abc: mailing=spring-2026 seq=42 "
	                             "rcpt=<alice@example.org> action=accept reason=new");
}

static void accept_keeps_token(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_ACCEPT);
	struct milter_outcome out;

	rules.strip_token = 0;
	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_CONTINUE);
	assert_int_equal(out.strip, 0);
	assert_contains(out.log, " action=accept reason=retry");
}

static void duplicate_discard(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_DUPLICATE);
	struct milter_outcome out;

	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_DISCARD);
	assert_string_equal(out.rcode, "");
	assert_no_changes(&out);
	assert_string_equal(out.log, "4XyZ1k2Lmnz7abc: mailing=spring-2026 seq=42 "
	                             "rcpt=<alice@example.org> action=discard reason=duplicate "
	                             "first=4Xfirst0000001");
}

static void duplicate_reject(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_DUPLICATE);
	struct milter_outcome out;

	rules.duplicate_action = ACTION_REJECT;
	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_REJECT);
	assert_string_equal(out.rcode, "550");
	assert_string_equal(out.xcode, "5.7.0");
	assert_string_equal(out.reply, "duplicate of mailing spring-2026 seq 42 first accepted "
	                               "as queue id 4Xfirst0000001");
	assert_contains(out.log, " action=reject reason=duplicate first=4Xfirst0000001");
}

static void duplicate_hold(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_DUPLICATE);
	struct milter_outcome out;

	rules.duplicate_action = ACTION_HOLD;
	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_CONTINUE);
	assert_int_equal(out.hold, 1);
	assert_int_equal(out.strip, 1);
	assert_string_equal(out.rcode, "");
	assert_contains(out.quarantine, "duplicate of mailing spring-2026 seq 42");
	assert_contains(out.log, " action=hold reason=duplicate first=4Xfirst0000001");
}

static void duplicate_tag(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_DUPLICATE);
	struct milter_outcome out;

	rules.duplicate_action = ACTION_TAG;
	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_CONTINUE);
	assert_int_equal(out.hold, 0);
	assert_int_equal(out.strip, 1);
	assert_string_equal(out.tag, "mailing=spring-2026 seq=42 first=4Xfirst0000001");
	assert_contains(out.log, " action=tag reason=duplicate");
}

static void duplicate_never_accepts(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_DUPLICATE);
	struct milter_outcome out;

	rules.duplicate_action = ACTION_ACCEPT;
	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_TEMPFAIL);
	assert_string_equal(out.rcode, "451");
}

static void conflict_discard(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_CONFLICT);
	struct milter_outcome out;

	rules.conflict_action = ACTION_DISCARD;
	res.detail = "body digest differs";
	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_DISCARD);
	assert_no_changes(&out);
	assert_contains(out.log, " action=discard reason=conflict first=4Xfirst0000001 "
	                         "detail=\"body digest differs\"");
}

static void conflict_reject(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_CONFLICT);
	struct milter_outcome out;

	res.detail = "recipient differs";
	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_REJECT);
	assert_string_equal(out.rcode, "550");
	assert_string_equal(out.xcode, "5.7.0");
	assert_contains(out.reply, "conflicts with queue id 4Xfirst0000001: recipient differs");
}

static void conflict_hold(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_CONFLICT);
	struct milter_outcome out;

	rules.conflict_action = ACTION_HOLD;
	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_CONTINUE);
	assert_int_equal(out.hold, 1);
	assert_contains(out.quarantine, "conflicts with queue id 4Xfirst0000001");
	assert_contains(out.log, " action=hold reason=conflict");
}

static void conflict_tempfail(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_CONFLICT);
	struct milter_outcome out;

	rules.conflict_action = ACTION_TEMPFAIL;
	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_TEMPFAIL);
	assert_string_equal(out.rcode, "451");
	assert_string_equal(out.xcode, "4.7.0");
	assert_contains(out.log, " action=tempfail reason=conflict");
}

static void confirming_tempfail(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_CONFIRMING);
	struct milter_outcome out;

	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_TEMPFAIL);
	assert_string_equal(out.rcode, "451");
	assert_string_equal(out.xcode, "4.7.1");
	assert_string_equal(out.reply, "earlier attempt of mailing spring-2026 seq 42 (queue id "
	                               "4Xfirst0000001) is being confirmed; try again later");
	assert_contains(out.log, " action=tempfail reason=confirming first=4Xfirst0000001");
}

static void paused_tempfail(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_PAUSED);
	struct milter_outcome out;

	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_TEMPFAIL);
	assert_string_equal(out.rcode, "451");
	assert_string_equal(out.xcode, "4.7.1");
	assert_contains(out.reply, "is paused");
	assert_contains(out.log, " action=tempfail reason=paused");
}

static void cancelled_reject(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_CANCELLED);
	struct milter_outcome out;

	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_REJECT);
	assert_string_equal(out.rcode, "550");
	assert_string_equal(out.xcode, "5.7.1");
	assert_string_equal(out.reply, "mailing spring-2026 is cancelled");
	assert_contains(out.log, " action=reject reason=cancelled");
}

static void closed_reject(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_CLOSED);
	struct milter_outcome out;

	milter_decide_handoff(&rules, &subject, &res, &out);
	assert_int_equal(out.status, MILTER_REJECT);
	assert_string_equal(out.rcode, "550");
	assert_string_equal(out.xcode, "5.7.1");
	assert_contains(out.reply, "mailing spring-2026 seq 42 is closed");
	assert_contains(out.log, " action=reject reason=closed");
}

static void hostile_rcpt_escaped(void **state)
{
	struct milter_rules rules = default_rules();
	struct ledger_handoff_result res = result_of(HANDOFF_DUPLICATE);
	struct milter_subject hostile = subject;
	struct milter_outcome out;

	hostile.rcpt = "eve@example.org\r\nQ: action=accept";
	hostile.queue_id = "Q\n1";
	milter_decide_handoff(&rules, &hostile, &res, &out);
	assert_null(strchr(out.log, '\r'));
	assert_null(strchr(out.log, '\n'));
	assert_string_equal(out.log, "Q\\x0A1: mailing=spring-2026 seq=42 "
	                             "rcpt=<eve@example.org\\x0D\\x0AQ: action=accept> "
	                             "action=discard reason=duplicate first=4Xfirst0000001");
}

static void reply_text_cleaned(void **state)
{
	struct milter_rules rules = default_rules();
	struct milter_outcome out;

	milter_decide_bad_token(&rules, &subject, "100% bad\r\n", &out);
	assert_string_equal(out.reply, "invalid Mailonce-Token header: 100? bad??");
	assert_contains(out.log, "reason=\"100% bad\\x0D\\x0A\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(bad_token_reject),
	        cmocka_unit_test(bad_token_tempfail),
	        cmocka_unit_test(bad_token_accept_strips),
	        cmocka_unit_test(ledger_error_tempfail),
	        cmocka_unit_test(ledger_error_reject),
	        cmocka_unit_test(ledger_error_never_accepts),
	        cmocka_unit_test(accept_strips_token),
	        cmocka_unit_test(accept_keeps_token),
	        cmocka_unit_test(duplicate_discard),
	        cmocka_unit_test(duplicate_reject),
	        cmocka_unit_test(duplicate_hold),
	        cmocka_unit_test(duplicate_tag),
	        cmocka_unit_test(duplicate_never_accepts),
	        cmocka_unit_test(conflict_discard),
	        cmocka_unit_test(conflict_reject),
	        cmocka_unit_test(conflict_hold),
	        cmocka_unit_test(conflict_tempfail),
	        cmocka_unit_test(confirming_tempfail),
	        cmocka_unit_test(paused_tempfail),
	        cmocka_unit_test(cancelled_reject),
	        cmocka_unit_test(closed_reject),
	        cmocka_unit_test(hostile_rcpt_escaped),
	        cmocka_unit_test(reply_text_cleaned),
	};

	return cmocka_run_group_tests_name("milter_decide", tests, NULL, NULL);
}
