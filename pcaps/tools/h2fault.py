#!/usr/bin/env python3
"""Faults for the HTTP/2 fixtures: removes, reorders, duplicates or cuts packets of a REAL
capture, choosing them by what they carry (standard library only).

    python3 h2fault.py IN.pcap OUT.pcap OP [ARGS]

OP:
  drop-frame SIDE TYPE STREAM [NTH]   remove every packet carrying bytes of the NTH (default 0)
                                      frame of TYPE (HEADERS, DATA, ...) on STREAM sent by
                                      SIDE (client|server): a header block lost to the mirror
                                      (HPACK loses its insertions) or a DATA frame lost
  drop-mid-data SIDE STREAM           remove the one packet in the middle of STREAM's DATA
                                      bytes from SIDE that carries only DATA payload (a hole
                                      inside a body, frame headers intact)
  cut-before SIDE TYPE STREAM         remove every packet before the one carrying the first
                                      byte of that frame (the capture starts mid-connection:
                                      no handshake, no preface, no SETTINGS, HPACK state unseen)
  reorder EVERY                       swap every EVERY-th data packet with the next one and
                                      send a copy of each EVERY-th data packet again later
                                      (what a tap sees on a reordering path with retransmits)
  snaplen N                           keep only the first N bytes of every packet (caplen),
                                      origlen unchanged: what a snaplen-limited mirror stores

The mirror lost these packets, not the network: nothing is retransmitted (except in
`reorder`), so the holes stay holes. Prints what it removed (packet numbers, 1-based as in
Wireshark, and the frames they carried) to stderr; h2truth.py reads OUT on its own.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2truth  # noqa: E402

TYPES = {v: k for k, v in h2truth.h2lib.FRAME_TYPES.items()}


def read_records(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit("%s: not a classic pcap file" % path)
    recs, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen, origlen = struct.unpack(e + "IIII", data[off:off + 16])
        recs.append([sec, frac, origlen, data[off + 16:off + 16 + caplen]])
        off += 16 + caplen
    return e, data[:24], recs


def write_records(path, e, ghdr, recs, snaplen=None):
    with open(path, "wb") as f:
        if snaplen is not None:
            ghdr = ghdr[:16] + struct.pack(e + "I", snaplen) + ghdr[20:]
        f.write(ghdr)
        for sec, frac, origlen, pkt in recs:
            f.write(struct.pack(e + "IIII", sec, frac, len(pkt), origlen) + pkt)


def analyse(path):
    """Frames with the packets carrying them, per connection (the first HTTP/2 one)."""
    conns = []
    for c in h2truth.connections(path):
        conn = h2truth.Conn(c)
        if conn.run():
            conns.append(conn)
    return conns


def seg_ranges(conn, side):
    """pkt idx -> (start, end) stream offsets for every data packet of SIDE."""
    half = conn.c["halves"][conn.client if side == "client" else conn.server]
    out = {}
    for rel, (data, idx, _) in half.segs.items():
        out[idx] = (rel, rel + len(data))
    return out


def packets_for(conn, side, start, end):
    return sorted(i for i, (a, b) in seg_ranges(conn, side).items() if a < end and b > start)


def find_frame(conns, side, ftype, sid, nth):
    for conn in conns:
        fr = [f for f in conn.frame_log
              if f["side"] == side and f["type"] == ftype and f["stream_id"] == sid]
        if len(fr) > nth:
            return conn, fr[nth]
    raise SystemExit("no %s frame #%d on stream %d from the %s" % (ftype, nth, sid, side))


def describe(conn, side, pkts):
    rng = seg_ranges(conn, side)
    out = []
    for p in pkts:
        a, b = rng[p]
        fr = ["%s(s%s)" % (f["type"], f["stream_id"]) for f in conn.frame_log
              if f["side"] == side and f["length"] is not None
              and f["offset"] < b and f["offset"] + 9 + f["length"] > a]
        out.append("#%d [%d,%d) %s" % (p + 1, a, b, " ".join(fr)))
    return "; ".join(out)


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    src, dst, op = sys.argv[1:4]
    args = sys.argv[4:]
    e, ghdr, recs = read_records(src)
    if op == "snaplen":
        n = int(args[0])
        for r in recs:
            r[3] = r[3][:n]
        write_records(dst, e, ghdr, recs, snaplen=n)
        print("snaplen %d: %d packets" % (n, len(recs)), file=sys.stderr)
        return
    conns = analyse(src)
    drop = set()
    if op == "drop-frame":
        side, ftype, sid = args[0], args[1], int(args[2])
        nth = int(args[3]) if len(args) > 3 else 0
        conn, f = find_frame(conns, side, ftype, sid, nth)
        pk = packets_for(conn, side, f["offset"], f["offset"] + 9 + f["length"])
        drop.update(pk)
        print("drop-frame %s %s stream %d: %s" % (side, ftype, sid, describe(conn, side, pk)),
              file=sys.stderr)
    elif op == "drop-mid-data":
        side, sid = args[0], int(args[1])
        for conn in conns:
            fr = [f for f in conn.frame_log if f["side"] == side and f["type"] == "DATA"
                  and f["stream_id"] == sid and f["length"]]
            if not fr:
                continue
            rng = seg_ranges(conn, side)
            inside = []
            for p, (a, b) in sorted(rng.items(), key=lambda x: x[1]):
                for f in fr:
                    if f["offset"] + 9 <= a and b <= f["offset"] + 9 + f["length"]:
                        inside.append(p)
                        break
            if not inside:
                raise SystemExit("no packet of stream %d carries only DATA payload" % sid)
            p = inside[len(inside) // 2]
            drop.add(p)
            print("drop-mid-data %s stream %d: %s" % (side, sid, describe(conn, side, [p])),
                  file=sys.stderr)
            break
        else:
            raise SystemExit("no DATA on stream %d from the %s" % (sid, side))
    elif op == "cut-before":
        side, ftype, sid = args[0], args[1], int(args[2])
        conn, f = find_frame(conns, side, ftype, sid, 0)
        first = min(packets_for(conn, side, f["offset"], f["offset"] + 1))
        drop.update(range(first))
        print("cut-before %s %s stream %d: packets #1..#%d removed" % (side, ftype, sid, first),
              file=sys.stderr)
    elif op == "reorder":
        every = int(args[0])
        data_pkts = []
        for conn in conns:
            for side in ("client", "server"):
                data_pkts += list(seg_ranges(conn, side))
        data_pkts.sort()
        out = list(range(len(recs)))
        swapped = dup = 0
        for k, p in enumerate(data_pkts):
            if k % every == every - 1 and k + 1 < len(data_pkts):
                q = data_pkts[k + 1]
                i, j = out.index(p), out.index(q)
                out[i], out[j] = out[j], out[i]
                swapped += 1
        extra = []
        for k, p in enumerate(data_pkts):
            if k % every == every // 2:
                extra.append((min(len(out), out.index(p) + 4), p))
                dup += 1
        for pos, p in sorted(extra, reverse=True):
            out.insert(pos, p)
        new = []
        for k, i in enumerate(out):
            r = list(recs[i])
            # Keep timestamps non-decreasing in file order.
            if new and (r[0], r[1]) < (new[-1][0], new[-1][1]):
                r[0], r[1] = new[-1][0], new[-1][1]
            new.append(r)
        write_records(dst, e, ghdr, new)
        print("reorder %d: %d swaps, %d duplicates" % (every, swapped, dup), file=sys.stderr)
        return
    else:
        raise SystemExit("unknown op %s" % op)
    write_records(dst, e, ghdr, [r for i, r in enumerate(recs) if i not in drop])


if __name__ == "__main__":
    main()
