"""SMTP on 25 (MX), 587 (submission, STARTTLS) and 465 (implicit TLS) against the
real binary, with Python's smtplib, swaks, curl and raw sockets."""

import re
import smtplib
import socket
import subprocess

import pytest
from conftest import tls_context

ANNA = "anna@example.org"
BOB = "bob@example.org"
PASSWORD = "correct horse"
MAX_SIZE = 4096


@pytest.fixture
def mx(server):
    """A running server with example.org, anna (alias info@) and bob; small size limit."""
    server.write_config(f"\n[limits]\nmax_message_size = {MAX_SIZE}\n")
    server.start()
    server.cli("domain", "add", "example.org")
    server.login_id = server.cli("account", "add", ANNA, "--password", PASSWORD).stdout.split()[-1]
    server.cli("account", "add", BOB, "--password", PASSWORD)
    server.cli("alias", "add", "info@example.org", ANNA)
    yield server
    server.stop()


def inbox_count(server, address):
    show = server.cli("account", "show", address).stdout
    m = re.search(r"folder:\s+INBOX \((\d+) messages", show)
    assert m, show
    return int(m.group(1))



def message(subject, body="Hello.\r\n"):
    return f"From: {ANNA}\r\nTo: {BOB}\r\nSubject: {subject}\r\n\r\n{body}".encode()


