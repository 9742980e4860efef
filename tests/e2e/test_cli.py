"""mailoncectl and mailonce-milter -n on bad input: the exit code and a message
that names the value. These need no Postfix, only the built programs."""

import os
import subprocess

import pytest

EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67


@pytest.fixture
def cli(builddir, tmp_path):
    """Return run(*args) -> CompletedProcess for mailoncectl with a fresh configuration."""
    conf = tmp_path / "mailonce.conf"
    conf.write_text(f"ServerID cli1\nDatabase {tmp_path}/ledger.db\n"
                    f"KeyFile {tmp_path}/keys\nMailLog {tmp_path}/maillog\n")
    ctl = os.path.join(builddir, "tools", "mailoncectl")

    def run(*args, conf_path=conf):
        return subprocess.run([ctl, "-c", str(conf_path), *args], capture_output=True,
                              text=True, timeout=60)

    assert run("keygen").returncode == 0
    assert run("db", "init").returncode == 0
    run.tmp_path = tmp_path
    run.conf = conf
    return run


def test_check_unknown_user(cli):
    bad = cli.tmp_path / "user.conf"
    bad.write_text(cli.conf.read_text() + "UserID nosuchuser-mailonce\n")
    r = cli("check", conf_path=bad)
    assert r.returncode == EX_NOUSER
    assert "UserID nosuchuser-mailonce: no such user" in r.stderr


def test_milter_check_unknown_user(builddir, cli):
    bad = cli.tmp_path / "user.conf"
    bad.write_text(cli.conf.read_text() + "UserID nosuchuser-mailonce\n")
    milter = os.path.join(builddir, "plugin", "mailonce-milter")
    r = subprocess.run([milter, "-n", "-c", str(bad)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == EX_NOUSER
    assert "no such user" in r.stderr


def test_check_warns_confirm_without_log(cli):
    bare = cli.tmp_path / "bare.conf"
    bare.write_text("\n".join(line for line in cli.conf.read_text().splitlines()
                              if not line.startswith("MailLog")) + "\n")
    r = cli("check", conf_path=bare)
    assert r.returncode == 0
    assert "ConfirmCommits is on but MailLog is not set" in r.stderr
    assert "configuration OK" in r.stdout


def test_create_lists_columns(cli):
    template = cli.tmp_path / "t.eml"
    template.write_text("From: news@example.test\nTo: {{email}}\nSubject: Hi {{name}}\n\n"
                        "Hello {{name}}\n")
    csv = cli.tmp_path / "r.csv"
    csv.write_text("email,Name,city\na@example.test,Ann,Oslo\n")
    r = cli("create", "cols1", "--template", str(template), "--recipients", str(csv))
    assert r.returncode == EX_DATAERR
    assert "placeholder {{name}} has no column" in r.stderr
    assert '"email", "Name", "city"' in r.stderr
    assert "case-sensitive" in r.stderr


def test_status_invalid_mailing_id(cli):
    r = cli("status", "my mailing")
    assert r.returncode == EX_USAGE
    assert 'invalid mailing id "my mailing"' in r.stderr


def test_help_option(cli):
    r = cli("--help")
    assert r.returncode == 0
    assert "usage: mailoncectl" in r.stdout
