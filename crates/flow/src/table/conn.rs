//! One connection's state and the logic that moves its two streams: SYN handling, payload
//! into the stream (in order straight from the frame, out of order into chunks), flushing,
//! skipping holes on the bounds (peer ack, hole age, per-direction cap, memory), and the
//! callbacks to the consumer.

use super::key::FlowKey;
use super::lru::{Links, Which};
use crate::api::{CloseReason, ConnMeta, Direction, GapReason, StreamHandler, Verdict};
use crate::config::FlowConfig;
use crate::half::{Half, NO_ACK};
use crate::hash::FxHasher;
use crate::stats::{FlowStats, SkipTrigger};
use std::hash::Hasher;

use vxtap_wire::Segment;

/// A SYN this far (or less) before a mid-stream pickup's first byte is the connection's own
/// handshake arriving late (mirror reordering), not a new connection.
pub(super) const LATE_SYN_WINDOW: i64 = 1 << 20;

/// Per-connection state (without the consumer's `U`, which sits beside it).
/// `repr(C)`: key and per-packet bookkeeping first, then the two directions, the metadata (read
/// only by the consumer) last.
#[repr(C)]
pub(super) struct ConnCore {
    /// Compared on lookup (the index holds only hashes): first, beside the packet clock.
    pub(super) key: FlowKey,
    pub(super) last_ts: u64,
    pub(super) touch_ts: u64,
    pub(super) client_is_lo: bool,
    pub(super) closed: bool,
    pub(super) stopped: bool,
    pub(super) in_pending: bool,
    /// A SYN or SYN-ACK was seen: acks may start the other direction.
    pub(super) handshake: bool,
    pub(super) age: Links,
    pub(super) pend: Links,
    /// `halves[0]` carries bytes from the `lo` endpoint, `halves[1]` from `hi`.
    pub(super) halves: [Half; 2],
    pub(super) meta: ConnMeta,
    /// Heap bytes of the consumer's state as last reported (`StreamHandler::mem_bytes`), part
    /// of `Env::user_mem`.
    pub(super) user_mem: usize,
}

pub(super) struct Conn<U> {
    pub(super) core: ConnCore,
    pub(super) user: Option<U>,
}