class Raw:
    """A line-level client for what smtplib will not send."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        assert self.reply()[0] == 220

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                assert chunk, f"connection closed after {lines}"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] == b" ":
                return int(line[:3]), b"\n".join(l[4:] for l in lines)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.sock.close()


def test_mx_delivery_lands_in_inbox(mx):
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=10) as s:
        code, banner = s.ehlo("client.example")
        assert code == 250
        for ext in ["pipelining", "8bitmime", "smtputf8", "enhancedstatuscodes", "starttls"]:
            assert s.has_extn(ext), banner
        assert s.esmtp_features["size"] == str(MAX_SIZE)
        assert not s.has_extn("auth"), "no AUTH on port 25"
        s.sendmail("someone@remote.example", [ANNA, "INFO@example.org", BOB], message("mx"))
    # Anna once (direct and by alias), Bob once.
    assert inbox_count(mx, ANNA) == 1
    assert inbox_count(mx, BOB) == 1


def test_greeting_names_host(mx):
    with socket.create_connection(("127.0.0.1", mx.ports["smtp"]), timeout=10) as s:
        assert s.recv(1024) == b"220 mail.test ESMTP posthorn\r\n"


def test_relay_denied_text_exactly(mx):
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example")
        s.mail("spammer@remote.example")
        assert s.rcpt("victim@other.tld") == (550, b"5.7.1 relay not permitted")


@pytest.mark.parametrize(
    "path",
    [
        "<user%other.tld@example.org>",
        "<@example.org:user@other.tld>",
        '<"user@other.tld"@example.org>',
        "<user@other.tld@example.org>",
        "<anna@example.org.>",
        "<user@[127.0.0.1]>",
        "<other.tld!user@example.org>",
    ],
)
def test_relay_trick_refused(mx, path):
    c = Raw(mx.ports["smtp"])
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<spammer@remote.example>")[0] == 250
    code, text = c.cmd(f"RCPT TO:{path}")
    assert code in (501, 550), (path, code, text)
    # Nothing was accepted, so there is nothing to send.
    assert c.cmd("DATA")[0] in (503, 554)
    c.close()


def test_local_domain_in_other_case_is_local(mx):
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=10) as s:
        s.sendmail("someone@remote.example", ["ANNA@EXAMPLE.ORG"], message("case"))
    assert inbox_count(mx, ANNA) == 1


def test_submission_requires_starttls_and_auth(mx):
    with smtplib.SMTP("127.0.0.1", mx.ports["submission"], timeout=10) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls")
        assert not s.has_extn("auth"), "no AUTH before TLS"
        assert s.mail(ANNA) == (530, b"5.7.0 Authentication required")
        s.rset()
        s.starttls(context=tls_context(mx))
        s.ehlo("client.example")
        assert not s.has_extn("starttls")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        s.login(ANNA, PASSWORD)
        s.sendmail(ANNA, [BOB], message("submitted"))
    assert inbox_count(mx, BOB) == 1


@pytest.mark.parametrize("mechanism,initial", [("PLAIN", True), ("PLAIN", False), ("LOGIN", False)])
def test_submission_login_by_short_id(mx, mechanism, initial):
    with smtplib.SMTP("127.0.0.1", mx.ports["submission"], timeout=10) as s:
        s.starttls(context=tls_context(mx))
        s.ehlo("client.example")
        s.user, s.password = mx.login_id, PASSWORD
        auth = s.auth_plain if mechanism == "PLAIN" else s.auth_login
        # Without an initial response the server asks with 334 first
        # (LOGIN as Outlook does it).
        assert s.auth(mechanism, auth, initial_response_ok=initial)[0] == 235
        # The sender must be the user's own address or alias.
        assert s.mail(BOB) == (553, b"5.7.1 Sender address not owned by user")
        s.rset()
        s.sendmail("info@example.org", [BOB], message(mechanism))
    assert inbox_count(mx, BOB) == 1


def test_wrong_password_is_535(mx):
    with smtplib.SMTP("127.0.0.1", mx.ports["submission"], timeout=10) as s:
        s.starttls(context=tls_context(mx))
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            s.login(ANNA, "wrong password")
        assert err.value.smtp_code == 535
        assert err.value.smtp_error == b"5.7.8 Authentication credentials invalid"


def test_implicit_tls_on_submissions(mx):
    with smtplib.SMTP_SSL("127.0.0.1", mx.ports["submissions"], context=tls_context(mx), timeout=10) as s:
        s.ehlo("client.example")
        assert not s.has_extn("starttls")
        assert "PLAIN" in s.esmtp_features["auth"]
        assert s.mail(ANNA)[0] == 530
        s.rset()
        s.login(ANNA, PASSWORD)
        s.sendmail(ANNA, [BOB], message("over 465"))
    assert inbox_count(mx, BOB) == 1


def test_declared_size_over_limit_is_552_before_data(mx):
    big = message("big", "x" * (MAX_SIZE + 10) + "\r\n")
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example")
        # smtplib declares SIZE= itself when the server offers it.
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            s.sendmail("someone@remote.example", [ANNA], big)
        assert err.value.smtp_code == 552
        assert err.value.smtp_error.startswith(b"5.3.4 ")
    assert inbox_count(mx, ANNA) == 0


def test_oversize_data_is_552_and_nothing_stored(mx):
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example")
        assert s.mail("someone@remote.example")[0] == 250  # no SIZE declared
        assert s.rcpt(ANNA)[0] == 250
        assert s.data(message("big", "x" * 100 + "\r\n") * 100) == (552, b"5.3.4 Message too big")
        # The session is still usable.
        assert s.noop()[0] == 250
    assert inbox_count(mx, ANNA) == 0


def test_smuggling_bare_lf_is_refused_and_nothing_smuggled(mx):
    c = Raw(mx.ports["smtp"])
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<someone@remote.example>")[0] == 250
    assert c.cmd(f"RCPT TO:<{ANNA}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(
        b"Subject: first\r\n\r\nhello\n.\n"
        b"MAIL FROM:<evil@remote.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
        b"Subject: smuggled\r\n\r\nowned\r\n.\r\n"
    )
    assert c.reply() == (550, b"5.5.2 Message contains bare LF or CR (SMTP smuggling protection)")
    assert c.cmd("NOOP")[0] == 250, "no leftover replies: nothing was taken as a command"
    c.close()
    assert inbox_count(mx, ANNA) == 0
    assert inbox_count(mx, BOB) == 0


def test_starttls_discards_pipelined(mx):
    c = Raw(mx.ports["submission"])
    c.cmd("EHLO client.example")
    # HELP would answer 214; after TLS the first reply must be to our NOOP.
    c.send(b"STARTTLS\r\nHELP\r\n")
    assert c.reply()[0] == 220
    assert c.buf == b""
    tls = tls_context(mx).wrap_socket(c.sock)
    tls.sendall(b"NOOP\r\n")
    assert tls.recv(1024) == b"250 2.0.0 Ok\r\n"
    tls.sendall(b"MAIL FROM:<anna@example.org>\r\n")
    assert tls.recv(1024).startswith(b"503 "), "EHLO is needed again after STARTTLS"
    tls.close()


def test_overlong_command_line_is_500(mx):
    c = Raw(mx.ports["smtp"])
    c.cmd("EHLO client.example")
    assert c.cmd("NOOP " + "x" * 2000) == (500, b"5.5.2 Line too long")
    assert c.cmd("NOOP")[0] == 250
    c.close()


def test_swaks_mx_and_submission(mx):
    r = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{mx.ports['smtp']}", "--helo", "client.example",
         "--from", "someone@remote.example", "--to", ANNA, "--header", "Subject: swaks"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{mx.ports['submission']}", "--tls", "--auth", "LOGIN",
         "--auth-user", ANNA, "--auth-password", PASSWORD, "--from", ANNA, "--to", BOB],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert inbox_count(mx, ANNA) == 1
    assert inbox_count(mx, BOB) == 1


def test_curl_upload(mx, tmp_path):
    mail = tmp_path / "mail.eml"
    mail.write_bytes(message("curl"))
    r = subprocess.run(
        ["curl", "-sS", f"smtp://127.0.0.1:{mx.ports['smtp']}", "--mail-from", "someone@remote.example",
         "--mail-rcpt", ANNA, "--upload-file", str(mail)],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert inbox_count(mx, ANNA) == 1


def bob_messages(server):
    """Bob's INBOX, read back over POP3 with TLS."""
    import poplib

    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=tls_context(server), timeout=10)
    try:
        pop.user(BOB)
        pop.pass_(PASSWORD)
        return [b"\r\n".join(pop.retr(i + 1)[1]) for i in range(pop.stat()[0])]
    finally:
        pop.quit()


