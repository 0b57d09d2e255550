"""SPF (RFC 7208) on port 25 against the real binary, with a tiny DNS server on
loopback (UDP and TCP) that serves the test domains' TXT records: no internet."""

import poplib
import smtplib
import time

import pytest
from dns_stub import SERVFAIL, SILENT, TYPE_TXT, DnsServer
from conftest import tls_context

ANNA = "anna@example.org"
PASSWORD = "correct horse"

# name -> TXT strings; SERVFAIL and SILENT are the failure modes.
ZONE = {
    "fail.test": ["v=spf1 -all"],
    "pass.test": ["v=spf1 ip4:127.0.0.1 -all"],
    "soft.test": ["v=spf1 ~all"],
    "neutral.test": ["v=spf1 ?all"],
    "broken.test": ["v=spf1 include -all"],  # include needs a domain
    "temp.test": SERVFAIL,
    "slow.test": SILENT,
}


@pytest.fixture
def dns():
    d = DnsServer(ZONE)
    yield d
    d.close()


def start(server, dns, extra=""):
    server.write_config(f'\n[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\n{extra}')
    server.start()
    server.cli("domain", "add", "example.org")
    server.cli("account", "add", ANNA, "--password", PASSWORD)


@pytest.fixture
def mx(server, dns):
    start(server, dns)
    yield server
    server.stop()



def mail_from(server, sender, helo="client.example"):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as s:
        s.ehlo(helo)
        return s.mail(sender)


def send(server, sender, subject, helo="client.example"):
    body = f"From: <{sender}>\r\nTo: <{ANNA}>\r\nSubject: {subject}\r\n\r\nHello.\r\n"
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as s:
        s.ehlo(helo)
        s.sendmail(sender, [ANNA], body.encode())


def messages(server):
    """Every message in anna's mailbox, read back with POP3 over TLS."""
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=tls_context(server), timeout=30)
    try:
        pop.user(ANNA)
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        return [b"\r\n".join(pop.retr(i + 1)[1]).decode() for i in range(count)]
    finally:
        pop.quit()


def header_block(msg):
    """The header section with folded lines joined."""
    return msg.split("\r\n\r\n", 1)[0].replace("\r\n\t", " ")


def test_fail_is_refused_at_mail_from(mx, dns):
    code, text = mail_from(mx, "someone@fail.test")
    assert code == 550
    assert text.startswith(b"5.7.23 SPF check failed"), text
    assert b"fail.test gives fail for 127.0.0.1" in text, text
    assert ("fail.test", TYPE_TXT) in [(q[2], q[3]) for q in dns.queries if q]


@pytest.mark.parametrize(
    "domain,result,comment",
    [
        ("pass.test", "pass", "designates 127.0.0.1 as permitted sender"),
        ("soft.test", "softfail", "does not designate 127.0.0.1 as permitted sender"),
        ("nothing.test", "none", "does not designate permitted sender hosts"),
        ("neutral.test", "neutral", "127.0.0.1 is neither permitted nor denied"),
        ("broken.test", "permerror", "permanent error"),
    ],
)
def test_accepted_mail_carries_spf_headers(mx, domain, result, comment):
    sender = f"someone@{domain}"
    send(mx, sender, f"spf {result}")
    [msg] = messages(mx)
    headers = header_block(msg)
    assert f"Received-SPF: {result} (mail.test: " in headers, headers
    assert comment in headers, headers
    assert f'client-ip=127.0.0.1; envelope-from="{sender}"; helo=client.example;' in headers, headers
    assert f"Authentication-Results: mail.test; spf={result} smtp.mailfrom={sender}" in headers, headers
    assert f"Subject: spf {result}" in headers


def test_null_sender_checks_the_helo_name(mx):
    # RFC 7208 §2.4: a bounce (MAIL FROM:<>) is judged by the HELO identity.
    code, text = mail_from(mx, "", helo="fail.test")
    assert (code, text[:6]) == (550, b"5.7.23"), text
    send(mx, "", "bounce", helo="pass.test")
    [msg] = messages(mx)
    headers = header_block(msg)
    assert "Received-SPF: pass (mail.test: domain of pass.test designates 127.0.0.1" in headers
    assert "identity=helo;" in headers
    assert "Authentication-Results: mail.test; spf=pass smtp.helo=pass.test" in headers


def test_servfail_is_temperror_451(mx):
    code, text = mail_from(mx, "someone@temp.test")
    assert code == 451
    assert text.startswith(b"4.7.24 SPF temporary DNS failure"), text


def test_silent_dns_is_bounded_temperror(mx):
    started = time.monotonic()
    code, text = mail_from(mx, "someone@slow.test")
    assert (code, text[:6]) == (451, b"4.7.24"), text
    assert time.monotonic() - started < 15


def test_policy_is_configurable(server, dns):
    start(server, dns, '[spf]\npermerror = "reject"\nfail = "accept"\n')
    try:
        code, text = mail_from(server, "someone@broken.test")
        assert (code, text[:6]) == (550, b"5.7.24"), text
        send(server, "someone@fail.test", "let through")
        [msg] = messages(server)
        assert "Received-SPF: fail " in header_block(msg)
    finally:
        server.stop()


def test_authenticated_submission_skips_spf(mx, dns):
    mx.cli("domain", "add", "fail.test")
    mx.cli("alias", "add", "anna@fail.test", ANNA)
    # The same sender from outside is refused on 25...
    assert mail_from(mx, "anna@fail.test")[0] == 550
    # ...but anna, logged in on 587, may send as it: no SPF check, no SPF headers.
    before = len(dns.queries)
    with smtplib.SMTP("127.0.0.1", mx.ports["submission"], timeout=30) as s:
        s.starttls(context=tls_context(mx))
        s.ehlo("client.example")
        s.login(ANNA, PASSWORD)
        body = f"From: <anna@fail.test>\r\nTo: <{ANNA}>\r\nSubject: submitted\r\n\r\nHi.\r\n"
        s.sendmail("anna@fail.test", [ANNA], body.encode())
    assert len(dns.queries) == before
    [msg] = messages(mx)
    headers = header_block(msg)
    assert "Subject: submitted" in headers
    assert "Received-SPF" not in headers and "spf=" not in headers
