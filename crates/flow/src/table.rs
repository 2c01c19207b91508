//! The flow table: one per worker, no locks, no threads. Segments in, stream events out.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use vxtap_wire::{Segment, TunnelKind};

use crate::api::{CloseReason, ConnMeta, Direction, Endpoint, GapReason, StreamHandler, Verdict};
use crate::config::{ConfigError, FlowConfig, FlowKeyMode};
use crate::half::{Half, NO_ACK};
use crate::hash::FxHasher;
use crate::index::Index;
use crate::stats::{EvictReason, FlowStats, SkipTrigger};

const NIL: u32 = u32::MAX;

/// The LRU position is refreshed at most once per this much packet time, so a busy connection
/// does not relink (two random cache lines) on every packet; idle expiry is this coarse.
const TOUCH_GRANULARITY_NS: u64 = 1_000_000_000;

/// A SYN this far (or less) before a mid-stream pickup's first byte is the connection's own
/// handshake arriving late (mirror reordering), not a new connection.
const LATE_SYN_WINDOW: i64 = 1 << 20;

/// Ports that are servers whatever the other side is; then < 1024; then registered; ephemeral
/// last. Used only when no SYN says who the client is.
const SERVER_PORTS: [u16; 14] = [
    80, 443, 8080, 8000, 3000, 5000, 8443, 9090, 8081, 8888, 9000, 9200, 5601, 15672,
];

fn server_rank(port: u16) -> u8 {
    if SERVER_PORTS.contains(&port) {
        0
    } else if port < 1024 {
        1
    } else if port < 32768 {
        2
    } else {
        3
    }
}

/// An address as two words: IPv4 mapped into IPv6 (`::ffff:a.b.c.d`), so keys compare and hash
/// as plain integers (std's `IpAddr` ordering and hashing go through the enum, slower).
fn ip_words(ip: IpAddr) -> [u64; 2] {
    let v = match ip {
        IpAddr::V4(v4) => 0xffff_0000_0000u128 | u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    };
    [(v >> 64) as u64, v as u64]
}

/// Direction-independent flow key: the endpoint that sorts lower comes first.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    lo_ip: [u64; 2],
    hi_ip: [u64; 2],
    /// Outer source in `Session` mode (zero otherwise).
    mirror: [u64; 2],
    lo_port: u16,
    hi_port: u16,
    /// In `Session` mode (zero otherwise): bit 40 set, the tunnel kind in bits 32-39 and the
    /// VNI-equivalent below, so a 32-bit GRE key cannot collide with another tunnel's id.
    vni: u64,
}

impl Hash for FlowKey {
    fn hash<S: Hasher>(&self, state: &mut S) {
        // Hand-written: a few words, no enum or slice encoding on the hot path.
        state.write_u64(self.lo_ip[1] ^ (self.lo_port as u64) << 48);
        state.write_u64(self.hi_ip[1] ^ (self.hi_port as u64) << 48);
        if self.lo_ip[0] != 0xffff || self.hi_ip[0] != 0xffff {
            state.write_u64(self.lo_ip[0] ^ self.hi_ip[0].rotate_left(17));
        }
        if self.vni != 0 {
            state.write_u64(self.vni ^ self.mirror[0] ^ self.mirror[1].rotate_left(23));
        }
    }
}

impl FlowKey {
    fn build(
        a: (IpAddr, u16),
        b: (IpAddr, u16),
        vni: Option<u32>,
        tunnel: TunnelKind,
        mirror: Option<IpAddr>,
        mode: FlowKeyMode,
    ) -> (FlowKey, bool) {
        let (aw, bw) = ((ip_words(a.0), a.1), (ip_words(b.0), b.1));
        let (vni, mirror) = match mode {
            FlowKeyMode::FiveTuple => (0, [0, 0]),
            FlowKeyMode::Session => (
                1 << 40 | (tunnel.index() as u64) << 32 | u64::from(vni.unwrap_or(0)),
                mirror.map_or([0, 0], ip_words),
            ),
        };
        let a_is_lo = aw <= bw;
        let (lo, hi) = if a_is_lo { (aw, bw) } else { (bw, aw) };
        (
            FlowKey {
                lo_ip: lo.0,
                hi_ip: hi.0,
                mirror,
                lo_port: lo.1,
                hi_port: hi.1,
                vni,
            },
            a_is_lo,
        )
    }

    fn hash64(&self) -> u64 {
        let mut h = FxHasher::default();
        self.hash(&mut h);
        h.finish()
    }

    /// The key of `seg` and whether its source is the `lo` endpoint.
    fn of(seg: &Segment<'_>, mode: FlowKeyMode) -> (FlowKey, bool) {
        FlowKey::build(
            (seg.src_ip, seg.src_port),
            (seg.dst_ip, seg.dst_port),
            seg.vni,
            seg.tunnel,
            seg.mirror_source,
            mode,
        )
    }
}

#[derive(Clone, Copy)]
struct Links {
    prev: u32,
    next: u32,
}

