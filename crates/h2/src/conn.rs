//! One HTTP/2 connection as seen by a tap: both directions' frame readers and HPACK contexts,
//! the streams in flight, and the finished streams ([`StreamOut`]) the caller collects.
//!
//! Sans-I/O: the caller feeds each direction's reassembled bytes ([`H2Conn::feed`]), reports
//! gaps ([`H2Conn::gap`]) and the end ([`H2Conn::close`]). Directions are the flow layer's
//! (0: the side that opened the TCP connection, 1: the other); which one is the HTTP/2 client
//! is taken from the preface, or, when the connection was picked up mid-stream, from the first
//! header block that shows `:method` or `:status`.
//!
//! Everything that grows is bounded: streams per connection (the oldest is finished early and
//! counted), header blocks (CONTINUATION assembly), buffered frame payloads (non-DATA frames
//! only; DATA is streamed), HPACK tables, captured bodies and gRPC messages.

use std::collections::BTreeMap;

use crate::frame::{self, flag, kind, setting, FrameHeader, HEADER_LEN, PREFACE};
use crate::grpc::{self, MessageReader, Messages};
use crate::hpack::{Block, HpackDecoder};
use crate::stats::{FrameError, H2Stats};

/// Limits of the HTTP/2 reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H2Config {
    /// Streams in flight per connection; beyond, the oldest is finished early (flag
    /// `incomplete`). Default 256.
    pub max_streams: usize,
    /// Largest header block (HEADERS plus CONTINUATIONs) assembled; beyond, the block is
    /// dropped and its stream flagged `headers_partial`. Default 64 KiB.
    pub max_header_block: usize,
    /// Most fields decoded per header block. Default 128.
    pub max_headers: usize,
    /// Hard cap on each HPACK table, whatever SETTINGS say. Default 64 KiB.
    pub hpack_cap: usize,
    /// Body bytes captured per message (0: none). Default 4096.
    pub max_body_bytes: usize,
    /// gRPC messages whose bytes are kept per direction. Default 4.
    pub grpc_keep_messages: usize,
}

impl Default for H2Config {
    fn default() -> Self {
        H2Config {
            max_streams: 256,
            max_header_block: 64 * 1024,
            max_headers: 128,
            hpack_cap: 64 * 1024,
            max_body_bytes: 4096,
            grpc_keep_messages: 4,
        }
    }
}

/// How the connection became HTTP/2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Prior knowledge: the client sent `PRI * HTTP/2.0\r\n\r\n` (already consumed by the
    /// caller); `SM\r\n\r\n` and frames follow.
    PrefaceLine,
    /// After `Upgrade: h2c` and 101: the upgrade request is stream 1 (its request side already
    /// complete); the client sends the whole preface, the server frames.
    Upgrade,
    /// Picked up without the preface (mid-stream); HPACK tables start with unknown history.
    Midstream,
}

/// One side (request or response) of a finished stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideOut {
    /// `:method`.
    pub method: Option<String>,
    /// `:path`.
    pub path: Option<String>,
    /// `:scheme`.
    pub scheme: Option<String>,
    /// `:authority`.
    pub authority: Option<String>,
    /// `:status`.
    pub status: Option<u16>,
    /// Regular header fields in order (no pseudo-headers).
    pub headers: Vec<(String, String)>,
    /// Trailer fields (a second header block).
    pub trailers: Vec<(String, String)>,
    /// Captured DATA bytes (at most `max_body_bytes`).
    pub body: Vec<u8>,
    /// DATA payload bytes (padding excluded), gaps included.
    pub body_len: u64,
    /// DATA bytes lost to gaps.
    pub gap_bytes: u64,
    /// Time of the side's first frame.
    pub start_ts: u64,
    /// Time of the side's last frame.
    pub end_ts: u64,
    /// END_STREAM was seen.
    pub ended: bool,
    /// Its header block was seen (false: only DATA or trailers were).
    pub head_seen: bool,
    /// gRPC messages, when the stream is gRPC.
    pub grpc: Option<Messages>,
}

/// A finished stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOut {
    /// Stream identifier.
    pub id: u32,
    /// The request side, if anything of it was seen.
    pub request: Option<SideOut>,
    /// The response side, if anything of it was seen.
    pub response: Option<SideOut>,
    /// Opened by PUSH_PROMISE.
    pub pushed: bool,
    /// Stream 1 of an upgraded connection: its request was the HTTP/1.1 upgrade request.
    pub upgraded: bool,
    /// RST_STREAM error code, if the stream was reset.
    pub rst: Option<u32>,
    /// A GOAWAY came while the stream was open.
    pub goaway: bool,
    /// A header block did not decode whole (lost HPACK state, a dropped block).
    pub headers_partial: bool,
    /// Bytes of the stream may have been lost to a gap.
    pub gap: bool,
    /// Finished before both sides ended (close, eviction, GOAWAY).
    pub incomplete: bool,
    /// Finished early because the connection had too many streams in flight.
    pub evicted: bool,
    /// The stream is gRPC (`content-type: application/grpc*`).
    pub grpc: bool,
}

#[derive(Debug, Default)]
struct Side {
    out: SideOut,
    reader: Option<Box<MessageReader>>,
}

#[derive(Debug, Default)]
struct Stream {
    sides: [Side; 2],
    pushed: bool,
    upgraded: bool,
    rst: Option<u32>,
    goaway: bool,
    partial: bool,
    gap: bool,
    grpc: bool,
}

const REQ: usize = 0;
const RESP: usize = 1;

#[derive(Debug)]
enum Rd {
    /// Reading a frame header into `buf`.
    Head,
    /// Buffering a non-DATA payload into `buf`.
    Payload(FrameHeader),
    /// Streaming a DATA payload: `left` payload bytes to come, of which the last `pad` are
    /// padding; `need_pad`: the pad length byte is still to come.
    Data {
        h: FrameHeader,
        left: u32,
        pad: u32,
        need_pad: bool,
    },
    /// Skipping a payload.
    Skip(u32),
}

#[derive(Debug)]
struct BlockBuild {
    stream: u32,
    /// The stream a PUSH_PROMISE promises.
    promised: Option<u32>,
    end_stream: bool,
    buf: Vec<u8>,
    ts: u64,
}

#[derive(Debug)]
struct Reader {
    /// Preface bytes still expected at the start of this direction.
    preface: &'static [u8],
    buf: Vec<u8>,
    state: Rd,
    /// False: looking for frame headers again after a gap (or not yet found mid-stream).
    synced: bool,
    /// The largest frame this direction may send (the other side's SETTINGS_MAX_FRAME_SIZE).
    max_frame: u32,
    hpack: HpackDecoder,
    block: Option<BlockBuild>,
}