impl<U> Conn<U> {
    pub(super) fn links(&mut self, w: Which) -> &mut Links {
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
pub(super) enum Outcome {
    Open,
    /// The connection closed (FIN both ways, RST): it now lingers.
    Closed,
    /// A new SYN started another connection on this 5-tuple; the old one is already closed.
    Reuse,
    /// A late segment for a lingering connection, absorbed.
    Absorbed,
}

/// What the table needs beside the connections while it works on one of them.
pub(super) struct Env {
    pub(super) cfg: FlowConfig,
    pub(super) stats: FlowStats,
    /// Cost of all out-of-order chunks in the table.
    pub(super) buffered: usize,
    /// Sum of `ConnCore::user_mem`: the consumer's per-connection heap.
    pub(super) user_mem: usize,
}

pub(super) fn dir_of(client_is_lo: bool, side: usize) -> Direction {
    if (side == 0) == client_is_lo {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    }
}

pub(super) fn apply_verdict(c: &mut ConnCore, v: Verdict, env: &mut Env) {
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

pub(super) enum SynAction {
    Continue,
    Ignore,
    Reuse,
}

pub(super) fn on_syn(c: &mut ConnCore, side: usize, seg: &Segment<'_>, env: &mut Env) -> SynAction {
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

/// One connection being worked on and what the work needs beside it: the table's shared
/// state and the consumer. The per-connection logic is its methods, which all used to take these
/// three (and the side and time) as arguments. Built at each call site from borrows, so it costs
/// nothing to make and holds no state of its own.
pub(super) struct ConnCtx<'a, H: StreamHandler> {
    pub(super) c: &'a mut Conn<H::Conn>,
    pub(super) env: &'a mut Env,
    pub(super) h: &'a mut H,
}

impl<'a, H: StreamHandler> ConnCtx<'a, H> {
    /// Borrows the connection, the table's state and the consumer for one piece of work.
    #[inline]
    pub(super) fn new(c: &'a mut Conn<H::Conn>, env: &'a mut Env, h: &'a mut H) -> Self {
        ConnCtx { c, env, h }
    }

    /// Re-reads the consumer's heap for `c` after callbacks and moves the difference into the total.
    pub(super) fn recharge(&mut self) {
        let m = self.c.user.as_ref().map_or(0, |u| self.h.mem_bytes(u));
        self.env.user_mem = self.env.user_mem - self.c.core.user_mem + m;
        self.c.core.user_mem = m;
    }

    /// `ack`: what the segment that carried `data` acknowledged, as an offset of the other side's
    /// stream (see [`ConnCtx::peer_ack`]).
    fn emit_data(&mut self, side: usize, ts: u64, data: &[u8], ack: u64) {
        if data.is_empty() {
            return;
        }
        match self.c.user.as_mut() {
            Some(u) if !self.c.core.stopped => {
                self.env.stats.bytes_delivered += data.len() as u64;
                self.env.stats.data_chunks += 1;
                let dir = dir_of(self.c.core.client_is_lo, side);
                if let Some(a) = self.c.core.halves[side].ack_change(ack) {
                    self.h.on_ack(u, &self.c.core.meta, dir, a);
                }
                let v = self.h.on_data(u, &self.c.core.meta, dir, ts, data);
                apply_verdict(&mut self.c.core, v, self.env);
            }
            _ => self.env.stats.bytes_after_stop += data.len() as u64,
        }
    }

    fn emit_gap(&mut self, side: usize, ts: u64, len: u64, reason: GapReason) {
        if len == 0 {
            return;
        }
        self.env.stats.add_gap(reason, len);
        if let Some(u) = self.c.user.as_mut() {
            if !self.c.core.stopped {
                let dir = dir_of(self.c.core.client_is_lo, side);
                let v = self.h.on_gap(u, &self.c.core.meta, dir, ts, len, reason);
                apply_verdict(&mut self.c.core, v, self.env);
            }
        }
    }

    /// Reports the FIN once everything before it is delivered or gapped.
    fn maybe_fin(&mut self, side: usize, ts: u64) {
        let hf = &mut self.c.core.halves[side];
        if hf.fin_seen() && !hf.fin_done() && hf.next_off >= hf.fin_off {
            hf.set_fin_done();
            if let Some(u) = self.c.user.as_mut() {
                self.h.on_fin(
                    u,
                    &self.c.core.meta,
                    dir_of(self.c.core.client_is_lo, side),
                    ts,
                );
            }
        }
    }

    /// Delivers every buffered chunk that is now contiguous with the stream.
    fn flush(&mut self, side: usize) {
        if self.c.core.halves[side].chunks.first().map(|ch| ch.off)
            > Some(self.c.core.halves[side].next_off)
        {
            return;
        }
        // Taken out so the handler can borrow the connection while we read the chunks.
        let mut chunks = std::mem::take(&mut self.c.core.halves[side].chunks);
        let mut n = 0;
        let mut freed = 0;
        let mut last_ts = 0;
        for ch in chunks.iter() {
            let next = self.c.core.halves[side].next_off;
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
                self.emit_data(side, ch.ts_ns, &ch.data[(next - ch.off) as usize..], ch.ack);
            }
            let miss_from = data_end.max(next);
            self.c.core.halves[side].next_off = end;
            self.emit_gap(side, ch.ts_ns, end - miss_from, GapReason::TruncatedCapture);
        }
        chunks.drain(..n);
        let hf = &mut self.c.core.halves[side];
        hf.chunks = chunks;
        hf.buffered -= freed;
        self.env.buffered -= freed;
        if hf.chunks.is_empty() && hf.chunks.capacity() > 8 {
            // A burst of reordering should not pin its peak allocation for the connection's life.
            hf.chunks = Vec::new();
        }
        if let Some(t) = hf.oldest_chunk_ts() {
            hf.hole_since_ns = t;
        }
        self.maybe_fin(side, last_ts);
    }

    /// Skips holes (as gaps) until `limit` is reached or nothing is left before it.
    fn skip_to(&mut self, side: usize, limit: u64, trigger: SkipTrigger, ts: u64) {
        loop {
            let hf = &self.c.core.halves[side];
            let next = hf.next_off;
            let end = hf.hole_end().min(limit);
            if end <= next {
                break;
            }
            self.c.core.halves[side].next_off = end;
            self.env.stats.add_skip(trigger);
            self.emit_gap(side, ts, end - next, trigger.gap_reason());
            self.flush(side);
        }
        self.maybe_fin(side, ts);
    }

    /// Skips the first hole of `side` and delivers what follows it.
    fn skip_first_hole(&mut self, side: usize, trigger: SkipTrigger, ts: u64) {
        let end = self.c.core.halves[side].hole_end();
        if end != u64::MAX {
            self.skip_to(side, end, trigger, ts);
        }
    }

    /// Skips every hole of `side`: buffered data and a pending FIN all come out.
    pub(super) fn drain_side(&mut self, side: usize, trigger: SkipTrigger, ts: u64) {
        let end = self.c.core.halves[side].known_end();
        self.skip_to(side, end, trigger, ts);
    }

    /// Ends a connection: flush what is buffered (holes become gaps), tell the consumer.
    pub(super) fn close_conn(&mut self, ts: u64, reason: CloseReason, trigger: SkipTrigger) {
        for side in 0..2 {
            self.drain_side(side, trigger, ts);
            self.env.buffered -= self.c.core.halves[side].clear();
        }
        if let Some(u) = self.c.user.take() {
            self.env.stats.add_close(reason);
            self.h.on_close(u, &self.c.core.meta, ts, reason);
        }
        self.env.user_mem -= std::mem::take(&mut self.c.core.user_mem);
        // `closed` (which list the connection is on) is set by the table when it moves it.
    }

    /// The peer of `side` acknowledged up to `ack`: bytes before it reached the receiver.
    ///
    /// Returns the ack as an offset of `side`'s stream, the evidence reported with the peer's data,
    /// or [`NO_ACK`] when it is none: that stream not started (its base unknown), or an ack before
    /// its start, too far ahead, or past its FIN (more than it can have sent).
    fn peer_ack(&mut self, side: usize, ack: u32, ts: u64) -> u64 {
        let hf = &mut self.c.core.halves[side];
        if !hf.started() {
            // Handshake seen but not this side's SYN: the ack is exactly where its data begins.
            if self.c.core.handshake {
                hf.start(ack);
                return 0;
            }
            return NO_ACK;
        }
        let rel = hf.rel(ack);
        let off = hf.next_off as i64 + rel;
        if rel > self.env.cfg.max_seq_ahead as i64 || off < 0 {
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
            self.ack_skip(side, ts);
        }
        evidence
    }

    /// Skips what the peer acknowledged once the hole is older than the grace period.
    fn ack_skip(&mut self, side: usize, now: u64) {
        let hf = &mut self.c.core.halves[side];
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
        if now.saturating_sub(since) >= self.env.cfg.ack_skip_grace_ns {
            // Only what was acknowledged when the clock started has waited the whole grace: a hole
            // acked later (the next request held back while this one was lost) gets its own.
            let due = hf.ack_limit_at(hf.acked_base);
            if due > hf.next_off {
                self.skip_to(side, due, SkipTrigger::PeerAck, now);
            } else {
                hf.acked_since_ns = now;
                hf.acked_base = hf.acked_off;
            }
        }
    }

    /// Payload (and FIN) of a segment into the stream of `side`; `ack`: its ack as an offset of
    /// the other side's stream (see [`ConnCtx::peer_ack`]).
    fn on_payload(&mut self, side: usize, seg: &Segment<'_>, ack: u64) {
        let fin = seg.flags.fin();
        let captured = seg.payload;
        let total = (seg.wire_payload_len as u64).max(captured.len() as u64);
        if total == 0 && !fin {
            return;
        }
        let data_seq = seg.seq.wrapping_add(seg.flags.syn() as u32);
        let ts = seg.ts_ns;
        let hf = &mut self.c.core.halves[side];
        if !hf.started() {
            hf.start(data_seq);
        }
        let rel = hf.rel(data_seq);
        if rel > self.env.cfg.max_seq_ahead as i64 {
            self.env.stats.out_of_window += 1;
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
                self.env.stats.retransmitted_segments += 1;
                self.env.stats.retransmitted_bytes += total;
                if off < 0 {
                    self.env.stats.pre_start_segments += 1;
                }
            }
            self.maybe_fin(side, ts);
            return;
        }
        // Trim what was already delivered (a partial retransmission).
        let skip = (next as i64 - off).max(0) as u64;
        self.env.stats.retransmitted_bytes += skip;
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
            self.emit_data(side, ts, &cap[..cl as usize], ack);
            if upto > cl {
                self.emit_gap(side, ts, upto - cl, GapReason::TruncatedCapture);
            }
            if upto == total {
                if self.c.core.halves[side].chunks.is_empty() {
                    self.maybe_fin(side, ts);
                } else {
                    self.flush(side);
                }
                return;
            }
            cap = &cap[cl as usize..];
            total -= upto;
            off += upto;
        }
        let hf = &mut self.c.core.halves[side];
        let had_hole = hf.has_hole();
        let r = hf.insert(off, ts, ack, cap, total);
        if !had_hole && hf.has_hole() {
            hf.hole_since_ns = ts;
        }
        self.env.buffered += r.cost;
        if r.new_bytes == 0 {
            self.env.stats.retransmitted_segments += 1;
        } else {
            self.env.stats.ooo_segments += 1;
            self.env.stats.ooo_bytes += r.copied;
        }
        self.env.stats.retransmitted_bytes += r.dup_bytes;
        if r.conflict_bytes > 0 {
            self.env.stats.overlap_conflict_segments += 1;
            self.env.stats.overlap_conflict_bytes += r.conflict_bytes;
        }
        self.flush(side);
        self.enforce_bounds(side, ts);
    }

