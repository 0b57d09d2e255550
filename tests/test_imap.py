"""IMAP on 143 (STARTTLS) and 993 (implicit TLS) with Python's imaplib against
the real binary: login, folders, APPEND/FETCH round trips, flags, COPY/MOVE,
EXPUNGE, IDLE push between sessions, hostile input."""

import imaplib
import re
import socket
import time

import pytest
from conftest import tls_context

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



def connect(server, user=USER):
    c = imaplib.IMAP4_SSL(
        "127.0.0.1", server.ports["imaps"], ssl_context=tls_context(server), timeout=10
    )
    c.login(user, PASSWORD)
    return c


def msg(subject, body="Hello.\r\n"):
    return (
        f"From: a@b.example\r\nTo: {USER}\r\nDate: Tue, 1 Feb 1994 21:52:25 -0800\r\n"
        f"Subject: {subject}\r\n\r\n{body}"
    ).encode()


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
    for cap in [
        "IMAP4rev1",
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "SPECIAL-USE",
        "LITERAL+",
        "NAMESPACE",
        "ESEARCH",
        "MULTIAPPEND",
        "IMAP4rev2",
        "LIST-EXTENDED",
        "LIST-STATUS",
        "STATUS=SIZE",
        "SEARCHRES",
        "BINARY",
    ]:
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
    typ, data = c.search(None, "SINCE", "1-Jan-2020", "SENTBEFORE", "1-Jan-2020")
    assert data[0] == b"1 2 3 4"
    typ, data = c.search(None, "SENTON", "2-Feb-1994")
    assert data[0] == b""
    typ, data = c.search(None, "HEADER", "Subject", "MESSAGE", "UID", f"{uids[1]}:*")
    assert data[0] == b"2 3 4"

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


def test_condstore(imap):
    c = connect(imap)
    u1 = append(c, "INBOX", msg("one"))
    u2 = append(c, "INBOX", msg("two"))
    typ, data = c._simple_command("ENABLE", "CONDSTORE")
    assert c.untagged_responses.pop("ENABLED") == [b"CONDSTORE"]
    c.select("INBOX")
    highest = int(c.response("HIGHESTMODSEQ")[1][0])
    typ, data = c.uid("STORE", str(u1), "+FLAGS", r"(\Flagged)")
    m = re.search(rb"MODSEQ \((\d+)\)", data[0])
    assert m and int(m.group(1)) > highest
    changed = int(m.group(1))
    # Only the message changed since `highest` comes back.
    typ, data = c.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {highest})")
    assert len(data) == 1 and f"UID {u1}".encode() in data[0]
    # UNCHANGEDSINCE older than the change: refused with MODIFIED.
    typ, data = c.uid("STORE", f"{u1}:{u2}", f"(UNCHANGEDSINCE {highest}) +FLAGS", r"(\Seen)")
    assert typ == "OK"
    assert c.response("MODIFIED")[1][0] == str(u1).encode()
    typ, data = c.search(None, "MODSEQ", str(changed))
    assert data[0].startswith(b"1") and b"(MODSEQ" in data[0]
    typ, data = c.status("INBOX", "(HIGHESTMODSEQ)")
    assert b"HIGHESTMODSEQ" in data[0]
    c.logout()


