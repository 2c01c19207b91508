#!/usr/bin/env python3
"""The gRPC client of the HTTP/2 fixtures: calls vxtap.test.Echo (echo.proto) on grpcio.

    python3 client.py HOST:PORT SCENARIO LOG.jsonl

SCENARIO is `calls` (every call kind on one channel, so one TCP connection carries all
streams, a few of them concurrently), `stream` (one long server stream, for the loss
and mid-stream variants) or `bigframes` (both sides negotiate 1 MiB frames; use with a
server started with MAX_FRAME_SIZE). Every call is logged as one JSON line (method, message sizes per
direction, the status code and details the client saw): the client's half of the ground
truth in pcaps/h2/. Calls run in a fixed order so the stream ids are the same every run.
"""
import json
import sys
from concurrent import futures

import grpc

import echo_pb

SERVICE = "/vxtap.test.Echo/"
ident = dict(request_serializer=None, response_deserializer=None)


class Log:
    def __init__(self, path):
        self.path = path

    def call(self, method, reqs, fn):
        entry = {"side": "client", "method": SERVICE + method,
                 "req_sizes": [len(r) for r in reqs], "resp_sizes": []}
        try:
            out = fn()
            if isinstance(out, (bytes, bytearray)):
                out = [out]
            for r in out:
                entry["resp_sizes"].append(len(r))
            entry["status"] = "OK"
        except grpc.RpcError as e:
            entry["status"] = e.code().name
            entry["message"] = e.details()
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")


def calls(ch, log):
    unary = ch.unary_unary(SERVICE + "Unary", **ident)
    sstream = ch.unary_stream(SERVICE + "ServerStream", **ident)
    cstream = ch.stream_unary(SERVICE + "ClientStream", **ident)
    bidi = ch.stream_stream(SERVICE + "Bidi", **ident)
    failing = ch.unary_unary(SERVICE + "Fail", **ident)
    slow = ch.unary_unary(SERVICE + "Slow", **ident)

    r = echo_pb.request("hello", size=10)
    log.call("Unary", [r], lambda: unary(r, timeout=10))
    # A reply larger than a DATA frame (16 KiB) and than the initial 64 KiB window.
    r = echo_pb.request("big", size=70000)
    log.call("Unary", [r], lambda: unary(r, timeout=10))
    r = echo_pb.request("stream", count=5, size=300)
    log.call("ServerStream", [r], lambda: list(sstream(r, timeout=10)))
    reqs = [echo_pb.request("part%d" % i, size=i) for i in range(4)]
    log.call("ClientStream", reqs, lambda: cstream(iter(reqs), timeout=10))
    reqs = [echo_pb.request("ping%d" % i, size=50 * i) for i in range(3)]
    log.call("Bidi", reqs, lambda: list(bidi(iter(reqs), timeout=10)))
    r = echo_pb.request("nope")
    log.call("Fail", [r], lambda: failing(r, timeout=10))
    # Deadline exceeded: the server sleeps 1.5 s, the client gives up after 0.3 s.
    r = echo_pb.request("slow", delay_ms=1500)
    log.call("Slow", [r], lambda: slow(r, timeout=0.3))
    # Compressed both ways: the client compresses its message, the server its replies.
    r = echo_pb.request("gzip-unary", size=3000)
    log.call("Unary", [r], lambda: unary(r, timeout=10, compression=grpc.Compression.Gzip))
    r = echo_pb.request("gzip-stream", count=3, size=2000)
    log.call("ServerStream", [r],
             lambda: list(sstream(r, timeout=10, compression=grpc.Compression.Gzip)))

    # A cancelled server stream: the client reads two replies and cancels (RST_STREAM).
    r = echo_pb.request("cancel-me", count=50, size=200, delay_ms=50)
    entry = {"side": "client", "method": SERVICE + "ServerStream", "req_sizes": [len(r)],
             "resp_sizes": []}
    it = sstream(r, timeout=10)
    for reply in it:
        entry["resp_sizes"].append(len(reply))
        if len(entry["resp_sizes"]) == 2:
            it.cancel()
            break
    try:
        next(it)
    except grpc.RpcError as e:
        entry["status"], entry["message"] = e.code().name, e.details()
    except StopIteration:
        entry["status"] = "OK"
    with open(log.path, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")

    # Three unary calls in flight at once: their frames interleave on the connection.
    reqs = [echo_pb.request("conc%d" % i, size=6000 + 1000 * i) for i in range(3)]
    with futures.ThreadPoolExecutor(3) as pool:
        futs = [unary.future(q, timeout=10) for q in reqs]
        for q, fu in zip(reqs, futs):
            log.call("Unary", [q], fu.result)


def stream(ch, log):
    sstream = ch.unary_stream(SERVICE + "ServerStream", **ident)
    unary = ch.unary_unary(SERVICE + "Unary", **ident)
    r = echo_pb.request("first", size=100)
    log.call("Unary", [r], lambda: unary(r, timeout=10))
    r = echo_pb.request("long", count=8, size=3000, delay_ms=100)
    log.call("ServerStream", [r], lambda: list(sstream(r, timeout=20)))
    r = echo_pb.request("after", size=100)
    log.call("Unary", [r], lambda: unary(r, timeout=10))


def bigframes(ch, log):
    # Both sides announce SETTINGS_MAX_FRAME_SIZE 1 MiB: messages go as DATA frames larger
    # than 16384 bytes, legal because they were negotiated.
    unary = ch.unary_unary(SERVICE + "Unary", **ident)
    bidi = ch.stream_stream(SERVICE + "Bidi", **ident)
    r = echo_pb.request("bigframe", size=18000)
    log.call("Unary", [r], lambda: unary(r, timeout=10))
    reqs = [echo_pb.request("b" * 17000)]
    log.call("Bidi", reqs, lambda: list(bidi(iter(reqs), timeout=10)))


def main():
    target, scenario, path = sys.argv[1:4]
    opts = [("grpc.enable_http_proxy", 0)]
    if scenario == "bigframes":
        opts.append(("grpc.http2.max_frame_size", 1 << 20))
    with grpc.insecure_channel(target, options=opts) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        {"calls": calls, "stream": stream, "bigframes": bigframes}[scenario](ch, Log(path))


if __name__ == "__main__":
    main()
