"""mbsync (isync) syncs a mailbox both ways between the real server and a local
Maildir: what the server has arrives locally, what is added or deleted locally
reaches the server, and what is deleted on the server goes away locally."""

import imaplib
import ssl
import subprocess
from pathlib import Path

import pytest

USER = "anna@example.org"
PASSWORD = "correct horse"


@pytest.fixture
def imap(server):
    server.start()
    server.cli("domain", "add", "example.org")
    server.cli("account", "add", USER, "--password", PASSWORD)
    yield server
    server.stop()


def connect(server):
    ctx = ssl.create_default_context(cafile=str(server.cert))
    ctx.check_hostname = False
    c = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=ctx)
    c.login(USER, PASSWORD)
    return c


def message(subject):
    return f"From: bob@remote.example\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\nHello.\r\n".encode()


def mbsync(server, home: Path):
    (home / "mail").mkdir(exist_ok=True)
    rc = home / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount test
Host 127.0.0.1
Port {server.ports['imaps']}
User {USER}
Pass "{PASSWORD}"
SSLType IMAPS
CertificateFile {server.cert}

IMAPStore remote
Account test

MaildirStore local
Path {home}/mail/
Inbox {home}/mail/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Work
Create Both
Expunge Both
SyncState *
"""
    )
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def local_messages(home: Path, folder):
    base = home / "mail" / folder
    return sorted(p.read_bytes() for sub in ("cur", "new") for p in (base / sub).iterdir())


def remote_subjects(server, folder):
    c = connect(server)
    c.select(folder)
    typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    c.logout()
    if typ != "OK" or data == [None]:
        return []
    return sorted(part[1].decode().strip() for part in data if isinstance(part, tuple))


def test_mbsync_both_ways(imap, tmp_path):
    c = connect(imap)
    c.append("INBOX", None, None, message("one"))
    c.append("INBOX", None, None, message("two"))
    c.create("Work")
    c.append("Work", None, None, message("work"))
    c.logout()

    mbsync(imap, tmp_path)
    assert len(local_messages(tmp_path, "INBOX")) == 2
    assert [m for m in local_messages(tmp_path, "Work") if b"Subject: work" in m]
    assert b"Subject: one" in b"".join(local_messages(tmp_path, "INBOX"))

    # Added locally: uploaded to the server.
    (tmp_path / "mail" / "INBOX" / "new" / "1700000000.local.host").write_bytes(message("local"))
    mbsync(imap, tmp_path)
    assert remote_subjects(imap, "INBOX") == ["Subject: local", "Subject: one", "Subject: two"]

    # Deleted on the server: gone locally after the next sync.
    c = connect(imap)
    c.select("INBOX")
    typ, data = c.search(None, "SUBJECT", "one")
    c.store(data[0].decode(), "+FLAGS", "\\Deleted")
    c.expunge()
    c.logout()
    mbsync(imap, tmp_path)
    local = b"".join(local_messages(tmp_path, "INBOX"))
    assert b"Subject: one" not in local and b"Subject: two" in local

    # Deleted locally (trashed and expunged by mbsync): gone on the server.
    for p in (tmp_path / "mail" / "INBOX").glob("*/*"):
        if b"Subject: two" in p.read_bytes():
            p.rename(p.parent.parent / "cur" / (p.name.split(":")[0] + ":2,ST"))
    mbsync(imap, tmp_path)
    assert remote_subjects(imap, "INBOX") == ["Subject: local"]
