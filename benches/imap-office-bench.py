#!/usr/bin/env python3
"""IMAP "busy office": SESSIONS client processes, each with one persistent plain
IMAP session on its own account (bench0@DOMAIN, bench1@DOMAIN, ...; same
password; INBOX is filled to FILL messages first, default 1000) run a mail
client's command mix for SECONDS, one command at a time (no
pipelining):

    SELECT INBOX, FETCH n-19:n (ENVELOPE FLAGS), FETCH m BODY.PEEK[HEADER],
    FETCH m BODY[], STORE m +FLAGS (\\Flagged), STORE m -FLAGS (\\Flagged),
    SEARCH UNSEEN, UID SEARCH FROM "x", NOOP,
    APPEND (a new small message), STORE its UID +FLAGS (\\Deleted), UID EXPUNGE

Then SESSIONS processes open new sessions back to back for SECONDS:
connect, LOGIN, SELECT INBOX, LOGOUT. Prints commands/s and sessions/s.
Plain IMAP: the server needs `[tls] allow_plaintext_auth = true`.

    benches/imap-office-bench.py PORT SESSIONS SECONDS DOMAIN PASSWORD [FILL]
"""

import multiprocessing
import random
import re
import socket
import sys
import time

NEW_MESSAGE = (
    b"From: Carol <carol@example.net>\r\nTo: office@example.org\r\nSubject: minutes\r\n"
    b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%d@office>\r\n\r\n"
    b"Minutes of the meeting.\r\n"
)


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb", buffering=65536)
        self.f.readline()
        self.tag = 0

    def command(self, line):
        """Sends one command; returns its untagged lines (literals skipped)
        and the tagged line."""
        self.tag += 1
        tag = b"t%d" % self.tag
        self.s.sendall(tag + b" " + line + b"\r\n")
        return self.read_tagged(tag)

    def read_tagged(self, tag):
        untagged = []
        while True:
            line = self.f.readline()
            if not line:
                raise SystemExit("server closed the connection")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise SystemExit(f"{line!r}")
                return untagged, line
            untagged.append(line)
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                self.f.read(int(m.group(1)))

    def append(self, data):
        self.tag += 1
        tag = b"t%d" % self.tag
        self.s.sendall(tag + b" APPEND INBOX {%d+}\r\n" % len(data) + data + b"\r\n")
        _, ok = self.read_tagged(tag)
        return int(re.search(rb"APPENDUID \d+ (\d+)", ok).group(1))


def login(c, user, password):
    c.command(f'LOGIN "{user}" "{password}"'.encode())
    return login_select(c)


def login_select(c):
    untagged, _ = c.command(b"SELECT INBOX")
    return next(int(line.split()[1]) for line in untagged if line.endswith(b" EXISTS\r\n"))


def fill(c, exists, count):
    """Appends messages (pipelined LITERAL+) until INBOX holds `count`."""
    body = b"Subject: filler\r\nFrom: Dan <dan@example.net>\r\n\r\n" + b"Some text.\r\n" * 100
    todo = count - exists
    for i in range(todo):
        c.s.sendall(b"f%d APPEND INBOX {%d+}\r\n" % (i, len(body)) + body + b"\r\n")
    for i in range(todo):
        c.read_tagged(b"f%d" % i)


def office(port, user, password, seconds, out, filled=1000):
    rng = random.Random(user)
    c = Client(port)
    exists = login(c, user, password)
    if exists < max(filled, 20):
        fill(c, exists, max(filled, 20))
        exists = login_select(c)
    commands, start = 0, time.time()
    end = start + seconds
    spent = {}

    def timed(name, f, *args):
        t = time.perf_counter()
        r = f(*args)
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        return r

    while time.time() < end:
        last = rng.randint(20, exists)
        m = rng.randint(1, exists)
        for name, line in (
            ("SELECT", b"SELECT INBOX"),
            ("FETCH envelopes", b"FETCH %d:%d (ENVELOPE FLAGS)" % (last - 19, last)),
            ("FETCH header", b"FETCH %d BODY.PEEK[HEADER]" % m),
            ("FETCH body", b"FETCH %d BODY[]" % m),
            ("STORE +", b"STORE %d +FLAGS (\\Flagged)" % m),
            ("STORE -", b"STORE %d -FLAGS (\\Flagged)" % m),
            ("SEARCH UNSEEN", b"SEARCH UNSEEN"),
            ("SEARCH FROM", b'UID SEARCH FROM "carol"'),
            ("NOOP", b"NOOP"),
        ):
            timed(name, c.command, line)
        uid = timed("APPEND", c.append, NEW_MESSAGE % rng.randrange(1 << 30))
        timed("STORE \\Deleted", c.command, b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
        timed("UID EXPUNGE", c.command, b"UID EXPUNGE %d" % uid)
        commands += 12
    out.put((commands / (time.time() - start), commands // 12, spent))
    c.command(b"LOGOUT")


def sessions(port, user, password, seconds, out, _filled=0):
    n, start = 0, time.time()
    while time.time() < start + seconds:
        c = Client(port)
        login(c, user, password)
        c.command(b"LOGOUT")
        c.s.close()
        n += 1
    out.put((n / (time.time() - start), n, {}))


def run(target, port, count, seconds, domain, password, filled=0):
    """Each process reports its own rate over its timed window; the windows
    overlap (they start after each process's login and fill)."""
    out = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(
            target=target, args=(port, f"bench{i}@{domain}", password, seconds, out, filled)
        )
        for i in range(count)
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    rounds = sum(r[1] for r in results)
    spent = {}
    for _, _, s in results:
        for name, t in s.items():
            spent[name] = spent.get(name, 0.0) + t
    return sum(r[0] for r in results), {k: v / max(rounds, 1) for k, v in spent.items()}


def main():
    port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    domain, password = sys.argv[4], sys.argv[5]
    filled = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
    run(office, port, count, 0, domain, password, filled)  # fill, untimed
    rate, latency = run(office, port, count, seconds, domain, password, filled)
    print(f"office mix, {count} persistent sessions: {rate:,.0f} commands/s")
    print("  mean latency: " + ", ".join(f"{k} {v * 1000:.2f} ms" for k, v in latency.items()))
    rate, _ = run(sessions, port, count, seconds, domain, password)
    print(f"new sessions (connect, LOGIN, SELECT, LOGOUT), {count} clients: {rate:,.0f} sessions/s")


if __name__ == "__main__":
    main()
