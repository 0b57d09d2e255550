"""Operator tools against the real binary: the SPF assistant (local, no store),
the DNS helper against the loopback DNS stub, backups (create, list, restore),
JSON logs and the fail2ban filter on a real log."""

import imaplib
import json
import re
import shutil
import smtplib
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, ROOT
from dns_stub import DnsServer

PASSWORD = "correct horse"


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)


def test_spf_build_and_check_need_no_config_or_store(tmp_path):
    nowhere = ["--config", str(tmp_path / "missing.toml")]
    r = run(*nowhere, "spf", "build", "--mx", "--ip4", "203.0.113.0/24", "--ip6", "2001:db8::/32",
            "--include", "_spf.other.example", "--soft")
    assert r.returncode == 0, r.stderr
    record = r.stdout.strip()
    assert record == "v=spf1 mx ip4:203.0.113.0/24 ip6:2001:db8::/32 include:_spf.other.example ~all"
    r = run(*nowhere, "spf", "check", record)
    assert r.returncode == 0 and "2 DNS lookups of at most 10" in r.stdout and "record is valid" in r.stdout

    # What a panel's assistant refuses, in plain words, with a failing exit.
    many = " ".join(f"include:s{i}.example.net" for i in range(11))
    for bad, words in [
        (f"v=spf1 {many} -all", "11 terms need DNS lookups"),
        ("v=spf1 ipv4:192.0.2.1 -all", 'spelled "ip4"'),
        ("v=spf1 ip4:192.0.2.1/24 -all", "the network is 192.0.2.0/24"),
        ("spf1 mx -all", 'must start with "v=spf1"'),
    ]:
        r = run(*nowhere, "spf", "check", bad)
        assert r.returncode != 0, bad
        assert words in r.stdout + r.stderr, (bad, r.stdout, r.stderr)
    r = run(*nowhere, "spf", "build", "--ip4", "192.0.2.300")
    assert r.returncode != 0 and "not an IPv4 address" in r.stderr
    # Legal but risky: a warning, exit 0.
    r = run(*nowhere, "spf", "check", "v=spf1 +all")
    assert r.returncode == 0 and "every server on the internet" in r.stdout
    assert not (tmp_path / "data").exists()


def parse_zone(text):
    """The stub's zone from `domain dns` output (zone-file lines)."""
    zone = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        name, _ttl, _class, rtype, rest = line.split(None, 4)
        entry = zone.setdefault(name.rstrip(".").lower(), {})
        if rtype == "TXT":
            entry.setdefault("TXT", []).append("".join(re.findall(r'"((?:[^"\\]|\\.)*)"', rest)))
        elif rtype == "MX":
            pref, host = rest.split()
            entry.setdefault("MX", []).append((int(pref), host))
        elif rtype == "SRV":
            prio, weight, port, target = rest.split()
            entry.setdefault("SRV", []).append((int(prio), int(weight), int(port), target))
        elif rtype == "CNAME":
            entry["CNAME"] = rest.strip()
        else:
            raise AssertionError(f"unexpected record type in {line!r}")
    return zone


def check_lines(r):
    """{"MX example.org": "ok" | "missing" | "wrong", ...} from `domain check`."""
    return {
        line.split(None, 1)[1].split(":")[0]: line.split()[0]
        for line in r.stdout.splitlines()
        if line.split()[:1] in (["ok"], ["missing"], ["wrong"])
    }


