#!/usr/bin/env python3
"""Outer UDP source port per direction of each inner connection in a VXLAN capture.

AWS Traffic Mirroring sets the outer UDP source port of a VXLAN datagram from a hash of the
inner packet's 5-tuple; deploy/README.md says the hash is symmetric (both directions of one
connection get the same port), which is what keeps a connection on one NLB target. This
script shows it from a capture: it reads the outer and inner headers with tshark (not our
own decoder, so the evidence does not depend on the code under test), groups packets by the
inner connection (the unordered 5-tuple), and prints, per connection and direction, the
outer source address(es) and port(s) seen.

    python3 deploy/evidence/outer-port.py CAPTURE.pcap [--check]

--check exits 1 unless every TCP connection seen in both directions used one outer source
port for both, and at least one such connection exists (a capture without two-way TCP
connections proves nothing, and that is a failure too). UDP is printed but not checked: in
the public AWS capture, replies from the VPC's DNS resolver (x.x.x.2:53) all carry one outer
port whatever the query's was (see deploy/README.md); vxtap only needs TCP to be symmetric.
"""
import subprocess
import sys
from collections import defaultdict


def rows(path):
    out = subprocess.run(
        ["tshark", "-r", path, "-Y", "vxlan", "-T", "fields", "-E", "separator=|",
         "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "udp.srcport", "-e",
         "udp.dstport", "-e", "tcp.srcport", "-e", "tcp.dstport"],
        check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        src, dst, proto, usrc, udst, tsrc, tdst = line.split("|")
        src, dst, proto = src.split(","), dst.split(","), proto.split(",")
        usrc, udst = usrc.split(","), udst.split(",")
        if len(src) < 2 or len(usrc) < 1:
            continue
        outer_src, outer_sport = src[0], usrc[0]
        inner_proto = proto[1]
        if inner_proto == "6" and tsrc:
            sport, dport = tsrc, tdst
        elif inner_proto == "17" and len(usrc) >= 2:
            sport, dport = usrc[1], udst[1]
        else:
            continue
        yield outer_src, outer_sport, inner_proto, (src[1], sport), (dst[1], dport)


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    if len(args) != 1:
        sys.exit(__doc__)
    # connection (proto, lower endpoint, higher endpoint) -> direction -> {(outer src, port)}
    conns = defaultdict(lambda: defaultdict(set))
    packets = defaultdict(int)
    for outer_src, outer_sport, proto, a, b in rows(args[0]):
        lo, hi = sorted([a, b])
        key = (proto, lo, hi)
        direction = "lo->hi" if a == lo else "hi->lo"
        conns[key][direction].add((outer_src, outer_sport))
        packets[key] += 1
    names = {"6": "tcp", "17": "udp"}
    both = same = 0
    tcp_both = tcp_same = 0
    print("inner connection | packets | outer src:port, one direction | the other direction | same port")
    for key in sorted(conns, key=lambda k: -packets[k]):
        proto, lo, hi = key
        d = conns[key]
        fwd = ",".join(f"{s}:{p}" for s, p in sorted(d.get("lo->hi", ())))
        rev = ",".join(f"{s}:{p}" for s, p in sorted(d.get("hi->lo", ())))
        if d.get("lo->hi") and d.get("hi->lo"):
            both += 1
            ports = {p for _, p in d["lo->hi"]} | {p for _, p in d["hi->lo"]}
            ok = len(ports) == 1
            same += ok
            if proto == "6":
                tcp_both += 1
                tcp_same += ok
            verdict = "yes" if ok else "NO"
        else:
            verdict = "(one direction only)"
        print(f"{names.get(proto, proto)} {lo[0]}:{lo[1]} <-> {hi[0]}:{hi[1]} | {packets[key]} | "
              f"{fwd or '-'} | {rev or '-'} | {verdict}")
    print(f"{both} connection(s) seen in both directions; {same} used the same outer source port both ways")
    print(f"TCP: {tcp_both} connection(s) seen in both directions; {tcp_same} used the same outer source port both ways")
    if "--check" in sys.argv and (tcp_both == 0 or tcp_same != tcp_both):
        sys.exit(1)


if __name__ == "__main__":
    main()
