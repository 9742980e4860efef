#!/usr/bin/python3
"""latency - time from the end of DATA to the 250 reply, one message at a time.

One SMTP session sends N messages one after the other; for each, the
client times the interval from writing the final "." to reading the
reply. Configurations, measured interleaved in blocks of --block messages:

    none            Postfix alone
    inet-untracked  mailonce-milter on Socket inet:PORT@127.0.0.1, no token
    inet-tracked    the same milter, each message with a valid token
    unix-untracked  a second milter on Socket unix:PATH, no token
    unix-tracked    that milter, each message with a valid token

With --strace FILE, the inet milter runs under
"strace -f -T -tt -e trace=network,fsync,fdatasync,read,write,writev,poll,select"
(libmilter talks to the MTA with read, write and poll, which the network
class of strace leaves out) during one extra
tracked block, the trace goes to FILE, and the script prints where the
time between two end-of-message replies went.

Usage: MAILONCE_BUILDDIR=/tmp/build bench/latency.py [-n N] [--strace FILE]
"""

import argparse
import re
import signal
import subprocess
import sys
import time

import benchlib as b
from benchlib import h


def start_stacks(builddir):
    stacks = {}
    try:
        stacks["none"] = h.Stack(builddir, milter=False).start()
        stacks["inet"] = h.Stack(builddir).start()
        stacks["unix"] = b.milter_stack(builddir, "unix").start()
    except BaseException:
        for s in stacks.values():
            s.stop()
            s.cleanup()
        raise
    return stacks


def send_block(stack, jobs):
    """Send jobs one by one on one session; return the latencies in seconds."""
    sess = b.Session(stack.port)
    lat = []
    try:
        for rcpt, data in jobs:
            code, seconds = sess.transaction(rcpt, data)
            if code != 250:
                raise h.HarnessError(f"reply {code} for {rcpt}\n{stack.describe()}")
            lat.append(seconds)
    finally:
        sess.close()
    return lat


def block_jobs(config, stacks, makers, count, size, seq):
    kind, _, tracked = config.partition("-")
    if tracked == "tracked":
        return b.make_jobs(count, size, mailing=f"lat-{kind}", maker=makers[kind], first_seq=seq)
    return b.make_jobs(count, size, first_seq=seq)


def strace_block(stack, maker, count, size, seq, path):
    """Send one tracked block with strace on the milter; return the trace path."""
    argv = ["strace", "-f", "-T", "-tt", "-e", "trace=network,fsync,fdatasync,read,write,writev,poll,select",
            "-p", str(stack.milter.pid), "-o", path]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    # strace prints one "attached" line per thread; give it time to attach.
    time.sleep(1.0)
    try:
        lat = send_block(stack, b.make_jobs(count, size, mailing="lat-strace", maker=maker,
                                            first_seq=seq))
    finally:
        if proc.poll() is None and h.pid_comm(proc.pid) == "strace":
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    return lat


def summarize_trace(path):
    """Print the syscalls that took longest and the total per syscall name."""
    rx = re.compile(r"^(\d+)\s+(\d+):(\d+):(\d+\.\d+) (\w+)\(.*<(\d+\.\d+)>$")
    total = {}
    slow = []
    with open(path) as f:
        for line in f:
            m = rx.match(line.rstrip())
            if not m:
                continue
            name, dur = m.group(5), float(m.group(6))
            count, secs = total.get(name, (0, 0.0))
            total[name] = (count + 1, secs + dur)
            slow.append((dur, line.rstrip()))
    print(f"syscalls in {path} (count, total seconds, mean ms):")
    for name, (count, secs) in sorted(total.items(), key=lambda kv: -kv[1][1]):
        print(f"  {name:14s} {count:6d} {secs:9.3f} {secs / count * 1000:8.3f}")
    print("longest calls:")
    for dur, line in sorted(slow, reverse=True)[:8]:
        print(f"  {line[:160]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("-n", type=int, default=200, help="messages per configuration (200)")
    ap.add_argument("--block", type=int, default=25, help="messages per interleaved block")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--strace", metavar="FILE", help="trace the inet milter into FILE")
    args = ap.parse_args()
    builddir = b.builddir_or_exit()

    configs = ["none", "inet-untracked", "inet-tracked", "unix-untracked", "unix-tracked"]
    stacks = start_stacks(builddir)
    try:
        makers = {k: b.TokenMaker(stacks[k].milter.key_file) for k in ("inet", "unix")}
        for k in ("inet", "unix"):
            b.check_tokens(stacks[k].milter, makers[k], [(f"lat-{k}", 1, b.rcpt_of(1))])
        lat = {c: [] for c in configs}
        seq = 1
        while min(len(v) for v in lat.values()) < args.n:
            for c in configs:
                stack = stacks[c.split("-")[0]]
                lat[c] += send_block(stack, block_jobs(c, stacks, makers, args.block,
                                                       args.size, seq))
            seq += args.block

        print(f"{args.n} messages of ~{args.size} bytes per configuration, one session, "
              f"blocks of {args.block} interleaved")
        print(f"{'configuration':16s} {'median ms':>10s} {'p95 ms':>8s} {'max ms':>8s}")
        for c in configs:
            v = lat[c][:args.n]
            print(f"{c:16s} {b.median(v) * 1000:10.2f} {b.percentile(v, 95) * 1000:8.2f} "
                  f"{max(v) * 1000:8.2f}")

        if args.strace:
            traced = strace_block(stacks["inet"], makers["inet"], args.block, args.size,
                                  10 ** 6, args.strace)
            print(f"under strace: median {b.median(traced) * 1000:.2f} ms")
            summarize_trace(args.strace)
        for line in b.machine(builddir):
            print(line)
    finally:
        for s in stacks.values():
            try:
                s.stop()
            except Exception as e:
                print(f"warning: stopping {s.root}: {e}", file=sys.stderr)
            s.cleanup()


if __name__ == "__main__":
    main()