def test_domain_dns_prints_records_and_check_reads_them_back(server):
    zone = {}
    dns = DnsServer(zone)
    try:
        server.write_config(f'[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\n')
        # The pop3 listener off: its SRV records say "not offered".
        del server.ports["pop3"]
        server.write_config(server.extra)
        server.cli("domain", "add", "example.org")
        dkim = server.cli("domain", "dkim", "example.org").stdout.split()[0].rstrip(".")

        out = server.cli("domain", "dns", "example.org").stdout
        flat = "\n".join(" ".join(line.split()) for line in out.splitlines())
        p = server.ports
        for needle in [
            "example.org. 3600 IN MX 10 mail.test.",
            'IN TXT "v=spf1 mx -all"',
            f"{dkim}.",
            '_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"',
            f"_submission._tcp.example.org. 3600 IN SRV 10 1 {p['submission']} mail.test.",
            f"_submissions._tcp.example.org. 3600 IN SRV 0 1 {p['submissions']} mail.test.",
            f"_imap._tcp.example.org. 3600 IN SRV 10 1 {p['imap']} mail.test.",
            f"_imaps._tcp.example.org. 3600 IN SRV 0 1 {p['imaps']} mail.test.",
            "_pop3._tcp.example.org. 3600 IN SRV 10 0 0 .",
            f"_pop3s._tcp.example.org. 3600 IN SRV 0 1 {p['pop3s']} mail.test.",
            "autoconfig.example.org. 3600 IN CNAME mail.test.",
            "autodiscover.example.org. 3600 IN CNAME mail.test.",
        ]:
            assert needle in flat, (needle, out)
        # `dns` and `dkim` show the same key.
        dkim_line = next(line for line in out.splitlines() if line.startswith(dkim))
        key = re.search(r"p=([A-Za-z0-9+/=]+)", "".join(re.findall(r'"([^"]*)"', dkim_line))).group(1)
        assert key in server.cli("domain", "dkim", "example.org").stdout.replace('" "', "")

        # Nothing published: every record is missing, and the exit says so.
        r = server.cli("domain", "check", "example.org", check=False)
        assert r.returncode != 0, r.stdout
        lines = check_lines(r)
        assert lines["MX example.org"] == "missing" and lines["DMARC _dmarc.example.org"] == "missing", r.stdout
        assert "13 of 13 records are missing or wrong" in r.stderr, r.stderr

        # Publish exactly what `domain dns` printed (and the host's address).
        zone.update(parse_zone(out))
        zone["mail.test"] = {"A": ["127.0.0.1"]}
        r = server.cli("domain", "check", "example.org")
        assert set(check_lines(r).values()) == {"ok"}, r.stdout
        assert "all 13 records of example.org are in place" in r.stdout

        # The same through a running daemon (the key comes over the socket).
        server.start()
        assert server.cli("domain", "dns", "example.org").stdout == out
        server.cli("domain", "check", "example.org")

        # Typical mistakes, record by record.
        zone["example.org"]["MX"] = [(10, "mx.elsewhere.example")]
        zone["example.org"]["TXT"].append("v=spf1 a -all")
        del zone["_dmarc.example.org"]
        zone[dkim]["TXT"] = ["v=DKIM1; k=rsa; p=AAAAold"]
        zone["_imaps._tcp.example.org"]["SRV"] = [(0, 1, 993, "imap.elsewhere.example.")]
        zone["autoconfig.example.org"] = {"CNAME": "web.example.org."}
        r = server.cli("domain", "check", "example.org", check=False)
        assert r.returncode != 0
        lines = check_lines(r)
        assert lines["MX example.org"] == "wrong" and "mx.elsewhere.example" in r.stdout
        assert lines["SPF example.org"] == "wrong" and "2 SPF records" in r.stdout
        assert lines["DMARC _dmarc.example.org"] == "missing"
        assert lines[f"DKIM {dkim}"] == "wrong" and "different key" in r.stdout
        assert lines["SRV _imaps._tcp.example.org"] == "wrong"
        assert lines["CNAME autoconfig.example.org"] == "wrong"
        assert lines["SRV _imap._tcp.example.org"] == "ok"
        assert "6 of 13 records are missing or wrong" in r.stderr

        r = server.cli("domain", "dns", "unknown.example", check=False)
        assert r.returncode != 0 and "domain add unknown.example" in r.stderr
    finally:
        server.stop()
        dns.close()


