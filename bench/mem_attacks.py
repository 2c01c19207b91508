#!/usr/bin/env python3
"""Writes the captures of issue 12 section 2 (traffic that grows state), for peak-RSS checks.

Usage: mem_attacks.py CASE OUT.pcap
  heads      4,000 connections, each a 60 KB request head that never ends
  pipeline   100 connections x 64 pipelined requests with 30 KB heads, never answered
  syn        1,000,000 SYNs (distinct connections)
  oneseg     200,000 connections of one data segment each (no handshake)

Plain Ethernet/IPv4/TCP frames (vxtap does not validate checksums by default), pcap with
microsecond timestamps. Stdlib only. Measure with e.g.
  /usr/bin/time -f %M vxtap replay --max-memory 16MiB -o /dev/null - < OUT.pcap
"""

import struct
import sys

SYN, ACK = 0x02, 0x10


def ip_sum(h):
    s = sum(struct.unpack("!10H", h))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(n, from_client, seq, ack, flags, payload=b""):
    c_ip = 0x0A000000 | (n >> 14)
    c_port = 1024 + (n & 0x3FFF)
    s_ip, s_port = 0x0A010001, 80
    src, dst, sp, dp = (c_ip, s_ip, c_port, s_port) if from_client else (s_ip, c_ip, s_port, c_port)
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", ip_sum(ip)) + ip[12:]
    tcp = struct.pack("!HHIIBBHHH", sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + tcp + payload


class Pcap:
    def __init__(self, path):
        self.f = open(path, "wb", buffering=1 << 20)
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.us = 1_700_000_000 * 1_000_000

    def put(self, data):
        self.us += 1
        self.f.write(struct.pack("<IIII", self.us // 1_000_000, self.us % 1_000_000, len(data), len(data)))
        self.f.write(data)

    def close(self):
        self.f.close()


def padded_head(size, line=b"GET / HTTP/1.1\r\nHost: a\r\n"):
    h = bytearray(line)
    while len(h) < size:
        h += b"X-Pad: " + b"a" * 1000 + b"\r\n"
    return bytes(h)


def handshake(p, n, ci=1000, si=5000):
    p.put(frame(n, True, ci, 0, SYN))
    p.put(frame(n, False, si, ci + 1, SYN | ACK))
    p.put(frame(n, True, ci + 1, si + 1, ACK))
    return ci + 1, si + 1


def send(p, n, seq, ack, data):
    for i in range(0, len(data), 1448):
        piece = data[i:i + 1448]
        p.put(frame(n, True, seq, ack, ACK, piece))
        seq += len(piece)
    return seq


def main():
    case, out = sys.argv[1], sys.argv[2]
    p = Pcap(out)
    if case == "heads":
        head = padded_head(60_000)
        for n in range(4000):
            c, s = handshake(p, n)
            send(p, n, c, s, head)
    elif case == "pipeline":
        req = padded_head(30_000, b"GET /x HTTP/1.1\r\nHost: a\r\n") + b"\r\n"
        for n in range(100):
            c, s = handshake(p, n)
            for _ in range(64):
                c = send(p, n, c, s, req)
    elif case == "syn":
        for n in range(1_000_000):
            p.put(frame(n, True, 1000, 0, SYN))
    elif case == "oneseg":
        for n in range(200_000):
            p.put(frame(n, True, 1000, 5000, ACK, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
    else:
        sys.exit(f"unknown case {case}")
    p.close()


if __name__ == "__main__":
    main()
