#!/usr/bin/env python3
"""Crash soak over SMTP: load the daemon with several SMTP client threads, kill it
with SIGKILL at random moments, restart it, and at the end check that every
message that got a 250 is in each of its recipients' mailboxes exactly once,
that nothing arrived twice or out of nowhere, and that `posthorn verify` finds
the quota counters, folder counters and blob reference counts exact.

Some messages also go to a forwarder to an external address, so they pass
through the outbound queue to a sink SMTP server: each acknowledged one must
reach the sink. It may reach it twice: a kill between the sink's `250` and
the queue's record of it sends it again (RFC 5321 §6.1 accepts this; no MTA
can avoid it), so those are counted, not failed.

Every message carries a unique Subject and Message-ID. A message whose
transaction was cut by a kill (no reply to the final dot) is "in doubt": it may
be there once or not at all, never twice.

Long run by hand (README "Crash soak"):

    POSTHORN_BIN=/var/tmp/posthorn-target/debug/posthorn python3 tests/soak.py --kills 100

The short CI version is tests/test_soak.py.
"""

import argparse
import imaplib
import json
import os
import random
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import Server  # noqa: E402

PASSWORD = "correct horse"
ACCOUNTS = ["anna@example.org", "bob@example.org", "carl@example.org"]
# Forwards to an external address: through the outbound queue to the sink.
FORWARDER = "fwd@example.org"


