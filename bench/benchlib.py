"""benchlib - what the mailonce benchmarks share.

The benchmarks reuse the end-to-end harness (tests/e2e/mailonce_harness.py)
to start private Postfix stacks on loopback, so a stack here is exactly
what the end-to-end tests run against. This module adds what a benchmark
needs on top:

- tokens made in bulk in Python from the milter's key file, with the
  same HMAC input and header layout as lib/token.c, and checked against
  "mailoncectl token --verify" before they are used;
- messages of a given size, already in SMTP DATA form (CRLF, dots
  stuffed), so the client spends no time building them;
- a threaded SMTP client that keeps one connection per thread and runs
  many transactions on it, timing each end of DATA;
- the numbers: median, percentiles, and a description of the machine.

Failures raise HarnessError or AssertionError with what went wrong; the
caller stops its stacks in a finally block.
"""

import base64
import hashlib
import hmac
import math
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRCDIR, "tests", "e2e"))

import mailonce_harness as h  # noqa: E402

SENDER = "bench@sender.bench.test"

if "/usr/sbin" not in os.environ.get("PATH", "").split(":"):
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin"


def builddir_or_exit():
    """Return the build directory from MAILONCE_BUILDDIR, or exit naming the fix."""
    builddir = h.find_builddir()
    if not builddir:
        sys.exit("set MAILONCE_BUILDDIR to a build directory with plugin/mailonce-milter")
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark starts a private Postfix")
    return builddir


class UnixMilter(h.Milter):
    """The harness's milter, listening on a unix-domain socket instead of TCP."""

    def __init__(self, root, builddir, conf_overrides=None, name="milter"):
        super().__init__(root, builddir, conf_overrides, name)
        self.sock_path = os.path.join(self.dir, "milter.sock")
        self.conf_overrides.setdefault("Socket", f"unix:{self.sock_path}")
        # Postfix's smtpd and cleanup run as user postfix and must connect.
        self.conf_overrides.setdefault("UMask", "000")

    @property
    def spec(self):
        return f"unix:{self.sock_path}"

    def start(self, timeout=10.0):
        if not self.prepared:
            self.prepare()
        self.proc = h.Process([self.program, "-f", "-c", self.conf_path], self.log_path).start()
        h.wait_until(lambda: os.path.exists(self.sock_path), timeout,
                     description=f"mailonce-milter socket {self.sock_path}")
        return self


def milter_stack(builddir, socket_kind="inet", milter_conf=None):
    """Return an unstarted Stack whose milter listens on TCP ("inet") or "unix"."""
    stack = h.Stack(builddir, milter_conf=milter_conf)
    if socket_kind == "unix":
        stack.milter = UnixMilter(stack.root, builddir, milter_conf)
    return stack


# Tokens.


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def read_signing_key(path):
    """Return (key id, secret bytes) of the first key in a key file."""
    with open(path) as f:
        for line in f:
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            secret = fields[1] + "=" * (-len(fields[1]) % 4)
            return fields[0], base64.urlsafe_b64decode(secret)
    raise h.HarnessError(f"{path}: no key line")


class TokenMaker:
    """Mailonce-Token values signed with the first key of a key file."""

    def __init__(self, key_file):
        self.key_id, self.secret = read_signing_key(key_file)

    def token(self, mailing, seq, rcpt):
        signed = f"v=1;m={mailing};s={seq};r={rcpt.lower()}".encode("utf-8")
        mac = hmac.new(self.secret, signed, hashlib.sha256).digest()[:16]
        return f"v=1; m={mailing}; s={seq}; k={self.key_id}; h={b64url(mac)}"


def check_tokens(milter, maker, samples):
    """Check a few tokens with "mailoncectl token --verify"; raise on a mismatch."""
    for mailing, seq, rcpt in samples:
        value = maker.token(mailing, seq, rcpt)
        res = milter.ctl("token", "-f", milter.key_file, "--verify", value, rcpt, check=False)
        if res.returncode != 0:
            raise h.HarnessError(f"token {value!r} for {rcpt} does not verify: "
                                 f"{res.stdout.strip()} {res.stderr.strip()}")


# Messages.