/// Bytes kept while looking for frame headers again (a chain must fit in it).
const RESYNC_WINDOW: usize = 64 * 1024;
/// Frames in a row that make a plausible chain when resynchronising.
const CHAIN: usize = 2;
/// Non-DATA payloads larger than this are skipped unread (a SETTINGS or GOAWAY is tiny; a
/// header block fragment larger than the block cap is dropped anyway).
const MAX_BUFFERED_PAYLOAD: u32 = 256 * 1024;

impl Reader {
    fn new(preface: &'static [u8], synced: bool, hpack_cap: usize, lost: bool) -> Reader {
        Reader {
            preface,
            buf: Vec::new(),
            state: Rd::Head,
            synced,
            max_frame: frame::DEFAULT_MAX_FRAME,
            hpack: HpackDecoder::new(hpack_cap, lost),
            block: None,
        }
    }
}

/// One HTTP/2 connection's state (see the module docs).
#[derive(Debug)]
pub struct H2Conn {
    cfg: H2Config,
    rd: [Reader; 2],
    streams: BTreeMap<u32, Stream>,
    /// The flow direction the HTTP/2 client sends in, once known.
    client_dir: Option<usize>,
    /// Highest stream id opened, per parity (0: even, 1: odd): frames for lower ids not in
    /// `streams` belong to finished streams.
    max_id: [u32; 2],
    goaway: bool,
    out: Vec<StreamOut>,
    /// Streams reset by one side whose other side has not ended: frames the peer sent before
    /// it saw the reset (a gRPC server's Trailers-Only answer to a deadline) are still on their
    /// way. Finished when the other side ends, after `RST_GRACE_NS` of capture time, or when
    /// more than `MAX_RST_PENDING` wait.
    rst_pending: std::collections::VecDeque<(u32, u64)>,
    /// Bytes were lost (gap) or the connection was joined late: a header block or DATA for a
    /// stream below the highest id may belong to a stream whose start was not seen, so such
    /// streams are opened unless they finished recently (`finished`).
    lossy: bool,
    /// The ids of the last streams finished (at most `FINISHED_RING`).
    finished: std::collections::VecDeque<u32>,
    /// Time of the latest bytes fed.
    last_ts: u64,
}

/// Capture time a reset stream waits for the peer's frames in flight.
const RST_GRACE_NS: u64 = 2_000_000_000;
/// Reset streams waiting at most; beyond, the oldest is finished.
const MAX_RST_PENDING: usize = 16;
/// Finished stream ids remembered on a lossy connection.
const FINISHED_RING: usize = 256;

impl H2Conn {
    /// A connection started as `start` says; `ts` is the time of the switch.
    pub fn new(cfg: &H2Config, start: Start, ts: u64) -> H2Conn {
        let cap = cfg.hpack_cap;
        let (c, s, client_dir) = match start {
            Start::PrefaceLine => (
                Reader::new(&PREFACE[18..], true, cap, false),
                Reader::new(b"", true, cap, false),
                Some(0),
            ),
            Start::Upgrade => (
                Reader::new(&PREFACE[..], true, cap, false),
                Reader::new(b"", true, cap, false),
                Some(0),
            ),
            Start::Midstream => (
                Reader::new(b"", false, cap, true),
                Reader::new(b"", false, cap, true),
                None,
            ),
        };
        let mut h = H2Conn {
            cfg: cfg.clone(),
            rd: [c, s],
            streams: BTreeMap::new(),
            client_dir,
            max_id: [0; 2],
            goaway: false,
            out: Vec::new(),
            rst_pending: Default::default(),
            lossy: start == Start::Midstream,
            finished: Default::default(),
            last_ts: ts,
        };
        if start == Start::Upgrade {
            // RFC 9113 3.2 (RFC 7540 3.2): the upgrade request is stream 1, half-closed.
            let mut st = Stream {
                upgraded: true,
                ..Default::default()
            };
            st.sides[REQ].out.head_seen = true;
            st.sides[REQ].out.ended = true;
            st.sides[REQ].out.start_ts = ts;
            st.sides[REQ].out.end_ts = ts;
            h.streams.insert(1, st);
            h.max_id[1] = 1;
        }
        h
    }

    /// Moves the finished streams to the end of `out`.
    pub fn drain_into(&mut self, out: &mut Vec<StreamOut>) {
        out.append(&mut self.out);
    }

    /// The flow direction the HTTP/2 client sends in, once known.
    pub fn client_dir(&self) -> Option<usize> {
        self.client_dir
    }

    /// The flow swapped its directions (the caller's direction 0 is now what was 1).
    pub fn swap_dirs(&mut self) {
        self.rd.swap(0, 1);
        self.client_dir = self.client_dir.map(|d| d ^ 1);
    }

