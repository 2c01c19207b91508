//! HTTP/2 connections: the switch from the HTTP/1 parsers to a [`vxtap_h2::H2Conn`], and each
//! finished stream turned into an exchange record.
//!
//! A connection becomes HTTP/2 in one of three ways: the client preface where a request line
//! was expected (prior knowledge: `PRI * HTTP/2.0` fails as an HTTP/1 head, and only then is it
//! compared, so HTTP/1 pays nothing); a 101 answering `Upgrade: h2c` (the HTTP/1 exchange of the
//! upgrade is held and becomes stream 1's record, its request the upgrade request and its
//! interim response the 101); or, on a connection picked up mid-stream, bytes that start with a
//! chain of plausible frame headers (`vxtap_h2::looks_like_h2`, only while no HTTP/1 exchange
//! came out of it). From then on the connection is `stopped` for the HTTP/1 path (the one branch
//! `on_data` already takes for upgraded connections), and its bytes go to the HTTP/2 state.
//!
//! Bodies go through the same capture, content decoding and flags as HTTP/1 (`emit`); gRPC
//! messages are decompressed one by one under the decode bound (`grpc-encoding`).

use vxtap_flow::{Direction, Verdict};
use vxtap_h2::{grpc, H2Config, H2Conn, SideOut, Start, StreamOut};

use super::budget::message_heap;
use super::{Conn, HttpHandler, MsgBuild, State};
use crate::decode::{decode_all, Coding, DecodeEnd};
use crate::exchange::{Content, Exchange, Grpc, GrpcBody, GrpcMessages, Message, Version};
use crate::flags::{Flag, FlagSet};
use crate::stats::Outcome;

/// A connection's HTTP/2 state.
#[derive(Debug)]
pub(super) struct H2State {
    conn: H2Conn,
    /// The HTTP/1 exchange of an `Upgrade: h2c` request answered by 101: stream 1's record.
    upgrade: Option<Box<Exchange>>,
    /// The HTTP/2 client sends in the flow's server direction: roles were swapped.
    swapped: bool,
    done: Vec<StreamOut>,
}

impl H2State {
    pub(super) fn heap_bytes(&self) -> usize {
        self.conn.heap_bytes()
            + self.upgrade.as_ref().map_or(0, |e| {
                e.request.as_ref().map_or(0, message_heap)
                    + e.response.as_ref().map_or(0, message_heap)
            })
    }
}

impl HttpHandler {
    fn h2_config(&self) -> H2Config {
        H2Config {
            max_header_block: self.cfg.max_head_bytes,
            max_headers: self.cfg.max_headers,
            max_body_bytes: self.cfg.max_body_bytes,
            ..H2Config::default()
        }
    }

    /// Switches `c` to HTTP/2.
    pub(super) fn h2_start(&mut self, c: &mut Conn, start: Start, ts: u64) {
        self.stats.h2.conns += 1;
        let mut upgrade = None;
        if start == Start::Upgrade {
            // The upgrade's exchange was just emitted; it becomes stream 1's.
            let (cl, sv) = (c.meta.client, c.meta.server);
            if let Some(i) = self.out.iter().rposition(|e| {
                e.flags.contains(Flag::Upgrade)
                    && e.response.as_ref().and_then(|m| m.status) == Some(101)
                    && e.client.port == cl.port
                    && e.server.port == sv.port
            }) {
                let e = self.out.remove(i);
                // It leaves again as stream 1's record, counted then: take back its count.
                self.count(&e, false);
                upgrade = Some(Box::new(e));
            }
        } else {
            self.flush_all(c, FlagSet::EMPTY);
        }
        for h in c.halves.iter_mut() {
            h.state = State::Tunnel;
            h.head_buf = Vec::new();
        }
        c.stopped = true;
        c.roles_fixed = true;
        let cfg = self.h2_config();
        c.overflow.set_h2(H2State {
            conn: H2Conn::new(&cfg, start, ts),
            upgrade,
            swapped: false,
            done: Vec::new(),
        });
    }

    /// Bytes of an HTTP/2 connection.
    pub(super) fn h2_data(
        &mut self,
        c: &mut Conn,
        dir: Direction,
        ts: u64,
        data: &[u8],
    ) -> Verdict {
        let Some(h) = c.overflow.h2_mut() else {
            return Verdict::StopDelivery;
        };
        let d = dir_index(dir);
        h.conn.feed(d, ts, data, &mut self.stats.h2);
        let v = if !h.swapped && h.conn.client_dir() == Some(1) {
            // The peer the flow took for the server sends requests: swap (the flow relabels
            // the directions of later callbacks; the HTTP/2 state follows).
            h.swapped = true;
            h.conn.swap_dirs();
            // Records finished from here on name the peers the right way round (the flow
            // applies the swap to later callbacks).
            std::mem::swap(&mut c.meta.client, &mut c.meta.server);
            self.stats.role_swaps += 1;
            Verdict::SwapRoles
        } else {
            Verdict::Continue
        };
        self.h2_drain(c, FlagSet::EMPTY);
        v
    }

