#!/usr/bin/env python3
"""IMAP IDLE push latency: opens SESSIONS plain IMAP connections spread over
USERS accounts (bench0@DOMAIN, bench1@DOMAIN, ...; same password), each in
IDLE on INBOX, then delivers DELIVERIES messages over SMTP submission (AUTH
PLAIN, so no SPF lookups), one at a time and each to the next account, and
measures for every session of that account the time from the SMTP `250`
after DATA to its `* N EXISTS`. Prints p50/p90/p99/max over all of them.

The server needs `[tls] allow_plaintext_auth = true`, a `submission`
listener, and `[limits] max_connections_per_ip` above SESSIONS; raise the fd
limit of both sides (`ulimit -n`) for large counts.

    benches/imap-push-bench.py IMAP_PORT SUBMISSION_PORT SESSIONS USERS DELIVERIES DOMAIN PASSWORD
"""

import base64
import selectors
import socket
import sys
import time


def percentile(sorted_values, p):
    i = min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def open_idle(port, user, password):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    f.readline()
    s.sendall(f'a LOGIN "{user}" "{password}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
    while not f.readline().startswith(b"+"):
        pass
    # From here the socket is read without the file object: nothing is
    # buffered in `f` after the continuation line, the server sent no more.
    s.setblocking(False)
    return s


class Smtp:
    def __init__(self, port, user, password):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")
        self.reply()
        self.cmd(b"EHLO bench.example")
        auth = base64.b64encode(f"\0{user}\0{password}".encode())
        code = self.cmd(b"AUTH PLAIN " + auth)
        assert code == b"235", code

    def reply(self):
        while True:
            line = self.f.readline()
            if line[3:4] != b"-":
                return line[:3]

    def cmd(self, line):
        self.s.sendall(line + b"\r\n")
        return self.reply()

    def send(self, sender, rcpt, n):
        assert self.cmd(f"MAIL FROM:<{sender}>".encode()) == b"250"
        assert self.cmd(f"RCPT TO:<{rcpt}>".encode()) == b"250"
        assert self.cmd(b"DATA") == b"354"
        body = (
            f"From: {sender}\r\nTo: {rcpt}\r\nSubject: push {n}\r\n"
            f"Message-ID: <push-{n}-{time.time()}@bench.example>\r\n\r\nhello\r\n.\r\n"
        )
        self.s.sendall(body.encode())
        code = self.reply()
        done = time.perf_counter()
        assert code == b"250", code
        return done


def main():
    imap_port, smtp_port, n, users, deliveries = map(int, sys.argv[1:6])
    domain, password = sys.argv[6], sys.argv[7]
    account = lambda i: f"bench{i}@{domain}"  # noqa: E731
    by_user = {u: [] for u in range(users)}
    start = time.time()
    for i in range(n):
        by_user[i % users].append(open_idle(imap_port, account(i % users), password))
    print(f"{n} sessions in IDLE over {users} accounts (opened in {time.time() - start:.1f} s)")
    time.sleep(1)
    smtp = Smtp(smtp_port, account(0), password)
    sel = selectors.DefaultSelector()
    latencies = []
    for k in range(deliveries):
        user = k % users
        socks = by_user[user]
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        t0 = smtp.send(account(0), account(user), k)
        arrived, pending = [], {s: b"" for s in socks}
        while pending:
            for key, _ in sel.select(timeout=10):
                s = key.fileobj
                data = s.recv(65536)
                now = time.perf_counter()
                assert data, "server closed an IDLE session"
                pending[s] += data
                if b" EXISTS\r\n" in pending[s]:
                    arrived.append(now)
                    sel.unregister(s)
                    del pending[s]
        # The 250 may come after the first EXISTS (the commit wakes IDLE
        # before the SMTP reply is written): such a latency counts as 0.
        latencies.extend(max(0.0, t - t0) for t in arrived)
    latencies.sort()
    ms = lambda v: f"{v * 1000:.2f} ms"  # noqa: E731
    print(
        f"push latency SMTP 250 -> * N EXISTS, {deliveries} deliveries, {len(latencies)} notifications "
        f"({n // users} sessions per account): p50 {ms(percentile(latencies, 50))}, "
        f"p90 {ms(percentile(latencies, 90))}, p99 {ms(percentile(latencies, 99))}, max {ms(latencies[-1])}"
    )


if __name__ == "__main__":
    main()
