#!/usr/bin/env python3
"""Cross-checks h2truth.py against tshark (Wireshark's HTTP/2, HPACK and gRPC dissectors).

    python3 h2tshark.py TRUTH.json FILE.pcap [--port P ...]

Runs `tshark -T json` with the ports decoded as http2 (default 8080 8081 8082 50051), builds
per (connection, stream) the same fields as the truth (method, path, authority, status,
body lengths as DATA payload minus padding, pushed, RST_STREAM code, grpc-status and the
number of gRPC messages per direction) and prints one line per disagreement; exit 0 when
there is none. tshark's view is independent code (its own reassembly, HPACK and gRPC), so
agreement on clean captures checks the oracle; on the fault variants tshark stops at holes
in its own ways, so disagreements there are expected and only reported.
"""
import json
import subprocess
import sys
from collections import defaultdict

PORTS = [8080, 8081, 50051, 50052]  # 8082 (nghttpx) starts as HTTP/1.1: tshark follows the Upgrade itself


def pairs_hook(pairs):
    return pairs  # keep repeated keys (tshark repeats http2.header, http2.stream, ...)


def walk(node, key=None):
    """Yields (key, value) for every leaf and every object, depth first."""
    if isinstance(node, list) and node and isinstance(node[0], tuple):
        for k, v in node:
            yield k, v
            yield from walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v, key)


def get(obj, name, default=None):
    if isinstance(obj, list):
        for k, v in obj:
            if k == name:
                return v
    return default


def get_all(obj, name):
    return [v for k, v in obj if k == name] if isinstance(obj, list) else []


def run_tshark(path, ports):
    cmd = ["tshark", "-r", path, "-T", "json", "-J", "tcp http2 grpc"]
    for p in ports:
        cmd += ["-d", "tcp.port==%d,http2" % p]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    return json.loads(out, object_pairs_hook=pairs_hook)


def analyse(path, ports):
    pk = run_tshark(path, ports)
    streams = defaultdict(lambda: {"req_body": 0, "resp_body": 0, "pushed": False, "rst": None,
                                   "req_headers": None, "resp_headers": None,
                                   "trailers": [], "grpc_req": 0, "grpc_resp": 0})
    for p in pk:
        layers = get(get(p, "_source"), "layers")
        tcp = get(layers, "tcp")
        if tcp is None:
            continue
        tstream = int(get(tcp, "tcp.stream"))
        dport = int(get(tcp, "tcp.dstport"))
        to_server = dport in ports
        for h2 in get_all(layers, "http2"):
            for fr in get_all(h2, "http2.stream"):
                ftype = get(fr, "http2.type")
                if ftype is None:
                    continue
                ftype = int(ftype)
                sid = int(get(fr, "http2.streamid"))
                flags = int(get(fr, "http2.flags"), 16)
                length = int(get(fr, "http2.length"))
                st = streams[(tstream, sid)]
                if ftype == 0:
                    n = length
                    if flags & 0x08:
                        n -= int(get(fr, "http2.pad_length") or 0) + 1
                    st["req_body" if to_server else "resp_body"] += n
                elif ftype in (1, 5):
                    hdrs = []
                    for k, v in walk(fr):
                        if k == "http2.header" and isinstance(v, list):
                            hdrs.append((get(v, "http2.header.name"), get(v, "http2.header.value")))
                    if ftype == 5:
                        promised = int(get(fr, "http2.push_promise.promised_stream_id"))
                        ps = streams[(tstream, promised)]
                        ps["pushed"] = True
                        ps["req_headers"] = hdrs
                    elif to_server:
                        if st["req_headers"] is None:
                            st["req_headers"] = hdrs
                        else:
                            st["trailers"].append(hdrs)
                    else:
                        status = dict(hdrs).get(":status")
                        if st["resp_headers"] is None and status and not status.startswith("1"):
                            st["resp_headers"] = hdrs
                        elif status is None:
                            st["trailers"].append(hdrs)
                elif ftype == 3:
                    st["rst"] = sorted((st["rst"] or []) + [int(get(fr, "http2.rst_stream.error"))])
        for g in get_all(layers, "grpc"):
            # The grpc layer follows the http2 frame that carried the message; attribute it
            # to the stream of that frame (the last http2.stream of the packet on this side).
            sids = [int(get(fr, "http2.streamid")) for h2 in get_all(layers, "http2")
                    for fr in get_all(h2, "http2.stream") if get(fr, "http2.type") == "0"]
            if sids:
                n = len([1 for k, _ in walk(g) if k == "grpc.message_length"])
                st = streams[(tstream, sids[-1])]
                st["grpc_req" if to_server else "grpc_resp"] += max(n, 1)
    return streams


def main():
    args = sys.argv[1:]
    ports = list(PORTS)
    if "--port" in args:
        i = args.index("--port")
        ports = [int(x) for x in args[i + 1:]]
        args = args[:i]
    truth_path, pcap = args
    truth = json.load(open(truth_path))
    ts = analyse(pcap, ports)
    bad = 0
    seen = set()
    for c in truth["connections"]:
        for s in c["streams"]:
            key = (c["conn"], s["stream_id"])
            seen.add(key)
            t = ts.get(key)
            where = "conn %d stream %d" % key
            if t is None:
                print("%s: in truth, not in tshark" % where)
                bad += 1
                continue
            rq = dict(t["req_headers"] or [])
            rs = dict(t["resp_headers"] or [])
            trl = {}
            for tr in t["trailers"]:
                trl.update(dict(tr))
            want = {"method": rq.get(":method"), "path": rq.get(":path"),
                    "authority": rq.get(":authority"),
                    "status": int(rs[":status"]) if ":status" in rs else None,
                    "request_body_len": t["req_body"], "response_body_len": t["resp_body"],
                    "pushed": t["pushed"],
                    "rst": t["rst"]}
            got = {"method": s["method"], "path": s["path"], "authority": s["authority"],
                   "status": s["status"], "request_body_len": s["request_body_len"],
                   "response_body_len": s["response_body_len"], "pushed": s["pushed"],
                   "rst": sorted(r["code"] for r in s["rst_streams"]) or None}
            if s["upgrade"]:
                # tshark shows the upgrade request as HTTP/1.1, not as stream 1 headers.
                for k in ("method", "path", "authority", "request_body_len"):
                    want[k] = got[k]
            if s["grpc"] is not None:
                gs = trl.get("grpc-status", rs.get("grpc-status"))
                want["grpc_status"] = int(gs) if gs is not None else None
                got["grpc_status"] = s["grpc"]["status"] if s["grpc"]["status_source"] != "rst_stream" else None
                rm, qm = s["grpc"]["response_messages"], s["grpc"]["request_messages"]
                want["grpc_request_messages"] = t["grpc_req"]
                want["grpc_response_messages"] = t["grpc_resp"]
                got["grpc_request_messages"] = qm["count"] if qm else None
                got["grpc_response_messages"] = rm["count"] if rm else None
            for k in want:
                if want[k] != got[k]:
                    print("%s: %s truth=%r tshark=%r" % (where, k, got[k], want[k]))
                    bad += 1
    for key, t in sorted(ts.items()):
        if key not in seen and (t["req_headers"] is not None or t["resp_headers"] is not None):
            print("conn %d stream %d: in tshark, not in truth" % key)
            bad += 1
    print("# %s: %d disagreements" % (pcap, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
