#!/usr/bin/env python3
"""Seeds fuzz/corpus/TARGET from the project's captures and a set of HTTP heads.

Run by fuzz/run.sh before a target's first run (and safe to rerun: seeds are named by
content). Each seed follows the input layout its target's doc comment describes.
"""
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MAX = 65536


def put(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def captures():
    files = sorted(glob.glob(os.path.join(ROOT, "pcaps", "*", "*.pcap")))
    shared = os.path.join(ROOT, "..", "shared", "pcaps", "public")
    files += sorted(glob.glob(os.path.join(shared, "*.pcap*")))
    return files


def pcap_frames(data):
    """(linktype, [frames]) of a classic little/big-endian pcap, or None."""
    if len(data) < 24:
        return None
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None
    link = struct.unpack(e + "I", data[20:24])[0] & 0xFFFF
    frames, at = [], 24
    while at + 16 <= len(data):
        incl = struct.unpack(e + "I", data[at + 8 : at + 12])[0]
        frames.append(data[at + 16 : at + 16 + incl])
        at += 16 + incl
    return link, frames


def to_pcapng(path):
    """The capture rewritten as pcapng by editcap (Wireshark), when it is installed."""
    if not shutil.which("editcap"):
        return None
    with tempfile.NamedTemporaryFile(suffix=".pcapng") as t:
        r = subprocess.run(["editcap", "-F", "pcapng", path, t.name], capture_output=True)
        return t.read() if r.returncode == 0 else None


LINKS = {1: 0, 101: 1, 228: 2, 229: 3, 113: 4, 276: 5, 0: 6, 108: 7}

HEADS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a?password=hunter2&x=1 HTTP/1.1\r\nHost: a\r\nCookie: s=1\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /s HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"HEAD / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
]
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 23\r\n\r\n"
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcbH\xcd\xc9\xc9\x07\x00\x86\xa6\x106\x05\x00\x00\x00",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
]


def data_op(side, payload):
    return bytes([side << 3]) + struct.pack(">H", len(payload) - 1) + payload


def main():
    for path in captures():
        with open(path, "rb") as f:
            data = f.read()
        if path.endswith(".pcapng"):
            put("pcapng", b"\x04" + data[:MAX])
            put("pcapng", b"\x00" + data[28:MAX])
            continue
        put("pcap", b"\x04" + data[:MAX])
        ng = to_pcapng(path)
        if ng:
            put("pcapng", b"\x04" + ng[:MAX])
            put("pcapng", b"\x00" + ng[28:MAX])
        parsed = pcap_frames(data)
        if not parsed:
            continue
        link, frames = parsed
        put("pcap", b"\x00" + bytes([link & 0xFF]) + data[24:MAX])
        if link not in LINKS:
            continue
        # Runs of consecutive frames (fragments and tunnels meet), length-prefixed.
        for i in range(0, min(len(frames), 64), 8):
            out = bytes([LINKS[link]])
            for fr in frames[i : i + 8]:
                out += struct.pack(">H", len(fr)) + fr
            put("decap", out[:MAX])

    for req in HEADS:
        for resp in RESPONSES:
            for cfg in (0, 1, 2):
                ops = data_op(0, req) + bytes([4]) + struct.pack(">H", len(req))
                ops += data_op(1, resp) + bytes([5, 13, 6])
                put("http_handler", bytes([cfg, 0]) + ops)
                # The same split byte by byte at the head's end, with a gap in the response.
                cut = max(1, len(req) - 3)
                ops = data_op(0, req[:cut]) + data_op(0, req[cut:])
                ops += bytes([3 | 8]) + struct.pack(">H", 2) + b"\x01" + data_op(1, resp[2:])
                put("http_handler", bytes([cfg, 1]) + ops)

        mode = 0
        for i, ct in enumerate(range(8)):
            body = b'{"user":{"ssn":"123-45-6789"},"password":"p","email":"a@b.co"}'
            if ct == 1:
                body = b"password=hunter2&note=x&card=4111111111111111"
            sel = (ct << 2) | (i & 3) | (32 if i % 2 else 0)
            put("redact", bytes([sel]) + b"/x?token=abc&session=s" + b"\xff" + b"Bearer abc.def.ghi" + b"\xff" + body)
            mode += 1

    # Inputs that once failed a target stay in its corpus.
    for path in sorted(glob.glob(os.path.join(HERE, "regressions", "*", "*"))):
        with open(path, "rb") as f:
            put(os.path.basename(os.path.dirname(path)), f.read())

    chunked = [
        b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX: 1\r\n\r\nNEXT",
        b"ffffffffffffffff\r\nGET / HTTP/1.1\r\n\r\n",
        b"3\nabc\n0\n\n",
        b"0000000000000000000000\r\n\r\n",
    ]
    for c in chunked:
        put("chunked", b"\x00\x02\x00\x03\x00\x07" + c)
    put("chunked", b"\x1f\x01\x00\x05" + b"\x04abcde\x10" + bytes(range(17)))

    for seed in h2_seeds():
        put("h2", seed)


def h2_frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2_lit(name, value):
    return bytes([0x40, len(name)]) + name + bytes([len(value)]) + value


def h2_seeds():
    """Client and server bytes of a prior-knowledge GET with CONTINUATION and trailers, and a
    gRPC call with a reset stream: the h2 target's starting points."""
    settings = h2_frame(4, 0, 0, b"\x00\x03\x00\x00\x00\x64")
    blk = b"\x82\x86\x84" + h2_lit(b":authority", b"svc")
    c = b"SM\r\n\r\n" + settings + h2_frame(1, 1, 1, blk[:3]) + h2_frame(9, 4, 1, blk[3:])
    grpc = b"\x83\x86" + h2_lit(b":path", b"/p.S/M") + h2_lit(b"content-type", b"application/grpc")
    c += h2_frame(1, 4, 3, grpc) + h2_frame(0, 1, 3, b"\x00\x00\x00\x00\x02\x08\x01")
    c += h2_frame(1, 4, 5, b"\x83\x86\xbf\xbe") + h2_frame(3, 0, 5, b"\x00\x00\x00\x08")
    sv = settings + h2_frame(1, 4, 1, b"\x88") + h2_frame(0, 8, 1, b"\x02hi\x00\x00")
    sv += h2_frame(1, 5, 1, h2_lit(b"x-t", b"1"))
    sv += h2_frame(1, 4, 3, b"\x88" + h2_lit(b"content-type", b"application/grpc"))
    sv += h2_frame(0, 0, 3, b"\x00\x00\x00\x00\x01\x07") + h2_frame(1, 5, 3, h2_lit(b"grpc-status", b"0"))
    sv += h2_frame(7, 0, 0, b"\x00\x00\x00\x05\x00\x00\x00\x00")
    out = []
    for mode in (0, 1, 2, 0x80):
        out.append(bytes([mode]) + struct.pack(">HH", len(c) // 2, len(c)) + c + sv)
    return out


if __name__ == "__main__":
    sys.exit(main())
