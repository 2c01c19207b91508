#!/usr/bin/env python3
"""Ground truth of HTTP/2 and gRPC captures, one record per stream (standard library only).

    python3 h2truth.py FILE.pcap [...]            # JSON, one object per file, to stdout
    python3 h2truth.py --frames FILE.pcap         # every frame, for debugging and h2fault.py
    python3 h2truth.py --tsv F.truth.json [...]    # one summary row per stream
    python3 h2truth.py --compare CLEAN.json VARIANT.json        # a fault variant's known
    python3 h2truth.py --compare-exact CLEAN.json VARIANT.json  # fields agree with the clean

An independent reading of the capture (pcap reading, VXLAN and TCP reassembly from
expected.py; frames and HPACK from h2lib.py, both written from the RFCs, not from vxtap):
  - each TCP connection is reassembled per direction by sequence number (the first copy of
    a byte wins; a hole never filled is a hole, with its length known from the sequence
    numbers);
  - HTTP/2 is recognised by the client preface, by an HTTP/1.1 `Upgrade: h2c` request
    answered with 101 (the request is stream 1), or, with neither, by a chain of plausible
    frame headers (a capture that starts mid-connection);
  - frames are parsed in order; a header block is decoded with HPACK (h2lib.Decoder, which
    keeps going without the dynamic table); a header block that lost bytes to a hole is
    lost (and the dynamic table becomes partly unknown); a hole over a frame header loses
    the framing until a chain of plausible frame headers is found after it.

A stream is an exchange when its request headers (HEADERS, PUSH_PROMISE or the upgrade
request) or its response headers were seen; streams that carried only PRIORITY are not.
For each: stream_id, method, path, authority, scheme, status, body lengths (DATA payload
minus padding), trailers, pushed, RST_STREAM (code and sender), GOAWAY, and for gRPC
(content-type application/grpc*) service, method, status (trailers, Trailers-Only, or the
RST_STREAM code as gRPC maps it), message, encoding and the length-prefixed messages per
direction. `recoverable` says for method, path and status whether the field was sent as a
static-table or literal field (a decoder without the dynamic table still gets it);
`known` says whether this capture let the oracle resolve it at all.
"""
import json
import os
import struct
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import expected  # noqa: E402
import h2lib  # noqa: E402

SERVER_PORTS = {80, 443, 3000, 8000, 8080, 8081, 8082, 50051, 50052}  # for mid-stream captures

# gRPC's mapping of RST_STREAM codes to status codes (grpc/doc/PROTOCOL-HTTP2.md, "Errors").
GRPC_FROM_RST = {0: 13, 1: 13, 2: 13, 3: 13, 4: 13, 6: 13, 7: 14, 8: 1, 9: 13, 10: 13,
                 11: 8, 12: 7}
GRPC_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
              "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
              "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
              "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]


# ---------------------------------------------------------------- capture -> connections

class Half:
    def __init__(self):
        self.isn = None
        self.segs = {}  # rel seq -> [bytes, pkt idx, ts]
        self.syn = False


def connections(path):
    conns, order = {}, []
    for idx, ts, lt, pkt, _ in expected.read_pcap(path):
        if lt in (0, 108):  # BSD loopback: a 4-byte address family, then IP
            l3 = pkt[4:]
            v = l3[0] >> 4 if l3 else 0
            et = b"\x08\x00" if v == 4 else (b"\x86\xdd" if v == 6 else None)
        else:
            et, l3 = expected.l3_from_link(lt, pkt)
        if et is None:
            continue
        r = expected.ip_tcp(et, l3)
        if r is None:
            continue
        src, dst, tcp = r
        if len(tcp) < 20:
            continue
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        flags = tcp[13]
        payload = tcp[(tcp[12] >> 4) * 4:]
        a, b = (src, sport), (dst, dport)
        key = (min(a, b), max(a, b))
        c = conns.get(key)
        syn = flags & 0x02 and not flags & 0x10
        if c is None or (syn and c["closed"] and c["halves"][a].isn != seq):
            if syn:
                client = a
            elif sport in SERVER_PORTS and dport not in SERVER_PORTS:
                client = b
            elif dport in SERVER_PORTS and sport not in SERVER_PORTS:
                client = a
            else:
                client = a if dport < sport else b
            c = {"client": client, "halves": {a: Half(), b: Half()}, "first": idx,
                 "closed": False, "syn": bool(syn)}
            conns[key] = c
            order.append(c)
        h = c["halves"][a]
        if flags & 0x02:
            h.isn, h.syn = seq, True
        if h.isn is None:
            h.isn = (seq - 1) & 0xFFFFFFFF
        rel = 0 if flags & 0x02 else (seq - h.isn - 1) & 0xFFFFFFFF
        if payload:
            old = h.segs.get(rel)
            if old is None:
                h.segs[rel] = [payload, idx, ts]
            elif len(payload) > len(old[0]):
                old[0] = old[0] + payload[len(old[0]):]
        if flags & 0x05:
            c["closed"] = True
    return order


