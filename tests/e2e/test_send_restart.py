"""Crash safety of "mailoncectl send" and "mailoncectl restart" on a real Postfix.

Each test sends a whole mailing through Postfix and the milter, breaks
something on the way (the sender, the milter or Postfix), lets
"mailoncectl restart" finish the job, and then checks two things: every
pending recipient has exactly one copy at the sink (skipped and refused
ones none), and the ledger agrees (statuses, num_sent + num_errors +
num_skipped = num_profiles, "mailoncectl check" exits 0).
"""

import sqlite3
import time

import pytest

import mailonce_harness as harness
from mailing_helpers import (EX_DATAERR, EX_OK, EX_TEMPFAIL, Mailer, addresses, recipients, wait_for)

# Where each of the 20 kill points stops the sender of a 60-recipient
# mailing: ("delay", seconds after the start), ("sink", messages at the
# sink) or ("ledger", seqs the milter or the sender recorded), and, for
# some points, a second SIGKILL of the restart helper after a further
# number of messages at the sink.
KILL_POINTS = [
    ("delay", 0.0, None),
    ("delay", 0.02, None),
    ("delay", 0.1, None),
    ("sink", 1, None),
    ("ledger", 1, None),
    ("sink", 3, 10),
    ("ledger", 8, None),
    ("sink", 12, None),
    ("ledger", 18, 30),
    ("sink", 22, None),
    ("ledger", 27, None),
    ("sink", 31, 45),
    ("ledger", 36, None),
    ("sink", 40, None),
    ("ledger", 45, 55),
    ("sink", 48, None),
    ("ledger", 52, None),
    ("sink", 55, None),
    ("ledger", 58, None),
    ("ledger", 60, None),
]
KILL_POINT_RECIPIENTS = 60


@pytest.fixture
def mailer(stack):
    m = Mailer(stack)
    yield m
    m.stop_all()


def confirming_mailer(make_stack, **options):
    """Return a Mailer on a new stack whose milter and mailoncectl confirm commits.

    mailoncectl reads the stack's Postfix log (MailLog) with "follow
    --once", which turns an accepted seq into queued when its queue file
    was committed, or lets the milter treat it as pending again when it
    never was (after ConfirmTimeout).
    """
    confirm = {"ConfirmCommits": "yes", "ConfirmTimeout": "1s"}
    stack = make_stack(milter_conf=confirm, **options)
    return Mailer(stack, dict(confirm, MailLog=stack.postfix.log_path))


def kill_when(mailer, proc, mailing, kind, value):
    """Wait for the kill point, then SIGKILL proc; return True if it was still running."""
    if kind == "delay":
        if value:
            time.sleep(value)
    elif kind == "sink":
        wait_for(lambda: len(mailer.stack.sink.files()) >= value or proc.poll() is not None, 30)
    else:
        wait_for(lambda: mailer.sent_count(mailing) >= value or proc.poll() is not None, 30)
    return mailer.kill(proc)


def finish_after_kill(mailer, mailing):
    """Run the restart helper; a mailing killed before it left draft is sent again.

    The restart helper leaves draft mailings alone because no send was
    started for them, so a sender killed before it moved the mailing to
    sending leaves a draft that only "send" completes.
    """
    state = mailer.ledger().mailing(mailing)["state"]
    if state == "draft":
        assert mailer.sent_count(mailing) == 0
        r = mailer.ctl("send", mailing)
        assert r.returncode == EX_OK, f"send after a kill in draft: {r.returncode}\n{r.stderr}"
        return "draft"
    mailer.finish()
    return state


def test_sender_killed_at_20_points(make_stack):
    mailer = confirming_mailer(make_stack)
    try:
        run_kill_points(mailer, mailer.stack)
    finally:
        mailer.stop_all()