    /// A gap on an HTTP/2 connection.
    pub(super) fn h2_gap(&mut self, c: &mut Conn, dir: Direction, ts: u64, len: u64) {
        if let Some(h) = c.overflow.h2_mut() {
            h.conn.gap(dir_index(dir), ts, len, &mut self.stats.h2);
        }
        self.h2_drain(c, FlagSet::EMPTY);
    }

    /// The end of an HTTP/2 connection: every open stream comes out.
    pub(super) fn h2_close(&mut self, c: &mut Conn, flags: FlagSet) {
        if let Some(h) = c.overflow.h2_mut() {
            h.conn.close(&mut self.stats.h2);
        }
        self.h2_drain(c, flags);
        if let Some(h) = c.overflow.h2_mut() {
            if let Some(e) = h.upgrade.take() {
                // The upgrade's stream never came out: its record goes as it was.
                self.count(&e, true);
                self.out.push(*e);
            }
        }
    }

    fn h2_drain(&mut self, c: &mut Conn, close_flags: FlagSet) {
        let Some(h) = c.overflow.h2_mut() else { return };
        let mut done = std::mem::take(&mut h.done);
        h.conn.drain_into(&mut done);
        for s in done.drain(..) {
            self.h2_emit(c, s, close_flags);
        }
        if let Some(h) = c.overflow.h2_mut() {
            h.done = done;
        }
    }

    fn h2_build(&self, side: SideOut, is_request: bool) -> MsgBuild {
        let coding = side
            .headers
            .iter()
            .find(|(n, _)| n == "content-encoding")
            .map(|(_, v)| v.as_str());
        let (coding, content) = match coding {
            None => (None, Content::Plain),
            Some(v) if v.trim().is_empty() || v.trim().eq_ignore_ascii_case("identity") => {
                (None, Content::Plain)
            }
            Some(v) => match Coding::from_header(v.as_bytes()) {
                Some(cd) => (Some(cd), Content::Encoded(cd)),
                None => (None, Content::Opaque),
            },
        };
        let uri = if is_request { side.path } else { None };
        let msg = Message {
            method: side.method,
            uri,
            status: side.status,
            version: Version::Http2,
            headers: side.headers,
            trailers: side.trailers,
            authority: side.authority,
            scheme: side.scheme,
            gap_bytes: side.gap_bytes,
            ..Message::default()
        };
        let mut b = self.new_build(
            msg,
            side.start_ts,
            side.end_ts,
            FlagSet::EMPTY,
            coding,
            content,
        );
        b.msg.body_len = side.body_len;
        if let Some(d) = b.decoder.as_mut() {
            d.write(&side.body);
        }
        b.raw = side.body;
        b.cut = !side.ended;
        b
    }

    fn h2_emit(&mut self, c: &mut Conn, s: StreamOut, close_flags: FlagSet) {
        let mut flags = FlagSet::EMPTY;
        if s.rst.is_some() {
            flags.insert(Flag::RstStream);
        }
        if s.goaway {
            flags.insert(Flag::Goaway);
        }
        if s.headers_partial {
            flags.insert(Flag::HeadersPartial);
        }
        if s.pushed {
            flags.insert(Flag::Pushed);
        }
        if s.gap {
            flags.insert(Flag::Gap);
        }
        if s.incomplete {
            flags.insert(Flag::Incomplete);
            flags.merge(close_flags);
        }
        let grpc = s.grpc.then(|| self.h2_grpc(&s));
        let upgrade = if s.upgraded {
            c.overflow.h2_mut().and_then(|h| h.upgrade.take())
        } else {
            None
        };
        let (id, rst) = (s.id, s.rst);
        let req = s.request.map(|r| self.h2_build(r, true));
        let resp = s.response.map(|r| self.h2_build(r, false));
        let before = self.out.len();
        match upgrade {
            Some(mut e) => {
                // Stream 1 of an upgraded connection: the HTTP/1.1 request, the 101 as the
                // interim response, the HTTP/2 response.
                let mut interim = e.response.take().into_iter().collect::<Vec<_>>();
                interim.append(&mut e.interim);
                self.emit(c, None, resp, interim, flags);
                if let Some(mut x) = self.out.pop() {
                    // Counted by `emit` without its request: count the finished record.
                    self.count(&x, false);
                    x.flags.remove(Flag::NoRequest);
                    x.flags.merge(e.flags);
                    x.id = e.id;
                    x.ts_ns = e.ts_ns;
                    x.timing.request_start_ns = e.timing.request_start_ns;
                    x.timing.request_end_ns = e.timing.request_end_ns;
                    x.request = e.request.take();
                    self.count(&x, true);
                    self.out.push(x);
                }
            }
            None => self.emit(c, req, resp, Vec::new(), flags),
        }
        if self.out.len() > before {
            self.stats.exchanges_h2 += 1;
            if let Some(x) = self.out.last_mut() {
                x.stream_id = Some(id);
                x.rst_error = rst;
                if let Some(g) = &grpc {
                    if let Some(code) = g.status {
                        let i = (code as usize).min(self.stats.grpc_status.len() - 1);
                        self.stats.grpc_status[i] += 1;
                    }
                }
                x.grpc = grpc.map(Box::new);
            }
        }
    }

