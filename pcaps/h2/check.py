#!/usr/bin/env python3
"""Compares vxtap's HTTP/2 exchanges for a capture with its ground truth (standard library only).

    python3 pcaps/h2/check.py [--vxtap BIN] [--jsonl OUT.jsonl] [-v] [FILE.pcap ...]
    python3 pcaps/h2/check.py --self-test   # the checker passes ideal records, fails broken ones

For each capture (default: every pcaps/h2/{plain,faults,vxlan}/*.pcap, and the public
captures of ../shared/pcaps/public whose truth is in pcaps/h2/public/) it reads the truth
next to it (FILE.truth.json, made by derive.sh from pcaps/tools/h2truth.py), runs
`BIN replay -q --no-progress FILE` (BIN: $VXTAP or target/release/vxtap, else
target/debug/vxtap) unless --jsonl gives the output of one file, and matches records to
truth streams by (client ip:port, server ip:port, stream_id). A record is HTTP/2 when its
request.version or response.version is "HTTP/2" or it carries a stream id.

Errors (exit status 1):
  - a truth stream without a record, when the truth has anything recoverable for it;
  - a record for a stream the truth does not have, or two records for one stream;
  - complete streams: any difference in method, uri (= :path), status, request/response
    body_len, pushed, rst_stream (flag, and its code when the record gives one), and for
    gRPC service, method, status, status_name, message, encoding and the message count
    (and sizes, when the record gives them) per direction;
  - streams the capture does not show whole (loss, mid-stream, truncation): method, path
    and status must be exact where the truth says they were sent as static-table or literal
    fields ("recoverable"); a value the truth knows must never be contradicted; body
    lengths are exact for a direction that lost no DATA bytes.
Warnings (printed with -v, never failing): values the truth could not resolve, authority
and flags the record does not carry, headers_partial expectations.

Where the record keeps these fields (one place to change if the parser names them
differently): FIELDS below; every candidate path is tried in order.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

FIELDS = {
    "stream_id": [("stream_id",), ("h2", "stream_id"), ("http2", "stream_id")],
    "authority": [("request", "authority"), ("h2", "authority"), ("request", ":authority")],
    "rst_code": [("rst_error",), ("rst_stream", "code"), ("rst_stream",), ("h2", "rst_stream", "code"),
                 ("h2", "rst_code"), ("rst_code",)],
    "grpc": [("grpc",)],
    # Inside the grpc object: per direction, an object with count and sizes, or a count.
    "grpc_req": [("request", "count"), ("request_messages", "count"), ("requests", "count"),
                 ("request_messages",), ("requests",), ("request_count",)],
    "grpc_resp": [("response", "count"), ("response_messages", "count"), ("responses", "count"),
                  ("response_messages",), ("responses",), ("response_count",)],
    "grpc_req_sizes": [("request", "sizes"), ("request_messages", "sizes"), ("requests", "sizes"),
                       ("request_sizes",)],
    "grpc_resp_sizes": [("response", "sizes"), ("response_messages", "sizes"),
                        ("responses", "sizes"), ("response_sizes",)],
}
MISSING = object()


def pick(obj, name):
    for path in FIELDS[name]:
        cur = obj
        for k in path:
            if isinstance(cur, dict) and k in cur:
                cur = cur[k]
            else:
                cur = MISSING
                break
        if cur is not MISSING and not isinstance(cur, dict):
            return cur
        if cur is not MISSING and name == "grpc":
            return cur
    return MISSING


def ep(peer):
    ip = peer["ip"]
    return ("[%s]:%d" % (ip, peer["port"])) if ":" in ip else ("%s:%d" % (ip, peer["port"]))


def is_h2(rec):
    for side in ("request", "response"):
        m = rec.get(side)
        if isinstance(m, dict) and m.get("version") == "HTTP/2":
            return True
    return pick(rec, "stream_id") not in (MISSING, None)


def vxtap_bin(opt):
    if opt:
        return opt
    if os.environ.get("VXTAP"):
        return os.environ["VXTAP"]
    for p in ("target/release/vxtap", "target/debug/vxtap"):
        if os.access(os.path.join(ROOT, p), os.X_OK):
            return os.path.join(ROOT, p)
    raise SystemExit("no vxtap binary: build it or pass --vxtap / set VXTAP")


def records(pcap, jsonl, binary):
    if jsonl:
        lines = open(jsonl).read().splitlines()
    else:
        out = subprocess.run([binary, "replay", "-q", "--no-progress", pcap],
                             capture_output=True, text=True)
        if out.returncode:
            raise SystemExit("%s replay %s failed: %s" % (binary, pcap, out.stderr[-2000:]))
        lines = out.stdout.splitlines()
    return [json.loads(x) for x in lines if x.strip()]


class Report:
    def __init__(self, name, verbose):
        self.name, self.verbose = name, verbose
        self.errors = self.warnings = 0

    def err(self, where, msg):
        self.errors += 1
        print("ERROR %s %s: %s" % (self.name, where, msg))

    def warn(self, where, msg):
        self.warnings += 1
        if self.verbose:
            print("warn  %s %s: %s" % (self.name, where, msg))


def check_file(pcap, jsonl, binary, verbose, truth_path=None):
    if truth_path is None:
        truth_path = pcap[:-5] + ".truth.json" if pcap.endswith(".pcap") else pcap + ".truth.json"
    truth = json.load(open(truth_path))
    rep = Report(os.path.relpath(pcap, ROOT) if pcap.startswith(ROOT) else pcap, verbose)
    recs = [r for r in records(pcap, jsonl, binary) if is_h2(r)]
    by_key = {}
    for r in recs:
        key = (ep(r["client"]), ep(r["server"]), pick(r, "stream_id"))
        if key in by_key:
            rep.err("%s->%s stream %s" % key, "two records for one stream")
        by_key[key] = r
    seen = set()
    n_streams = n_exact = 0
    for c in truth["connections"]:
        for s in c["streams"]:
            n_streams += 1
            key = (c["client"], c["server"], s["stream_id"])
            seen.add(key)
            where = "%s->%s stream %d" % key
            r = by_key.get(key)
            if r is None:
                if s["complete"] or "recoverable" in s["encoding"].values():
                    rep.err(where, "no record (truth: %s %s -> %s)" % (s["method"], s["path"], s["status"]))
                else:
                    rep.warn(where, "no record; nothing of it is recoverable")
                continue
            before = rep.errors
            check_stream(rep, where, s, r)
            if rep.errors == before and s["complete"]:
                n_exact += 1
    for key, r in by_key.items():
        if key not in seen:
            rep.err("%s->%s stream %s" % key, "record for a stream the truth does not have "
                    "(%s %s)" % ((r.get("request") or {}).get("method"), (r.get("request") or {}).get("uri")))
    print("# %s: %d truth streams (%d complete, %d exact), %d HTTP/2 records, %d errors, %d warnings"
          % (rep.name, n_streams, sum(1 for c in truth["connections"] for s in c["streams"] if s["complete"]),
             n_exact, len(recs), rep.errors, rep.warnings))
    return rep.errors


def check_stream(rep, where, s, r):
    req = r.get("request") or {}
    resp = r.get("response") or {}
    flags = set(r.get("flags") or [])
    complete = s["complete"]

    def field(name, truth_v, got, how):
        if truth_v is None:
            if got not in (None, MISSING):
                rep.warn(where, "%s %r where the truth could not resolve it" % (name, got))
            return
        if complete or how == "recoverable":
            if got != truth_v:
                rep.err(where, "%s %r, truth %r" % (name, got, truth_v))
        elif got not in (None, MISSING) and got != truth_v:
            rep.err(where, "%s %r contradicts the truth %r" % (name, got, truth_v))
        elif got in (None, MISSING):
            rep.warn(where, "%s not recovered (truth %r, sent as a dynamic-table reference)" % (name, truth_v))

    enc = s["encoding"]
    field("method", s["method"], req.get("method"), enc["method"])
    field("uri", s["path"], req.get("uri"), enc["path"])
    field("status", s["status"], resp.get("status"), enc["status"])
    auth = pick(r, "authority")
    if auth is MISSING:
        rep.warn(where, "record carries no authority (truth %r)" % s["authority"])
    else:
        field("authority", s["authority"], auth, "recoverable" if complete else "unknown")
    for side, m, tkey, gkey in (("request", req, "request_body_len", "request_gap_bytes"),
                                ("response", resp, "response_body_len", "response_gap_bytes")):
        if not m:
            if complete and (side == "response" or s[tkey]):
                rep.err(where, "no %s in the record" % side)
            continue
        if s[gkey] == 0 and (complete or s["%s_end_stream" % side]):
            if m.get("body_len") != s[tkey]:
                rep.err(where, "%s.body_len %r, truth %r" % (side, m.get("body_len"), s[tkey]))
        if m.get("version") not in ("HTTP/2", None) and not (s["upgrade"] and side == "request"):
            rep.err(where, "%s.version %r" % (side, m.get("version")))
    if s["pushed"] != ("pushed" in flags):
        (rep.err if complete or s["pushed"] else rep.warn)(
            where, "pushed flag %s, truth %s" % ("pushed" in flags, s["pushed"]))
    codes = sorted(x["code"] for x in s["rst_streams"])
    if codes and "rst_stream" not in flags:
        rep.err(where, "no rst_stream flag (truth: RST_STREAM %s)" %
                ", ".join("%s by %s" % (x["name"], x["by"]) for x in s["rst_streams"]))
    if not codes and "rst_stream" in flags:
        rep.err(where, "rst_stream flag, but no RST_STREAM in the truth")
    code = pick(r, "rst_code")
    if codes and code not in (MISSING, None):
        names = [x["name"] for x in s["rst_streams"]]
        if code not in codes and code not in names:
            rep.err(where, "rst_stream code %r, truth %r" % (code, codes))
    if s["headers_partial"] and "headers_partial" not in flags:
        rep.warn(where, "truth has unresolved header fields; no headers_partial flag")
    if not s["headers_partial"] and "headers_partial" in flags and complete:
        rep.err(where, "headers_partial flag on a stream the truth decodes whole")
    tg = s["grpc"]
    g = pick(r, "grpc")
    if tg is None:
        if g not in (MISSING, None) and complete:
            rep.err(where, "grpc object on a stream that is not gRPC")
        return
    if g in (MISSING, None):
        (rep.err if complete else rep.warn)(where, "no grpc object (truth %s/%s %s)"
                                            % (tg["service"], tg["method"], tg["status_name"]))
        return
    exact = complete
    for k, tv in (("service", tg["service"]), ("method", tg["method"]), ("status", tg["status"]),
                  ("status_name", tg["status_name"]), ("message", tg["message"])):
        gv = g.get(k, MISSING)
        if k == "message" and tv is None and gv in ("", None):
            continue
        if tv is None:
            continue
        if gv != tv and (exact or gv not in (MISSING, None)):
            rep.err(where, "grpc.%s %r, truth %r" % (k, None if gv is MISSING else gv, tv))
    tenc = tg["response_encoding"] or tg["request_encoding"]
    genc = g.get("encoding", MISSING)
    if exact and tenc and genc is not MISSING and genc != tenc and not (isinstance(genc, dict)):
        rep.err(where, "grpc.encoding %r, truth %r" % (genc, tenc))
    for d, ck, sk in (("request_messages", "grpc_req", "grpc_req_sizes"),
                      ("response_messages", "grpc_resp", "grpc_resp_sizes")):
        tm = tg[d]
        if tm is None:
            continue
        gc, gs = pick(g, ck), pick(g, sk)
        if gc is MISSING:
            if exact:
                rep.err(where, "grpc %s count missing (truth %d)" % (d, tm["count"]))
            continue
        if gc != tm["count"] and (exact or not tm["trailing_bytes"]):
            rep.err(where, "grpc %s count %r, truth %d" % (d, gc, tm["count"]))
        if gs is not MISSING and exact and list(gs) != tm["sizes"][:len(gs)]:
            rep.err(where, "grpc %s sizes %r, truth %r" % (d, gs, tm["sizes"]))


def ideal_records(truth):
    """The records a parser that gets exactly what the truth knows would write (self-test)."""
    out = []
    for c in truth["connections"]:
        for s in c["streams"]:
            def peer(e):
                ip, port = e.rsplit(":", 1)
                return {"ip": ip.strip("[]"), "port": int(port)}
            flags = [f for f, on in (("pushed", s["pushed"]), ("rst_stream", s["rst_streams"]),
                                     ("headers_partial", s["headers_partial"])) if on]
            r = {"client": peer(c["client"]), "server": peer(c["server"]), "stream_id": s["stream_id"],
                 "request": {"method": s["method"], "uri": s["path"], "authority": s["authority"],
                             "version": "HTTP/1.1" if s["upgrade"] else "HTTP/2",
                             "body_len": s["request_body_len"]},
                 "response": {"status": s["status"], "version": "HTTP/2",
                              "body_len": s["response_body_len"]},
                 "flags": flags}
            g = s["grpc"]
            if g is not None:
                r["grpc"] = {k: g[k] for k in ("service", "method", "status", "status_name", "message")}
                r["grpc"]["encoding"] = g["response_encoding"] or g["request_encoding"]
                for d, k in (("request", "request_messages"), ("response", "response_messages")):
                    if g[k] is not None:
                        r["grpc"][d] = {"count": g[k]["count"], "sizes": g[k]["sizes"]}
            out.append(r)
    return out


def self_test():
    """The checker must pass a parser that matches the truth and fail one that does not:
    for every truth file, the ideal records pass; with one field broken, or one record
    added twice or invented, the check fails."""
    import contextlib
    import copy
    import io
    import tempfile
    truths = []
    for d in ("plain", "faults", "vxlan", "public"):
        p = os.path.join(HERE, d)
        if os.path.isdir(p):
            truths += sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith(".truth.json"))
    breakages = [
        ("status", lambda r: r["response"].__setitem__("status", 599)),
        ("uri", lambda r: r["request"].__setitem__("uri", "/wrong")),
        ("response body_len", lambda r: r["response"].__setitem__("body_len", r["response"]["body_len"] + 1)),
        ("rst flag dropped", lambda r: r["flags"].remove("rst_stream") if "rst_stream" in r["flags"]
         else r["flags"].append("rst_stream")),
        ("grpc status", lambda r: r.get("grpc") and r["grpc"].__setitem__("status", 99)),
        ("grpc response count", lambda r: r.get("grpc") and r["grpc"].get("response")
         and r["grpc"]["response"].__setitem__("count", r["grpc"]["response"]["count"] + 1)),
    ]
    failed = checks = 0
    with tempfile.TemporaryDirectory() as tmp:
        jl = os.path.join(tmp, "r.jsonl")

        def run(recs, tp):
            nonlocal checks
            checks += 1
            with open(jl, "w") as f:
                f.write("".join(json.dumps(r) + "\n" for r in recs))
            with contextlib.redirect_stdout(io.StringIO()):
                return check_file(tp, jl, None, False, tp)
        for tp in truths:
            truth = json.load(open(tp))
            ideal = ideal_records(truth)
            if run(ideal, tp):
                print("self-test: ideal records fail %s" % tp)
                failed += 1
            complete = [i for i, r in enumerate(ideal) if any(
                s["complete"] and s["stream_id"] == r["stream_id"] for c in truth["connections"]
                for s in c["streams"])]
            for name, brk in breakages:
                for i in complete:
                    recs = copy.deepcopy(ideal)
                    before = json.dumps(recs[i], sort_keys=True)
                    brk(recs[i])
                    if json.dumps(recs[i], sort_keys=True) == before:
                        continue  # not applicable to this stream (no gRPC, ...)
                    if not run(recs, tp):
                        print("self-test: %s broken on record %d passes %s" % (name, i, tp))
                        failed += 1
                    break
            if ideal:
                if not run(ideal + [ideal[0]], tp):
                    print("self-test: a duplicate record passes %s" % tp)
                    failed += 1
                ghost = copy.deepcopy(ideal[0])
                ghost["stream_id"] = 100001
                if not run(ideal + [ghost], tp):
                    print("self-test: an invented stream passes %s" % tp)
                    failed += 1
                if any(s["complete"] for c in truth["connections"] for s in c["streams"]) \
                        and not run(ideal[1:], tp) and truth["connections"][0]["streams"][0]["complete"]:
                    print("self-test: a missing record passes %s" % tp)
                    failed += 1
    print("# self-test: %d truth files, %d checks, %d failures" % (len(truths), checks, failed))
    return 1 if failed else 0


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        return self_test()
    binary = jsonl = None
    verbose = False
    files = []
    while args:
        a = args.pop(0)
        if a == "--vxtap":
            binary = args.pop(0)
        elif a == "--jsonl":
            jsonl = args.pop(0)
        elif a == "-v":
            verbose = True
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            files.append(os.path.abspath(a))
    if jsonl and len(files) != 1:
        raise SystemExit("--jsonl goes with exactly one capture")
    pairs = [(f, None) for f in files]
    if not files:
        for d in ("plain", "faults", "vxlan"):
            p = os.path.join(HERE, d)
            if os.path.isdir(p):
                pairs += sorted((os.path.join(p, f), None) for f in os.listdir(p) if f.endswith(".pcap"))
        # Public captures, when ../shared is there (never copied into the repository).
        pub = os.path.join(HERE, "public")
        shared = os.environ.get("SHARED") or os.path.join(ROOT, "..", "shared")
        if not os.path.isdir(shared):
            shared = "/work/shared"
        if os.path.isdir(pub):
            for t in sorted(os.listdir(pub)):
                tp = os.path.join(pub, t)
                cap = os.path.join(shared, "pcaps", "public", json.load(open(tp))["file"])
                if os.path.exists(cap):
                    pairs.append((cap, tp))
    binary = None if jsonl else vxtap_bin(binary)
    errors = 0
    for f, t in pairs:
        errors += check_file(f, jsonl, binary, verbose, t)
    print("# total: %d errors in %d captures" % (errors, len(pairs)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
