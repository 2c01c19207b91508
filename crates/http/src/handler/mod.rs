//! The per-worker HTTP/1 stream handler: two incremental parsers per connection, FIFO pairing of
//! requests and responses, and the exchange queue the caller drains.
//!
//! Pairing never guesses. After anything that can hide whole messages (a gap outside a body of
//! known length, a parse error, an oversized head) the connection is "uncertain": responses are
//! paired only once a synchronisation point proves which request they answer (see
//! [`Conn`]); until then they are emitted with `request: null`, and the requests they might have
//! answered with `response: null`.
//!
//! TCP acknowledgements are such proof. Every response segment acks how much of the client
//! stream the server had received, which brackets the one request it can answer (see
//! `Conn::ack_pick`); every request acks how much of the server stream the client had, which
//! tells a waiting client from a pipelining one. Responses that arrive before the requests they
//! answer (the reassembler holds the client direction at a hole while the server direction
//! flows on) wait until the client stream reaches their ack.
//!
//! Counting is proof too. When a gap cuts a response while more requests wait, the cut
//! response is its request's, and the responses after it are paired in order but held until
//! every request has been answered by exactly one response (see `Prov`).
//!
//! Requests awaiting responses are held under a byte budget per connection and per handler;
//! beyond it they keep a compact placeholder (`Brief`) so that a late response still pairs.
//!
//! # Where things are
//!
//! This module holds the state (the limits, a connection's two parsers and its queue of
//! pending requests, the handler) and the entry points: the public API and the
//! [`StreamHandler`] implementation the reassembler calls. What is done with that state is split
//! the way a message travels, one `impl HttpHandler` block per file (libhtp-rs likewise keeps
//! requests, responses and transactions apart):
//!
//! - `parse`: bytes to messages (the data path, heads, bodies, resynchronisation);
//! - `pairing`: which request a response answers (FIFO, acknowledgements, held responses) and
//!   emission of finished exchanges in request order;
//! - `count`: pairing proven by counting after a response-side gap (`Prov`);
//! - `budget`: the pending budgets, placeholders and what a connection's memory costs;
//! - `emit`: a finished message stored with its request, and an exchange built into a record;
//! - `loss`: gaps, cut heads, parse errors and the ends of directions.

use std::collections::VecDeque;
use std::ops::{Index, IndexMut};

use vxtap_flow::{CloseReason, ConnMeta, Direction, GapReason, StreamHandler, Verdict};

use crate::chunked::ChunkDecoder;
use crate::decode::Decoder;
use crate::exchange::{Content, Exchange, Message};
use crate::flags::{Flag, FlagSet};
use crate::stats::HttpStats;

// The behaviour on the state above, one concern per file (see the module docs).
mod budget;
mod count;
mod emit;
mod h2;
mod loss;
mod pairing;
mod parse;

pub use emit::exchange_id;

/// Upper bound on `max_headers` (the header array lives on the stack).
pub const HEADERS_LIMIT: usize = 512;
/// Bytes of skipped data kept while resynchronising, so that a start line cut by a segment
/// boundary is still found.
const RESYNC_CARRY: usize = 4096;
/// Bytes examined per resync step (bounds the carry buffer).
const RESYNC_PIECE: usize = 16 * 1024;
/// Longest request line the resync accepts as plausible.
const RESYNC_LINE_MAX: usize = 8 * 1024;
/// Head buffer capacity kept across messages.
const HEAD_BUF_KEEP: usize = 4096;
/// Interim responses kept per exchange; more are counted and dropped.
const MAX_INTERIM: usize = 8;
/// No request (for `Conn::pipelined_by`): sequence numbers count up from 0 and never get here.
const NO_REQUEST: u64 = u64::MAX;
/// What one pending-request placeholder costs (see [`HttpConfig::max_pending_bytes`]).
pub const PLACEHOLDER_BYTES: usize = std::mem::size_of::<Brief>();
/// Smallest pending budget accepted: room for a few full records.
const MIN_PENDING_BYTES: usize = 16 * 1024;
/// What a full pending entry costs before its record's fields are known.
const FULL_ENTRY_BYTES: usize =
    std::mem::size_of::<Entry>() + std::mem::size_of::<Pending>() + std::mem::size_of::<MsgBuild>();