impl Links {
    const NONE: Links = Links {
        prev: NIL,
        next: NIL,
    };
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    len: usize,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// Which intrusive list a link operation is about.
#[derive(Clone, Copy)]
enum Which {
    /// Age order: the open list or the lingering (closed) list; a connection is in one of them.
    Age,
    /// Connections with something waiting on a hole.
    Pending,
}

/// Per-connection state (without the consumer's `U`, which sits beside it).
/// `repr(C)`: key and per-packet bookkeeping first, then the two directions, the metadata (read
/// only by the consumer) last.
#[repr(C)]
struct ConnCore {
    /// Compared on lookup (the index holds only hashes): first, beside the packet clock.
    key: FlowKey,
    last_ts: u64,
    touch_ts: u64,
    client_is_lo: bool,
    closed: bool,
    stopped: bool,
    in_pending: bool,
    /// A SYN or SYN-ACK was seen: acks may start the other direction.
    handshake: bool,
    age: Links,
    pend: Links,
    /// `halves[0]` carries bytes from the `lo` endpoint, `halves[1]` from `hi`.
    halves: [Half; 2],
    meta: ConnMeta,
    /// Heap bytes of the consumer's state as last reported (`StreamHandler::mem_bytes`), part
    /// of `Env::user_mem`.
    user_mem: usize,
}

struct Conn<U> {
    core: ConnCore,
    user: Option<U>,
}

impl<U> Conn<U> {
    fn links(&mut self, w: Which) -> &mut Links {
        match w {
            Which::Age => &mut self.core.age,
            Which::Pending => &mut self.core.pend,
        }
    }
}

/// Size of the table's own per-connection state, excluding the consumer's `Conn` (for the
/// memory target in the issue: at most 512 bytes).
pub const CONN_CORE_SIZE: usize = std::mem::size_of::<ConnCore>();

/// Result of feeding one segment to an existing connection.
enum Outcome {
    Open,
    /// The connection closed (FIN both ways, RST): it now lingers.
    Closed,
    /// A new SYN started another connection on this 5-tuple; the old one is already closed.
    Reuse,
    /// A late segment for a lingering connection, absorbed.
    Absorbed,
}

/// What the table needs beside the connections while it works on one of them.
struct Env {
    cfg: FlowConfig,
    stats: FlowStats,
    /// Cost of all out-of-order chunks in the table.
    buffered: usize,
    /// Sum of `ConnCore::user_mem`: the consumer's per-connection heap.
    user_mem: usize,
}

/// The slab and the index may take at most 1/`SLAB_SHARE` of the budget: they do not shrink
/// while connections live, so a SYN flood must not leave the buffers and the consumer's state
/// (heads, bodies, pending requests) without room once it is over.
const SLAB_SHARE: usize = 2;

/// Re-reads the consumer's heap for `c` after callbacks and moves the difference into the total.
fn recharge<H: StreamHandler>(c: &mut Conn<H::Conn>, env: &mut Env, h: &H) {
    let m = c.user.as_ref().map_or(0, |u| h.mem_bytes(u));
    env.user_mem = env.user_mem - c.core.user_mem + m;
    c.core.user_mem = m;
}

fn dir_of(client_is_lo: bool, side: usize) -> Direction {
    if (side == 0) == client_is_lo {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    }
}

fn apply_verdict(c: &mut ConnCore, v: Verdict, env: &mut Env) {
    match v {
        Verdict::Continue => {}
        Verdict::SwapRoles => {
            c.client_is_lo = !c.client_is_lo;
            std::mem::swap(&mut c.meta.client, &mut c.meta.server);
            env.stats.role_swaps += 1;
        }
        Verdict::StopDelivery => c.stopped = true,
    }
}

/// `ack`: what the segment that carried `data` acknowledged, as an offset of the other side's
/// stream (see [`peer_ack`]).
fn emit_data<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    side: usize,
    ts: u64,
    data: &[u8],
    ack: u64,
    env: &mut Env,
    h: &mut H,
) {
    if data.is_empty() {
        return;
    }
    match c.user.as_mut() {
        Some(u) if !c.core.stopped => {
            env.stats.bytes_delivered += data.len() as u64;
            env.stats.data_chunks += 1;
            let dir = dir_of(c.core.client_is_lo, side);
            if let Some(a) = c.core.halves[side].ack_change(ack) {
                h.on_ack(u, &c.core.meta, dir, a);
            }
            let v = h.on_data(u, &c.core.meta, dir, ts, data);
            apply_verdict(&mut c.core, v, env);
        }
        _ => env.stats.bytes_after_stop += data.len() as u64,
    }
}

fn emit_gap<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    side: usize,
    ts: u64,
    len: u64,
    reason: GapReason,
    env: &mut Env,
    h: &mut H,
) {
    if len == 0 {
        return;
    }
    env.stats.add_gap(reason, len);
    if let Some(u) = c.user.as_mut() {
        if !c.core.stopped {
            let dir = dir_of(c.core.client_is_lo, side);
            let v = h.on_gap(u, &c.core.meta, dir, ts, len, reason);
            apply_verdict(&mut c.core, v, env);
        }
    }
}

/// Reports the FIN once everything before it is delivered or gapped.
fn maybe_fin<H: StreamHandler>(c: &mut Conn<H::Conn>, side: usize, ts: u64, h: &mut H) {
    let hf = &mut c.core.halves[side];
    if hf.fin_seen() && !hf.fin_done() && hf.next_off >= hf.fin_off {
        hf.set_fin_done();
        if let Some(u) = c.user.as_mut() {
            h.on_fin(u, &c.core.meta, dir_of(c.core.client_is_lo, side), ts);
        }
    }
}

/// Delivers every buffered chunk that is now contiguous with the stream.
fn flush<H: StreamHandler>(c: &mut Conn<H::Conn>, side: usize, env: &mut Env, h: &mut H) {
    if c.core.halves[side].chunks.first().map(|ch| ch.off) > Some(c.core.halves[side].next_off) {
        return;
    }
    // Taken out so the handler can borrow the connection while we read the chunks.
    let mut chunks = std::mem::take(&mut c.core.halves[side].chunks);
    let mut n = 0;
    let mut freed = 0;
    let mut last_ts = 0;
    for ch in chunks.iter() {
        let next = c.core.halves[side].next_off;
        if ch.off > next {
            break;
        }
        n += 1;
        freed += ch.cost();
        last_ts = ch.ts_ns;
        let end = ch.end();
        if end <= next {
            continue;
        }
        let data_end = ch.off + ch.data.len() as u64;
        if data_end > next {
            emit_data(
                c,
                side,
                ch.ts_ns,
                &ch.data[(next - ch.off) as usize..],
                ch.ack,
                env,
                h,
            );
        }
        let miss_from = data_end.max(next);
        c.core.halves[side].next_off = end;
        emit_gap(
            c,
            side,
            ch.ts_ns,
            end - miss_from,
            GapReason::TruncatedCapture,
            env,
            h,
        );
    }
    chunks.drain(..n);
    let hf = &mut c.core.halves[side];
    hf.chunks = chunks;
    hf.buffered -= freed;
    env.buffered -= freed;
    if hf.chunks.is_empty() && hf.chunks.capacity() > 8 {
        // A burst of reordering should not pin its peak allocation for the connection's life.
        hf.chunks = Vec::new();
    }
    if let Some(t) = hf.oldest_chunk_ts() {
        hf.hole_since_ns = t;
    }
    maybe_fin(c, side, last_ts, h);
}

