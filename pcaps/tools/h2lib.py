#!/usr/bin/env python3
"""HTTP/2 and HPACK for the fixture oracle (standard library only; RFC 9113, RFC 7541).

Used by h2truth.py (the ground truth of pcaps/h2/) and h2fault.py (which picks the segments
to remove). It is an independent reading of the captures, written from the RFCs, not from
vxtap's parser, so the two can be compared.

The HPACK decoder keeps going when it cannot know the dynamic table (a capture that starts
mid-connection, or a header block lost to a gap): it models the table as the entries it saw
inserted since the last unknown point (these stay at known indices, most recent first)
followed by an unknown tail. A reference into the tail is an unknown field; every field is
returned with how it was encoded, so the truth can say what a tolerant decoder is able to
recover (static-table and literal fields) and what it cannot.
"""
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

FRAME_TYPES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS",
               5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}

ERROR_CODES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR",
               7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR",
               11: "ENHANCE_YOUR_CALM", 12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}

# RFC 7541 Appendix A.
STATIC_TABLE = (
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
)
assert len(STATIC_TABLE) == 61

# RFC 7541 Appendix B: code and bit length of each symbol (256 = EOS).
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


_DECODE = {}
for _sym, (_code, _len) in enumerate(zip(HUFFMAN_CODES, HUFFMAN_LENGTHS)):
    _DECODE[(_len, _code)] = _sym


class HpackError(Exception):
    pass


def huffman_decode(data):
    out = bytearray()
    acc = nbits = 0
    code = clen = 0
    for byte in data:
        for i in range(7, -1, -1):
            code = (code << 1) | ((byte >> i) & 1)
            clen += 1
            sym = _DECODE.get((clen, code))
            if sym is not None:
                if sym == 256:
                    raise HpackError("EOS in string")
                out.append(sym)
                code = clen = 0
            elif clen > 30:
                raise HpackError("bad huffman code")
    # Padding: at most 7 bits, all ones (a prefix of EOS).
    if clen > 7 or code != (1 << clen) - 1:
        raise HpackError("bad huffman padding")
    del acc, nbits
    return bytes(out)


def huffman_encode(data):
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


def read_int(buf, pos, prefix):
    mask = (1 << prefix) - 1
    if pos >= len(buf):
        raise HpackError("truncated integer")
    n = buf[pos] & mask
    pos += 1
    if n < mask:
        return n, pos
    shift = 0
    while True:
        if pos >= len(buf) or shift > 28:
            raise HpackError("bad integer")
        b = buf[pos]
        pos += 1
        n += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def read_string(buf, pos):
    huff = pos < len(buf) and bool(buf[pos] & 0x80)
    n, pos = read_int(buf, pos, 7)
    if pos + n > len(buf):
        raise HpackError("truncated string")
    raw = bytes(buf[pos:pos + n])
    return (huffman_decode(raw) if huff else raw).decode("latin-1"), pos + n, huff


class Field:
    """One decoded header field. name/value None = unknown (reference into the unknown
    part of the dynamic table). kind: indexed-static, indexed-dynamic, literal (name and
    value literal), literal-static-name, literal-dynamic-name. recoverable: a decoder that
    does not know the dynamic table still gets this field exactly."""
    __slots__ = ("name", "value", "kind", "indexing", "huffman")

    def __init__(self, name, value, kind, indexing, huffman):
        self.name, self.value, self.kind, self.indexing = name, value, kind, indexing
        self.huffman = huffman

    @property
    def recoverable(self):
        return self.kind in ("indexed-static", "literal", "literal-static-name")

    def as_list(self):
        return [self.name, self.value, self.kind]


class Decoder:
    def __init__(self, known=True, max_size=4096):
        self.entries = []          # known entries, most recent first: (name, value)
        self.size = 0              # bytes of the known entries (RFC 7541 4.1: +32 each)
        self.unknown_tail = not known  # older entries we never saw (or lost)
        self.max_size = max_size
        self.lost_blocks = 0

    def forget(self):
        """A header block was lost: insertions in it are unknown, so every entry we had
        may have moved by an unknown amount; entries inserted from now on are known."""
        self.entries = []
        self.size = 0
        self.unknown_tail = True
        self.lost_blocks += 1

    def _evict(self):
        while self.size > self.max_size and self.entries:
            n, v = self.entries.pop()
            self.size -= 32 + len(n) + len(v)

    def _insert(self, name, value):
        if name is None or value is None:
            # An insertion whose name we do not know: its size is unknown, so from here
            # on only what is inserted later is at a known index.
            self.entries = []
            self.size = 0
            self.unknown_tail = True
            return
        self.entries.insert(0, (name, value))
        self.size += 32 + len(name) + len(value)
        self._evict()

    def _lookup(self, idx):
        if idx == 0:
            raise HpackError("index 0")
        if idx <= 61:
            return STATIC_TABLE[idx - 1] + ("static",)
        i = idx - 62
        if i < len(self.entries):
            return self.entries[i] + ("dynamic",)
        if self.unknown_tail:
            return (None, None, "dynamic")
        raise HpackError("index %d beyond the dynamic table (%d entries)" % (idx, len(self.entries)))

    def decode(self, block):
        fields = []
        pos = 0
        while pos < len(block):
            b = block[pos]
            if b & 0x80:  # indexed
                idx, pos = read_int(block, pos, 7)
                n, v, where = self._lookup(idx)
                fields.append(Field(n, v, "indexed-" + where, "indexed", False))
                continue
            if b & 0xE0 == 0x20:  # dynamic table size update
                size, pos = read_int(block, pos, 5)
                self.max_size = size
                self._evict()
                continue
            if b & 0x40:
                prefix, indexing = 6, "incremental"
            elif b & 0xF0 == 0x10:
                prefix, indexing = 4, "never"
            else:
                prefix, indexing = 4, "without"
            idx, pos = read_int(block, pos, prefix)
            if idx:
                n, _, where = self._lookup(idx)
                kind = "literal-%s-name" % where
            else:
                n, pos, _ = read_string(block, pos)
                kind = "literal"
            v, pos, huff = read_string(block, pos)
            fields.append(Field(n, v, kind, indexing, huff))
            if indexing == "incremental":
                self._insert(n, v)
        return fields


def parse_frame_header(buf, pos):
    if pos + 9 > len(buf):
        return None
    length = int.from_bytes(buf[pos:pos + 3], "big")
    ftype, flags = buf[pos + 3], buf[pos + 4]
    sid = struct.unpack("!I", buf[pos + 5:pos + 9])[0] & 0x7FFFFFFF
    return length, ftype, flags, sid


def plausible_frame(buf, pos, max_len=16384):
    h = parse_frame_header(buf, pos)
    if h is None:
        return False
    length, ftype, flags, sid = h
    if buf[pos + 5] & 0x80 or length > max_len:
        return False
    if ftype in (0, 1, 2, 3, 5, 9) and sid == 0:
        return False
    if ftype in (4, 6, 7) and sid != 0:
        return False
    if ftype == 4 and (length % 6 or (flags & 1 and length)):
        return False
    if ftype in (2,) and length != 5:
        return False
    if ftype in (3,) and length != 4:
        return False
    if ftype == 8 and length != 4:
        return False
    if ftype == 6 and length != 8:
        return False
    return ftype <= 9
