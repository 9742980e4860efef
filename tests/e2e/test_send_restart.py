"""Crash safety of "mailoncectl send" and "mailoncectl restart" on a real Postfix.

Each test sends a whole mailing through Postfix and the milter, breaks
something on the way (the sender, the milter or Postfix), lets
"mailoncectl restart" finish the job, and then checks two things: every
pending recipient has exactly one copy at the sink (skipped and refused
ones none), and the ledger agrees (statuses, num_sent + num_errors +
num_skipped = num_profiles, "mailoncectl check" exits 0).

A sender killed between the final "." and the 250 reply leaves a seq
accepted. The restart helper sends it again, the milter discards the copy
as a duplicate, and the seq stays accepted until the Postfix log shows
whether the first copy was committed. So the tests that kill the sender
run with ConfirmCommits and MailLog (confirming_mailer) and apply the log
with "mailoncectl follow" before the mailing can complete.
"""

import os
import pwd
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


def plain_mailer(make_stack):
    """Return a Mailer on a new stack with ConfirmCommits off in the milter and mailoncectl."""
    off = {"ConfirmCommits": "no"}
    return Mailer(make_stack(milter_conf=off), off)


def confirming_mailer(make_stack, confirm_timeout="1s", milter_follows=True):
    """Return a Mailer on a new stack whose milter and mailoncectl confirm commits.

    The Postfix log (MailLog) is read by the milter's follower thread, or
    with milter_follows false by "mailoncectl follow" run by the test. The
    follower turns an accepted seq into queued when its queue file was
    committed. When the log gets ConfirmTimeout past the handoff without
    that commit, the milter accepts the next attempt of the seq anew.
    """
    confirm = {"ConfirmCommits": "yes", "ConfirmTimeout": confirm_timeout}
    stack = make_stack(milter_conf=confirm)
    if milter_follows:
        # The log path is known only now, so the milter starts again with it.
        stack.milter.conf_overrides["MailLog"] = stack.postfix.log_path
        stack.milter.write_conf()
        stack.milter.restart()
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
    mailer = confirming_mailer(make_stack) if confirm else plain_mailer(make_stack)
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
    mailer = confirming_mailer(make_stack)
    stack = mailer.stack
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


def accepted_count(mailer, mailing):
    rows = mailer.ledger().query("SELECT count(*) AS n FROM recipient"
                                 " WHERE mailing_id = ? AND status = 'accepted'", (mailing,))
    return rows[0]["n"]


def stop_postfix_mid_mailing(mailer, mailing, rows):
    """Send a mailing, stop Postfix after 40 messages, kill the sender, start Postfix."""
    stack = mailer.stack
    mailer.create(mailing, rows)
    proc = mailer.start_send(mailing)

    wait_for(lambda: len(stack.sink.files()) >= 40, 30)
    # Stop while the milter has a seq accepted that the sender has not yet
    # seen queued, so that a handoff is likely to be between the milter's
    # decision and Postfix's commit.
    wait_for(lambda: accepted_count(mailer, mailing) > 0, 5, interval=0.001)
    master = stack.postfix.master_pid()
    stack.postfix.cmd("stop")
    # The pid file outlives master, so wait for the process itself.
    harness.wait_until(lambda: not harness.pid_alive(master), 15, description="master to exit")
    mailer.kill(proc)
    at_stop = {r["status"] for r in mailer.ledger().recipients(mailing)}

    # A stop during cleanup can leave an empty queue file under its
    # temporary name (PID.MICROSECONDS, while long queue ids have no dot).
    # It never becomes mail and would keep the queue from looking empty,
    # so it is removed. "postfix start" runs postsuper, which would warn
    # about it into maillog_file as the postfix user and fail the start
    # ("Postfix integrity check failed") if that user cannot open the log.
    incoming = os.path.join(stack.postfix.queue_dir, "incoming")
    for name in os.listdir(incoming):
        if "." in name:
            os.unlink(os.path.join(incoming, name))
    postfix_user = pwd.getpwnam("postfix")
    os.chown(stack.postfix.log_path, postfix_user.pw_uid, postfix_user.pw_gid)
    stack.postfix.cmd("start")
    harness.wait_port(stack.port, 10)
    return at_stop


@pytest.mark.parametrize("follower", ["milter-follows", "follow-running", "follow-once"])
def test_postfix_stopped_with_commit_confirmation(make_stack, follower):
    # 5 s keeps "follow --once" right after the Postfix start short of
    # ConfirmTimeout, as the default of 10 minutes would after a reboot.
    mailer = confirming_mailer(make_stack, "5s" if follower == "follow-once" else "1s",
                               milter_follows=follower == "milter-follows")
    try:
        rows = recipients("pc", 150)
        stop_postfix_mid_mailing(mailer, "postfix-confirm", rows)
        if follower == "milter-follows":
            mailer.finish()
        elif follower == "follow-running":
            # The follower keeps reading the log while the restart helper
            # resends, so the log time passes ConfirmTimeout after the
            # handoff that Postfix never committed, and the milter accepts
            # the retry anew.
            follow = mailer.start_follow()
            mailer.restart()
            assert mailer.stop(follow) == EX_OK, mailer.send_log("follow")
        else:
            # "follow --once" before each restart round, as a boot script
            # would run it right after Postfix starts. A seq whose retry
            # gets "being confirmed" stays accepted for the next round
            # instead of ending as an error.
            mailer.finish()
        mailer.verify("postfix-confirm", addresses(rows), by_queue_id=True)
    finally:
        mailer.stop_all()


@pytest.mark.parametrize("batch_size", [None, "30"], ids=["one-batch", "batches-of-30"])
def test_two_senders_on_one_mailing(mailer, stack, batch_size):
    mailing = f"two-senders-{batch_size}"
    rows = recipients(f"two{batch_size}", 120)
    mailer.create(mailing, rows)
    options = ["--batch-size", batch_size] if batch_size else []
    first = mailer.start_send(mailing, *options)
    second = mailer.start_send(mailing, *options)
    first.wait(120)
    second.wait(120)

    # A sender that found every batch leased by the other exits 75.
    codes = sorted([first.returncode, second.returncode])
    assert codes in ([EX_OK, EX_OK], [EX_OK, EX_TEMPFAIL]), (
        f"exit codes {codes}:\n{mailer.send_log(mailing)}")
    mailer.verify(mailing, addresses(rows))
    # Each seq was handed to Postfix once, because the lease kept the senders apart.
    decisions = mailer.ledger().decisions(mailing)
    assert decisions == {"accept": len(rows)}, decisions


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
