"""POP3 on 110 (STLS) and 995 (implicit TLS) with Python's poplib, curl and
fetchmail against the real binary. Mail arrives over SMTP on port 25."""

import os
import poplib
import re
import smtplib
import socket
import subprocess
import time

import pytest
from conftest import tls_context

USER = "anna@example.org"
PASSWORD = "correct horse"


@pytest.fixture
def pop(server):
    server.start()
    server.cli("domain", "add", "example.org")
    out = server.cli("account", "add", USER, "--password", PASSWORD).stdout
    server.login_id = out.split()[-1]
    yield server
    server.stop()



def send(server, subject, body="Hello.\r\n", rcpt=USER):
    msg = f"From: sender@remote.example\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n{body}"
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as s:
        s.sendmail("sender@remote.example", [rcpt], msg.encode())


def login_stls(server, user=USER):
    p = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=10)
    p.stls(tls_context(server))
    p.user(user)
    p.pass_(PASSWORD)
    return p


def login_ssl(server):
    p = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=tls_context(server), timeout=10)
    p.user(USER)
    p.pass_(PASSWORD)
    return p


def test_capabilities_and_plaintext_refused_before_tls(pop):
    p = poplib.POP3("127.0.0.1", pop.ports["pop3"], timeout=10)
    caps = p.capa()
    for cap in ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS", "IMPLEMENTATION"]:
        assert cap in caps, caps
    assert "USER" not in caps, "no plaintext login offered before TLS"
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.user(USER)
    p.stls(tls_context(pop))
    caps = p.capa()
    assert "USER" in caps and "SASL" in caps and "STLS" not in caps
    p.user(USER)
    p.pass_(PASSWORD)
    p.quit()


def test_retrieve_uidl_delete_over_stls_and_ssl(pop):
    for i in range(3):
        send(pop, f"message {i}")
    p = login_stls(pop)
    count, size = p.stat()
    assert count == 3
    listing = p.list()[1]
    assert sum(int(line.split()[1]) for line in listing) == size
    uidls = p.uidl()[1]
    _, lines, octets = p.retr(2)
    assert b"Subject: message 1" in lines
    assert octets >= int(listing[1].split()[1])
    top = p.top(1, 0)[1]
    assert b"Subject: message 0" in top and b"Hello." not in top
    p.dele(1)
    p.quit()

    p = login_ssl(pop)
    assert p.stat()[0] == 2
    remaining = p.uidl()[1]
    assert remaining == uidls[1:] or [u.split()[1] for u in remaining] == [u.split()[1] for u in uidls[1:]]
    p.quit()


def test_login_by_short_id_and_wrong_password(pop):
    p = login_stls(pop, user=pop.login_id)
    assert p.stat()[0] == 0
    p.quit()
    # Once logged in, the session's log lines name the user (plain text, no colours).
    log = pop.log.read_text()
    assert re.search(r"conn\{conn=\d+ peer=127\.0\.0\.1:\d+ listener=pop3 user=anna@example\.org\}", log), log[-2000:]
    assert "\x1b[" not in log
    p = poplib.POP3_SSL("127.0.0.1", pop.ports["pop3s"], context=tls_context(pop), timeout=10)
    p.user(USER)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.pass_("wrong password")
    assert "auth failed: user=anna@example.org ip=127.0.0.1 protocol=pop3" in pop.log.read_text()


def test_second_session_gets_in_use(pop):
    first = login_ssl(pop)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        login_ssl(pop)
    first.quit()
    login_ssl(pop).quit()


def test_dropped_connection_deletes_nothing(pop):
    send(pop, "keep me")
    p = login_ssl(pop)
    p.dele(1)
    p.file.close()  # gone without QUIT
    p.sock.close()
    deadline = time.time() + 5
    while True:  # the server notices the closed socket and releases the maildrop
        try:
            p = login_ssl(pop)
            break
        except poplib.error_proto as e:
            assert b"IN-USE" in e.args[0] and time.time() < deadline
            time.sleep(0.1)
    assert p.stat()[0] == 1
    p.quit()


def test_dot_stuffing_round_trip(pop):
    body = ".leading dot\r\n..two dots\r\n.\r\nnot the end\r\n"
    send(pop, "dots", body=body)
    p = login_ssl(pop)
    _, lines, _ = p.retr(1)
    text = b"\r\n".join(lines).decode()
    assert ".leading dot\r\n..two dots\r\n.\r\nnot the end" in text
    p.quit()


def test_garbage_and_overlong_lines(pop):
    with socket.create_connection(("127.0.0.1", pop.ports["pop3"]), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"\x00\xff garbage\r\n")
        assert f.readline().startswith(b"-ERR")
        s.sendall(b"NOOP " + b"x" * 100_000 + b"\r\n")
        assert f.readline().startswith(b"-ERR")
        s.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"+OK")


