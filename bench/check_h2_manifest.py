#!/usr/bin/env python3
"""Checks vxtap's HTTP/2 records against the manifest of bench/gen_h2_grpc.py.

    python3 bench/check_h2_manifest.py OUT.manifest.tsv replay.jsonl

Each manifest row is one stream; the record is found by (client ip, client port, stream id)
and its method, path, status, request/response body lengths, and for gRPC status and message
counts compared (field locations as pcaps/h2/check.py reads them). Prints the counts of exact,
wrong and missing streams and of records with no row; exit 1 unless every stream is exact.
"""
import csv
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pcaps", "h2"))
import check  # noqa: E402


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    recs = {}
    for line in open(sys.argv[2]):
        r = json.loads(line)
        if not check.is_h2(r):
            continue
        recs[(r["client"]["ip"], r["client"]["port"], check.pick(r, "stream_id"))] = r
    exact = wrong = missing = 0
    shown = 0
    for row in rows:
        key = (row["client_ip"], int(row["client_port"]), int(row["stream_id"]))
        r = recs.pop(key, None)
        if r is None:
            missing += 1
            continue
        req, resp = r.get("request") or {}, r.get("response") or {}
        want = [("method", row["method"], req.get("method")), ("uri", row["path"], req.get("uri")),
                ("status", int(row["status"]), resp.get("status")),
                ("request.body_len", int(row["req_body_len"]), req.get("body_len")),
                ("response.body_len", int(row["resp_body_len"]), resp.get("body_len"))]
        if row["kind"] == "grpc":
            g = check.pick(r, "grpc")
            g = g if isinstance(g, dict) else {}
            want += [("grpc.status", int(row["grpc_status"]), g.get("status")),
                     ("grpc request messages", int(row["grpc_req_msgs"]), check.pick(g, "grpc_req")),
                     ("grpc response messages", int(row["grpc_resp_msgs"]), check.pick(g, "grpc_resp"))]
        bad = [(k, a, b) for k, a, b in want if a != b]
        if bad:
            wrong += 1
            if shown < 10:
                shown += 1
                print("wrong: %s stream %s: %s" % (key[:2], key[2], "; ".join(
                    "%s %r, expected %r" % (k, None if b is check.MISSING else b, a) for k, a, b in bad)))
        else:
            exact += 1
    print("HTTP/2 streams: %d exact, %d wrong, %d missing of %d; %d records with no manifest row"
          % (exact, wrong, missing, len(rows), len(recs)))
    return 0 if exact == len(rows) and not recs else 1


if __name__ == "__main__":
    sys.exit(main())
