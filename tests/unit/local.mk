# tests/unit/ - cmocka unit tests, one TAP-speaking program per module.
if UNIT_TESTS
UNIT_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
UNIT_TEST_LIBS = $(MAILONCE_LIBS) $(CMOCKA_LIBS)

check_PROGRAMS += tests/unit/token_test tests/unit/conf_test tests/unit/ledger_test
TESTS += tests/unit/token_test tests/unit/conf_test tests/unit/ledger_test

tests_unit_token_test_SOURCES = tests/unit/token_test.c
tests_unit_token_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_token_test_LDADD = $(UNIT_TEST_LIBS)

tests_unit_conf_test_SOURCES = tests/unit/conf_test.c
tests_unit_conf_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_conf_test_LDADD = $(UNIT_TEST_LIBS)

tests_unit_ledger_test_SOURCES = tests/unit/ledger_test.c
tests_unit_ledger_test_CPPFLAGS = $(AM_CPPFLAGS) $(SQLITE_CFLAGS)
tests_unit_ledger_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_ledger_test_LDADD = $(UNIT_TEST_LIBS)

check_PROGRAMS += tests/unit/handoff_test
TESTS += tests/unit/handoff_test
tests_unit_handoff_test_SOURCES = tests/unit/handoff_test.c
tests_unit_handoff_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_handoff_test_LDADD = $(UNIT_TEST_LIBS)

check_PROGRAMS += tests/unit/smtp_test
TESTS += tests/unit/smtp_test
tests_unit_smtp_test_SOURCES = tests/unit/smtp_test.c
tests_unit_smtp_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_smtp_test_LDADD = $(UNIT_TEST_LIBS)

check_PROGRAMS += tests/unit/alloc_log_test
TESTS += tests/unit/alloc_log_test
tests_unit_alloc_log_test_SOURCES = tests/unit/alloc_log_test.c
tests_unit_alloc_log_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_alloc_log_test_LDADD = $(UNIT_TEST_LIBS)

check_PROGRAMS += tests/unit/milter_decide_test
TESTS += tests/unit/milter_decide_test
tests_unit_milter_decide_test_SOURCES = tests/unit/milter_decide_test.c \
	plugin/milter_decide.c plugin/milter_decide.h
tests_unit_milter_decide_test_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugin
tests_unit_milter_decide_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_milter_decide_test_LDADD = $(UNIT_TEST_LIBS)

check_PROGRAMS += tests/unit/maillog_test tests/unit/follow_test
TESTS += tests/unit/maillog_test tests/unit/follow_test

tests_unit_maillog_test_SOURCES = tests/unit/maillog_test.c
tests_unit_maillog_test_CPPFLAGS = $(AM_CPPFLAGS) -DTEST_DATA_DIR='"$(top_srcdir)/tests/data"'
tests_unit_maillog_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_maillog_test_LDADD = $(UNIT_TEST_LIBS)

tests_unit_follow_test_SOURCES = tests/unit/follow_test.c
tests_unit_follow_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_follow_test_LDADD = $(UNIT_TEST_LIBS)

check_PROGRAMS += tests/unit/csv_test tests/unit/addr_test tests/unit/template_test
TESTS += tests/unit/csv_test tests/unit/addr_test tests/unit/template_test

tests_unit_csv_test_SOURCES = tests/unit/csv_test.c
tests_unit_csv_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_csv_test_LDADD = $(UNIT_TEST_LIBS)

tests_unit_addr_test_SOURCES = tests/unit/addr_test.c
tests_unit_addr_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_addr_test_LDADD = $(UNIT_TEST_LIBS)

tests_unit_template_test_SOURCES = tests/unit/template_test.c
tests_unit_template_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_template_test_LDADD = $(UNIT_TEST_LIBS)
endif

EXTRA_DIST += tests/data/postfix-3.7-short-ids.log tests/data/postfix-3.7-long-ids-expiry.log
EXTRA_DIST += tests/data/newsletter.eml tests/data/make-recipients.py
