#!/usr/bin/env python3
"""Cross-checks h2truth.py against what the programs themselves logged (standard library only).

    python3 h2logs.py TRUTH.json LOGDIR NAME

Reads LOGDIR/NAME.* written by make-h2-fixtures.sh while it captured NAME.pcap:
  NAME.nghttp.log           `nghttp -v` (every frame nghttp sent and received, headers,
                            padding), one session per nghttp run;
  NAME.curl.tsv             curl's -w line per transfer: url, HTTP version, status, bytes
                            downloaded, bytes uploaded;
  NAME.grpc-client.jsonl    the grpcio client: per call the method, message sizes per
  NAME.grpc-server.jsonl    direction and the status it saw (the server: what it sent).
and compares them with the truth's streams: method, path, status, body lengths (DATA minus
padding), pushed, RST_STREAM, gRPC status and message counts and sizes. Prints one line per
disagreement (and notes for things a log cannot show, such as calls made before a mid-stream
capture started); exit status 1 when there is a disagreement.
"""
import json
import os
import re
import sys
import urllib.parse

GRPC_PORTS = (50051, 50052)


def nghttp_sessions(path):
    sessions = []
    cur = None
    pend_hdrs = []
    pending_frame = None
    upgrade_req = False
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if re.search(r"\] Connected$", line):
            cur = {"streams": {}}
            sessions.append(cur)
            pend_hdrs = []
            continue
        if cur is None:
            continue

        def st(sid):
            return cur["streams"].setdefault(sid, {"method": None, "path": None, "authority": None,
                                                   "status": None, "req_body": 0, "resp_body": 0,
                                                   "pushed": False, "rst": []})
        if "HTTP Upgrade request" in line:
            upgrade_req = True
            continue
        if upgrade_req:
            m = re.match(r"^(\S+) (\S+) HTTP/1\.1$", line)
            if m:
                s = st(1)
                s["method"], s["path"] = m.group(1), m.group(2)
            m = re.match(r"^host: (.*)$", line)
            if m:
                st(1)["authority"] = m.group(1)
                upgrade_req = False
            continue
        m = re.match(r"^\[[ \d.]+\] (send|recv) (\w+) frame <length=(\d+), flags=0x([0-9a-f]+), stream_id=(\d+)>", line)
        if m:
            direction, ftype, length, flags, sid = m.group(1), m.group(2), int(m.group(3)), int(m.group(4), 16), int(m.group(5))
            pending_frame = {"dir": direction, "type": ftype, "length": length, "flags": flags,
                             "sid": sid, "hdrs": pend_hdrs if direction == "recv" else []}
            pend_hdrs = []
            if ftype == "DATA":
                s = st(sid)
                s["req_body" if direction == "send" else "resp_body"] += length
            if ftype in ("HEADERS", "DATA", "RST_STREAM", "PUSH_PROMISE"):
                st(sid)
            if ftype == "HEADERS" and direction == "recv":
                for n, v in pending_frame["hdrs"]:
                    if n == ":status" and not v.startswith("1"):
                        st(sid)["status"] = int(v)
            continue
        m = re.match(r"^\s+\((.*)\)$", line)
        if m and pending_frame is not None:
            kv = dict(x.split("=", 1) for x in m.group(1).split(", ") if "=" in x)
            f = pending_frame
            if "padlen" in kv and f["type"] == "DATA":
                s = st(f["sid"])
                s["req_body" if f["dir"] == "send" else "resp_body"] -= int(kv["padlen"])
            if "promised_stream_id" in kv:
                ps = st(int(kv["promised_stream_id"]))
                ps["pushed"] = True
                for n, v in f["hdrs"]:
                    if n in (":method", ":path", ":authority"):
                        ps[n[1:]] = v
            if "error_code" in kv and f["type"] == "RST_STREAM":
                st(f["sid"])["rst"].append(kv["error_code"])
            continue
        m = re.match(r"^\[[ \d.]+\] recv \(stream_id=(\d+)\) ([^:]*|:[^:]+): (.*)$", line)
        if m:
            pend_hdrs.append((m.group(2), m.group(3)))
            continue
        m = re.match(r"^\s+(:method|:path|:authority): (.*)$", line)
        if m and pending_frame is not None and pending_frame["dir"] == "send" \
                and pending_frame["type"] == "HEADERS":
            s = st(pending_frame["sid"])
            s[m.group(1)[1:]] = m.group(2)
    return sessions


def port_of(ep):
    return int(ep.rsplit(":", 1)[1])


