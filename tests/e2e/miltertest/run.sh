#!/bin/sh
# run.sh - protocol-level test of mailonce-milter with miltertest.
#
# Starts the milter in the foreground on a free loopback port, with a
# temporary ledger and a key made by "mailoncectl keygen". Then it drives
# the milter with milter.lua and checks the log lines. It reloads each
# DuplicateAction with SIGHUP and tries it with duplicate.lua, and checks
# a reload of a broken file, -n, and a clean stop on SIGTERM. Prints TAP.
#
# Usage: tests/e2e/miltertest/run.sh [BUILDDIR]   (default: the current
# directory). MAILONCECTL and MILTER override the programs' paths.
# Exit 0 when every check passed, 1 otherwise, 77 when miltertest or a
# program is missing.
set -u

here=$(cd "$(dirname "$0")" && pwd)
builddir=$(cd "${1:-.}" && pwd)
milter=${MILTER:-$builddir/plugin/mailonce-milter}
ctl=${MAILONCECTL:-$builddir/tools/mailoncectl}

for prog in "$milter" "$ctl"; do
	if [ ! -x "$prog" ]; then
		echo "1..0 # SKIP $prog is not built"
		exit 77
	fi
done
if ! command -v miltertest >/dev/null 2>&1; then
	echo "1..0 # SKIP miltertest is not installed (Debian package miltertest)"
	exit 77
fi