/// Skips holes (as gaps) until `limit` is reached or nothing is left before it.
fn skip_to<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    side: usize,
    limit: u64,
    trigger: SkipTrigger,
    ts: u64,
    env: &mut Env,
    h: &mut H,
) {
    loop {
        let hf = &c.core.halves[side];
        let next = hf.next_off;
        let end = hf.hole_end().min(limit);
        if end <= next {
            break;
        }
        c.core.halves[side].next_off = end;
        env.stats.add_skip(trigger);
        emit_gap(c, side, ts, end - next, trigger.gap_reason(), env, h);
        flush(c, side, env, h);
    }
    maybe_fin(c, side, ts, h);
}

/// Skips the first hole of `side` and delivers what follows it.
fn skip_first_hole<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    side: usize,
    trigger: SkipTrigger,
    ts: u64,
    env: &mut Env,
    h: &mut H,
) {
    let end = c.core.halves[side].hole_end();
    if end != u64::MAX {
        skip_to(c, side, end, trigger, ts, env, h);
    }
}

/// Skips every hole of `side`: buffered data and a pending FIN all come out.
fn drain_side<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    side: usize,
    trigger: SkipTrigger,
    ts: u64,
    env: &mut Env,
    h: &mut H,
) {
    let end = c.core.halves[side].known_end();
    skip_to(c, side, end, trigger, ts, env, h);
}

/// Ends a connection: flush what is buffered (holes become gaps), tell the consumer.
fn close_conn<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    ts: u64,
    reason: CloseReason,
    trigger: SkipTrigger,
    env: &mut Env,
    h: &mut H,
) {
    for side in 0..2 {
        drain_side(c, side, trigger, ts, env, h);
        env.buffered -= c.core.halves[side].clear();
    }
    if let Some(u) = c.user.take() {
        env.stats.add_close(reason);
        h.on_close(u, &c.core.meta, ts, reason);
    }
    env.user_mem -= std::mem::take(&mut c.core.user_mem);
    // `closed` (which list the connection is on) is set by the table when it moves it.
}

/// The peer of `side` acknowledged up to `ack`: bytes before it reached the receiver.
///
/// Returns the ack as an offset of `side`'s stream, the evidence reported with the peer's data,
/// or [`NO_ACK`] when it is none: that stream not started (its base unknown), or an ack before
/// its start, too far ahead, or past its FIN (more than it can have sent).
fn peer_ack<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    side: usize,
    ack: u32,
    ts: u64,
    env: &mut Env,
    h: &mut H,
) -> u64 {
    let hf = &mut c.core.halves[side];
    if !hf.started() {
        // Handshake seen but not this side's SYN: the ack is exactly where its data begins.
        if c.core.handshake {
            hf.start(ack);
            return 0;
        }
        return NO_ACK;
    }
    let rel = hf.rel(ack);
    let off = hf.next_off as i64 + rel;
    if rel > env.cfg.max_seq_ahead as i64 || off < 0 {
        return NO_ACK;
    }
    let evidence = match off as u64 {
        // The FIN takes one sequence number: its ack is one past the last byte.
        o if hf.fin_seen() && o > hf.fin_off + 1 => NO_ACK,
        o if hf.fin_seen() => o.min(hf.fin_off),
        o => o,
    };
    if rel <= 0 {
        return evidence;
    }
    let mut limit = hf.next_off + rel as u64;
    if hf.fin_seen() {
        // An ack of the FIN is one past the last byte.
        limit = limit.min(hf.fin_off);
    }
    if limit > hf.next_off {
        let restart = hf.acked_off <= hf.next_off || hf.acked_at != hf.next_off;
        hf.acked_off = hf.acked_off.max(limit);
        if restart {
            hf.acked_since_ns = ts;
            hf.acked_at = hf.next_off;
            hf.acked_base = hf.acked_off;
        }
        ack_skip(c, side, ts, env, h);
    }
    evidence
}

/// Skips what the peer acknowledged once the hole is older than the grace period.
fn ack_skip<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    side: usize,
    now: u64,
    env: &mut Env,
    h: &mut H,
) {
    let hf = &mut c.core.halves[side];
    let limit = hf.ack_limit();
    if limit <= hf.next_off {
        return;
    }
    if hf.acked_at != hf.next_off {
        // The stream moved since the ack was seen: data is flowing, acks merely lead it (a
        // mirror path that delays one direction); the new hole's age starts now.
        hf.acked_at = hf.next_off;
        hf.acked_since_ns = now;
        hf.acked_base = hf.acked_off;
    }
    // Timed from the ack, not from when the hole appeared: a segment held back by the mirror
    // across an idle stretch is overtaken by the peer's ack that answered it (seen in real
    // mirrored traces), and it still arrives right after that ack.
    let since = hf.acked_since_ns;
    if now.saturating_sub(since) >= env.cfg.ack_skip_grace_ns {
        // Only what was acknowledged when the clock started has waited the whole grace: a hole
        // acked later (the next request held back while this one was lost) gets its own.
        let due = hf.ack_limit_at(hf.acked_base);
        if due > hf.next_off {
            skip_to(c, side, due, SkipTrigger::PeerAck, now, env, h);
        } else {
            hf.acked_since_ns = now;
            hf.acked_base = hf.acked_off;
        }
    }
}

