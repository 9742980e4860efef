#!/bin/sh
# autogen.sh - create configure and the Makefile templates from a checkout.
set -e
cd "$(dirname "$0")"
mkdir -p build-aux m4
autoreconf -fi
# automake installs no TAP driver by itself; take the one it ships.
if [ ! -f build-aux/tap-driver.sh ]; then
	for d in /usr/share/automake-*; do
		if [ -f "$d/tap-driver.sh" ]; then
			cp "$d/tap-driver.sh" build-aux/tap-driver.sh
			break
		fi
	done
fi
test -f build-aux/tap-driver.sh || {
	echo "autogen.sh: tap-driver.sh not found: install the Debian package automake" >&2
	exit 1
}
