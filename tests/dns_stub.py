"""A tiny DNS server on loopback for tests: TXT records from a dict, NXDOMAIN for
every other name, so no test ever asks a resolver outside this machine."""

import socket
import struct
import threading

# name -> TXT strings, or {"TXT": [...], "MX": [(preference, host)], "A": [ip]};
# SERVFAIL and SILENT are the failure modes.
SERVFAIL = "servfail"
SILENT = "silent"
TYPE_A, TYPE_MX, TYPE_TXT, CLASS_IN = 1, 15, 16, 1
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
        if qtype == TYPE_TXT:
            answers = [txt_rdata(t) for t in records.get("TXT", [])]
        elif qtype == TYPE_MX:
            answers = [struct.pack("!H", p) + encode_name(h) for p, h in records.get("MX", [])]
        elif qtype == TYPE_A:
            answers = [socket.inet_aton(ip) for ip in records.get("A", [])]
    # QR, the query's opcode and RD, AA, RA.
    out_flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode
    out = struct.pack("!HHHHHH", qid, out_flags, 1, len(answers), 0, 0) + packet[12:end]
    for rdata in answers:
        # A pointer to the name in the question, TTL 0 so nothing is cached.
        out += struct.pack("!HHHIH", 0xC00C, qtype, CLASS_IN, 0, len(rdata)) + rdata
    return out


def txt_rdata(text):
    """TXT character-strings of at most 255 bytes each (long DKIM keys)."""
    data = text.encode()
    return b"".join(bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255))


def encode_name(name):
    return b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"


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