def test_curl_lists_and_retrieves(pop):
    send(pop, "for curl")
    base = f"pop3s://127.0.0.1:{pop.ports['pop3s']}"
    common = ["curl", "-s", "--cacert", str(pop.cert), "-u", f"{USER}:{PASSWORD}"]
    listing = subprocess.run(common + [f"{base}/"], capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.startswith("1 ")
    message = subprocess.run(common + [f"{base}/1"], capture_output=True, text=True, timeout=30)
    assert message.returncode == 0 and "Subject: for curl" in message.stdout
    # Plain pop3:// upgraded with STLS.
    stls = subprocess.run(common + ["--ssl-reqd", f"pop3://127.0.0.1:{pop.ports['pop3']}/1"],
                          capture_output=True, text=True, timeout=30)
    assert stls.returncode == 0 and "Subject: for curl" in stls.stdout, stls.stderr


def fetchmail(pop, tmp, keep):
    rc = tmp / "fetchmailrc"
    out = tmp / "fetched.mbox"
    rc.write_text(
        f"poll 127.0.0.1 protocol pop3 port {pop.ports['pop3s']} {'uidl' if keep else ''}\n"
        f"  user '{USER}' password '{PASSWORD}' is 'tester' here\n"
        f"  ssl sslcertck sslcertfile '{pop.cert}' sslcommonname 'mail.test'\n"
        f"  {'keep' if keep else 'nokeep fetchall'}\n"
        f"  mda \"/bin/sh -c 'cat >> {out}'\"\n"
    )
    rc.chmod(0o600)
    env = dict(os.environ, FETCHMAILHOME=str(tmp), HOME=str(tmp))
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog", "-v"],
                       capture_output=True, text=True, timeout=60, env=env)
    # Exit 1 means "no new mail", which is a success for the second run.
    assert r.returncode in (0, 1), r.stdout + r.stderr
    return out.read_text() if out.exists() else ""


def test_fetchmail_keep_then_nokeep(pop, tmp_path):
    send(pop, "first")
    send(pop, "second")
    home = tmp_path / "fm"
    home.mkdir()
    got = fetchmail(pop, home, keep=True)
    assert got.count("Subject: ") == 2
    # Second run with UIDL tracking: nothing new.
    assert fetchmail(pop, home, keep=True).count("Subject: ") == 2
    p = login_ssl(pop)
    assert p.stat()[0] == 2, "keep mode leaves mail on the server"
    p.quit()
    # Non-keep mode downloads and deletes.
    send(pop, "third")
    fetchmail(pop, home, keep=False)
    p = login_ssl(pop)
    assert p.stat()[0] == 0
    p.quit()


def test_pop3_and_imap_share_the_mailbox(pop):
    import imaplib

    send(pop, "shared one")
    send(pop, "shared two")
    imap = imaplib.IMAP4_SSL("127.0.0.1", pop.ports["imaps"], ssl_context=tls_context(pop))
    imap.login(USER, PASSWORD)
    typ, data = imap.select("INBOX")
    assert typ == "OK" and data[0] == b"2"

    # POP3 deletes message 1 at QUIT; the selected IMAP session is told.
    p = login_ssl(pop)
    p.dele(1)
    p.quit()
    typ, _ = imap.noop()
    assert typ == "OK"
    assert imap.untagged_responses.get("EXPUNGE") == [b"1"], imap.untagged_responses

    # IMAP appends; the next POP3 login sees it.
    msg = b"From: a@example.org\r\nSubject: appended over imap\r\n\r\nhi\r\n"
    typ, _ = imap.append("INBOX", None, None, msg)
    assert typ == "OK"
    imap.logout()
    p = login_ssl(pop)
    assert p.stat()[0] == 2
    assert any(b"appended over imap" in line for line in p.retr(2)[1])
    p.quit()


def test_stls_discards_pipelined_commands(pop):
    with socket.create_connection(("127.0.0.1", pop.ports["pop3"]), timeout=10) as raw:
        f = raw.makefile("rb")
        assert f.readline().startswith(b"+OK")
        # STLS and a command in one packet: the command must never run.
        raw.sendall(b"STLS\r\nQUIT\r\n")
        assert f.readline().startswith(b"+OK")
        tls = tls_context(pop).wrap_socket(raw)
        tls.sendall(b"NOOP\r\n")
        assert tls.recv(100).startswith(b"+OK"), "the pipelined QUIT was not executed"
        tls.sendall(b"CAPA\r\n")
        assert b"USER" in tls.recv(1000)
        tls.close()


def test_too_many_bad_commands_close_the_connection(pop):
    with socket.create_connection(("127.0.0.1", pop.ports["pop3"]), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"BOGUS\r\n" * 30)
        replies = [f.readline() for _ in range(30)]
        assert replies[-1] == b"", "closed after too many errors"
        assert any(b"too many errors" in r for r in replies)


def test_disabled_account_gets_sys_perm(pop):
    pop.cli("account", "disable", USER)
    p = poplib.POP3_SSL("127.0.0.1", pop.ports["pop3s"], context=tls_context(pop), timeout=10)
    p.user(USER)
    with pytest.raises(poplib.error_proto, match=r"\[SYS/PERM\]"):
        p.pass_(PASSWORD)
    pop.cli("account", "enable", USER)
    login_ssl(pop).quit()


def test_endless_overlong_lines_close_the_connection(pop):
    with socket.create_connection(("127.0.0.1", pop.ports["pop3"]), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall((b"x" * 5000 + b"\r\n") * 15)
        replies = []
        try:
            while line := f.readline():
                replies.append(line)
        except ConnectionResetError:
            pass  # closed with our excess lines still unread: also closed
        # At most one reply per line up to the error limit, then the connection ends.
        assert 1 <= len(replies) <= 12, replies
        assert all(r.startswith(b"-ERR") for r in replies)
