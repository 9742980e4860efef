"""End-to-end tests that need a Postfix or milter with their own settings.

Each test starts its own sink, Postfix and (when it needs one) milter.
"""

import time

import mailonce_harness as h

SENDER = "news@sender.e2e.test"


def test_lost_reply_without_milter_duplicates(make_stack):
    """Plain Postfix delivers a retried message twice: the window is real."""
    stack = make_stack(milter=False)
    rcpt = "ivan@example.test"
    message = h.make_message(SENDER, rcpt, token="v=1; m=plain; s=1; k=k1; h=AAAA")

    h.send_and_drop(stack.port, SENDER, rcpt, message)
    h.wait_until(lambda: stack.sink.copies(rcpt) >= 1, 20, description="the first copy")
    reply = h.send(stack.port, SENDER, rcpt, message)
    assert reply.code == 250, reply
    stack.settle()

    assert stack.sink.copies(rcpt) >= 2


def test_busy_ledger_tempfails_then_accepts(make_stack, mailing):
    stack = make_stack(milter_conf={"BusyTimeout": "1s"})
    rcpt = "judy@example.test"
    message = h.make_message(SENDER, rcpt, token=stack.milter.token(mailing, 1, rcpt))
    ledger = stack.milter.ledger()

    with h.LedgerLock(stack.milter.database):
        started = time.monotonic()
        reply = h.send(stack.port, SENDER, rcpt, message)
        waited = time.monotonic() - started
        assert reply.code == 451, reply
        assert reply.enhanced == "4.3.0", reply
        assert waited >= 0.9, f"answered after {waited:.2f}s, before BusyTimeout"
    stack.settle()
    assert stack.sink.messages() == []
    assert ledger.handoffs(mailing) == []

    reply = h.send(stack.port, SENDER, rcpt, message)
    assert reply.code == 250, reply
    stack.settle()

    assert stack.sink.copies() == {rcpt: 1}
    assert ledger.decisions(mailing) == {"accept": 1}
