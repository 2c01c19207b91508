//! One connection's state and the logic that moves its two streams: SYN handling, payload
//! into the stream (in order straight from the frame, out of order into chunks), flushing,
//! skipping holes on the bounds (peer ack, hole age, per-direction cap, memory), and the
//! callbacks to the consumer.

use super::*;

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

/// Re-reads the consumer's heap for `c` after callbacks and moves the difference into the total.
pub(super) fn recharge<H: StreamHandler>(c: &mut Conn<H::Conn>, env: &mut Env, h: &H) {
    let m = c.user.as_ref().map_or(0, |u| h.mem_bytes(u));
    env.user_mem = env.user_mem - c.core.user_mem + m;
    c.core.user_mem = m;
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

/// `ack`: what the segment that carried `data` acknowledged, as an offset of the other side's
/// stream (see [`peer_ack`]).
pub(super) fn emit_data<H: StreamHandler>(
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

pub(super) fn emit_gap<H: StreamHandler>(
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
pub(super) fn maybe_fin<H: StreamHandler>(c: &mut Conn<H::Conn>, side: usize, ts: u64, h: &mut H) {
    let hf = &mut c.core.halves[side];
    if hf.fin_seen() && !hf.fin_done() && hf.next_off >= hf.fin_off {
        hf.set_fin_done();
        if let Some(u) = c.user.as_mut() {
            h.on_fin(u, &c.core.meta, dir_of(c.core.client_is_lo, side), ts);
        }
    }
}

/// Delivers every buffered chunk that is now contiguous with the stream.
pub(super) fn flush<H: StreamHandler>(
    c: &mut Conn<H::Conn>,
    side: usize,
    env: &mut Env,
    h: &mut H,
) {
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
pub(super) fn skip_to<H: StreamHandler>(
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
pub(super) fn skip_first_hole<H: StreamHandler>(
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
pub(super) fn drain_side<H: StreamHandler>(
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
pub(super) fn close_conn<H: StreamHandler>(
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
pub(super) fn peer_ack<H: StreamHandler>(
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
pub(super) fn ack_skip<H: StreamHandler>(
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

/// Payload (and FIN) of a segment into the stream of `side`; `ack`: its ack as an offset of
/// the other side's stream (see [`peer_ack`]).
pub(super) fn on_payload<H: StreamHandler>(
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
pub(super) fn enforce_bounds<H: StreamHandler>(
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
pub(super) fn conn_segment<H: StreamHandler>(
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
