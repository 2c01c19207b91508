#!/usr/bin/env python3
"""Independent oracle (standard library only): the HTTP exchanges in captures.

Reads classic pcap files (us/ns, either byte order; Ethernet, Linux SLL, raw IP),
unwraps VXLAN (UDP 4789, any depth), reassembles each TCP connection by sequence
number (first copy of a byte wins, so retransmissions and mirrored duplicates are
absorbed; a hole never filled is counted and skipped), then parses HTTP/1.x on
both directions: Content-Length, chunked, close-delimited bodies, HEAD, 1xx
interim, 204/304, 101 upgrade (the rest of the connection is not HTTP), pipelining.

Prints TSV, one row per exchange in capture order of the requests (the packet that
carried the first byte of the request line; ties keep request order):
  file  conn  client  method  uri  status
conn is 0-based, in order of each connection's first packet in the file (the same
numbering as Wireshark's tcp.stream). client is ip:port ([ip6]:port for IPv6).
status is the final status, "-" when no response was seen. A response whose
request is not in the capture (mid-stream pickup) is a row with method and uri "-",
placed by the packet of its first byte.
  --verbose  adds a comment line per file with connection/gap/retransmit counts.
"""
import ipaddress
import struct
import sys


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit("%s: not a classic pcap file" % path)
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0xFFFF
    off = 24
    idx = 0
    while off + 16 <= len(data):
        sec, frac, caplen, origlen = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        pkt = data[off:off + caplen]
        off += caplen
        ts = sec + frac / (1e9 if nano else 1e6)
        yield idx, ts, linktype, pkt, origlen
        idx += 1


def l3_from_link(linktype, pkt):
    if linktype == 1:  # Ethernet
        return ether(pkt)
    if linktype == 113:  # SLL
        return pkt[14:16], pkt[16:]
    if linktype == 276:  # SLL2
        return pkt[0:2], pkt[20:]
    if linktype in (101, 12, 14):  # raw
        v = pkt[0] >> 4 if pkt else 0
        return (b"\x08\x00" if v == 4 else b"\x86\xdd"), pkt
    return None, b""


def ether(pkt):
    et, off = pkt[12:14], 14
    while et in (b"\x81\x00", b"\x88\xa8"):
        et, off = pkt[off + 2:off + 4], off + 4
    return et, pkt[off:]


def ip_tcp(et, p, vni=None):
    """Returns (src, dst, proto-payload, proto) walking VXLAN; None if not TCP."""
    if et == b"\x08\x00" and len(p) >= 20:
        ihl = (p[0] & 0xF) * 4
        total = struct.unpack("!H", p[2:4])[0]
        proto = p[9]
        src, dst = ipaddress.ip_address(p[12:16]), ipaddress.ip_address(p[16:20])
        frag = struct.unpack("!H", p[6:8])[0] & 0x3FFF
        if frag:
            return None
        body = p[ihl:total]
    elif et == b"\x86\xdd" and len(p) >= 40:
        plen = struct.unpack("!H", p[4:6])[0]
        proto = p[6]
        src, dst = ipaddress.ip_address(p[8:24]), ipaddress.ip_address(p[24:40])
        body = p[40:40 + plen]
        while proto in (0, 43, 60):  # hop-by-hop, routing, dest options
            proto, hl = body[0], (body[1] + 1) * 8
            body = body[hl:]
    else:
        return None
    if proto == 17 and len(body) >= 8:
        dport = struct.unpack("!H", body[2:4])[0]
        if dport == 4789 and len(body) >= 16 and body[8] & 0x08:
            inner = body[16:]
            et2, p2 = ether(inner)
            return ip_tcp(et2, p2)
        return None
    if proto != 6:
        return None
    return src, dst, body


class Dir:
    def __init__(self):
        self.isn = None
        self.segs = {}  # rel seq -> (bytes, pkt idx)
        self.fin = None


def fmt_ep(ip, port):
    return ("[%s]:%d" % (ip, port)) if ip.version == 6 else ("%s:%d" % (ip, port))


def assemble(d):
    """Returns (stream bytes, list of (offset, pkt idx) for each byte run, holes)."""
    out = bytearray()
    marks = []
    holes = 0
    hole_bytes = 0
    pos = 0
    for rel in sorted(d.segs):
        data, idx = d.segs[rel]
        end = rel + len(data)
        if end <= pos:
            continue
        if rel > pos:
            holes += 1
            hole_bytes += rel - pos
            out += b"\0" * (rel - pos)  # a known-length gap
            pos = rel
        piece = data[pos - rel:]
        marks.append((len(out), idx))
        out += piece
        pos = end
    return bytes(out), marks, holes, hole_bytes


def pkt_of(marks, offset):
    lo, hi = 0, len(marks) - 1
    best = marks[0][1] if marks else 0
    while lo <= hi:
        mid = (lo + hi) // 2
        if marks[mid][0] <= offset:
            best = marks[mid][1]
            lo = mid + 1
        else:
            hi = mid - 1
    return best


def parse_head(buf, pos):
    end = buf.find(b"\r\n\r\n", pos)
    if end < 0:
        return None
    lines = buf[pos:end].decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip().lower(), v.strip()))
    return lines[0], headers, end + 4


def hget(headers, name):
    for k, v in headers:
        if k == name:
            return v
    return None


