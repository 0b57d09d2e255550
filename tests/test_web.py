"""The web side against the real binary: the management API and /metrics on the
loopback http listener, the password page in headless Chromium (Debian's
chromium + chromedriver, driven by Selenium) and client autoconfiguration on
the https listener."""

import http.cookiejar
import imaplib
import json
import os
import plistlib
import re
import shutil
import smtplib
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from conftest import Server, free_port, tls_context

TOKEN = "test-admin-token-0123456789"
USER = "web@example.org"
PASSWORD = "first password"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class WebServer(Server):
    """The conftest server plus the http and https listeners and a token."""

    def __init__(self, tmp, extra=""):
        super().__init__(tmp)
        self.write_config(f'\n[http]\nadmin_token = "{TOKEN}"\n{extra}')

    def write_config(self, extra=""):
        # Also after Server.start picked new ports for a port taken meanwhile.
        for name in ("http", "https"):
            self.ports.setdefault(name, free_port())
        super().write_config(extra)

    def url(self, listener, path):
        scheme = "https" if listener == "https" else "http"
        return f"{scheme}://127.0.0.1:{self.ports[listener]}{path}"



def request(server, listener, path, data=None, headers=None, method=None, opener=None):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(
        server.url(listener, path), data=data, headers=headers or {}, method=method
    )
    ctx = tls_context(server) if listener == "https" else None
    try:
        if opener is not None:
            r = opener.open(req, timeout=10)
        else:
            r = urllib.request.urlopen(req, timeout=10, context=ctx)
        with r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def api(server, method, path, body=None, token=TOKEN):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    status, _, raw = request(server, "http", path, data=data, headers=headers, method=method)
    return status, json.loads(raw)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    s = WebServer(tmp_path_factory.mktemp("web"))
    s.start()
    s.cli("domain", "add", "example.org")
    s.login_id = s.cli("account", "add", USER, "--password", PASSWORD).stdout.split()[-1]
    yield s
    s.stop()


def imap_login(server, user, password):
    c = imaplib.IMAP4_SSL(
        "127.0.0.1", server.ports["imaps"], ssl_context=tls_context(server), timeout=10
    )
    try:
        c.login(user, password)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            c.logout()
        except Exception:
            pass


# --- management API, health, metrics -------------------------------------


def test_http_listener_refuses_to_start_without_a_token(tmp_path):
    s = Server(tmp_path)
    s.ports["http"] = free_port()
    s.write_config()
    r = s.cli("serve", check=False)
    assert r.returncode != 0
    assert "http.admin_token" in r.stderr


def test_healthz_on_both_listeners(web):
    assert request(web, "http", "/healthz")[::2] == (200, b"ok\n")
    assert request(web, "https", "/healthz")[::2] == (200, b"ok\n")
    # The API is not served on the public https listener.
    assert request(web, "https", "/api/v1/domains")[0] == 404


def test_api_needs_the_token(web):
    for token in (None, "wrong-token-0123456789", TOKEN + "x"):
        status, body = api(web, "GET", "/api/v1/domains", token=token)
        assert status == 401 and body["ok"] is False
    status, headers, _ = request(web, "http", "/api/v1/admin", data=b"{}", method="POST")
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"


