//! Reading one direction's bytes into messages: the data path that dispatches on the parser's
//! state (heads, bodies, resynchronisation, skipped tunnel bytes) and the parsing of heads into
//! requests and responses, whose framing says where the body ends.
//!
//! What a finished message becomes is decided elsewhere: [`super::pairing`] places it,
//! [`super::emit`] turns it into a record, [`super::loss`] handles what the stream lost.

use std::mem::MaybeUninit;

use vxtap_flow::{Direction, Verdict};

use super::budget::message_heap;
use super::{
    Ack, Body, Conn, Ev, HttpHandler, Kind, MsgBuild, Role, State, HEADERS_LIMIT, HEAD_BUF_KEEP,
    RESYNC_CARRY, RESYNC_LINE_MAX, RESYNC_PIECE,
};
use crate::chunked::ChunkDecoder;
use crate::decode::{extend_capped, Coding, Decoder, GROWTH_STEP};
use crate::exchange::{Content, Message, Version};
use crate::flags::{Flag, FlagSet};
use crate::framing::{
    analyze, find_head_end, find_start_line, has_bare_lf, loose_request_line, Class, Scan,
};
use crate::stats::ParseError;

impl HttpHandler {
    // ----- data path -------------------------------------------------------------------------

    pub(super) fn feed(&mut self, c: &mut Conn, dir: Direction, ts: u64, data: &[u8]) -> Verdict {
        let mut role = Role::of(dir);
        let mut verdict = Verdict::Continue;
        let mut pos = 0;
        let base = c.halves[role].off;
        while pos < data.len() {
            // The steps below move `off` past a message when they finish it, so that it records
            // exactly where the message ended.
            c.halves[role].off = base + pos as u64;
            let rest = &data[pos..];
            let (used, ev) = match c.halves[role].state {
                State::Start => self.feed_head(c, role, ts, rest),
                State::Body(_) => (self.feed_body(c, role, ts, rest), Ev::None),
                State::Resync => self.feed_resync(c, role, ts, rest),
                State::ConnectWait | State::Tunnel => {
                    self.stats.upgrade_skipped_bytes += rest.len() as u64;
                    (rest.len(), Ev::None)
                }
            };
            pos += used;
            match ev {
                Ev::None => {}
                Ev::Swap => {
                    role = role.other();
                    verdict = Verdict::SwapRoles;
                }
                Ev::Stop => {
                    self.stats.upgrade_skipped_bytes += (data.len() - pos) as u64;
                    return Verdict::StopDelivery;
                }
                Ev::H2(start) => {
                    if let Some(s) = start {
                        self.h2_start(c, s, ts);
                    }
                    let v = self.h2_data(c, dir, ts, &data[pos..]);
                    return if matches!(verdict, Verdict::SwapRoles) {
                        verdict
                    } else {
                        v
                    };
                }
            }
        }
        c.halves[role].off = base + data.len() as u64;
        verdict
    }

    fn feed_head(&mut self, c: &mut Conn, r: Role, ts: u64, rest: &[u8]) -> (usize, Ev) {
        let max = self.cfg.max_head_bytes;
        let h = &mut c.halves[r];
        if h.head_buf.is_empty() {
            // RFC 9112 2.2: empty lines before a request line are ignored.
            let skip = rest
                .iter()
                .take_while(|b| **b == b'\r' || **b == b'\n')
                .count();
            if skip > 0 {
                return (skip, Ev::None);
            }
            h.head_ts = ts;
            h.head_off = h.off;
            h.head_ack = h.ack;
            let window = &rest[..rest.len().min(max)];
            match find_head_end(window, 0) {
                Some(end) => {
                    h.off += end as u64;
                    let ev = self.on_head(c, r, ts, &rest[..end]);
                    (end, ev)
                }
                None if rest.len() >= max => {
                    // Skip the oversized part so the resync does not find this start line again.
                    let n = window.len();
                    self.head_error(c, r, ParseError::HeadTooLarge, Flag::HeadTooLarge.into());
                    (n, Ev::None)
                }
                None => {
                    h.head_buf.extend_from_slice(rest);
                    (rest.len(), Ev::None)
                }
            }
        } else {
            let old = h.head_buf.len();
            let take = rest.len().min(max.saturating_sub(old));
            // Capped growth: an amortized doubling would allocate up to twice the head cap.
            extend_capped(&mut h.head_buf, &rest[..take], max);
            match find_head_end(&h.head_buf, old) {
                Some(end) => {
                    h.head_buf.truncate(end);
                    h.off += (end - old) as u64;
                    let buf = std::mem::take(&mut h.head_buf);
                    let ev = self.on_head(c, r, ts, &buf);
                    let h = &mut c.halves[r];
                    // Keep a small buffer for the next head; give a large one back, since idle
                    // connections are many.
                    if h.head_buf.is_empty() && buf.capacity() <= HEAD_BUF_KEEP {
                        h.head_buf = buf;
                        h.head_buf.clear();
                    }
                    (end - old, ev)
                }
                None if h.head_buf.len() >= max => {
                    self.head_error(c, r, ParseError::HeadTooLarge, Flag::HeadTooLarge.into());
                    (take, Ev::None)
                }
                None => (take, Ev::None),
            }
        }
    }