def chunked_end(buf, pos):
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(buf[pos:eol].split(b";")[0].strip() or b"0", 16)
        pos = eol + 2
        if size == 0:
            # trailers until an empty line
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return eol + 2
                pos = eol + 2
        pos += size + 2


def requests(buf):
    pos, out = 0, []
    while pos < len(buf):
        h = parse_head(buf, pos)
        if h is None:
            break
        line, headers, body = h
        method, uri, version = line.split(" ", 2)
        out.append((pos, method, uri, version, headers))
        te = hget(headers, "transfer-encoding")
        if te and "chunked" in te.lower():
            pos = chunked_end(buf, body)
            if pos is None:
                break
        else:
            pos = body + int(hget(headers, "content-length") or 0)
        if hget(headers, "upgrade") and method == "GET":
            break  # anything after an upgrade request is not HTTP/1
    return out


def responses(buf, reqs, marks):
    """Pairs responses with requests in FIFO order. A response that starts in an
    earlier packet than the next unanswered request cannot answer it (mid-stream
    pickup): it is an orphan. Returns (statuses per request, orphans as
    (pkt idx, status))."""
    pos, out, orphans = 0, [None] * len(reqs), []
    i = 0
    while pos < len(buf):
        h = parse_head(buf, pos)
        if h is None:
            break
        start_pkt = pkt_of(marks, pos)
        line, headers, body = h
        status = int(line.split(" ", 2)[1])
        req = reqs[i] if i < len(reqs) and reqs[i][5] <= start_pkt else None
        method = req[1] if req else "GET"
        if 100 <= status < 200 and status != 101:
            pos = body
            continue
        te = hget(headers, "transfer-encoding")
        cl = hget(headers, "content-length")
        if method == "HEAD" or status in (101, 204, 304):
            pos = body
        elif te and "chunked" in te.lower():
            pos = chunked_end(buf, body)
            if pos is None:
                pos = len(buf)
        elif cl is not None:
            pos = body + int(cl)
        else:
            pos = len(buf)  # close-delimited
        if status == 101:
            pos = len(buf)
        if req is None:
            orphans.append((start_pkt, status))
        else:
            out[i] = status
            i += 1
    return out, orphans


def analyse(path, verbose):
    conns = {}
    order = []
    retrans = 0
    for idx, ts, lt, pkt, _ in read_pcap(path):
        et, l3 = l3_from_link(lt, pkt)
        if et is None:
            continue
        r = ip_tcp(et, l3)
        if r is None:
            continue
        src, dst, tcp = r
        if len(tcp) < 20:
            continue
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        flags = tcp[13]
        doff = (tcp[12] >> 4) * 4
        payload = tcp[doff:]
        a, b = (src, sport), (dst, dport)
        key = (min(a, b), max(a, b))
        c = conns.get(key)
        syn = flags & 0x02 and not flags & 0x10
        if c is None or (syn and c["closed"] and c["client"] == a and c["dirs"][a].isn != seq):
            c = {"client": a if (syn or dport < sport) else b, "dirs": {a: Dir(), b: Dir()},
                 "first": idx, "closed": False}
            conns[key] = c
            order.append(c)
        d = c["dirs"][a]
        if flags & 0x02:
            d.isn = seq
        if d.isn is None:
            d.isn = (seq - 1) & 0xFFFFFFFF
        rel = (seq - d.isn - 1) & 0xFFFFFFFF
        if flags & 0x02:
            rel = 0
        if payload:
            if rel in d.segs:
                retrans += 1
                if len(payload) > len(d.segs[rel][0]):
                    old = d.segs[rel]
                    d.segs[rel] = (old[0] + payload[len(old[0]):], old[1])
            else:
                d.segs[rel] = (payload, idx)
        if flags & 0x05:
            c["closed"] = True
    rows = []
    total_holes = total_hole_bytes = 0
    for ci, c in enumerate(order):
        cl = c["client"]
        sv = [k for k in c["dirs"] if k != cl][0]
        qbuf, qmarks, h1, hb1 = assemble(c["dirs"][cl])
        sbuf, smarks, h2, hb2 = assemble(c["dirs"][sv])
        total_holes += h1 + h2
        total_hole_bytes += hb1 + hb2
        reqs = [r + (pkt_of(qmarks, r[0]),) for r in requests(qbuf)]
        stats, orphans = responses(sbuf, reqs, smarks)
        for i, (req, st) in enumerate(zip(reqs, stats)):
            _, method, uri, _, _, pkt = req
            rows.append((pkt, ci, i, fmt_ep(*cl), method, uri,
                         "-" if st is None else str(st)))
        for pkt, st in orphans:
            rows.append((pkt, ci, -1, fmt_ep(*cl), "-", "-", str(st)))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    if verbose:
        print("# %s: %d connections, %d exchanges, %d duplicate segments, %d unfilled holes (%d bytes)"
              % (path, len(order), len(rows), retrans, total_holes, total_hole_bytes))
    for r in rows:
        print("\t".join([path, str(r[1])] + list(r[3:])))


def main():
    args = sys.argv[1:]
    verbose = "--verbose" in args
    args = [a for a in args if a != "--verbose"]
    print("file\tconn\tclient\tmethod\turi\tstatus")
    for path in args:
        analyse(path, verbose)


if __name__ == "__main__":
    main()
