"""The Debian package: built with deploy/build-deb.py from the binary under
test, installed with dpkg, the daemon started with the unit's ExecStart line
as the unit's user (CI has no systemd), then purged. Needs root; skipped where
a posthorn package, user or directory already exists."""

import os
import pwd
import re
import shlex
import shutil
import signal
import smtplib
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, ROOT, free_port, quiet_dns_port

UNIT = Path("/lib/systemd/system/posthorn.service")
CONF = Path("/etc/posthorn/posthorn.toml")
DATA = Path("/var/lib/posthorn")


def sh(*args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def as_user(user):
    """Popen/run arguments for the unit's User= (and its group only)."""
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": "/"}


def precondition():
    if os.geteuid() != 0:
        return "needs root (dpkg -i)"
    for tool in ["dpkg", "dpkg-deb", "adduser", "strip"]:
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    if sh("dpkg", "-s", "posthorn").returncode == 0:
        return "a posthorn package is installed here"
    try:
        pwd.getpwnam("posthorn")
        return "a posthorn user exists here"
    except KeyError:
        pass
    if DATA.exists() or CONF.parent.exists():
        return f"{DATA} or {CONF.parent} exists here"
    return None


@pytest.fixture
def installed(tmp_path):
    why = precondition()
    if why:
        pytest.skip(why)
    deb = tmp_path / "posthorn.deb"
    r = sh("python3", str(ROOT / "deploy" / "build-deb.py"), "--binary", BIN, "--out", str(deb), "--fast")
    assert r.returncode == 0, r.stderr
    try:
        r = sh("dpkg", "-i", str(deb))
        assert r.returncode == 0, r.stdout + r.stderr
        yield deb
    finally:
        sh("dpkg", "--purge", "posthorn")
        # What the package deliberately keeps on purge, and only what this test made.
        shutil.rmtree(DATA, ignore_errors=True)
        shutil.rmtree(CONF.parent, ignore_errors=True)
        sh("deluser", "--system", "posthorn")
        sh("delgroup", "--system", "posthorn")


def test_deb_installs_and_the_unit_command_runs(installed, tmp_path):
    info = sh("dpkg-deb", "-f", str(installed), "Package", "Depends").stdout
    assert "Package: posthorn" in info and "adduser" in info and "libc6" in info
    assert sh("dpkg-query", "-W", "-f=${Conffiles}", "posthorn").stdout.strip().startswith(str(CONF))

    # The maintainer scripts: a system user, its data directory, a private config.
    user = pwd.getpwnam("posthorn")
    assert user.pw_dir == str(DATA) and user.pw_shell.endswith("nologin")
    st = DATA.stat()
    assert st.st_uid == user.pw_uid and stat.S_IMODE(st.st_mode) == 0o750
    st = CONF.stat()
    assert st.st_uid == 0 and st.st_gid == user.pw_gid and stat.S_IMODE(st.st_mode) == 0o640
    assert os.access("/usr/bin/posthorn", os.X_OK)

    if shutil.which("systemd-analyze"):
        r = sh("systemd-analyze", "verify", str(UNIT))
        assert r.returncode == 0 and r.stderr == "", r.stderr
        r = sh("systemd-analyze", "security", "--offline=true", str(UNIT))
        m = re.search(r"Overall exposure level for posthorn.service: ([\d.]+) (\w+)", r.stdout)
        assert m and float(m.group(1)) <= 2.0 and m.group(2) in ("OK", "SAFE"), r.stdout

    # The operator's edit of the conffile: loopback ports for the test, a
    # self-signed certificate in the data directory, the rest as shipped.
    smtp, imap = free_port(), free_port()
    text = CONF.read_text()
    text = re.sub(r"\[listeners\][^\[]*", f'[listeners]\nsmtp = "127.0.0.1:{smtp}"\nimap = "127.0.0.1:{imap}"\n\n', text)
    text = re.sub(r"\[tls\][^\[]*", f'[tls]\ncert = "{DATA}/cert.pem"\nkey = "{DATA}/key.pem"\nself_signed = true\n\n', text)
    text = re.sub(r"^nameservers = .*$", f'nameservers = ["127.0.0.1:{quiet_dns_port()}"]', text, flags=re.M)
    text = text.replace('hostname = "mail.example.org"', 'hostname = "mail.test"')
    CONF.write_text(text)

    unit = UNIT.read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
    assert re.search(r"^User=posthorn$", unit, re.M)
    assert exec_start == f"/usr/bin/posthorn serve --config {CONF}"
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(shlex.split(exec_start), stdout=out, stderr=subprocess.STDOUT,
                                **as_user(user))
    try:
        deadline = time.time() + 30
        while b"posthorn ready" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()
            assert time.time() < deadline, log.read_text()
            time.sleep(0.1)
        admin = ["/usr/bin/posthorn", "--config", str(CONF)]
        r = sh(*admin, "domain", "add", "example.org", **as_user(user))
        assert r.returncode == 0, r.stderr
        r = sh(*admin, "account", "add", "anna@example.org", "--password", "correct horse", **as_user(user))
        assert r.returncode == 0, r.stderr
        with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as s:
            assert b"mail.test" in s.ehlo()[1]
            s.sendmail("someone@example.net", ["anna@example.org"], b"Subject: hi\r\n\r\nhello\r\n")
        r = sh(*admin, "account", "show", "anna@example.org", **as_user(user))
        assert "INBOX (1 messages" in r.stdout, r.stdout
        # Everything the daemon wrote belongs to its user.
        for p in DATA.rglob("*"):
            assert p.lstat().st_uid == user.pw_uid, p
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()