enum SynAction {
    Continue,
    Ignore,
    Reuse,
}

fn on_syn(c: &mut ConnCore, side: usize, seg: &Segment<'_>, env: &mut Env) -> SynAction {
    let is_synack = seg.flags.ack();
    let closing = c.halves.iter().any(|h| h.fin_seen());
    let hf = &mut c.halves[side];
    if hf.syn_seen() {
        if seg.seq == hf.isn {
            return SynAction::Continue;
        }
        if !is_synack || closing {
            return SynAction::Reuse;
        }
        env.stats.odd_syn_ignored += 1;
        return SynAction::Ignore;
    }
    if !hf.started() {
        hf.set_syn(seg.seq);
        hf.start(seg.seq.wrapping_add(1));
        c.handshake = true;
        return SynAction::Continue;
    }
    // The stream started before its SYN showed up: a late handshake (reordering) if the SYN
    // sits just before the first byte, otherwise a different connection.
    let rel = seg.seq.wrapping_add(1).wrapping_sub(hf.base_seq) as i32 as i64;
    if rel <= 0 && rel > -LATE_SYN_WINDOW {
        hf.set_syn(seg.seq);
        c.handshake = true;
        SynAction::Continue
    } else if !is_synack {
        SynAction::Reuse
    } else {
        env.stats.odd_syn_ignored += 1;
        SynAction::Ignore
    }
}

/// Payload (and FIN) of a segment into the stream of `side`; `ack`: its ack as an offset of
/// the other side's stream (see [`peer_ack`]).
fn on_payload<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    side: usize,
    seg: &Segment<'_>,
    ack: u64,
    env: &mut Env,
    h: &mut H,
) {
    let fin = seg.flags.fin();
    let captured = seg.payload;
    let total = (seg.wire_payload_len as u64).max(captured.len() as u64);
    if total == 0 && !fin {
        return;
    }
    let data_seq = seg.seq.wrapping_add(seg.flags.syn() as u32);
    let ts = seg.ts_ns;
    let hf = &mut c.core.halves[side];
    if !hf.started() {
        hf.start(data_seq);
    }
    let rel = hf.rel(data_seq);
    if rel > env.cfg.max_seq_ahead as i64 {
        env.stats.out_of_window += 1;
        return;
    }
    let next = hf.next_off;
    let off = next as i64 + rel;
    let end = off + total as i64;
    if fin && !hf.fin_seen() {
        hf.set_fin(end.max(0) as u64);
        if hf.chunks.is_empty() && hf.has_hole() {
            hf.hole_since_ns = ts;
        }
    }
    if end <= next as i64 {
        if total > 0 {
            env.stats.retransmitted_segments += 1;
            env.stats.retransmitted_bytes += total;
            if off < 0 {
                env.stats.pre_start_segments += 1;
            }
        }
        maybe_fin(c, side, ts, h);
        return;
    }
    // Trim what was already delivered (a partial retransmission).
    let skip = (next as i64 - off).max(0) as u64;
    env.stats.retransmitted_bytes += skip;
    let cap = &captured[(skip as usize).min(captured.len())..];
    let total = total - skip;
    let off = off.max(next as i64) as u64;
    let (mut cap, mut total, mut off) = (cap, total, off);
    if off == next {
        // In order: deliver straight from the frame up to the first buffered chunk (with
        // nothing buffered, the whole segment: the hot path, no copy, no allocation).
        let upto = hf
            .chunks
            .first()
            .map_or(total, |ch| total.min(ch.off.saturating_sub(next)));
        let cl = (cap.len() as u64).min(upto);
        hf.next_off = next + upto;
        emit_data(c, side, ts, &cap[..cl as usize], ack, env, h);
        if upto > cl {
            emit_gap(c, side, ts, upto - cl, GapReason::TruncatedCapture, env, h);
        }
        if upto == total {
            if c.core.halves[side].chunks.is_empty() {
                maybe_fin(c, side, ts, h);
            } else {
                flush(c, side, env, h);
            }
            return;
        }
        cap = &cap[cl as usize..];
        total -= upto;
        off += upto;
    }
    let hf = &mut c.core.halves[side];
    let had_hole = hf.has_hole();
    let r = hf.insert(off, ts, ack, cap, total);
    if !had_hole && hf.has_hole() {
        hf.hole_since_ns = ts;
    }
    env.buffered += r.cost;
    if r.new_bytes == 0 {
        env.stats.retransmitted_segments += 1;
    } else {
        env.stats.ooo_segments += 1;
        env.stats.ooo_bytes += r.copied;
    }
    env.stats.retransmitted_bytes += r.dup_bytes;
    if r.conflict_bytes > 0 {
        env.stats.overlap_conflict_segments += 1;
        env.stats.overlap_conflict_bytes += r.conflict_bytes;
    }
    flush(c, side, env, h);
    enforce_bounds(c, side, ts, env, h);
}

/// Per-direction cap and hole age, checked whenever the direction moves.
fn enforce_bounds<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    side: usize,
    now: u64,
    env: &mut Env,
    h: &mut H,
) {
    while c.core.halves[side].buffered > env.cfg.max_buffer_per_direction {
        let before = c.core.halves[side].buffered;
        skip_first_hole(c, side, SkipTrigger::FlowCap, now, env, h);
        if c.core.halves[side].buffered == before {
            // Defensive: a chunk already at the stream position only needs delivering.
            flush(c, side, env, h);
            if c.core.halves[side].buffered == before {
                break;
            }
        }
    }
    ack_skip(c, side, now, env, h);
    while c.core.halves[side].has_hole()
        && now.saturating_sub(c.core.halves[side].hole_since_ns) >= env.cfg.hole_timeout_ns
    {
        let before = c.core.halves[side].next_off;
        skip_first_hole(c, side, SkipTrigger::HoleTimeout, now, env, h);
        if c.core.halves[side].next_off == before {
            break;
        }
        if c.core.halves[side].chunks.is_empty() {
            c.core.halves[side].hole_since_ns = now;
        }
    }
}