def tls(server):
    ctx = ssl.create_default_context(cafile=str(server.cert))
    ctx.check_hostname = False  # the certificate names mail.test; we dial 127.0.0.1
    return ctx


def inbox_count(server, address):
    show = server.cli("account", "show", address).stdout
    m = re.search(r"folder:\s+INBOX \((\d+) messages", show)
    assert m, show
    return int(m.group(1))


def deliver(server, subject):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as s:
        s.sendmail("someone@example.net", ["anna@example.org"],
                   f"From: someone@example.net\r\nTo: anna@example.org\r\nSubject: {subject}\r\n\r\nHi.\r\n")


def backup_ids(server):
    out = server.cli("backup", "list").stdout
    return [line.split("\t")[0] for line in out.splitlines() if "\t" in line]


def test_backup_create_restore_and_schedule(server):
    backups = server.dir / "backups"
    server.write_config(f'[backup]\ndir = "{backups}"\ninterval_hours = 24\nkeep_days = 7\n')
    assert "no backups" in server.cli("backup", "list").stdout
    server.start()
    # No backup yet: the schedule writes one at once.
    deadline = time.time() + 10
    while not backup_ids(server) and time.time() < deadline:
        time.sleep(0.1)
    assert len(backup_ids(server)) == 1, server.log.read_text()

    server.cli("domain", "add", "example.org")
    server.cli("account", "add", "anna@example.org", "--password", PASSWORD)
    deliver(server, "before the backup")
    out = server.cli("backup", "create").stdout
    m = re.match(r"backup (\S+) written to (\S+) \((\d+) files, .*, ([\d.]+) s\)", out)
    assert m, out
    backup_id = m.group(1)
    assert backup_ids(server)[-1] == backup_id
    deliver(server, "after the backup")
    assert inbox_count(server, "anna@example.org") == 2

    r = server.cli("backup", "restore", backup_id, check=False)
    assert r.returncode != 0 and "daemon is running" in r.stderr and "stop it first" in r.stderr
    assert server.stop() == 0

    r = server.cli("backup", "restore", "20200101T000000Z", check=False)
    assert r.returncode != 0 and "no backup 20200101T000000Z" in r.stderr
    r = server.cli("backup", "restore", "../db", check=False)
    assert r.returncode != 0 and "not a backup id" in r.stderr
    out = server.cli("backup", "restore", backup_id).stdout
    assert "previous database is kept in" in out
    assert "no problems" in server.cli("verify").stdout
    assert inbox_count(server, "anna@example.org") == 1

    server.start()
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"])
    try:
        imap.starttls(tls(server))
        imap.login("anna@example.org", PASSWORD)
        imap.select("INBOX")
        _, data = imap.search(None, "ALL")
        assert len(data[0].split()) == 1
        _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"before the backup" in data[0][1]
        imap.logout()
    finally:
        server.stop()


def test_backup_without_folder_says_what_to_set(server):
    r = server.cli("backup", "create", check=False)
    assert r.returncode != 0 and "[backup]" in r.stderr


def failed_logins(server, n):
    """n wrong passwords over IMAP (plaintext LOGIN is refused before TLS; the
    STARTTLS path is what a client uses)."""
    for i in range(n):
        imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"])
        imap.starttls(tls(server))
        with pytest.raises(imaplib.IMAP4.error):
            imap.login(f"nobody{i}@example.org", "wrong password")
        imap.logout()