    /// Streams in flight.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Heap bytes held (buffers, tables, streams), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        let rd: usize = self
            .rd
            .iter()
            .map(|r| {
                r.buf.capacity()
                    + r.hpack.heap_bytes()
                    + r.block.as_ref().map_or(0, |b| b.buf.capacity())
            })
            .sum();
        let streams: usize = self
            .streams
            .values()
            .map(|s| {
                std::mem::size_of::<Stream>()
                    + 32
                    + s.sides
                        .iter()
                        .map(|sd| {
                            side_heap(&sd.out)
                                + sd.reader.as_ref().map_or(0, |r| {
                                    r.heap_bytes() + std::mem::size_of::<MessageReader>()
                                })
                        })
                        .sum::<usize>()
            })
            .sum();
        let out: usize = self
            .out
            .iter()
            .map(|o| {
                std::mem::size_of::<StreamOut>()
                    + o.request.as_ref().map_or(0, side_heap)
                    + o.response.as_ref().map_or(0, side_heap)
            })
            .sum();
        rd + streams + out
    }

    /// Whether direction `d` (flow index) is the HTTP/2 client's, as far as known (default:
    /// the side that opened the TCP connection).
    fn is_client(&self, d: usize) -> bool {
        self.client_dir.unwrap_or(0) == d
    }

    /// Feeds direction `d`'s bytes (0: from the TCP client, 1: from the TCP server).
    pub fn feed(&mut self, d: usize, ts: u64, mut data: &[u8], st: &mut H2Stats) {
        let d = d & 1;
        self.last_ts = self.last_ts.max(ts);
        while let Some(&(id, t)) = self.rst_pending.front() {
            if ts < t.saturating_add(RST_GRACE_NS) {
                break;
            }
            self.rst_pending.pop_front();
            self.finish(id, false);
        }
        while !data.is_empty() {
            let r = &mut self.rd[d];
            if !r.preface.is_empty() {
                let n = r.preface.len().min(data.len());
                if data[..n] == r.preface[..n] {
                    r.preface = &r.preface[n..];
                    data = &data[n..];
                    continue;
                }
                // Not the preface after all: read frames from here, and count it.
                st.frame_errors[FrameError::BadPreface.index()] += 1;
                r.preface = b"";
            }
            if !r.synced {
                let used = self.resync(d, ts, data, st);
                data = &data[used..];
                continue;
            }
            let used = self.step(d, ts, data, st);
            data = &data[used..];
        }
    }

    /// Looks for a chain of plausible frame headers; consumes bytes. When found, the bytes
    /// from the chain on are fed again (through `step`).
    fn resync(&mut self, d: usize, ts: u64, data: &[u8], st: &mut H2Stats) -> usize {
        let r = &mut self.rd[d];
        let take = data.len().min(RESYNC_WINDOW);
        r.buf.extend_from_slice(&data[..take]);
        // Frames larger than the window cannot be found again (their successor would not fit).
        let max = r
            .max_frame
            .max(frame::DEFAULT_MAX_FRAME)
            .min((RESYNC_WINDOW - 2 * HEADER_LEN) as u32);
        match frame::scan_chain(&r.buf, max, CHAIN) {
            frame::Chain::Found(at) => {
                st.resync_skipped_bytes += at as u64;
                let mut found = std::mem::take(&mut r.buf);
                found.drain(..at);
                r.synced = true;
                r.state = Rd::Head;
                let mut pos = 0;
                while pos < found.len() {
                    if !self.rd[d].synced {
                        // Lost again inside what was carried: start over with the rest.
                        self.rd[d].buf.extend_from_slice(&found[pos..]);
                        break;
                    }
                    pos += self.step(d, ts, &found[pos..], st);
                }
            }
            frame::Chain::NeedMore(at) => {
                st.resync_skipped_bytes += at as u64;
                r.buf.drain(..at);
            }
            frame::Chain::None => {
                st.resync_skipped_bytes += r.buf.len() as u64;
                r.buf.clear();
            }
        }
        take
    }

    /// One step of the frame reader on `data` (synced); returns bytes consumed (> 0).
    fn step(&mut self, d: usize, ts: u64, data: &[u8], st: &mut H2Stats) -> usize {
        let r = &mut self.rd[d];
        match r.state {
            Rd::Head => {
                let need = HEADER_LEN - r.buf.len();
                let n = need.min(data.len());
                r.buf.extend_from_slice(&data[..n]);
                if r.buf.len() < HEADER_LEN {
                    return n;
                }
                let Some(h) = FrameHeader::parse(&r.buf) else {
                    return n;
                };
                r.buf.clear();
                st.frames += 1;
                self.on_header(d, ts, h, st);
                n
            }
            Rd::Payload(h) => {
                let need = h.len as usize - r.buf.len();
                let n = need.min(data.len());
                r.buf.extend_from_slice(&data[..n]);
                if r.buf.len() == h.len as usize {
                    let payload = std::mem::take(&mut r.buf);
                    r.state = Rd::Head;
                    self.on_frame(d, ts, h, &payload, st);
                    let r = &mut self.rd[d];
                    if r.buf.capacity() == 0 && payload.capacity() <= 16 * 1024 {
                        r.buf = payload;
                        r.buf.clear();
                    }
                }
                n
            }
            Rd::Skip(left) => {
                let n = (left as usize).min(data.len());
                r.state = if n as u32 == left {
                    Rd::Head
                } else {
                    Rd::Skip(left - n as u32)
                };
                n
            }
            Rd::Data {
                h,
                left,
                pad,
                need_pad,
            } => {
                if need_pad {
                    let p = data[0] as u32;
                    let left = left - 1;
                    if p > left {
                        // Padding longer than the frame: a protocol error; skip the frame.
                        st.frame_errors[FrameError::BadPadding.index()] += 1;
                        r.state = if left == 0 { Rd::Head } else { Rd::Skip(left) };
                    } else {
                        r.state = Rd::Data {
                            h,
                            left,
                            pad: p,
                            need_pad: false,
                        };
                        if left == 0 {
                            self.data_end(d, ts, h);
                        }
                    }
                    return 1;
                }
                let n = (left as usize).min(data.len());
                let data_left = left - pad;
                let body = (data_left as usize).min(n);
                if body > 0 {
                    self.on_data(d, ts, h.stream, &data[..body], 0, st);
                }
                let left = left - n as u32;
                let r = &mut self.rd[d];
                r.state = Rd::Data {
                    h,
                    left,
                    pad: pad.min(left),
                    need_pad: false,
                };
                if left == 0 {
                    self.data_end(d, ts, h);
                }
                n
            }
        }
    }

    fn on_header(&mut self, d: usize, ts: u64, h: FrameHeader, st: &mut H2Stats) {
        let r = &mut self.rd[d];
        if h.len > r.max_frame {
            // Beyond what the peer allowed: count it, and read it anyway when it stays within
            // the absolute limit (a tap decodes what was sent).
            st.frame_errors[FrameError::FrameTooLarge.index()] += 1;
        }
        if h.reserved {
            st.frame_errors[FrameError::Reserved.index()] += 1;
        }
        if r.block.is_some() && h.kind != kind::CONTINUATION {
            // A header block must be followed by its CONTINUATIONs and nothing else.
            st.frame_errors[FrameError::InterruptedBlock.index()] += 1;
            if let Some(b) = r.block.take() {
                r.hpack.mark_lost();
                self.stream_partial(b.stream);
            }
        }
        let r = &mut self.rd[d];
        if h.kind > kind::CONTINUATION {
            // Extension frames (ALTSVC, ORIGIN, PRIORITY_UPDATE...) are skipped.
            st.frame_errors[FrameError::UnknownType.index()] += 1;
            r.state = if h.len == 0 {
                Rd::Head
            } else {
                Rd::Skip(h.len)
            };
            return;
        }
        if h.kind == kind::DATA {
            if h.stream == 0 {
                st.frame_errors[FrameError::BadStream.index()] += 1;
                r.state = if h.len == 0 {
                    Rd::Head
                } else {
                    Rd::Skip(h.len)
                };
                return;
            }
            let padded = h.flags & flag::PADDED != 0;
            r.state = Rd::Data {
                h,
                left: h.len,
                pad: 0,
                need_pad: padded,
            };
            if padded && h.len == 0 {
                st.frame_errors[FrameError::BadPadding.index()] += 1;
                r.state = Rd::Head;
            } else if h.len == 0 {
                r.state = Rd::Head;
                self.data_end(d, ts, h);
            }
            return;
        }
        if h.len > MAX_BUFFERED_PAYLOAD.min(frame::MAX_MAX_FRAME) {
            st.frame_errors[FrameError::FrameTooLarge.index()] += 1;
            if matches!(
                h.kind,
                kind::HEADERS | kind::CONTINUATION | kind::PUSH_PROMISE
            ) {
                r.hpack.mark_lost();
                self.stream_partial(h.stream);
            }
            self.rd[d].state = Rd::Skip(h.len);
            return;
        }
        if h.len == 0 {
            r.state = Rd::Head;
            self.on_frame(d, ts, h, &[], st);
        } else {
            r.state = Rd::Payload(h);
        }
    }

    /// A DATA frame's payload ended.
    fn data_end(&mut self, d: usize, ts: u64, h: FrameHeader) {
        self.rd[d].state = Rd::Head;
        let role = self.role_of(d);
        if let Some(s) = self.streams.get_mut(&h.stream) {
            let side = &mut s.sides[role].out;
            side.end_ts = ts;
            if side.start_ts == 0 {
                side.start_ts = ts;
            }
            if h.end_stream() {
                side.ended = true;
            }
        }
        if h.end_stream() {
            self.maybe_finish(h.stream);
        }
    }

    /// Whether stream `id` was reset and waits for the peer.
    fn rst_waiting(&self, id: u32) -> bool {
        self.streams.get(&id).is_some_and(|s| s.rst.is_some())
    }

    fn role_of(&self, d: usize) -> usize {
        if self.is_client(d) {
            REQ
        } else {
            RESP
        }
    }

    /// DATA payload bytes (or `gap` lost bytes when `data` is empty).
    fn on_data(&mut self, d: usize, ts: u64, id: u32, data: &[u8], gap: u64, st: &mut H2Stats) {
        let role = self.role_of(d);
        let cap = self.cfg.max_body_bytes;
        if !self.streams.contains_key(&id) {
            // On a lossy connection DATA may be all that is left of a stream whose headers
            // were not seen; elsewhere it belongs to a finished stream.
            let opened = self.lossy && self.open(id, ts, st);
            if let Some(s) = self.streams.get_mut(&id) {
                s.partial = true;
            }
            if !opened {
                st.frame_errors[FrameError::UnknownStream.index()] += 1;
                return;
            }
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let side = &mut s.sides[role];
        let o = &mut side.out;
        if o.start_ts == 0 {
            o.start_ts = ts;
        }
        o.end_ts = ts;
        o.body_len += data.len() as u64 + gap;
        st.data_bytes += data.len() as u64;
        if gap > 0 {
            o.gap_bytes += gap;
            s.gap = true;
            if let Some(r) = side.reader.as_mut() {
                r.lose();
            }
            return;
        }
        if o.body.len() < cap {
            let n = (cap - o.body.len()).min(data.len());
            o.body.extend_from_slice(&data[..n]);
        }
        if let Some(r) = side.reader.as_mut() {
            r.feed(data);
        }
    }

    fn on_frame(&mut self, d: usize, ts: u64, h: FrameHeader, p: &[u8], st: &mut H2Stats) {
        match h.kind {
            kind::HEADERS => {
                if h.stream == 0 {
                    st.frame_errors[FrameError::BadStream.index()] += 1;
                    // Its block still changed the table.
                    self.rd[d].hpack.mark_lost();
                    return;
                }
                let Some(frag) = strip(p, h.flags, true) else {
                    st.frame_errors[FrameError::BadPadding.index()] += 1;
                    self.rd[d].hpack.mark_lost();
                    self.stream_partial(h.stream);
                    return;
                };
                self.block_start(d, ts, h, None, frag, st);
            }
            kind::PUSH_PROMISE => {
                let Some(rest) = strip(p, h.flags, false) else {
                    st.frame_errors[FrameError::BadPadding.index()] += 1;
                    self.rd[d].hpack.mark_lost();
                    return;
                };
                let Some((pid, frag)) = rest.split_first_chunk::<4>() else {
                    st.frame_errors[FrameError::BadLength.index()] += 1;
                    self.rd[d].hpack.mark_lost();
                    return;
                };
                let promised = u32::from_be_bytes(*pid) & 0x7fff_ffff;
                self.block_start(d, ts, h, Some(promised), frag, st);
            }
            kind::CONTINUATION => {
                let max = self.cfg.max_header_block;
                let r = &mut self.rd[d];
                match r.block.as_mut() {
                    Some(b) if b.stream == h.stream => {
                        if b.buf.len() + p.len() > max {
                            st.frame_errors[FrameError::HeaderBlockTooLarge.index()] += 1;
                            r.block = None;
                            r.hpack.mark_lost();
                            self.stream_partial(h.stream);
                            return;
                        }
                        b.buf.extend_from_slice(p);
                        if h.end_headers() {
                            if let Some(b) = r.block.take() {
                                self.block_done(d, b, st);
                            }
                        }
                    }
                    _ => {
                        // A fragment without its start (lost to a gap): its insertions are
                        // unknown.
                        st.frame_errors[FrameError::OrphanContinuation.index()] += 1;
                        r.block = None;
                        r.hpack.mark_lost();
                        self.stream_partial(h.stream);
                    }
                }
            }
            kind::RST_STREAM => {
                let Some(code) = p.first_chunk::<4>().filter(|_| p.len() == 4) else {
                    st.frame_errors[FrameError::BadLength.index()] += 1;
                    return;
                };
                st.rst_streams += 1;
                let role = self.role_of(d);
                if let Some(s) = self.streams.get_mut(&h.stream) {
                    let first = s.rst.is_none();
                    s.rst = Some(u32::from_be_bytes(*code));
                    let side = &mut s.sides[role].out;
                    side.end_ts = ts;
                    side.ended = true;
                    let other_done = s.sides[role ^ 1].out.ended || !first;
                    if other_done {
                        self.finish(h.stream, false);
                    } else {
                        // The peer's frames sent before it saw the reset may still come.
                        self.rst_pending.push_back((h.stream, ts));
                        if self.rst_pending.len() > MAX_RST_PENDING {
                            if let Some((id, _)) = self.rst_pending.pop_front() {
                                self.finish(id, false);
                            }
                        }
                    }
                }
            }
            kind::SETTINGS => {
                if h.flags & flag::ACK != 0 {
                    return;
                }
                if !p.len().is_multiple_of(6) {
                    st.frame_errors[FrameError::BadLength.index()] += 1;
                    return;
                }
                for s in p.chunks_exact(6) {
                    let id = u16::from_be_bytes([s[0], s[1]]);
                    let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                    // What one side announces governs what the other sends.
                    let other = &mut self.rd[d ^ 1];
                    match id {
                        setting::MAX_FRAME_SIZE => {
                            if (frame::DEFAULT_MAX_FRAME..=frame::MAX_MAX_FRAME).contains(&v) {
                                other.max_frame = v;
                            } else {
                                st.frame_errors[FrameError::BadSetting.index()] += 1;
                            }
                        }
                        // The encoder announces the size it uses with a size update in a header
                        // block; the table's hard cap holds whatever is announced.
                        setting::HEADER_TABLE_SIZE if v as usize > self.cfg.hpack_cap => {
                            st.hpack_table_capped += 1;
                        }
                        _ => {}
                    }
                }
            }
            kind::GOAWAY => {
                if p.len() < 8 {
                    st.frame_errors[FrameError::BadLength.index()] += 1;
                    return;
                }
                st.goaways += 1;
                self.goaway = true;
                let last = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
                // Streams the sender never processed will get no answer: finish them now.
                let sender_is_server = !self.is_client(d);
                let ids: Vec<u32> = self.streams.keys().copied().collect();
                for id in ids {
                    let initiated_by_receiver = (id % 2 == 1) == sender_is_server;
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.goaway = true;
                    }
                    if initiated_by_receiver && id > last {
                        self.finish(id, true);
                    }
                }
            }
            kind::PRIORITY | kind::PING | kind::WINDOW_UPDATE => {}
            _ => {}
        }
    }

    fn block_start(
        &mut self,
        d: usize,
        ts: u64,
        h: FrameHeader,
        promised: Option<u32>,
        frag: &[u8],
        st: &mut H2Stats,
    ) {
        let b = BlockBuild {
            stream: h.stream,
            promised,
            end_stream: h.end_stream(),
            buf: frag.to_vec(),
            ts,
        };
        if frag.len() > self.cfg.max_header_block {
            st.frame_errors[FrameError::HeaderBlockTooLarge.index()] += 1;
            self.rd[d].hpack.mark_lost();
            self.stream_partial(h.stream);
            return;
        }
        if h.end_headers() {
            self.block_done(d, b, st);
        } else {
            self.rd[d].block = Some(b);
        }
    }

    /// A whole header block: decode it and apply it to its stream.
    fn block_done(&mut self, d: usize, b: BlockBuild, st: &mut H2Stats) {
        let block = self.rd[d].hpack.decode(&b.buf, self.cfg.max_headers);
        st.header_blocks += 1;
        for e in &block.errors {
            st.hpack_errors[crate::stats::hpack_index(*e)] += 1;
        }
        let partial = !block.complete();
        let f = Fields::of(block);
        if self.client_dir.is_none() {
            if b.promised.is_some() {
                // Only a server sends PUSH_PROMISE (its block is a request's, though).
                self.client_dir = Some(d ^ 1);
            } else if f.method.is_some() || f.path.is_some() {
                self.client_dir = Some(d);
            } else if f.status.is_some() {
                self.client_dir = Some(d ^ 1);
            }
        }
        let ts = b.ts;
        if let Some(pid) = b.promised {
            // The promised request (sent by the server, encoded with its table).
            st.pushes += 1;
            if self.open(pid, ts, st) {
                if let Some(s) = self.streams.get_mut(&pid) {
                    s.pushed = true;
                    s.partial |= partial;
                    let o = &mut s.sides[REQ].out;
                    f.apply_head(o);
                    o.head_seen = true;
                    o.start_ts = ts;
                    o.end_ts = ts;
                    o.ended = true;
                    Self::grpc_setup(s, &self.cfg);
                }
            }
            return;
        }
        let id = b.stream;
        // Which side the block belongs to: what its pseudo-headers say, else its direction.
        let role = if f.method.is_some() || f.path.is_some() {
            REQ
        } else if f.status.is_some() {
            RESP
        } else {
            self.role_of(d)
        };
        if !self.streams.contains_key(&id) && !self.open(id, ts, st) {
            return;
        }
        let cfg = self.cfg.clone();
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.partial |= partial;
        let o = &mut s.sides[role].out;
        if o.start_ts == 0 {
            o.start_ts = ts;
        }
        o.end_ts = ts;
        let informational = f.status.is_some_and(|c| (100..200).contains(&c));
        if informational {
            // 1xx before the final response (RFC 9113 8.1): not the response's head.
            st.informational += 1;
            if o.start_ts == ts && !o.head_seen {
                o.start_ts = 0;
            }
        } else if !o.head_seen && (f.has_pseudo || !b.end_stream || role == REQ) {
            o.head_seen = true;
            f.apply_head(o);
            Self::grpc_setup(s, &cfg);
        } else {
            o.trailers = f.regular;
        }
        if b.end_stream {
            s.sides[role].out.ended = true;
            self.maybe_finish(id);
        }
    }

    /// Creates a stream's readers for gRPC messages when its request says gRPC.
    fn grpc_setup(s: &mut Stream, cfg: &H2Config) {
        if s.grpc {
            return;
        }
        let is_grpc = s.sides.iter().any(|sd| {
            sd.out
                .headers
                .iter()
                .any(|(n, v)| n == "content-type" && v.starts_with("application/grpc"))
        });
        if is_grpc {
            s.grpc = true;
            for sd in s.sides.iter_mut() {
                let mut r = MessageReader::new(cfg.grpc_keep_messages, cfg.max_body_bytes);
                if sd.out.body_len > 0 {
                    if sd.out.body.len() as u64 == sd.out.body_len && sd.out.gap_bytes == 0 {
                        // DATA came before we knew it was gRPC, all of it captured: read it now.
                        r.feed(&sd.out.body);
                    } else {
                        // Its framing is unknown.
                        r.lose();
                    }
                }
                sd.reader = Some(Box::new(r));
            }
        }
    }

    /// Opens stream `id` for a header block; false when it belongs to a finished stream.
    fn open(&mut self, id: u32, _ts: u64, st: &mut H2Stats) -> bool {
        if self.streams.contains_key(&id) {
            return true;
        }
        let parity = (id & 1) as usize;
        if id <= self.max_id[parity] && (!self.lossy || self.finished.contains(&id)) {
            st.frame_errors[FrameError::ClosedStream.index()] += 1;
            return false;
        }
        self.max_id[parity] = self.max_id[parity].max(id);
        while self.streams.len() >= self.cfg.max_streams {
            let Some((&oldest, _)) = self.streams.iter().next() else {
                break;
            };
            st.streams_evicted += 1;
            self.finish_evicted(oldest);
        }
        st.streams += 1;
        self.streams.insert(id, Stream::default());
        true
    }

    fn stream_partial(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.partial = true;
        }
    }

    fn maybe_finish(&mut self, id: u32) {
        let done = self
            .streams
            .get(&id)
            .is_some_and(|s| s.sides[REQ].out.ended && s.sides[RESP].out.ended);
        if done {
            if self.rst_waiting(id) {
                self.rst_pending.retain(|(i, _)| *i != id);
            }
            self.finish(id, false);
        }
    }

    fn finish_evicted(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            let mut o = Self::out_of(id, s, self.goaway);
            o.evicted = true;
            o.incomplete = true;
            self.out.push(o);
        }
    }

    fn finish(&mut self, id: u32, incomplete: bool) {
        if let Some(s) = self.streams.remove(&id) {
            if self.lossy {
                if self.finished.len() >= FINISHED_RING {
                    self.finished.pop_front();
                }
                self.finished.push_back(id);
            }
            let mut o = Self::out_of(id, s, false);
            o.incomplete |= incomplete;
            self.out.push(o);
        }
    }

    fn out_of(id: u32, s: Stream, goaway: bool) -> StreamOut {
        let [req, resp] = s.sides;
        let seen =
            |sd: &Side| sd.out.head_seen || sd.out.body_len > 0 || !sd.out.trailers.is_empty();
        let side = |sd: Side| {
            let mut o = sd.out;
            o.grpc = sd.reader.map(|r| r.finish());
            o
        };
        let request = if seen(&req) { Some(side(req)) } else { None };
        let response = if seen(&resp) { Some(side(resp)) } else { None };
        let incomplete = request
            .as_ref()
            .is_some_and(|r| !r.ended && s.rst.is_none())
            || response
                .as_ref()
                .is_some_and(|r| !r.ended && s.rst.is_none());
        StreamOut {
            id,
            request,
            response,
            pushed: s.pushed,
            upgraded: s.upgraded,
            rst: s.rst,
            goaway: s.goaway || goaway,
            headers_partial: s.partial,
            gap: s.gap,
            incomplete,
            evicted: false,
            grpc: s.grpc,
        }
    }

    /// `len` bytes of direction `d` never arrived.
    pub fn gap(&mut self, d: usize, ts: u64, len: u64, st: &mut H2Stats) {
        let d = d & 1;
        st.gap_bytes += len;
        let r = &mut self.rd[d];
        if let Rd::Data {
            h,
            left,
            pad,
            need_pad: false,
        } = r.state
        {
            if len <= left as u64 {
                // Inside one DATA payload: the framing survives; the body has a hole.
                let data_left = (left - pad) as u64;
                let in_body = len.min(data_left);
                let left = left - len as u32;
                r.state = Rd::Data {
                    h,
                    left,
                    pad: pad.min(left),
                    need_pad: false,
                };
                if in_body > 0 {
                    self.on_data(d, ts, h.stream, &[], in_body, st);
                }
                if left == 0 {
                    self.data_end(d, ts, h);
                }
                return;
            }
        }
        // The framing is lost: look for frame headers again. Header blocks may have been
        // lost with it, so this direction's HPACK history is unknown from here.
        st.resyncs += 1;
        self.lossy = true;
        r.synced = false;
        r.state = Rd::Head;
        r.buf.clear();
        r.preface = b"";
        r.hpack.mark_lost();
        if let Some(b) = r.block.take() {
            self.stream_partial(b.stream);
        }
        let role = self.role_of(d);
        for s in self.streams.values_mut() {
            let sd = &mut s.sides[role];
            if !sd.out.ended {
                s.gap = true;
                if let Some(r) = sd.reader.as_mut() {
                    r.lose();
                }
            }
        }
    }

    /// The connection ended: every stream still open is finished (incomplete).
    pub fn close(&mut self, st: &mut H2Stats) {
        // Bytes held while resynchronising: at the end a frame that ends exactly where the
        // bytes end is proof enough (nothing more will come to confirm it).
        for d in 0..2 {
            let r = &mut self.rd[d];
            if r.synced || r.buf.is_empty() {
                continue;
            }
            let max = r.max_frame.max(frame::DEFAULT_MAX_FRAME);
            let buf = std::mem::take(&mut r.buf);
            if let Some(at) = frame::find_chain(&buf, max, CHAIN) {
                r.synced = true;
                r.state = Rd::Head;
                let mut pos = at;
                while pos < buf.len() && self.rd[d].synced {
                    pos += self.step(d, self.last_ts, &buf[pos..], st);
                }
            }
        }
        self.rst_pending.clear();
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            // A reset stream ended by the reset, not by the close.
            let reset = self.rst_waiting(id);
            self.finish(id, !reset);
        }
    }
}