    fn feed_resync(&mut self, c: &mut Conn, r: Role, ts: u64, rest: &[u8]) -> (usize, Ev) {
        if c.next_index == 0
            && c.meta.midstream
            && c.halves[r].head_buf.is_empty()
            && c.halves[r].off < 1 << 20
            && vxtap_h2::looks_like_h2(rest)
        {
            // Picked up mid-stream and nothing HTTP/1 came out of it yet: frames, not text.
            return (0, Ev::H2(Some(vxtap_h2::Start::Midstream)));
        }
        let max = self.cfg.max_head_bytes;
        let swap_ok = c.meta.midstream && !c.roles_fixed && !c.stopped;
        let h = &mut c.halves[r];
        let (want, other) = if h.is_request {
            (Class::Request, Class::Response)
        } else {
            (Class::Response, Class::Request)
        };
        // `head_buf` carries the tail of what was skipped so far: a start line may straddle
        // segments. Work on bounded pieces so the carry stays small.
        let old = h.head_buf.len();
        if old == 0 {
            h.head_ts = ts;
            h.head_ack = h.ack;
        } else if h.head_ack != h.ack {
            // The carried bytes came with different acks: which one a head found in them
            // carried is unknown.
            h.head_ack = Ack::NONE;
        }
        let piece = rest.len().min(RESYNC_PIECE);
        h.head_buf.extend_from_slice(&rest[..piece]);
        let (req, resp) = match (want, swap_ok) {
            (_, true) => (true, true),
            (Class::Request, false) => (true, false),
            _ => (false, true),
        };
        let line_max = max.min(RESYNC_LINE_MAX);
        match find_start_line(&h.head_buf, req, resp, line_max) {
            Scan::Found(s, class) if class == want || class == other => {
                // Hand the start line to the head parser: bytes before it are skipped, bytes of
                // this piece after it are consumed again by the parser.
                h.head_buf.truncate(old);
                if !h.is_request {
                    c.resp_synced_at = h.off + s as u64 - old as u64;
                }
                let h = &mut c.halves[r];
                if s < old {
                    // The start line begins in the carried bytes, which end where this piece
                    // begins.
                    h.head_off = h.off - (old - s) as u64;
                }
                let keep = s.min(old);
                self.stats.resync_skipped_bytes += s as u64;
                h.head_buf.drain(..keep);
                h.head_buf.shrink_to(HEAD_BUF_KEEP);
                h.state = State::Start;
                let ev = if class == other {
                    self.swap(c)
                } else {
                    Ev::None
                };
                (s.saturating_sub(old), ev)
            }
            Scan::Partial(s) if h.head_buf.len() - s <= line_max => {
                self.stats.resync_skipped_bytes += s as u64;
                h.head_buf.drain(..s);
                if s > 0 {
                    h.head_ts = ts;
                }
                (piece, Ev::None)
            }
            _ => {
                let len = h.head_buf.len();
                let cut = len.saturating_sub(RESYNC_CARRY);
                self.stats.resync_skipped_bytes += cut as u64;
                h.head_buf.drain(..cut);
                h.head_ts = ts;
                (piece, Ev::None)
            }
        }
    }

