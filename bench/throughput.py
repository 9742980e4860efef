#!/usr/bin/python3
"""throughput - messages per second through a private Postfix, with and without mailonce.

Starts four loopback stacks with the end-to-end harness and measures them
interleaved, in a different order each round, so that drift of a noisy
machine spreads over all of them:

    a  Postfix alone
    b  Postfix + mailonce-milter, untracked mail (no Mailonce-Token)
    c  Postfix + mailonce-milter, tracked mail: every message has a valid
       token for its one recipient and a (mailing, seq) of its own
    d  as c, with ConfirmCommits yes and MailLog set to the Postfix log,
       so the milter's follower thread reads the log while mail flows

Each round sends N messages of about SIZE bytes over P parallel SMTP
sessions (one connection per session, many transactions on it) and
records two rates: "accept", N over the time until the last 250 reply,
and "deliver", N over the time until the sink holds all N and the queue
is empty. The report gives the median of the rounds and its ratio to a.

With --socket unix, the milters of b, c and d listen on a unix-domain
socket instead of TCP on 127.0.0.1.

With --smtp-source, a and b are also driven by Postfix's smtp-source
(untracked mail only), as a check that the Python client is not what
limits the rate.

Usage: MAILONCE_BUILDDIR=/tmp/build bench/throughput.py [-n N] [-p P] [-r ROUNDS]
"""

import argparse
import os
import subprocess
import sys
import time

import benchlib as b
from benchlib import h

CONFIGS = ("a", "b", "c", "d")
LABELS = {
    "a": "Postfix alone",
    "b": "milter, untracked",
    "c": "milter, tracked",
    "d": "milter, tracked, ConfirmCommits yes + MailLog",
    "a-src": "Postfix alone (smtp-source)",
    "b-src": "milter, untracked (smtp-source)",
}


def start_stacks(builddir, socket_kind):
    """Start the stacks of a, b, c and d; return {config: Stack}."""
    stacks = {}
    try:
        stacks["a"] = h.Stack(builddir, milter=False)
        stacks["a"].start()
        stacks["b"] = b.milter_stack(builddir, socket_kind).start()
        stacks["c"] = b.milter_stack(builddir, socket_kind).start()

        # The follower needs the log path before the milter starts, and the
        # path is known once the work directory exists.
        d = b.milter_stack(builddir, socket_kind, {"ConfirmCommits": "yes"})
        log_dir = os.path.join(d.root, "log")
        os.makedirs(log_dir, exist_ok=True)
        open(os.path.join(log_dir, "maillog"), "a").close()
        d.milter.conf_overrides["MailLog"] = os.path.join(log_dir, "maillog")
        stacks["d"] = d
        d.start()
    except BaseException:
        stop_stacks(stacks)
        raise
    return stacks


def stop_stacks(stacks):
    for stack in stacks.values():
        try:
            stack.stop()
        except Exception as e:
            print(f"warning: stopping {stack.root}: {e}", file=sys.stderr)
        stack.cleanup()


def jobs_for(config, stack, count, size, round_no, maker):
    """Return the messages of one round; tracked configs get fresh seqs each round."""
    if config in ("c", "d"):
        return b.make_jobs(count, size, mailing=f"bench-{config}", maker=maker,
                           first_seq=round_no * count + 1)
    return b.make_jobs(count, size, first_seq=round_no * count + 1)


def run_python(stack, jobs, sessions):
    """Send jobs with the threaded client; return (accept seconds, deliver seconds)."""
    t0 = time.perf_counter()
    elapsed, codes, _ = b.run_parallel(stack.port, jobs, sessions)
    if codes != {250: len(jobs)}:
        raise h.HarnessError(f"expected {len(jobs)} replies 250, got {codes}\n"
                             f"{stack.describe()}")
    b.wait_delivered(stack, len(jobs))
    return elapsed, time.perf_counter() - t0