    /// Adds (or takes back) an exchange's outcome and flags in the counters, as `emit` counts
    /// them.
    fn count(&mut self, e: &Exchange, add: bool) {
        let outcome = match (&e.request, &e.response) {
            (Some(_), Some(_)) => Outcome::Complete,
            (Some(_), None) => Outcome::NoResponse,
            _ => Outcome::NoRequest,
        };
        let step = |n: &mut u64| *n = if add { *n + 1 } else { n.saturating_sub(1) };
        step(&mut self.stats.exchanges[outcome as usize]);
        for f in e.flags.iter() {
            step(&mut self.stats.flags[f as usize]);
        }
    }

    fn h2_grpc(&self, s: &StreamOut) -> Grpc {
        let path = s.request.as_ref().and_then(|r| r.path.as_deref());
        let (service, method) = match path.and_then(grpc::split_path) {
            Some((a, b)) => (Some(a.to_owned()), Some(b.to_owned())),
            None => (None, None),
        };
        let status = vxtap_h2::grpc_status(s);
        let hdr = |side: Option<&SideOut>, n: &str| {
            side.and_then(|o| {
                o.headers
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            })
        };
        let enc_req = hdr(s.request.as_ref(), "grpc-encoding");
        let enc_resp = hdr(s.response.as_ref(), "grpc-encoding");
        let msgs = |side: Option<&SideOut>, enc: Option<&str>| -> GrpcMessages {
            let Some(m) = side.and_then(|o| o.grpc.as_ref()) else {
                return GrpcMessages::default();
            };
            GrpcMessages {
                count: m.count,
                sizes: m.sizes.clone(),
                first: m.first.iter().map(|g| self.grpc_body(g, enc)).collect(),
                framing_lost: m.framing_lost,
            }
        };
        let request = msgs(s.request.as_ref(), enc_req.as_deref());
        let response = msgs(s.response.as_ref(), enc_resp.as_deref());
        Grpc {
            service,
            method,
            status: status.as_ref().map(|s| s.0),
            status_name: status.as_ref().and_then(|s| grpc::status_name(s.0)),
            message: status.and_then(|s| s.1),
            encoding: enc_req.or(enc_resp),
            request,
            response,
        }
    }

    fn grpc_body(&self, g: &grpc::GrpcMessage, enc: Option<&str>) -> GrpcBody {
        let mut truncated = (g.bytes.len() as u64) < g.len as u64;
        let mut bytes = None;
        if g.compressed {
            if let Some(cd) = enc.and_then(|e| Coding::from_header(e.as_bytes())) {
                let cap = self.cfg.max_decoded_bytes.min(self.cfg.max_body_bytes);
                let (out, end) = decode_all(cd, &g.bytes, cap, !truncated);
                match end {
                    DecodeEnd::Ok => {
                        truncated = false;
                        bytes = Some(out);
                    }
                    DecodeEnd::Truncated | DecodeEnd::InputCut => {
                        truncated = true;
                        bytes = Some(out);
                    }
                    DecodeEnd::Error => {}
                }
            }
        }
        let decompressed = bytes.is_some();
        let bytes = bytes.unwrap_or_else(|| g.bytes.clone());
        let dump = if self.cfg.grpc_decode && !truncated && (!g.compressed || decompressed) {
            grpc::protobuf_dump(&bytes)
        } else {
            None
        };
        GrpcBody {
            bytes,
            compressed: g.compressed,
            truncated,
            dump,
        }
    }
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

/// Whether a request head is the HTTP/2 client preface's first part.
pub(super) fn is_preface_line(head: &[u8]) -> bool {
    head == &vxtap_h2::frame::PREFACE[..18]
}

/// Whether a 101 response switches to h2c.
pub(super) fn upgrades_to_h2c(m: &Message) -> bool {
    m.status == Some(101)
        && m.header("upgrade")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("h2c"))
}
