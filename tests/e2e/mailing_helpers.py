"""Helpers for end-to-end tests that send whole mailings with mailoncectl.

A Mailer wraps a running harness Stack. It writes a mailoncectl
configuration of its own (the milter's keys plus SubmitTo pointing at the
stack's Postfix), creates mailings from generated recipient lists, starts
and kills "mailoncectl send", and checks the outcome at the sink and in
the ledger. The milter's own mailonce.conf is left as the harness wrote
it, so restarting the milter rereads the same file.
"""

import csv
import glob
import os
import re
import signal
import subprocess
import time

import mailonce_harness as harness

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data")
NEWSLETTER = os.path.join(DATA, "newsletter.eml")

# Exit codes of sysexits.h that mailoncectl uses.
EX_OK = 0
EX_DATAERR = 65
EX_TEMPFAIL = 75

# A report of AddressSanitizer, LeakSanitizer or UBSan (a build with --enable-asan).
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:")

SIMPLE_TEMPLATE = (
    "From: Sender <sender@example.test>\n"
    "To: {{name}} <{{email}}>\n"
    "Subject: Hello {{name}}\n"
    "\n"
    "Dear {{name}},\n"
    "this is message for {{email}}.\n"
)


class Mailer:
    """mailoncectl for one Stack: create, send, kill, restart and verify mailings.

    settings: extra mailonce.conf keys for mailoncectl only, because the
    milter keeps its own file. LeaseTime defaults to 1s here, so a restart
    after a killed sender waits about a second for the dead sender's
    lease instead of a minute. RetryDelay defaults to 1s, so a 4xx retry
    comes within seconds.
    """

    def __init__(self, stack, settings=None):
        self.stack = stack
        self.milter = stack.milter
        self.conf_path = os.path.join(self.milter.dir, "mailoncectl.conf")
        self.workdir = os.path.join(stack.root, "mailings")
        os.makedirs(self.workdir, exist_ok=True)
        self.settings = {"SubmitTo": f"inet:{harness.LOOPBACK}:{stack.port}",
                         "LeaseTime": "1s", "RetryDelay": "1s"}
        self.settings.update(settings or {})
        self.write_conf()
        self.senders = []
        # With MailLog set, whether finish() runs "follow --once" itself or
        # leaves the log to the follower thread of mailonce-milter.
        self.follow_by_hand = "MailLog" not in self.milter.conf()

    def write_conf(self):
        """Write the milter's configuration plus this Mailer's settings."""
        conf = self.milter.conf()
        conf.update(self.settings)
        with open(self.conf_path, "w") as f:
            f.write("# mailoncectl configuration written by mailing_helpers.py\n")
            for key, value in conf.items():
                if value is not None:
                    f.write(f"{key} {value}\n")

    # Running mailoncectl.

    def ctl(self, *args, check=False, timeout=120):
        """Run mailoncectl -c CONF ARGS and return the CompletedProcess."""
        argv = [self.milter.ctl_program, "-c", self.conf_path, *args]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, check=check, close_fds=True)
        assert not SANITIZER_REPORT.search(r.stderr), (
            f"sanitizer report from mailoncectl {' '.join(args)}:\n{r.stderr}")
        return r

    def check_sanitizers(self):
        """Assert that no background mailoncectl wrote a sanitizer report to its log."""
        for path in glob.glob(os.path.join(self.workdir, "*.log")):
            with open(path, errors="replace") as f:
                text = f.read()
            assert not SANITIZER_REPORT.search(text), f"sanitizer report in {path}:\n{text}"

    def start_send(self, mailing, *args):
        """Start "mailoncectl send MAILING ARGS" in the background; return its Popen."""
        return self.start_ctl(f"send-{mailing}.log", "send", mailing, *args)

    def start_restart(self, log_name="restart.log"):
        """Start "mailoncectl restart" in the background; return its Popen."""
        return self.start_ctl(log_name, "restart")

    def start_follow(self):
        """Start "mailoncectl follow", which applies the Postfix log until SIGTERM."""
        return self.start_ctl("follow.log", "follow")

    def stop(self, proc, timeout=10):
        """Stop a mailoncectl started here with SIGTERM; return its exit code."""
        wait_for(lambda: proc.poll() is not None
                 or harness.pid_comm(proc.pid) == "mailoncectl", 5)
        if proc.poll() is None:
            harness.signal_pid(proc.pid, signal.SIGTERM, "mailoncectl")
            proc.wait(timeout)
        return proc.returncode

    def start_ctl(self, log_name, *args):
        """Start mailoncectl ARGS with output appended to LOG_NAME; return its Popen."""
        argv = [self.milter.ctl_program, "-c", self.conf_path, *args]
        log = open(os.path.join(self.workdir, log_name), "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    close_fds=True, start_new_session=True)
        finally:
            log.close()
        self.senders.append(proc)
        return proc

    def send_log(self, mailing):
        try:
            with open(os.path.join(self.workdir, f"send-{mailing}.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def kill(self, proc):
        """SIGKILL a sender started here and reap it; return True if it was still running."""
        # Popen can return before the child has called exec, while
        # /proc/PID/comm still names python3; wait for the exec first.
        wait_for(lambda: proc.poll() is not None
                 or harness.pid_comm(proc.pid) == "mailoncectl", 5)
        if proc.poll() is not None:
            return False
        assert harness.signal_pid(proc.pid, signal.SIGKILL, "mailoncectl"), (
            f"mailoncectl pid {proc.pid} is {harness.pid_comm(proc.pid)}, not mailoncectl")
        proc.wait(10)
        return proc.returncode == -signal.SIGKILL

    def stop_all(self):
        """Kill every sender this Mailer started that still runs (test cleanup)."""
        for proc in self.senders:
            if proc.poll() is None:
                self.kill(proc)
        self.senders = []

    def restart(self, expect=EX_OK):
        """Run "mailoncectl restart" and assert its exit code."""
        r = self.ctl("restart")
        assert r.returncode == expect, (
            f"mailoncectl restart exited {r.returncode}, expected {expect}:\n"
            f"{r.stdout}{r.stderr}")
        return r

    def follow_once(self):
        """Apply the Postfix log to the ledger ("mailoncectl follow --once")."""
        r = self.ctl("follow", "--once")
        assert r.returncode == EX_OK, (
            f"mailoncectl follow --once exited {r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def finish(self, rounds=5):
        """Run "mailoncectl restart" until it exits 0; return the outputs of each round.

        A seq whose 250 the killed sender never read stays accepted after
        the restart helper resends it (the milter discards the copy as a
        duplicate), until the Postfix log shows the first copy committed.
        So with MailLog set, each round first lets the log be applied
        (by "follow --once" unless the milter follows the log itself),
        after the Postfix queue has drained, and the restart helper then
        completes the mailing. Without MailLog a single round must do.
        """
        outputs = []
        follow = bool(self.settings.get("MailLog"))
        for _ in range(rounds if follow else 1):
            if follow:
                self.stack.settle(30)
                if self.follow_by_hand:
                    self.follow_once()
                else:
                    # The milter's follower thread reads the log; give it a pass.
                    time.sleep(1.5)
            r = self.ctl("restart")
            outputs.append(r.stdout + r.stderr)
            if r.returncode == EX_OK:
                return outputs
            assert r.returncode == EX_TEMPFAIL, (
                f"mailoncectl restart exited {r.returncode}:\n{r.stdout}{r.stderr}")
        raise AssertionError("mailoncectl restart did not complete the mailings:\n" +
                             "\n".join(outputs))

    # Mailings.

    def write_recipients(self, name, rows, fields=("email", "name")):
        """Write rows (dicts) as a CSV file with a header row; return its path."""
        path = os.path.join(self.workdir, f"{name}.csv")
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(fields), lineterminator="\r\n")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
        return path

    def write_template(self, name, text=SIMPLE_TEMPLATE):
        path = os.path.join(self.workdir, f"{name}.eml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def create(self, mailing, rows, fields=("email", "name"), template=SIMPLE_TEMPLATE):
        """Create a mailing from rows and the template text; return the CompletedProcess."""
        csv_path = self.write_recipients(mailing, rows, fields)
        eml_path = self.write_template(mailing, template)
        r = self.ctl("create", mailing, "--template", eml_path, "--recipients", csv_path)
        assert r.returncode == EX_OK, (
            f"mailoncectl create {mailing} exited {r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def ledger(self):
        return self.milter.ledger()

    def sent_count(self, mailing):
        """Return how many seqs of a mailing the milter or the sender recorded."""
        rows = self.ledger().query(
            "SELECT count(*) AS n FROM recipient WHERE mailing_id = ? AND status <> 'pending'"
            " AND status <> 'skipped' AND status <> 'error'", (mailing,))
        return rows[0]["n"]

    # Checks.

    def verify(self, mailing, expected, skipped=(), errors=(), by_queue_id=False):
        """Assert the outcome of a finished mailing at the sink and in the ledger.

        expected: addresses that must have exactly one copy at the sink
        and status queued (or later). skipped: addresses with no copy and
        status skipped. errors: addresses with no copy at the sink and
        status error. Waits for the Postfix queue to drain first.

        by_queue_id counts the copies of a recipient by the Postfix queue
        id that carried them. "postfix stop" can end an outbound delivery
        after the sink took the message but before Postfix recorded it;
        Postfix then sends that same queue file again after its start
        (the RFC 1047 window between Postfix and the next hop, outside
        the milter's reach). Two copies from one queue id are that; two queue
        ids would be two handoffs, which mailonce must prevent.
        """
        self.stack.settle(30)
        copies = self.queue_id_copies() if by_queue_id else self.stack.sink.copies()

        wrong = {a: copies.get(a.lower(), 0) for a in expected if copies.get(a.lower(), 0) != 1}
        assert not wrong, (f"{len(wrong)} recipients without exactly 1 copy: "
                           f"{self.describe(mailing, list(wrong.items())[:10])}")
        leaked = {a: copies[a.lower()] for a in list(skipped) + list(errors) if a.lower() in copies}
        assert not leaked, f"skipped or refused recipients reached the sink: {leaked}"

        self.verify_ledger(mailing, expected, skipped, errors)
        self.check_sanitizers()

    def queue_id_copies(self):
        """Return, per recipient, the number of distinct Postfix queue ids delivered."""
        queue_ids = {}
        for m in self.stack.sink.messages():
            received = m.header("Received")
            found = re.search(r"\bid ([0-9A-Za-z]+)", received[0]) if received else None
            qid = found.group(1) if found else id(m)
            for r in m.envelope_recipients:
                queue_ids.setdefault(r.lower(), set()).add(qid)
        return {r: len(ids) for r, ids in queue_ids.items()}

    def describe(self, mailing, address_copies):
        """Return, per (address, copies), its ledger status and the milter's decisions."""
        ledger = self.ledger()
        by_address = {r["address"].lower(): r for r in ledger.recipients(mailing)}
        lines = []
        for address, count in address_copies:
            row = by_address.get(address.lower())
            if row is None:
                lines.append(f"{address}: {count} copies, not in the ledger")
                continue
            decisions = ledger.decisions(mailing, row["seq"])
            lines.append(f"{address}: {count} copies, seq {row['seq']} status {row['status']}"
                         f" queue_id {row['queue_id']} milter decisions {decisions}")
        return "\n" + "\n".join(lines)

    def verify_ledger(self, mailing, expected, skipped=(), errors=()):
        ledger = self.ledger()
        rows = {r["address"].lower(): r for r in ledger.recipients(mailing)}
        for addr in expected:
            status = rows[addr.lower()]["status"]
            assert status in ("queued", "delivered"), f"{addr}: status {status}, expected queued"
        for addr in skipped:
            status = rows[addr.lower()]["status"]
            assert status == "skipped", f"{addr}: status {status}, expected skipped"
        for addr in errors:
            status = rows[addr.lower()]["status"]
            assert status == "error", f"{addr}: status {status}, expected error"

        m = ledger.mailing(mailing)
        assert m["state"] == "complete", f"mailing {mailing} is {m['state']}, expected complete"
        total = len(expected) + len(skipped) + len(errors)
        assert m["num_profiles"] == total
        assert m["num_sent"] == len(expected)
        assert m["num_errors"] == len(errors)
        assert m["num_skipped"] == len(skipped)
        assert m["num_sent"] + m["num_errors"] + m["num_skipped"] == m["num_profiles"]

        r = self.ctl("check")
        assert r.returncode == EX_OK, f"mailoncectl check exited {r.returncode}:\n{r.stdout}{r.stderr}"


def recipients(prefix, count, domain="example.test"):
    """Return count rows {email, name} with addresses PREFIX-NNNN@DOMAIN."""
    return [{"email": f"{prefix}-{i:04d}@{domain}", "name": f"Reader {i}"}
            for i in range(1, count + 1)]


def addresses(rows):
    return [r["email"] for r in rows]


def wait_for(predicate, timeout, interval=0.005):
    """Poll predicate until it returns true or timeout seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