/// Waiting requests examined for evidence of pipelining per new request (see `push_request`).
const PIPELINE_SCAN: usize = 64;
/// Responses whose acks can place them held at most per connection (see `Conn::early`).
const MAX_EARLY_ACKED: usize = 64;

/// Limits and options of the HTTP layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest message head (start line + fields) accepted; default 64 KiB.
    pub max_head_bytes: usize,
    /// Most header fields per head (capped at [`HEADERS_LIMIT`]); default 128.
    pub max_headers: usize,
    /// Body bytes captured per message; 0 captures none; default 4096.
    pub max_body_bytes: usize,
    /// Inflate gzip, deflate, br and zstd bodies into the emitted body; default false.
    pub decode_content: bool,
    /// Bound on decoded bytes per message when decoding (the emitted body is further capped by
    /// `max_body_bytes`); default 64 KiB.
    pub max_decoded_bytes: usize,
    /// Bytes of pending request records (requests awaiting their responses, with the responses
    /// held for them) one connection may keep; default 4 MiB. Beyond it, a new request keeps
    /// only a compact placeholder ([`PLACEHOLDER_BYTES`]: its position, method and timestamp,
    /// what pairing and HEAD/CONNECT framing need), so that its response still finds it; its
    /// record is emitted with the method alone, flagged `pipeline_overflow`. Placeholders are
    /// kept up to the same amount again; beyond that the oldest request is given up.
    pub max_pending_bytes: usize,
    /// Bytes of pending request records across all connections of one handler (one worker);
    /// default 64 MiB. Over it, new requests keep only placeholders, as above.
    pub max_pending_bytes_total: usize,
    /// gRPC messages also get a schemaless protobuf dump (`--grpc-decode`); default false.
    pub grpc_decode: bool,
    /// Body bytes kept per message for a shadow replay ([`crate::Message::replay_body`]),
    /// whatever `max_body_bytes` says; 0 (the default) keeps none. Captured in the same buffer
    /// (charged to the same budget) and trimmed back to `max_body_bytes` for the record, so the
    /// record is exactly what it would be without it.
    pub replay_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_head_bytes: 64 * 1024,
            max_headers: 128,
            max_body_bytes: 4096,
            decode_content: false,
            max_decoded_bytes: 64 * 1024,
            max_pending_bytes: 4 << 20,
            max_pending_bytes_total: 64 << 20,
            grpc_decode: false,
            replay_body_bytes: 0,
        }
    }
}

/// A message being read: head already parsed, body in progress.
#[derive(Debug)]
struct MsgBuild {
    msg: Message,
    raw: Vec<u8>,
    decoder: Option<Box<Decoder>>,
    /// What Content-Encoding (and a transfer coding other than chunked) says of the raw body
    /// bytes.
    content: Content,
    start_ts: u64,
    end_ts: u64,
    flags: FlagSet,
    /// The body was cut (gap past its framing, FIN or close before its end).
    cut: bool,
    /// Expected body length when known, to size the capture buffer once.
    hint: u64,
    /// Ack of the segment that carried the head's first byte.
    ack: Ack,
    /// Stream offset of the head's first byte.
    off: u64,
    /// Heap bytes of `msg` (fixed once the head is parsed; see `message_heap`).
    heap: usize,
}

#[derive(Debug)]
enum Body {
    Length(u64),
    Chunked(ChunkDecoder),
    UntilClose,
}

#[derive(Debug)]
enum State {
    /// At a message boundary, or inside a head (bytes in `head_buf`).
    Start,
    /// Inside a body.
    Body(Body),
    /// Looking for the next plausible start line.
    Resync,
    /// A CONNECT request awaits its response: bytes are counted, not parsed.
    ConnectWait,
    /// After an upgrade: bytes are counted only.
    Tunnel,
}

