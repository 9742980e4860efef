"""End-to-end harness: a private Postfix, smtp-sink and mailonce-milter on loopback.

Everything a test starts lives in one temporary directory and listens on
127.0.0.1 only:

- Sink: smtp-sink that dumps each delivered message to a file, so a test
  counts the copies each envelope recipient received;
- Postfix: a private instance (own config, queue and data directories)
  whose smtpd listens on a free loopback port and which relays every
  message to the sink. Before it starts, the harness reads the written
  configuration back and rejects any setting that could reach another
  host;
- Milter: mailonce-milter from the build directory with a generated
  mailonce.conf, its stderr kept in a file;
- SmtpSession: a socket SMTP client that can also send the final "." and
  close without reading the reply (the RFC 1047 window);
- Ledger: read-only queries of the milter's SQLite ledger.

Daemons are stopped by the PID recorded when they started. Before any
signal the harness checks /proc/PID/comm, so that a reused PID of
another program is never hit. Nothing is killed by name.

Errors: a daemon that fails to start raises HarnessError with the tail of
its log, and a wait that times out raises AssertionError naming what it
waited for.
"""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time

LOOPBACK = "127.0.0.1"
SINK_USER = "nobody"


class HarnessError(Exception):
    """A daemon or tool of the harness could not be started or stopped."""


# Helpers.


def wait_until(predicate, timeout=10.0, interval=0.05, description="condition"):
    """Poll predicate until it returns a true value; return that value.

    Raises AssertionError naming description when timeout seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {description}")
        time.sleep(interval)


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_accepts(port, host=LOOPBACK):
    """Return True if a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port, timeout=10.0, description=None):
    wait_until(lambda: port_accepts(port), timeout,
               description=description or f"port {port} to accept")


def wait_port_closed(port, timeout=10.0):
    wait_until(lambda: not port_accepts(port), timeout, description=f"port {port} to close")


def tail(path, lines=30):
    """Return the last lines of a text file, or a note if it is unreadable."""
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