def fail2ban_matches(log, tmp_path):
    filt = ROOT / "deploy" / "fail2ban" / "filter.d" / "posthorn.conf"
    r = subprocess.run(["fail2ban-regex", "-v", "--print-no-missed", str(log), str(filt)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"Failregex: (\d+) total", r.stdout)
    assert m, r.stdout
    # -v lists each match's host and the time fail2ban read from the line.
    hosts = re.findall(r"^\|\s+(\S+)\s+\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$", r.stdout, re.M)
    return int(m.group(1)), hosts, r.stdout


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_fail2ban_filter_matches_real_auth_failures(server, tmp_path, fmt):
    if shutil.which("fail2ban-regex") is None:
        pytest.skip("fail2ban is not installed (.ci/run installs it)")
    server.write_config(f'[log]\nformat = "{fmt}"\n')
    server.start()
    try:
        server.cli("domain", "add", "example.org")
        server.cli("account", "add", "anna@example.org", "--password", PASSWORD)
        failed_logins(server, 4)
        # A good login is not a match.
        imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"])
        imap.starttls(tls(server))
        imap.login("anna@example.org", PASSWORD)
        imap.logout()
    finally:
        server.stop()
    log = server.log.read_text()
    if fmt == "json":
        events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        failures = [e for e in events if e.get("target") == "posthorn::auth"]
        assert len(failures) == 4, log
        assert failures[0]["fields"]["message"].startswith("auth failed: user=nobody0@example.org ip=127.0.0.1")
    # The daemon's stdout banner is in this file too; only log lines count.
    lines = [line for line in log.splitlines() if "auth failed" in line]
    assert len(lines) == 4, log
    matches, hosts, out = fail2ban_matches(server.log, tmp_path)
    assert matches == 4, out
    assert hosts == ["127.0.0.1"] * 4, out


def test_http_api_refuses_commands_that_name_server_files(tmp_path):
    """Backups and account export/import name files on the server: over the
    HTTP API a token would reach everything the daemon's user can read or
    write, so only the CLI (management socket) may send them."""
    from test_web import WebServer, api

    server = WebServer(tmp_path)
    server.start()
    try:
        for cmd in [
            {"Backup": {"Create": {"dir": str(tmp_path / "b"), "keep_days": 1}}},
            {"Account": {"Export": {"address": "a@example.org", "format": "Mbox", "dir": "/tmp/x"}}},
            {"Account": {"Import": {"address": "a@example.org", "dir": "/etc", "max_size": 1}}},
        ]:
            status, body = api(server, "POST", "/api/v1/admin", cmd)
            assert status == 400 and "posthorn CLI" in body["output"], (cmd, status, body)
        assert not (tmp_path / "b").exists()
        status, _ = api(server, "POST", "/api/v1/admin", {"Domain": "List"})
        assert status == 200
    finally:
        server.stop()


def test_unit_file_passes_systemd_analyze_security():
    """Offline: no running systemd needed (`verify` runs in test_deb.py, on the
    installed unit, where /usr/bin/posthorn exists)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (.ci/run installs systemd)")
    unit = ROOT / "deploy" / "posthorn.service"
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for posthorn.service: ([\d.]+) (\w+)", r.stdout)
    assert m, r.stdout + r.stderr
    # 1.4 with systemd 252; "OK" is up to 3.9, "MEDIUM" above.
    assert float(m.group(1)) <= 2.0 and m.group(2) in ("OK", "SAFE"), r.stdout
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in r.stderr.splitlines() if "/usr/bin/posthorn is not executable" not in line]
    assert problems == [], r.stderr


def test_fail2ban_jail_loads_with_the_filter(tmp_path):
    """fail2ban reads the jail and filter as installed into /etc/fail2ban."""
    if shutil.which("fail2ban-client") is None or not Path("/etc/fail2ban/jail.conf").exists():
        pytest.skip("fail2ban is not installed (.ci/run installs it)")
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    for kind in ["filter.d", "jail.d"]:
        shutil.copy(ROOT / "deploy" / "fail2ban" / kind / "posthorn.conf", conf / kind)
    r = subprocess.run(["fail2ban-client", "-c", str(conf), "-d"], capture_output=True, text=True, timeout=60)
    dump = r.stdout
    assert "['add', 'posthorn', 'systemd']" in dump, dump + r.stderr
    assert "['set', 'posthorn', 'addjournalmatch', '_SYSTEMD_UNIT=posthorn.service']" in dump
    assert "['set', 'posthorn', 'maxretry', 5]" in dump
    assert "auth failed: user=" in dump
