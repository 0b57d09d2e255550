#!/usr/bin/env python3
"""Daemon memory after 100 concurrent IMAP logins (auth cache off, so every login
runs argon2id). Usage: python3 benches/login-memory.py /var/tmp/posthorn-target/release/posthorn"""
import imaplib, os, subprocess, sys, tempfile, threading, time, socket
from pathlib import Path
BIN=sys.argv[1]
d = Path(tempfile.mkdtemp(prefix="login-memory-", dir="/var/tmp"))
def fp():
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close(); return p
ip=fp()
(d/"c.toml").write_text(f'''[server]
hostname="m.test"
data_dir="{d}/data"
[listeners]
imap="127.0.0.1:{ip}"
[tls]
cert="{d}/c.pem"
key="{d}/k.pem"
self_signed=true
allow_plaintext_auth=true
[limits]
max_connections_per_ip=1000
[auth]
cache_size=0
''')
p=subprocess.Popen([BIN,"serve","--config",str(d/"c.toml")],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
time.sleep(1.5)
cli=lambda *a: subprocess.run([BIN,"--config",str(d/"c.toml"),*a],check=True,capture_output=True)
cli("domain","add","e.test"); cli("account","add","a@e.test","--password","pw-123456")
def rss(): return int([l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")][0].split()[1])
before=rss()
def login():
    c=imaplib.IMAP4("127.0.0.1",ip); c.login("a@e.test","pw-123456"); c.logout()
ts=[threading.Thread(target=login) for _ in range(100)]
[t.start() for t in ts]; [t.join() for t in ts]
time.sleep(0.5)
print("RSS before", before//1024, "MiB, after 100 concurrent logins", rss()//1024, "MiB")
p.terminate(); p.wait()
import shutil; shutil.rmtree(d, ignore_errors=True)
