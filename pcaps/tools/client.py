#!/usr/bin/env python3
"""Socket clients (standard library only) for what curl cannot do.

  client.py pipeline HOST PORT LOCAL_PORT   five requests in ONE write (HTTP/1.1
                                            pipelining), the last with
                                            Connection: close; reads to EOF
  client.py ws HOST PORT LOCAL_PORT         websocket upgrade on /ws, three
                                            masked text frames (one > 125
                                            bytes), reads the echoes, close
"""
import base64
import socket
import struct
import sys

PIPELINE = [
    ("GET", "/small.txt", ""),
    ("GET", "/index.html", ""),
    ("HEAD", "/medium.json", ""),
    ("GET", "/missing-page", ""),
    ("GET", "/style.css", "Connection: close\r\n"),
]


def connect(host, port, local_port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", local_port))
    s.settimeout(10)
    s.connect((host, port))
    return s


def read_all(s):
    out = b""
    while True:
        data = s.recv(65536)
        if not data:
            return out
        out += data


def pipeline(host, port, local_port):
    s = connect(host, port, local_port)
    reqs = "".join(
        "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: vxtap-fixture-pipeliner\r\n%s\r\n"
        % (m, u, host, extra) for m, u, extra in PIPELINE)
    s.sendall(reqs.encode())
    data = read_all(s)
    s.close()
    print("pipeline: %d bytes, %d status lines" % (len(data), data.count(b"HTTP/1.1 ")))


def ws_frame(opcode, payload, mask=b"\x11\x22\x33\x44"):
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    else:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(s, buf):
    while len(buf) < 2:
        buf += s.recv(4096)
    n = buf[1] & 0x7F
    hl = 2
    if n == 126:
        while len(buf) < 4:
            buf += s.recv(4096)
        n = struct.unpack("!H", buf[2:4])[0]
        hl = 4
    while len(buf) < hl + n:
        buf += s.recv(4096)
    return buf[0] & 0x0F, buf[hl:hl + n], buf[hl + n:]


def ws(host, port, local_port):
    s = connect(host, port, local_port)
    key = base64.b64encode(b"vxtap-fixture-16").decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: vxtap-fixture-ws\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % (host, port, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    for msg in (b"hello", b"GET /not-http HTTP/1.1 inside a frame", b"x" * 300):
        s.sendall(ws_frame(1, msg))
        _, payload, buf = read_frame(s, buf)
        assert payload == b"echo: " + msg
    s.sendall(ws_frame(8, b"\x03\xe8bye"))
    opcode, _, buf = read_frame(s, buf)
    assert opcode == 8
    s.close()
    print("ws: ok")


def main():
    cmd, host, port, local_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    {"pipeline": pipeline, "ws": ws}[cmd](host, port, local_port)


if __name__ == "__main__":
    main()
