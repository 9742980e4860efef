"""Tests of the end-to-end harness itself (Postfix and smtp-sink, no milter)."""

import os

import pytest

import mailonce_harness as h

SENDER = "sender@e2e.test"


def test_loopback_check_rejects_all_interfaces(tmp_path):
    root = str(tmp_path)
    os.chmod(root, 0o755)
    postfix = h.Postfix(root, sink_port=h.free_port(), settings={"inet_interfaces": "all"})
    with pytest.raises(h.HarnessError, match="inet_interfaces"):
        postfix.configure()


def test_loopback_check_rejects_remote_relay(tmp_path):
    root = str(tmp_path)
    os.chmod(root, 0o755)
    postfix = h.Postfix(root, sink_port=h.free_port(),
                        settings={"relayhost": "[192.0.2.1]:25"})
    with pytest.raises(h.HarnessError, match="relayhost"):
        postfix.configure()


def test_plain_postfix_delivers_to_sink(make_stack):
    stack = make_stack(milter=False)
    message = h.make_message(SENDER, "a@example.test", body=".dot\nplain\n")

    reply = h.send(stack.port, SENDER, ["a@example.test", "b@example.test"], message)
    assert reply.code == 250, reply
    assert reply.queue_id
    stack.settle()

    assert stack.sink.copies() == {"a@example.test": 1, "b@example.test": 1}
    (delivered,) = stack.sink.messages()
    assert delivered.envelope_sender == SENDER
    assert delivered.without_trace_headers() == message
    assert stack.postfix.log_lines(reply.queue_id + r": .*status=sent")


def test_refused_recipient_bounces(make_stack):
    stack = make_stack(milter=False, refuse=["x@example.test", "refused.test"])
    rcpts = ["x@example.test", "y@refused.test", "ok@example.test"]

    reply = h.send(stack.port, SENDER, rcpts, h.make_message(SENDER, "x@example.test"))
    assert reply.code == 250, reply
    h.wait_until(lambda: stack.sink.copies(SENDER) >= 1, 20, description="the bounce to the sender")
    stack.settle()

    assert stack.refused_sink.messages() == []
    assert stack.sink.copies() == {"ok@example.test": 1, SENDER: 1}
    (bounce,) = stack.sink.messages_for(SENDER)
    assert b"550 5.1.1 Recipient refused by test" in bounce.body
    assert b"<x@example.test>" in bounce.body
    assert b"<y@refused.test>" in bounce.body


def test_stop_leaves_no_daemon(make_stack):
    stack = make_stack(milter=False)
    master = stack.postfix.master_pid()
    sink = stack.sink.proc.pid
    assert h.pid_comm(master) == "master"

    stack.stop()

    assert not h.pid_alive(master)
    assert not h.pid_alive(sink)
    assert not h.port_accepts(stack.port)


def open_files(pid):
    """Return what the descriptors of pid point to, skipping ones closed meanwhile."""
    fd_dir = f"/proc/{pid}/fd"
    targets = []
    for fd in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(os.path.join(fd_dir, fd)))
        except FileNotFoundError:
            pass  # the daemon closed it between listdir and readlink
    return targets


def test_daemons_inherit_no_descriptor(make_stack, tmp_path):
    marker = str(tmp_path / "marker")
    with open(marker, "w") as held:
        os.set_inheritable(held.fileno(), True)
        stack = make_stack()
        pids = {"smtp-sink": stack.sink.proc.pid, "mailonce-milter": stack.milter.pid,
                "master": stack.postfix.master_pid()}

        for name, pid in pids.items():
            targets = open_files(pid)
            assert marker not in targets, f"{name} (pid {pid}) inherited {marker}"


def test_deferred_mail_flushed_after_sink_restart(make_stack):
    stack = make_stack(milter=False, settings={"queue_run_delay": "300s",
                                               "minimal_backoff_time": "300s",
                                               "maximal_backoff_time": "300s"})
    stack.sink.stop()

    rcpt = "late@example.test"
    reply = h.send(stack.port, SENDER, rcpt, h.make_message(SENDER, rcpt))
    assert reply.code == 250, reply
    h.wait_until(lambda: stack.postfix.log_lines(reply.queue_id + r": .*status=deferred"), 20,
                 description="the delivery to be deferred")
    queued = stack.postfix.queue()
    assert [q["queue_id"] for q in queued] == [reply.queue_id]
    assert queued[0]["queue_name"] == "deferred"

    stack.sink.start()
    stack.postfix.flush()
    stack.settle(30)
    assert stack.sink.copies() == {rcpt: 1}