/// One segment on an open connection.
fn conn_segment<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    side: usize,
    seg: &Segment<'_>,
    env: &mut Env,
    h: &mut H,
) -> Outcome {
    let ts = seg.ts_ns;
    if ts > c.core.last_ts {
        c.core.last_ts = ts;
    }
    if seg.flags.rst() {
        env.stats.rst_payload_bytes += seg.payload.len() as u64;
        close_conn(c, ts, CloseReason::Rst, SkipTrigger::Close, env, h);
        return Outcome::Closed;
    }
    if seg.flags.syn() {
        match on_syn(&mut c.core, side, seg, env) {
            SynAction::Continue => {}
            SynAction::Ignore => return Outcome::Open,
            SynAction::Reuse => {
                close_conn(c, ts, CloseReason::PortReuse, SkipTrigger::Close, env, h);
                return Outcome::Reuse;
            }
        }
    }
    let ack = if seg.flags.ack() {
        peer_ack(c, side ^ 1, seg.ack, ts, env, h)
    } else {
        NO_ACK
    };
    on_payload(c, side, seg, ack, env, h);
    for s in [side, 1 - side] {
        // A hole may have aged (or been acked) while only the other direction talked.
        if c.core.halves[s].pending() {
            enforce_bounds(c, s, ts, env, h);
        }
    }
    if c.core.halves.iter().all(|hf| hf.fin_done()) {
        close_conn(c, ts, CloseReason::Fin, SkipTrigger::Close, env, h);
        return Outcome::Closed;
    }
    Outcome::Open
}

/// Stable id: same for the same connection mirrored twice or replayed, never random.
fn stable_id(meta: &ConnMeta, isn: Option<u32>, first_seq: u32, first_from_client: bool) -> u64 {
    let mut s = FxHasher::default();
    match isn {
        Some(isn) => {
            s.write_ip(meta.client.ip);
            s.write_u16(meta.client.port);
            s.write_ip(meta.server.ip);
            s.write_u16(meta.server.port);
            s.write_u32(isn);
        }
        None => {
            // Roles are a guess here (and may be swapped later): hash in a role-free order.
            let a = (meta.client.ip, meta.client.port);
            let b = (meta.server.ip, meta.server.port);
            let from_lo = if a <= b {
                first_from_client
            } else {
                !first_from_client
            };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            s.write_ip(lo.0);
            s.write_u16(lo.1);
            s.write_ip(hi.0);
            s.write_u16(hi.1);
            s.write_u32(first_seq);
            s.write_u8(from_lo as u8 | 0x80);
        }
    }
    s.finish()
}

/// TCP reassembly for one worker: a flow table of connections, each with two ordered streams.
///
/// Sans-I/O: the caller feeds segments and time; events go to the handler passed in.
pub struct FlowTable<H: StreamHandler> {
    index: Index,
    slots: Vec<Option<Conn<H::Conn>>>,
    free: Vec<u32>,
    open: List,
    lingering: List,
    pending: List,
    env: Env,
    next_conn_id: u64,
    now: u64,
    per_flow_cost: usize,
}

impl<H: StreamHandler> FlowTable<H> {
    /// A table with the given limits.
    pub fn new(cfg: FlowConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        // Slot, index entries (load between 1/4 and 1/2: up to 32 bytes), free-list entry.
        let per_flow_cost = Self::SLOT_SIZE + 32 + 4;
        Ok(FlowTable {
            index: Index::new(),
            slots: Vec::new(),
            free: Vec::new(),
            open: List::EMPTY,
            lingering: List::EMPTY,
            pending: List::EMPTY,
            env: Env {
                cfg,
                stats: FlowStats::default(),
                buffered: 0,
                user_mem: 0,
            },
            next_conn_id: 0,
            now: 0,
            per_flow_cost,
        })
    }