def run_kill_points(mailer, stack):
    start = time.monotonic()
    killed = 0
    outcomes = []
    for n, (kind, value, second) in enumerate(KILL_POINTS, 1):
        mailing = f"kill-{n:02d}-{kind}-{value}"
        rows = recipients(f"k{n:02d}", KILL_POINT_RECIPIENTS)
        mailer.create(mailing, rows)

        proc = mailer.start_send(mailing, "--concurrency", "4")
        was_running = kill_when(mailer, proc, mailing, kind, value)
        killed += was_running
        at_kill = (len(stack.sink.files()), mailer.sent_count(mailing))

        if second is not None and mailer.ledger().mailing(mailing)["state"] == "sending":
            # The restart helper itself dies too, partway through.
            helper = mailer.start_restart()
            kill_when(mailer, helper, mailing, "sink", second)

        state_at_kill = finish_after_kill(mailer, mailing)
        outcomes.append((mailing, was_running, at_kill, state_at_kill))
        mailer.verify(mailing, addresses(rows))
        stack.sink.reset()

    elapsed = time.monotonic() - start
    print(f"20 kill points in {elapsed:.1f} s; sender still running at {killed} of them")
    for o in outcomes:
        print("  %s: killed=%s sink/ledger at kill=%s state at kill=%s" % o)
    # A point where send had already finished tests nothing; most must hit a live sender.
    assert killed >= 15, f"only {killed} of 20 kill points hit a running sender: {outcomes}"


@pytest.mark.parametrize("confirm", [False, True], ids=["plain", "confirm-commits"])
def test_milter_killed_mid_mailing(make_stack, confirm):
    mailer = confirming_mailer(make_stack) if confirm else Mailer(make_stack())
    stack = mailer.stack
    try:
        rows = recipients("mk", 150)
        mailer.create("milter-kill", rows)
        proc = mailer.start_send("milter-kill")

        wait_for(lambda: len(stack.sink.files()) >= 40, 30)
        stack.milter.kill()
        # Postfix replies 451 while the milter is down (milter_default_action
        # tempfail). The sender gets those replies for a moment, then dies too.
        time.sleep(0.5)
        mailer.kill(proc)
        stack.milter.start()

        if confirm:
            mailer.finish()
        else:
            mailer.restart()
        mailer.verify("milter-kill", addresses(rows))
    finally:
        mailer.stop_all()


def test_milter_restarted_under_running_sender(make_stack):
    stack = make_stack()
    mailer = Mailer(stack)
    try:
        rows = recipients("mr", 150)
        mailer.create("milter-restart", rows)
        proc = mailer.start_send("milter-restart")

        wait_for(lambda: len(stack.sink.files()) >= 40, 30)
        stack.milter.kill()
        time.sleep(0.3)
        stack.milter.start()

        # The sender retries the 4xx replies; whatever it leaves, restart finishes.
        proc.wait(120)
        assert proc.returncode in (EX_OK, EX_TEMPFAIL), mailer.send_log("milter-restart")
        mailer.restart()
        mailer.verify("milter-restart", addresses(rows))
    finally:
        mailer.stop_all()


def stop_postfix_mid_mailing(mailer, mailing, rows):
    """Send a mailing, stop Postfix after 40 messages, kill the sender, start Postfix."""
    stack = mailer.stack
    mailer.create(mailing, rows)
    proc = mailer.start_send(mailing)

    wait_for(lambda: len(stack.sink.files()) >= 40, 30)
    stack.postfix.cmd("stop")
    wait_for(lambda: stack.postfix.master_pid() is None, 15)
    mailer.kill(proc)
    at_stop = {r["status"] for r in mailer.ledger().recipients(mailing)}

    stack.postfix.cmd("start")
    harness.wait_port(stack.port, 10)
    return at_stop


def test_postfix_stopped_mid_mailing(make_stack):
    stack = make_stack()
    mailer = Mailer(stack)
    try:
        rows = recipients("ps", 150)
        stop_postfix_mid_mailing(mailer, "postfix-stop", rows)
        # Without MailLog the restart helper cannot tell whether a seq the
        # milter accepted was committed; copies at the sink are checked first.
        r = mailer.ctl("restart")
        mailer.verify("postfix-stop", addresses(rows))
        assert r.returncode == EX_OK, f"restart exited {r.returncode}:\n{r.stdout}{r.stderr}"
    finally:
        mailer.stop_all()


def test_postfix_stopped_with_commit_confirmation(make_stack):
    mailer = confirming_mailer(make_stack)
    try:
        rows = recipients("pc", 150)
        stop_postfix_mid_mailing(mailer, "postfix-confirm", rows)
        mailer.finish()
        mailer.verify("postfix-confirm", addresses(rows))
    finally:
        mailer.stop_all()


