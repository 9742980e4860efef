/*
 * handoff_test - unit tests for lib/handoff.c: each rule of the milter's
 * decision on a tracked message, the order in which the rules apply, the
 * ConfirmTimeout boundary, and the names of decisions and commit states.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "handoff.h"
#include "ledger.h"

#define DIGEST_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DIGEST_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* facts_base - a sending mailing, a pending recipient, one same handoff */
static struct handoff_facts facts_base(void)
{
	struct handoff_facts f;

	memset(&f, 0, sizeof(f));
	f.state = MAILING_SENDING;
	f.status = RCPT_PENDING;
	f.address = "ann@example.org";
	f.rcpt = "ann@example.org";
	f.accepted_digest = NULL;
	f.digest = DIGEST_A;
	f.confirm_commits = 0;
	f.commit = COMMIT_UNKNOWN;
	f.accepted_at = 0;
	f.log_time = 0;
	f.confirm_timeout = 600;
	return f;
}

/* facts_accepted - the recipient accepted at time 1000 with DIGEST_A */
static struct handoff_facts facts_accepted(void)
{
	struct handoff_facts f = facts_base();

	f.status = RCPT_ACCEPTED;
	f.accepted_digest = DIGEST_A;
	f.accepted_at = 1000;
	f.confirm_commits = 1;
	return f;
}

static enum handoff_decision decide(const struct handoff_facts *f, int *anew)
{
	struct handoff_verdict v;

	memset(&v, 0xff, sizeof(v));
	handoff_decide(f, &v);
	assert_non_null(v.detail);
	if (anew != NULL)
		*anew = v.accept_anew;
	return v.decision;
}

static void test_pending_accepted(void **state)
{
	struct handoff_facts f = facts_base();
	int anew;

	assert_int_equal(decide(&f, &anew), HANDOFF_ACCEPT);
	assert_int_equal(anew, 0);
}

static void test_paused_before_all(void **state)
{
	struct handoff_facts f = facts_base();

	f.state = MAILING_PAUSED;
	assert_int_equal(decide(&f, NULL), HANDOFF_PAUSED);
	f.status = RCPT_SKIPPED;
	assert_int_equal(decide(&f, NULL), HANDOFF_PAUSED);
	f.status = RCPT_QUEUED;
	assert_int_equal(decide(&f, NULL), HANDOFF_PAUSED);
}

static void test_cancelled_before_all(void **state)
{
	struct handoff_facts f = facts_base();

	f.state = MAILING_CANCELLED;
	assert_int_equal(decide(&f, NULL), HANDOFF_CANCELLED);
	f.rcpt = "bob@example.org";
	assert_int_equal(decide(&f, NULL), HANDOFF_CANCELLED);
}

static void test_skipped_and_error_closed(void **state)
{
	struct handoff_facts f = facts_base();

	f.status = RCPT_SKIPPED;
	assert_int_equal(decide(&f, NULL), HANDOFF_CLOSED);
	f.status = RCPT_ERROR;
	assert_int_equal(decide(&f, NULL), HANDOFF_CLOSED);

	/* Closed wins over a recipient mismatch. */
	f.rcpt = "bob@example.org";
	assert_int_equal(decide(&f, NULL), HANDOFF_CLOSED);
}

static void test_recipient_differs_conflict(void **state)
{
	struct handoff_facts f = facts_base();
	struct handoff_verdict v;

	f.rcpt = "bob@example.org";
	handoff_decide(&f, &v);
	assert_int_equal(v.decision, HANDOFF_CONFLICT);
	assert_string_equal(v.detail, "recipient differs");

	f.status = RCPT_QUEUED;
	handoff_decide(&f, &v);
	assert_int_equal(v.decision, HANDOFF_CONFLICT);
	assert_string_equal(v.detail, "recipient differs");
}

static void test_recipient_case_ignored(void **state)
{
	struct handoff_facts f = facts_base();

	f.address = "Ann@Example.ORG";
	assert_int_equal(decide(&f, NULL), HANDOFF_ACCEPT);
}

static void test_digest_differs_conflict(void **state)
{
	static const enum rcpt_status later[] = {RCPT_ACCEPTED, RCPT_QUEUED, RCPT_DELIVERED,
	                                         RCPT_BOUNCED, RCPT_DEFERRED};
	struct handoff_facts f = facts_accepted();
	struct handoff_verdict v;

	f.digest = DIGEST_B;
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		f.status = later[i];
		handoff_decide(&f, &v);
		assert_int_equal(v.decision, HANDOFF_CONFLICT);
		assert_string_equal(v.detail, "body digest differs");
	}
}

static void test_digest_case_ignored(void **state)
{
	struct handoff_facts f = facts_accepted();

	f.status = RCPT_QUEUED;
	f.digest = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	assert_int_equal(decide(&f, NULL), HANDOFF_DUPLICATE);
}

