#!/bin/sh
# check.sh - the test command: install what is missing, build, run every
# unit and end-to-end test with "make check", and print one count line
# "N passed, N failed, N skipped".
#
# The end-to-end tests start a private Postfix on 127.0.0.1 and need root;
# run as another user they are skipped and counted as skipped.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -eq 0 ]; then
	"$top/tests/install-deps.sh" || exit 1
fi
"$top/tests/build.sh" || exit 1

cd "$top/build"
make check -j1
status=$?

# Automake's summary in test-suite.log counts every TAP test case.
summary() {
	sed -n "s/^# $1: *\([0-9][0-9]*\)\$/\1/p" test-suite.log | head -n 1
}
pass=$(summary PASS) xfail=$(summary XFAIL) fail=$(summary FAIL)
xpass=$(summary XPASS) error=$(summary ERROR) skip=$(summary SKIP)
passed=$((${pass:-0} + ${xfail:-0}))
failed=$((${fail:-0} + ${xpass:-0} + ${error:-0}))
if [ ! -f test-suite.log ]; then
	failed=1
fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	failed=1
fi
echo "${passed} passed, ${failed} failed, ${skip:-0} skipped"
[ "$failed" -eq 0 ]