/// A TCP acknowledgement, as an offset in the acknowledged direction's stream (or an offset
/// compared with one, such as where a request head ends), which may be unknown.
///
/// Kept in 8 bytes with `u64::MAX` standing for unknown (no stream gets that far), rather than
/// as an `Option<u64>` (16 bytes): the parsers, every message being read and every queued
/// request keep one or two, `Conn` is held to 512 bytes (see `size_tests`), and the sizes of
/// `Entry` and `MsgBuild` are what the pending budget charges. Read it with [`Ack::get`], so that
/// an unknown ack is never compared as a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ack(u64);

impl Ack {
    /// Not known.
    const NONE: Ack = Ack(u64::MAX);

    /// `None` becomes [`Ack::NONE`].
    #[inline]
    fn new(acked: Option<u64>) -> Ack {
        acked.map_or(Ack::NONE, Ack)
    }

    /// The offset, when known.
    #[inline]
    fn get(self) -> Option<u64> {
        if self == Ack::NONE {
            None
        } else {
            Some(self.0)
        }
    }

    #[inline]
    fn is_some(self) -> bool {
        self != Ack::NONE
    }

    #[inline]
    fn is_none(self) -> bool {
        self == Ack::NONE
    }
}

/// Which of a connection's two parsers: the one reading requests or the one reading responses.
/// Not a [`Direction`]: a connection picked up midstream may find out that its first guess was
/// wrong, and then the parsers swap (see `HttpHandler::swap`) while the directions stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Req = 0,
    Resp = 1,
}

impl Role {
    /// The parser that reads the bytes flowing in `dir`.
    #[inline]
    fn of(dir: Direction) -> Role {
        match dir {
            Direction::ClientToServer => Role::Req,
            Direction::ServerToClient => Role::Resp,
        }
    }

    /// The parser of the other direction.
    #[inline]
    fn other(self) -> Role {
        match self {
            Role::Req => Role::Resp,
            Role::Resp => Role::Req,
        }
    }
}

/// A connection's two parsers, indexed by [`Role`].
#[derive(Debug)]
struct Halves([Half; 2]);

impl Halves {
    /// Exchanges the parsers: each direction's bytes carry the other role's messages.
    fn swap(&mut self) {
        self.0.swap(Role::Req as usize, Role::Resp as usize);
    }

    fn iter(&self) -> std::slice::Iter<'_, Half> {
        self.0.iter()
    }

    fn iter_mut(&mut self) -> std::slice::IterMut<'_, Half> {
        self.0.iter_mut()
    }
}

impl Index<Role> for Halves {
    type Output = Half;

    #[inline]
    fn index(&self, r: Role) -> &Half {
        // A two-variant enum as the index of a two-element array: no bounds check remains.
        &self.0[r as usize]
    }
}

impl IndexMut<Role> for Halves {
    #[inline]
    fn index_mut(&mut self, r: Role) -> &mut Half {
        &mut self.0[r as usize]
    }
}

/// One direction's parser.
#[derive(Debug)]
struct Half {
    is_request: bool,
    state: State,
    head_buf: Vec<u8>,
    head_ts: u64,
    cur: Option<Box<MsgBuild>>,
    /// Queue sequence number of the exchange the current message belongs to.
    target: Option<u64>,
    /// The current response is interim (1xx).
    interim: bool,
    /// Flags to put on an unpaired current response.
    unpaired_flags: FlagSet,
    /// Flags inherited by the next head found by resync (a request smuggled inside a body
    /// whose framing was ambiguous is itself suspect).
    resync_flags: FlagSet,
    /// Stream offset of the next byte to parse (bytes delivered plus gaps): the offset space in
    /// which the peer's acks count this direction.
    off: u64,
    /// Ack carried by the bytes being parsed, as an offset of the other direction
    /// (`StreamHandler::on_ack`).
    ack: Ack,
    /// Offset of the current head's first byte.
    head_off: u64,
    /// Ack of the segment that carried the head's first byte (in Resync: of every carried byte,
    /// none if they differ).
    head_ack: Ack,
    /// Where the last finished message ended: a message not yet seen starts at or after it.
    mark: u64,
    /// The current response waits for the client stream to reach its ack (see
    /// [`Conn::ack_pick`]).
    held: bool,
}