def run_smtp_source(stack, count, size, sessions):
    """Send count untracked messages with smtp-source; return (accept s, deliver s)."""
    argv = ["smtp-source", "-4", "-s", str(sessions), "-m", str(count), "-l", str(size),
            "-f", b.SENDER, "-t", b.rcpt_of(0), "-M", "bench.test",
            f"{h.LOOPBACK}:{stack.port}"]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, timeout=600)
    accept = time.perf_counter() - t0
    b.wait_delivered(stack, count)
    return accept, time.perf_counter() - t0


def one_round(stacks, plan, round_no, args, maker, results):
    """Run every configuration once, in plan order; append rates to results."""
    for config in plan:
        base = config.split("-")[0]
        stack = stacks[base]
        stack.sink.reset()
        if config.endswith("-src"):
            accept, deliver = run_smtp_source(stack, args.n, args.size, args.p)
        else:
            jobs = jobs_for(config, stack, args.n, args.size, round_no, maker[base])
            accept, deliver = run_python(stack, jobs, args.p)
        results.setdefault(config, {"accept": [], "deliver": []})
        results[config]["accept"].append(args.n / accept)
        results[config]["deliver"].append(args.n / deliver)
        print(f"round {round_no + 1} {config:5s} accept {args.n / accept:7.1f} msg/s  "
              f"deliver {args.n / deliver:7.1f} msg/s", flush=True)
        stack.sink.reset()


def check_ledgers(stacks, args):
    """Every tracked message should have left one handoff row; b none."""
    expect = {"b": 0, "c": args.n * args.rounds, "d": args.n * args.rounds}
    for config, want in expect.items():
        rows = stacks[config].milter.ledger().query("SELECT count(*) AS n FROM handoff")
        got = rows[0]["n"]
        if got != want:
            print(f"warning: ledger of {config} has {got} handoffs, expected {want}",
                  file=sys.stderr)


def report(results, args):
    """Print the table: median rates of the rounds and ratios to a."""
    base = {k: b.median(results["a"][k]) for k in ("accept", "deliver")}
    print()
    print(f"N={args.n} messages of ~{args.size} bytes, P={args.p} sessions, "
          f"milter socket {args.socket}, "
          f"median of {args.rounds} interleaved rounds")
    print(f"{'config':50s} {'accept msg/s':>12s} {'ratio':>6s} {'deliver msg/s':>13s} "
          f"{'ratio':>6s}")
    for config, label in LABELS.items():
        if config not in results:
            continue
        acc = b.median(results[config]["accept"])
        dlv = b.median(results[config]["deliver"])
        print(f"{config + ' ' + label:50s} {acc:12.1f} {acc / base['accept']:6.2f} "
              f"{dlv:13.1f} {dlv / base['deliver']:6.2f}")
    for line in b.machine(b.h.find_builddir()):
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("-n", type=int, default=2000, help="messages per run (2000)")
    ap.add_argument("-p", type=int, default=20, help="parallel SMTP sessions (20)")
    ap.add_argument("-r", "--rounds", type=int, default=3, help="rounds (3)")
    ap.add_argument("--size", type=int, default=4096, help="message size in bytes (4096)")
    ap.add_argument("--smtp-source", action="store_true",
                    help="also drive a and b with smtp-source")
    ap.add_argument("--socket", choices=("inet", "unix"), default="inet",
                    help="the milter's socket: inet (TCP on 127.0.0.1, default) or unix")
    args = ap.parse_args()
    builddir = b.builddir_or_exit()

    stacks = start_stacks(builddir, args.socket)
    try:
        maker = {}
        for config in ("b", "c", "d"):
            milter = stacks[config].milter
            maker[config] = b.TokenMaker(milter.key_file)
            b.check_tokens(milter, maker[config],
                           [(f"bench-{config}", s, b.rcpt_of(s)) for s in (1, 77, 4999)])
        maker["a"] = None

        plan = list(CONFIGS) + (["a-src", "b-src"] if args.smtp_source else [])
        results = {}
        for round_no in range(args.rounds):
            # Rotate the order so no configuration always runs first or last.
            k = round_no % len(plan)
            one_round(stacks, plan[k:] + plan[:k], round_no, args, maker, results)
        check_ledgers(stacks, args)
        report(results, args)
    finally:
        stop_stacks(stacks)


if __name__ == "__main__":
    main()
