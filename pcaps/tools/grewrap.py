#!/usr/bin/env python3
"""Wrap the frames of a plain Ethernet pcap in a mirror tunnel (standard library only).

  grewrap.py VARIANT IN OUT     every frame of IN wrapped as VARIANT
  grewrap.py malformed IN OUT   one broken GRE/ERSPAN frame per defect, around IN's first
                                TCP frame, in the order of MALFORMED below
  grewrap.py list               the variants

No GRE or ERSPAN capture of HTTP exists among the fixtures, so these are made from the
real captures in pcaps/plain/: each inner frame is kept byte for byte (timestamps too)
and only outer headers are added, laid out from the specs:

  GRE         RFC 2784, key and sequence number RFC 2890 (checksum over GRE header +
              payload, RFC 1071 one's complement)
  GRE-in-UDP  RFC 8086, UDP destination port 4754
  ERSPAN      draft-foschiano-erspan-03: type I = GRE 0x88BE without a sequence number
              and no ERSPAN header; type II = GRE 0x88BE with S, 8-byte header, version 1;
              type III = GRE 0x22EB, 12-byte header, version 2, optional 8-byte
              platform-specific subheader when the O bit is set
  VXLAN       RFC 7348 with every reserved bit set (receivers must ignore them)

Outer addresses are documentation ranges (192.0.2.0/24, 2001:db8::/32). Frames that a
variant cannot carry (ARP inside an IP-only tunnel) are left out; the tool says how many.
`tshark -r OUT -Y http` reads every variant (tshark decodes GRE-in-UDP with
`-d udp.port==4754,gre`).
"""
import struct
import sys

MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 10**6), b"\xa1\xb2\xc3\xd4": (">", 10**6),
    b"\x4d\x3c\xb2\xa1": ("<", 10**9), b"\xa1\xb2\x3c\x4d": (">", 10**9),
}

OUTER_MAC = bytes.fromhex("020000000014") + bytes.fromhex("02000000000a")  # dst, src
SRC4, DST4 = bytes([192, 0, 2, 10]), bytes([192, 0, 2, 20])
SRC6 = bytes.fromhex("20010db8000000000000000000000010")
DST6 = bytes.fromhex("20010db8000000000000000000000020")
GRE_KEY = 0x000003E9          # 1001
GRE_KEY_OPTS = 0xDEADBEEF     # the checksum/key/sequence variant's key
GRE_UDP_KEY = 4242
ERSPAN2_SESSION = 300
ERSPAN3_SESSION = 1023
VXLAN_VNI = 7001


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto, payload, ident):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000,
                    64, proto, 0, SRC4, DST4)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return OUTER_MAC + b"\x08\x00" + h + payload


def ipv6(proto, payload):
    h = struct.pack("!IHBB16s16s", 0x60000000, len(payload), proto, 64, SRC6, DST6)
    return OUTER_MAC + b"\x86\xdd" + h + payload


def gre(proto, payload, key=None, seq=None, checksum=False):
    flags = (0x8000 if checksum else 0) | (0x2000 if key is not None else 0) \
        | (0x1000 if seq is not None else 0)
    opts = b""
    if checksum:
        opts += b"\0\0\0\0"
    if key is not None:
        opts += struct.pack("!I", key)
    if seq is not None:
        opts += struct.pack("!I", seq & 0xFFFFFFFF)
    h = struct.pack("!HH", flags, proto) + opts
    if checksum:
        c = csum(h + payload)
        h = h[:4] + struct.pack("!H", c) + h[6:]
    return h + payload


def erspan2(frame, session, index):
    # Ver 1 | VLAN 0 | COS 0, En 0, T 0 | session id ; reserved | index
    return struct.pack("!HHI", 0x1000, session & 0x3FF, index & 0xFFFFF) + frame


def erspan3(frame, session, ts, platform=True):
    # Ver 2 | VLAN | COS, BSO, T | session ; timestamp ; SGT | P FT HwID D Gra O
    word2 = (0 << 10) | (1 << 4) | (1 << 1) | (1 if platform else 0)  # FT 0, HwID 1, Gra 1
    h = struct.pack("!HHIHH", 0x2000, session & 0x3FF, ts & 0xFFFFFFFF, 0, word2)
    if platform:
        h += struct.pack("!II", 0x18000000, ts >> 32 & 0xFFFFFFFF)  # platform id 3, upper ts
    return h + frame


def udp(dport, payload, sport=49999):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ip_of(frame):
    """The IP packet of an untagged Ethernet frame and its ether type, or None."""
    if len(frame) < 14:
        return None
    et = struct.unpack("!H", frame[12:14])[0]
    return (et, frame[14:]) if et in (0x0800, 0x86DD) else None