def test_submission_adds_date_and_message_id_when_missing(mx):
    with smtplib.SMTP_SSL("127.0.0.1", mx.ports["submissions"], context=tls_context(mx), timeout=10) as s:
        s.login(ANNA, PASSWORD)
        s.sendmail(ANNA, [BOB], message("bare"))
        s.sendmail(ANNA, [BOB], b"Date: Sun, 1 Nov 2026 10:00:00 +0100\r\nMessage-ID: <own@client>\r\n" + message("dressed"))
    bare, dressed = bob_messages(mx)
    head = bare.split(b"\r\n\r\n")[0]
    assert re.search(rb"(?m)^Date: \w{3}, \d{1,2} \w{3} \d{4} ", head), head
    assert re.search(rb"(?m)^Message-ID: <[^@>]+@mail\.test>", head), head
    assert b"(Authenticated sender: anna@example.org)" in head
    head = dressed.split(b"\r\n\r\n")[0]
    assert head.count(b"Date:") == 1 and head.count(b"Message-ID:") == 1 and b"<own@client>" in head
    # Port 25 adds nothing: the sending server owns those fields.
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=10) as s:
        s.sendmail("someone@remote.example", [BOB], message("from outside"))
    assert b"Message-ID:" not in bob_messages(mx)[2]


def test_full_mailbox_is_refused_at_rcpt(server):
    """RCPT answers 452 4.2.2 when the declared SIZE does not fit or the mailbox is
    full; after DATA it would be 552 5.2.2."""
    server.write_config("\n[limits]\nmax_message_size = 2000000\n")
    server.start()
    server.cli("domain", "add", "example.org")
    server.cli("account", "add", "small@example.org", "--password", PASSWORD, "--quota", "1MiB")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example")
        assert s.mail("someone@remote.example", ["SIZE=1500000"])[0] == 250
        code, text = s.rcpt("small@example.org")
        assert (code, text) == (452, b"4.2.2 Mailbox full")
        s.rset()
        # Nearly fill the mailbox: about 8 KB stay free.
        body = b"x" * 1000 + b"\r\n"
        filler = b"Subject: filler\r\n\r\n" + body * 1038
        s.sendmail("someone@remote.example", ["small@example.org"], filler)
        assert s.mail("someone@remote.example", ["SIZE=20000"])[0] == 250
        assert s.rcpt("small@example.org")[0] == 452
        s.rset()
        assert s.mail("someone@remote.example", ["SIZE=1000"])[0] == 250
        assert s.rcpt("small@example.org")[0] == 250
    assert inbox_count(server, "small@example.org") == 1
    server.stop()


def test_submission_from_header_must_be_owned(mx):
    with smtplib.SMTP_SSL("127.0.0.1", mx.ports["submissions"], context=tls_context(mx), timeout=10) as s:
        s.login(ANNA, PASSWORD)
        forged = f"From: {BOB}\r\nTo: {BOB}\r\nSubject: forged\r\n\r\nhi\r\n".encode()
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail(ANNA, [BOB], forged)
        assert (e.value.smtp_code, e.value.smtp_error) == (553, b"5.7.1 From: header address not owned by user")
        # An alias of the user is fine.
        s.sendmail(ANNA, [BOB], f"From: Info <info@example.org>\r\nTo: {BOB}\r\n\r\nhi\r\n".encode())
    assert inbox_count(mx, BOB) == 1


def test_command_timeout_is_configurable(server):
    import time

    server.write_config("\n[limits]\nsmtp_command_timeout_secs = 1\n")
    server.start()
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=10) as s:
        assert s.recv(1024).startswith(b"220")
        time.sleep(2)
        assert s.recv(1024).startswith(b"421 4.4.2"), "idle client is told and closed"
    server.stop()