def run(argv, check=True, env=None, timeout=60):
    """Run a command, return CompletedProcess with text stdout/stderr.

    Raises HarnessError with both outputs when check is set and it fails.
    """
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env, timeout=timeout, close_fds=True)
    if check and proc.returncode != 0:
        raise HarnessError(f"{' '.join(argv)} exited {proc.returncode}\n"
                           f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def pid_comm(pid):
    """Return the command name of pid from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def pid_alive(pid):
    """Return True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def signal_pid(pid, sig, comm):
    """Send sig to pid only if its /proc comm is still comm.

    Returns False when the process is gone or is another program (the PID
    was reused), so the signal was not sent.
    """
    actual = pid_comm(pid)
    if actual is None:
        return False
    # /proc/PID/comm is cut to 15 characters.
    if actual != comm[:15]:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def find_builddir():
    """Return the build directory with plugin/ and tools/ programs.

    Looks at MAILONCE_BUILDDIR, then top_builddir (set by make check),
    then the source tree. Returns None when none has the programs.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("MAILONCE_BUILDDIR"), os.environ.get("top_builddir"),
                  os.path.normpath(os.path.join(here, "..", ".."))]
    for d in candidates:
        if d and os.access(os.path.join(d, "plugin", "mailonce-milter"), os.X_OK):
            return os.path.abspath(d)
    return None


class Process:
    """A daemon started by the harness, known by PID and command name."""

    def __init__(self, argv, log_path, comm=None, env=None):
        self.argv = argv
        self.log_path = log_path
        self.comm = comm or os.path.basename(argv[0])
        self.env = env
        self.popen = None

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def start(self):
        # close_fds keeps the harness's descriptors (pytest capture files,
        # sockets, sqlite handles) out of the daemon; only stdio is passed.
        log = open(self.log_path, "ab")
        try:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=log, close_fds=True, env=self.env,
                                          start_new_session=True)
        finally:
            log.close()
        return self

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Send sig and wait for the exit; SIGKILL after timeout. Return the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            signal_pid(self.popen.pid, sig, self.comm)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                signal_pid(self.popen.pid, signal.SIGKILL, self.comm)
                self.popen.wait(5)
        code = self.popen.returncode
        self.popen = None
        return code

    def kill(self):
        """Kill with SIGKILL (no cleanup in the daemon) and reap it."""
        return self.stop(signal.SIGKILL)


# smtp-sink and what it delivered.


class SinkMessage:
    """One message as smtp-sink dumped it.

    sink_headers contains the X-Client-Addr, X-Mail-Args, X-Rcpt-Args, ...
    records smtp-sink writes first; `data` is the message as the SMTP
    client (Postfix) sent it, with LF line ends and Postfix's Received
    header on top.
    """

    def __init__(self, path, raw):
        self.path = path
        self.raw = raw
        self.sink_headers = []
        lines = raw.split(b"\n")
        i = 0
        while i < len(lines) and lines[i].startswith(b"X-"):
            name, _, value = lines[i].decode("utf-8", "replace").partition(":")
            self.sink_headers.append((name, value.strip()))
            i += 1

        # smtp-sink ends its records with its own three-line Received header.
        if i < len(lines) and lines[i].startswith(b"Received:"):
            i += 1
            while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                i += 1
        data = b"\n".join(lines[i:])

        # smtp-sink writes an empty line after each message.
        if data.endswith(b"\n\n"):
            data = data[:-1]
        self.data = data

    def _sink_values(self, name):
        return [v for n, v in self.sink_headers if n.lower() == name.lower()]

    @property
    def envelope_sender(self):
        args = self._sink_values("X-Mail-Args")
        return _strip_angle(args[0].split()[0]) if args and args[0] else ""

    @property
    def envelope_recipients(self):
        """Envelope recipients from the X-Rcpt-Args records, without <>."""
        return [_strip_angle(v.split()[0]) for v in self._sink_values("X-Rcpt-Args") if v]

    @property
    def header_block(self):
        return self.data.split(b"\n\n", 1)[0] + b"\n"

    @property
    def body(self):
        parts = self.data.split(b"\n\n", 1)
        return parts[1] if len(parts) == 2 else b""

    def headers(self):
        """Return the message headers as (name, unfolded value) pairs."""
        out = []
        for line in self.header_block.decode("utf-8", "replace").split("\n"):
            if not line:
                continue
            if line[0] in " \t" and out:
                out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
            else:
                name, _, value = line.partition(":")
                out.append((name, value.lstrip()))
        return out

    def header(self, name):
        """Return the values of every header called name (case-insensitive)."""
        return [v for n, v in self.headers() if n.lower() == name.lower()]

    def without_trace_headers(self):
        """Return data without the Received headers on top (added in transit)."""
        lines = self.data.split(b"\n")
        i = 0
        while i < len(lines) and lines[i].lower().startswith(b"received:"):
            i += 1
            while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                i += 1
        return b"\n".join(lines[i:])


def _strip_angle(addr):
    if addr.upper().startswith(("FROM:", "TO:")):
        addr = addr.split(":", 1)[1]
    return addr.strip().strip("<>")


class Sink:
    """smtp-sink on a loopback port, dumping one file per delivered message.

    With reject_rcpt set, every RCPT is rejected with that hard reply
    (smtp-sink -f RCPT -B REPLY). smtp-sink cannot reject one address of
    many, so Postfix routes the refused addresses to such a second sink
    (see Postfix.route_to).
    """

    def __init__(self, root, name="sink", reject_rcpt=None, user=SINK_USER):
        self.root = root
        self.dump_dir = os.path.join(root, name)
        self.log_path = os.path.join(root, f"{name}.log")
        self.port = None
        self.reject_rcpt = reject_rcpt
        self.user = user
        self.proc = None

    def start(self, port=None):
        os.makedirs(self.dump_dir, exist_ok=True)
        pw = pwd.getpwnam(self.user)
        os.chown(self.dump_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dump_dir, 0o700)
        self.port = port or self.port or free_port()
        argv = ["smtp-sink", "-u", self.user, "-4", "-d", os.path.join(self.dump_dir, "msg.")]
        if self.reject_rcpt:
            argv += ["-f", "RCPT", "-B", self.reject_rcpt]
        argv += [f"{LOOPBACK}:{self.port}", "100"]
        self.proc = Process(argv, self.log_path).start()
        try:
            wait_port(self.port, 10, f"smtp-sink on port {self.port}")
        except AssertionError as e:
            raise HarnessError(f"{e}\n{tail(self.log_path)}") from None
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def files(self):
        try:
            names = sorted(os.listdir(self.dump_dir))
        except FileNotFoundError:
            return []
        return [os.path.join(self.dump_dir, n) for n in names if n.startswith("msg.")]

    def messages(self):
        """Return every dumped message, oldest file name first."""
        out = []
        for path in self.files():
            with open(path, "rb") as f:
                out.append(SinkMessage(path, f.read()))
        return out

    def copies(self, rcpt=None):
        """Return copies per envelope recipient (lower-cased), or for one."""
        counts = {}
        for m in self.messages():
            for r in m.envelope_recipients:
                counts[r.lower()] = counts.get(r.lower(), 0) + 1
        if rcpt is not None:
            return counts.get(rcpt.lower(), 0)
        return counts

    def messages_for(self, rcpt):
        return [m for m in self.messages()
                if rcpt.lower() in (r.lower() for r in m.envelope_recipients)]

    def reset(self):
        """Delete the dumped messages (between tests that share the sink)."""
        for path in self.files():
            os.unlink(path)


# Postfix.


class Postfix:
    """A private Postfix instance under root that relays everything to a sink.

    settings: extra main.cf parameters (they override the defaults below,
    but the loopback check still applies). milters: milter socket specs
    for smtpd_milters and non_smtpd_milters.
    """

    def __init__(self, root, sink_port, milters=(), settings=None, myhostname="mailonce-e2e.test"):
        self.root = root
        self.config_dir = os.path.join(root, "postfix")
        self.queue_dir = os.path.join(root, "queue")
        self.data_dir = os.path.join(root, "data")
        self.log_dir = os.path.join(root, "log")
        self.log_path = os.path.join(self.log_dir, "maillog")
        self.sink_port = sink_port
        self.port = free_port()
        self.milters = list(milters)
        self.settings = dict(settings or {})
        self.myhostname = myhostname
        self.transports = {}
        self.started = False

    def base_settings(self):
        relay = f"[{LOOPBACK}]:{self.sink_port}"
        milters = " ".join(self.milters)
        return {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "myhostname": self.myhostname,
            "mydomain": self.myhostname,
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": LOOPBACK,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "relayhost": relay,
            "default_transport": f"smtp:{relay}",
            "relay_transport": f"smtp:{relay}",
            "fallback_relay": "",
            "smtp_fallback_relay": "",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "maillog_file": self.log_path,
            "maillog_file_prefixes": self.log_dir,
            "enable_long_queue_ids": "yes",
            "milter_protocol": "6",
            "milter_default_action": "tempfail",
            "smtpd_milters": milters,
            "non_smtpd_milters": milters,
            # Fast tests: no delay after errors or when the queue is busy,
            # quick retries of deferred mail, room for 100 parallel sessions.
            "smtpd_error_sleep_time": "0",
            "in_flow_delay": "0",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "default_process_limit": "150",
            "delay_warning_time": "0",
            "biff": "no",
        }

    # Configuration.

    def configure(self):
        """Write main.cf and master.cf, then check they stay on loopback."""
        os.makedirs(self.config_dir, exist_ok=True)
        os.makedirs(self.queue_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        os.makedirs(self.data_dir, exist_ok=True)
        pw = pwd.getpwnam("postfix")
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data_dir, 0o700)

        open(os.path.join(self.config_dir, "main.cf"), "w").close()
        self._write_master_cf()
        settings = self.base_settings()
        if self.transports:
            entries = ", ".join(f"{k}={v}" for k, v in self.transports.items())
            settings["transport_maps"] = "inline:{" + entries + "}"
        settings.update(self.settings)
        self.postconf_set(settings)
        self.check_loopback()

    def _write_master_cf(self):
        # Debian chroots most services into the queue directory, which
        # has no copy of /etc and /lib here, so chroot goes off everywhere.
        out = []
        with open("/etc/postfix/master.cf") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "smtp" and fields[1] == "inet":
                    line = f"{LOOPBACK}:{self.port} inet n - n - - smtpd\n"
                out.append(line)
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.writelines(out)
        run(["postconf", "-c", self.config_dir, "-F", "*/*/chroot = n"])

    def postconf_set(self, settings):
        argv = ["postconf", "-c", self.config_dir, "-e"]
        argv += [f"{k} = {v}" for k, v in settings.items()]
        run(argv)

    def postconf_n(self):
        """Return the non-default main.cf settings as a dict."""
        out = run(["postconf", "-c", self.config_dir, "-n"]).stdout
        result = {}
        for line in out.splitlines():
            k, _, v = line.partition("=")
            result[k.strip()] = v.strip()
        return result

    def check_loopback(self):
        """Raise HarnessError unless every listener and next hop is on 127.0.0.1.

        Checked: inet_interfaces and inet_protocols, the relay settings,
        DNS off, TLS off, mydestination empty, milters on loopback or a
        UNIX socket, transport_maps entries, and every inet service in
        master.cf bound to 127.0.0.1.
        """
        cf = self.postconf_n()
        problems = []

        def need(key, ok):
            if not ok(cf.get(key, "")):
                problems.append(f"{key} = {cf.get(key, '(default)')}")

        loop_hop = re.compile(r"^(smtp:)?\[127\.0\.0\.1\]:\d+$")
        need("inet_interfaces", lambda v: v == LOOPBACK)
        need("inet_protocols", lambda v: v == "ipv4")
        need("mydestination", lambda v: v == "")
        for key in ("relayhost", "default_transport", "relay_transport"):
            need(key, lambda v: bool(loop_hop.match(v)))
        need("fallback_relay", lambda v: v == "")
        need("smtp_fallback_relay", lambda v: v == "")
        need("smtp_dns_support_level", lambda v: v == "disabled")
        need("smtp_host_lookup", lambda v: v == "native")
        need("smtpd_peername_lookup", lambda v: v == "no")
        need("smtp_tls_security_level", lambda v: v in ("", "none"))
        need("smtpd_tls_security_level", lambda v: v in ("", "none"))
        for key in ("smtpd_milters", "non_smtpd_milters"):
            need(key, lambda v: all(re.match(r"^(inet:127\.0\.0\.1:\d+|unix:/\S+)$", m)
                                    for m in v.replace(",", " ").split()))
        transport = cf.get("transport_maps", "")
        if transport:
            hops = re.findall(r"=\s*([^,}\s]+)", transport)
            if not transport.startswith("inline:{") or not all(loop_hop.match(h) for h in hops):
                problems.append(f"transport_maps = {transport}")

        for line in run(["postconf", "-c", self.config_dir, "-M"]).stdout.splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[1] == "inet" and \
                    not fields[0].startswith(f"{LOOPBACK}:"):
                problems.append(f"master.cf inet service {fields[0]} is not bound to {LOOPBACK}")

        if problems:
            raise HarnessError("refusing to start a Postfix that could leave loopback: " +
                               "; ".join(problems))

    def route_to(self, key, sink_port):
        """Route mail for key (an address or a domain) to the sink on sink_port.

        Used with a sink made with reject_rcpt to refuse some recipients.
        Takes effect at the next configure(), so call it before start().
        """
        self.transports[key] = f"smtp:[{LOOPBACK}]:{sink_port}"

    # Running.

    def cmd(self, *args, check=True):
        return run(["postfix", "-c", self.config_dir, *args], check=check)

    def start(self):
        self.configure()
        self.cmd("start")
        self.started = True
        try:
            wait_port(self.port, 15, f"Postfix smtpd on port {self.port}")
        except AssertionError as e:
            raise HarnessError(f"{e}\n{tail(self.log_path)}") from None
        return self

    def master_pid(self):
        """Return the master PID from its pid file, or None."""
        for path in (os.path.join(self.queue_dir, "pid", "master.pid"),
                     os.path.join(self.data_dir, "master.lock")):
            try:
                with open(path) as f:
                    text = f.read().strip()
                if text.isdigit():
                    return int(text)
            except OSError:
                pass
        return None

    def stop(self):
        """Stop with postfix stop; kill master by PID if that fails."""
        if not self.started:
            return
        pid = self.master_pid()
        self.cmd("stop", check=False)
        if pid:
            try:
                wait_until(lambda: not pid_alive(pid), 10, description="Postfix master to exit")
            except AssertionError:
                signal_pid(pid, signal.SIGKILL, "master")
                wait_until(lambda: not pid_alive(pid), 5, description="Postfix master to die")

        # Idle smtpd processes keep the listening socket until they notice
        # that master is gone.
        wait_port_closed(self.port, 10)
        self.started = False

    def reload(self):
        """Rewrite main.cf from self.settings and self.milters, then reload."""
        self.configure()
        self.cmd("reload")

    def set(self, **settings):
        """Change main.cf settings and reload a running instance."""
        self.settings.update(settings)
        if self.started:
            self.reload()

    def set_milters(self, milters):
        self.milters = list(milters)
        if self.started:
            self.reload()

    def flush(self):
        run(["postqueue", "-c", self.config_dir, "-f"])

    def sendmail(self, sender, recipients, message):
        """Submit message with sendmail(1), the non_smtpd_milters path.

        The message goes through postdrop and pickup, so Postfix calls the
        milters with simulated SMTP events. Raises HarnessError if
        sendmail exits non-zero.
        """
        if isinstance(recipients, str):
            recipients = [recipients]
        if isinstance(message, str):
            message = message.encode("utf-8")
        proc = subprocess.run(["sendmail", "-C", self.config_dir, "-f", sender, "-i", "--",
                               *recipients], input=message, capture_output=True,
                              close_fds=True, timeout=60)
        if proc.returncode != 0:
            raise HarnessError(f"sendmail exited {proc.returncode}: {proc.stderr!r}")

    # Queue and log.

    def queue_files(self):
        """Return the queue files in incoming, active, deferred, hold and maildrop.

        Walking the directories (not postqueue) also counts a message that
        cleanup has not committed yet.
        """
        found = []
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            for dirpath, _, names in os.walk(os.path.join(self.queue_dir, sub)):
                found += [os.path.join(dirpath, n) for n in names]
        return found

    def queue(self):
        """Return postqueue -j records (dicts) of the committed messages."""
        out = run(["postqueue", "-c", self.config_dir, "-j"]).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_queue_empty(self, timeout=20.0, stable=0.2):
        """Wait until no queue file exists for `stable` seconds in a row."""
        def empty_for_a_while():
            if self.queue_files():
                return False
            time.sleep(stable)
            return not self.queue_files()
        wait_until(empty_for_a_while, timeout, description="the Postfix queue to be empty")

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_lines(self, pattern):
        rx = re.compile(pattern)
        return [line for line in self.log().splitlines() if rx.search(line)]


# mailonce-milter.


class Milter:
    """mailonce-milter started with -f and a generated mailonce.conf.

    conf_overrides: extra or replaced mailonce.conf keys (e.g.
    {"BusyTimeout": "1000"}). The daemon's stderr goes to self.log_path.
    """

    def __init__(self, root, builddir, conf_overrides=None, name="milter"):
        self.root = root
        self.builddir = builddir
        self.program = os.path.join(builddir, "plugin", "mailonce-milter")
        self.ctl_program = os.path.join(builddir, "tools", "mailoncectl")
        self.dir = os.path.join(root, name)
        self.conf_path = os.path.join(self.dir, "mailonce.conf")
        self.database = os.path.join(self.dir, "ledger.db")
        self.key_file = os.path.join(self.dir, "keys")
        self.log_path = os.path.join(self.dir, "milter.log")
        self.port = free_port()
        self.conf_overrides = dict(conf_overrides or {})
        self.proc = None
        self.prepared = False

    @property
    def spec(self):
        """Milter socket for Postfix's smtpd_milters."""
        return f"inet:{LOOPBACK}:{self.port}"

    def conf(self):
        conf = {
            "ServerID": "test1",
            "Socket": f"inet:{self.port}@{LOOPBACK}",
            "Database": self.database,
            "KeyFile": self.key_file,
            "PidFile": os.path.join(self.dir, "milter.pid"),
            # Tests of commit confirmation turn it on with MailLog set;
            # the others test the duplicate decision on its own.
            "ConfirmCommits": "no",
        }
        conf.update(self.conf_overrides)
        return conf

    def write_conf(self):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write("# Written by the end-to-end test harness.\n")
            for k, v in self.conf().items():
                if v is not None:
                    f.write(f"{k} {v}\n")

    def prepare(self):
        """Write the config, make the key file and create the ledger."""
        self.write_conf()
        if not os.path.exists(self.key_file):
            self.ctl("keygen")
        self.ctl("db", "init")
        self.prepared = True

    def ctl(self, *args, check=True):
        """Run mailoncectl -c CONF ARGS; return CompletedProcess."""
        return run([self.ctl_program, "-c", self.conf_path, *args], check=check)

    def token(self, mailing, seq, rcpt):
        """Return the Mailonce-Token header value for (mailing, seq, rcpt)."""
        out = self.ctl("token", mailing, str(seq), rcpt).stdout.strip()
        if out.lower().startswith("mailonce-token:"):
            out = out.split(":", 1)[1].strip()
        return out

    def start(self, timeout=10.0):
        if not self.prepared:
            self.prepare()
        self.proc = Process([self.program, "-f", "-c", self.conf_path], self.log_path).start()

        def ready():
            if not self.proc.running():
                raise HarnessError(f"mailonce-milter exited {self.proc.popen.returncode}:\n"
                                   f"{tail(self.log_path)}")
            return port_accepts(self.port)
        try:
            wait_until(ready, timeout, description=f"mailonce-milter on port {self.port}")
        except AssertionError as e:
            raise HarnessError(f"{e}\n{tail(self.log_path)}") from None
        return self

    def stop(self, timeout=10.0):
        """Stop with SIGTERM; return the exit code."""
        if not self.proc:
            return None
        code = self.proc.stop(signal.SIGTERM, timeout)
        self.proc = None
        return code

    def kill(self):
        """Kill with SIGKILL; return the exit code."""
        if not self.proc:
            return None
        code = self.proc.kill()
        self.proc = None
        return code

    def restart(self):
        self.stop()
        return self.start()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.running()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_lines(self, pattern):
        rx = re.compile(pattern)
        return [line for line in self.log().splitlines() if rx.search(line)]

    def ledger(self):
        return Ledger(self.database)

    def sanitizer_reports(self):
        """Return the AddressSanitizer, LeakSanitizer and UBSan lines of the log.

        Empty unless the milter was built with --enable-asan and a
        sanitizer found something.
        """
        return self.log_lines(r"ERROR: (Address|Leak)Sanitizer|runtime error:")


# The ledger, read-only.


class Ledger:
    """Read-only queries of a SQLite ledger; a new connection per call."""

    def __init__(self, path):
        self.path = path

    def query(self, sql, params=()):
        """Return the rows of sql as dicts."""
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(sql, params).fetchall()]
        finally:
            con.close()

    def recipients(self, mailing):
        return self.query("SELECT * FROM recipient WHERE mailing_id = ? ORDER BY seq",
                          (mailing,))

    def recipient(self, mailing, seq):
        rows = self.query("SELECT * FROM recipient WHERE mailing_id = ? AND seq = ?",
                          (mailing, seq))
        return rows[0] if rows else None

    def handoffs(self, mailing, seq=None):
        """Return handoff rows of a mailing (or one seq) in the order they were made."""
        if seq is None:
            return self.query("SELECT * FROM handoff WHERE mailing_id = ? "
                              "ORDER BY attempt_at, rowid", (mailing,))
        return self.query("SELECT * FROM handoff WHERE mailing_id = ? AND seq = ? "
                          "ORDER BY attempt_at, rowid", (mailing, seq))

    def decisions(self, mailing, seq=None):
        """Return {decision: count} over the handoff rows."""
        counts = {}
        for row in self.handoffs(mailing, seq):
            counts[row["decision"]] = counts.get(row["decision"], 0) + 1
        return counts

    def mailing(self, mailing):
        rows = self.query("SELECT * FROM mailing WHERE mailing_id = ?", (mailing,))
        return rows[0] if rows else None


