"""A tiny DNS server on loopback for tests: TXT, MX, A, AAAA, SRV and CNAME records
from a dict, NXDOMAIN for every other name, so no test ever asks a resolver
outside this machine."""

import socket
import struct
import threading

# name -> TXT strings, or {"TXT": [...], "MX": [(preference, host)], "A": [ip],
# "AAAA": [ip], "SRV": [(priority, weight, port, target)], "CNAME": host};
# SERVFAIL and SILENT are the failure modes. A name with a CNAME answers every
# query type with the CNAME record (not chased).
SERVFAIL = "servfail"
SILENT = "silent"
TYPE_A, TYPE_CNAME, TYPE_MX, TYPE_TXT, TYPE_AAAA, TYPE_SRV, CLASS_IN = 1, 5, 15, 16, 28, 33, 1
NOERROR, SERVFAIL_RCODE, NXDOMAIN = 0, 2, 3


def parse_question(packet):
    """(id, flags, name, qtype, end of the question) of a query, or None."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        return None
    labels, pos = [], 12
    while pos < len(packet) and packet[pos] != 0:
        n = packet[pos]
        labels.append(packet[pos + 1 : pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    pos += 1
    if pos + 4 > len(packet):
        return None
    qtype, _qclass = struct.unpack("!HH", packet[pos : pos + 4])
    return qid, flags, ".".join(labels).lower(), qtype, pos + 4


def answer(zone, packet):
    """The response to one query, or None to stay silent."""
    q = parse_question(packet)
    if q is None:
        return None
    qid, flags, name, qtype, end = q
    records = zone.get(name)
    if records == SILENT:
        return None
    rcode, answers = NXDOMAIN, []
    if records == SERVFAIL:
        rcode = SERVFAIL_RCODE
    elif records is not None:
        rcode = NOERROR
        if isinstance(records, list):
            records = {"TXT": records}
        if "CNAME" in records:
            answers = [(TYPE_CNAME, encode_name(records["CNAME"]))]
        elif qtype == TYPE_TXT:
            answers = [(qtype, txt_rdata(t)) for t in records.get("TXT", [])]
        elif qtype == TYPE_MX:
            answers = [(qtype, struct.pack("!H", p) + encode_name(h)) for p, h in records.get("MX", [])]
        elif qtype == TYPE_A:
            answers = [(qtype, socket.inet_aton(ip)) for ip in records.get("A", [])]
        elif qtype == TYPE_AAAA:
            answers = [(qtype, socket.inet_pton(socket.AF_INET6, ip)) for ip in records.get("AAAA", [])]
        elif qtype == TYPE_SRV:
            answers = [
                (qtype, struct.pack("!HHH", prio, weight, port) + encode_name(target))
                for prio, weight, port, target in records.get("SRV", [])
            ]
    # QR, the query's opcode and RD, AA, RA.
    out_flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode
    out = struct.pack("!HHHHHH", qid, out_flags, 1, len(answers), 0, 0) + packet[12:end]
    for rtype, rdata in answers:
        # A pointer to the name in the question, TTL 0 so nothing is cached.
        out += struct.pack("!HHHIH", 0xC00C, rtype, CLASS_IN, 0, len(rdata)) + rdata
    return out


def txt_rdata(text):
    """TXT character-strings of at most 255 bytes each (long DKIM keys)."""
    data = text.encode()
    return b"".join(bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255))


def encode_name(name):
    """Wire form; "." is the root (an SRV target meaning "not offered")."""
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode() for label in labels) + b"\0"


class DnsServer:
    """Authoritative for `zone` on 127.0.0.1, UDP and TCP on one port; every
    other name is NXDOMAIN."""

    def __init__(self, zone):
        self.zone = zone
        for _ in range(20):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket()
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        else:
            raise AssertionError("no port free for both UDP and TCP")
        self.tcp.listen()
        self.queries = []
        self.running = True
        threading.Thread(target=self.serve_udp, daemon=True).start()
        threading.Thread(target=self.serve_tcp, daemon=True).start()

    def serve_udp(self):
        while self.running:
            try:
                packet, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            self.queries.append(parse_question(packet))
            reply = answer(self.zone, packet)
            if reply is not None:
                self.udp.sendto(reply, peer)

    def serve_tcp(self):
        while self.running:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self.serve_conn, args=(conn,), daemon=True).start()

    def serve_conn(self, conn):
        with conn:
            conn.settimeout(30)
            try:
                while True:
                    head = conn.recv(2, socket.MSG_WAITALL)
                    if len(head) < 2:
                        return
                    packet = conn.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
                    reply = answer(self.zone, packet)
                    if reply is not None:
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return

    def close(self):
        self.running = False
        self.udp.close()
        self.tcp.close()
