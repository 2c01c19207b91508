#!/usr/bin/env python3
"""Pipelined HTTP/1.1 captures with a controlled loss (standard library only).

  gen_pipeline.py OUT.pcap [--requests N] [--drop-in-head K] [--drop-piece 0|1|2]

One keep-alive connection (handshake, FIN both ways): the client sends N pipelined
`GET /r<i>` requests, each in its own segment, and only then the server answers them all,
in order. Every response names its request twice (an `X-Request-Id: r<i>` header and a body
"response to /r<i>"), so a pairing can be checked without trusting the tool under test.
Response heads are about 400 bytes, sent as three segments: the first 100 bytes, the next
238, the rest with the body. With --drop-in-head K the 238-byte middle segment of response
K is left out of the capture (a mirror loss inside a response head); --drop-piece 0 drops
the first segment instead (the status line with it), 2 the last (head end and body). The
client's acks still cover what was dropped, as they would on the wire. Timestamps advance
10 us per packet.
"""
import argparse
import struct

CLIENT = (bytes([10, 1, 0, 1]), 40123)
SERVER = (bytes([10, 1, 0, 2]), 80)
MAC_C = b"\x02\x00\x00\x00\x00\x01"
MAC_S = b"\x02\x00\x00\x00\x00\x02"
SYN, FIN, PSH, ACK = 0x02, 0x01, 0x08, 0x10


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(src, dst, seq, ack, flags, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 65535, 0, 0)
    pseudo = src[0] + dst[0] + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    csum = checksum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src[0], dst[0])
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = (MAC_S + MAC_C if src == CLIENT else MAC_C + MAC_S) + b"\x08\x00"
    return eth + ip + tcp + payload


def response(i):
    body = ("response to /r%d\n" % i).encode()
    head = ("HTTP/1.1 200 OK\r\nServer: gen_pipeline\r\nContent-Type: text/plain\r\n"
            "X-Request-Id: r%d\r\nContent-Length: %d\r\n" % (i, len(body))).encode()
    # Pad the head to about 400 bytes so the dropped segment lies inside it.
    pad = 400 - len(head) - len("X-Pad: \r\n\r\n")
    head += b"X-Pad: " + b"p" * pad + b"\r\n\r\n"
    return head, body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--drop-in-head", type=int, default=-1)
    ap.add_argument("--drop-piece", type=int, choices=(0, 1, 2), default=1)
    args = ap.parse_args()

    packets = []
    ts = [1_700_000_000_000_000]  # microseconds

    def emit(data, keep=True):
        ts[0] += 10
        if keep:
            packets.append((ts[0], data))

    c_isn, s_isn = 1000, 5000
    emit(frame(CLIENT, SERVER, c_isn, 0, SYN))
    emit(frame(SERVER, CLIENT, s_isn, c_isn + 1, SYN | ACK))
    cseq, sseq = c_isn + 1, s_isn + 1
    emit(frame(CLIENT, SERVER, cseq, sseq, ACK))
    for i in range(args.requests):
        req = ("GET /r%d HTTP/1.1\r\nHost: gen.example\r\nUser-Agent: gen_pipeline\r\n\r\n"
               % i).encode()
        emit(frame(CLIENT, SERVER, cseq, sseq, PSH | ACK, req))
        cseq += len(req)
    for i in range(args.requests):
        head, body = response(i)
        pieces = [head[:100], head[100:338], head[338:] + body]
        for n, data in enumerate(pieces):
            keep = not (i == args.drop_in_head and n == args.drop_piece)
            emit(frame(SERVER, CLIENT, sseq, cseq, PSH | ACK, data), keep)
            sseq += len(data)
        # The client acknowledges each response (dropped bytes included).
        emit(frame(CLIENT, SERVER, cseq, sseq, ACK))
    emit(frame(SERVER, CLIENT, sseq, cseq, FIN | ACK))
    emit(frame(CLIENT, SERVER, cseq, sseq + 1, FIN | ACK))
    emit(frame(SERVER, CLIENT, sseq + 1, cseq + 1, ACK))

    with open(args.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, data in packets:
            f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(data), len(data)))
            f.write(data)


if __name__ == "__main__":
    main()
