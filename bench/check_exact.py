#!/usr/bin/env python3
"""Checks vxtap's JSON lines against the generator's manifest (gen_vxlan_http.py --manifest).

    python3 bench/check_exact.py W.pcap.manifest.tsv OUT.jsonl

An exchange is exact when vxtap emitted it once, paired with its own response, with the
manifest's VNI, method, URI, status and body lengths (a chunked body is counted without its
framing by vxtap and with it by the manifest, so only "shorter, by a little" is checked), and
without a damage flag. Exchanges the manifest marks as touched by a drop are counted apart:
they must be flagged or unpaired, never paired with another request's response. Exits 1 when
an untouched exchange is not exact or anything is mis-paired.
"""
import json
import sys

DAMAGE = {"gap", "incomplete", "no_response", "no_request"}


def main(manifest_path, output_path):
    want = {}
    with open(manifest_path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(header, line.rstrip("\n").split("\t")))
            want[(r["client_ip"], r["client_port"], r["uri"])] = r
    seen = {}
    mispaired = []
    with open(output_path) as f:
        for line in f:
            ex = json.loads(line)
            req, resp = ex.get("request"), ex.get("response")
            if req is None:
                continue
            key = (ex["client"]["ip"], str(ex["client"]["port"]), req.get("uri"))
            seen.setdefault(key, []).append(ex)
            w = want.get(key)
            if w and resp is not None and str(resp.get("status")) != w["status"]:
                mispaired.append(key)
    intact = exact = unpaired = 0
    bad = []
    for key, w in want.items():
        if w["req_seg_dropped"] != "0" or w["resp_seg_dropped"] != "0":
            continue
        intact += 1
        got = seen.get(key, [])
        if len(got) != 1:
            bad.append((key, f"emitted {len(got)} times"))
            continue
        ex = got[0]
        req, resp = ex["request"], ex["response"]
        if resp is None:
            unpaired += 1
            bad.append((key, "no response"))
            continue
        flags = set(ex.get("flags", []))
        problems = []
        if str(ex.get("vni")) != w["vni"]:
            problems.append(f"vni {ex.get('vni')}")
        if req.get("method") != w["method"]:
            problems.append(f"method {req.get('method')}")
        if str(req.get("body_len")) != w["req_body_len"]:
            problems.append(f"request body {req.get('body_len')}")
        body = resp.get("body_len") or 0
        framed = int(w["resp_body_len"])
        if w["chunked"] == "1":
            if not (body < framed and body + framed // 16 + 64 > framed):
                problems.append(f"chunked body {body} vs framed {framed}")
        elif body != framed:
            problems.append(f"response body {body}")
        if flags & DAMAGE:
            problems.append(f"flags {sorted(flags & DAMAGE)}")
        if problems:
            bad.append((key, ", ".join(problems)))
        else:
            exact += 1
    print(
        f"manifest {len(want)} exchanges, untouched by drops {intact}: exact {exact}, "
        f"unpaired {unpaired}, other problems {len(bad) - unpaired}; mis-paired {len(mispaired)}"
    )
    for key, why in bad[:10]:
        print(f"  not exact: {key}: {why}")
    for key in mispaired[:10]:
        print(f"  MIS-PAIRED: {key}")
    return 0 if exact == intact and not mispaired else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
