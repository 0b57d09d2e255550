"""account export/import against the real daemon: Maildir as Dovecot lays it
out and mbox, round trips checked over IMAP (folders, flags, internal dates,
bytes), a hand-made Dovecot Maildir, and hostile input."""

import imaplib
import os
import re
import ssl

import pytest

PASSWORD = "correct horse"
USERS = ["anna@example.org", "bob@example.org", "carl@example.org", "dora@example.org"]


@pytest.fixture
def mail(server):
    server.start()
    server.cli("domain", "add", "example.org")
    for user in USERS:
        server.cli("account", "add", user, "--password", PASSWORD)
    yield server
    server.stop()


def imap(server, user):
    ctx = ssl.create_default_context(cafile=str(server.cert))
    ctx.check_hostname = False
    c = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=ctx)
    c.login(user, PASSWORD)
    return c


def message(subject, body="Hello.\r\n"):
    return (f"From: someone@example.net\r\nTo: anna@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash(subject))}@example.net>\r\n\r\n{body}").encode()


SAMPLE = [
    # folder, flags, internal date, bytes
    ("INBOX", r"(\Seen)", '"01-Mar-2024 10:00:00 +0000"', message("first")),
    ("INBOX", r"(\Flagged $Label1)", '"02-Mar-2024 11:30:00 +0000"', message("second", "From here on\r\n>From there\r\n")),
    ("Sent", r"(\Seen \Answered)", '"03-Mar-2024 12:00:00 +0000"', message("sent one")),
    ("Archive/2024", r"(\Seen \Draft)", '"04-Mar-2024 13:00:00 +0000"', message("archived")),
    ("Entw&APw-rfe", "()", '"05-Mar-2024 14:00:00 +0000"', message("umlaut folder")),
]


def fill(server):
    c = imap(server, "anna@example.org")
    for folder in ["Archive/2024", "Entw&APw-rfe"]:
        c.create(folder)
    for folder, flags, date, body in SAMPLE:
        typ, data = c.append(folder, flags, date, body)
        assert typ == "OK", data
    c.logout()


def folders(c):
    _, data = c.list()
    return sorted(re.search(rb'"/" "?([^"]*)"?$', line).group(1).decode() for line in data)


def snapshot(server, user, keep_keywords=True):
    """{folder: sorted [(flags, internaldate, bytes)]} over IMAP."""
    c = imap(server, user)
    out = {}
    for folder in folders(c):
        c.select(f'"{folder}"', readonly=True)
        _, data = c.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        items = []
        for part in data:
            if not isinstance(part, tuple):
                continue
            meta = part[0].decode()
            flags = set(re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split())
            flags.discard(r"\Recent")
            if not keep_keywords:
                flags = {f for f in flags if f.startswith("\\")}
            date = re.search(r'INTERNALDATE "([^"]+)"', meta).group(1)
            items.append((tuple(sorted(flags)), date, part[1]))
        out[folder] = sorted(items)
    c.logout()
    return out


def test_maildir_round_trip_keeps_folders_flags_dates_and_bytes(mail, tmp_path):
    fill(mail)
    out = tmp_path / "anna"
    r = mail.cli("account", "export", "anna@example.org", "--format", "maildir", str(out))
    assert "exported 5 messages in 8 folders" in r.stdout, r.stdout

    # Dovecot's layout: INBOX on top, others as .Name with dots for levels.
    assert (out / "cur").is_dir() and (out / ".Sent" / "cur").is_dir()
    assert (out / ".Archive.2024" / "cur").is_dir() and (out / ".Entw&APw-rfe" / "cur").is_dir()
    inbox = sorted(p.name for p in (out / "cur").iterdir())
    assert inbox[0].endswith(":2,S") and inbox[1].endswith(":2,Fa"), inbox
    assert (out / "dovecot-keywords").read_text() == "0 $Label1\n"
    first = out / "cur" / inbox[0]
    assert int(first.stat().st_mtime) == 1709287200  # 01-Mar-2024 10:00:00 UTC
    assert first.read_bytes() == SAMPLE[0][3]

    # Exporting over existing files is refused.
    r = mail.cli("account", "export", "anna@example.org", str(out), check=False)
    assert r.returncode != 0 and "not empty" in r.stderr

    r = mail.cli("account", "import", "bob@example.org", str(out))
    assert "imported 5 messages" in r.stdout and "(Maildir)" in r.stdout, r.stdout
    assert snapshot(mail, "bob@example.org") == snapshot(mail, "anna@example.org")
    assert "no problems" in mail.cli("verify").stdout


