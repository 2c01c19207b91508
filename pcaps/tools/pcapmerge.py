#!/usr/bin/env python3
"""Merge classic pcap files in time order (standard library only).

  pcapmerge.py [--delay-us N] OUT IN1 IN2 ...

Packets of the k-th input (0-based) are shifted by k*N microseconds (default 0)
before merging, e.g. to model a second mirror session whose copies arrive a little
after the first's. Equal timestamps keep input order (IN1 first), then file order.
All inputs must share one link type; the output uses the first input's header
(microsecond or nanosecond resolution is taken from it; all inputs must match).
"""
import heapq
import struct
import sys

MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 10**6), b"\xa1\xb2\xc3\xd4": (">", 10**6),
    b"\x4d\x3c\xb2\xa1": ("<", 10**9), b"\xa1\xb2\x3c\x4d": (">", 10**9),
}


def records(path, k, delay_us):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] not in MAGICS:
        raise SystemExit("%s: not a classic pcap file" % path)
    e, res = MAGICS[data[:4]]
    header = data[:24]
    linktype = struct.unpack(e + "I", data[20:24])[0]
    shift = k * delay_us * (res // 10**6)
    out = []
    off, n = 24, 0
    while off + 16 <= len(data):
        sec, frac, caplen, origlen = struct.unpack(e + "IIII", data[off:off + 16])
        body = data[off + 16:off + 16 + caplen]
        if len(body) < caplen:
            raise SystemExit("%s: cut off at byte %d" % (path, off))
        t = sec * res + frac + shift
        out.append((t, k, n, origlen, body))
        off += 16 + caplen
        n += 1
    return header, e, res, linktype, out


def main():
    args = sys.argv[1:]
    delay = 0
    if args[:1] == ["--delay-us"]:
        delay = int(args[1])
        args = args[2:]
    if len(args) < 2:
        raise SystemExit(__doc__)
    out_path, inputs = args[0], args[1:]
    loaded = [records(p, k, delay) for k, p in enumerate(inputs)]
    header, e, res, linktype, _ = loaded[0]
    for p, (_, e2, res2, lt2, _) in zip(inputs, loaded):
        if (e2, res2, lt2) != (e, res, linktype):
            raise SystemExit("%s: byte order, resolution or link type differs from %s" % (p, inputs[0]))
    with open(out_path, "wb") as f:
        f.write(header)
        for t, _, _, origlen, body in heapq.merge(*(r[4] for r in loaded)):
            f.write(struct.pack(e + "IIII", t // res, t % res, len(body), origlen) + body)


if __name__ == "__main__":
    main()