def test_shutdown_says_bye_to_idle_and_waiting_sessions(imap):
    s, f = raw_session(imap)
    s.sendall(f'a LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
    assert f.readline().startswith(b"a OK")
    idler = Idler(imap)
    started = time.time()
    assert imap.stop() == 0
    # Sessions end at once, not when the grace period runs out.
    assert time.time() - started < 5
    assert f.readline().startswith(b"* BYE")
    idler.expect(rb"^\* BYE")


def test_misc_commands(imap):
    c = connect(imap)
    u1 = append(c, "INBOX", msg("a"))
    u2 = append(c, "INBOX", msg("b"))
    u3 = append(c, "INBOX", msg("c"))
    typ, data = c.namespace()
    assert typ == "OK" and data[0] == b'(("" "/")) NIL NIL'
    typ, data = c.xatom("ID", "NIL")
    assert typ == "OK"
    assert c.untagged_responses.pop("ID") == [b'("name" "posthorn")']

    # EXAMINE is read-only: BODY[] does not set \Seen, STORE is refused.
    typ, data = c.select("INBOX", readonly=True)
    assert typ == "OK"
    c.fetch("1", "(BODY[])")
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    typ, data = c.store("1", "+FLAGS", r"(\Seen)")
    assert typ == "NO"
    assert c.unselect()[0] == "OK"

    c.select("INBOX")
    assert c.check()[0] == "OK"
    c.uid("STORE", f"{u1}:{u3}", "+FLAGS.SILENT", r"(\Deleted)")
    # UID EXPUNGE removes only the named ones (RFC 4315).
    typ, data = c.uid("EXPUNGE", str(u2))
    assert typ == "OK" and c.untagged_responses.pop("EXPUNGE") == [b"2"]
    # CLOSE expunges the rest silently.
    c.untagged_responses.clear()
    assert c.close()[0] == "OK"
    assert "EXPUNGE" not in c.untagged_responses
    typ, data = c.status("INBOX", "(MESSAGES)")
    assert b"MESSAGES 0" in data[0]

    assert c.create("News")[0] == "OK"
    assert c.subscribe("News")[0] == "OK"
    typ, lines = c.lsub('""', "News")
    assert lines and b'"News"' in lines[0]
    assert c.unsubscribe("News")[0] == "OK"
    typ, lines = c.lsub('""', "News")
    assert lines == [None]
    c.logout()


def test_qresync(imap):
    c = connect(imap)
    uids = [append(c, "INBOX", msg(f"q{i}")) for i in range(4)]
    typ, data = c.xatom("ENABLE", "QRESYNC")
    assert c.untagged_responses.pop("ENABLED") == [b"QRESYNC"]
    c.select("INBOX")
    validity = int(c.response("UIDVALIDITY")[1][0])
    since = int(c.response("HIGHESTMODSEQ")[1][0])
    c.unselect()
    # Another session changes the folder while this one is away.
    d = connect(imap)
    d.select("INBOX")
    d.uid("STORE", str(uids[0]), "+FLAGS", r"(\Flagged)")
    d.uid("STORE", str(uids[1]), "+FLAGS.SILENT", r"(\Deleted)")
    d.expunge()
    d.logout()
    c.untagged_responses.clear()
    typ, data = c._simple_command("SELECT", "INBOX", f"(QRESYNC ({validity} {since}))")
    assert typ == "OK"
    c.state = "SELECTED"  # imaplib's select() cannot pass parameters
    assert c.untagged_responses["VANISHED"] == [f"(EARLIER) {uids[1]}".encode()]
    fetches = c.untagged_responses["FETCH"]
    assert len(fetches) == 1 and f"UID {uids[0]}".encode() in fetches[0]
    assert b"\\Flagged" in fetches[0]
    # With QRESYNC, expunges come as VANISHED.
    c.uid("STORE", str(uids[2]), "+FLAGS.SILENT", r"(\Deleted)")
    c.untagged_responses.clear()
    typ, data = c.expunge()
    assert c.untagged_responses.get("VANISHED") == [str(uids[2]).encode()]
    assert "EXPUNGE" not in c.untagged_responses
    c.untagged_responses.clear()
    typ, data = c.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {since} VANISHED)")
    assert typ == "OK"
    assert c.untagged_responses["VANISHED"] == [f"(EARLIER) {uids[1]}:{uids[2]}".encode()]
    c.logout()