impl Half {
    fn new(is_request: bool, midstream: bool) -> Half {
        Half {
            is_request,
            state: if midstream {
                State::Resync
            } else {
                State::Start
            },
            head_buf: Vec::new(),
            head_ts: 0,
            cur: None,
            target: None,
            interim: false,
            unpaired_flags: FlagSet::EMPTY,
            resync_flags: FlagSet::EMPTY,
            off: 0,
            ack: Ack::NONE,
            head_off: 0,
            head_ack: Ack::NONE,
            mark: 0,
            held: false,
        }
    }

    /// Between messages (nothing partially read).
    fn idle(&self) -> bool {
        // In Resync `head_buf` only carries skipped bytes.
        match self.state {
            State::Start => self.head_buf.is_empty(),
            State::Resync => true,
            _ => false,
        }
    }
}

/// An exchange awaiting completion.
#[derive(Debug)]
struct Pending {
    req: Option<MsgBuild>,
    resp: Option<MsgBuild>,
    interim: Vec<Message>,
    /// Queued while pairing was uncertain.
    uncertain: bool,
    /// Its response will never be paired (lost, overflowed, or ambiguous).
    gave_up: bool,
    is_head: bool,
    is_connect: bool,
    flags: FlagSet,
}

#[derive(Debug)]
enum Kind {
    /// A request whose head was seen.
    Real(Box<Pending>),
    /// Stands for requests lost to a gap or parse error (an unknown number, at least one).
    Lost(FlagSet),
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    kind: Kind,
    /// A placeholder that already stood in for a response (a client that waits for responses
    /// has then got the answer to its lost request).
    absorbed: bool,
    /// The response direction lost bytes after this entry was queued: its response may be gone.
    resp_lost: bool,
    /// Client stream offset where the request's head starts (for a placeholder: where the
    /// lost requests may start).
    start: u64,
    /// Where the request's head ends (unknown for placeholders): a response can answer it only
    /// if the server had received this far.
    head_end: Ack,
    /// The server stream offset the client had received when it sent the request
    /// (none: unknown).
    sent_ack: Ack,
    /// Bytes this entry is charged against the pending budgets (see `HttpHandler::q_push`).
    charge: u32,
}

/// A pending request kept in compact form when the pending budget is spent: what pairing and
/// response framing need, and what the record keeps (method, time). Lives in `Conn::overflow`,
/// behind the full entries of `Conn::queue`, and becomes a full entry again (with a record
/// holding the method alone) when room frees up or its response comes.
#[derive(Clone, Copy, Debug)]
struct Brief {
    seq: u64,
    /// Client stream offset of the request head (see `Entry::start`).
    start: u64,
    /// Time of the request's first byte.
    ts: u64,
    flags: FlagSet,
    /// The method, zero-padded; all zero when longer than 8 bytes.
    method: [u8; 8],
    /// `B_*` bits.
    bits: u8,
}

/// The placeholders of a connection, a pending count (`Prov`) and the HTTP/2 state; boxed,
/// since few connections ever have any of them and the flow table keeps a `Conn` per connection.
#[derive(Debug)]
struct Overflow(Option<Box<Briefs>>);

#[derive(Debug, Default)]
struct Briefs {
    q: VecDeque<Brief>,
    /// Pairing since a response-side loss rests on a count still to be checked (see
    /// `HttpHandler::begin_count`).
    prov: Option<Prov>,
    /// The connection is HTTP/2 (see `h2`): kept here, behind the box few connections have,
    /// rather than in `Conn`, which the flow table keeps for every connection. `stopped` is
    /// set too, so the HTTP/1 path pays no extra branch.
    h2: Option<h2::H2State>,
}

