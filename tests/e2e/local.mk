# tests/e2e/ - end-to-end tests against a private Postfix on loopback.
if E2E_TESTS
TESTS += tests/e2e/run.test
endif
EXTRA_DIST += tests/e2e/run.test \
	tests/README \
	tests/e2e/mailonce_harness.py \
	tests/e2e/conftest.py \
	tests/e2e/tap_plugin.py \
	tests/e2e/test_harness.py \
	tests/e2e/test_milter.py \
	tests/e2e/test_milter_settings.py \
	tests/e2e/test_cli.py
CLEANFILES += tests/e2e/pytest.log

# The second milter of test_confirm.py: 451 to the first attempt of each seq.
if E2E_TESTS
check_PROGRAMS += tests/e2e/tempfail_milter
endif
tests_e2e_tempfail_milter_SOURCES = tests/e2e/tempfail_milter.c
tests_e2e_tempfail_milter_LDADD = $(MILTER_LIBS)
EXTRA_DIST += tests/e2e/test_confirm.py

# Protocol-level test of mailonce-milter with miltertest (run.sh BUILDDIR).
if E2E_TESTS
TESTS += tests/e2e/miltertest/run.sh
endif
EXTRA_DIST += tests/e2e/miltertest/run.sh tests/e2e/miltertest/common.lua \
	tests/e2e/miltertest/milter.lua tests/e2e/miltertest/duplicate.lua \
	tests/e2e/miltertest/locked.lua

# Crash safety of mailoncectl send and restart, and the demonstration script.
EXTRA_DIST += tests/e2e/test_send_restart.py tests/e2e/mailing_helpers.py \
	tests/demo/run-mailing.sh tests/demo/run-mailing.py
