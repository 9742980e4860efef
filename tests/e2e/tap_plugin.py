"""pytest plugin that reports each test as one TAP line, for the automake TAP driver.

Load it with "-p tap_plugin --tap-fd=N", where N is an open file
descriptor (3 in run.test). Each test gives one line when its teardown
ends: "ok N - name", "not ok N - name" (a failure in setup, call or
teardown) or "ok N - name # SKIP reason". The traceback of a failure
follows as "# " comment lines, and the plan "1..N" comes at the end. A
module that fails to import counts as one failed test. pytest's own
output is left alone, so it can go to a log file.
"""

import pytest


def pytest_addoption(parser):
    parser.addoption("--tap-fd", type=int, default=None,
                     help="open file descriptor to write TAP to")


class TapReporter:
    """Collects the reports of each test and writes its TAP line."""

    def __init__(self, stream):
        self.stream = stream
        self.count = 0
        self.pending = {}

    def emit(self, ok, name, directive="", details=""):
        self.count += 1
        status = "ok" if ok else "not ok"
        line = f"{status} {self.count} - {name}"
        if directive:
            line += f" # {directive}"
        self.stream.write(line + "\n")
        for text in details.splitlines():
            self.stream.write(f"# {text}\n")
        self.stream.flush()

    @staticmethod
    def failure_text(report):
        parts = [f"{report.when} failed:", str(report.longrepr)]
        for title, content in report.sections:
            if title.startswith("stack logs") or title.startswith("Captured stderr"):
                parts += [f"-- {title}", content]
        return "\n".join(parts)

    def pytest_collectreport(self, report):
        if report.failed:
            self.emit(False, f"collect {report.nodeid}", details=str(report.longrepr))

    def pytest_runtest_logreport(self, report):
        reports = self.pending.setdefault(report.nodeid, [])
        reports.append(report)
        if report.when != "teardown":
            return
        del self.pending[report.nodeid]
        name = report.nodeid.split("::", 1)[-1]
        module = report.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
        name = f"{module}: {name}"

        failed = [r for r in reports if r.failed]
        skipped = [r for r in reports if r.skipped]
        if failed:
            self.emit(False, name, details="\n".join(self.failure_text(r) for r in failed))
        elif skipped and hasattr(skipped[0], "wasxfail"):
            self.emit(True, name, directive=f"TODO {skipped[0].wasxfail}")
        elif skipped:
            reason = skipped[0].longrepr[2] if isinstance(skipped[0].longrepr, tuple) else ""
            self.emit(True, name, directive=f"SKIP {reason.removeprefix('Skipped: ')}")
        else:
            self.emit(True, name)

    def pytest_sessionfinish(self, session):
        self.stream.write(f"1..{self.count}\n")
        self.stream.flush()


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    fd = config.getoption("--tap-fd")
    if fd is not None:
        stream = open(fd, "w", closefd=False)
        config.pluginmanager.register(TapReporter(stream), "mailonce-tap")