/// A response was cut by a gap (in its head, or in its chunked body) while several requests
/// were waiting. The cut response answers the next waiting request (it started where the
/// previous response ended), but the gap may also have hidden whole responses. Later responses are paired in order on the
/// assumption that it did not, and held: when the connection ends with every request answered
/// by exactly one response seen, the assumption is proven (a server sends one final response
/// per request, so a hidden one would leave a request unanswered); otherwise, or at any other
/// loss, those pairings are undone and emitted unpaired.
#[derive(Clone, Copy, Debug)]
struct Prov {
    /// The request the cut response answers; from here on, exchanges are held.
    from: u64,
    /// Bytes of the gap (all of them the cut response's, once proven).
    gap: u64,
    /// A 408 came: servers send it unasked before closing, which would upset the count.
    unasked: bool,
}

/// It stands for requests lost to a gap (`Kind::Lost`).
const B_LOST: u8 = 1;
const B_HEAD: u8 = 2;
const B_CONNECT: u8 = 4;
/// `Pending::uncertain`.
const B_UNCERTAIN: u8 = 8;
/// `Entry::resp_lost`.
const B_RESP_LOST: u8 = 16;
/// `Pending::gave_up`.
const B_GAVE_UP: u8 = 32;
/// `Entry::absorbed`.
const B_ABSORBED: u8 = 64;

/// Per-connection state (stored by the flow table beside its own).
///
/// Synchronisation: an uncertain connection becomes certain again when a request head completes
/// while the response direction is between messages and, if the client has been seen pipelining,
/// no other request is awaiting a response. A client that waits for each response before
/// sending the next request has by then received every response it will get for the lost
/// requests, so later responses can only answer later requests. When the request carries an
/// ack, that holds only if every server byte it acknowledges has been parsed and none parsed
/// beyond it holds a response. A final response whose ack proves which request it answers
/// (`Conn::ack_pick`) is a synchronisation point too.
#[derive(Debug)]
pub struct Conn {
    meta: ConnMeta,
    halves: Halves,
    queue: VecDeque<Entry>,
    next_seq: u64,
    next_resp_seq: u64,
    skip_responses: u32,
    uncertain: bool,
    desync_flags: FlagSet,
    pipelined: bool,
    roles_fixed: bool,
    stopped: bool,
    midstream_unsynced: bool,
    next_index: u64,
    /// Final responses that found no request to answer. The reassembler may deliver a response
    /// before it declares the gap that swallowed its request, so the placeholder created for
    /// that gap counts as already answered.
    orphans: u32,
    /// Newest request whose missing response made us conclude the client pipelines. If that
    /// response turns out to have been lost in a gap the reassembler reported late, the
    /// conclusion is withdrawn.
    /// (`NO_REQUEST`: none.)
    pipelined_by: u64,
    /// Final responses that arrived before any request they could answer. A server cannot
    /// answer before it has the request, but a mirror (an NLB target, a retransmission) or the
    /// reassembler waiting at a hole can deliver the response first. Those with an ack wait
    /// until the client stream reaches it and are then placed by it (`resolve_held`); on a
    /// connection in sync, ones without take the next request, oldest first, instead of
    /// shifting every later pairing by one.
    early: VecDeque<Box<MsgBuild>>,
    /// The server stream offset the last request acknowledged (none yet: unknown).
    last_sent_ack: Ack,
    /// Where the response direction last found its place again after losing it: a response
    /// to a request sent before the client had this far of the server stream may have been
    /// lost, however late the reassembler delivers the request.
    resp_synced_at: u64,
    /// Pending requests beyond the budget, in compact form, after those of `queue`.
    overflow: Overflow,
    /// Bytes the entries of `queue` are charged (wrapping: every charge is taken back
    /// exactly).
    queued_bytes: u32,
}

/// Early responses held at most per connection before the oldest is emitted unpaired, when
/// only their order can place them; responses whose acks can place them are held up to the
/// pipelining cap (the reassembler may hold the client direction at a hole for a while, and
/// the server goes on answering the requests queued behind it).
const MAX_EARLY: usize = 4;

