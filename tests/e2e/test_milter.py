"""End-to-end tests of mailonce-milter behind a real Postfix.

These tests share one sink + milter + Postfix (the milter_stack fixture).
Each uses its own mailing id and starts with an empty queue and sink.
Every test checks the copies each recipient received at the sink and the
rows the milter wrote to the ledger.
"""

import re
import time

import pytest

import mailonce_harness as h

SENDER = "news@sender.e2e.test"


def queue_id_of(stack, message_id, timeout=10.0):
    """Return the Postfix queue id that cleanup logged for message_id."""
    rx = re.compile(r"\b([0-9A-Za-z]+): message-id=" + re.escape(message_id))

    def find():
        for line in stack.postfix.log().splitlines():
            m = rx.search(line)
            if m:
                return m.group(1)
        return None
    return h.wait_until(find, timeout, description=f"Postfix to log {message_id}")


def total_handoffs(stack):
    return len(stack.milter.ledger().query("SELECT id FROM handoff"))


def strip_header(message, name):
    """Return message (bytes) without the header lines called name."""
    out = []
    skipping = False
    head, body = message.split(b"\n\n", 1)
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(name.lower().encode() + b":")
        if not skipping:
            out.append(line)
    return b"\n".join(out) + b"\n\n" + body


def test_untracked_passes_unchanged(stack):
    rcpts = ["alice@example.test", "bob@example.test"]
    message = (b"From: Sender <news@sender.e2e.test>\n"
               b"To: alice@example.test, bob@example.test\n"
               b"Subject: an untracked message with a long header that Postfix\n"
               b" must keep folded exactly as it was sent\n"
               b"Date: Fri, 04 Dec 2026 10:00:00 +0000\n"
               b"Message-ID: <untracked.1@e2e.test>\n"
               b"X-Mailonce-Note: not a token\n"
               b"MIME-Version: 1.0\n"
               b"Content-Type: text/plain; charset=utf-8\n"
               b"Content-Transfer-Encoding: 8bit\n"
               b"\n"
               b"First line.\n"
               b".A line that starts with a dot\n"
               b"..two dots\n"
               b"Caf\xc3\xa9 \xe2\x82\xac 8-bit text\n"
               b"\n"
               b"Trailing blank line above.\n")
    before = total_handoffs(stack)

    reply = h.send(stack.port, SENDER, rcpts, message)
    assert reply.code == 250, reply
    stack.settle()

    assert stack.sink.copies() == {"alice@example.test": 1, "bob@example.test": 1}
    for delivered in stack.sink.messages():
        assert delivered.without_trace_headers() == message
        assert len(delivered.header("Received")) == 1
    assert total_handoffs(stack) == before


def test_tracked_delivered_once_without_token(stack, mailing):
    rcpt = "carol@example.test"
    token = stack.milter.token(mailing, 1, rcpt)
    message = h.make_message(SENDER, rcpt, token=token)

    reply = h.send(stack.port, SENDER, rcpt, message)
    assert reply.code == 250, reply
    assert reply.queue_id
    stack.settle()

    assert stack.sink.copies() == {rcpt: 1}
    (delivered,) = stack.sink.messages_for(rcpt)
    assert delivered.header("Mailonce-Token") == []
    assert delivered.without_trace_headers() == strip_header(message, "Mailonce-Token")

    ledger = stack.milter.ledger()
    row = ledger.recipient(mailing, 1)
    assert row is not None
    assert row["status"] in ("accepted", "queued")
    assert row["address"].lower() == rcpt
    handoffs = ledger.handoffs(mailing)
    assert [x["decision"] for x in handoffs] == ["accept"]
    assert handoffs[0]["queue_id"] == reply.queue_id
    assert handoffs[0]["seq"] == 1

    # One decision line, queue id first, with the mailing and seq.
    lines = stack.milter.log_lines(re.escape(reply.queue_id))
    assert any(f"mailing={mailing}" in x and "seq=1" in x for x in lines), lines