def test_api_runs_cli_commands(web):
    status, body = api(web, "POST", "/api/v1/admin", {"Domain": "List"})
    assert status == 200 and body["ok"] and body["output"].startswith("example.org\t")

    add = {
        "Account": {
            "Add": {
                "address": "api@example.org",
                "password": {"password": "api password 1"},
                "quota": "20MB",
                "name": "Via the API",
            }
        }
    }
    status, body = api(web, "POST", "/api/v1/admin", add)
    assert status == 200 and body["ok"], body
    # The CLI (over the management socket) sees what the API did, and the new
    # account can log in at once.
    assert "api@example.org" in web.cli("account", "list").stdout
    assert imap_login(web, "api@example.org", "api password 1")

    status, accounts = api(web, "GET", "/api/v1/accounts?domain=example.org")
    assert status == 200
    mine = {a["address"]: a for a in accounts}
    assert mine["api@example.org"]["quota"] == 20_000_000
    assert mine["api@example.org"]["name"] == "Via the API"
    assert len(mine["api@example.org"]["login_id"]) == 6

    status, domains = api(web, "GET", "/api/v1/domains")
    assert status == 200 and [d["name"] for d in domains] == ["example.org"]
    assert domains[0]["mode"] == "authoritative"
    assert api(web, "GET", "/api/v1/queue") == (200, [])

    # A command that fails, one that is no command, and no JSON at all.
    status, body = api(web, "POST", "/api/v1/admin", {"Domain": {"Remove": {"domain": "nope.example"}}})
    assert status == 422 and not body["ok"] and body["output"]
    status, body = api(web, "POST", "/api/v1/admin", {"Domain": {"Explode": {}}})
    assert status == 400 and "not an admin command" in body["output"]
    status, _, raw = request(
        web, "http", "/api/v1/admin", data=b"{nope", method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert status == 400 and b"bad JSON" in raw
    # Bodies are bounded.
    status, _, _ = request(
        web, "http", "/api/v1/admin", data=b" " * (2 << 20), method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert status == 413

    status, body = api(web, "POST", "/api/v1/admin", {"Account": {"Remove": {"address": "api@example.org"}}})
    assert status == 200 and body["ok"], body


def metric(text, name, labels=""):
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert m, f"{name}{labels} missing from:\n{text}"
    return float(m.group(1))


def test_metrics(web):
    assert not imap_login(web, USER, "not the password")
    with smtplib.SMTP("127.0.0.1", web.ports["smtp"], timeout=10) as s:
        s.sendmail("someone@remote.example", [USER], b"Subject: metrics\r\n\r\nHello.\r\n")

    status, headers, raw = request(web, "http", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = raw.decode()
    assert metric(text, "posthorn_connections_total", '{listener="imaps"}') >= 1
    assert metric(text, "posthorn_connections_total", '{listener="smtp"}') >= 1
    assert metric(text, "posthorn_connections_total", '{listener="pop3"}') == 0
    assert metric(text, "posthorn_auth_failures_total", '{protocol="imap"}') >= 1
    assert metric(text, "posthorn_messages_received_total") >= 1
    assert metric(text, "posthorn_messages_delivered_total", '{kind="local"}') >= 1
    assert metric(text, "posthorn_messages_delivered_total", '{kind="outbound"}') == 0
    assert metric(text, "posthorn_messages_bounced_total") == 0
    assert metric(text, "posthorn_queue_size") == 0
    commits = metric(text, "posthorn_store_commit_seconds_count")
    assert commits >= 1
    assert metric(text, "posthorn_store_commit_seconds_bucket", '{le="+Inf"}') == commits
    assert "# TYPE posthorn_store_commit_seconds histogram" in text
    assert metric(text, "posthorn_store_reads_from_disk_total") >= 0
    # Metrics are served on the loopback http listener only.
    assert request(web, "https", "/metrics")[0] == 404


# --- password page ----------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are not installed (.ci/run installs them)")
        pytest.skip("chromium and chromium-driver are not installed")
    from selenium import webdriver

    profile = tempfile.mkdtemp(prefix="posthorn-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--ignore-certificate-errors", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER)
    )
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def submit_form(browser, server, login, current, new, confirm=None):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url("https", "/password"))
    for field, value in (("login", login), ("current", current), ("new", new),
                         ("confirm", new if confirm is None else confirm)):
        browser.find_element(By.ID, field).send_keys(value)
    form = browser.find_element(By.TAG_NAME, "form")
    browser.find_element(By.ID, "submit").click()
    # The answer is a new page: wait for the form to go, then for the notice.
    WebDriverWait(browser, 30).until(EC.staleness_of(form))
    notice = WebDriverWait(browser, 30).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "#done, #error"))
    )
    return notice.get_attribute("id"), notice.text


