# tests/e2e/ - end-to-end tests against a private Postfix on loopback.
if E2E_TESTS
TESTS += tests/e2e/run.test
endif
EXTRA_DIST += tests/e2e/run.test
