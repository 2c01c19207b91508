#!/usr/bin/env python3
"""The gRPC server of the HTTP/2 fixtures: vxtap.test.Echo (echo.proto) on grpcio.

    python3 server.py ADDRESS:PORT LOG.jsonl [MAX_FRAME_SIZE]

Generic handlers over raw bytes (messages encoded by echo_pb.py), so no generated stubs are
needed. Every finished call is logged as one JSON line (method, messages and their sizes in
each direction, status, compression): the server's half of the ground truth in pcaps/h2/.
"""
import json
import sys
import threading
import time
from concurrent import futures

import grpc

import echo_pb

SERVICE = "vxtap.test.Echo"
LOG_LOCK = threading.Lock()


def log(entry):
    with LOG_LOCK, open(sys.argv[2], "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def pad(n, text):
    # Text-like padding: compresses well under gzip.
    unit = ("%s the quick brown fox jumps over the lazy dog. " % text).encode()
    return (unit * (n // len(unit) + 1))[:n]


class Call:
    def __init__(self, method, context):
        self.entry = {"side": "server", "method": "/%s/%s" % (SERVICE, method),
                      "req_sizes": [], "resp_sizes": [], "status": "OK"}
        self.context = context

    def got(self, raw):
        self.entry["req_sizes"].append(len(raw))
        return echo_pb.parse_request(raw)

    def send(self, msg):
        self.entry["resp_sizes"].append(len(msg))
        return msg

    def done(self, status="OK", message=None):
        self.entry["status"] = status
        if message is not None:
            self.entry["message"] = message
        log(self.entry)


def compress_if_asked(req, context, call):
    if req["text"].startswith("gzip"):
        context.set_compression(grpc.Compression.Gzip)
        call.entry["compression"] = "gzip"


def unary(raw, context):
    c = Call("Unary", context)
    req = c.got(raw)
    compress_if_asked(req, context, c)
    out = c.send(echo_pb.reply(req["text"], 0, pad(req["size"], req["text"])))
    c.done()
    return out


def server_stream(raw, context):
    c = Call("ServerStream", context)
    req = c.got(raw)
    compress_if_asked(req, context, c)
    try:
        for i in range(req["count"]):
            if req["delay_ms"]:
                time.sleep(req["delay_ms"] / 1000)
            if not context.is_active():
                c.done("CANCELLED")
                return
            yield c.send(echo_pb.reply(req["text"], i, pad(req["size"] + 100 * i, req["text"])))
    except Exception:  # noqa: BLE001 - the client went away mid-stream
        c.done("CANCELLED")
        raise
    c.done()


def client_stream(it, context):
    c = Call("ClientStream", context)
    texts = [c.got(raw)["text"] for raw in it]
    out = c.send(echo_pb.reply("+".join(texts), 0, b""))
    c.done()
    return out


def bidi(it, context):
    c = Call("Bidi", context)
    for raw in it:
        req = c.got(raw)
        yield c.send(echo_pb.reply(req["text"].upper(), len(c.entry["resp_sizes"]),
                                   pad(req["size"], req["text"])))
    c.done()


FAIL_MESSAGE = "bad input: 100% wrong, caf\u00e9 \"quoted\"\nsecond line"


def fail(raw, context):
    c = Call("Fail", context)
    c.got(raw)
    c.done("INVALID_ARGUMENT", FAIL_MESSAGE)
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, FAIL_MESSAGE)


def slow(raw, context):
    c = Call("Slow", context)
    req = c.got(raw)
    time.sleep(req["delay_ms"] / 1000)
    if not context.is_active():
        c.done("DEADLINE_EXCEEDED (client gone)")
        return echo_pb.reply("late")
    out = c.send(echo_pb.reply("late", 0, b""))
    c.done()
    return out


def main():
    ident = dict(request_deserializer=None, response_serializer=None)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, **ident),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, **ident),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, **ident),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, **ident),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, **ident),
        "Slow": grpc.unary_unary_rpc_method_handler(slow, **ident),
    }
    # argv[3] (optional): SETTINGS_MAX_FRAME_SIZE to announce, so that peers may send DATA
    # frames larger than the default 16384 bytes (the big-frames fixture).
    opts = [("grpc.http2.max_frame_size", int(sys.argv[3]))] if len(sys.argv) > 3 else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=opts)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(sys.argv[1])
    server.start()
    print("listening", sys.argv[1], flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