class LedgerLock:
    """Another process holding the ledger with BEGIN EXCLUSIVE until release().

    Runs the sqlite3 command-line shell so that the lock belongs to a
    separate process, as it would with a real competing writer.
    """

    def __init__(self, path):
        self.path = path
        self.proc = None

    def acquire(self, timeout=10.0):
        self.proc = subprocess.Popen(["sqlite3", self.path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     close_fds=True, text=True)
        self.proc.stdin.write(".timeout 5000\nBEGIN EXCLUSIVE;\nSELECT 'locked';\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        if line != "locked":
            self.release()
            raise HarnessError(f"sqlite3 could not lock {self.path}: {line}")
        return self

    def release(self):
        if self.proc is None:
            return
        try:
            self.proc.stdin.write("ROLLBACK;\n.quit\n")
            self.proc.stdin.close()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            signal_pid(self.proc.pid, signal.SIGKILL, "sqlite3")
            self.proc.wait(5)
        self.proc = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# SMTP client.


class Reply:
    """An SMTP reply: code, text lines, and the queue id of a 250 if given."""

    def __init__(self, code, lines):
        self.code = code
        self.lines = lines
        m = re.search(r"queued as (\S+)", self.text)
        self.queue_id = m.group(1) if m else None

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def enhanced(self):
        m = re.match(r"^(\d\.\d{1,3}\.\d{1,3})\b", self.lines[0] if self.lines else "")
        return m.group(1) if m else None

    def __repr__(self):
        return f"Reply({self.code}, {self.text!r})"


class SmtpError(Exception):
    """An SMTP command got an unexpected reply."""

    def __init__(self, command, reply):
        super().__init__(f"{command}: {reply.code} {reply.text}")
        self.command = command
        self.reply = reply


def encode_data(message):
    """Return message (str or bytes) as DATA content: CRLF lines, dots stuffed."""
    if isinstance(message, str):
        message = message.encode("utf-8")
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"\r\n".join(out) + b"\r\n"


class SmtpSession:
    """One SMTP connection, command by command.

    Unlike smtplib it can stop anywhere. send_message() runs a whole
    transaction and returns the final Reply, also for a 4xx or 5xx,
    without raising. begin_data() and end_data() split the final "."
    from the content, so threads can line up on a barrier before it.
    end_data_and_drop() sends "." and closes without reading the reply.
    """

    def __init__(self, port, host=LOOPBACK, timeout=30.0, helo="client.e2e.test"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.greeting = self.read_reply()
        self.helo = helo

    def read_reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError("connection closed by server; read so far: "
                                          f"{lines!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("utf-8", "replace")
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return Reply(int(line[:3]), lines)

    def command(self, line):
        self.sock.sendall(line.encode("utf-8") + b"\r\n")
        return self.read_reply()

    def expect(self, line, codes):
        reply = self.command(line)
        if reply.code not in codes:
            raise SmtpError(line, reply)
        return reply

    def ehlo(self):
        return self.expect(f"EHLO {self.helo}", (250,))

    def envelope(self, sender, recipients):
        """Send MAIL and RCPT; return the first reply that is not 2xx, or None."""
        reply = self.command(f"MAIL FROM:<{sender}>")
        if reply.code != 250:
            return reply
        for rcpt in recipients:
            reply = self.command(f"RCPT TO:<{rcpt}>")
            if reply.code not in (250, 251):
                return reply
        return None

    def begin_data(self, sender, recipients, message):
        """Send the envelope, DATA and the content, but not the final "."

        Returns None when ready for end_data(), or the refusing Reply.
        """
        refused = self.envelope(sender, recipients)
        if refused:
            return refused
        reply = self.command("DATA")
        if reply.code != 354:
            return reply
        self.sock.sendall(encode_data(message))
        return None

    def end_data(self):
        self.sock.sendall(b".\r\n")
        return self.read_reply()

    def end_data_and_drop(self):
        """Send the final "." and close at once: the 250 is never read."""
        self.sock.sendall(b".\r\n")
        self.sock.close()
        self.sock = None

    def send_message(self, sender, recipients, message):
        """Run one transaction; return the final reply (or the one that refused)."""
        refused = self.begin_data(sender, recipients, message)
        if refused:
            self.command("RSET")
            return refused
        return self.end_data()

    def quit(self):
        if self.sock is None:
            return
        try:
            self.command("QUIT")
        except (OSError, ConnectionError):
            pass
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.quit()


def send(port, sender, recipients, message):
    """Send one message on a new connection; return the final Reply."""
    if isinstance(recipients, str):
        recipients = [recipients]
    with SmtpSession(port) as s:
        if s.greeting.code != 220:
            return s.greeting
        reply = s.command(f"EHLO {s.helo}")
        if reply.code != 250:
            return reply
        return s.send_message(sender, recipients, message)


def send_and_drop(port, sender, recipients, message):
    """Send one message and close after the final "." without reading the reply."""
    if isinstance(recipients, str):
        recipients = [recipients]
    s = SmtpSession(port)
    s.ehlo()
    refused = s.begin_data(sender, recipients, message)
    if refused:
        s.close()
        raise SmtpError("DATA", refused)
    s.end_data_and_drop()


def send_simultaneously(port, jobs, timeout=60.0):
    """Send each (sender, recipients, message) of jobs on its own connection.

    Every thread sends its content first, then all meet at a barrier and
    send the final "." at the same moment. Returns the replies in job
    order (an exception object in place of a reply whose session failed).
    """
    barrier = threading.Barrier(len(jobs), timeout=timeout)
    replies = [None] * len(jobs)

    def worker(i, job):
        sender, recipients, message = job
        if isinstance(recipients, str):
            recipients = [recipients]
        try:
            with SmtpSession(port, timeout=timeout) as s:
                s.ehlo()
                refused = s.begin_data(sender, recipients, message)
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
                replies[i] = refused or s.end_data()
        except Exception as e:  # reported to the caller, not lost in the thread
            replies[i] = e
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 10)
    return replies


def make_message(sender, rcpt, subject="test", body="Hello.\n", token=None, message_id=None,
                 date=None, extra_headers=()):
    """Return an RFC 5322 message (bytes, LF line ends) for a test."""
    message_id = message_id or f"<{time.time_ns()}.{os.getpid()}@e2e.test>"
    date = date or time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    headers = [f"From: <{sender}>", f"To: <{rcpt}>", f"Subject: {subject}",
               f"Date: {date}", f"Message-ID: {message_id}"]
    if token is not None:
        headers.append(f"Mailonce-Token: {token}")
    headers += list(extra_headers)
    return ("\n".join(headers) + "\n\n" + body).encode("utf-8")


# Temporary tree.


class Workdir:
    """A temporary directory for one stack, removed unless MAILONCE_E2E_KEEP is set.

    Mode 755, so that Postfix daemons and smtp-sink, which drop root,
    can reach their directories inside it.
    """

    def __init__(self, prefix="mailonce-e2e-"):
        self.path = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.path, 0o755)

    def cleanup(self):
        if os.environ.get("MAILONCE_E2E_KEEP"):
            return
        shutil.rmtree(self.path, ignore_errors=True)


class Stack:
    """A sink, an optional milter and a Postfix in one Workdir.

    refuse: addresses or domains whose mail goes to a second sink that
    rejects every RCPT with 550 5.1.1 (Stack.refused_sink).
    extra_milters: milter sockets that Postfix calls after ours.

    Start order is sink, milter, Postfix; stop() stops them in reverse
    order and is safe to call on a half-started stack.
    """

    def __init__(self, builddir=None, milter=True, settings=None, milter_conf=None,
                 refuse=(), extra_milters=()):
        self.workdir = Workdir()
        self.root = self.workdir.path
        self.sink = Sink(self.root)
        self.refused_sink = None
        self.milter = Milter(self.root, builddir, milter_conf) if milter else None
        self.postfix = None
        self.settings = settings
        self.refuse = [refuse] if isinstance(refuse, str) else list(refuse)
        self.extra_milters = list(extra_milters)

    def start(self):
        try:
            self.sink.start()
            if self.milter:
                self.milter.start()
            milters = ([self.milter.spec] if self.milter else []) + self.extra_milters
            self.postfix = Postfix(self.root, self.sink.port, milters, self.settings)
            if self.refuse:
                self.refused_sink = Sink(self.root, "refused-sink",
                                         reject_rcpt="550 5.1.1 Recipient refused by test")
                self.refused_sink.start()
                for key in self.refuse:
                    self.postfix.route_to(key, self.refused_sink.port)
            self.postfix.start()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def port(self):
        return self.postfix.port

    def stop(self):
        """Stop every daemon; raise the first error, or HarnessError for a sanitizer report."""
        errors = []
        for stop in (self.postfix and self.postfix.stop, self.milter and self.milter.stop,
                     self.refused_sink and self.refused_sink.stop, self.sink.stop):
            if stop:
                try:
                    stop()
                except Exception as e:
                    errors.append(e)
        if errors:
            raise errors[0]
        self.check_sanitizers()

    def check_sanitizers(self, already_seen=0):
        """Raise HarnessError if the milter log has more than already_seen sanitizer lines."""
        reports = self.milter.sanitizer_reports()[already_seen:] if self.milter else []
        if reports:
            raise HarnessError("mailonce-milter sanitizer report:\n" + "\n".join(reports) +
                               "\n" + tail(self.milter.log_path, 60))

    def cleanup(self):
        self.workdir.cleanup()

    def reset(self):
        """Prepare a shared stack for the next test: empty queue, empty sink."""
        self.postfix.wait_queue_empty()
        self.sink.reset()
        if self.refused_sink:
            self.refused_sink.reset()

    def settle(self, timeout=20.0):
        """Wait until Postfix has delivered or dropped everything it took."""
        self.postfix.wait_queue_empty(timeout)

    def describe(self):
        """Return the logs of every daemon, for a failure report."""
        parts = [f"== work directory {self.root}"]
        if self.postfix:
            parts.append("== Postfix log (tail)\n" + tail(self.postfix.log_path, 40))
        if self.milter:
            parts.append("== milter log (tail)\n" + tail(self.milter.log_path, 40))
        parts.append("== sink log (tail)\n" + tail(self.sink.log_path, 10))
        return "\n".join(parts)