tmp=$(mktemp -d /tmp/mailonce-miltertest.XXXXXX)
milter_pid=
cleanup() {
	if [ -n "$milter_pid" ] && kill -0 "$milter_pid" 2>/dev/null; then
		kill -TERM "$milter_pid"
		wait "$milter_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

count=0
failed=0
ok() {
	count=$((count + 1))
	echo "ok $count - $1"
}
not_ok() {
	count=$((count + 1))
	failed=$((failed + 1))
	echo "not ok $count - $1"
}
check() {
	name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}
log_has() {
	grep -F -q -- "$1" "$tmp/milter.log"
}

# A free port on 127.0.0.1, picked by the kernel.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
socket="inet:$port@127.0.0.1"

cat >"$tmp/mailonce.conf" <<CONF
ServerID miltertest
Database $tmp/ledger.db
KeyFile $tmp/keys
Socket $socket
PidFile $tmp/milter.pid
BusyTimeout 200ms
# No Postfix log here, so no commit can be confirmed: retries are duplicates.
ConfirmCommits no
CONF

"$ctl" -c "$tmp/mailonce.conf" keygen -k test1 >/dev/null || { echo "Bail out! mailoncectl keygen failed"; exit 1; }
token() {
	"$ctl" -c "$tmp/mailonce.conf" token "$1" "$2" "$3" | sed 's/^Mailonce-Token: //'
}
token1=$(token m1 1 bob@example.org)
token2=$(token m1 2 carol@example.org)
token3=$(token m1 3 dave@example.org)
# The same token with the first four characters of the MAC replaced.
badtoken=$(printf '%s\n' "$token1" | sed 's/h=..../h=AAAA/')
[ "$badtoken" != "$token1" ] || badtoken=$(printf '%s\n' "$token1" | sed 's/h=..../h=BBBB/')

"$milter" -c "$tmp/mailonce.conf" -n >/dev/null
check "-n accepts a valid configuration" [ $? -eq 0 ]
cp "$tmp/mailonce.conf" "$tmp/bad.conf"
echo "NoSuchKey yes" >>"$tmp/bad.conf"
"$milter" -c "$tmp/bad.conf" -n 2>"$tmp/n.err"
check "-n exits 78 on an unknown key" [ $? -eq 78 ]
check "-n names the file and line" grep -q "bad.conf:[0-9]*: unknown key" "$tmp/n.err"

"$milter" -c "$tmp/mailonce.conf" -f 2>"$tmp/milter.log" &
milter_pid=$!

if miltertest -D "dir=$here" -D "socket=$socket" -D "token1=$token1" -D "token2=$token2" \
	-D "badtoken=$badtoken" -s "$here/milter.lua" >"$tmp/lua.out" 2>&1; then
	ok "milter.lua passed"
else
	not_ok "milter.lua passed"
	sed 's/^/# /' "$tmp/lua.out"
fi

check "PidFile holds the pid" [ "$(cat "$tmp/milter.pid" 2>/dev/null)" = "$milter_pid" ]
check "log: start line" log_has "starting: socket=$socket ledger=$tmp/ledger.db server_id=miltertest"
check "log: untracked message not logged" sh -c "! grep -q QPLAIN0001 '$tmp/milter.log'"
check "log: first handoff accepted" \
	log_has "QFIRST0001: mailing=m1 seq=1 rcpt=<bob@example.org> action=accept reason=new"
check "log: retry discarded" log_has \
	"QRETRY0002: mailing=m1 seq=1 rcpt=<bob@example.org> action=discard reason=duplicate first=QFIRST0001"
check "log: bad MAC rejected" \
	log_has 'QBADMAC003: rcpt=<bob@example.org> action=reject reason="MAC mismatch"'
check "log: two recipients rejected" log_has "QTWORCPT04: rcpt=<carol@example.org> nrcpt=2 action=reject"

# SIGHUP with a valid file: new rules, same process. Each DuplicateAction
# is then tried on another retry of the first message.
echo "DuplicateAction discard" >>"$tmp/mailonce.conf"
n=0
for action in reject hold tag; do
	n=$((n + 1))
	sed -i "s/^DuplicateAction .*/DuplicateAction $action/" "$tmp/mailonce.conf"
	kill -HUP "$milter_pid"
	sleep 1
	check "SIGHUP loads DuplicateAction $action" log_has "DuplicateAction=$action"
	check "SIGHUP keeps the milter running ($action)" kill -0 "$milter_pid"
	if miltertest -D "dir=$here" -D "socket=$socket" -D "token1=$token1" \
		-D "queue_id=QDUP${action}$n" -D "action=$action" \
		-s "$here/duplicate.lua" >"$tmp/lua.out" 2>&1; then
		ok "duplicate.lua $action passed"
	else
		not_ok "duplicate.lua $action passed"
		sed 's/^/# /' "$tmp/lua.out"
	fi
	check "log: duplicate $action" log_has \
		"QDUP${action}$n: mailing=m1 seq=1 rcpt=<bob@example.org> action=$action reason=duplicate"
done

# A ledger locked by another process past BusyTimeout: tempfail, nothing
# recorded, so the same message is accepted once the lock is gone.
python3 -c 'import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(3)' "$tmp/ledger.db" >"$tmp/lock.out" &
lock_pid=$!
sleep 1
for expect in tempfail accept; do
	if [ "$expect" = accept ]; then
		wait "$lock_pid"
	fi
	if miltertest -D "dir=$here" -D "socket=$socket" -D "token3=$token3" \
		-D "queue_id=QLOCK$expect" -D "expect=$expect" \
		-s "$here/locked.lua" >"$tmp/lua.out" 2>&1; then
		ok "locked.lua $expect passed"
	else
		not_ok "locked.lua $expect passed"
		sed 's/^/# /' "$tmp/lua.out"
	fi
done
check "lock holder held the lock" grep -q locked "$tmp/lock.out"
check "log: locked ledger tempfail" log_has \
	'QLOCKtempfail: mailing=m1 seq=3 rcpt=<dave@example.org> action=tempfail reason="ledger unavailable: '
check "log: accepted after the lock" log_has \
	"QLOCKaccept: mailing=m1 seq=3 rcpt=<dave@example.org> action=accept reason=new"

# SIGHUP with a broken file: old rules kept, a warning, still running.
echo "NoSuchKey yes" >>"$tmp/mailonce.conf"
kill -HUP "$milter_pid"
sleep 1
check "bad reload keeps the old rules" log_has "reload failed, keeping the previous rules"
check "bad reload keeps the milter running" kill -0 "$milter_pid"

kill -TERM "$milter_pid"
wait "$milter_pid"
status=$?
milter_pid=
check "SIGTERM exits 0" [ "$status" -eq 0 ]
check "PidFile removed at exit" [ ! -e "$tmp/milter.pid" ]
check "log: stop line" log_has "stopped"

echo "1..$count"
if [ "$failed" -ne 0 ]; then
	echo "# milter log:"
	sed 's/^/# /' "$tmp/milter.log"
	exit 1
fi
exit 0