def test_two_senders_on_one_mailing(mailer, stack):
    rows = recipients("two", 120)
    mailer.create("two-senders", rows)
    first = mailer.start_send("two-senders")
    second = mailer.start_send("two-senders")
    first.wait(120)
    second.wait(120)

    codes = sorted([first.returncode, second.returncode])
    assert codes in ([EX_OK, EX_OK], [EX_OK, EX_TEMPFAIL]), (
        f"exit codes {codes}:\n{mailer.send_log('two-senders')}")
    mailer.verify("two-senders", addresses(rows))
    # Each seq was handed to Postfix once: the lease kept the senders apart.
    decisions = mailer.ledger().decisions("two-senders")
    assert sum(decisions.values()) == len(rows), decisions


REFUSED = "bad@example.test"


def test_recipient_refused_with_5xx(make_stack):
    stack = make_stack(settings={
        "smtpd_recipient_restrictions":
            f"check_recipient_access inline:{{ {REFUSED}=REJECT }}, permit_mynetworks, reject"})
    mailer = Mailer(stack)
    rows = recipients("rf", 20)
    rows.insert(7, {"email": REFUSED, "name": "Refused"})
    mailer.create("refused", rows)

    r = mailer.ctl("send", "refused")
    assert r.returncode == EX_OK, f"send exited {r.returncode}:\n{r.stdout}{r.stderr}"
    good = [a for a in addresses(rows) if a != REFUSED]
    mailer.verify("refused", good, errors=[REFUSED])
    row = mailer.ledger().recipient("refused", 8)
    assert row["address"] == REFUSED
    assert "554 5.7.1" in (row["last_error"] or ""), row


def test_skipped_recipients_counted_not_sent(mailer, stack):
    suppressed = "suppressed@example.test"
    invalid = "invalid@example.test"
    malformed = ["no-at-sign.example.test", "two@@example.test", "spa ce@example.test"]
    con = sqlite3.connect(stack.milter.database, timeout=10)
    try:
        con.execute("INSERT OR REPLACE INTO suppression (address, reason, added_at) "
                    "VALUES (?, 'unsubscribed', strftime('%s','now'))", (suppressed,))
        con.commit()
    finally:
        con.close()

    rows = [dict(r, status="") for r in recipients("sk", 10)]
    rows.insert(2, {"email": suppressed, "name": "S", "status": ""})
    rows.insert(5, {"email": invalid, "name": "I", "status": "invalid"})
    for i, bad in enumerate(malformed):
        rows.insert(7 + i, {"email": bad, "name": "M", "status": ""})
    created = mailer.create("skipped", rows, fields=("email", "name", "status"))
    assert "5 skipped" in created.stdout, created.stdout

    r = mailer.ctl("send", "skipped")
    assert r.returncode == EX_OK, f"send exited {r.returncode}:\n{r.stdout}{r.stderr}"
    sent = addresses(recipients("sk", 10))
    mailer.verify("skipped", sent, skipped=[suppressed, invalid] + malformed)
    assert len(stack.sink.messages()) == 10


@pytest.mark.parametrize("value", ["Eve\r\nBcc: victim@example.test", "Eve\nX-Evil: 1",
                                   "Eve\rX-Evil: 1"])
def test_crlf_in_field_rejected_at_create(mailer, stack, value):
    rows = recipients("cr", 4)
    rows[2]["name"] = value
    csv_path = mailer.write_recipients("crlf", rows)
    eml_path = mailer.write_template("crlf")

    r = mailer.ctl("create", "crlf", "--template", eml_path, "--recipients", csv_path)
    assert r.returncode == EX_DATAERR, r.stdout + r.stderr
    # Data row 3 is on line 4 of the file, after the header line.
    assert "line 4 (record 3)" in r.stderr, r.stderr
    assert 'field "name"' in r.stderr, r.stderr
    assert "line break" in r.stderr, r.stderr
    assert mailer.ledger().mailing("crlf") is None
    assert mailer.ledger().recipients("crlf") == []