class Stream:
    """A direction's bytes with the holes the capture left (offsets in stream bytes)."""

    def __init__(self, half):
        self.buf = bytearray()
        self.holes = []  # (start, end)
        self.marks = []  # (offset, pkt idx, ts)
        pos = 0
        for rel in sorted(half.segs):
            data, idx, ts = half.segs[rel]
            end = rel + len(data)
            if end <= pos:
                continue
            if rel > pos:
                self.holes.append((pos, rel))
                self.buf += b"\0" * (rel - pos)
                pos = rel
            self.marks.append((len(self.buf), idx, ts))
            self.buf += data[pos - rel:]
            pos = end

    def hole_in(self, start, end):
        """Bytes of [start, end) that the capture does not have (past the end counts)."""
        n = max(0, end - len(self.buf))
        for a, b in self.holes:
            lo, hi = max(a, start), min(b, end)
            if lo < hi:
                n += hi - lo
        return n

    def next_hole_end(self, start):
        for a, b in self.holes:
            if b > start:
                return max(b, start)
        return None

    def pkt_at(self, off):
        best = self.marks[0] if self.marks else (0, 0, 0.0)
        for m in self.marks:
            if m[0] <= off:
                best = m
            else:
                break
        return best[1], best[2]


# ---------------------------------------------------------------- frames

def resync(s, pos):
    """First offset >= pos where two plausible frame headers follow each other (or one
    ends exactly at the end of the data) without touching a hole."""
    buf = s.buf
    end = len(buf)
    while pos + 9 <= end:
        if s.hole_in(pos, pos + 9):
            nxt = s.next_hole_end(pos)
            if nxt is None or nxt <= pos:
                return None
            pos = nxt
            continue
        if h2lib.plausible_frame(buf, pos):
            length = int.from_bytes(buf[pos:pos + 3], "big")
            nxt = pos + 9 + length
            if nxt == end or (nxt + 9 <= end and not s.hole_in(nxt, nxt + 9)
                              and h2lib.plausible_frame(buf, nxt)):
                return pos
        pos += 1
    return None


def frames(s, pos, synced):
    """Yields (offset, length, type, flags, sid, payload, lost) where lost is the number of
    payload bytes in holes; on a hole over a header, resynchronises."""
    buf = s.buf
    if not synced:
        pos = resync(s, pos)
    while pos is not None and pos + 9 <= len(buf):
        if s.hole_in(pos, pos + 9):
            yield (pos, None, None, None, None, None, None)  # framing lost here
            pos = resync(s, pos)
            continue
        length, ftype, flags, sid = h2lib.parse_frame_header(buf, pos)
        if length > (1 << 24) - 1:
            return
        end = pos + 9 + length
        lost = s.hole_in(pos + 9, end)
        yield (pos, length, ftype, flags, sid, bytes(buf[pos + 9:end]), lost)
        pos = end


def strip_padding(ftype, flags, payload):
    """Returns (fragment, pad_len, priority) for DATA/HEADERS/PUSH_PROMISE payloads."""
    pad = 0
    body = payload
    if flags & 0x08 and ftype in (0, 1, 5):
        pad = body[0]
        body = body[1:len(body) - pad] if pad else body[1:]
    prio = None
    if ftype == 1 and flags & 0x20:
        prio, body = body[:5], body[5:]
    return body, pad, prio