def test_views_stay_consistent_under_concurrent_changes(imap):
    import random

    rnd = random.Random(7)
    a, b = connect(imap), connect(imap)
    for i in range(5):
        append(b, "INBOX", msg(f"seed {i}"))
    typ, data = a.select("INBOX")
    count = int(data[0])
    b.select("INBOX")
    for step in range(40):
        op = rnd.choice(["append", "expunge", "flag", "move"])
        typ, data = b.uid("SEARCH", None, "ALL")
        uids = [int(x) for x in data[0].split()]
        if op == "append" or not uids:
            append(b, "INBOX", msg(f"step {step}"))
        elif op == "expunge":
            victim = rnd.choice(uids)
            b.uid("STORE", str(victim), "+FLAGS.SILENT", r"(\Deleted)")
            b.uid("EXPUNGE", str(victim))
        elif op == "flag":
            b.uid("STORE", str(rnd.choice(uids)), "+FLAGS", r"(\Flagged)")
        else:
            b.uid("MOVE", str(rnd.choice(uids)), "Archive")
        a.untagged_responses.clear()
        a.noop()
        # The client's own count from the pushed updates: this server sends
        # the EXPUNGEs first, then EXISTS with the resulting count.
        pushed = a.untagged_responses
        count -= len(pushed.get("EXPUNGE", []))
        if pushed.get("EXISTS"):
            count = int(pushed["EXISTS"][-1])
        a.untagged_responses.clear()
        typ, data = a.fetch("1:*", "(UID)") if step % 3 else a.uid("FETCH", "1:*", "(UID)")
        seen = []
        for item in data:
            if item is None:
                continue
            m = re.match(rb"(\d+) \(UID (\d+)\)", item)
            assert m, item
            seen.append((int(m.group(1)), int(m.group(2))))
        typ, data = b.uid("SEARCH", None, "ALL")
        truth = [int(x) for x in data[0].split()]
        assert [s for s, _ in seen] == list(range(1, len(truth) + 1)), (step, seen, truth)
        assert [u for _, u in seen] == truth, (step, seen, truth)
        assert count == len(truth), (step, count, truth)
    a.logout()
    b.logout()


def command(s, f, tag, line):
    """Sends one raw command line; returns (untagged lines, tagged line)."""
    s.sendall(f"{tag} {line}\r\n".encode())
    return read_until_tagged(f, tag)


def read_until_tagged(f, tag):
    untagged = []
    while True:
        line = f.readline()
        assert line, "connection closed"
        if line.startswith(tag.encode() + b" "):
            return untagged, line
        untagged.append(line)


def raw_login(server):
    s, f = raw_session(server)
    _, ok = command(s, f, "l", f'LOGIN "{USER}" "{PASSWORD}"')
    assert ok.startswith(b"l OK"), ok
    return s, f


def test_esearch_return_options(imap):
    c = connect(imap)
    uids = [append(c, "INBOX", msg(f"es {i}")) for i in range(5)]
    c.logout()
    s, f = raw_login(imap)
    command(s, f, "a", "SELECT INBOX")
    _, ok = command(s, f, "b", "STORE 2,4 +FLAGS.SILENT (\\Seen)")
    assert ok.startswith(b"b OK")
    lines, ok = command(s, f, "c", "SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    assert ok.startswith(b"c OK"), ok
    assert lines == [b'* ESEARCH (TAG "c") MIN 1 MAX 5 COUNT 3 ALL 1,3,5\r\n'], lines
    lines, _ = command(s, f, "d", "UID SEARCH RETURN (COUNT MIN) SEEN")
    assert lines == [f'* ESEARCH (TAG "d") UID MIN {uids[1]} COUNT 2\r\n'.encode()], lines
    # RETURN () means ALL; with nothing found only COUNT is reported.
    lines, _ = command(s, f, "e", "UID SEARCH RETURN () ALL")
    assert lines == [f'* ESEARCH (TAG "e") UID ALL {uids[0]}:{uids[4]}\r\n'.encode()], lines
    lines, _ = command(s, f, "f", "SEARCH RETURN (MIN MAX COUNT ALL) DELETED")
    assert lines == [b'* ESEARCH (TAG "f") COUNT 0\r\n'], lines
    # Without RETURN, IMAP4rev1 clients still get the classic response.
    lines, _ = command(s, f, "g", "SEARCH SEEN")
    assert lines == [b"* SEARCH 2 4\r\n"], lines
    _, bad = command(s, f, "h", "SEARCH RETURN (SOMETHING) ALL")
    assert bad.startswith(b"h BAD"), bad
    s.close()


def message_count(server, mailbox="INBOX"):
    c = connect(server)
    typ, data = c.status(mailbox, "(MESSAGES)")
    assert typ == "OK", data
    c.logout()
    return int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))


