"""Fixtures for end-to-end tests: the real posthorn binary on loopback ports with
a temporary data directory, driven by real clients."""

import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from dns_stub import DnsServer

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("POSTHORN_BIN", "/var/tmp/posthorn-target/debug/posthorn")

LISTENERS = ["smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s"]


_QUIET_DNS = None


def quiet_dns_port():
    """A loopback DNS server that knows no names: SPF lookups in tests get a
    quick NXDOMAIN instead of asking the machine's resolver."""
    global _QUIET_DNS
    if _QUIET_DNS is None:
        _QUIET_DNS = DnsServer({})
    return _QUIET_DNS.port


def tls_context(server):
    """Trusts the server's certificate; it names mail.test, but tests dial 127.0.0.1."""
    ctx = ssl.create_default_context(cafile=str(server.cert))
    ctx.check_hostname = False
    return ctx


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One configuration and data directory; the daemon can be started and stopped."""

    def __init__(self, tmp: Path):
        self.dir = tmp
        self.ports = {name: free_port() for name in LISTENERS}
        self.config = tmp / "posthorn.toml"
        self.cert = tmp / "cert.pem"
        self.key = tmp / "key.pem"
        self.log = tmp / "daemon.log"
        self.proc = None
        self.write_config()

    def write_config(self, extra=""):
        self.extra = extra
        listeners = "\n".join(f'{n} = "127.0.0.1:{p}"' for n, p in self.ports.items())
        if "[dns]" not in extra:
            extra = f'\n[dns]\nnameservers = ["127.0.0.1:{quiet_dns_port()}"]\n{extra}'
        self.config.write_text(
            f"""
[server]
hostname = "mail.test"
data_dir = "{self.dir / 'data'}"

[listeners]
{listeners}

[tls]
cert = "{self.cert}"
key = "{self.key}"
self_signed = true
{extra}
"""
        )

    def cli(self, *args, input=None, check=True):
        r = subprocess.run(
            [BIN, "--config", str(self.config), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"posthorn {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def start(self, attempts=3):
        """Starts the daemon. Ports were picked free but are bound only now; if
        another process took one meanwhile, pick new ones and try again."""
        for attempt in range(attempts):
            try:
                return self._start()
            except AssertionError as e:
                if "already in use" not in str(e) or attempt + 1 == attempts:
                    raise
                self.ports = {name: free_port() for name in LISTENERS}
                self.write_config(self.extra)

    def _start(self):
        # Only this run's lines count: after a kill the old log says "ready" too.
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.logfile = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", str(self.config)],
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        sock = self.dir / "data" / "posthorn.sock"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.logfile.close()
                self.proc = None
                raise AssertionError(f"daemon exited: {self.log.read_text()}")
            if sock.exists() and b"posthorn ready" in self.log.read_bytes()[offset:]:
                return
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready: {self.log.read_text()}")

    def stop(self, timeout=20):
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.logfile.close()
        self.proc = None
        return code


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    yield s
    if s.proc is not None:
        s.proc.kill()
        s.proc.wait()