# ---------------------------------------------------------------- exchanges

def new_stream(sid):
    return {"stream_id": sid, "req_fields": None, "resp_fields": None, "interim": [],
            "req_trailers": None, "resp_trailers": None, "req_body": 0, "resp_body": 0,
            "req_body_lost": 0, "resp_body_lost": 0, "req_data": bytearray(),
            "resp_data": bytearray(), "req_data_gap": False, "resp_data_gap": False,
            "req_end": False, "resp_end": False, "rst": None, "rsts": [], "pushed": False,
            "promised_on": None, "headers_lost": {"request": False, "response": False},
            "upgrade": False, "req_frames": 0, "resp_frames": 0, "padded": False,
            "continuation": False, "first_pkt": None}


class Conn:
    def __init__(self, c):
        self.c = c
        self.client = c["client"]
        self.server = [k for k in c["halves"] if k != self.client][0]
        self.cs = Stream(c["halves"][self.client])
        self.ss = Stream(c["halves"][self.server])
        self.streams = {}
        self.goaway = []
        self.notes = []
        self.frame_log = []
        self.mode = None
        self.framing_lost = {"client": 0, "server": 0}

    def stream(self, sid):
        st = self.streams.get(sid)
        if st is None:
            st = self.streams[sid] = new_stream(sid)
        return st

    def detect(self):
        """Returns (client start, server start, client synced, server synced) or None."""
        cb, sb = self.cs.buf, self.ss.buf
        if cb.startswith(h2lib.PREFACE) and not self.cs.hole_in(0, 24):
            self.mode = "prior-knowledge"
            return 24, 0, True, True
        head = expected.parse_head(bytes(cb[:65536]), 0) if cb else None
        if head and b"h2c" in bytes(cb[:head[2]]).lower():
            line, headers, body_at = head
            resp = expected.parse_head(bytes(sb[:65536]), 0) if sb else None
            if resp and resp[0].split(" ")[1:2] == ["101"]:
                self.mode = "upgrade"
                method, uri, _ = line.split(" ", 2)
                clen = int(expected.hget(headers, "content-length") or 0)
                st = self.stream(1)
                st["upgrade"] = True
                st["req_fields"] = [h2lib.Field(":method", method, "http1", "", False),
                                    h2lib.Field(":path", uri, "http1", "", False)]
                st["req_fields"] += [h2lib.Field(k, v, "http1", "", False) for k, v in headers]
                st["req_body"] = clen
                st["req_end"] = True
                st["first_pkt"] = self.cs.pkt_at(0)[0]
                cpos = body_at + clen
                if cb[cpos:cpos + 24] == h2lib.PREFACE:
                    cpos += 24
                return cpos, resp[2], True, True
            return None
        # Mid-stream: neither preface nor upgrade in view.
        if resync(self.cs, 0) is not None or resync(self.ss, 0) is not None:
            self.mode = "midstream"
            return 0, 0, False, False
        return None

    def run(self):
        d = self.detect()
        if d is None:
            return False
        cpos, spos, csync, ssync = d
        known = self.mode != "midstream"
        self.dec = {"client": h2lib.Decoder(known=known), "server": h2lib.Decoder(known=known)}
        lists = []
        for side, s, pos, sync in (("client", self.cs, cpos, csync), ("server", self.ss, spos, ssync)):
            lists.append([(s.pkt_at(f[0])[0], side, f) for f in frames(s, pos, sync)])
        # Each direction in byte order; the two interleaved by the packet that carried each
        # frame's first byte (a merge, not a sort: a reordered capture must not reorder a
        # direction's frames), so that a PUSH_PROMISE comes before the pushed response.
        self.pending = {"client": None, "server": None}  # open header block
        a, b = lists
        i = j = 0
        while i < len(a) or j < len(b):
            if j >= len(b) or (i < len(a) and a[i][0] <= b[j][0]):
                pkt, side, f = a[i]
                i += 1
            else:
                pkt, side, f = b[j]
                j += 1
            self.frame(side, pkt, f)
        return True

    def frame(self, side, pkt, f):
        off, length, ftype, flags, sid, payload, lost = f
        self.frame_log.append({"side": side, "offset": off, "pkt": pkt,
                               "type": h2lib.FRAME_TYPES.get(ftype, ftype) if ftype is not None else "LOST",
                               "length": length, "flags": flags, "stream_id": sid,
                               "lost": lost})
        dec = self.dec[side]
        if ftype is None:
            self.framing_lost[side] += 1
            if self.pending[side] is not None:
                self.end_block(side, lost=True)
            # Any header block may have been in the lost bytes.
            dec.forget()
            return
        pend = self.pending[side]
        if pend is not None and ftype != 9:
            self.notes.append("%s: header block of stream %d unterminated" % (side, pend["sid"]))
            self.end_block(side, lost=True)
            pend = None
        if ftype in (1, 5):
            st = self.stream(sid)
            if st["first_pkt"] is None:
                st["first_pkt"] = pkt
            if lost:
                frag, promised = b"", None
            else:
                frag, pad, _ = strip_padding(ftype, flags, payload)
                st["padded"] |= bool(flags & 0x08)
                promised = None
                if ftype == 5:
                    promised = struct.unpack("!I", frag[:4])[0] & 0x7FFFFFFF
                    frag = frag[4:]
            self.pending[side] = {"sid": sid, "type": ftype, "flags": flags, "frag": bytearray(frag),
                                  "lost": bool(lost), "promised": promised}
            if flags & 0x04:
                self.end_block(side, lost=bool(lost))
            return
        if ftype == 9:
            if pend is None or pend["sid"] != sid:
                self.notes.append("%s: CONTINUATION without a header block (stream %s)" % (side, sid))
                dec.forget()
                return
            self.stream(pend["sid"])["continuation"] = True
            pend["frag"] += payload if not lost else b""
            pend["lost"] |= bool(lost)
            if flags & 0x04:
                self.end_block(side, lost=pend["lost"])
            return
        if ftype == 0:
            st = self.stream(sid)
            if st["first_pkt"] is None:
                st["first_pkt"] = pkt
            pre = "req" if side == "client" else "resp"
            st[pre + "_frames"] += 1
            if lost:
                # The pad length byte may be in the hole: count the whole payload.
                st[pre + "_body"] += length
                st[pre + "_body_lost"] += lost
                st[pre + "_data_gap"] = True
            else:
                body, pad, _ = strip_padding(0, flags, payload)
                st["padded"] |= bool(flags & 0x08)
                st[pre + "_body"] += len(body)
                st[pre + "_data"] += body
            if flags & 0x01:
                st[pre + "_end"] = True
            return
        if ftype == 3 and not lost and length == 4:
            st = self.stream(sid)
            code = struct.unpack("!I", payload)[0]
            rst = {"code": code, "name": h2lib.ERROR_CODES.get(code, str(code)), "by": side}
            st["rsts"].append(rst)
            if st["rst"] is None:
                st["rst"] = rst
            return
        if ftype == 7 and not lost and length >= 8:
            last, code = struct.unpack("!II", payload[:8])
            self.goaway.append({"by": side, "last_stream_id": last & 0x7FFFFFFF, "code": code,
                                "name": h2lib.ERROR_CODES.get(code, str(code)),
                                "debug": payload[8:].decode("latin-1")})
            return
        if ftype == 4 and not lost and not flags & 1:
            for i in range(0, length - length % 6, 6):
                ident, value = struct.unpack("!HI", payload[i:i + 6])
                if ident == 1:
                    # The peer's HEADER_TABLE_SIZE bounds the encoder on the other side;
                    # the encoder announces its choice with a size update, so nothing here.
                    pass

    def end_block(self, side, lost):
        pend = self.pending[side]
        self.pending[side] = None
        dec = self.dec[side]
        sid, ftype, flags = pend["sid"], pend["type"], pend["flags"]
        if lost:
            dec.forget()
            fields = None
        else:
            try:
                fields = dec.decode(bytes(pend["frag"]))
            except h2lib.HpackError as e:
                self.notes.append("%s: HPACK error on stream %d: %s" % (side, sid, e))
                dec.forget()
                fields = None
        if ftype == 5:
            pst = self.stream(pend["promised"]) if pend["promised"] else None
            if pst is not None:
                pst["pushed"] = True
                pst["promised_on"] = sid
                if fields is None:
                    pst["headers_lost"]["request"] = True
                else:
                    pst["req_fields"] = fields
                pst["req_end"] = True
            return
        st = self.stream(sid)
        end_stream = bool(flags & 0x01)
        if side == "client":
            if st["req_fields"] is None and not st["headers_lost"]["request"]:
                if fields is None:
                    st["headers_lost"]["request"] = True
                else:
                    st["req_fields"] = fields
            else:
                st["req_trailers"] = fields if fields is not None else "lost"
            if end_stream:
                st["req_end"] = True
        else:
            status = None
            if fields:
                for fl in fields:
                    if fl.name == ":status" and fl.value is not None:
                        status = fl.value
            if st["resp_fields"] is None and not st["headers_lost"]["response"]:
                if fields is None:
                    st["headers_lost"]["response"] = True
                elif status is not None and status.startswith("1"):
                    st["interim"].append(int(status))
                else:
                    st["resp_fields"] = fields
            else:
                st["resp_trailers"] = fields if fields is not None else "lost"
            if end_stream:
                st["resp_end"] = True