def test_mbox_round_trip_keeps_folders_system_flags_and_bytes(mail, tmp_path):
    fill(mail)
    out = tmp_path / "anna-mbox"
    mail.cli("account", "export", "anna@example.org", "--format", "mbox", str(out))
    assert (out / "INBOX.mbox").is_file() and (out / "Archive" / "2024.mbox").is_file()
    text = (out / "INBOX.mbox").read_text()
    assert text.startswith("From MAILER-DAEMON Fri Mar  1 10:00:00 2024\nStatus: RO\n")
    assert "\n>From here on\n>>From there\n" in text

    r = mail.cli("account", "import", "carl@example.org", str(out))
    assert "imported 5 messages" in r.stdout and "(mbox)" in r.stdout, r.stdout
    # mbox has no place for keywords; everything else survives.
    assert snapshot(mail, "carl@example.org", keep_keywords=False) == snapshot(
        mail, "anna@example.org", keep_keywords=False)


def test_import_of_a_dovecot_maildir_with_junk_in_it(mail, tmp_path):
    md = tmp_path / "Maildir"
    for sub in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp", ".Archive.2023/cur", ".bad..name/cur"]:
        (md / sub).mkdir(parents=True)
    (md / "dovecot-uidlist").write_text("3 V1700000000 N3\n")
    (md / "dovecot.index.log").write_bytes(b"\0\1\2")
    (md / "subscriptions").write_text("Sent\n")
    (md / ".Sent" / "dovecot-keywords").write_text("0 $Forwarded\n1 NonJunk\n")

    def put(path, body, mtime):
        p = md / path
        p.write_bytes(body)
        os.utime(p, (mtime, mtime))

    put("cur/1700000000.M1P2.host,S=80,W=82:2,RS", message("read and replied"), 1700000000)
    put("new/1700000100.M3P4.host,S=80", message("brand new"), 1700000100)
    put("tmp/1700000200.M5P6.host", message("half delivered"), 1700000200)
    put(".Sent/cur/1700000300.M7P8.host,S=80:2,Sb", message("sent, NonJunk"), 1700000300)
    put(".Archive.2023/cur/1600000000.M9P1.host:2,", message("old"), 1600000000)
    put("cur/1700000400.empty:2,S", b"", 1700000400)
    os.symlink("/etc/passwd", md / "cur" / "1700000500.link:2,S")

    put(".bad..name/cur/1700000600.M1P1.host:2,", message("lost"), 1700000600)

    r = mail.cli("account", "import", "dora@example.org", str(md))
    assert "imported 4 messages into 3 folders" in r.stdout, r.stdout
    assert "skipped 3:" in r.stdout and "empty" in r.stdout and "symlinks are not followed" in r.stdout
    assert ".bad..name: folder not imported: invalid folder name" in r.stdout, r.stdout
    snap = snapshot(mail, "dora@example.org")
    assert [(f, d) for f, d, _ in snap["INBOX"]] == [
        ((), "14-Nov-2023 22:15:00 +0000"),
        (("\\Answered", "\\Seen"), "14-Nov-2023 22:13:20 +0000"),
    ]
    assert snap["Sent"][0][0] == ("NonJunk", "\\Seen")
    assert len(snap["Archive/2023"]) == 1
    assert b"half delivered" not in b"".join(m for items in snap.values() for _, _, m in items)


def test_hostile_or_wrong_input_gives_clear_errors(mail, tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("this is not a mailbox\n")
    r = mail.cli("account", "import", "dora@example.org", str(junk), check=False)
    assert r.returncode != 0 and 'not an mbox file: it must start with a "From " line' in r.stderr
    r = mail.cli("account", "import", "dora@example.org", str(tmp_path / "missing"), check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr
    r = mail.cli("account", "import", "nobody@example.org", str(junk), check=False)
    assert r.returncode != 0 and "no account nobody@example.org" in r.stderr
    # Binary garbage after a valid From line is just a (strange) message.
    box = tmp_path / "garbage.mbox"
    box.write_bytes(b"From x Mon Nov 23 23:05:00 2026\n" + bytes(range(256)) * 4 + b"\n")
    r = mail.cli("account", "import", "dora@example.org", str(box))
    assert "imported 1 messages" in r.stdout and "garbage: 1" in r.stdout
    assert "no problems" in mail.cli("verify").stdout