    /// The bytes of `r`'s direction carry the other role's messages: swap the parsers.
    fn swap(&mut self, c: &mut Conn) -> Ev {
        c.halves.swap();
        for h in c.halves.iter_mut() {
            h.is_request = !h.is_request;
        }
        std::mem::swap(&mut c.meta.client, &mut c.meta.server);
        c.roles_fixed = true;
        self.stats.role_swaps += 1;
        Ev::Swap
    }

    fn feed_body(&mut self, c: &mut Conn, r: Role, ts: u64, rest: &[u8]) -> usize {
        let h = &mut c.halves[r];
        let State::Body(body) = &mut h.state else {
            return 0;
        };
        match body {
            Body::Length(remaining) => {
                let n = (*remaining).min(rest.len() as u64) as usize;
                *remaining -= n as u64;
                let done = *remaining == 0;
                c.halves[r].off += n as u64;
                self.add_body(c, r, ts, &rest[..n]);
                if done {
                    self.finish_msg(c, r, ts, FlagSet::EMPTY, false);
                }
                n
            }
            Body::UntilClose => {
                self.add_body(c, r, ts, rest);
                rest.len()
            }
            Body::Chunked(dec) => match dec.step(rest) {
                Ok(step) => {
                    let done = step.done;
                    let bare_lf = dec.bare_lf;
                    if let Some((a, b)) = step.data {
                        self.add_body(c, r, ts, &rest[a..b]);
                    }
                    if done {
                        let mut f = FlagSet::EMPTY;
                        if bare_lf {
                            f.insert(Flag::SmugglingSuspect);
                        }
                        c.halves[r].off += step.consumed as u64;
                        self.finish_msg(c, r, ts, f, false);
                    }
                    step.consumed
                }
                Err(e) => {
                    self.stats.parse_errors[e as usize] += 1;
                    let mut f = FlagSet::from(Flag::ParseError);
                    if e == ParseError::ChunkSizeOverflow {
                        f.insert(Flag::SmugglingSuspect);
                    }
                    f.insert(Flag::Incomplete);
                    self.finish_msg(c, r, ts, f, true);
                    self.desync(c, r, f);
                    0
                }
            },
        }
    }

    fn add_body(&mut self, c: &mut Conn, r: Role, ts: u64, bytes: &[u8]) {
        // The record's cap, or the shadow replay's when it is larger (trimmed back when the
        // message is finished).
        let cap = self.cfg.max_body_bytes.max(self.cfg.replay_body_bytes);
        self.stats.body_bytes += bytes.len() as u64;
        if let Some(m) = c.halves[r].cur.as_mut() {
            m.msg.body_len += bytes.len() as u64;
            m.end_ts = ts;
            if m.raw.capacity() == 0 && cap > 0 {
                // Sized by the announced length, but not past one growth step: capacity is
                // charged against the memory budget whether or not the bytes ever come.
                let want = m
                    .hint
                    .max(bytes.len() as u64)
                    .min(cap.min(GROWTH_STEP) as u64);
                m.raw.reserve_exact(want as usize);
            }
            if m.raw.len() < cap {
                let n = (cap - m.raw.len()).min(bytes.len());
                extend_capped(&mut m.raw, &bytes[..n], cap);
            }
            if let Some(d) = m.decoder.as_mut() {
                d.write(bytes);
            }
        }
    }

    // ----- heads -----------------------------------------------------------------------------