class Sink:
    """The external destination: an aiosmtpd server counting subjects."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.lock = threading.Lock()
        self.subjects = {}
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        for line in envelope.content.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                with self.lock:
                    subject = line[9:].decode()
                    self.subjects[subject] = self.subjects.get(subject, 0) + 1
                break
        return "250 2.0.0 queued"

    def stop(self):
        self.controller.stop()


class SoakServer(Server):
    """Server whose start waits for a *new* "posthorn ready" line: the log
    and the socket file survive a SIGKILL."""

    def _start(self):
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.logfile = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--config", str(self.config)],
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.logfile.close()
                self.proc = None
                raise AssertionError(f"daemon exited: {self.log.read_bytes()[offset:].decode(errors='replace')}")
            with open(self.log, "rb") as f:
                f.seek(offset)
                if b"posthorn ready" in f.read():
                    return
            time.sleep(0.02)
        raise AssertionError("daemon not ready")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.logfile.close()
        self.proc = None


def message(subject, size, recipients):
    line = "soak " * 14 + "soak\r\n"
    body = line * max(1, size // len(line))
    return (
        f"From: load@remote.example\r\nTo: {', '.join(recipients)}\r\n"
        f"Message-ID: <{subject}@soak.example>\r\nSubject: {subject}\r\n\r\n{body}"
    ).encode()


class Load:
    """SMTP client threads on port 25. Each keeps its connection for several
    messages (so kills land in every phase of a session) and reconnects when
    the daemon goes away."""

    def __init__(self, server, threads, seed):
        self.server = server
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}  # subject -> recipients
        self.doubt = {}  # subject -> recipients
        self.refused = 0
        self.errors = 0
        self.threads = [
            threading.Thread(target=self.run, args=(n, random.Random(seed * 1000 + n)), daemon=True)
            for n in range(threads)
        ]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()

    def run(self, n, rng):
        seq = 0
        conn = None
        while not self.stop.is_set():
            if conn is None:
                try:
                    conn = smtplib.SMTP("127.0.0.1", self.server.ports["smtp"], timeout=30)
                    conn.ehlo("soak.example")
                except (OSError, smtplib.SMTPException):
                    conn = None
                    self.stop.wait(0.05)
                    continue
            seq += 1
            subject = f"soak-{n}-{seq}"
            rcpts = rng.sample(ACCOUNTS + [FORWARDER], rng.choice([1, 1, 1, 2, 3]))
            size = rng.choice([300, 2_000, 20_000, 200_000]) if rng.random() < 0.97 else 1_500_000
            data = message(subject, size, rcpts)
            try:
                refused = conn.sendmail("load@remote.example", rcpts, data)
                with self.lock:
                    self.acked[subject] = [r for r in rcpts if r not in refused]
            except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused):
                # A 4xx/5xx answer: not accepted, so it must not be delivered
                # either (a client would send it again).
                with self.lock:
                    self.refused += 1
                conn = self.reset(conn)
            except (OSError, smtplib.SMTPException):
                # Cut by a kill somewhere in the transaction.
                with self.lock:
                    self.errors += 1
                    self.doubt[subject] = rcpts
                conn = self.reset(conn)
            if rng.random() < 0.2:
                conn = self.reset(conn)

    @staticmethod
    def reset(conn):
        try:
            conn.close()
        except Exception:
            pass
        return None


def mailbox_subjects(server, user):
    ctx = ssl.create_default_context(cafile=str(server.cert))
    ctx.check_hostname = False
    c = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=ctx, timeout=60)
    c.login(user, PASSWORD)
    typ, data = c.select("INBOX", readonly=True)
    assert typ == "OK", data
    out = []
    if int(data[0]) > 0:
        typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        for item in data:
            if isinstance(item, tuple):
                for line in item[1].split(b"\r\n"):
                    if line.startswith(b"Subject: "):
                        out.append(line[9:].decode())
    c.logout()
    return out


def soak(workdir, kills, threads=4, min_up=0.5, max_up=3.0, seed=None, bin=None, log=print):
    """Runs the soak; returns a dict of figures. `ok` is True when nothing
    acknowledged was lost, nothing was duplicated and verify is clean."""
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    server = SoakServer(Path(workdir))
    server.bin = bin or os.environ.get("POSTHORN_BIN", "/var/tmp/posthorn-target/debug/posthorn")
    sink = Sink()
    server.write_config(
        f'[outbound]\nsmarthost = "127.0.0.1:{sink.port}"\nretry_initial_secs = 1\nretry_max_secs = 1\n'
    )
    server.start()
    server.cli("domain", "add", "example.org")
    server.cli("forward", "add", FORWARDER, "ext@remote.example")
    # Quotas out of the way: over-quota recipients are refused or dropped
    # by design (see README "Crash soak"), which is not what this measures.
    for a in ACCOUNTS:
        server.cli("account", "add", a, "--password", PASSWORD, "--quota", "1TiB")
    load = Load(server, threads, seed)
    t0 = time.monotonic()
    load.start()
    restart_secs = []
    try:
        for k in range(kills):
            time.sleep(rng.uniform(min_up, max_up))
            server.kill()
            # Sometimes restart at once, sometimes let clients hit a closed port.
            time.sleep(rng.choice([0, 0, 0.1, 0.5]))
            r0 = time.monotonic()
            server.start()
            restart_secs.append(time.monotonic() - r0)
            if (k + 1) % 10 == 0:
                log(f"{k + 1} kills, {len(load.acked)} acknowledged, {time.monotonic() - t0:.0f} s")
        time.sleep(min_up)
    finally:
        load.finish()
    elapsed = time.monotonic() - t0
    # Let the outbound queue drain (retries come every second).
    deadline = time.monotonic() + 60
    while server.cli("queue", "list").stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.2)
    queue_left = len(server.cli("queue", "list").stdout.strip().splitlines())
    sink.stop()
    forwarded = {s for s, rcpts in load.acked.items() if FORWARDER in rcpts}
    forwarded_doubt = {s for s, rcpts in load.doubt.items() if FORWARDER in rcpts}
    outbound_lost = sorted(s for s in forwarded if s not in sink.subjects)
    outbound_twice = sorted(s for s, n in sink.subjects.items() if n > 1)
    outbound_unexpected = sorted(
        s for s in sink.subjects if s not in forwarded and s not in forwarded_doubt
    )

    expected = {a: set() for a in ACCOUNTS}
    for subject, rcpts in load.acked.items():
        for r in rcpts:
            if r in expected:
                expected[r].add(subject)
    maybe = {a: set() for a in ACCOUNTS}
    for subject, rcpts in load.doubt.items():
        for r in rcpts:
            if r in maybe:
                maybe[r].add(subject)
    lost, duplicated, unexpected, doubt_delivered = [], [], [], 0
    for a in ACCOUNTS:
        got = mailbox_subjects(server, a)
        counts = {}
        for s in got:
            counts[s] = counts.get(s, 0) + 1
        lost += [(a, s) for s in expected[a] if counts.get(s, 0) == 0]
        duplicated += [(a, s) for s, n in counts.items() if n > 1]
        unexpected += [(a, s) for s in counts if s not in expected[a] and s not in maybe[a]]
        doubt_delivered += sum(1 for s in counts if s in maybe[a])
    verify = server.cli("verify", check=False)
    server.stop()
    figures = {
        "seed": seed,
        "kills": kills,
        "seconds": round(elapsed, 1),
        "threads": threads,
        "acknowledged": len(load.acked),
        "deliveries_acknowledged": sum(len(v) for v in expected.values()),
        "in_doubt": len(load.doubt),
        "in_doubt_delivered": doubt_delivered,
        "refused": load.refused,
        "cut": load.errors,
        "lost": len(lost),
        "duplicated": len(duplicated),
        "unexpected": len(unexpected),
        "forwarded_acknowledged": len(forwarded),
        "outbound_lost": len(outbound_lost),
        "outbound_twice": len(outbound_twice),
        "outbound_unexpected": len(outbound_unexpected),
        "queue_left": queue_left,
        "verify_ok": verify.returncode == 0 and "no problems" in verify.stdout,
        "restart_max_secs": round(max(restart_secs, default=0), 2),
    }
    figures["ok"] = (
        figures["lost"] == 0
        and figures["duplicated"] == 0
        and figures["unexpected"] == 0
        and figures["outbound_lost"] == 0
        and figures["outbound_unexpected"] == 0
        and figures["queue_left"] == 0
        and figures["verify_ok"]
        and figures["acknowledged"] > 0
    )
    if not figures["ok"]:
        figures["examples"] = {
            "lost": lost[:10],
            "duplicated": duplicated[:10],
            "unexpected": unexpected[:10],
            "outbound_lost": outbound_lost[:10],
            "verify": (verify.stdout + verify.stderr)[-2000:],
        }
    return figures


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=100)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--min-up", type=float, default=0.5, help="least seconds between restart and kill")
    p.add_argument("--max-up", type=float, default=3.0, help="most seconds between restart and kill")
    p.add_argument("--seed", type=int)
    p.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    args = p.parse_args()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        figures = soak(args.keep, args.kills, args.threads, args.min_up, args.max_up, args.seed)
    else:
        with tempfile.TemporaryDirectory(prefix="posthorn-soak-") as d:
            figures = soak(d, args.kills, args.threads, args.min_up, args.max_up, args.seed)
    print(json.dumps(figures, indent=1))
    sys.exit(0 if figures["ok"] else 1)


if __name__ == "__main__":
    main()