def test_multiappend_adds_all(imap):
    s, f = raw_login(imap)
    m1, m2, m3 = msg("multi 1"), msg("multi 2"), msg("multi 3")
    # LITERAL+ for the first two, a synchronizing literal for the third.
    s.sendall(
        f"a APPEND Drafts (\\Draft) {{{len(m1)}+}}\r\n".encode()
        + m1
        + f' (\\Seen $Work) "17-Jul-1996 02:44:25 -0700" {{{len(m2)}+}}\r\n'.encode()
        + m2
        + f" {{{len(m3)}}}\r\n".encode()
    )
    assert f.readline().startswith(b"+ ")
    s.sendall(m3 + b"\r\n")
    _, ok = read_until_tagged(f, "a")
    m = re.match(rb"a OK \[APPENDUID (\d+) (\d+):(\d+)\]", ok)
    assert m and int(m.group(3)) - int(m.group(2)) == 2, ok
    command(s, f, "b", "EXAMINE Drafts")
    lines, _ = command(s, f, "c", "FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    text = b"".join(lines)
    assert text.count(b"FETCH") == 3, text
    assert b"multi 1" in text and b"multi 2" in text and b"multi 3" in text
    assert b"FLAGS (\\Draft)" in text and b"FLAGS (\\Seen $Work)" in text, text
    assert b"17-Jul-1996 09:44:25 +0000" in text, text
    s.close()


def test_multiappend_is_all_or_nothing(imap):
    imap.cli("account", "add", "tiny@example.org", "--password", PASSWORD, "--quota", "2MB")
    big = msg("big", ("z" * 998 + "\r\n") * 900)  # 900 KB: two fit, three do not
    s, f = raw_session(imap)
    _, ok = command(s, f, "l", f'LOGIN "tiny@example.org" "{PASSWORD}"')
    assert ok.startswith(b"l OK")
    lit = f"{{{len(big)}+}}\r\n".encode()
    s.sendall(b"a APPEND INBOX " + lit + big + b" " + lit + big + b" " + lit + big + b"\r\n")
    _, no = read_until_tagged(f, "a")
    assert no.startswith(b"a NO [OVERQUOTA]"), no
    # An empty second message spoils the whole command too.
    one = msg("fine")
    s.sendall(f"b APPEND INBOX {{{len(one)}+}}\r\n".encode() + one + b" {0+}\r\n\r\n")
    _, no = read_until_tagged(f, "b")
    assert no.startswith(b"b NO"), no
    # A later message over the size limit is refused before its literal.
    s.sendall(f"c APPEND INBOX {{{len(one)}+}}\r\n".encode() + one + b" {99999999999}\r\n")
    _, no = read_until_tagged(f, "c")
    assert no.startswith(b"c NO [TOOBIG]"), no
    lines, _ = command(s, f, "d", "STATUS INBOX (MESSAGES)")
    assert b"MESSAGES 0" in lines[0], lines
    # Two of them fit.
    s.sendall(b"e APPEND INBOX " + lit + big + b" " + lit + big + b"\r\n")
    _, ok = read_until_tagged(f, "e")
    assert ok.startswith(b"e OK [APPENDUID"), ok
    lines, _ = command(s, f, "f", "STATUS INBOX (MESSAGES)")
    assert b"MESSAGES 2" in lines[0], lines
    # An overlong line after a message may end in a LITERAL+ whose bytes
    # follow: they must never run as commands, so the server closes.
    smuggled = b"x DELETE Archive\r\n"
    s.sendall(
        f"g APPEND INBOX {{{len(one)}+}}\r\n".encode()
        + one
        + b" " * 70_000
        + f"{{{len(smuggled)}+}}\r\n".encode()
        + smuggled
    )
    lines = [f.readline(), f.readline()]
    assert lines[0].startswith(b"g BAD") and lines[1].startswith(b"* BYE"), lines
    s.close()
    c = connect(imap, "tiny@example.org")
    assert c.status("Archive", "(MESSAGES)")[0] == "OK"
    c.logout()


def test_imap4rev2_enable_switches_response_forms(imap):
    c = connect(imap)
    append(c, "INBOX", msg("rev2 one"))
    append(c, "INBOX", msg("rev2 two"))
    c.create("Entw&APw-rfe")
    c.create("Projects/Alpha")
    c.unsubscribe("Projects")
    c.logout()
    s, f = raw_login(imap)
    # Before ENABLE the session is IMAP4rev1: RECENT, `* SEARCH`, mUTF-7.
    lines, _ = command(s, f, "a", "EXAMINE INBOX")
    assert b"* 0 RECENT\r\n" in lines
    lines, _ = command(s, f, "b", 'LIST "" "Entw*"')
    assert lines == [b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r\n'], lines
    lines, ok = command(s, f, "c", "ENABLE IMAP4rev2")
    assert lines == [b"* ENABLED IMAP4rev2\r\n"] and ok.startswith(b"c OK"), (lines, ok)
    lines, _ = command(s, f, "d", "SELECT INBOX")
    assert not any(b"RECENT" in l or b"[UNSEEN" in l for l in lines), lines
    assert b"* OK [CLOSED] Previous mailbox closed\r\n" in lines
    assert b"* 2 EXISTS\r\n" in lines
    # SEARCH answers with ESEARCH (RFC 9051 §6.4.4).
    lines, _ = command(s, f, "e", "SEARCH UNSEEN")
    assert lines == [b'* ESEARCH (TAG "e") ALL 1:2\r\n'], lines
    # Mailbox names are UTF-8.
    lines, _ = command(s, f, "f", 'LIST "" "Entw*"')
    assert lines == ['* LIST (\\HasNoChildren) "/" "Entwürfe"\r\n'.encode()], lines
    lines, ok = command(s, f, "g", 'CREATE "Brücke"')
    assert ok.startswith(b"g OK"), ok
    lines, _ = command(s, f, "h", 'STATUS "Brücke" (MESSAGES)')
    assert lines == ['* STATUS "Brücke" (MESSAGES 0)\r\n'.encode()], lines
    # STATUS DELETED and SIZE.
    command(s, f, "i", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    lines, _ = command(s, f, "j", "STATUS INBOX (MESSAGES DELETED SIZE)")
    m = re.match(rb'\* STATUS "INBOX" \(MESSAGES 2 DELETED 1 SIZE (\d+)\)', lines[0])
    assert m and int(m.group(1)) > 0, lines
    # LIST-EXTENDED: RECURSIVEMATCH reports the unsubscribed parent of a
    # subscribed folder with CHILDINFO; RETURN (SUBSCRIBED) marks folders.
    lines, _ = command(s, f, "k", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "Proj%"')
    assert lines == [b'* LIST (\\HasChildren) "/" "Projects" ("CHILDINFO" ("SUBSCRIBED"))\r\n'], lines
    lines, _ = command(s, f, "l", 'LIST "" "Projects*" RETURN (SUBSCRIBED)')
    assert lines == [
        b'* LIST (\\HasChildren) "/" "Projects"\r\n',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Projects/Alpha"\r\n',
    ], lines
    _, bad = command(s, f, "m", 'LIST (RECURSIVEMATCH) "" "*"')
    assert bad.startswith(b"m BAD"), bad
    s.close()


def test_searchres_saved_result(imap):
    c = connect(imap)
    uids = [append(c, "INBOX", msg(f"saved {i}")) for i in range(4)]
    c.logout()
    s, f = raw_login(imap)
    command(s, f, "a", "SELECT INBOX")
    command(s, f, "b", "STORE 2,4 +FLAGS.SILENT (\\Flagged)")
    # SAVE alone answers nothing but the tagged OK (RFC 5182 §2.1).
    lines, ok = command(s, f, "c", "SEARCH RETURN (SAVE) FLAGGED")
    assert lines == [] and ok.startswith(b"c OK"), (lines, ok)
    lines, _ = command(s, f, "d", "FETCH $ (UID)")
    assert lines == [
        f"* 2 FETCH (UID {uids[1]})\r\n".encode(),
        f"* 4 FETCH (UID {uids[3]})\r\n".encode(),
    ], lines
    _, ok = command(s, f, "e", "UID COPY $ Archive")
    assert ok.startswith(b"e OK [COPYUID"), ok
    # `$` as a search key, combined with others; SAVE with MIN keeps one.
    lines, _ = command(s, f, "f", "UID SEARCH RETURN (SAVE MIN) UID $ FLAGGED")
    assert lines == [f'* ESEARCH (TAG "f") UID MIN {uids[1]}\r\n'.encode()], lines
    lines, _ = command(s, f, "g", "UID SEARCH UID $")
    assert lines == [f"* SEARCH {uids[1]}\r\n".encode()], lines
    # A new selection forgets the saved result.
    command(s, f, "h", "SELECT INBOX")
    lines, _ = command(s, f, "i", "SEARCH $")
    assert lines == [b"* SEARCH\r\n"], lines
    s.close()


def test_binary_fetch_decodes_parts(imap):
    c = connect(imap)
    append(c, "INBOX", MESSAGE)
    odd = (
        b"From: a@b.example\r\nSubject: odd\r\nContent-Type: text/plain\r\n"
        b"Content-Transfer-Encoding: x-secret\r\n\r\nzzz\r\n"
    )
    append(c, "INBOX", odd)
    c.logout()
    s, f = raw_login(imap)
    command(s, f, "a", "SELECT INBOX")
    # RFC 3516: the base64 attachment comes back decoded, as literal8
    # since it holds NUL; PEEK leaves \Seen alone.
    lines, ok = command(s, f, "b", "FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.SIZE[1])")
    text = b"".join(lines)
    assert ok.startswith(b"b OK"), ok
    assert b"BINARY[2] ~{4}\r\n\x00\x01\x02\x03" in text, text
    assert b"BINARY.SIZE[2] 4" in text and b"BINARY.SIZE[1] " in text, text
    assert b"\\Seen" not in text
    lines, _ = command(s, f, "c", "FETCH 1 (BINARY[1]<0.5>)")
    text = b"".join(lines)
    assert b"BINARY[1]<0> {5}\r\nHello" in text and b"FLAGS (\\Seen)" in text, text
    lines, no = command(s, f, "d", "FETCH 2 BINARY.PEEK[1]")
    assert no.startswith(b"d NO [UNKNOWN-CTE]"), (lines, no)
    # APPEND takes a literal8 (RFC 3516 §4.4), also in a MULTIAPPEND.
    raw = b"Subject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\xff\r\n"
    s.sendall(
        f"e APPEND INBOX ~{{{len(raw)}+}}\r\n".encode() + raw + f" ~{{{len(raw)}+}}\r\n".encode() + raw + b"\r\n"
    )
    _, ok = read_until_tagged(f, "e")
    assert ok.startswith(b"e OK [APPENDUID"), ok
    lines, _ = command(s, f, "g", "FETCH 3 BINARY.PEEK[]")
    assert raw in b"".join(lines), lines
    s.close()