def test_sendmail_submission_tracked_once(stack, mailing):
    """Mail from sendmail(1) reaches the milter through non_smtpd_milters."""
    rcpt = "kim@example.test"
    message = h.make_message(SENDER, rcpt, token=stack.milter.token(mailing, 1, rcpt))
    ledger = stack.milter.ledger()

    stack.postfix.sendmail(SENDER, rcpt, message)
    stack.postfix.sendmail(SENDER, rcpt, message)
    h.wait_until(lambda: len(ledger.handoffs(mailing)) == 2, 20,
                 description="two handoff rows from pickup")
    stack.settle()

    assert stack.sink.copies() == {rcpt: 1}
    (delivered,) = stack.sink.messages_for(rcpt)
    assert delivered.header("Mailonce-Token") == []
    assert [x["decision"] for x in ledger.handoffs(mailing)] == ["accept", "duplicate"]


def test_lost_reply_retried_delivers_once(stack, mailing):
    """The RFC 1047 window: "." sent, connection dropped, three retries."""
    rcpt = "dave@example.test"
    token = stack.milter.token(mailing, 7, rcpt)
    message = h.make_message(SENDER, rcpt, token=token)
    ledger = stack.milter.ledger()

    h.send_and_drop(stack.port, SENDER, rcpt, message)
    # A real sender retries after its timeout; wait until the first
    # attempt has reached the milter so the order of decisions is known.
    h.wait_until(lambda: ledger.handoffs(mailing), 10, description="the first handoff row")

    for attempt in range(3):
        reply = h.send(stack.port, SENDER, rcpt, message)
        assert reply.code == 250, f"retry {attempt + 1}: {reply}"
    stack.settle()

    assert stack.sink.copies() == {rcpt: 1}
    assert ledger.decisions(mailing, 7) == {"accept": 1, "duplicate": 3}
    assert ledger.recipient(mailing, 7)["status"] in ("accepted", "queued")
    lines = stack.milter.log_lines(rf"mailing={re.escape(mailing)} seq=7 .*action=discard")
    assert len(lines) == 3, lines


def test_retry_with_new_message_id_once(stack, mailing):
    rcpt = "erin@example.test"
    token = stack.milter.token(mailing, 2, rcpt)
    first = h.make_message(SENDER, rcpt, token=token, message_id="<first.2@e2e.test>",
                           date="Fri, 04 Dec 2026 10:00:00 +0000")
    second = h.make_message(SENDER, rcpt, token=token, message_id="<second.2@e2e.test>",
                            date="Fri, 04 Dec 2026 10:05:00 +0000")

    reply1 = h.send(stack.port, SENDER, rcpt, first)
    reply2 = h.send(stack.port, SENDER, rcpt, second)
    assert reply1.code == 250, reply1
    assert reply2.code == 250, reply2
    stack.settle()

    assert stack.sink.copies() == {rcpt: 1}
    (delivered,) = stack.sink.messages_for(rcpt)
    assert delivered.header("Message-ID") == ["<first.2@e2e.test>"]
    ledger = stack.milter.ledger()
    assert [x["decision"] for x in ledger.handoffs(mailing, 2)] == ["accept", "duplicate"]


def _bad_token_cases(milter, mailing, rcpt):
    """Return {case: (recipients, extra token headers)}, each to be rejected."""
    good = milter.token(mailing, 3, rcpt)
    mac = re.search(r"h=([A-Za-z0-9_-]+)", good).group(1)
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    return {
        "malformed": ([rcpt], [f"v=1; m={mailing}; s=03; k=x; h=%%%"]),
        "forged MAC": ([rcpt], [good.replace(f"h={mac}", f"h={flipped}")]),
        "other recipient": ([rcpt], [milter.token(mailing, 4, "someone.else@example.test")]),
        "two recipients": ([rcpt, "frank@example.test"], [good]),
        "two token headers": ([rcpt], [good, milter.token(mailing, 5, rcpt)]),
    }


@pytest.mark.parametrize("case", ["malformed", "forged MAC", "other recipient",
                                  "two recipients", "two token headers"])
