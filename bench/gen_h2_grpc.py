#!/usr/bin/env python3
"""Deterministic generator of AWS VPC Traffic Mirroring style VXLAN captures carrying
HTTP/2 in clear text (h2c, prior knowledge) and gRPC: the HTTP/2 workload of issue #15,
next to ../shared/bench/gen_vxlan_http.py (HTTP/1.1), whose packet layout it mirrors.

Writes a classic pcap (linktype 1 = Ethernet, microsecond timestamps).

VXLAN mode (default), per packet:
  outer Ethernet / IPv4 (mirror-source ENI -> mirror target) /
  UDP (src port = symmetric hash of the inner 5-tuple, dst 4789, checksum 0) /
  VXLAN (flags 0x08, 24-bit VNI of the mirror session) /
  inner Ethernet / IPv4 / TCP (+NOP,NOP,TS options, MSS 1448 payload) / HTTP/2
Plain mode (--plain, or --plain-out FILE alongside -o): the same inner frames only.

Each connection: handshake, client preface + SETTINGS (+ connection WINDOW_UPDATE, as
grpc-go and curl send), server SETTINGS and both SETTINGS ACKs, then rounds of streams
opened concurrently (--streams MIN-MAX per round, frames of the round's responses
interleaved round-robin, DATA frames of at most 16384 bytes cut into MSS segments), PING
now and then, GOAWAY and FIN at the end. Two kinds of connection (--grpc fraction):
  h2c   GET/POST/PUT/DELETE on a JSON API and static blobs, as nghttp/curl/browsers send;
  grpc  POST /pkg.Service/Method with content-type application/grpc and te: trailers:
        unary, server-streaming, client-streaming and bidi calls, length-prefixed messages,
        trailers with grpc-status (some errors, grpc-message percent-encoded), a few
        Trailers-Only errors, and a few calls the client cancels (RST_STREAM CANCEL).
Header blocks are real HPACK (RFC 7541): static table, a dynamic table per direction
(incremental indexing for the fields that repeat, without indexing for the ones that do not,
eviction at 4096 bytes), Huffman-coded strings where shorter. Validate with tshark:
  tshark -r OUT -Y 'http2.type == 1' -T fields -e http2.header.value | head
and with the independent decoder of the fixtures, pcaps/tools/h2truth.py (on --plain output).

Pure standard library; streamed to disk. IPv4 and TCP checksums are correct; the outer UDP
checksum is 0. Ground truth: OUT.truth.json (totals) and, with --manifest, OUT.manifest.tsv
(one row per stream = per exchange).

Examples:
  python3 gen_h2_grpc.py -o /tmp/h2.pcap --connections 2000 --seed 1 --manifest
  python3 gen_h2_grpc.py -o /tmp/h2-plain.pcap --plain --connections 20
"""
import argparse
import heapq
import json
import random
import struct
import sys
import time
import urllib.parse
import zlib

PCAP_GLOBAL = struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1)
_rec = struct.Struct('<IIII').pack
_ip = struct.Struct('!BBHHHBBH4s4s').pack
_tcp = struct.Struct('!HHIIBBHHHBBBBII').pack            # 32 bytes: 20 + NOP NOP TS
_outer = struct.Struct('!BBHHHBBH4s4sHHHHII').pack        # IPv4(20)+UDP(8)+VXLAN(8)

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS = 1448
VXLAN_PORT = 4789
PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
MAX_FRAME = 16384

# ---------------------------------------------------------------- HPACK (RFC 7541)

STATIC = (
    (b':authority', b''), (b':method', b'GET'), (b':method', b'POST'), (b':path', b'/'),
    (b':path', b'/index.html'), (b':scheme', b'http'), (b':scheme', b'https'),
    (b':status', b'200'), (b':status', b'204'), (b':status', b'206'), (b':status', b'304'),
    (b':status', b'400'), (b':status', b'404'), (b':status', b'500'), (b'accept-charset', b''),
    (b'accept-encoding', b'gzip, deflate'), (b'accept-language', b''), (b'accept-ranges', b''),
    (b'accept', b''), (b'access-control-allow-origin', b''), (b'age', b''), (b'allow', b''),
    (b'authorization', b''), (b'cache-control', b''), (b'content-disposition', b''),
    (b'content-encoding', b''), (b'content-language', b''), (b'content-length', b''),
    (b'content-location', b''), (b'content-range', b''), (b'content-type', b''), (b'cookie', b''),
    (b'date', b''), (b'etag', b''), (b'expect', b''), (b'expires', b''), (b'from', b''),
    (b'host', b''), (b'if-match', b''), (b'if-modified-since', b''), (b'if-none-match', b''),
    (b'if-range', b''), (b'if-unmodified-since', b''), (b'last-modified', b''), (b'link', b''),
    (b'location', b''), (b'max-forwards', b''), (b'proxy-authenticate', b''),
    (b'proxy-authorization', b''), (b'range', b''), (b'referer', b''), (b'refresh', b''),
    (b'retry-after', b''), (b'server', b''), (b'set-cookie', b''),
    (b'strict-transport-security', b''), (b'transfer-encoding', b''), (b'user-agent', b''),
    (b'vary', b''), (b'via', b''), (b'www-authenticate', b''),
)
STATIC_FULL = {f: i + 1 for i, f in reversed(list(enumerate(STATIC)))}
STATIC_NAME = {}
for _i, (_n, _v) in reversed(list(enumerate(STATIC))):
    STATIC_NAME[_n] = _i + 1