    /// Per-direction cap and hole age, checked whenever the direction moves.
    pub(super) fn enforce_bounds(&mut self, side: usize, now: u64) {
        while self.c.core.halves[side].buffered > self.env.cfg.max_buffer_per_direction {
            let before = self.c.core.halves[side].buffered;
            self.skip_first_hole(side, SkipTrigger::FlowCap, now);
            if self.c.core.halves[side].buffered == before {
                // Defensive: a chunk already at the stream position only needs delivering.
                self.flush(side);
                if self.c.core.halves[side].buffered == before {
                    break;
                }
            }
        }
        self.ack_skip(side, now);
        while self.c.core.halves[side].has_hole()
            && now.saturating_sub(self.c.core.halves[side].hole_since_ns)
                >= self.env.cfg.hole_timeout_ns
        {
            let before = self.c.core.halves[side].next_off;
            self.skip_first_hole(side, SkipTrigger::HoleTimeout, now);
            if self.c.core.halves[side].next_off == before {
                break;
            }
            if self.c.core.halves[side].chunks.is_empty() {
                self.c.core.halves[side].hole_since_ns = now;
            }
        }
    }

    /// One segment on an open connection.
    pub(super) fn conn_segment(&mut self, side: usize, seg: &Segment<'_>) -> Outcome {
        let ts = seg.ts_ns;
        if ts > self.c.core.last_ts {
            self.c.core.last_ts = ts;
        }
        if seg.flags.rst() {
            self.env.stats.rst_payload_bytes += seg.payload.len() as u64;
            self.close_conn(ts, CloseReason::Rst, SkipTrigger::Close);
            return Outcome::Closed;
        }
        if seg.flags.syn() {
            match on_syn(&mut self.c.core, side, seg, self.env) {
                SynAction::Continue => {}
                SynAction::Ignore => return Outcome::Open,
                SynAction::Reuse => {
                    self.close_conn(ts, CloseReason::PortReuse, SkipTrigger::Close);
                    return Outcome::Reuse;
                }
            }
        }
        let ack = if seg.flags.ack() {
            self.peer_ack(side ^ 1, seg.ack, ts)
        } else {
            NO_ACK
        };
        self.on_payload(side, seg, ack);
        for s in [side, 1 - side] {
            // A hole may have aged (or been acked) while only the other direction talked.
            if self.c.core.halves[s].pending() {
                self.enforce_bounds(s, ts);
            }
        }
        if self.c.core.halves.iter().all(|hf| hf.fin_done()) {
            self.close_conn(ts, CloseReason::Fin, SkipTrigger::Close);
            return Outcome::Closed;
        }
        Outcome::Open
    }
}

/// Stable id: same for the same connection mirrored twice or replayed, never random.
pub(super) fn stable_id(
    meta: &ConnMeta,
    isn: Option<u32>,
    first_seq: u32,
    first_from_client: bool,
) -> u64 {
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
