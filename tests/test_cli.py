"""The admin CLI of the interface contract, against a stopped daemon (direct
database access) and a running one (management socket)."""

import re



def exercise_cli(server):
    """Every contract command once, with the checks that hold in both modes."""
    assert "added domain example.org" in server.cli("domain", "add", "example.org").stdout
    server.cli("domain", "add", "relay.example", "--mode", "relay", "--relay-host", "exchange.internal:25")
    domains = server.cli("domain", "list").stdout
    assert "example.org\tauthoritative" in domains and "relay.example\trelay\texchange.internal:25" in domains

    out = server.cli("account", "add", "anna@example.org", "--password", "correct horse", "--quota", "500MB").stdout
    login = out.split()[-1]
    assert re.fullmatch(r"[a-z0-9]{6}", login), out
    out = server.cli("account", "add", "bob@example.org", "--password-stdin", input="battery staple\n").stdout
    assert out.split()[-1] != login

    listed = server.cli("account", "list").stdout
    assert "anna@example.org" in listed and "bob@example.org" in listed and login in listed
    assert "anna@example.org" not in server.cli("account", "list", "relay.example").stdout

    server.cli("alias", "add", "info@example.org", "anna@example.org")
    assert "info@example.org\tanna@example.org" in server.cli("alias", "list").stdout
    server.cli("forward", "add", "bob@example.org", "bob@elsewhere.example", "--keep-copy")
    assert "bob@elsewhere.example" in server.cli("forward", "list").stdout
    server.cli("blocklist", "add", "anna@example.org", "*@spam.example")
    assert "*@spam.example" in server.cli("blocklist", "list", "anna@example.org").stdout

    body = server.dir / "away.txt"
    body.write_text("I am away until Monday.\n")
    server.cli("autoresponder", "set", "anna@example.org", "--body-file", str(body), "--subject-prefix", "Abwesend: ",
               "--start", "2026-12-01", "--end", "2026-12-24")
    shown = server.cli("autoresponder", "show", "anna@example.org").stdout
    assert "Abwesend: " in shown and "2026-12-24" in shown and "I am away" in shown
    server.cli("autoresponder", "off", "anna@example.org")

    server.cli("account", "passwd", "anna@example.org", "--password", "another good one")
    show = server.cli("account", "show", "anna@example.org").stdout
    assert "info@example.org" in show and "INBOX" in show and "Sent" in show and "500 MB" in show

    # Errors: stderr, non-zero exit, and a message that says what to do.
    cases = [
        (("account", "add", "x@unknown.example", "--password", "long enough"), "domain add"),
        (("account", "add", "carl@example.org", "--password", "short"), "at least 8"),
        (("account", "add", "bad..dots@example.org", "--password", "long enough"), "invalid address"),
        (("alias", "add", "anna@example.org", "bob@example.org"), "already in use"),
        (("alias", "add", "x@example.org", "info@example.org"), "alias"),
        (("domain", "remove", "example.org"), "example.org"),
        (("account", "add", "q@example.org", "--password", "long enough", "--quota", "5 parsecs"), "invalid size"),
    ]
    for args, needle in cases:
        r = server.cli(*args, check=False)
        assert r.returncode != 0, args
        assert needle in r.stderr, (args, r.stderr)

    server.cli("alias", "remove", "info@example.org")
    server.cli("blocklist", "remove", "anna@example.org", "*@spam.example")
    server.cli("forward", "remove", "bob@example.org", "bob@elsewhere.example")
    server.cli("account", "remove", "bob@example.org")
    assert "bob@example.org" not in server.cli("account", "list").stdout
    assert "no problems" in server.cli("verify").stdout


def test_cli_with_daemon_stopped(server):
    exercise_cli(server)
    # What was written directly is there for the daemon afterwards.
    server.start()
    assert "anna@example.org" in server.cli("account", "list").stdout
    assert server.stop() == 0


def test_cli_with_daemon_running(server):
    server.start()
    exercise_cli(server)
    log = server.log.read_text()
    assert "admin command" in log, "commands went through the management socket"
    assert "correct horse" not in log and "another good one" not in log, "passwords never reach the log"
    assert server.stop() == 0
    # And the daemon's writes are on disk for direct access.
    assert "anna@example.org" in server.cli("account", "list").stdout


def test_cli_missing_config_is_clear(tmp_path):
    from conftest import BIN
    import subprocess

    r = subprocess.run([BIN, "--config", str(tmp_path / "nope.toml"), "domain", "list"], capture_output=True, text=True)
    assert r.returncode != 0
    assert "nope.toml" in r.stderr
