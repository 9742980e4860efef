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
tests_unit_ledger_test_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_ledger_test_LDADD = $(UNIT_TEST_LIBS)
endif
