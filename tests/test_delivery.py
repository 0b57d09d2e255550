"""The delivery pipeline end to end: aliases, forwarders (local and external, SRS
and SRS bounces), loop protection, autoresponders, blocklists, relay domains and
the outbound queue (MX routing, retries, bounces, restarts, DKIM). Mail that
leaves goes to a sink SMTP server (aiosmtpd) on loopback."""

import email
import imaplib
import re
import smtplib
import time

import dkim
import pytest
from aiosmtpd.controller import Controller
from conftest import free_port, tls_context
from dns_stub import DnsServer

ANNA = "anna@example.org"
CARL = "carl@example.org"
PASSWORD = "correct horse"


class Sink:
    """Records every message; recipients starting with `reject` get a 550,
    those starting with `later` a 451."""

    def __init__(self, port=None, starttls=None):
        self.port = port or free_port()
        self.messages = []
        self.controller = None
        self.starttls = starttls
        self.tls_sessions = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 <%s>: no such user here" % address
        if address.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.tls_sessions += session.ssl is not None
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 queued"

    def start(self):
        extra = {}
        if self.starttls:
            extra = {"tls_context": self.starttls, "require_starttls": True}
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **extra)
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    def wait(self, count, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.05)
        raise AssertionError(f"sink got {len(self.messages)} messages, wanted {count}")


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


def configure(server, sink_port, extra=""):
    server.write_config(
        f"""
[outbound]
smarthost = "127.0.0.1:{sink_port}"
retry_initial_secs = 1
retry_max_secs = 1
timeout_secs = 10
{extra}
"""
    )


def setup_domain(server):
    server.cli("domain", "add", "example.org")
    server.cli("account", "add", ANNA, "--password", PASSWORD)
    server.cli("account", "add", CARL, "--password", PASSWORD)


@pytest.fixture
def mail(server, sink):
    configure(server, sink.port)
    server.start()
    setup_domain(server)
    server.sink = sink
    yield server
    server.stop()


def mx_send(server, sender, rcpts, msg):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as s:
        return s.sendmail(sender, rcpts, msg)


def submit(server, rcpts, msg, user=ANNA):
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], timeout=10,
                          context=tls_context(server)) as s:
        s.login(user, PASSWORD)
        return s.sendmail(user, rcpts, msg)


def inbox(server, user):
    """Every message in the user's INBOX, parsed."""
    c = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=tls_context(server))
    c.login(user, PASSWORD)
    c.select("INBOX", readonly=True)
    _, data = c.search(None, "ALL")
    out = []
    for n in data[0].split():
        _, parts = c.fetch(n, "(BODY.PEEK[])")
        out.append(email.message_from_bytes(parts[0][1]))
    c.logout()
    return out


