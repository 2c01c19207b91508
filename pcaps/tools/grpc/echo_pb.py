"""Hand-written protobuf encoding of echo.proto's two messages (standard library only).

The fixtures need valid protobuf on the wire (so a schemaless dump or a descriptor-based
decode has real input) without depending on a protobuf runtime version; two flat messages
with varint and length-delimited fields are a few lines.
"""


def _varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_varint(num, v):
    return _varint(num << 3) + _varint(v) if v else b""


def _field_bytes(num, b):
    return _varint((num << 3) | 2) + _varint(len(b)) + b if b else b""


def _read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _parse(buf):
    i, fields = 0, {}
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 2:
            n, i = _read_varint(buf, i)
            v, i = bytes(buf[i:i + n]), i + n
        else:
            raise ValueError("unexpected wire type %d" % wt)
        fields[num] = v
    return fields


def request(text="", count=0, size=0, delay_ms=0):
    return (_field_bytes(1, text.encode()) + _field_varint(2, count) + _field_varint(3, size)
            + _field_varint(4, delay_ms))


def parse_request(b):
    f = _parse(b)
    return {"text": f.get(1, b"").decode(), "count": f.get(2, 0), "size": f.get(3, 0),
            "delay_ms": f.get(4, 0)}


def reply(text="", seq=0, pad=b""):
    return _field_bytes(1, text.encode()) + _field_varint(2, seq) + _field_bytes(3, pad)


def parse_reply(b):
    f = _parse(b)
    return {"text": f.get(1, b"").decode(), "seq": f.get(2, 0), "pad": f.get(3, b"")}
