"""IMAP on 143 (STARTTLS) and 993 (implicit TLS) with Python's imaplib against
the real binary: login, folders, APPEND/FETCH round trips, flags, COPY/MOVE,
EXPUNGE, IDLE push between sessions, hostile input."""

import imaplib
import re
import socket
import ssl
import time

import pytest

USER = "anna@example.org"
PASSWORD = "correct horse"

MESSAGE = (
    b"From: Bob Example <bob@remote.example>\r\n"
    b"To: anna@example.org\r\n"
    b"Subject: Round trip\r\n"
    b"Message-ID: <rt-1@remote.example>\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n"
    b"\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Anna,\r\n\xc3\xa4 8-bit line\r\n"
    b"--XX\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAw==\r\n"
    b"--XX--\r\n"
)


@pytest.fixture
def imap(server):
    server.start()
    server.cli("domain", "add", "example.org")
    out = server.cli("account", "add", USER, "--password", PASSWORD).stdout
    server.login_id = out.split()[-1]
    yield server
    server.stop()


def tls_context(server):
    ctx = ssl.create_default_context(cafile=str(server.cert))
    ctx.check_hostname = False
    return ctx


def connect(server, user=USER):
    c = imaplib.IMAP4_SSL(
        "127.0.0.1", server.ports["imaps"], ssl_context=tls_context(server), timeout=10
    )
    c.login(user, PASSWORD)
    return c


def msg(subject, body="Hello.\r\n"):
    return f"From: a@b.example\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\n{body}".encode()


def append(c, mailbox, data, flags=None):
    typ, resp = c.append(mailbox, flags, None, data)
    assert typ == "OK", resp
    m = re.search(rb"APPENDUID (\d+) (\d+)", resp[0])
    assert m, resp
    return int(m.group(2))


def test_starttls_logindisabled_then_login(imap):
    c = imaplib.IMAP4("127.0.0.1", imap.ports["imap"], timeout=10)
    assert "LOGINDISABLED" in c.capabilities
    assert "STARTTLS" in c.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        c.login(USER, PASSWORD)
    c.starttls(tls_context(imap))
    caps = c.capability()[1][0].decode().split()
    assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps
    assert "AUTH=PLAIN" in caps and "IDLE" in caps
    typ, _ = c.login(USER, PASSWORD)
    assert typ == "OK"
    c.logout()


def test_imaps_login_by_short_id_and_capabilities(imap):
    c = connect(imap, imap.login_id)
    caps = c.capability()[1][0].decode().split()
    for cap in ["IMAP4rev1", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "LITERAL+", "NAMESPACE"]:
        assert cap in caps
    assert "AUTH=PLAIN" not in caps
    c.logout()


def test_authenticate_plain_sasl_ir(imap):
    c = imaplib.IMAP4_SSL(
        "127.0.0.1", imap.ports["imaps"], ssl_context=tls_context(imap), timeout=10
    )
    typ, _ = c.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode())
    assert typ == "OK"
    with pytest.raises(imaplib.IMAP4.error):
        c2 = imaplib.IMAP4_SSL(
            "127.0.0.1", imap.ports["imaps"], ssl_context=tls_context(imap), timeout=10
        )
        c2.login(USER, "wrong")
    c.logout()


def test_list_special_use(imap):
    c = connect(imap)
    typ, lines = c.list()
    assert typ == "OK"
    text = b"\n".join(lines).decode()
    assert "INBOX" in text
    for attr in ["\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive"]:
        assert attr in text, text
    assert "\\HasNoChildren" in text
    c.logout()


