#!/usr/bin/env python3
"""IMAP: pipelined LITERAL+ APPENDs into INBOX, then `FETCH 1:* (ENVELOPE FLAGS)`
timed three times. Plain IMAP (the server needs `[tls] allow_plaintext_auth = true`
or use it on loopback only). Works against any IMAP server.

    benches/imap-fetch-bench.py PORT COUNT USER PASSWORD
"""

import socket
import sys
import time


def main():
    port, n, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")

    def cmd(tag, line):
        s.sendall(f"{tag} {line}\r\n".encode())
        while True:
            reply = f.readline()
            if reply.startswith(tag.encode() + b" "):
                return reply

    f.readline()
    assert b" OK" in cmd("a", f'LOGIN "{user}" "{password}"')
    msg = (b"From: Bob <bob@example.net>\r\nTo: " + user.encode() + b"\r\nSubject: fetch bench\r\n"
           b"Message-ID: <x@y>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n")
    start = time.time()
    s.sendall(b"".join(f"p{i} APPEND INBOX {{{len(msg)}+}}\r\n".encode() + msg + b"\r\n" for i in range(n)))
    done = 0
    while done < n:
        if f.readline().startswith(b"p"):
            done += 1
    print(f"APPEND (pipelined, one session): {n / (time.time() - start):.0f} messages/s")
    cmd("b", "SELECT INBOX")
    for _ in range(3):
        start = time.time()
        s.sendall(b"c FETCH 1:* (ENVELOPE FLAGS)\r\n")
        count = 0
        while True:
            line = f.readline()
            if line.startswith(b"* ") and b" FETCH " in line:
                count += 1
            if line.startswith(b"c "):
                break
        print(f"FETCH ENVELOPE+FLAGS of {count} messages: {count / (time.time() - start):.0f} messages/s")
    cmd("z", "LOGOUT")


if __name__ == "__main__":
    main()