    /// The limits in force.
    pub fn config(&self) -> &FlowConfig {
        &self.env.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> &FlowStats {
        &self.env.stats
    }

    /// Open connections (not counting closed ones that linger to absorb late packets).
    pub fn active_flows(&self) -> usize {
        self.open.len
    }

    /// Connections tracked, lingering closed ones included (what `max_flows` bounds).
    pub fn tracked_flows(&self) -> usize {
        self.open.len + self.lingering.len
    }

    const SLOT_SIZE: usize = std::mem::size_of::<Option<Conn<H::Conn>>>();

    /// Bytes held, as allocated (what `max_memory` bounds): slab, index and free list at their
    /// capacity, out-of-order buffers, and the consumer's per-connection heap.
    pub fn memory_in_use(&self) -> usize {
        self.table_bytes() + self.env.buffered + self.env.user_mem
    }

    /// The slab, index and free list, at their capacity.
    pub fn table_bytes(&self) -> usize {
        self.slots.capacity() * Self::SLOT_SIZE
            + self.index.bytes()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }

    /// The consumer's per-connection heap, as last reported by `StreamHandler::mem_bytes`.
    pub fn consumer_bytes(&self) -> usize {
        self.env.user_mem
    }

    /// Out-of-order bytes held (payload plus per-chunk overhead).
    pub fn buffered_bytes(&self) -> usize {
        self.env.buffered
    }

    /// Bytes the table's own structures take per tracked connection at most (slot with the
    /// consumer's state, index entries, free-list entry).
    pub fn per_flow_cost(&self) -> usize {
        self.per_flow_cost
    }

    /// Feeds one decoded segment.
    pub fn process(&mut self, seg: &Segment<'_>, handler: &mut H) {
        self.env.stats.segments += 1;
        if seg.ts_ns > self.now {
            self.now = seg.ts_ns;
        }
        let (key, src_is_lo) = FlowKey::of(seg, self.env.cfg.key_mode);
        let side = if src_is_lo { 0 } else { 1 };
        let hash = key.hash64();
        let slots = &self.slots;
        let found = self.index.find(hash, |i| {
            slots
                .get(i as usize)
                .and_then(|s| s.as_ref())
                .is_some_and(|c| c.core.key == key)
        });
        let mut idx = match found {
            Some(i) => i,
            None => match self.create(key, hash, src_is_lo, seg, handler) {
                Some(i) => i,
                None => return,
            },
        };
        let mut outcome = self.feed(idx, side, seg, handler);
        if let Outcome::Reuse = outcome {
            self.env.stats.port_reuse += 1;
            self.remove(idx);
            match self.create(key, hash, src_is_lo, seg, handler) {
                Some(i) => idx = i,
                None => return,
            }
            outcome = self.feed(idx, side, seg, handler);
        }
        if let Some(c) = self.slots.get_mut(idx as usize).and_then(|s| s.as_mut()) {
            recharge(c, &mut self.env, handler);
        }
        match outcome {
            Outcome::Open => {
                let Some(c) = self.slot(idx) else { return };
                if seg.ts_ns >= c.core.touch_ts.saturating_add(TOUCH_GRANULARITY_NS) {
                    c.core.touch_ts = seg.ts_ns;
                    self.unlink(Which::Age, idx);
                    self.push_back(Which::Age, idx);
                }
                self.sync_pending(idx);
            }
            Outcome::Closed => self.move_to_lingering(idx),
            // A second Reuse cannot happen: the new connection has just taken this SYN.
            Outcome::Reuse | Outcome::Absorbed => {}
        }
        while self.memory_in_use() > self.env.cfg.max_memory {
            if !self.relieve_one(handler) {
                break;
            }
        }
    }

    /// Runs timers up to `now_ns`: idle connections close, lingering ones are forgotten, old
    /// holes are skipped. Cheap when nothing is due; call it every few thousand packets or when
    /// time moved by more than a second.
    pub fn advance_time(&mut self, now_ns: u64, handler: &mut H) {
        if now_ns > self.now {
            self.now = now_ns;
        }
        let now = self.now;
        // Lingering: ordered by close time.
        while self.lingering.head != NIL {
            let i = self.lingering.head;
            let due = match self.slot(i) {
                Some(c) => c.core.last_ts.saturating_add(self.env.cfg.linger_ns) <= now,
                None => true,
            };
            if !due {
                break;
            }
            self.remove(i);
        }
        // Open: ordered by coarse last activity.
        while self.open.head != NIL {
            let i = self.open.head;
            let Some(c) = self.slots.get_mut(i as usize).and_then(|s| s.as_mut()) else {
                break;
            };
            if c.core.last_ts.saturating_add(self.env.cfg.idle_timeout_ns) > now {
                break;
            }
            let reason = if c.core.halves.iter().any(|hf| hf.fin_done()) {
                CloseReason::Fin
            } else {
                CloseReason::IdleTimeout
            };
            let ts = c.core.last_ts;
            close_conn(c, ts, reason, SkipTrigger::Close, &mut self.env, handler);
            self.remove(i);
        }
        // Holes: walk each pending connection once.
        let mut i = self.pending.head;
        let mut budget = self.pending.len;
        while i != NIL && budget > 0 {
            budget -= 1;
            let Some(c) = self.slots.get_mut(i as usize).and_then(|s| s.as_mut()) else {
                break;
            };
            let next = c.core.pend.next;
            for side in 0..2 {
                if c.core.halves[side].pending() {
                    enforce_bounds(c, side, now, &mut self.env, handler);
                }
            }
            recharge(c, &mut self.env, handler);
            let still = c.core.halves.iter().any(|hf| hf.pending());
            let fin_both = c.core.halves.iter().all(|hf| hf.fin_done());
            if fin_both {
                let ts = c.core.last_ts;
                close_conn(
                    c,
                    ts,
                    CloseReason::Fin,
                    SkipTrigger::Close,
                    &mut self.env,
                    handler,
                );
                self.move_to_lingering(i);
            } else if !still {
                self.sync_pending(i);
            }
            i = next;
        }
    }

    /// End of input: closes every connection with `EndOfInput`, delivering what is buffered
    /// (holes become gaps), and forgets everything.
    pub fn finish(&mut self, handler: &mut H) {
        while !self.finish_some(usize::MAX, handler) {}
    }

    /// [`FlowTable::finish`] in steps: closes at most `n` connections (oldest first) and
    /// returns true once everything is closed and forgotten. The consumer's exchanges can be
    /// drained between steps, so that ending a table full of pending state does not turn all
    /// of it into output at once (that doubled the memory at the end of a replay).
    pub fn finish_some(&mut self, n: usize, handler: &mut H) -> bool {
        let mut left = n;
        while self.open.head != NIL {
            if left == 0 {
                return false;
            }
            left -= 1;
            let i = self.open.head;
            if let Some(c) = self.slots.get_mut(i as usize).and_then(|s| s.as_mut()) {
                let ts = c.core.last_ts;
                close_conn(
                    c,
                    ts,
                    CloseReason::EndOfInput,
                    SkipTrigger::Close,
                    &mut self.env,
                    handler,
                );
            }
            self.remove(i);
        }
        while self.lingering.head != NIL {
            let i = self.lingering.head;
            self.remove(i);
        }
        self.index.clear();
        self.slots = Vec::new();
        self.free = Vec::new();
        true
    }

    fn slot(&mut self, i: u32) -> Option<&mut Conn<H::Conn>> {
        self.slots.get_mut(i as usize).and_then(|s| s.as_mut())
    }

    fn feed(&mut self, idx: u32, side: usize, seg: &Segment<'_>, h: &mut H) -> Outcome {
        let Some(c) = self.slots.get_mut(idx as usize).and_then(|s| s.as_mut()) else {
            return Outcome::Open;
        };
        if !c.core.closed {
            return conn_segment(c, side, seg, &mut self.env, h);
        }
        // Lingering after close: absorb late copies, unless a new SYN starts a new connection.
        if seg.flags.syn() && !seg.flags.rst() {
            let hf = &c.core.halves[side];
            if !(hf.syn_seen() && hf.isn == seg.seq) {
                return Outcome::Reuse;
            }
        }
        self.env.stats.late_after_close += 1;
        Outcome::Absorbed
    }

    /// Opens a connection for `seg`, making room first.
    fn create(
        &mut self,
        key: FlowKey,
        hash: u64,
        src_is_lo: bool,
        seg: &Segment<'_>,
        h: &mut H,
    ) -> Option<u32> {
        if seg.flags.rst() {
            self.env.stats.segments_without_flow += 1;
            return None;
        }
        while self.tracked_flows() >= self.env.cfg.max_flows {
            if !self.evict_one(EvictReason::MaxFlows, h) {
                break;
            }
        }
        while self.memory_in_use() > self.env.cfg.max_memory {
            if !self.relieve_one(h) {
                break;
            }
        }
        if self.free.is_empty() && self.slots.len() == self.slots.capacity() && !self.grow_slab() {
            // The slab is at its share of the budget (or growing it would break the budget):
            // the least recently used connection gives up its slot.
            self.evict_one(EvictReason::Memory, h);
            if self.free.is_empty() && self.slots.len() == self.slots.capacity() {
                // That was the last connection, and the empty table gave its slab back.
                self.grow_slab();
            }
        }
        let src = Endpoint {
            ip: seg.src_ip,
            port: seg.src_port,
        };
        let dst = Endpoint {
            ip: seg.dst_ip,
            port: seg.dst_port,
        };
        let (src_is_client, midstream, isn) = if seg.flags.syn() && !seg.flags.ack() {
            (true, false, Some(seg.seq))
        } else if seg.flags.syn() {
            (false, false, Some(seg.ack.wrapping_sub(1)))
        } else {
            let (rs, rd) = (server_rank(seg.src_port), server_rank(seg.dst_port));
            let src_server = rs < rd || (rs == rd && seg.src_port < seg.dst_port);
            (!src_server, true, None)
        };
        let (client, server) = if src_is_client {
            (src, dst)
        } else {
            (dst, src)
        };
        let mut meta = ConnMeta {
            conn_id: self.next_conn_id,
            stable_id: 0,
            client,
            server,
            vni: seg.vni,
            tunnel: seg.tunnel,
            mirror_source: seg.mirror_source,
            midstream,
            first_ts_ns: seg.ts_ns,
        };
        meta.stable_id = stable_id(&meta, isn, seg.seq, src_is_client);
        self.next_conn_id += 1;
        let user = h.on_open(&meta);
        let core = ConnCore {
            key,
            meta,
            halves: [Half::default(), Half::default()],
            last_ts: seg.ts_ns,
            touch_ts: seg.ts_ns,
            age: Links::NONE,
            pend: Links::NONE,
            client_is_lo: src_is_client == src_is_lo,
            closed: false,
            stopped: false,
            in_pending: false,
            handshake: false,
            user_mem: 0,
        };
        let conn = Conn {
            core,
            user: Some(user),
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(conn);
                i
            }
            None => {
                if self.slots.len() == self.slots.capacity() {
                    // Nothing could be evicted and the slab could not grow within the budget
                    // (a budget too small for even one slot): one slot more, not a doubling.
                    self.slots.reserve_exact(1);
                }
                self.slots.push(Some(conn));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(hash, idx);
        self.push_back(Which::Age, idx);
        self.env.stats.flows_created += 1;
        if midstream {
            self.env.stats.flows_midstream += 1;
        }
        Some(idx)
    }

    /// Frees a slot (the connection must already be closed or be closed by the caller).
    fn remove(&mut self, idx: u32) {
        let Some(c) = self.slots.get(idx as usize).and_then(|s| s.as_ref()) else {
            // Cannot happen (lists only hold live slots); if it did, drop the list rather
            // than let a caller loop on a head that never goes away.
            for l in [&mut self.open, &mut self.lingering, &mut self.pending] {
                if l.head == idx {
                    *l = List::EMPTY;
                }
            }
            return;
        };
        let hash = c.core.key.hash64();
        let in_pending = c.core.in_pending;
        self.unlink(Which::Age, idx);
        if in_pending {
            self.unlink(Which::Pending, idx);
        }
        self.index.remove(hash, idx);
        if let Some(mut c) = self.slots[idx as usize].take() {
            for hf in c.core.halves.iter_mut() {
                self.env.buffered -= hf.clear();
            }
            self.env.user_mem -= c.core.user_mem;
        }
        self.free.push(idx);
        if self.open.len + self.lingering.len == 0 {
            // Nothing tracked: give the slab and the index back (after a flood, a quiet table
            // should not keep its peak).
            self.slots = Vec::new();
            self.free = Vec::new();
            self.index.clear();
        }
    }

    /// Gives the slab its whole share of the budget at once (bounded by `max_flows`), if that
    /// fits in the budget as it stands. At once, because growing it step by step reallocates:
    /// the old block lives beside the new one while it is copied, and an allocator that keeps
    /// freed pages (mimalloc) kept every step's old block resident, about twice the slab in
    /// all. Pages not yet used are not resident, but they are charged: they are allocated.
    fn grow_slab(&mut self) -> bool {
        let cfg = &self.env.cfg;
        let len = self.slots.len();
        let limit = (cfg.max_memory / SLAB_SHARE / self.per_flow_cost).min(cfg.max_flows + 1);
        let want = limit.saturating_sub(len);
        if want == 0 {
            return false;
        }
        // Index and free list grow with the slab: charge their worst case now.
        let extra = want * self.per_flow_cost;
        if self.memory_in_use() + extra > cfg.max_memory {
            return false;
        }
        self.slots.reserve_exact(want);
        true
    }

    /// Moves a just-closed connection from the open list to the lingering list.
    fn move_to_lingering(&mut self, idx: u32) {
        let Some(c) = self.slot(idx) else { return };
        let in_pending = c.core.in_pending;
        self.unlink(Which::Age, idx);
        if in_pending {
            self.unlink(Which::Pending, idx);
        }
        if let Some(c) = self.slot(idx) {
            c.core.closed = true;
            c.core.in_pending = false;
        }
        self.push_back(Which::Age, idx);
    }

    /// Keeps the pending list in step with whether the connection waits on a hole.
    fn sync_pending(&mut self, idx: u32) {
        let Some(c) = self.slot(idx) else { return };
        let p = c.core.halves.iter().any(|hf| hf.pending());
        if p != c.core.in_pending {
            c.core.in_pending = p;
            if p {
                self.push_back(Which::Pending, idx);
            } else {
                self.unlink(Which::Pending, idx);
            }
        }
    }

    /// Evicts one connection to make room: a lingering one first (free), else the oldest idle.
    fn evict_one(&mut self, why: EvictReason, h: &mut H) -> bool {
        if self.lingering.head != NIL {
            let i = self.lingering.head;
            self.env.stats.lingering_dropped += 1;
            self.remove(i);
            return true;
        }
        if self.open.head == NIL {
            return false;
        }
        let i = self.open.head;
        let trigger = match why {
            EvictReason::MaxFlows => {
                self.env.stats.evicted_max_flows += 1;
                SkipTrigger::Close
            }
            EvictReason::Memory => {
                self.env.stats.evicted_memory += 1;
                SkipTrigger::Memory
            }
        };
        if let Some(c) = self.slots.get_mut(i as usize).and_then(|s| s.as_mut()) {
            let ts = c.core.last_ts;
            close_conn(c, ts, CloseReason::Evicted, trigger, &mut self.env, h);
        }
        self.remove(i);
        true
    }

    /// One step towards the memory budget: flush the oldest buffering connection's holes as
    /// `MemoryCap` gaps (its buffered bytes are delivered, not lost), else evict.
    fn relieve_one(&mut self, h: &mut H) -> bool {
        let mut i = self.pending.head;
        while i != NIL {
            let Some(c) = self.slots.get_mut(i as usize).and_then(|s| s.as_mut()) else {
                break;
            };
            let next = c.core.pend.next;
            if c.core.halves.iter().any(|hf| !hf.chunks.is_empty()) {
                let ts = self.now;
                for side in 0..2 {
                    drain_side(c, side, SkipTrigger::Memory, ts, &mut self.env, h);
                }
                recharge(c, &mut self.env, h);
                let fin_both = c.core.halves.iter().all(|hf| hf.fin_done());
                if fin_both {
                    close_conn(
                        c,
                        ts,
                        CloseReason::Fin,
                        SkipTrigger::Close,
                        &mut self.env,
                        h,
                    );
                    self.move_to_lingering(i);
                } else {
                    self.sync_pending(i);
                }
                return true;
            }
            i = next;
        }
        self.evict_one(EvictReason::Memory, h)
    }

    fn list(&mut self, w: Which, idx: u32) -> &mut List {
        match w {
            Which::Pending => &mut self.pending,
            Which::Age => {
                let closed = self
                    .slots
                    .get(idx as usize)
                    .and_then(|s| s.as_ref())
                    .is_some_and(|c| c.core.closed);
                if closed {
                    &mut self.lingering
                } else {
                    &mut self.open
                }
            }
        }
    }

    fn push_back(&mut self, w: Which, idx: u32) {
        let tail = self.list(w, idx).tail;
        if let Some(c) = self.slot(idx) {
            *c.links(w) = Links {
                prev: tail,
                next: NIL,
            };
        } else {
            return;
        }
        if let Some(t) = self.slot(tail) {
            t.links(w).next = idx;
        }
        let l = self.list(w, idx);
        if l.head == NIL {
            l.head = idx;
        }
        l.tail = idx;
        l.len += 1;
    }

    fn unlink(&mut self, w: Which, idx: u32) {
        let Some(c) = self.slot(idx) else { return };
        let Links { prev, next } = *c.links(w);
        *c.links(w) = Links::NONE;
        let in_list = {
            let l = self.list(w, idx);
            prev != NIL || next != NIL || l.head == idx
        };
        if !in_list {
            return;
        }
        if let Some(p) = self.slot(prev) {
            p.links(w).next = next;
        }
        if let Some(n) = self.slot(next) {
            n.links(w).prev = prev;
        }
        let l = self.list(w, idx);
        if l.head == idx {
            l.head = next;
        }
        if l.tail == idx {
            l.tail = prev;
        }
        l.len = l.len.saturating_sub(1);
    }
}

#[cfg(test)]
mod hash_pins {
    use super::*;

    /// The flow table's bucket hash and the stable connection id must not change by accident
    /// (ids appear in the output): pinned before the hashes moved into one module.
    #[test]
    fn key_hash_is_pinned() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let (k4, _) = FlowKey::build(
            (a, 40000),
            ("10.0.0.2".parse().unwrap(), 80),
            None,
            TunnelKind::None,
            None,
            FlowKeyMode::FiveTuple,
        );
        let (k6, _) = FlowKey::build(
            (b, 443),
            ("2001:db8::1".parse().unwrap(), 51000),
            Some(7),
            TunnelKind::Vxlan,
            Some(a),
            FlowKeyMode::Session,
        );
        let (h4, h6) = (k4.hash64(), k6.hash64());
        assert_eq!((h4, h6), (PIN_KEY_V4, PIN_KEY_V6), "{h4:#x} {h6:#x}");
    }

    const PIN_KEY_V4: u64 = 0x61e4_48bc_0a03_c5ab;
    const PIN_KEY_V6: u64 = 0x5773_c11b_f5c1_57e5;
}