def main():
    truth_path, logdir, name = sys.argv[1:4]
    truth = json.load(open(truth_path))
    conns = truth["connections"]
    bad = 0
    notes = []

    def disagree(msg):
        nonlocal bad
        bad += 1
        print(msg)

    # nghttp: sessions in order <-> HTTP/2 connections to the nghttp2 ports, in order.
    p = os.path.join(logdir, name + ".nghttp.log")
    if os.path.exists(p):
        ng = [c for c in conns if port_of(c["server"]) in (8080, 8081, 8082)
              and not port_of(c["client"]) in range(45001, 45010)]
        sess = nghttp_sessions(p)
        if len(ng) != len(sess):
            disagree("nghttp: %d sessions logged, %d connections in truth" % (len(sess), len(ng)))
        for i, (c, s) in enumerate(zip(ng, sess)):
            tst = {x["stream_id"]: x for x in c["streams"]}
            for sid, ls in sorted(s["streams"].items()):
                if ls["method"] is None and ls["status"] is None:
                    continue  # PRIORITY-only or connection-level
                t = tst.get(sid)
                where = "nghttp session %d stream %d" % (i, sid)
                if t is None:
                    disagree("%s: logged, not in truth" % where)
                    continue
                for k, tv in (("method", t["method"]), ("path", t["path"]),
                              ("authority", t["authority"]), ("status", t["status"]),
                              ("req_body", t["request_body_len"]),
                              ("resp_body", t["response_body_len"]), ("pushed", t["pushed"])):
                    if ls[k] != tv:
                        disagree("%s: %s truth=%r nghttp=%r" % (where, k, tv, ls[k]))
            for sid in tst:
                if sid not in s["streams"]:
                    disagree("nghttp session %d stream %d: in truth, not logged" % (i, sid))
    # curl: one line per transfer; the connections from curl's fixed ports 45001.. in order.
    p = os.path.join(logdir, name + ".curl.tsv")
    if os.path.exists(p):
        streams = [(c, s) for c in conns if port_of(c["client"]) in range(45001, 45010)
                   for s in c["streams"]]
        used = set()
        for line in open(p):
            url, ver, code, down, up = line.rstrip("\n").split("\t")
            u = urllib.parse.urlsplit(url)
            path = u.path + ("?" + u.query if u.query else "")
            hit = None
            for k, (c, s) in enumerate(streams):
                if k not in used and s["path"] == path and s["authority"] == u.netloc:
                    hit = k
                    break
            if hit is None:
                disagree("curl %s: not in truth" % url)
                continue
            used.add(hit)
            c, s = streams[hit]
            for k, tv, lv in (("version", "2", ver), ("status", s["status"], int(code)),
                              ("response_body_len", s["response_body_len"], int(down)),
                              ("request_body_len", s["request_body_len"], int(up))):
                if tv != lv:
                    disagree("curl %s: %s truth=%r curl=%r" % (url, k, tv, lv))
        for k, (c, s) in enumerate(streams):
            if k not in used:
                disagree("conn %d stream %d: in truth, not in curl's log" % (c["conn"], s["stream_id"]))
    # gRPC: each logged call <-> the first unused truth stream with the same path and request
    # message count (calls are made in a fixed order; three run concurrently).
    for side in ("client", "server"):
        p = os.path.join(logdir, "%s.grpc-%s.jsonl" % (name, side))
        if not os.path.exists(p):
            continue
        streams = [(c, s) for c in conns if port_of(c["server"]) in GRPC_PORTS
                   for s in c["streams"] if s["grpc"] is not None or s["path"] is None]
        used = set()
        for n, line in enumerate(open(p)):
            e = json.loads(line)
            # Prefer the stream whose message sizes match too (concurrent calls of one
            # method are logged in completion order, not stream order).
            hit = None
            best = -1
            for k, (c, s) in enumerate(streams):
                g = s["grpc"]
                if k in used or g is None or s["path"] != e["method"]:
                    continue
                qm, rm = g["request_messages"], g["response_messages"]
                if qm is not None and qm["count"] != len(e["req_sizes"]):
                    continue
                score = (qm is not None and qm["sizes"] == e["req_sizes"]) + \
                    (rm is not None and rm["sizes"] == e["resp_sizes"])
                if score > best:
                    hit, best = k, score
            where = "grpc-%s call %d %s" % (side, n, e["method"])
            if hit is None:
                notes.append("%s: no stream in the capture (made before it started, or its "
                             "headers are not recoverable)" % where)
                continue
            used.add(hit)
            c, s = streams[hit]
            g = s["grpc"]
            status = e["status"].split(" ")[0]
            if g["status_name"] != status:
                disagree("%s (stream %d): status truth=%r log=%r" % (where, s["stream_id"], g["status_name"], status))
            for dir_, key in (("request_messages", "req_sizes"), ("response_messages", "resp_sizes")):
                m = g[dir_]
                if m is None:
                    notes.append("%s (stream %d): %s framing not known in truth" % (where, s["stream_id"], dir_))
                    continue
                if m["count"] != len(e[key]):
                    disagree("%s (stream %d): %s count truth=%d log=%d" % (where, s["stream_id"], dir_, m["count"], len(e[key])))
                elif not m["compressed"] and m["sizes"] != e[key]:
                    disagree("%s (stream %d): %s sizes truth=%r log=%r" % (where, s["stream_id"], dir_, m["sizes"], e[key]))
            if e.get("message") and side == "client" and g["status_source"] != "rst_stream" \
                    and g["message"] != e["message"]:
                disagree("%s (stream %d): message truth=%r log=%r" % (where, s["stream_id"], g["message"], e["message"]))
    for n in notes:
        print("note: " + n)
    print("# %s: %d disagreements with the programs' logs" % (name, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