fn side_heap(o: &SideOut) -> usize {
    let hdrs = |h: &Vec<(String, String)>| {
        h.capacity() * 48
            + h.iter()
                .map(|(a, b)| a.capacity() + b.capacity())
                .sum::<usize>()
    };
    o.body.capacity()
        + hdrs(&o.headers)
        + hdrs(&o.trailers)
        + [&o.method, &o.path, &o.scheme, &o.authority]
            .iter()
            .map(|s| s.as_ref().map_or(0, |s| s.capacity()))
            .sum::<usize>()
}

/// Removes padding (and, for HEADERS, the priority fields) from a payload; None when the
/// padding is longer than the payload.
fn strip(p: &[u8], flags: u8, headers: bool) -> Option<&[u8]> {
    let mut p = p;
    let mut pad = 0usize;
    if flags & flag::PADDED != 0 {
        let (&n, rest) = p.split_first()?;
        pad = n as usize;
        p = rest;
    }
    if headers && flags & flag::PRIORITY != 0 {
        p = p.get(5..)?;
    }
    let end = p.len().checked_sub(pad)?;
    Some(&p[..end])
}

/// A decoded block split into pseudo-headers and regular fields.
struct Fields {
    method: Option<String>,
    path: Option<String>,
    scheme: Option<String>,
    authority: Option<String>,
    status: Option<u16>,
    has_pseudo: bool,
    regular: Vec<(String, String)>,
}

