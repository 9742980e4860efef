"""pytest fixtures for the end-to-end tests (see tests/README).

Fixtures:
- builddir: the build directory with the programs (skips without one);
- make_stack: a factory that starts a Stack with the given options and
  stops it after the test, also when the test fails;
- milter_stack: one sink + milter + Postfix shared by a test module;
- stack: that shared stack, reset for one test (empty queue and sink,
  milter running);
- mailing: a mailing id not used by any other test.

Every test is skipped when not run as root or without Postfix. When a
test fails, the logs of the stacks it used are added to its report. A
sanitizer report in the milter log (a build with --enable-asan) fails
the test during which it appeared.
"""

import itertools
import os
import re
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailonce_harness as harness  # noqa: E402

_mailing_counter = itertools.count(1)


def _environment_problem():
    if os.geteuid() != 0:
        return "must run as root to start a private Postfix"
    for tool in ("postfix", "postconf", "postqueue", "smtp-sink"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin") is None:
            return f"{tool} not found: install the Debian package postfix"
    return None


def pytest_configure(config):
    # Postfix tools live in /usr/sbin, which a non-login PATH may lack.
    if "/usr/sbin" not in os.environ.get("PATH", "").split(":"):
        os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin"


def pytest_collection_modifyitems(config, items):
    problem = _environment_problem()
    if problem:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=problem))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for stack in getattr(item, "_mailonce_stacks", []):
            report.sections.append((f"stack logs ({call.when})", stack.describe()))


def _remember_stack(request, stack):
    node = request.node
    if not hasattr(node, "_mailonce_stacks"):
        node._mailonce_stacks = []
    node._mailonce_stacks.append(stack)


@pytest.fixture(scope="session")
def builddir():
    d = harness.find_builddir()
    if d is None:
        pytest.skip("mailonce-milter not built: set MAILONCE_BUILDDIR or top_builddir")
    return d


@pytest.fixture
def make_stack(request):
    """Return start(**options) -> a running Stack, stopped after the test.

    Options are those of harness.Stack: milter (bool), settings (extra
    main.cf), milter_conf (extra mailonce.conf keys), refuse (addresses
    or domains to reject with 550), extra_milters (more milter sockets).
    """
    stacks = []

    def start(**options):
        # A stack without a milter needs no build directory.
        builddir = request.getfixturevalue("builddir") if options.get("milter", True) else None
        stack = harness.Stack(builddir=builddir, **options)
        stacks.append(stack)
        _remember_stack(request, stack)
        stack.start()
        return stack

    yield start

    # Stop every stack even if one fails to stop, then report the first error.
    errors = []
    for stack in reversed(stacks):
        try:
            stack.stop()
        except Exception as e:
            errors.append(e)
        stack.cleanup()
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def milter_stack(builddir):
    problem = _environment_problem()
    if problem:
        pytest.skip(problem)
    stack = harness.Stack(builddir=builddir)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        stack.cleanup()


@pytest.fixture
def stack(request, milter_stack):
    """The module's shared stack, emptied for this test, milter running."""
    _remember_stack(request, milter_stack)
    if not milter_stack.milter.running():
        milter_stack.milter.start()
    milter_stack.reset()
    seen = len(milter_stack.milter.sanitizer_reports())
    yield milter_stack
    milter_stack.check_sanitizers(seen)


@pytest.fixture
def mailing(request):
    """A mailing id unique in this run, made from the test name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:40]
    return f"m{next(_mailing_counter)}-{os.getpid()}-{name}"