def test_bad_token_rejected(stack, mailing, case):
    rcpt = "grace@example.test"
    recipients, tokens = _bad_token_cases(stack.milter, mailing, rcpt)[case]
    message_id = f"<bad.{time.time_ns()}@e2e.test>"
    message = h.make_message(SENDER, rcpt, message_id=message_id,
                             extra_headers=[f"Mailonce-Token: {t}" for t in tokens])

    reply = h.send(stack.port, SENDER, recipients, message)
    assert reply.code == 550, reply
    assert reply.enhanced == "5.7.1", reply
    stack.settle()

    assert stack.sink.messages() == []
    assert stack.milter.ledger().decisions(mailing).get("accept", 0) == 0
    queue_id = queue_id_of(stack, message_id)
    lines = stack.milter.log_lines(r"^(.*\s)?" + re.escape(queue_id) + r"\b")
    assert len(lines) == 1, lines
    assert "reject" in lines[0]


def test_milter_down_tempfails_then_delivers(stack, mailing):
    rcpt = "heidi@example.test"
    token = stack.milter.token(mailing, 1, rcpt)
    message = h.make_message(SENDER, rcpt, token=token)
    stack.milter.stop()

    reply = h.send(stack.port, SENDER, rcpt, message)
    assert 400 <= reply.code < 500, reply
    stack.settle()
    assert stack.sink.messages() == []
    assert stack.postfix.queue_files() == []

    stack.milter.start()
    reply = h.send(stack.port, SENDER, rcpt, message)
    assert reply.code == 250, reply
    stack.settle()

    assert stack.sink.copies() == {rcpt: 1}
    assert stack.milter.ledger().decisions(mailing, 1) == {"accept": 1}


def test_milter_killed_keeps_ledger(stack, mailing):
    """A SIGKILL between a handoff and its retry loses no ledger row."""
    rcpt = "ivy@example.test"
    message = h.make_message(SENDER, rcpt, token=stack.milter.token(mailing, 1, rcpt))

    reply = h.send(stack.port, SENDER, rcpt, message)
    assert reply.code == 250, reply
    assert stack.milter.kill() == -9
    stack.milter.start()
    reply = h.send(stack.port, SENDER, rcpt, message)
    assert reply.code == 250, reply
    stack.settle()

    assert stack.sink.copies() == {rcpt: 1}
    assert stack.milter.ledger().decisions(mailing, 1) == {"accept": 1, "duplicate": 1}


def test_race_fifty_seqs_twice_each(stack, mailing):
    """50 seqs, each sent on two connections whose "." leave together."""
    count = 50
    jobs = []
    for seq in range(1, count + 1):
        rcpt = f"r{seq}@example.test"
        message = h.make_message(SENDER, rcpt, token=stack.milter.token(mailing, seq, rcpt),
                                 subject=f"seq {seq}")
        jobs += [(SENDER, rcpt, message), (SENDER, rcpt, message)]

    replies = h.send_simultaneously(stack.port, jobs)
    errors = [r for r in replies if not isinstance(r, h.Reply)]
    assert errors == []

    # A 4xx (ledger busy under this load) is what a sender retries.
    refused = [r for r in replies if r.code >= 500]
    assert refused == []
    tempfailed = [jobs[i] for i, r in enumerate(replies) if 400 <= r.code < 500]
    for sender, rcpt, message in tempfailed:
        reply = h.send(stack.port, sender, rcpt, message)
        assert reply.code == 250, reply
    stack.settle(60)

    copies = stack.sink.copies()
    assert len(copies) == count, f"{len(tempfailed)} tempfailed and retried"
    assert set(copies.values()) == {1}, {k: v for k, v in copies.items() if v != 1}
    ledger = stack.milter.ledger()
    decisions = ledger.decisions(mailing)
    assert decisions == {"accept": count, "duplicate": count}
    for seq in range(1, count + 1):
        assert ledger.decisions(mailing, seq).get("accept") == 1, seq
