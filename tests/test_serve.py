"""`posthorn serve`: startup errors, listeners with TLS, graceful shutdown."""

import socket
import ssl
import subprocess

from conftest import BIN, free_port


def serve_fails(server, needle, timeout=30):
    r = subprocess.run([BIN, "serve", "--config", str(server.config)], capture_output=True, text=True, timeout=timeout)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    return r.stderr


def test_unknown_config_key_names_file_and_key(server):
    server.write_config('\n[limits]\nmax_mesage_size = 10\n')
    err = serve_fails(server, "max_mesage_size")
    assert str(server.config) in err


def test_bad_value_names_key(server):
    server.write_config('\n[limits]\nmax_message_size = "big"\n')
    serve_fails(server, "max_message_size")


def test_missing_certificate_names_file(server):
    server.write_config()
    text = server.config.read_text().replace("self_signed = true", "self_signed = false")
    server.config.write_text(text)
    serve_fails(server, str(server.cert))


def test_port_in_use_names_listener(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        server.ports["imap"] = s.getsockname()[1]
        server.write_config()
        err = serve_fails(server, "imap")
        assert "in use" in err


def test_listeners_answer_plain_and_tls_then_shutdown_is_graceful(server):
    server.start()
    # Self-signed certificate generated on first start, key private.
    assert server.cert.exists() and (server.key.stat().st_mode & 0o077) == 0
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=5) as s:
        greeting = s.recv(1024)
        assert greeting == b"220 mail.test ESMTP posthorn\r\n", greeting
    ctx = ssl.create_default_context(cafile=str(server.cert))
    ctx.check_hostname = False  # the certificate names mail.test; we dial 127.0.0.1
    for name, expect in [("imaps", b"* OK"), ("pop3s", b"+OK"), ("submissions", b"220 mail.test")]:
        with socket.create_connection(("127.0.0.1", server.ports[name]), timeout=5) as raw:
            with ctx.wrap_socket(raw) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                assert tls.recv(1024).startswith(expect), name
    assert server.stop() == 0
    assert not (server.dir / "data" / "posthorn.sock").exists()
    log = server.log.read_text()
    assert "shutting down" in log and "stopped" in log
    # Nothing listens any more.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", server.ports["smtp"])) != 0


def test_second_daemon_on_same_data_dir_is_refused(server):
    server.start()
    other_ports = {k: free_port() for k in server.ports}
    saved = server.ports
    server.ports = other_ports
    server.write_config()
    err = serve_fails(server, "posthorn")
    assert "in use" in err or "lock" in err.lower(), err
    server.ports = saved
    server.write_config()
    assert server.stop() == 0


def test_quickstart_config_runs_from_a_fresh_checkout(tmp_path):
    """README's quickstart: config/local.toml as shipped, in an empty directory."""
    import shutil
    import signal
    import time

    from conftest import ROOT

    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "local.toml", tmp_path / "config" / "local.toml")
    proc = subprocess.Popen([BIN, "serve", "--config", "config/local.toml"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while not (tmp_path / "data" / "posthorn.sock").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline, "quickstart server did not come up"
            time.sleep(0.05)
        assert (tmp_path / "certs" / "local-cert.pem").exists()
        with socket.create_connection(("127.0.0.1", 2525), timeout=5) as s:
            assert s.recv(100).startswith(b"220 ")
        r = subprocess.run([BIN, "--config", "config/local.toml", "domain", "add", "example.org"],
                           cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "127.0.0.1:1993" in out and "account add" in out, out


def served_cert(server):
    """The DER certificate the IMAPS listener presents."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=5) as raw:
        with ctx.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def test_sighup_reloads_certificate_and_keeps_old_one_when_new_is_bad(server):
    import signal
    import time

    server.start()
    before = served_cert(server)
    # A renewed certificate (as Let's Encrypt would write it).
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=mail.test",
                    "-keyout", str(server.key), "-out", str(server.cert)], check=True, capture_output=True)
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while served_cert(server) == before:
        assert time.time() < deadline, "certificate not reloaded"
        time.sleep(0.1)
    renewed = served_cert(server)
    # A broken renewal: the daemon keeps serving the last good certificate.
    server.cert.write_text("not a certificate\n")
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while "reload failed" not in server.log.read_text():
        assert time.time() < deadline, "no log line for the failed reload"
        time.sleep(0.1)
    assert served_cert(server) == renewed
    assert server.stop() == 0


def test_connections_over_the_per_ip_limit_get_a_protocol_reply(server):
    server.write_config("\n[limits]\nmax_connections_per_ip = 2\n")
    server.start()
    for name, expect in [("smtp", b"421 4.7.0"), ("imap", b"* BYE"), ("pop3", b"-ERR [SYS/TEMP]")]:
        held = [socket.create_connection(("127.0.0.1", server.ports[name]), timeout=5) for _ in range(2)]
        for h in held:
            h.recv(1024)  # greeting
        with socket.create_connection(("127.0.0.1", server.ports[name]), timeout=5) as third:
            assert third.recv(1024).startswith(expect), name
        for h in held:
            h.close()
    assert server.stop() == 0