def field(fields, name):
    if not fields:
        return None
    for f in fields:
        if f.name == name:
            return f
    return None


def grpc_msgs(data, gap):
    if gap:
        return None
    msgs, pos = [], 0
    while pos + 5 <= len(data):
        flag = data[pos]
        n = struct.unpack("!I", data[pos + 1:pos + 5])[0]
        if pos + 5 + n > len(data):
            break
        msgs.append({"len": n, "compressed": bool(flag & 1)})
        pos += 5 + n
    return {"count": len(msgs), "sizes": [m["len"] for m in msgs],
            "compressed": sum(m["compressed"] for m in msgs), "trailing_bytes": len(data) - pos}


def fields_json(fields):
    if fields is None:
        return None
    if fields == "lost":
        return "lost"
    return [[f.name, f.value] for f in fields if f.name is None or not f.name.startswith(":")]


def summarise(conn, st):
    rq, rs = st["req_fields"], st["resp_fields"]
    if rq is None and rs is None and not st["headers_lost"]["request"] \
            and not st["headers_lost"]["response"] and not st["pushed"]:
        if not st["req_frames"] and not st["resp_frames"]:
            return None  # PRIORITY / WINDOW_UPDATE / RST only: no exchange
    out = {"stream_id": st["stream_id"]}

    def pseudo(fields, name):
        f = field(fields, name)
        if f is None:
            unknown = fields is not None and any(x.name is None for x in fields)
            return None, ("unknown" if unknown or fields is None else "absent")
        if f.value is None:
            return None, "unknown"
        return f.value, ("recoverable" if f.recoverable or f.kind == "http1" else "dynamic-table")

    out["method"], m_how = pseudo(rq, ":method")
    out["path"], p_how = pseudo(rq, ":path")
    out["authority"], a_how = pseudo(rq, ":authority")
    if out["authority"] is None and st["upgrade"]:
        h = field(rq, "host")
        out["authority"] = h.value if h else None
    out["scheme"], _ = pseudo(rq, ":scheme")
    status, s_how = pseudo(rs, ":status")
    out["status"] = int(status) if status is not None else None
    out["encoding"] = {"method": m_how, "path": p_how, "status": s_how}
    out["upgrade"] = st["upgrade"]
    # Server-initiated streams are even (RFC 9113 5.1.1): pushed even when the PUSH_PROMISE
    # is not in the capture.
    out["pushed"] = st["pushed"] or (st["stream_id"] % 2 == 0 and st["stream_id"] != 0)
    if st["pushed"]:
        out["promised_on"] = st["promised_on"]
    out["interim"] = st["interim"]
    out["request_body_len"] = st["req_body"]
    out["response_body_len"] = st["resp_body"]
    out["request_gap_bytes"] = st["req_body_lost"]
    out["response_gap_bytes"] = st["resp_body_lost"]
    out["request_end_stream"] = st["req_end"]
    out["response_end_stream"] = st["resp_end"]
    out["request_headers"] = fields_json(rq)
    out["response_headers"] = fields_json(rs)
    out["request_trailers"] = fields_json(st["req_trailers"])
    out["response_trailers"] = fields_json(st["resp_trailers"])
    out["headers_lost"] = st["headers_lost"]
    unknown = 0
    for fl in (rq, rs, st["req_trailers"], st["resp_trailers"]):
        if isinstance(fl, list):
            unknown += sum(1 for f in fl if f.name is None or f.value is None)
    out["unknown_header_fields"] = unknown
    out["headers_partial"] = bool(unknown or st["headers_lost"]["request"] or
                                  st["headers_lost"]["response"] or
                                  st["req_trailers"] == "lost" or st["resp_trailers"] == "lost")
    out["rst_stream"] = st["rst"]  # the first in capture order
    out["rst_streams"] = st["rsts"]  # every RST_STREAM, both directions
    out["padded"] = st["padded"]
    out["continuation"] = st["continuation"]
    out["complete"] = bool(rq is not None and rs is not None and not out["headers_partial"]
                           and not st["req_body_lost"] and not st["resp_body_lost"]
                           and not st["req_data_gap"] and not st["resp_data_gap"]
                           and (st["resp_end"] or st["rst"] is not None))
    ct = field(rs, "content-type") or field(rq, "content-type")
    ctv = ct.value if ct and ct.value else ""
    if ctv.startswith("application/grpc"):
        g = {}
        path = out["path"]
        if path and path.count("/") >= 2:
            _, svc, meth = path.split("/", 2)
            g["service"], g["method"] = svc, meth
        else:
            g["service"] = g["method"] = None
        code = message = None
        source = None
        for fl, where in ((st["resp_trailers"], "trailers"), (rs, "trailers-only")):
            if isinstance(fl, list):
                f = field(fl, "grpc-status")
                if f is not None and f.value is not None:
                    code, source = int(f.value), where
                    m = field(fl, "grpc-message")
                    if m is not None and m.value:
                        message = urllib.parse.unquote(m.value, errors="replace")
                    break
        if code is None and st["rst"] is not None:
            code, source = GRPC_FROM_RST.get(st["rst"]["code"], 13), "rst_stream"
        g["status"] = code
        g["status_name"] = GRPC_NAMES[code] if code is not None and code < len(GRPC_NAMES) else None
        g["status_source"] = source
        g["message"] = message
        enc = field(rq, "grpc-encoding")
        renc = field(rs, "grpc-encoding")
        g["request_encoding"] = enc.value if enc else None
        g["response_encoding"] = renc.value if renc else None
        tmo = field(rq, "grpc-timeout")
        g["timeout"] = tmo.value if tmo else None
        g["request_messages"] = grpc_msgs(st["req_data"], st["req_data_gap"])
        g["response_messages"] = grpc_msgs(st["resp_data"], st["resp_data_gap"])
        out["grpc"] = g
    else:
        out["grpc"] = None
    return out