impl Fields {
    fn of(b: Block) -> Fields {
        let mut f = Fields {
            method: None,
            path: None,
            scheme: None,
            authority: None,
            status: None,
            has_pseudo: false,
            regular: Vec::with_capacity(b.fields.len()),
        };
        for fld in b.fields {
            // Fields whose name or value is unknown are left out (the stream is flagged
            // `headers_partial`).
            let (Some(n), Some(v)) = (fld.name, fld.value) else {
                continue;
            };
            match n.as_str() {
                ":method" => f.method = Some(v),
                ":path" => f.path = Some(v),
                ":scheme" => f.scheme = Some(v),
                ":authority" => f.authority = Some(v),
                ":status" => f.status = v.parse().ok(),
                // Unknown pseudo-headers are malformed (RFC 9113 8.3); they are dropped.
                p if p.starts_with(':') => {}
                _ => {
                    f.regular.push((n, v));
                    continue;
                }
            }
            f.has_pseudo = true;
        }
        f
    }

    fn apply_head(self, o: &mut SideOut) {
        o.method = self.method;
        o.path = self.path;
        o.scheme = self.scheme;
        o.authority = self.authority;
        o.status = self.status;
        o.headers = self.regular;
    }
}

/// The gRPC status of a finished stream: `grpc-status` from the trailers, or from the
/// response headers (Trailers-Only), or synthesised from RST_STREAM.
pub fn grpc_status(s: &StreamOut) -> Option<(u32, Option<String>)> {
    let resp = s.response.as_ref();
    let find =
        |h: &[(String, String)], n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    for h in resp.iter().flat_map(|r| [&r.trailers, &r.headers]) {
        if let Some(code) = find(h, "grpc-status").and_then(|v| v.trim().parse().ok()) {
            // An empty grpc-message (grpcio sends one with every status) says nothing.
            let msg = find(h, "grpc-message")
                .filter(|m| !m.is_empty())
                .map(|m| grpc::percent_decode(&m));
            return Some((code, msg));
        }
    }
    s.rst.map(|c| (grpc::status_from_rst(c), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::kind;

    pub(crate) fn frame(k: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let l = (payload.len() as u32).to_be_bytes();
        let mut v = vec![l[1], l[2], l[3], k, flags];
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// Literal with incremental indexing, new name, no Huffman (names and values < 127 bytes).
    pub(crate) fn lit(n: &str, v: &str) -> Vec<u8> {
        let mut b = vec![0x40, n.len() as u8];
        b.extend_from_slice(n.as_bytes());
        b.push(v.len() as u8);
        b.extend_from_slice(v.as_bytes());
        b
    }

    fn settings() -> Vec<u8> {
        frame(kind::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])
    }

    fn run(c2s: &[&[u8]], s2c: &[&[u8]]) -> (Vec<StreamOut>, H2Stats) {
        let mut st = H2Stats::default();
        let mut h = H2Conn::new(&H2Config::default(), Start::PrefaceLine, 1);
        for (i, chunk) in c2s.iter().enumerate() {
            h.feed(0, 10 + i as u64, chunk, &mut st);
        }
        for (i, chunk) in s2c.iter().enumerate() {
            h.feed(1, 100 + i as u64, chunk, &mut st);
        }
        h.close(&mut st);
        let mut out = Vec::new();
        h.drain_into(&mut out);
        (out, st)
    }

    #[test]
    fn get_with_continuation_data_and_trailers() {
        let mut req = b"SM\r\n\r\n".to_vec();
        req.extend(settings());
        // HEADERS (no END_HEADERS) + CONTINUATION; :method GET, :scheme http, :path /, authority.
        let mut blk = vec![0x82, 0x86, 0x84];
        blk.extend(lit(":authority", "example"));
        blk.extend(lit("user-agent", "t"));
        req.extend(frame(kind::HEADERS, flag::END_STREAM, 1, &blk[..5]));
        req.extend(frame(kind::CONTINUATION, flag::END_HEADERS, 1, &blk[5..]));
        let mut resp = settings();
        let mut rb = vec![0x88];
        rb.extend(lit("content-type", "text/plain"));
        resp.extend(frame(kind::HEADERS, flag::END_HEADERS, 1, &rb));
        // Padded DATA: pad length 3.
        let mut d = vec![3];
        d.extend_from_slice(b"hello");
        d.extend_from_slice(&[0, 0, 0]);
        resp.extend(frame(kind::DATA, flag::PADDED, 1, &d));
        resp.extend(frame(kind::DATA, 0, 1, b" world"));
        resp.extend(frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            1,
            &lit("x-checksum", "abc"),
        ));
        // Split the server bytes at every offset: the result must not change.
        for cut in 0..resp.len() {
            let (out, st) = run(&[&req], &[&resp[..cut], &resp[cut..]]);
            assert_eq!(out.len(), 1, "cut {cut}");
            let s = &out[0];
            let rq = s.request.as_ref().unwrap();
            assert_eq!(rq.method.as_deref(), Some("GET"));
            assert_eq!(rq.path.as_deref(), Some("/"));
            assert_eq!(rq.authority.as_deref(), Some("example"));
            assert_eq!(rq.headers, vec![("user-agent".into(), "t".into())]);
            let rs = s.response.as_ref().unwrap();
            assert_eq!(rs.status, Some(200));
            assert_eq!(rs.body, b"hello world");
            assert_eq!(rs.body_len, 11);
            assert_eq!(rs.trailers, vec![("x-checksum".into(), "abc".into())]);
            assert!(!s.incomplete && !s.headers_partial && s.rst.is_none());
            assert_eq!(st.frame_errors.iter().sum::<u64>(), 0);
        }
    }

    #[test]
    fn rst_stream_and_grpc() {
        let mut req = b"SM\r\n\r\n".to_vec();
        let mut blk = vec![0x83, 0x86];
        blk.extend(lit(":path", "/pkg.Svc/Do"));
        blk.extend(lit("content-type", "application/grpc"));
        req.extend(frame(kind::HEADERS, flag::END_HEADERS, 1, &blk));
        let mut msg = vec![0, 0, 0, 0, 3, 8, 1, 2];
        msg.extend([0, 0, 0, 0, 0]);
        req.extend(frame(kind::DATA, flag::END_STREAM, 1, &msg));
        // Stream 3: reset by the client.
        req.extend(frame(
            kind::HEADERS,
            flag::END_HEADERS,
            3,
            &[0x83, 0x86, 0xbf, 0xbe],
        ));
        req.extend(frame(kind::RST_STREAM, 0, 3, &[0, 0, 0, 8]));
        let mut resp = Vec::new();
        let mut rb = vec![0x88];
        rb.extend(lit("content-type", "application/grpc"));
        resp.extend(frame(kind::HEADERS, flag::END_HEADERS, 1, &rb));
        resp.extend(frame(kind::DATA, 0, 1, &[0, 0, 0, 0, 2, 8]));
        resp.extend(frame(kind::DATA, 0, 1, &[7]));
        let mut tb = lit("grpc-status", "5");
        tb.extend(lit("grpc-message", "not%20found"));
        resp.extend(frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            1,
            &tb,
        ));
        let (out, _) = run(&[&req], &[&resp]);
        assert_eq!(out.len(), 2);
        let rst = out.iter().find(|s| s.id == 3).unwrap();
        assert_eq!(rst.rst, Some(8));
        assert_eq!(
            rst.request.as_ref().unwrap().path.as_deref(),
            Some("/pkg.Svc/Do")
        );
        assert_eq!(grpc_status(rst), Some((1, None)));
        let g = out.iter().find(|s| s.id == 1).unwrap();
        assert!(g.grpc);
        let rq = g.request.as_ref().unwrap().grpc.as_ref().unwrap();
        assert_eq!((rq.count, rq.sizes.clone()), (2, vec![3, 0]));
        let rs = g.response.as_ref().unwrap().grpc.as_ref().unwrap();
        assert_eq!(rs.first[0].bytes, vec![8, 7]);
        assert_eq!(grpc_status(g), Some((5, Some("not found".into()))));
    }

    #[test]
    fn midstream_pickup_recovers_static_and_literal_fields() {
        let mut st = H2Stats::default();
        let mut h = H2Conn::new(&H2Config::default(), Start::Midstream, 1);
        // Picked up mid-frame: junk first, then frames. Request uses an unknown dynamic index.
        let mut c = b"\x01\x02junk-of-an-earlier-frame".to_vec();
        c.extend(frame(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
        let mut blk = vec![0x82, 0x86, 0xc5];
        blk.extend(lit(":path", "/x"));
        c.extend(frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            9,
            &blk,
        ));
        h.feed(0, 5, &c, &mut st);
        let s = frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            9,
            &[0x8d],
        );
        h.feed(1, 6, &s, &mut st);
        // The lone response frame is confirmed by the end of the connection.
        h.close(&mut st);
        let mut out = Vec::new();
        h.drain_into(&mut out);
        assert_eq!(out.len(), 1);
        let o = &out[0];
        assert!(o.headers_partial);
        assert_eq!(o.request.as_ref().unwrap().path.as_deref(), Some("/x"));
        assert_eq!(o.request.as_ref().unwrap().method.as_deref(), Some("GET"));
        assert_eq!(o.response.as_ref().unwrap().status, Some(404));
        assert_eq!(
            st.hpack_errors[crate::HpackFailure::UnknownIndex.index()],
            1
        );
    }

    #[test]
    fn gap_inside_data_keeps_framing_and_gap_elsewhere_resyncs() {
        let mut st = H2Stats::default();
        let mut h = H2Conn::new(&H2Config::default(), Start::PrefaceLine, 1);
        let mut c = b"SM\r\n\r\n".to_vec();
        c.extend(frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            1,
            &[0x82, 0x86, 0x84],
        ));
        h.feed(0, 1, &c, &mut st);
        let mut s = frame(kind::HEADERS, flag::END_HEADERS, 1, &[0x88]);
        let data = frame(kind::DATA, flag::END_STREAM, 1, &[b'a'; 100]);
        s.extend_from_slice(&data[..20]);
        h.feed(1, 2, &s, &mut st);
        h.gap(1, 3, 50, &mut st);
        h.feed(1, 4, &data[70..], &mut st);
        let mut out = Vec::new();
        h.drain_into(&mut out);
        assert_eq!(out.len(), 1);
        let r = out[0].response.as_ref().unwrap();
        assert_eq!((r.body_len, r.gap_bytes, r.ended), (100, 50, true));
        assert!(out[0].gap);
        // A gap outside DATA: resync finds the next frames.
        let mut c = frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            3,
            &[0x82, 0x86, 0x84],
        );
        c.extend(frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            5,
            &[0x82, 0x86, 0x85],
        ));
        h.gap(0, 5, 7, &mut st);
        h.feed(0, 6, &c[4..], &mut st);
        h.feed(
            1,
            7,
            &frame(
                kind::HEADERS,
                flag::END_HEADERS | flag::END_STREAM,
                5,
                &[0x8d],
            ),
            &mut st,
        );
        h.close(&mut st);
        h.drain_into(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].id, 5);
        assert_eq!(
            out[1].request.as_ref().unwrap().path.as_deref(),
            Some("/index.html")
        );
        assert_eq!(st.resyncs, 1);
    }

    #[test]
    fn streams_are_bounded_and_push_is_its_own_stream() {
        let cfg = H2Config {
            max_streams: 4,
            ..Default::default()
        };
        let mut st = H2Stats::default();
        let mut h = H2Conn::new(&cfg, Start::PrefaceLine, 1);
        let mut c = b"SM\r\n\r\n".to_vec();
        for id in (1..40).step_by(2) {
            c.extend(frame(
                kind::HEADERS,
                flag::END_HEADERS,
                id,
                &[0x82, 0x86, 0x84],
            ));
        }
        h.feed(0, 1, &c, &mut st);
        assert!(h.open_streams() <= 4);
        assert_eq!(st.streams_evicted, 16);
        let mut pp = vec![0, 0, 0, 2];
        pp.extend([0x82, 0x86, 0x85]);
        let mut s = frame(kind::PUSH_PROMISE, flag::END_HEADERS, 39, &pp);
        s.extend(frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            2,
            &[0x88],
        ));
        h.feed(1, 2, &s, &mut st);
        let mut out = Vec::new();
        h.drain_into(&mut out);
        let p = out
            .iter()
            .find(|o| o.id == 2)
            .unwrap_or_else(|| panic!("{out:#?} {st:?}"));
        assert!(p.pushed && !p.incomplete);
        assert_eq!(
            p.request.as_ref().unwrap().path.as_deref(),
            Some("/index.html")
        );
    }

    proptest::proptest! {
        #[test]
        fn hostile_bytes_never_panic(a in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
                                     b in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
                                     g in 0u64..100) {
            let mut st = H2Stats::default();
            for start in [Start::PrefaceLine, Start::Upgrade, Start::Midstream] {
                let mut h = H2Conn::new(&H2Config { max_streams: 8, ..Default::default() }, start, 1);
                h.feed(0, 1, &a, &mut st);
                h.feed(1, 2, &b, &mut st);
                h.gap(0, 3, g, &mut st);
                h.feed(0, 4, &b, &mut st);
                h.feed(1, 5, &a, &mut st);
                proptest::prop_assert!(h.open_streams() <= 8);
                h.close(&mut st);
            }
        }
    }
}
