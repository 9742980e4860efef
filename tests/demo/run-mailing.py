#!/usr/bin/python3
"""Send a 1,000-recipient mailing, kill the sender partway, restart, count copies.

Run by run-mailing.sh as root, with MAILONCE_BUILDDIR naming the build.
Everything runs on 127.0.0.1: a private Postfix with mailonce-milter in
smtpd_milters relays every message to smtp-sink, which keeps one file
per message so that copies can be counted per recipient. The sender is
killed with SIGKILL once KILL_AT messages reached the sink. The milter
follows the Postfix log (MailLog), which confirms the messages whose 250
reply the killed sender never read, and "mailoncectl restart" finishes
the mailing.

Exit status 0 only if every recipient got exactly one copy. Every process
started here is stopped on exit, also after an error or Ctrl-C.
"""

import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "e2e"))

import mailonce_harness as harness  # noqa: E402
from mailing_helpers import EX_OK, EX_TEMPFAIL, Mailer, NEWSLETTER  # noqa: E402

MAILING = "newsletter-demo"
RECIPIENTS = 1000
KILL_AT = 400
CONCURRENCY = "4"


def step(text):
    print(f"== {text}", flush=True)


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def ledger_counts(mailer):
    rows = mailer.ledger().query(
        "SELECT status, count(*) AS n FROM recipient WHERE mailing_id = ? GROUP BY status",
        (MAILING,))
    return {r["status"]: r["n"] for r in rows}


def create_mailing(mailer, stack):
    csv_path = os.path.join(mailer.workdir, "recipients.csv")
    subprocess.run([sys.executable, os.path.join(TOP, "tests", "data", "make-recipients.py"),
                    str(RECIPIENTS), csv_path], check=True)
    r = mailer.ctl("create", MAILING, "--template", NEWSLETTER, "--recipients", csv_path)
    print(r.stdout.strip())
    if r.returncode != EX_OK:
        raise SystemExit(f"mailoncectl create failed ({r.returncode}):\n{r.stderr}")
    return [f"rcpt-{i:04d}@example.test" for i in range(1, RECIPIENTS + 1)]


def send_and_kill(mailer, stack):
    proc = mailer.start_send(MAILING, "--concurrency", CONCURRENCY)
    start = time.monotonic()
    done = harness.wait_until(
        lambda: len(stack.sink.files()) >= KILL_AT or proc.poll() is not None, 120,
        description=f"{KILL_AT} messages at the sink")
    if not done or proc.poll() is not None:
        raise SystemExit(f"mailoncectl send ended before it could be killed:\n"
                         f"{mailer.send_log(MAILING)}")
    mailer.kill(proc)
    print(f"killed mailoncectl send (pid {proc.pid}) with SIGKILL after "
          f"{time.monotonic() - start:.1f} s", flush=True)


def finish(mailer):
    """Run the restart helper until the mailing is complete."""
    for _ in range(5):
        r = mailer.ctl("restart", timeout=300)
        print(r.stdout.strip(), flush=True)
        if r.returncode == EX_OK:
            return
        if r.returncode != EX_TEMPFAIL:
            raise SystemExit(f"mailoncectl restart failed ({r.returncode}):\n{r.stderr}")
        print("restart left messages whose commit the Postfix log has not confirmed yet; "
              "running it again", flush=True)
        mailer.stack.settle(60)
        time.sleep(2)  # one pass of the milter's log follower
    raise SystemExit("mailoncectl restart did not complete the mailing")


def wait_delivered(mailer, total):
    """Wait until the log follower has recorded every delivery (at most 30 s)."""
    try:
        harness.wait_until(lambda: ledger_counts(mailer).get("delivered", 0) >= total, 30,
                           description="the deliveries in the ledger")
    except AssertionError as e:
        print(f"warning: {e}; the status below may not show every delivery", flush=True)


def report(mailer, stack, addresses):
    wait_delivered(mailer, len(addresses))
    copies = stack.sink.copies()
    zero = sum(1 for a in addresses if copies.get(a, 0) == 0)
    one = sum(1 for a in addresses if copies.get(a, 0) == 1)
    more = sum(1 for a in addresses if copies.get(a, 0) >= 2)
    print(f"{one} recipients got exactly 1 copy")
    print(f"{zero} recipients got 0 copies")
    print(f"{more} recipients got 2 or more copies")
    step(f"mailoncectl status {MAILING}")
    print(mailer.ctl("status", MAILING).stdout.rstrip(), flush=True)
    return one == len(addresses) and zero == 0 and more == 0


def main():
    # Ctrl-C and SIGTERM both end in the cleanup below. SIGINT is set
    # explicitly because a shell that starts us in the background ignores it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_sigterm)
    builddir = harness.find_builddir()
    if builddir is None:
        raise SystemExit("run-mailing.py: no build found: set MAILONCE_BUILDDIR")
    if os.geteuid() != 0:
        raise SystemExit("run-mailing.py: run as root (Postfix needs it)")

    started = time.monotonic()
    confirm = {"ConfirmCommits": "yes"}
    stack = harness.Stack(builddir=builddir, milter_conf=confirm)
    # The milter's follower thread waits for the log that Postfix creates.
    log_path = os.path.join(stack.root, "log", "maillog")
    stack.milter.conf_overrides["MailLog"] = log_path
    mailer = None
    try:
        step("starting smtp-sink, mailonce-milter and a private Postfix on 127.0.0.1")
        stack.start()
        print(f"Postfix smtpd on 127.0.0.1:{stack.port}, milter on {stack.milter.spec}, "
              f"sink on 127.0.0.1:{stack.sink.port}, files in {stack.root}")
        mailer = Mailer(stack, dict(confirm, MailLog=log_path, Concurrency=CONCURRENCY))

        step(f"creating mailing {MAILING}: {RECIPIENTS} recipients, template "
             f"{os.path.relpath(NEWSLETTER, TOP)}")
        addresses = create_mailing(mailer, stack)

        step(f"sending with Concurrency {CONCURRENCY}; SIGKILL once {KILL_AT} messages "
             f"reached the sink")
        send_and_kill(mailer, stack)
        at_kill = ledger_counts(mailer)
        print(f"at the kill: {len(stack.sink.files())} messages at the sink; ledger "
              + ", ".join(f"{k} {v}" for k, v in sorted(at_kill.items())), flush=True)

        step("mailoncectl restart")
        finish(mailer)

        step("waiting until the Postfix queue is empty")
        stack.settle(120)

        step("outcome")
        ok = report(mailer, stack, addresses)
        print(f"took {time.monotonic() - started:.1f} s; "
              + ("every recipient got exactly 1 copy" if ok else "FAILED"), flush=True)
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        if mailer:
            mailer.stop_all()
        step("stopping Postfix, the milter and the sink")
        try:
            stack.stop()
        finally:
            stack.cleanup()


if __name__ == "__main__":
    sys.exit(main())