# RFC 7541 Appendix B: code and bit length per symbol.
HUFFMAN_CODES = (
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,
    0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,
    0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,
    0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,
    0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa,
    0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
    0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
    0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,
    0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62,
    0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
    0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,
    0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,
    0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26,
    0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7,
    0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,
    0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc,
    0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9,
    0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,
    0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
    0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef,
    0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde,
    0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec,
    0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,
    0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,
    0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,
    0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed,
    0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2,
    0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5,
    0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
    0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,
    0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea,
    0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
    0x3fffffff,
)
HUFFMAN_LENGTHS = (
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30,
)


def huffman(data):
    acc = nbits = 0
    out = bytearray()
    for b in data:
        acc = (acc << HUFFMAN_LENGTHS[b]) | HUFFMAN_CODES[b]
        nbits += HUFFMAN_LENGTHS[b]
        while nbits >= 8:
            nbits -= 8
            out.append((acc >> nbits) & 0xFF)
        acc &= (1 << nbits) - 1
    if nbits:
        out.append(((acc << (8 - nbits)) | ((1 << (8 - nbits)) - 1)) & 0xFF)
    return bytes(out)


def hint(n, prefix, first):
    mask = (1 << prefix) - 1
    if n < mask:
        return bytes([first | n])
    out = bytearray([first | mask])
    n -= mask
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def hstr(s):
    h = huffman(s)
    if len(h) < len(s):
        return hint(len(h), 7, 0x80) + h
    return hint(len(s), 7, 0) + s


class Encoder:
    """HPACK encoder with a dynamic table (max 4096 bytes, the default both peers keep)."""

    def __init__(self):
        self.entries = []  # most recent first
        self.size = 0
        self.max = 4096

    def find(self, name, value):
        name_idx = None
        for i, (n, v) in enumerate(self.entries):
            if n == name:
                if v == value:
                    return 62 + i, True
                if name_idx is None:
                    name_idx = 62 + i
        return name_idx, False

    def add(self, name, value):
        sz = 32 + len(name) + len(value)
        while self.entries and self.size + sz > self.max:
            n, v = self.entries.pop()
            self.size -= 32 + len(n) + len(v)
        if sz <= self.max:
            self.entries.insert(0, (name, value))
            self.size += sz

    def encode(self, headers):
        """headers: (name, value, index) with index True for fields worth indexing."""
        out = bytearray()
        for name, value, index in headers:
            s = STATIC_FULL.get((name, value))
            if s:
                out += hint(s, 7, 0x80)
                continue
            d, full = self.find(name, value)
            if full:
                out += hint(d, 7, 0x80)
                continue
            nidx = STATIC_NAME.get(name) or d
            if index:
                out += hint(nidx, 6, 0x40) if nidx else b'\x40' + hstr(name)
                out += hstr(value)
                self.add(name, value)
            else:
                out += hint(nidx, 4, 0x00) if nidx else b'\x00' + hstr(name)
                out += hstr(value)
        return bytes(out)


def frame(ftype, flags, sid, payload):
    return len(payload).to_bytes(3, 'big') + bytes([ftype, flags]) + sid.to_bytes(4, 'big') + payload


def headers_frames(sid, block, end_stream):
    """HEADERS (+ CONTINUATION) frames for one header block."""
    out = []
    first = True
    while True:
        piece, block = block[:MAX_FRAME], block[MAX_FRAME:]
        flags = (0x04 if not block else 0) | (0x01 if first and end_stream else 0)
        out.append(frame(1 if first else 9, flags, sid, piece))
        first = False
        if not block:
            return out


