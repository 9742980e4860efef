#!/bin/sh
# run-all.sh - run every mailonce benchmark once and keep the output.
#
# Usage: bench/run-all.sh BUILDDIR [OUTDIR]
#
# BUILDDIR is a configured build of mailonce (make has run there); the
# script builds bench/ledger_bench in it. The output of each benchmark goes
# to OUTDIR (default: BUILDDIR/bench-results), one file each, and to the
# terminal. Must run as root: the Postfix benchmarks start a private
# Postfix on 127.0.0.1. A full run took about 5 minutes on the 2-core
# machine described in RESULTS.md.
set -eu

if [ $# -lt 1 ] || [ ! -x "$1/plugin/mailonce-milter" ]; then
	echo "usage: $0 BUILDDIR [OUTDIR]; BUILDDIR must hold a built plugin/mailonce-milter" >&2
	exit 64
fi
BUILDDIR=$(cd "$1" && pwd)
OUTDIR=${2:-$BUILDDIR/bench-results}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
export MAILONCE_BUILDDIR="$BUILDDIR"
mkdir -p "$OUTDIR"

step() {
	name=$1
	shift
	echo "== $name: $*"
	"$@" 2>&1 | tee "$OUTDIR/$name.txt"
}

make -C "$BUILDDIR" bench/ledger_bench >/dev/null
step throughput-inet $PY "$HERE/throughput.py" --smtp-source
step throughput-unix $PY "$HERE/throughput.py" --socket unix
step latency $PY "$HERE/latency.py" --strace "$OUTDIR/milter.strace"
step memory $PY "$HERE/memory.py"
step ledger "$BUILDDIR/bench/ledger_bench" -n 2000 -d /tmp
echo "== results in $OUTDIR"