def analyse(path, with_frames=False):
    res = {"file": path, "connections": []}
    for ci, c in enumerate(connections(path)):
        conn = Conn(c)
        if not conn.run():
            continue
        streams = []
        order = sorted(conn.streams.values(), key=lambda s: (s["first_pkt"] or 0, s["stream_id"]))
        for st in order:
            s = summarise(conn, st)
            if s is not None:
                streams.append(s)
        cj = {"conn": ci, "client": expected.fmt_ep(*conn.client),
              "server": expected.fmt_ep(*conn.server), "mode": conn.mode,
              "handshake_seen": c["syn"],
              "holes": {"client": [list(h) for h in conn.cs.holes],
                        "server": [list(h) for h in conn.ss.holes]},
              "framing_lost": conn.framing_lost,
              "goaway": conn.goaway, "notes": conn.notes, "streams": streams}
        if with_frames:
            cj["frames"] = conn.frame_log
        res["connections"].append(cj)
    return res


def compare(clean_path, other_path, exact):
    """Every field the other truth (a fault or VXLAN variant of the same capture) knows must
    equal the clean truth's; with exact, every stream must be identical. Returns the number
    of disagreements (printed)."""
    clean = json.load(open(clean_path))
    other = json.load(open(other_path))
    key = lambda c: (c["client"], c["server"])  # noqa: E731
    cs = {key(c): {s["stream_id"]: s for s in c["streams"]} for c in clean["connections"]}
    bad = 0
    n = 0
    for c in other["connections"]:
        ref = cs.get(key(c))
        for s in c["streams"]:
            n += 1
            where = "%s conn %s->%s stream %d" % (other_path, c["client"], c["server"], s["stream_id"])
            r = ref.get(s["stream_id"]) if ref else None
            if r is None:
                print("%s: not in %s" % (where, clean_path))
                bad += 1
                continue
            if exact:
                if r != s:
                    diff = sorted(k for k in r if r[k] != s.get(k))
                    print("%s: differs in %s" % (where, diff))
                    bad += 1
                continue
            for k in ("method", "path", "authority", "scheme", "status", "pushed"):
                if s[k] is not None and s[k] != r[k] and not (k == "pushed" and not s[k]):
                    print("%s: %s %r, clean %r" % (where, k, s[k], r[k]))
                    bad += 1
            for k in ("request_body_len", "response_body_len"):
                if s[k] > r[k]:
                    print("%s: %s %r > clean %r" % (where, k, s[k], r[k]))
                    bad += 1
            g, rg = s["grpc"], r["grpc"]
            if g is not None and rg is not None:
                if g["status"] is not None and g["status"] != rg["status"]:
                    print("%s: grpc status %r, clean %r" % (where, g["status"], rg["status"]))
                    bad += 1
                for d in ("request_messages", "response_messages"):
                    if g[d] is not None and s["complete"] and g[d] != rg[d]:
                        print("%s: grpc %s %r, clean %r" % (where, d, g[d], rg[d]))
                        bad += 1
    print("# %s vs %s: %d streams, %d disagreements" % (other_path, clean_path, n, bad))
    return bad


