#!/usr/bin/env python3
"""IMAP: opens COUNT connections that log in, select INBOX and IDLE, then
reports how much the server's resident memory grew per idle session. Plain
IMAP (the server needs `[tls] allow_plaintext_auth = true`), or implicit TLS
with `tls` as the last argument (point PORT at the imaps listener; the
certificate is not checked). Raise the fd limit of both sides (`ulimit -n`)
and the server's `[limits] max_connections` and `max_connections_per_ip`
for large counts.

    benches/imap-idle-bench.py PORT COUNT USER PASSWORD SERVER_PID [tls]
"""

import socket
import ssl
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def main():
    port, n, user, password, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    tls = None
    if sys.argv[6:] == ["tls"]:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    before = rss_kib(pid)
    sessions = []
    login = f'a LOGIN "{user}" "{password}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if tls:
            s = tls.wrap_socket(s)
        f = s.makefile("rb")
        f.readline()
        s.sendall(login)
        while not f.readline().startswith(b"+"):
            pass
        sessions.append((s, f))
    time.sleep(1)
    after = rss_kib(pid)
    kind = "TLS" if tls else "plain"
    print(f"{n} {kind} IDLE sessions: server RSS {before} KiB -> {after} KiB, {(after - before) / n:.1f} KiB per session")


if __name__ == "__main__":
    main()