    pub(super) fn on_head(&mut self, c: &mut Conn, r: Role, ts: u64, head: &[u8]) -> Ev {
        let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADERS_LIMIT];
        let slots = &mut storage[..self.cfg.max_headers];
        let mut flags = std::mem::take(&mut c.halves[r].resync_flags);
        if has_bare_lf(head) {
            flags.insert(Flag::SmugglingSuspect);
        }
        if c.halves[r].is_request {
            let mut req = httparse::Request::new(&mut []);
            match req.parse_with_uninit_headers(head, slots) {
                Ok(httparse::Status::Complete(_)) => {
                    let msg = Message {
                        method: req.method.map(str::to_owned),
                        uri: req.path.map(str::to_owned),
                        version: version_of(req.version),
                        headers: copy_headers(req.headers),
                        ..Message::default()
                    };
                    let info = analyze(req.headers, true);
                    self.on_request(c, r, ts, msg, info, flags, true)
                }
                Ok(httparse::Status::Partial) => {
                    if super::h2::is_preface_line(head) {
                        return Ev::H2(Some(vxtap_h2::Start::PrefaceLine));
                    }
                    if let Some(ev) = self.loose_request(c, r, ts, head, flags) {
                        return ev;
                    }
                    self.head_error(c, r, ParseError::BadStartLine, flags);
                    Ev::None
                }
                Err(e) => {
                    if super::h2::is_preface_line(head) {
                        return Ev::H2(Some(vxtap_h2::Start::PrefaceLine));
                    }
                    let (kind, f) = classify_httparse(e);
                    if kind == ParseError::BadStartLine {
                        if let Some(ev) = self.loose_request(c, r, ts, head, flags) {
                            return ev;
                        }
                    }
                    flags.merge(f);
                    self.head_error(c, r, kind, flags);
                    Ev::None
                }
            }
        } else {
            let mut resp = httparse::Response::new(&mut []);
            match httparse::ParserConfig::default()
                .parse_response_with_uninit_headers(&mut resp, head, slots)
            {
                Ok(httparse::Status::Complete(_)) => {
                    let msg = Message {
                        status: resp.code,
                        reason: resp.reason.map(str::to_owned),
                        version: version_of(resp.version),
                        headers: copy_headers(resp.headers),
                        ..Message::default()
                    };
                    let info = analyze(resp.headers, false);
                    self.on_response(c, r, ts, msg, info, flags)
                }
                Ok(httparse::Status::Partial) => {
                    self.head_error(c, r, ParseError::BadStartLine, flags);
                    Ev::None
                }
                Err(e) => {
                    let (kind, f) = classify_httparse(e);
                    flags.merge(f);
                    self.head_error(c, r, kind, flags);
                    Ev::None
                }
            }
        }
    }

    /// A request head that is complete (it ended with an empty line) but whose start line does
    /// not parse: probes and attacks send exactly these, and the server answers them, so the
    /// request is kept (flagged `parse_error`, the raw line in `start_line`) and paired like any
    /// other. Only when its fields parse and say unambiguously where it ends; otherwise (None)
    /// the stream is resynchronised as before.
    fn loose_request(
        &mut self,
        c: &mut Conn,
        r: Role,
        ts: u64,
        head: &[u8],
        mut flags: FlagSet,
    ) -> Option<Ev> {
        let line = loose_request_line(head, self.cfg.max_head_bytes.min(RESYNC_LINE_MAX))?;
        let fields = &head[memchr::memchr(b'\n', head)? + 1..];
        let mut slots = [httparse::EMPTY_HEADER; HEADERS_LIMIT];
        let slots = &mut slots[..self.cfg.max_headers];
        let headers = match httparse::parse_headers(fields, slots) {
            Ok(httparse::Status::Complete((_, h))) => h,
            _ => return None,
        };
        let info = analyze(headers, true);
        if info.suspect || info.error.is_some() {
            // A request already malformed whose framing is also doubtful: where it ends is
            // anyone's guess.
            return None;
        }
        self.stats.parse_errors[ParseError::BadStartLine as usize] += 1;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let msg = Message {
            method: line.method.map(text),
            uri: line.target.map(text),
            start_line: Some(text(line.raw)),
            version: version_of(Some(if line.http10 { 0 } else { 1 })),
            headers: copy_headers(headers),
            ..Message::default()
        };
        flags.insert(Flag::ParseError);
        Some(self.on_request(c, r, ts, msg, info, flags, line.method_delimited))
    }

    pub(super) fn new_build(
        &self,
        msg: Message,
        start_ts: u64,
        end_ts: u64,
        flags: FlagSet,
        coding: Option<Coding>,
        content: Content,
    ) -> MsgBuild {
        let decoder = match coding {
            Some(cd) if self.cfg.decode_content && self.cfg.max_body_bytes > 0 => {
                // The emitted body is capped by max_body_bytes whatever the encoding, so there is
                // no point decoding past it.
                let cap = self.cfg.max_decoded_bytes.min(self.cfg.max_body_bytes);
                Decoder::new(cd, cap).map(Box::new)
            }
            _ => None,
        };
        MsgBuild {
            heap: message_heap(&msg),
            msg,
            raw: Vec::new(),
            decoder,
            content,
            start_ts,
            end_ts,
            flags,
            cut: false,
            hint: 0,
            ack: Ack::NONE,
            off: 0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_request(
        &mut self,
        c: &mut Conn,
        r: Role,
        ts: u64,
        msg: Message,
        info: crate::framing::HeadInfo,
        mut flags: FlagSet,
        method_counts: bool,
    ) -> Ev {
        self.stats.requests += 1;
        c.roles_fixed = true;
        if info.suspect {
            flags.insert(Flag::SmugglingSuspect);
        }
        // A method read out of a malformed line ("HEAD/ HTTP/1.1") says nothing about how the
        // server treats it: its response is framed as if for a plain request.
        let method = match &msg.method {
            Some(m) if method_counts => m.as_str(),
            _ => "",
        };
        let is_head = method.eq_ignore_ascii_case("HEAD");
        let is_connect = method.eq_ignore_ascii_case("CONNECT");
        let head_ts = c.halves[r].head_ts;
        let seq = self.push_request(c, method, is_head, is_connect);
        let build = self.new_build(msg, head_ts, ts, flags, info.coding, info.content);
        let h = &mut c.halves[r];
        h.cur = Some(Box::new(build));
        h.target = Some(seq);
        if let Some(err) = info.error {
            // A strict server rejects this framing; the bytes after the head are not a body we
            // can delimit, so look for the next request line (possibly one smuggled inside).
            self.stats.parse_errors[err as usize] += 1;
            let f = FlagSet::from(Flag::ParseError);
            self.finish_msg(c, r, ts, f, false);
            self.desync(c, r, f);
            return Ev::None;
        }
        let body = if info.te_chunked {
            Some(Body::Chunked(ChunkDecoder::new()))
        } else {
            match info.content_length {
                Some(n) if n > 0 => Some(Body::Length(n)),
                _ => None,
            }
        };
        if let (Some(Body::Length(n)), Some(m)) = (&body, c.halves[r].cur.as_mut()) {
            m.hint = *n;
        }
        match body {
            Some(b) => c.halves[r].state = State::Body(b),
            None => self.finish_msg(c, r, ts, FlagSet::EMPTY, false),
        }
        if is_connect && matches!(c.halves[r].state, State::Start) {
            c.halves[r].state = State::ConnectWait;
        }
        Ev::None
    }

    fn on_response(
        &mut self,
        c: &mut Conn,
        r: Role,
        ts: u64,
        msg: Message,
        info: crate::framing::HeadInfo,
        mut flags: FlagSet,
    ) -> Ev {
        c.roles_fixed = true;
        let status = msg.status.unwrap_or(0);
        let interim = (100..200).contains(&status) && status != 101;
        if info.suspect {
            flags.insert(Flag::SmugglingSuspect);
        }
        let (target, unpaired_flags) = if interim {
            self.stats.interim_responses += 1;
            (self.interim_target(c), FlagSet::EMPTY)
        } else {
            self.stats.responses += 1;
            if status == 408 {
                if let Some(p) = c.overflow.prov_mut() {
                    p.unasked = true;
                }
            }
            self.pair_response(c)
        };
        let (is_head, is_connect) = target
            .and_then(|s| c.entry_mut(s))
            .and_then(|e| match &e.kind {
                Kind::Real(p) => Some((p.is_head, p.is_connect)),
                Kind::Lost(_) => None,
            })
            .unwrap_or((false, false));
        let head_ts = c.halves[r].head_ts;
        let h2c = super::h2::upgrades_to_h2c(&msg);
        let upgrade = status == 101 || (is_connect && (200..300).contains(&status));
        if upgrade {
            flags.insert(Flag::Upgrade);
        }
        let mut build = self.new_build(msg, head_ts, ts, flags, info.coding, info.content);
        let h = &mut c.halves[r];
        (build.ack, build.off) = (h.head_ack, h.head_off);
        h.cur = Some(Box::new(build));
        h.target = target;
        h.interim = interim;
        h.unpaired_flags = unpaired_flags;
        if upgrade {
            // Nothing after the switch can be counted.
            self.count_failed(c);
            self.stats.upgrades += 1;
            self.finish_msg(c, r, ts, FlagSet::EMPTY, false);
            // Whatever the client was sending is now the upgraded protocol.
            if let Some(seq) = target {
                let rq = &mut c.halves[Role::Req];
                if rq.target == Some(seq) && rq.cur.is_some() {
                    self.finish_msg(c, Role::Req, ts, FlagSet::EMPTY, false);
                }
            }
            self.flush_all(c, FlagSet::EMPTY);
            if h2c {
                return Ev::H2(Some(vxtap_h2::Start::Upgrade));
            }
            for h in c.halves.iter_mut() {
                h.state = State::Tunnel;
                h.head_buf = Vec::new();
            }
            c.stopped = true;
            return Ev::Stop;
        }
        if is_connect && matches!(c.halves[Role::Req].state, State::ConnectWait) {
            // The tunnel was refused: the client may go on with plain HTTP.
            c.halves[Role::Req].state = State::Start;
        }
        let no_body = interim || status == 204 || status == 304 || is_head;
        let body = if no_body {
            None
        } else if info.te_present {
            if info.te_chunked {
                Some(Body::Chunked(ChunkDecoder::new()))
            } else {
                // RFC 9112 6.3 rule 4: a response whose final coding is not chunked is
                // delimited by the close.
                Some(Body::UntilClose)
            }
        } else if let Some(err) = info.error {
            self.stats.parse_errors[err as usize] += 1;
            let f = FlagSet::from(Flag::ParseError);
            self.finish_msg(c, r, ts, f, true);
            self.desync(c, r, f);
            return Ev::None;
        } else {
            match info.content_length {
                Some(0) => None,
                Some(n) => Some(Body::Length(n)),
                None => Some(Body::UntilClose),
            }
        };
        if let (Some(Body::Length(n)), Some(m)) = (&body, c.halves[r].cur.as_mut()) {
            m.hint = *n;
        }
        match body {
            Some(b) => c.halves[r].state = State::Body(b),
            None => self.finish_msg(c, r, ts, FlagSet::EMPTY, false),
        }
        Ev::None
    }

    /// A head could not be used: count it, flag what it belonged to, and resync.
    fn head_error(&mut self, c: &mut Conn, r: Role, kind: ParseError, mut flags: FlagSet) {
        self.stats.parse_errors[kind as usize] += 1;
        match kind {
            ParseError::HeadTooLarge => flags.insert(Flag::HeadTooLarge),
            ParseError::TooManyHeaders => flags.insert(Flag::TooManyHeaders),
            _ => flags.insert(Flag::ParseError),
        }
        self.desync(c, r, flags);
    }
}

pub(super) fn version_of(v: Option<u8>) -> Version {
    match v {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    }
}

fn copy_headers(h: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    h.iter()
        .map(|h| {
            let value = match std::str::from_utf8(h.value) {
                Ok(v) => v.to_owned(),
                Err(_) => String::from_utf8_lossy(h.value).into_owned(),
            };
            (h.name.to_owned(), value)
        })
        .collect()
}

fn classify_httparse(e: httparse::Error) -> (ParseError, FlagSet) {
    match e {
        httparse::Error::TooManyHeaders => (ParseError::TooManyHeaders, FlagSet::EMPTY),
        // Whitespace between a field name and its colon is the classic smuggling trick.
        httparse::Error::HeaderName => (ParseError::BadHeader, Flag::SmugglingSuspect.into()),
        httparse::Error::HeaderValue | httparse::Error::NewLine => {
            (ParseError::BadHeader, FlagSet::EMPTY)
        }
        _ => (ParseError::BadStartLine, FlagSet::EMPTY),
    }
}
