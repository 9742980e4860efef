#!/bin/sh
# run-mailing.sh - the crash-and-restart demonstration: install what is
# missing, build mailonce, then run run-mailing.py (see that file).
#
# Run as root on Debian 12: sudo tests/demo/run-mailing.sh
# With MAILONCE_BUILDDIR set to an existing build directory, the install
# and build steps are skipped and that build is used.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "run-mailing.sh: run as root (Postfix needs it): sudo $0" >&2
	exit 1
fi

if [ -z "${MAILONCE_BUILDDIR:-}" ]; then
	echo "== installing the Debian packages that are missing"
	"$top/tests/install-deps.sh"
	echo "== building mailonce in $top/build"
	"$top/tests/build.sh"
	MAILONCE_BUILDDIR=$top/build
fi
export MAILONCE_BUILDDIR
PATH=$PATH:/usr/sbin
export PATH

exec /usr/bin/python3 "$top/tests/demo/run-mailing.py"