def wrap(variant, frame, n, ts):
    """The outer frame for the n-th inner frame, or None when the variant cannot carry it."""
    if variant == "gre-teb":
        return ipv4(47, gre(0x6558, frame), n)
    if variant == "gre-teb-key":
        return ipv4(47, gre(0x6558, frame, key=GRE_KEY), n)
    if variant == "gre-csum-key-seq":
        return ipv4(47, gre(0x6558, frame, key=GRE_KEY_OPTS, seq=n, checksum=True), n)
    if variant == "gre-ip":
        ip = ip_of(frame)
        return ip and ipv4(47, gre(ip[0], ip[1], key=GRE_KEY), n)
    if variant == "gre-udp":
        return ipv4(17, udp(4754, gre(0x6558, frame, key=GRE_UDP_KEY)), n)
    if variant == "erspan1":
        return ipv4(47, gre(0x88BE, frame), n)
    if variant == "erspan2":
        return ipv4(47, gre(0x88BE, erspan2(frame, ERSPAN2_SESSION, 5), seq=n), n)
    if variant == "erspan3-ipv6":
        return ipv6(47, gre(0x22EB, erspan3(frame, ERSPAN3_SESSION, ts), seq=n))
    if variant == "vxlan-reserved":
        # Every reserved bit set, including what VXLAN-GPE reads as P and next protocol
        # (0x7f: no GPE protocol), on the plain VXLAN port.
        vx = struct.pack("!BBBBI", 0xFF, 0xFF, 0xFF, 0x7F, VXLAN_VNI << 8 | 0xFF)
        return ipv4(17, udp(4789, vx + frame), n)
    raise SystemExit("unknown variant %s (try: grewrap.py list)" % variant)


VARIANTS = ["gre-teb", "gre-teb-key", "gre-csum-key-seq", "gre-ip", "gre-udp", "erspan1",
            "erspan2", "erspan3-ipv6", "vxlan-reserved"]

# (rejection label vxtap counts, GRE header + ERSPAN bytes, whether the frame follows)
MALFORMED = [
    ("bad_gre_version", bytes.fromhex("00016558"), True),
    ("bad_gre_version", bytes.fromhex("3081880b000000000000000000"), True),  # PPTP
    ("gre_routing", bytes.fromhex("4000655800000000"), True),
    ("gre_routing", bytes.fromhex("08006558"), True),
    ("unknown_gre_protocol", bytes.fromhex("00008847"), True),  # MPLS
    ("short_gre", bytes.fromhex("30006558000000"), False),  # key + seq cut off
    ("short_erspan", bytes.fromhex("100088be000000011000"), False),
    ("bad_erspan_version", bytes.fromhex("100088be000000012000000100000000"), True),
    ("bad_erspan_version", bytes.fromhex("000022eb100000010000000000000000"), True),
    ("short_erspan", bytes.fromhex("000022eb200000010000000000000001"), False),  # O, no subheader
    ("unknown_erspan_frame_type", bytes.fromhex("000022eb200000010000000000000c00"), True),  # FT 3
]


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] not in MAGICS:
        raise SystemExit("%s: not a classic pcap file" % path)
    e, res = MAGICS[data[:4]]
    if struct.unpack(e + "I", data[20:24])[0] != 1:
        raise SystemExit("%s: not Ethernet" % path)
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, caplen, origlen = struct.unpack(e + "IIII", data[off:off + 16])
        body = data[off + 16:off + 16 + caplen]
        if len(body) < caplen:
            raise SystemExit("%s: cut off at byte %d" % (path, off))
        out.append((sec, frac, origlen, body))
        off += 16 + caplen
    return data[:24], e, res, out


def main():
    args = sys.argv[1:]
    if args == ["list"]:
        print("\n".join(VARIANTS + ["malformed"]))
        return
    if len(args) != 3:
        raise SystemExit(__doc__)
    variant, src, dst = args
    header, e, res, frames = read(src)
    out, skipped = [], 0
    if variant == "malformed":
        sec, frac, _, frame = next(f for f in frames if ip_of(f[3]) and f[3][23] == 6)
        for n, (_, hdr, with_frame) in enumerate(MALFORMED):
            body = ipv4(47, hdr + (frame if with_frame else b""), n)
            out.append((sec, frac + n, len(body), body))
    else:
        for n, (sec, frac, origlen, body) in enumerate(frames):
            if origlen != len(body):
                raise SystemExit("%s: frame %d is cut; wrap only whole frames" % (src, n))
            w = wrap(variant, body, n, sec * res + frac)
            if w is None:
                skipped += 1
                continue
            out.append((sec, frac, len(w), w))
    # Same byte order and resolution as the input; a snaplen that fits every frame.
    header = header[:16] + struct.pack(e + "I", 262144) + header[20:]
    with open(dst, "wb") as f:
        f.write(header)
        for sec, frac, origlen, body in out:
            f.write(struct.pack(e + "IIII", sec, frac, len(body), origlen) + body)
    print("%s: %d frames as %s%s" % (dst, len(out), variant,
                                    ", %d non-IP frames left out" % skipped if skipped else ""))


if __name__ == "__main__":
    main()