def data_frames(sid, body, end_stream):
    out = []
    if not body:
        return [frame(0, 0x01 if end_stream else 0, sid, b'')]
    while body:
        piece, body = body[:MAX_FRAME], body[MAX_FRAME:]
        out.append(frame(0, 0x01 if (end_stream and not body) else 0, sid, piece))
    return out


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def grpc_msg(data):
    """A length-prefixed message whose payload is valid protobuf: field 1, bytes."""
    pb = b'\x0a' + varint(len(data)) + data
    return b'\x00' + len(pb).to_bytes(4, 'big') + pb


# ---------------------------------------------------------------- TCP / pcap


def ip4(s):
    return bytes(int(x) for x in s.split('.'))


def ip4_int(n):
    return n.to_bytes(4, 'big')


def words_sum(b):
    if len(b) & 1:
        b += b'\0'
    return int.from_bytes(b, 'big') % 0xffff


def fold_cks(s):
    r = s % 0xffff
    return 0xffff ^ (r if r else 0xffff)


class Filler:
    """A pool of deterministic printable bytes to slice bodies from."""

    def __init__(self, seed):
        r = random.Random(seed ^ 0x5EED)
        alphabet = b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
        self.pool = bytes(alphabet[r.getrandbits(6)] for _ in range(1 << 18)) * 2
        self.n = 1 << 18

    def get(self, rng, n):
        out = []
        while n > 0:
            k = min(n, self.n)
            o = rng.randrange(self.n)
            out.append(self.pool[o:o + k])
            n -= k
        return b''.join(out)


class Side:
    __slots__ = ('mac', 'ip', 'port', 'seq', 'ipid', 'ttl', 'ts_off', 'ip_const',
                 'pseudo_const', 'eth', 'win', 'last_tsval')


GRPC_SERVICES = (
    ('inference.GRPCInferenceService', ('ModelInfer', 'ModelReady', 'ModelMetadata')),
    ('tensorflow.serving.PredictionService', ('Predict', 'Classify')),
    ('shop.v1.CartService', ('GetCart', 'AddItem', 'WatchCart', 'Upload', 'Chat')),
    ('grpc.health.v1.Health', ('Check', 'Watch')),
)
GRPC_ERRORS = ((3, 'invalid argument: field "price" must be > 0 (got -1)'),
               (5, 'not found: cart 42 / user ünïcode'),
               (14, 'upstream unavailable; retry in 100% of cases'),
               (13, 'internal error'))