TSV_COLUMNS = ["file", "conn", "client", "server", "mode", "stream", "method", "path",
               "authority", "status", "req_body", "resp_body", "pushed", "rst", "grpc_service",
               "grpc_method", "grpc_status", "grpc_req_msgs", "grpc_resp_msgs", "grpc_encoding",
               "headers_partial", "complete", "recoverable"]


def tsv(paths):
    """One row per stream of the given truth files (the summary, pcaps/h2/truth.tsv)."""
    print("\t".join(TSV_COLUMNS))
    for p in paths:
        t = json.load(open(p))
        for c in t["connections"]:
            for st in c["streams"]:
                g = st["grpc"] or {}
                qm, rm = g.get("request_messages"), g.get("response_messages")
                rec = ",".join(k for k, v in sorted(st["encoding"].items()) if v == "recoverable")
                row = [t["file"], c["conn"], c["client"], c["server"], c["mode"], st["stream_id"],
                       st["method"], st["path"], st["authority"], st["status"],
                       st["request_body_len"], st["response_body_len"], int(st["pushed"]),
                       ",".join("%s:%s" % (r["by"], r["name"]) for r in st["rst_streams"]),
                       g.get("service"), g.get("method"), g.get("status_name"),
                       qm["count"] if qm else None, rm["count"] if rm else None,
                       g.get("request_encoding") or g.get("response_encoding"),
                       int(st["headers_partial"]), int(st["complete"]), rec]
                print("\t".join("-" if v is None or v == "" else str(v) for v in row))


def main():
    args = sys.argv[1:]
    if args and args[0] == "--tsv":
        tsv(args[1:])
        return 0
    if args and args[0] in ("--compare", "--compare-exact"):
        return 1 if compare(args[1], args[2], args[0] == "--compare-exact") else 0
    with_frames = "--frames" in args
    args = [a for a in args if a != "--frames"]
    if not args:
        raise SystemExit(__doc__)
    for p in args:
        print(json.dumps(analyse(p, with_frames), indent=1, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