def test_append_fetch_round_trip(imap):
    c = connect(imap)
    uid = append(c, "INBOX", MESSAGE, r"(\Flagged $Work)")
    typ, data = c.select("INBOX")
    assert typ == "OK" and data[0] == b"1"
    typ, data = c.uid("FETCH", str(uid), "(FLAGS RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    assert data[0][1] == MESSAGE
    assert f"RFC822.SIZE {len(MESSAGE)}".encode() in data[0][0]
    assert b"\\Flagged" in data[0][0] and b"$Work" in data[0][0]
    assert b"\\Seen" not in data[0][0]

    typ, data = c.fetch("1", "(ENVELOPE BODYSTRUCTURE)")
    head = data[0] if isinstance(data[0], bytes) else data[0][0]
    assert b'"Round trip"' in head
    assert b'("Bob Example" NIL "bob" "remote.example")' in head
    assert b'"<rt-1@remote.example>"' in head
    assert b'"mixed"' in head and b'"application" "octet-stream"' in head
    assert b'"base64"' in head

    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: Round trip\r\n\r\n"
    typ, data = c.fetch("1", "(BODY.PEEK[]<6.10>)")
    assert b"BODY[]<6>" in data[0][0]
    assert data[0][1] == MESSAGE[6:16]
    typ, data = c.fetch("1", "(BODY.PEEK[1])")
    assert data[0][1] == b"Hello Anna,\r\n\xc3\xa4 8-bit line"
    typ, data = c.fetch("1", "(BODY.PEEK[2.MIME])")
    assert data[0][1].startswith(b"Content-Type: application/octet-stream")

    # Without PEEK the message becomes \Seen.
    typ, data = c.fetch("1", "(BODY[TEXT])")
    assert b"\\Seen" in b"".join(x if isinstance(x, bytes) else x[0] for x in data)
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]
    c.logout()


def test_store_search_copy_move_expunge(imap):
    c = connect(imap)
    uids = [append(c, "INBOX", msg(f"message {i}", f"body {i}\r\n")) for i in range(1, 5)]
    c.select("INBOX")
    typ, data = c.uid("STORE", f"{uids[0]}:{uids[1]}", "+FLAGS", r"(\Seen)")
    assert typ == "OK" and len(data) == 2
    typ, data = c.uid("SEARCH", None, "UNSEEN")
    assert data[0].split() == [str(u).encode() for u in uids[2:]]
    typ, data = c.search(None, "SUBJECT", '"message 3"')
    assert data[0] == b"3"
    typ, data = c.search(None, "OR", "SEEN", "BODY", '"body 4"')
    assert data[0] == b"1 2 4"
    typ, data = c.search(None, "NOT", "SEEN", "LARGER", "10")
    assert data[0] == b"3 4"

    typ, data = c.uid("COPY", str(uids[0]), "Archive")
    assert typ == "OK"
    assert c.response("COPYUID")[1][0].split()[1] == str(uids[0]).encode()
    typ, data = c.uid("MOVE", str(uids[1]), "Trash")
    assert typ == "OK"
    assert c.untagged_responses.pop("EXPUNGE") == [b"2"]
    typ, data = c.status("Trash", "(MESSAGES)")
    assert b"MESSAGES 1" in data[0]
    typ, data = c.status("Archive", "(MESSAGES UIDNEXT UNSEEN)")
    assert b"MESSAGES 1" in data[0]
    typ, data = c.uid("COPY", str(uids[0]), "Nowhere")
    assert typ == "NO"

    c.uid("STORE", str(uids[2]), "+FLAGS.SILENT", r"(\Deleted)")
    typ, data = c.expunge()
    assert typ == "OK" and data == [b"2"]
    typ, data = c.uid("SEARCH", None, "ALL")
    assert data[0].split() == [str(uids[0]).encode(), str(uids[3]).encode()]
    c.logout()


def test_create_rename_delete_hierarchy(imap):
    c = connect(imap)
    assert c.create("Projects/2026")[0] == "OK"
    assert c.create("Projects/2026")[0] == "NO"
    typ, lines = c.list('""', "Projects/%")
    assert b"Projects/2026" in lines[0]
    typ, lines = c.list('""', "%")
    proj = [l for l in lines if l.endswith(b'"Projects"')]
    assert proj and b"\\HasChildren" in proj[0]
    assert c.rename("Projects", "Work")[0] == "OK"
    typ, lines = c.list('""', "Work/*")
    assert b"Work/2026" in lines[0]
    assert c.delete("Work")[0] == "NO"  # has children
    assert c.delete("Work/2026")[0] == "OK"
    assert c.delete("Work")[0] == "OK"
    assert c.select("Work")[0] == "NO"
    assert c.delete("INBOX")[0] == "NO"
    c.logout()


class Idler:
    """A raw IMAPS connection in IDLE, to watch untagged pushes."""

    def __init__(self, server, mailbox="INBOX"):
        raw = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=10)
        self.sock = tls_context(server).wrap_socket(raw)
        self.buf = b""
        self.line()  # greeting
        self.cmd(f'a LOGIN "{USER}" "{PASSWORD}"', "a")
        self.cmd(f"b SELECT {mailbox}", "b")
        self.sock.sendall(b"c IDLE\r\n")
        assert self.line().startswith(b"+ ")

    def line(self, timeout=10):
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text, tag):
        self.sock.sendall(text.encode() + b"\r\n")
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if l.startswith(tag.encode() + b" "):
                assert b" OK" in l, lines
                return lines

    def expect(self, pattern, within=1.0):
        deadline = time.time() + within
        seen = []
        while time.time() < deadline:
            try:
                l = self.line(max(0.01, deadline - time.time()))
            except (socket.timeout, TimeoutError):
                break
            seen.append(l)
            if re.search(pattern, l):
                return l
        raise AssertionError(f"no {pattern!r} within {within}s; saw {seen}")