def wait_inbox(server, user, count, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        msgs = inbox(server, user)
        if len(msgs) >= count:
            return msgs
        time.sleep(0.1)
    raise AssertionError(f"{user} has {len(inbox(server, user))} messages, wanted {count}")


def queue(server):
    return [line for line in server.cli("queue", "list").stdout.splitlines() if line.strip()]


def msg(subject, sender="sender@origin.example", to="info@example.org", extra=""):
    return f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\nHello.\r\n"


def test_alias_copy_names_the_alias_in_delivered_to(mail):
    mail.cli("alias", "add", "info@example.org", ANNA)
    mx_send(mail, "sender@origin.example", ["info@example.org"], msg("to alias"))
    (m,) = wait_inbox(mail, ANNA, 1)
    assert m["Delivered-To"] == "info@example.org"
    assert m["Subject"] == "to alias"


def test_forwarder_local_and_external_with_srs_and_srs_bounce_return(mail):
    sink = mail.sink
    mail.cli("forward", "add", "team@example.org", CARL)
    mail.cli("forward", "add", "team@example.org", "ext@remote.example")
    mx_send(mail, "sender@origin.example", ["team@example.org"], msg("team", to="team@example.org"))
    (carl_copy,) = wait_inbox(mail, CARL, 1)
    assert carl_copy["Delivered-To"] == "team@example.org"
    ((mail_from, rcpts, content),) = sink.wait(1)
    assert rcpts == ["ext@remote.example"]
    # SRS: the envelope sender is ours, so SPF at the destination passes.
    assert re.fullmatch(r"SRS0=[a-z2-7]{6}=[a-z2-7]{2}=origin\.example=sender@example\.org", mail_from), mail_from
    assert b"Delivered-To: team@example.org" in content

    # A bounce to the SRS address goes back to the original sender.
    mx_send(mail, "", [mail_from], msg("bounce", sender="MAILER-DAEMON@remote.example", to=mail_from))
    (_, rcpts, _) = sink.wait(2)[1]
    assert rcpts == ["sender@origin.example"]
    # A forged one is unknown.
    forged = mail_from.replace("origin.example", "victim.example")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        mx_send(mail, "", [forged], msg("forged"))
    assert err.value.recipients[forged][0] == 550


def test_keep_copy_and_twenty_forwarders_limit(mail):
    for i in range(20):
        mail.cli("forward", "add", ANNA, f"dest{i}@remote.example", "--keep-copy")
    r = mail.cli("forward", "add", ANNA, "dest20@remote.example", check=False)
    assert r.returncode != 0 and "20" in r.stderr, r.stderr
    mx_send(mail, "sender@origin.example", [ANNA], msg("keep", to=ANNA))
    (kept,) = wait_inbox(mail, ANNA, 1)
    assert kept["Subject"] == "keep"
    ((_, rcpts, _),) = mail.sink.wait(1)
    assert sorted(rcpts) == sorted(f"dest{i}@remote.example" for i in range(20)), "one transaction per domain"


def test_loops_are_cut(mail):
    mail.cli("forward", "add", "team@example.org", "ext@remote.example")
    with pytest.raises(smtplib.SMTPDataError) as err:
        mx_send(mail, "a@origin.example", ["team@example.org"],
                msg("looped", extra="Delivered-To: team@example.org\r\n"))
    assert err.value.smtp_code == 554 and b"5.4.6" in err.value.smtp_error
    hops = "".join(f"Received: from hop{i}.example by x; Mon, 23 Nov 2026 10:00:00 +0000\r\n" for i in range(51))
    with pytest.raises(smtplib.SMTPDataError) as err:
        mx_send(mail, "a@origin.example", [ANNA], hops + msg("too many hops", to=ANNA))
    assert err.value.smtp_code == 554
    time.sleep(0.5)
    assert mail.sink.messages == [] and inbox(mail, ANNA) == []


def set_autoresponder(server, tmp_path, *args):
    body = tmp_path / "away.txt"
    body.write_text("Ich bin bis Montag nicht im Büro.\n")
    server.cli("autoresponder", "set", ANNA, "--body-file", str(body), "--subject-prefix", "Abwesend: ", *args)


def test_autoresponder_replies_once_per_sender_and_never_to_lists_or_robots(mail, tmp_path):
    set_autoresponder(mail, tmp_path)
    sink = mail.sink
    mx_send(mail, "bob@remote.example", [ANNA], msg("Termin", sender="bob@remote.example", to=ANNA,
                                                    extra="Message-ID: <m1@remote.example>\r\n"))
    ((mail_from, rcpts, content),) = sink.wait(1)
    assert mail_from == "<>" and rcpts == ["bob@remote.example"]
    reply = email.message_from_bytes(content)
    assert reply["Subject"] == "Abwesend: Termin"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<m1@remote.example>"
    assert "nicht im Büro" in reply.get_payload(decode=True).decode()
    # Same sender again: no second reply within the period.
    mx_send(mail, "bob@remote.example", [ANNA], msg("Noch was", sender="bob@remote.example", to=ANNA))
    for sender, extra in [
        ("list@lists.example", "List-Id: <l.lists.example>\r\n"),
        ("news@bulk.example", "Precedence: bulk\r\n"),
        ("robot@auto.example", "Auto-Submitted: auto-generated\r\n"),
        ("", ""),
    ]:
        mx_send(mail, sender, [ANNA], msg("robot", sender=sender or "x@y.example", to=ANNA, extra=extra))
    wait_inbox(mail, ANNA, 6)
    time.sleep(0.5)
    assert len(sink.messages) == 1, [m[1] for m in sink.messages]


def test_autoresponder_respects_its_dates(mail, tmp_path):
    set_autoresponder(mail, tmp_path, "--start", "2999-01-01")
    mx_send(mail, "bob@remote.example", [ANNA], msg("early", sender="bob@remote.example", to=ANNA))
    set_autoresponder(mail, tmp_path, "--start", "2000-01-01", "--end", "2000-01-31")
    mx_send(mail, "eve@remote.example", [ANNA], msg("late", sender="eve@remote.example", to=ANNA))
    set_autoresponder(mail, tmp_path, "--start", "2000-01-01", "--end", "2999-12-31")
    mx_send(mail, "dan@remote.example", [ANNA], msg("in time", sender="dan@remote.example", to=ANNA))
    ((_, rcpts, _),) = mail.sink.wait(1)
    assert rcpts == ["dan@remote.example"]
    time.sleep(0.5)
    assert len(mail.sink.messages) == 1


def test_blocklist_refuses_at_rcpt(mail):
    mail.cli("blocklist", "add", ANNA, "spam@bad.example")
    mail.cli("blocklist", "add", ANNA, "*@spam.example")
    for sender in ["spam@bad.example", "SPAM@Bad.Example", "anyone@spam.example"]:
        with smtplib.SMTP("127.0.0.1", mail.ports["smtp"], timeout=10) as s:
            s.ehlo()
            s.mail(sender)
            code, text = s.rcpt(ANNA)
            assert (code, text) == (550, b"5.7.1 Sender blocked by recipient"), sender
            assert s.rcpt(CARL)[0] == 250, "other recipients are not affected"
    mx_send(mail, "friend@good.example", [ANNA], msg("ok", sender="friend@good.example", to=ANNA))
    assert len(wait_inbox(mail, ANNA, 1)) == 1


def test_permanent_failure_bounces_to_the_senders_inbox(mail):
    submit(mail, ["reject@remote.example", "ok@remote.example"], msg("partly", sender=ANNA, to="x@remote.example"))
    ((_, rcpts, _),) = mail.sink.wait(1)
    assert rcpts == ["ok@remote.example"]
    (bounce,) = wait_inbox(mail, ANNA, 1)
    assert bounce.get_content_type() == "multipart/report"
    assert bounce.get_param("report-type") == "delivery-status"
    status = bounce.get_payload()[1]
    text = str(status)
    assert "Final-Recipient: rfc822; reject@remote.example" in text
    assert "Action: failed" in text and "Status: 5.1.1" in text
    assert "Subject: partly" in str(bounce.get_payload()[2])
    assert queue(mail) == []


def test_dkim_signature_verifies(mail):
    record = mail.cli("domain", "dkim", "example.org").stdout.strip()
    name, txt = re.fullmatch(r'(\S+)\. IN TXT "(.*)"', record).groups()
    assert name == "posthorn._domainkey.example.org"
    submit(mail, ["ext@remote.example"], msg("signed", sender=ANNA, to="ext@remote.example"))
    ((_, _, content),) = mail.sink.wait(1)
    assert content.startswith(b"DKIM-Signature:")

    def dns(qname, timeout=5):
        assert qname.decode().rstrip(".") == name
        return txt.encode()

    assert dkim.verify(content, dnsfunc=dns), "dkimpy verifies posthorn's signature"
    assert not dkim.verify(content.replace(b"Hello.", b"Hallo."), dnsfunc=dns)


def test_queue_retries_until_the_sink_is_up_then_delivers_once(server, tmp_path):
    sink = Sink()
    configure(server, sink.port)
    server.start()
    setup_domain(server)
    submit(server, ["ext@remote.example"], msg("retry me", sender=ANNA, to="ext@remote.example"))
    deadline = time.time() + 10
    while time.time() < deadline:
        entries = queue(server)
        if entries and "attempts 0" not in entries[0]:
            break
        time.sleep(0.1)
    assert len(entries) == 1 and "ext@remote.example" in entries[0], entries
    assert "attempts 0" not in entries[0], "an attempt failed and was recorded"
    sink.start()
    try:
        server.cli("queue", "flush")
        sink.wait(1)
        time.sleep(2.5)
        assert len(sink.messages) == 1, "delivered exactly once"
        assert queue(server) == []
    finally:
        sink.stop()
        server.stop()


def test_queue_survives_kill_and_restart_without_loss_or_duplicate(server):
    sink = Sink()
    configure(server, sink.port)
    server.start()
    setup_domain(server)
    for i in range(3):
        submit(server, [f"ext{i}@remote{i}.example"], msg(f"q{i}", sender=ANNA, to="x@remote.example"))
    assert len(queue(server)) == 3
    server.proc.kill()
    server.proc.wait()
    server.proc = None
    server.logfile.close()
    sink.start()
    try:
        server.start()
        server.cli("queue", "flush")
        sink.wait(3)
        time.sleep(2.5)
        subjects = sorted(email.message_from_bytes(c)["Subject"] for _, _, c in sink.messages)
        assert subjects == ["q0", "q1", "q2"]
        assert queue(server) == []
        assert "no problems" in server.cli("verify").stdout
    finally:
        sink.stop()
        server.stop()


def test_mx_routing_and_relay_domain(server):
    sink = Sink().start()
    dns = DnsServer({
        "remote.example": {"MX": [(10, "mx1.remote.example")]},
        "mx1.remote.example": {"A": ["127.0.0.1"]},
    })
    try:
        server.write_config(
            f'\n[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\n'
            f"[outbound]\nport = {sink.port}\nretry_initial_secs = 1\nretry_max_secs = 1\n"
        )
        server.start()
        setup_domain(server)
        server.cli("domain", "add", "relay.example", "--mode", "relay",
                   "--relay-host", f"127.0.0.1:{sink.port}")
        submit(server, ["bob@remote.example"], msg("via mx", sender=ANNA, to="bob@remote.example"))
        ((_, rcpts, _),) = sink.wait(1)
        assert rcpts == ["bob@remote.example"]
        # Port 25 mail for an unknown address of a relay domain goes to its host.
        mx_send(server, "x@origin.example", ["someone@relay.example"], msg("relay", to="someone@relay.example"))
        (_, rcpts, _) = sink.wait(2)[1]
        assert rcpts == ["someone@relay.example"]
        # A domain without any mail host bounces.
        submit(server, ["nobody@nowhere.example"], msg("lost", sender=ANNA, to="nobody@nowhere.example"))
        (bounce,) = wait_inbox(server, ANNA, 1)
        assert "nobody@nowhere.example" in str(bounce.get_payload()[1])
    finally:
        server.stop()
        sink.stop()
        dns.close()


def test_unauthenticated_relay_still_refused(mail):
    with smtplib.SMTP("127.0.0.1", mail.ports["smtp"], timeout=10) as s:
        s.ehlo()
        s.mail("x@origin.example")
        assert s.rcpt("victim@remote.example") == (550, b"5.7.1 relay not permitted")


def test_over_quota_after_data_is_552_and_nothing_stored(mail):
    mail.cli("account", "add", "small@example.org", "--password", PASSWORD, "--quota", "1MiB")
    with smtplib.SMTP("127.0.0.1", mail.ports["smtp"], timeout=10) as s:
        s.ehlo()
        s.mail("x@origin.example")  # no SIZE: RCPT cannot know
        assert s.rcpt("small@example.org")[0] == 250
        code, text = s.data(msg("big", to="small@example.org", extra=("X-Pad: " + "x" * 900 + "\r\n") * 1200))
        assert (code, text) == (552, b"5.2.2 Mailbox full")
    assert "INBOX (0 messages" in mail.cli("account", "show", "small@example.org").stdout


def test_delay_warning_then_bounce_after_giving_up(server):
    closed = Sink()  # never started: connections are refused
    configure(server, closed.port, "warn_after_secs = 1\ngive_up_after_secs = 4\n")
    server.start()
    setup_domain(server)
    submit(server, ["ext@remote.example"], msg("stuck", sender=ANNA, to="ext@remote.example"))
    try:
        (warning,) = wait_inbox(server, ANNA, 1, timeout=10)
        assert warning["Subject"] == "Delayed Mail (still being retried)"
        assert "Action: delayed" in str(warning.get_payload()[1])
        assert len(queue(server)) == 1, "still queued after the warning"
        msgs = wait_inbox(server, ANNA, 2, timeout=15)
        bounce = msgs[1]
        assert bounce["Subject"] == "Undelivered Mail Returned to Sender"
        report = str(bounce.get_payload()[1])
        assert "Action: failed" in report and "Status: 4.4.7" in report
        assert queue(server) == []
        time.sleep(1.5)
        assert len(inbox(server, ANNA)) == 2, "one warning, one bounce"
    finally:
        server.stop()


def test_starttls_is_used_when_offered_and_remove_drops_an_entry(server):
    import ssl

    server.start()  # creates the self-signed pair the sink borrows
    server.stop()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server.cert, server.key)
    sink = Sink(starttls=ctx).start()
    configure(server, sink.port)
    server.start()
    try:
        setup_domain(server)
        submit(server, ["ext@remote.example"], msg("secret", sender=ANNA, to="ext@remote.example"))
        sink.wait(1)
        assert sink.tls_sessions == 1, "the sink requires STARTTLS; the message came over TLS"
        # `queue remove` drops a waiting entry without a bounce.
        sink.stop()
        submit(server, ["ext@remote.example"], msg("dropped", sender=ANNA, to="ext@remote.example"))
        deadline = time.time() + 10
        while not queue(server) and time.time() < deadline:
            time.sleep(0.1)
        (entry,) = queue(server)
        server.cli("queue", "remove", entry.split()[0])
        assert queue(server) == []
        r = server.cli("queue", "remove", entry.split()[0], check=False)
        assert r.returncode != 0 and "no queued message" in r.stderr
        assert inbox(server, ANNA) == [], "no bounce for a removed entry"
        assert "no problems" in server.cli("verify").stdout
    finally:
        sink.stop()
        server.stop()


def test_recipient_failing_after_others_got_the_message_is_bounced(mail):
    """One 250 covers all recipients; one whose mailbox turned out full at the
    commit must not be lost silently: its sender gets a bounce."""
    mail.cli("account", "add", "small@example.org", "--password", PASSWORD, "--quota", "1MiB")
    big = msg("big", to="small@example.org", extra=("X-Pad: " + "x" * 900 + "\r\n") * 1200)
    with smtplib.SMTP("127.0.0.1", mail.ports["smtp"], timeout=10) as s:
        s.ehlo()
        s.mail("sender@origin.example")  # no SIZE: RCPT cannot know
        assert s.rcpt("small@example.org")[0] == 250
        assert s.rcpt(ANNA)[0] == 250
        assert s.data(big)[0] == 250
    assert [m["Subject"] for m in wait_inbox(mail, ANNA, 1)] == ["big"]
    ((mail_from, rcpts, content),) = mail.sink.wait(1)
    assert mail_from == "<>" and rcpts == ["sender@origin.example"]
    bounce = email.message_from_bytes(content)
    report = str(bounce.get_payload()[1])
    assert "Final-Recipient: rfc822; small@example.org" in report
    assert "Status: 5.2.2" in report