/// The HTTP/1 consumer of reassembled streams; one per worker.
#[derive(Debug, Default)]
pub struct HttpHandler {
    cfg: HttpConfig,
    stats: HttpStats,
    out: Vec<Exchange>,
    /// Bytes charged by the pending requests of all connections (see
    /// [`HttpConfig::max_pending_bytes_total`]).
    pending_total: usize,
}

enum Ev {
    None,
    Swap,
    Stop,
    /// The connection is HTTP/2 from here (switch to it first when a start is given).
    H2(Option<vxtap_h2::Start>),
}

/// What acknowledgement evidence says about a final response (see [`Conn::ack_pick`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AckPick {
    /// It answers this queued request.
    Req(u64),
    /// It answers a request lost in the placeholder with this sequence number.
    Lost(u64),
    /// The server had client bytes not parsed yet: ask again when the client stream gets there.
    Wait,
    /// No evidence, or not enough to decide.
    Unknown,
}

impl HttpHandler {
    /// A handler with the given limits.
    pub fn new(cfg: HttpConfig) -> HttpHandler {
        let mut cfg = cfg;
        cfg.max_headers = cfg.max_headers.clamp(1, HEADERS_LIMIT);
        cfg.max_head_bytes = cfg.max_head_bytes.max(64);
        cfg.max_pending_bytes = cfg.max_pending_bytes.max(MIN_PENDING_BYTES);
        cfg.max_pending_bytes_total = cfg.max_pending_bytes_total.max(MIN_PENDING_BYTES);
        HttpHandler {
            cfg,
            stats: HttpStats::default(),
            out: Vec::new(),
            pending_total: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &HttpConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// Returns the counters and resets them (for periodic merging into a registry).
    pub fn take_stats(&mut self) -> HttpStats {
        std::mem::take(&mut self.stats)
    }

    /// Moves every finished exchange, in emission order, to the end of `out`.
    pub fn drain_into(&mut self, out: &mut Vec<Exchange>) {
        out.append(&mut self.out);
    }

    /// Bytes the pending requests of all connections are charged (full records and
    /// placeholders), for a global memory budget to account.
    pub fn pending_bytes(&self) -> usize {
        self.pending_total
    }

    /// Number of finished exchanges waiting to be drained.
    pub fn ready(&self) -> usize {
        self.out.len()
    }
}

impl StreamHandler for HttpHandler {
    type Conn = Conn;

    fn on_open(&mut self, meta: &ConnMeta) -> Conn {
        self.stats.conns_opened += 1;
        Conn {
            meta: *meta,
            halves: Halves([
                Half::new(true, meta.midstream),
                Half::new(false, meta.midstream),
            ]),
            queue: VecDeque::new(),
            next_seq: 0,
            next_resp_seq: 0,
            skip_responses: 0,
            uncertain: meta.midstream,
            desync_flags: FlagSet::EMPTY,
            pipelined: false,
            roles_fixed: !meta.midstream,
            stopped: false,
            midstream_unsynced: meta.midstream,
            next_index: 0,
            orphans: 0,
            pipelined_by: NO_REQUEST,
            early: VecDeque::new(),
            last_sent_ack: Ack::NONE,
            resp_synced_at: 0,
            overflow: Overflow(None),
            queued_bytes: 0,
        }
    }

    fn on_data(
        &mut self,
        conn: &mut Conn,
        meta: &ConnMeta,
        dir: Direction,
        ts_ns: u64,
        data: &[u8],
    ) -> Verdict {
        conn.meta = *meta;
        if conn.stopped {
            if conn.overflow.h2().is_some() {
                return self.h2_data(conn, dir, ts_ns, data);
            }
            self.stats.upgrade_skipped_bytes += data.len() as u64;
            return Verdict::StopDelivery;
        }
        self.feed(conn, dir, ts_ns, data)
    }

    fn on_ack(&mut self, conn: &mut Conn, meta: &ConnMeta, dir: Direction, acked: Option<u64>) {
        conn.meta = *meta;
        conn.halves[Role::of(dir)].ack = Ack::new(acked);
    }

    fn on_gap(
        &mut self,
        conn: &mut Conn,
        meta: &ConnMeta,
        dir: Direction,
        ts_ns: u64,
        len: u64,
        reason: GapReason,
    ) -> Verdict {
        conn.meta = *meta;
        if conn.stopped {
            if conn.overflow.h2().is_some() {
                self.h2_gap(conn, dir, ts_ns, len);
                return Verdict::Continue;
            }
            self.stats.upgrade_skipped_bytes += len;
            return Verdict::StopDelivery;
        }
        if len > 0 {
            let r = Role::of(dir);
            let start = conn.halves[r].off;
            self.gap(conn, r, ts_ns, len, reason);
            conn.halves[r].off = start + len;
        }
        Verdict::Continue
    }

    fn on_fin(&mut self, conn: &mut Conn, meta: &ConnMeta, dir: Direction, ts_ns: u64) {
        conn.meta = *meta;
        self.end_half(conn, Role::of(dir), ts_ns, FlagSet::EMPTY, true);
    }

    fn mem_bytes(&self, conn: &Conn) -> usize {
        conn.heap_bytes()
    }

    fn on_close(&mut self, mut conn: Conn, meta: &ConnMeta, ts_ns: u64, reason: CloseReason) {
        conn.meta = *meta;
        self.stats.conns_closed += 1;
        let mut close_flags = FlagSet::EMPTY;
        match reason {
            CloseReason::Evicted => close_flags.insert(Flag::Evicted),
            CloseReason::IdleTimeout => close_flags.insert(Flag::Timeout),
            _ => {}
        }
        if conn.overflow.h2().is_some() {
            self.h2_close(&mut conn, close_flags);
        }
        let clean = matches!(reason, CloseReason::Fin | CloseReason::Rst);
        // Requests first so that a response cut here still finds its request done.
        self.end_half(&mut conn, Role::Req, ts_ns, close_flags, clean);
        self.end_half(&mut conn, Role::Resp, ts_ns, close_flags, clean);
        // Both streams are complete: the responses can be counted.
        self.settle_count(&mut conn, false);
        // Responses still waiting for client bytes that never came: their requests were lost.
        // Order alone cannot place them either, but it says which waiting requests they may
        // have answered (those are given up, flagged with the loss).
        while conn.early.front().is_some_and(|m| m.ack.is_some()) {
            let Some(m) = conn.early.pop_front() else {
                break;
            };
            let (target, f) = self.pair_in_order(&mut conn);
            let f = if target.is_some() { FlagSet::EMPTY } else { f };
            self.emit(&mut conn, None, Some(*m), Vec::new(), f);
        }
        self.flush_early(&mut conn, usize::MAX);
        let c = &mut conn;
        let mut rest = FlagSet::EMPTY;
        rest.merge(close_flags);
        // Unanswered requests at close: no_response plus why the connection ended.
        loop {
            if c.queue.is_empty() {
                self.promote(c);
            }
            let Some(e) = self.q_pop(c) else { break };
            match e.kind {
                Kind::Real(p) => {
                    let p = *p;
                    let mut f = p.flags;
                    if p.resp.is_none() {
                        f.merge(rest);
                    }
                    if p.req.is_some() || p.resp.is_some() {
                        self.emit(c, p.req, p.resp, p.interim, f);
                    }
                }
                Kind::Lost(_) => self.stats.lost_requests += 1,
            }
        }
    }
}

#[cfg(test)]
mod size_tests {
    /// The flow table stores one `Conn` per connection: keep it small.
    #[test]
    fn placeholder_is_40_bytes() {
        // README and the budget's documentation promise about 100,000 placeholders in 4 MiB.
        assert_eq!(super::PLACEHOLDER_BYTES, 40);
    }

    /// An unknown ack costs nothing: `Ack` is a bare `u64` (see its docs).
    #[test]
    fn ack_is_8_bytes() {
        assert_eq!(std::mem::size_of::<super::Ack>(), 8);
    }

    #[test]
    fn conn_stays_small() {
        assert!(
            std::mem::size_of::<super::Conn>() <= 512,
            "{}",
            std::mem::size_of::<super::Conn>()
        );
    }
}