def test_password_change_in_the_browser(web, browser):
    kind, text = submit_form(browser, web, web.login_id, PASSWORD, "second password")
    assert kind == "done", text
    assert USER in text
    # At once, for every protocol: the new password works, the old one not.
    assert imap_login(web, USER, "second password")
    assert not imap_login(web, USER, PASSWORD)
    with smtplib.SMTP_SSL("127.0.0.1", web.ports["submissions"], context=tls_context(web), timeout=10) as s:
        s.login(web.login_id, "second password")
    # Back to the first password, by address this time.
    kind, text = submit_form(browser, web, USER, "second password", PASSWORD)
    assert kind == "done", text
    assert imap_login(web, web.login_id, PASSWORD)


def test_password_page_shows_errors(web, browser):
    kind, text = submit_form(browser, web, USER, PASSWORD, "short")
    assert kind == "error" and "at least 8" in text, text
    kind, text = submit_form(browser, web, USER, "not the password", "a long new password")
    assert kind == "error" and "current password is wrong" in text, text
    kind, text = submit_form(browser, web, USER, PASSWORD, "a long new password", "another one")
    assert kind == "error" and "do not match" in text, text
    # Nothing changed.
    assert imap_login(web, USER, PASSWORD)
    # The failed check went through the protocols' authenticator: same log
    # line for fail2ban.
    assert re.search(r"auth failed: user=web@example.org ip=127\.0\.0\.1 protocol=web ", web.log.read_text())