def test_idle_push_exists_flags_expunge_two_sessions(imap):
    a, b = Idler(imap), Idler(imap)
    c = connect(imap)
    uid = append(c, "INBOX", msg("push"))
    a.expect(rb"^\* 1 EXISTS$")
    b.expect(rb"^\* 1 EXISTS$")
    c.select("INBOX")
    c.uid("STORE", str(uid), "+FLAGS", r"(\Flagged)")
    a.expect(rb"^\* 1 FETCH \(FLAGS \(\\Flagged\)")
    c.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
    c.expunge()
    a.expect(rb"^\* 1 EXPUNGE$")
    b.expect(rb"^\* 1 EXPUNGE$")
    # DONE and the next command in one packet.
    a.sock.sendall(b"DONE\r\nd NOOP\r\n")
    a.expect(rb"^c OK")
    a.expect(rb"^d OK")
    c.logout()


def test_idle_other_folder(imap):
    a = Idler(imap, "Archive")
    c = connect(imap)
    append(c, "INBOX", msg("not here"))
    append(c, "Archive", msg("here"))
    line = a.expect(rb"EXISTS$")
    assert line == b"* 1 EXISTS"
    c.logout()


def test_expunge_deferred_during_fetch(imap):
    c = connect(imap)
    for i in range(3):
        append(c, "INBOX", msg(f"m{i}"))
    c.select("INBOX")
    d = connect(imap)
    d.select("INBOX")
    d.store("1", "+FLAGS.SILENT", r"(\Deleted)")
    d.expunge()
    # A FETCH by number must not carry EXPUNGE (RFC 3501 §7.4.1)...
    typ, data = c.fetch("1:*", "(UID)")
    assert typ == "OK"
    assert c.untagged_responses.get("EXPUNGE") is None
    # ...the NOOP then does.
    c.noop()
    assert c.untagged_responses.get("EXPUNGE") == [b"1"]
    c.logout()
    d.logout()


def raw_session(server):
    raw = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=10)
    s = tls_context(server).wrap_socket(raw)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    return s, f