class Conn:
    """Builds all packets of one TCP connection carrying HTTP/2, round by round."""

    def __init__(self, g, cid, start_us):
        self.g = g
        self.cid = cid
        self.rng = rng = random.Random(g.seed * 1000003 + cid)
        self.t = start_us
        sess = g.sessions[cid % len(g.sessions)]
        self.sess = sess
        c, s = Side(), Side()
        c.ip = ip4_int(0xAC100000 | ((cid * 7919 + 1) & 0xFFFFF))
        c.port = 32768 + rng.randrange(28000)
        srv_i = rng.randrange(g.servers)
        s.ip = ip4_int(0x0A000000 | (sess['idx'] + 1) << 16 | (2 << 8) | (10 + srv_i))
        self.grpc = rng.random() < g.grpc_frac
        s.port = g.grpc_port if self.grpc else g.h2_port
        c.mac = bytes([0x02, 0xc1, 0, 0, (cid >> 8) & 0xff, cid & 0xff])
        s.mac = bytes([0x02, 0x5e, 0, 0, sess['idx'] & 0xff, srv_i & 0xff])
        c.seq, s.seq = rng.getrandbits(32), rng.getrandbits(32)
        c.ipid, s.ipid = rng.getrandbits(16), rng.getrandbits(16)
        c.ttl, s.ttl = 64, 63
        c.ts_off, s.ts_off = rng.getrandbits(31), rng.getrandbits(31)
        c.win, s.win = 502, 509
        c.last_tsval = s.last_tsval = 0
        self.tb = start_us
        for a, b in ((c, s), (s, c)):
            a.eth = b.mac + a.mac + b'\x08\x00'
            a.ip_const = words_sum(_ip(0x45, 0, 0, 0, 0x4000, a.ttl, 6, 0, a.ip, b.ip))
            a.pseudo_const = words_sum(a.ip + b.ip) + 6
        self.c, self.s = c, s
        lo, hi = sorted([c.ip + c.port.to_bytes(2, 'big'), s.ip + s.port.to_bytes(2, 'big')])
        self.uport = 49152 + (zlib.crc32(lo + hi + b'\x06') & 0x3FFF)
        self.rtt = rng.randint(g.rtt_min_us, g.rtt_max_us)
        self.rounds = rng.randint(g.rounds_min, g.rounds_max)
        self.enc_c, self.enc_s = Encoder(), Encoder()
        self.next_sid = 1
        self.authority = b'%s.vni%d.svc.internal:%d' % (
            b'grpc' if self.grpc else b'api', sess['vni'], s.port)
        self.ua = g.uas_grpc[cid % len(g.uas_grpc)] if self.grpc else g.uas[cid % len(g.uas)]

    def frame_bytes(self, a, b, flags, payload, seq, ack, tsval, tsecr, opts=None):
        a.ipid = (a.ipid + 1) & 0xFFFF
        plen = len(payload)
        if opts is None:
            tcph = _tcp(a.port, b.port, seq, ack, 0x80, flags, a.win, 0, 0, 1, 1, 8, 10, tsval, tsecr)
        else:
            tcph = opts(a, b, flags, seq, ack, tsval, tsecr)
        tlen = len(tcph) + plen
        s = a.pseudo_const + tlen + int.from_bytes(tcph, 'big')
        if plen:
            s += int.from_bytes(payload if not plen & 1 else payload + b'\0', 'big')
        cks = fold_cks(s)
        tcph = tcph[:16] + cks.to_bytes(2, 'big') + tcph[18:]
        tot = 20 + tlen
        ipck = fold_cks(a.ip_const + tot + a.ipid)
        iph = _ip(0x45, 0, tot, a.ipid, 0x4000, a.ttl, 6, ipck, a.ip, b.ip)
        return a.eth + iph + tcph + payload

    @staticmethod
    def syn_opts(a, b, flags, seq, ack, tsval, tsecr):
        return struct.pack('!HHIIBBHHH', a.port, b.port, seq, ack, 0xA0, flags, 64240, 0, 0) + \
            struct.pack('!BBHBBBBII', 2, 4, 1460, 4, 2, 8, 10, tsval, tsecr) + b'\x01\x03\x03\x07'

    def pk(self, out, gap, a, b, flags, payload=b'', opts=None):
        self.tb += gap
        tsval = (a.ts_off + self.tb // 1000) & 0xFFFFFFFF
        if tsval < a.last_tsval and a.last_tsval - tsval < 1 << 31:
            tsval = a.last_tsval
        a.last_tsval = tsval
        tsecr = b.last_tsval if flags != SYN else 0
        ack = b.seq if flags & ACK else 0
        out.append((gap, self.frame_bytes(a, b, flags, payload, a.seq, ack, tsval, tsecr, opts)))
        a.seq = (a.seq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    def segs(self, out, a, b, data, gap_us):
        """Segment `data` from a to b (MSS 1448) with an ACK from b every 2 segments."""
        off = k = 0
        sg = self.g.seg_gap_us
        while off < len(data):
            chunk = data[off:off + MSS]
            off += len(chunk)
            self.pk(out, gap_us if k == 0 else sg, a, b, ACK | (PSH if off >= len(data) else 0), chunk)
            k += 1
            if k % 2 == 0 and off < len(data):
                self.pk(out, sg // 2 + 1, b, a, ACK)

    # ---- streams ------------------------------------------------------------
    def h2c_stream(self, sid):
        g, rng, cid = self.g, self.rng, self.cid
        kind = rng.choices(('get', 'post', 'put', 'delete', 'blob'), (55, 20, 8, 5, 12))[0]
        req_body = b''
        if kind == 'blob':
            method, path = b'GET', b'/static/blob/%d/%d.bin' % (cid, sid)
            status = 200
            resp_body = g.filler.get(rng, rng.choice((g.large_size, g.large_size // 2, 20000)))
            ctype = b'application/octet-stream'
        else:
            method = {'get': b'GET', 'post': b'POST', 'put': b'PUT', 'delete': b'DELETE'}[kind]
            path = b'/api/v2/items/%d/%d' % (cid, sid)
            if kind == 'get':
                path += b'?fields=id,name&page=%d' % rng.randint(1, 50)
                status = rng.choices((200, 404, 304, 500), (90, 5, 3, 2))[0]
            elif kind == 'post':
                status = rng.choices((201, 200, 400), (80, 15, 5))[0]
            elif kind == 'put':
                status = rng.choices((200, 404), (95, 5))[0]
            else:
                status = rng.choices((204, 404), (95, 5))[0]
            if kind in ('post', 'put'):
                req_body = g.filler.get(rng, rng.randint(g.small_min, g.small_max))
            n = 0 if status in (204, 304) else rng.randint(g.small_min, g.small_max)
            resp_body = g.filler.get(rng, n) if n else b''
            ctype = b'application/json'
        qh = [(b':method', method, True), (b':scheme', b'http', True), (b':authority', self.authority, True),
              (b':path', path, False), (b'user-agent', self.ua, True), (b'accept', b'*/*', True),
              (b'accept-encoding', b'gzip, deflate', True),
              (b'x-request-id', b'%08x-%d-%d' % (rng.getrandbits(32), cid, sid), False)]
        if req_body:
            qh += [(b'content-type', b'application/json', True),
                   (b'content-length', b'%d' % len(req_body), False)]
        rh = [(b':status', b'%d' % status, True), (b'server', b'envoy', True),
              (b'date', b'Tue, 14 Nov 2023 22:13:20 GMT', True)]
        if resp_body or status not in (204, 304):
            rh += [(b'content-type', ctype, True), (b'content-length', b'%d' % len(resp_body), False)]
        req = headers_frames(sid, self.enc_c.encode(qh), not req_body)
        if req_body:
            req += data_frames(sid, req_body, True)
        resp = headers_frames(sid, self.enc_s.encode(rh), not resp_body)
        if resp_body:
            resp += data_frames(sid, resp_body, True)
        meta = dict(kind='h2c', method=method.decode(), path=path.decode(), status=status,
                    req_body=len(req_body), resp_body=len(resp_body))
        return req, resp, meta, None

    def grpc_stream(self, sid):
        g, rng = self.g, self.rng
        svc, methods = GRPC_SERVICES[rng.randrange(len(GRPC_SERVICES))]
        meth = methods[rng.randrange(len(methods))]
        shape = rng.choices(('unary', 'server', 'client', 'bidi'), (70, 12, 8, 10))[0]
        nq = 1 if shape in ('unary', 'server') else rng.randint(2, 6)
        nr = 1 if shape in ('unary', 'client') else rng.randint(2, 8)
        path = b'/%s/%s' % (svc.encode(), meth.encode())
        qh = [(b':method', b'POST', True), (b':scheme', b'http', True), (b':path', path, True),
              (b':authority', self.authority, True), (b'content-type', b'application/grpc', True),
              (b'te', b'trailers', True), (b'grpc-accept-encoding', b'identity,deflate,gzip', True),
              (b'user-agent', self.ua, True),
              (b'grpc-timeout', b'%dm' % rng.choice((100, 250, 1000, 5000)), False)]
        qmsgs = [grpc_msg(g.filler.get(rng, rng.randint(g.msg_min, g.msg_max))) for _ in range(nq)]
        fate = rng.random()
        status, message, rst = 0, None, None
        if fate < g.grpc_error:
            status, message = GRPC_ERRORS[rng.randrange(len(GRPC_ERRORS))]
        elif fate < g.grpc_error + g.grpc_cancel:
            rst = 8
        trailers_only = status != 0 and rng.random() < 0.5
        req = headers_frames(sid, self.enc_c.encode(qh), False)
        req += data_frames(sid, b''.join(qmsgs), True)
        resp = []
        rmsgs = []
        if trailers_only:
            th = [(b':status', b'200', True), (b'content-type', b'application/grpc', True),
                  (b'grpc-status', b'%d' % status, False),
                  (b'grpc-message', urllib.parse.quote(message, safe=' !#$&\'()*+,/:;=?@[]').encode(), False)]
            resp += headers_frames(sid, self.enc_s.encode(th), True)
            nr = 0
        else:
            rh = [(b':status', b'200', True), (b'content-type', b'application/grpc', True),
                  (b'grpc-accept-encoding', b'identity,deflate,gzip', True)]
            resp += headers_frames(sid, self.enc_s.encode(rh), False)
            if status:
                nr = 0
            rmsgs = [grpc_msg(g.filler.get(rng, rng.randint(g.msg_min, g.resp_msg_max))) for _ in range(nr)]
            for m in rmsgs:
                resp += data_frames(sid, m, False)
            if rst is None:
                th = [(b'grpc-status', b'%d' % status, False)]
                if message:
                    th.append((b'grpc-message',
                               urllib.parse.quote(message, safe=' !#$&\'()*+,/:;=?@[]').encode(), False))
                resp += headers_frames(sid, self.enc_s.encode(th), True)
        cancel = None
        if rst is not None:
            cancel = frame(3, 0, sid, rst.to_bytes(4, 'big'))
            status = 1  # CANCELLED, as gRPC maps RST_STREAM(CANCEL)
        meta = dict(kind='grpc', method='POST', path=path.decode(), status=200,
                    req_body=sum(len(m) for m in qmsgs), resp_body=sum(len(m) for m in rmsgs),
                    grpc_service=svc, grpc_method=meth, grpc_status=status,
                    req_msgs=nq, resp_msgs=len(rmsgs), rst=rst if rst is not None else '',
                    shape=shape)
        return req, resp, meta, cancel

    def packets(self):
        g, rng, c, s = self.g, self.rng, self.c, self.s
        st = g.stats
        st['connections'] += 1
        st['grpc_connections' if self.grpc else 'h2c_connections'] += 1
        half = self.rtt // 2
        pk = []
        self.tb = self.t
        self.pk(pk, 0, c, s, SYN, opts=self.syn_opts)
        self.pk(pk, self.rtt, s, c, SYN | ACK, opts=self.syn_opts)
        self.pk(pk, half // 4 + 1, c, s, ACK)
        # Preface + SETTINGS (ENABLE_PUSH 0, INITIAL_WINDOW_SIZE 4 MiB) + WINDOW_UPDATE of the
    # connection window both ways, so flow control never holds a stream back.
        csettings = frame(4, 0, 0, struct.pack('!HIHI', 2, 0, 4, 1 << 22))
        self.segs(pk, c, s, PREFACE + csettings + frame(8, 0, 0, struct.pack('!I', 1 << 30)), 10)
        ssettings = frame(4, 0, 0, struct.pack('!HIHI', 3, 100, 4, 1 << 22))
        self.segs(pk, s, c, ssettings + frame(8, 0, 0, struct.pack('!I', 1 << 30)) + frame(4, 1, 0, b''),
                  half)
        self.segs(pk, c, s, frame(4, 1, 0, b''), half)
        yield from self.emit(pk)
        for rnd in range(self.rounds):
            k = rng.randint(g.streams_min, g.streams_max)
            reqs, resps, cancels = [], [], []
            for _ in range(k):
                sid = self.next_sid
                self.next_sid += 2
                q, r, meta, cancel = (self.grpc_stream if self.grpc else self.h2c_stream)(sid)
                reqs.append(q)
                resps.append(r)
                cancels.append(cancel)
                self.record(sid, meta)
            pk = []
            self.tb = self.t
            # Requests: each stream's frames in order, streams after one another.
            self.segs(pk, c, s, b''.join(b''.join(q) for q in reqs),
                      rng.randint(20, g.think_max_us) if rnd else rng.randint(5, 200))
            # Responses: frames of the round's streams interleaved round-robin.
            out = []
            queues = [list(r) for r in resps]
            while any(queues):
                for qu in queues:
                    if qu:
                        out.append(qu.pop(0))
            self.segs(pk, s, c, b''.join(out), rng.randint(g.srv_min_us, g.srv_max_us))
            if any(cancels):
                self.segs(pk, c, s, b''.join(x for x in cancels if x), rng.randint(50, 500))
            if rng.random() < 0.1:
                ping = rng.getrandbits(64).to_bytes(8, 'big')
                self.segs(pk, c, s, frame(6, 0, 0, ping), rng.randint(50, 500))
                self.segs(pk, s, c, frame(6, 1, 0, ping), half)
            self.pk(pk, rng.randint(40, 400), c, s, ACK)
            yield from self.emit(pk)
        pk = []
        self.tb = self.t
        self.segs(pk, c, s, frame(7, 0, 0, struct.pack('!II', 0, 0)), rng.randint(100, 5000))
        self.pk(pk, 10, c, s, FIN | ACK)
        self.pk(pk, half, s, c, FIN | ACK)
        self.pk(pk, half, c, s, ACK)
        yield from self.emit(pk)

    def record(self, sid, meta):
        st = self.g.stats
        st['streams'] += 1
        st['grpc_calls' if meta['kind'] == 'grpc' else 'h2c_exchanges'] += 1
        st['request_body_bytes'] += meta['req_body']
        st['response_body_bytes'] += meta['resp_body']
        if meta['kind'] == 'grpc':
            key = 'grpc_status_%d' % meta['grpc_status']
            st[key] = st.get(key, 0) + 1
            st['grpc_messages'] += meta['req_msgs'] + meta['resp_msgs']
        if self.g.manifest:
            row = [self.cid, self.sess['vni'], '.'.join(map(str, self.c.ip)), self.c.port,
                   '.'.join(map(str, self.s.ip)), self.s.port, sid, meta['kind'], meta['method'],
                   meta['path'], self.authority.decode(), meta['status'], meta['req_body'],
                   meta['resp_body'], meta.get('grpc_service', ''), meta.get('grpc_method', ''),
                   meta.get('grpc_status', ''), meta.get('req_msgs', ''), meta.get('resp_msgs', ''),
                   meta.get('rst', '')]
            self.g.manifest.write('\t'.join(str(x) for x in row) + '\n')

    def emit(self, pk):
        st = self.g.stats
        for gap, fr in pk:
            self.t += gap
            st['packets'] += 1
            yield self.t, fr, self


class Gen:
    def __init__(self, a):
        self.seed = a.seed
        self.stats = {k: 0 for k in ('connections', 'h2c_connections', 'grpc_connections', 'streams',
                                     'h2c_exchanges', 'grpc_calls', 'grpc_messages', 'packets',
                                     'request_body_bytes', 'response_body_bytes')}
        self.filler = Filler(a.seed)
        vnis = [int(x) for x in a.vnis.split(',')]
        tgt = ip4(a.target_ip)
        self.sessions = []
        for i, v in enumerate(vnis):
            src = ip4('10.0.%d.%d' % (i // 200, 10 + i % 200))
            eth = bytes([0x02, 0xaa, 0, 0, 0, 1]) + bytes([0x02, 0xbb, 0, 0, i >> 8 & 0xff, i & 0xff]) + b'\x08\x00'
            const = words_sum(_outer(0x45, 0, 0, 0, 0x4000, 255, 17, 0, src, tgt, 0, 0, 0, 0, 0, 0)[:20])
            self.sessions.append({'idx': i, 'vni': v, 'src': src, 'eth': eth, 'ip_const': const})
        self.tgt = tgt
        self.h2_port, self.grpc_port = a.h2_port, a.grpc_port
        self.servers = a.servers
        self.grpc_frac = a.grpc
        r = a.rounds.split('-')
        self.rounds_min, self.rounds_max = int(r[0]), int(r[-1])
        r = a.streams.split('-')
        self.streams_min, self.streams_max = int(r[0]), int(r[-1])
        self.small_min, self.small_max, self.large_size = a.small_min, a.small_max, a.large_size
        self.msg_min, self.msg_max, self.resp_msg_max = a.msg_min, a.msg_max, a.resp_msg_max
        self.grpc_error, self.grpc_cancel = a.grpc_error, a.grpc_cancel
        self.rtt_min_us, self.rtt_max_us = a.rtt_min_us, a.rtt_max_us
        self.srv_min_us, self.srv_max_us = a.srv_min_us, a.srv_max_us
        self.think_max_us, self.seg_gap_us = a.think_max_us, a.seg_gap_us
        self.uas = [b'curl/8.4.0', b'nghttp2/1.58.0', b'okhttp/4.12.0', b'Go-http-client/2.0']
        self.uas_grpc = [b'grpc-go/1.59.0', b'grpc-python/1.59.0 grpc-c/36.0.0 (linux; chttp2)',
                         b'grpc-java-netty/1.60.0']
        self.manifest = None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('-o', '--out', required=True, help='output pcap (VXLAN unless --plain)')
    ap.add_argument('--plain', action='store_true', help='write inner frames only (no VXLAN) to --out')
    ap.add_argument('--plain-out', help='additionally write the same traffic without VXLAN here')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--connections', type=int, default=1000)
    ap.add_argument('--rounds', default='1-8', help='rounds of concurrent streams per connection')
    ap.add_argument('--streams', default='1-6', help='streams opened together per round')
    ap.add_argument('--grpc', type=float, default=0.5, help='fraction of connections that are gRPC')
    ap.add_argument('--grpc-error', type=float, default=0.05, help='fraction of calls ending in an error')
    ap.add_argument('--grpc-cancel', type=float, default=0.02, help='fraction of calls the client cancels')
    ap.add_argument('--concurrency', type=int, default=256, help='simultaneously open connections')
    ap.add_argument('--vnis', default='101,102,103')
    ap.add_argument('--target-ip', default='10.100.0.5', help='outer destination (mirror target)')
    ap.add_argument('--h2-port', type=int, default=8080)
    ap.add_argument('--grpc-port', type=int, default=50051)
    ap.add_argument('--servers', type=int, default=8, help='servers per VNI')
    ap.add_argument('--small-min', type=int, default=200)
    ap.add_argument('--small-max', type=int, default=2048)
    ap.add_argument('--large-size', type=int, default=65536)
    ap.add_argument('--msg-min', type=int, default=16)
    ap.add_argument('--msg-max', type=int, default=1024)
    ap.add_argument('--resp-msg-max', type=int, default=8192)
    ap.add_argument('--rtt-min-us', type=int, default=200)
    ap.add_argument('--rtt-max-us', type=int, default=3000)
    ap.add_argument('--srv-min-us', type=int, default=100)
    ap.add_argument('--srv-max-us', type=int, default=20000)
    ap.add_argument('--think-max-us', type=int, default=50000)
    ap.add_argument('--seg-gap-us', type=int, default=12)
    ap.add_argument('--conn-gap-us', type=int, default=300)
    ap.add_argument('--start', type=int, default=1700000000, help='capture start, unix seconds')
    ap.add_argument('--manifest', action='store_true', help='write OUT.manifest.tsv, one row per stream')
    ap.add_argument('--quiet', action='store_true')
    a = ap.parse_args()

    g = Gen(a)
    t0 = time.time()
    vx = not a.plain
    f = open(a.out, 'wb', buffering=0)
    fp = open(a.plain_out, 'wb', buffering=0) if a.plain_out else None
    if a.manifest:
        g.manifest = open(a.out + '.manifest.tsv', 'w')
        g.manifest.write('conn\tvni\tclient_ip\tclient_port\tserver_ip\tserver_port\tstream_id\tkind\t'
                         'method\tpath\tauthority\tstatus\treq_body_len\tresp_body_len\tgrpc_service\t'
                         'grpc_method\tgrpc_status\tgrpc_req_msgs\tgrpc_resp_msgs\trst_code\n')
    f.write(PCAP_GLOBAL)
    if fp:
        fp.write(PCAP_GLOBAL)
    nbytes = len(PCAP_GLOBAL)
    buf, pbuf = [], []
    blen = 0
    sched = random.Random(a.seed ^ 0xC0FFEE)
    heap = []
    conn_uport = {}
    next_cid = 0
    now = start_us = a.start * 1000000

    def open_conn(t):
        nonlocal next_cid
        cn = Conn(g, next_cid, t)
        conn_uport[next_cid] = cn.uport
        gen = cn.packets()
        ts, fr, _ = next(gen)
        heapq.heappush(heap, (ts, next_cid, fr, gen))
        next_cid += 1

    for _ in range(min(a.concurrency, a.connections)):
        open_conn(now + sched.randint(0, a.conn_gap_us * 4))
    sess = g.sessions
    while heap:
        ts, cid, fr, gen = heap[0]
        now = ts
        L = len(fr)
        sec, usec = divmod(ts, 1000000)
        if vx:
            s = sess[cid % len(sess)]
            tot = 36 + L
            ck = fold_cks(s['ip_const'] + tot)
            o = _outer(0x45, 0, tot, 0, 0x4000, 255, 17, ck, s['src'], g.tgt,
                       conn_uport[cid], VXLAN_PORT, 16 + L, 0, 0x08000000, s['vni'] << 8)
            OL = L + 50
            buf += (_rec(sec, usec, OL, OL), s['eth'], o, fr)
            blen += OL + 16
        else:
            buf += (_rec(sec, usec, L, L), fr)
            blen += L + 16
        if fp:
            pbuf += (_rec(sec, usec, L, L), fr)
        if blen >= 1 << 22:
            f.write(b''.join(buf))
            nbytes += blen
            buf.clear()
            blen = 0
            if fp:
                fp.write(b''.join(pbuf))
                pbuf.clear()
        try:
            ts2, fr2, _ = next(gen)
            heapq.heapreplace(heap, (ts2, cid, fr2, gen))
        except StopIteration:
            heapq.heappop(heap)
            conn_uport.pop(cid, None)
            if next_cid < a.connections:
                open_conn(now + int(sched.expovariate(1.0 / a.conn_gap_us)) + 1)
    if buf:
        f.write(b''.join(buf))
        nbytes += blen
    if fp:
        if pbuf:
            fp.write(b''.join(pbuf))
        fp.close()
    f.close()
    if g.manifest:
        g.manifest.close()
    d = dict(g.stats)
    d.update(first_ts_us=start_us, last_ts_us=now, pcap_bytes=nbytes,
             mode='plain' if a.plain else 'vxlan', args=vars(a),
             exchanges=d['streams'], generator_seconds=round(time.time() - t0, 2))
    with open(a.out + '.truth.json', 'w') as tf:
        json.dump(d, tf, indent=1, sort_keys=True)
    if not a.quiet:
        print('wrote %s: %d packets, %d bytes, %d connections, %d streams (%d gRPC calls) in %.1fs' %
              (a.out, d['packets'], nbytes, d['connections'], d['streams'], d['grpc_calls'],
               d['generator_seconds']), file=sys.stderr)


if __name__ == '__main__':
    main()
