#!/usr/bin/env python3
"""Outbound queue throughput: one posthorn takes authenticated submissions for
an external domain and relays them through its outbound queue to a second
posthorn (the "remote" MX, on loopback). Reports the submission rate and the
end-to-end rate: from the first submission until the remote INBOX holds every
message.

    cargo build --workspace --release
    python3 benches/outbound-bench.py [--messages 2000] [--sessions 8] [--size 4096]
"""

import argparse
import imaplib
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from dns_stub import DnsServer  # noqa: E402  (a loopback DNS server: NXDOMAIN for all)

BIN = os.environ.get("POSTHORN_BIN", "/var/tmp/posthorn-target/release/posthorn")
PASSWORD = "bench-password-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, root: Path, name: str, dns_port: int, extra: str = ""):
        self.dir = root / name
        self.dir.mkdir()
        self.ports = {n: free_port() for n in ["smtp", "submission", "imap"]}
        listeners = "\n".join(f'{n} = "127.0.0.1:{p}"' for n, p in self.ports.items())
        self.config = self.dir / "posthorn.toml"
        self.config.write_text(
            f"""
[server]
hostname = "{name}.bench"
data_dir = "{self.dir / 'data'}"
[listeners]
{listeners}
[tls]
cert = "{self.dir / 'cert.pem'}"
key = "{self.dir / 'key.pem'}"
self_signed = true
allow_plaintext_auth = true
[limits]
max_connections_per_ip = 1000
[dns]
nameservers = ["127.0.0.1:{dns_port}"]
{extra}
"""
        )
        self.log = open(self.dir / "daemon.log", "wb")
        self.proc = subprocess.Popen([BIN, "serve", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        sock = self.dir / "data" / "posthorn.sock"
        deadline = time.time() + 30
        while not sock.exists():
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"{name} did not start: {(self.dir / 'daemon.log').read_text()}")
            time.sleep(0.05)
        time.sleep(0.2)

    def cli(self, *args):
        return subprocess.run([BIN, "--config", str(self.config), *args], check=True,
                              capture_output=True, text=True).stdout

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="outbound-bench-", dir="/var/tmp"))
    # The remote's SPF check asks a loopback DNS server that knows no names.
    dns = DnsServer({})
    remote = Daemon(root, "remote", dns.port)
    sender = Daemon(root, "sender", dns.port,
                    f'[outbound]\nsmarthost = "127.0.0.1:{remote.ports["smtp"]}"\n')
    try:
        remote.cli("domain", "add", "remote.bench")
        remote.cli("account", "add", "inbox@remote.bench", "--password", PASSWORD, "--quota", "100GB")
        sender.cli("domain", "add", "local.bench")
        sender.cli("account", "add", "anna@local.bench", "--password", PASSWORD, "--quota", "100GB")

        body = "x" * 76 + "\r\n"
        message = ("From: anna@local.bench\r\nTo: inbox@remote.bench\r\nSubject: bench\r\n\r\n"
                   + body * max(1, args.size // len(body))).encode()
        per_session = args.messages // args.sessions
        total = per_session * args.sessions

        def submit():
            with smtplib.SMTP("127.0.0.1", sender.ports["submission"], timeout=60) as s:
                s.login("anna@local.bench", PASSWORD)
                for _ in range(per_session):
                    s.sendmail("anna@local.bench", ["inbox@remote.bench"], message)

        start = time.time()
        threads = [threading.Thread(target=submit) for _ in range(args.sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        submitted = time.time() - start

        imap = imaplib.IMAP4("127.0.0.1", remote.ports["imap"])
        imap.login("inbox@remote.bench", PASSWORD)
        count = 0
        deadline = time.time() + 600
        while count < total and time.time() < deadline:
            _, data = imap.status("INBOX", "(MESSAGES)")
            count = int(data[0].split()[-1].strip(b")"))
            if count < total:
                time.sleep(0.05)
        done = time.time() - start
        imap.logout()
        print(f"messages            {total} of {len(message)} bytes, {args.sessions} submission sessions")
        print(f"submitted           {submitted:.2f} s  ({total / submitted:.0f} msg/s into the queue)")
        print(f"delivered remotely  {count} after {done:.2f} s  ({count / done:.0f} msg/s end to end)")
    finally:
        sender.stop()
        remote.stop()


if __name__ == "__main__":
    main()