def test_huge_literal_refused_connection_survives(imap):
    s, f = raw_session(imap)
    s.sendall(b"a LOGIN {4294967295}\r\n")
    line = f.readline()
    assert line.startswith(b"a BAD") or line.startswith(b"a NO"), line
    s.sendall(f'b LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
    assert f.readline().startswith(b"b OK")
    s.sendall(b"c APPEND INBOX {4294967295}\r\n")
    assert b"TOOBIG" in f.readline()
    s.sendall(b"d NOOP\r\n")
    assert f.readline().startswith(b"d OK")
    # An over-limit LITERAL+ cannot be skipped safely: the server says BYE.
    s.sendall(b"e APPEND INBOX {4294967295+}\r\nf LOGOUT\r\n")
    lines = [f.readline(), f.readline()]
    assert b"TOOBIG" in lines[0] and lines[1].startswith(b"* BYE")
    s.close()


def test_garbage_gets_bad_and_connection_kept(imap):
    s, f = raw_session(imap)
    for junk in [b"\x00\x01\x02", b"a FOO", b"a SELECT ((((", b"a FETCH x y", b")))"]:
        s.sendall(junk + b"\r\n")
        assert b" BAD " in f.readline(), junk
    s.sendall(b"z NOOP\r\n")
    assert f.readline().startswith(b"z OK")
    for i in range(25):
        s.sendall(b"x BOGUS\r\n")
    lines = f.read()
    assert b"* BYE" in lines
    s.close()


def test_literal_login_and_literal_plus(imap):
    s, f = raw_session(imap)
    user = USER.encode()
    s.sendall(b"a LOGIN {%d}\r\n" % len(user))
    assert f.readline().startswith(b"+")
    s.sendall(user + b" {%d+}\r\n" % len(PASSWORD) + PASSWORD.encode() + b"\r\n")
    assert f.readline().startswith(b"a OK")
    body = msg("literal plus")
    s.sendall(b"b APPEND INBOX (\\Seen) {%d+}\r\n" % len(body) + body + b"\r\n")
    assert b"APPENDUID" in f.readline()
    s.close()


def test_starttls_discards_pipelined(imap):
    raw = socket.create_connection(("127.0.0.1", imap.ports["imap"]), timeout=10)
    f = raw.makefile("rb")
    assert f.readline().startswith(b"* OK")
    raw.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
    assert f.readline().startswith(b"a OK")
    s = tls_context(imap).wrap_socket(raw)
    tf = s.makefile("rb")
    s.sendall(b"c NOOP\r\n")
    # The pipelined CAPABILITY was dropped, never run after the handshake.
    assert tf.readline().startswith(b"c OK")
    s.close()


def test_curl_fetch_by_uid(imap):
    import subprocess

    c = connect(imap)
    uid = append(c, "INBOX", msg("via curl", "curl body\r\n"))
    c.logout()
    r = subprocess.run(
        [
            "curl", "-s", "--cacert", str(imap.cert), "-k",
            f"imaps://127.0.0.1:{imap.ports['imaps']}/INBOX;UID={uid}",
            "--user", f"{USER}:{PASSWORD}",
        ],
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == msg("via curl", "curl body\r\n")


def test_smtp_delivery_pushed_to_idle(imap):
    import smtplib

    a = Idler(imap)
    with smtplib.SMTP("127.0.0.1", imap.ports["smtp"], timeout=10) as s:
        s.sendmail("sender@remote.example", [USER], msg("by smtp"))
    a.expect(rb"^\* 1 EXISTS$", within=2.0)


def test_folder_names_in_modified_utf7(imap):
    c = connect(imap)
    assert c.create("Entw&APw-rfe/Alt")[0] == "OK"
    typ, lines = c.list('""', "Entw*")
    text = b"\n".join(lines)
    assert b'"Entw&APw-rfe"' in text and b'"Entw&APw-rfe/Alt"' in text
    assert c.select("Entw&APw-rfe/Alt")[0] == "OK"
    typ, data = c.status("Entw&APw-rfe", "(MESSAGES)")
    assert b'"Entw&APw-rfe" (MESSAGES 0)' in data[0]
    c.logout()


def test_append_over_quota(imap):
    imap.cli("account", "add", "small@example.org", "--password", PASSWORD, "--quota", "2MB")
    c = imaplib.IMAP4_SSL(
        "127.0.0.1", imap.ports["imaps"], ssl_context=tls_context(imap), timeout=10
    )
    c.login("small@example.org", PASSWORD)
    big = msg("big", ("y" * 998 + "\r\n") * 1500)
    typ, data = c.append("INBOX", None, None, big)
    assert typ == "OK"
    typ, data = c.getquotaroot("INBOX")
    assert typ == "OK"
    roots, quotas = data
    assert roots == [b'"INBOX" ""']
    m = re.match(rb'"" \(STORAGE (\d+) (\d+)\)', quotas[0])
    assert m and int(m.group(1)) >= len(big) // 1024 and int(m.group(2)) == 2_000_000 // 1024
    typ, data = c.append("INBOX", None, None, big)
    assert typ == "NO" and b"OVERQUOTA" in data[0]
    c.select("INBOX")
    typ, data = c.copy("1", "Archive")
    assert typ == "NO" and b"OVERQUOTA" in data[0]
    c.logout()


def test_overlong_line_refused_connection_survives(imap):
    s, f = raw_session(imap)
    s.sendall(b"a NOOP " + b"x" * (10 << 20) + b"\r\n")
    assert f.readline().startswith(b"* BAD")
    s.sendall(b"b NOOP\r\n")
    assert f.readline().startswith(b"b OK")
    s.close()


def test_list_extended_special_use_and_status(imap):
    c = connect(imap)
    append(c, "INBOX", msg("count me"))
    typ, lines = c._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
    typ, lines = c._untagged_response(typ, lines, "LIST")
    assert typ == "OK"
    text = b"\n".join(lines)
    assert b"\\Sent" in text and b"INBOX" not in text
    typ, data = c._simple_command("LIST", '""', "INBOX", "RETURN", "(STATUS (MESSAGES UNSEEN))")
    assert typ == "OK"
    assert c.untagged_responses["STATUS"] == [b'"INBOX" (MESSAGES 1 UNSEEN 1)']
    c.logout()