def form_session(server):
    """A cookie-keeping client that has loaded the form: (opener, token)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=tls_context(server)),
        urllib.request.HTTPCookieProcessor(jar),
    )
    status, headers, body = request(server, "https", "/password", opener=opener)
    assert status == 200
    assert "SameSite=Strict" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
    token = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
    return opener, token


def post_form(server, opener, csrf, origin=None, current=PASSWORD):
    fields = {"login": USER, "current": current, "new": "csrf victim pw", "confirm": "csrf victim pw"}
    if csrf is not None:
        fields["csrf"] = csrf
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if origin:
        headers["Origin"] = origin
    return request(server, "https", "/password", data=urllib.parse.urlencode(fields).encode(),
                   headers=headers, method="POST", opener=opener)


def test_password_form_is_csrf_safe(web):
    opener, token = form_session(web)
    plain = urllib.request.build_opener(urllib.request.HTTPSHandler(context=tls_context(web)))
    # No token, a token without its cookie, a wrong token, another site's origin.
    for who, csrf, origin in ((opener, None, None), (plain, token, None),
                              (opener, token[::-1], None), (opener, token, "https://evil.example")):
        status, _, body = post_form(web, who, csrf, origin)
        assert status == 403 and b"another site" in body, body
    assert imap_login(web, USER, PASSWORD)


def test_password_form_is_rate_limited(tmp_path):
    s = WebServer(tmp_path, "password_attempts = 2\n")
    s.start()
    try:
        opener, token = form_session(s)
        statuses = [post_form(s, opener, token, current="wrong")[0] for _ in range(3)]
        assert statuses == [403, 403, 429]
        status, _, body = post_form(s, opener, token, current="wrong")
        assert status == 429 and b"Too many attempts" in body
    finally:
        s.stop()


# --- client autoconfiguration ------------------------------------------------


def test_thunderbird_autoconfig(web):
    for path in ("/mail/config-v1.1.xml?emailaddress=you%40Example.org",
                 "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=you%40example.org"):
        for listener in ("https", "http"):
            status, headers, body = request(web, listener, path)
            assert status == 200 and "xml" in headers["Content-Type"]
            provider = ET.fromstring(body).find("emailProvider")
            assert provider.get("id") == "example.org"
            servers = {(s.get("type"), s.findtext("socketType")): s for s in provider}
            imaps = servers[("imap", "SSL")]
            assert imaps.findtext("hostname") == "mail.test"
            assert imaps.findtext("port") == str(web.ports["imaps"])
            assert servers[("imap", "STARTTLS")].findtext("port") == str(web.ports["imap"])
            assert servers[("pop3", "SSL")].findtext("port") == str(web.ports["pop3s"])
            assert servers[("smtp", "SSL")].findtext("port") == str(web.ports["submissions"])
            assert servers[("smtp", "STARTTLS")].findtext("port") == str(web.ports["submission"])
            assert imaps.findtext("username") == "%EMAILADDRESS%"
    # Without an address: the domain of the autoconfig.<domain> host asked.
    status, _, body = request(web, "https", "/.well-known/autoconfig/mail/config-v1.1.xml",
                              headers={"Host": "autoconfig.example.org"})
    assert status == 200 and ET.fromstring(body).find("emailProvider").get("id") == "example.org"
    assert request(web, "https", "/mail/config-v1.1.xml?emailaddress=%3Cx%3E")[0] == 400


def test_outlook_autodiscover(web):
    ns = {"r": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    address = 'a&b"<c>@example.org'
    escaped = address.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
        f"<Request><EMailAddress>{USER}</EMailAddress>"
        "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
        "</AcceptableResponseSchema></Request></Autodiscover>"
    ).encode()
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
        status, _, raw = request(web, "https", path, data=body, method="POST",
                                 headers={"Content-Type": "text/xml"})
        assert status == 200
        protocols = {
            p.findtext("r:Type", namespaces=ns): p
            for p in ET.fromstring(raw).iterfind(".//r:Protocol", ns)
        }
        assert protocols["IMAP"].findtext("r:Port", namespaces=ns) == str(web.ports["imaps"])
        assert protocols["IMAP"].findtext("r:Server", namespaces=ns) == "mail.test"
        assert protocols["IMAP"].findtext("r:LoginName", namespaces=ns) == USER
        assert protocols["SMTP"].findtext("r:Port", namespaces=ns) == str(web.ports["submissions"])
        assert protocols["POP3"].findtext("r:Encryption", namespaces=ns) == "SSL"
    # A hostile address comes back escaped: the answer still parses and says
    # exactly what was asked.
    hostile = body.replace(USER.encode(), address.encode())
    status, _, raw = request(web, "https", "/autodiscover/autodiscover.xml", data=hostile, method="POST")
    assert status == 200 and escaped.encode() in raw
    assert ET.fromstring(raw).find(".//r:LoginName", ns).text == address
    assert request(web, "https", "/autodiscover/autodiscover.xml", data=b"<x/>", method="POST")[0] == 400


def test_apple_mobileconfig(web):
    address = "you+<b>&x@example.org"
    status, headers, raw = request(
        web, "https", "/apple/posthorn.mobileconfig?emailaddress=" + urllib.parse.quote(address)
    )
    assert status == 200
    assert headers["Content-Type"] == "application/x-apple-aspen-config"
    assert "posthorn.mobileconfig" in headers["Content-Disposition"]
    profile = plistlib.loads(raw)
    assert profile["PayloadType"] == "Configuration"
    mail = profile["PayloadContent"][0]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAddress"] == address
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert mail["IncomingMailServerHostName"] == "mail.test"
    assert mail["IncomingMailServerPortNumber"] == web.ports["imaps"]
    assert mail["IncomingMailServerUseSSL"] is True
    assert mail["OutgoingMailServerPortNumber"] == web.ports["submissions"]
    # The same profile twice: the same identifiers, so it replaces itself.
    again = plistlib.loads(request(web, "https", "/apple/posthorn.mobileconfig?emailaddress="
                                   + urllib.parse.quote(address))[2])
    assert again["PayloadUUID"] == profile["PayloadUUID"]
    assert request(web, "https", "/apple/posthorn.mobileconfig")[0] == 400


def test_autoconfig_public_ports_from_config(tmp_path):
    s = WebServer(tmp_path, '[autoconfig]\nhostname = "imap.example.org"\nimaps_port = 993\nimap_port = 0\n')
    s.start()
    try:
        _, _, body = request(s, "http", "/mail/config-v1.1.xml?emailaddress=you%40example.org")
        provider = ET.fromstring(body).find("emailProvider")
        incoming = [(x.get("type"), x.findtext("socketType"), x.findtext("port"), x.findtext("hostname"))
                    for x in provider.iterfind("incomingServer")]
        assert ("imap", "SSL", "993", "imap.example.org") in incoming
        assert not [x for x in incoming if x[:2] == ("imap", "STARTTLS")]
    finally:
        s.stop()