static void test_queued_or_later_duplicate(void **state)
{
	static const enum rcpt_status later[] = {RCPT_QUEUED, RCPT_DELIVERED, RCPT_BOUNCED,
	                                         RCPT_DEFERRED};
	struct handoff_facts f = facts_accepted();

	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		f.status = later[i];
		assert_int_equal(decide(&f, NULL), HANDOFF_DUPLICATE);
	}
}

static void test_accepted_unconfirmed_duplicate(void **state)
{
	struct handoff_facts f = facts_accepted();

	f.confirm_commits = 0;
	f.commit = COMMIT_NOT_COMMITTED;
	f.log_time = 1000000;
	assert_int_equal(decide(&f, NULL), HANDOFF_DUPLICATE);
}

static void test_accepted_committed_duplicate(void **state)
{
	struct handoff_facts f = facts_accepted();

	f.commit = COMMIT_COMMITTED;
	f.log_time = 1000000;
	assert_int_equal(decide(&f, NULL), HANDOFF_DUPLICATE);
}

static void test_accepted_not_committed_anew(void **state)
{
	struct handoff_facts f = facts_accepted();
	int anew;

	f.commit = COMMIT_NOT_COMMITTED;
	assert_int_equal(decide(&f, &anew), HANDOFF_ACCEPT);
	assert_int_equal(anew, 1);
}

static void test_accepted_unknown_timeout(void **state)
{
	struct handoff_facts f = facts_accepted();
	int anew;

	/* The log read to exactly accepted_at + ConfirmTimeout is enough. */
	f.log_time = 1000 + 600;
	assert_int_equal(decide(&f, &anew), HANDOFF_ACCEPT);
	assert_int_equal(anew, 1);

	f.log_time = 1000 + 599;
	assert_int_equal(decide(&f, &anew), HANDOFF_CONFIRMING);
	assert_int_equal(anew, 0);
}

static void test_accepted_unknown_no_log(void **state)
{
	struct handoff_facts f = facts_accepted();

	f.log_time = 0;
	f.accepted_at = 0;
	f.confirm_timeout = 0;
	assert_int_equal(decide(&f, NULL), HANDOFF_CONFIRMING);
}

static void test_draft_and_complete(void **state)
{
	struct handoff_facts f = facts_base();

	f.state = MAILING_DRAFT;
	assert_int_equal(decide(&f, NULL), HANDOFF_ACCEPT);
	f.state = MAILING_COMPLETE;
	f.status = RCPT_DELIVERED;
	f.accepted_digest = DIGEST_A;
	assert_int_equal(decide(&f, NULL), HANDOFF_DUPLICATE);
}

static void test_names_round_trip(void **state)
{
	enum handoff_decision d;
	enum handoff_commit c;
	enum rcpt_status s;
	enum mailing_state m;

	for (int i = HANDOFF_ACCEPT; i <= HANDOFF_CLOSED; i++) {
		assert_int_equal(handoff_decision_parse(handoff_decision_name(i), &d), 0);
		assert_int_equal(d, i);
	}
	for (int i = COMMIT_UNKNOWN; i <= COMMIT_NOT_COMMITTED; i++) {
		assert_int_equal(handoff_commit_parse(handoff_commit_name(i), &c), 0);
		assert_int_equal(c, i);
	}
	for (int i = 0; i < RCPT_STATUS_COUNT; i++) {
		assert_int_equal(rcpt_status_parse(rcpt_status_name(i), &s), 0);
		assert_int_equal(s, i);
	}
	for (int i = MAILING_DRAFT; i <= MAILING_CANCELLED; i++) {
		assert_int_equal(mailing_state_parse(mailing_state_name(i), &m), 0);
		assert_int_equal(m, i);
	}
	assert_string_equal(handoff_decision_name(HANDOFF_CONFIRMING), "confirming");
	assert_string_equal(ledger_rc_name(LEDGER_BUSY), "busy");
	assert_int_equal(rcpt_status_parse("sent", &s), -1);
	assert_int_equal(handoff_commit_parse("Committed", &c), -1);
	assert_string_equal(rcpt_status_name((enum rcpt_status)99), "invalid");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_pending_accepted),
	        cmocka_unit_test(test_paused_before_all),
	        cmocka_unit_test(test_cancelled_before_all),
	        cmocka_unit_test(test_skipped_and_error_closed),
	        cmocka_unit_test(test_recipient_differs_conflict),
	        cmocka_unit_test(test_recipient_case_ignored),
	        cmocka_unit_test(test_digest_differs_conflict),
	        cmocka_unit_test(test_digest_case_ignored),
	        cmocka_unit_test(test_queued_or_later_duplicate),
	        cmocka_unit_test(test_accepted_unconfirmed_duplicate),
	        cmocka_unit_test(test_accepted_committed_duplicate),
	        cmocka_unit_test(test_accepted_not_committed_anew),
	        cmocka_unit_test(test_accepted_unknown_timeout),
	        cmocka_unit_test(test_accepted_unknown_no_log),
	        cmocka_unit_test(test_draft_and_complete),
	        cmocka_unit_test(test_names_round_trip),
	};

	return cmocka_run_group_tests_name("handoff", tests, NULL, NULL);
}
