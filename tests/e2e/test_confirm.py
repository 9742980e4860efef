"""End-to-end tests of commit confirmation through the Postfix log.

mailonce-milter passes a tracked message at end of data, but Postfix
commits the queue file only afterwards. These tests make Postfix refuse
a message after our milter accepted it (a second milter replies 451 to
the first attempt of each seq), bounce a recipient, and rotate the log,
and check what "mailoncectl follow --once" records from the log and
what reaches the sink.

Each test starts its own stack. The second milter sees the message as
our milter left it, so the tests that use it keep the token in the
message (StripToken no). MailLog is added to the milter's
configuration after the stack is up, because the Postfix log path is
known only then; the running milter does not follow the log itself, so
every step of the follower here is an explicit "follow --once".
"""

import os
import re

import pytest

import mailonce_harness as h

SENDER = "news@sender.e2e.test"


@pytest.fixture
def tempfail_milter(builddir, tmp_path):
    """Start tests/e2e/tempfail_milter on a free port; return its socket spec."""
    program = os.path.join(builddir, "tests", "e2e", "tempfail_milter")
    if not os.access(program, os.X_OK):
        pytest.skip(f"{program} not built: run make check, which builds it")
    port = h.free_port()
    proc = h.Process([program, f"inet:{port}@{h.LOOPBACK}"],
                     str(tmp_path / "tempfail_milter.log")).start()
    try:
        h.wait_port(port, 10, f"tempfail_milter on port {port}")
        yield f"inet:{h.LOOPBACK}:{port}"
    finally:
        proc.stop()


def enable_follow(stack):
    """Point MailLog of the milter's configuration at the Postfix log."""
    stack.milter.conf_overrides["MailLog"] = stack.postfix.log_path
    stack.milter.write_conf()


def follow_once(stack):
    """Run "mailoncectl follow --once"; return its counts as a dict."""
    out = stack.milter.ctl("follow", "--once").stdout
    counts = dict(re.findall(r"(\w+)=(\d+)", out))
    assert "lines" in counts, out
    return {k: int(v) for k, v in counts.items()}


def wait_log(stack, pattern, count=1, timeout=20.0):
    h.wait_until(lambda: len(stack.postfix.log_lines(pattern)) >= count, timeout,
                 description=f"{count} Postfix log line(s) matching {pattern}")


def first_attempt_refused(stack, mailing, rcpt):
    """Send seq 1 once: our milter accepts, the second milter replies 451."""
    message = h.make_message(SENDER, rcpt, token=stack.milter.token(mailing, 1, rcpt))
    reply = h.send(stack.port, SENDER, rcpt, message)
    assert reply.code == 451, reply
    assert "refused by test milter" in reply.text, reply
    wait_log(stack, r"milter-reject: END-OF-MESSAGE .*4\.7\.1 first attempt")
    assert stack.milter.ledger().recipient(mailing, 1)["status"] == "accepted"
    return message


def test_uncommitted_first_attempt_retried_once(make_stack, tempfail_milter, mailing):
    stack = make_stack(milter_conf={"ConfirmCommits": "yes", "StripToken": "no"}, extra_milters=[tempfail_milter])
    enable_follow(stack)
    rcpt = "carol@example.test"
    ledger = stack.milter.ledger()
    message = first_attempt_refused(stack, mailing, rcpt)

    # Before the log is read the milter cannot know the outcome, so it replies 451.
    reply = h.send(stack.port, SENDER, rcpt, message)
    assert reply.code == 451, reply

    counts = follow_once(stack)
    assert counts["matched"] >= 1
    assert ledger.recipient(mailing, 1)["status"] == "pending"
    assert ledger.handoffs(mailing, 1)[0]["commit_state"] == "not_committed"

    reply = h.send(stack.port, SENDER, rcpt, message)
    assert reply.code == 250, reply
    stack.settle()
    assert stack.sink.copies(rcpt) == 1

    wait_log(stack, r"status=sent")
    follow_once(stack)
    assert ledger.recipient(mailing, 1)["status"] == "delivered"
    assert ledger.mailing(mailing)["num_delivered"] == 1


def test_without_confirm_commits_retry_is_lost(make_stack, tempfail_milter, mailing):
    """The same sequence with ConfirmCommits off: the retry counts as a duplicate."""
    stack = make_stack(milter_conf={"ConfirmCommits": "no", "StripToken": "no"}, extra_milters=[tempfail_milter])
    enable_follow(stack)
    rcpt = "dave@example.test"
    message = first_attempt_refused(stack, mailing, rcpt)

    reply = h.send(stack.port, SENDER, rcpt, message)
    assert reply.code == 250, reply
    stack.settle()

    assert stack.sink.copies(rcpt) == 0
    assert stack.milter.ledger().decisions(mailing).get("duplicate") == 1


def test_refused_recipient_ends_bounced(make_stack, mailing):
    stack = make_stack(refuse=["refused.e2e.test"])
    enable_follow(stack)
    good, bad = "erin@example.test", "nobody@refused.e2e.test"
    ledger = stack.milter.ledger()

    for seq, rcpt in ((1, good), (2, bad)):
        message = h.make_message(SENDER, rcpt, token=stack.milter.token(mailing, seq, rcpt))
        reply = h.send(stack.port, SENDER, rcpt, message)
        assert reply.code == 250, reply
    stack.settle()
    wait_log(stack, r"status=bounced")

    counts = follow_once(stack)
    assert counts["matched"] >= 4
    assert ledger.recipient(mailing, 1)["status"] == "delivered"
    row = ledger.recipient(mailing, 2)
    assert row["status"] == "bounced"
    assert "550 5.1.1" in (row["last_error"] or "")
    assert ledger.mailing(mailing)["num_bounced"] == 1
    assert ledger.mailing(mailing)["num_delivered"] == 1
    assert stack.sink.copies(good) == 1


def send_seqs(stack, mailing, seqs):
    for seq in seqs:
        rcpt = f"r{seq}@example.test"
        message = h.make_message(SENDER, rcpt, token=stack.milter.token(mailing, seq, rcpt))
        reply = h.send(stack.port, SENDER, rcpt, message)
        assert reply.code == 250, reply
    stack.settle()


def test_log_rotated_mid_mailing(make_stack, mailing):
    stack = make_stack()
    enable_follow(stack)
    ledger = stack.milter.ledger()
    log = stack.postfix.log_path

    send_seqs(stack, mailing, range(1, 6))
    wait_log(stack, r"status=sent", 5)
    first = follow_once(stack)
    assert first["matched"] == 10

    # More mail, then the log is renamed before the follower read it.
    send_seqs(stack, mailing, range(6, 11))
    wait_log(stack, r"status=sent", 10)
    os.rename(log, log + ".0")
    stack.postfix.cmd("reload")
    send_seqs(stack, mailing, range(11, 16))
    h.wait_until(lambda: os.path.exists(log) and os.path.getsize(log) > 0, 20,
                 description="Postfix to write a new log")
    h.wait_until(lambda: sum(1 for line in open(log) if "status=sent" in line) >= 5, 20,
                 description="the deliveries of seq 11-15 in the new log")

    second = follow_once(stack)
    assert second["rotations"] == 1
    assert second["matched"] == 20

    # A restart of the follower reads nothing again.
    third = follow_once(stack)
    assert third["lines"] == 0
    assert third["matched"] == 0

    statuses = [r["status"] for r in ledger.recipients(mailing)]
    assert statuses == ["delivered"] * 15
    assert ledger.mailing(mailing)["num_delivered"] == 15
    assert stack.sink.copies() == {f"r{seq}@example.test": 1 for seq in range(1, 16)}