def body_of_size(size):
    """Return a text body of about size bytes in lines of 76 characters."""
    line = ("The quick brown fox jumps over the lazy dog. " * 2)[:76] + "\n"
    return line * max(1, size // len(line))


def rcpt_of(i):
    return f"user{i}@example.bench.test"


def make_jobs(count, size, mailing=None, maker=None, first_seq=1):
    """Return [(rcpt, DATA bytes)]: one recipient each, a token when mailing is set."""
    body = body_of_size(size)
    jobs = []
    for i in range(count):
        rcpt = rcpt_of(first_seq + i)
        token = maker.token(mailing, first_seq + i, rcpt) if mailing else None
        msg = h.make_message(SENDER, rcpt, subject=f"bench {i}", body=body, token=token,
                             message_id=f"<bench.{mailing or 'u'}.{first_seq + i}"
                                        f".{time.time_ns()}@bench.test>")
        jobs.append((rcpt, h.encode_data(msg)))
    return jobs


# The SMTP client.


class Session:
    """One SMTP connection that runs many transactions and times each end of DATA."""

    def __init__(self, port):
        self.smtp = h.SmtpSession(port, helo="client.bench.test")
        # The content and the final "." go out in one write, and without
        # Nagle's algorithm, so the client adds no delayed-ACK wait.
        self.smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.smtp.ehlo()

    def transaction(self, rcpt, data):
        """Send one message; return (reply code, seconds from "." to the reply)."""
        s = self.smtp
        refused = s.envelope(SENDER, [rcpt])
        if refused:
            s.command("RSET")
            return refused.code, 0.0
        reply = s.command("DATA")
        if reply.code != 354:
            return reply.code, 0.0
        s.sock.sendall(data + b".\r\n")
        t0 = time.perf_counter()
        reply = s.read_reply()
        return reply.code, time.perf_counter() - t0

    def close(self):
        self.smtp.quit()


def run_parallel(port, jobs, sessions):
    """Send jobs over `sessions` connections; return (seconds, codes {code: n}, latencies)."""
    parts = [jobs[i::sessions] for i in range(sessions)]
    codes = {}
    latencies = []
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(sessions + 1)

    def worker(part):
        mine_codes = {}
        mine_lat = []
        try:
            sess = Session(port)
        except Exception as e:
            errors.append(e)
            start.abort()
            return
        try:
            start.wait()
            for rcpt, data in part:
                code, lat = sess.transaction(rcpt, data)
                mine_codes[code] = mine_codes.get(code, 0) + 1
                mine_lat.append(lat)
            sess.close()
        except Exception as e:
            errors.append(e)
        with lock:
            for c, n in mine_codes.items():
                codes[c] = codes.get(c, 0) + n
            latencies.extend(mine_lat)

    threads = [threading.Thread(target=worker, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise h.HarnessError(f"SMTP client failed: {errors[0]!r}")
    return elapsed, codes, latencies


# Numbers.


def percentile(values, p):
    """Return the p-th percentile (0..100) of values, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = math.ceil(p / 100.0 * len(ordered))
    return ordered[max(0, min(len(ordered), rank) - 1)]


def median(values):
    return statistics.median(values)


def sink_count(sink):
    return len(sink.files())


def wait_delivered(stack, count, timeout=120.0):
    """Wait until the sink has count messages and the queue is empty."""
    h.wait_until(lambda: sink_count(stack.sink) >= count, timeout,
                 description=f"{count} messages at the sink")
    stack.settle(timeout)


def rss_kib(pid):
    """Return {"VmRSS": kib, "VmHWM": kib} of a process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def machine(builddir=None):
    """Return lines that describe this machine and the build, for RESULTS.md."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    disk = subprocess.run(["findmnt", "-no", "SOURCE,FSTYPE", "-T", "/tmp"],
                          capture_output=True, text=True).stdout.strip()
    version = subprocess.run(["postconf", "-dh", "mail_version"], capture_output=True,
                             text=True).stdout.strip()
    return [f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
            f"nproc: {os.cpu_count()}, CPU: {model}",
            f"kernel: {platform.release()}",
            f"disk of /tmp: {disk}",
            f"Postfix: {version}, Python {platform.python_version()}",
            f"mailonce CFLAGS: {build_flags(builddir) if builddir else 'unknown'}"]


def build_flags(builddir):
    """Return the CFLAGS line of the build's Makefile."""
    try:
        with open(os.path.join(builddir, "Makefile")) as f:
            for line in f:
                m = re.match(r"^CFLAGS = (.*)$", line)
                if m:
                    return m.group(1).strip()
    except OSError:
        pass
    return "unknown"
