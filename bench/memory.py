#!/usr/bin/python3
"""memory - resident memory of mailonce-milter, idle and after tracked mail.

Starts one loopback stack (sink, milter, Postfix), reads VmRSS and VmHWM
from /proc/PID/status of the milter once it is idle. Then, in each of
--batches batches, it sends N tracked messages (each with a valid
Mailonce-Token and a seq of its own) over P sessions, waits until all of
them reach the sink, and reads both values again. VmHWM is the peak
resident size since the milter started. A second batch shows whether the
growth after the first one levels off (ledger handles, thread stacks,
SQLite page caches) or keeps going (a leak).

Usage: MAILONCE_BUILDDIR=/tmp/build bench/memory.py [-n N] [-p P] [--socket inet|unix]
"""

import argparse

import benchlib as b
from benchlib import h


def show(label, pid):
    mem = b.rss_kib(pid)
    print(f"{label:34s} VmRSS {mem['VmRSS']:7d} KiB  VmHWM {mem['VmHWM']:7d} KiB", flush=True)
    return mem


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("-n", type=int, default=5000, help="tracked messages (5000)")
    ap.add_argument("-p", type=int, default=20, help="parallel SMTP sessions (20)")
    ap.add_argument("--batches", type=int, default=2, help="batches of N messages (2)")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--socket", choices=("inet", "unix"), default="unix",
                    help="the milter's socket (unix, the faster, by default)")
    args = ap.parse_args()
    builddir = b.builddir_or_exit()

    stack = b.milter_stack(builddir, args.socket).start()
    try:
        milter = stack.milter
        maker = b.TokenMaker(milter.key_file)
        b.check_tokens(milter, maker, [("bench-mem", 1, b.rcpt_of(1))])
        show("idle", milter.pid)

        for batch in range(args.batches):
            jobs = b.make_jobs(args.n, args.size, mailing="bench-mem", maker=maker,
                               first_seq=batch * args.n + 1)
            elapsed, codes, _ = b.run_parallel(stack.port, jobs, args.p)
            if codes != {250: args.n}:
                raise h.HarnessError(f"expected {args.n} replies 250, got {codes}")
            b.wait_delivered(stack, args.n)
            stack.sink.reset()
            show(f"after {(batch + 1) * args.n} tracked messages", milter.pid)
            print(f"  batch {batch + 1}: {args.n} messages in {elapsed:.1f} s", flush=True)

        rows = milter.ledger().query("SELECT count(*) AS n FROM handoff")
        print(f"socket {args.socket}, {args.p} sessions; ledger handoff rows: {rows[0]['n']}")
        for line in b.machine(builddir):
            print(line)
    finally:
        stack.stop()
        stack.cleanup()


if __name__ == "__main__":
    main()
