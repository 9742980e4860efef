#!/bin/sh
# install-deps.sh - install what building and testing mailonce needs, from
# Debian's packages, without starting a system mail server.
#
# Postfix is preseeded with "No configuration": no /etc/postfix/main.cf is
# written and no system instance starts; the tests run private instances.
set -eu

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: run as root (apt-get needs it): sudo $0" >&2
	exit 1
fi

packages="build-essential autoconf automake pkg-config
	libmilter-dev libsqlite3-dev libssl-dev libcmocka-dev
	postfix miltertest python3 python3-pytest sqlite3 procps"

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -z "$missing" ]; then
	exit 0
fi

echo "install-deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
