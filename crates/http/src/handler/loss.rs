//! What the stream lost: gaps (inside a body, inside a head, between messages), parse errors
//! that lose a direction's framing, and the ends of directions (FIN, close).
//!
//! A loss that can hide whole messages makes pairing uncertain (see [`super::Conn`]); a cut head
//! is salvaged when nothing can hide behind it, and a response-side loss while several requests
//! wait may still be settled by counting (see [`super::count`]).

use super::{
    Ack, Body, Brief, Conn, Entry, HttpHandler, Kind, Role, State, B_ABSORBED, B_LOST, B_RESP_LOST,
    B_UNCERTAIN, NO_REQUEST, PLACEHOLDER_BYTES,
};
use crate::flags::{Flag, FlagSet};
use vxtap_flow::GapReason;

impl HttpHandler {
    // ----- losses ----------------------------------------------------------------------------

    /// Direction `r` lost its framing: drop its partial head, remember what may be lost, resync.
    pub(super) fn desync(&mut self, c: &mut Conn, r: Role, flags: FlagSet) {
        self.stats.resyncs += 1;
        let h = &mut c.halves[r];
        h.state = State::Resync;
        self.stats.resync_skipped_bytes += h.head_buf.len() as u64;
        h.head_buf.clear();
        if flags.contains(Flag::SmugglingSuspect) {
            h.resync_flags.insert(Flag::SmugglingSuspect);
        }
        self.note_loss(c, r, flags);
    }

    /// Emits up to `n` held early responses as unpaired (their requests never came).
    pub(super) fn flush_early(&mut self, c: &mut Conn, n: usize) {
        for _ in 0..n {
            let Some(m) = c.early.pop_front() else { break };
            self.emit(c, None, Some(*m), Vec::new(), FlagSet::EMPTY);
        }
    }

    /// Messages of direction `r` may have vanished: pairing is uncertain until a sync point.
    fn note_loss(&mut self, c: &mut Conn, r: Role, flags: FlagSet) {
        // A second loss: the count that was to prove the pairings since the first cannot.
        self.count_failed(c);
        // Held responses whose acks can still place them stay; FIFO ones cannot survive a loss.
        if c.pipelined || c.early.iter().any(|m| m.ack.is_none()) {
            self.flush_early(c, usize::MAX);
        }
        c.uncertain = true;
        c.desync_flags.merge(flags);
        if c.halves[r].is_request {
            let next_resp_seq = c.next_resp_seq;
            let back_lost = match c.overflow.back_mut() {
                Some(b) if b.bits & B_LOST != 0 && b.seq >= next_resp_seq => {
                    b.flags.merge(flags);
                    if c.orphans > 0 {
                        c.orphans -= 1;
                        b.bits |= B_ABSORBED;
                    }
                    true
                }
                Some(_) => false,
                None => match c.queue.back_mut() {
                    Some(Entry {
                        kind: Kind::Lost(f),
                        seq,
                        absorbed,
                        ..
                    }) if *seq >= next_resp_seq => {
                        f.merge(flags);
                        if c.orphans > 0 {
                            c.orphans -= 1;
                            *absorbed = true;
                        }
                        true
                    }
                    _ => false,
                },
            };
            match back_lost {
                true => {}
                false => {
                    let seq = c.next_seq;
                    c.next_seq += 1;
                    let absorbed = c.orphans > 0;
                    c.orphans = c.orphans.saturating_sub(1);
                    // The response direction lost its place too: this request's response may
                    // have gone with it, so its absence proves nothing about pipelining. The
                    // lost request was sent after the last one queued, so after the client had
                    // at least `last_sent_ack` of the server stream (at least nothing, before
                    // the first): a place found again beyond that may have swallowed its
                    // response as well (as for a request whose own ack is known, see
                    // `push_request`).
                    let sent_at_least = c.last_sent_ack.get().unwrap_or(0);
                    let resp_lost = matches!(c.halves[Role::Resp].state, State::Resync)
                        || c.resp_synced_at > sent_at_least;
                    let start = c.halves[r].mark;
                    if c.overflow.is_empty() {
                        self.q_push(
                            c,
                            Entry {
                                seq,
                                kind: Kind::Lost(flags),
                                absorbed,
                                resp_lost,
                                start,
                                head_end: Ack::NONE,
                                sent_ack: Ack::NONE,
                                charge: 0,
                            },
                        );
                    } else {
                        // Behind the placeholders, in request order.
                        let mut bits = B_LOST;
                        if absorbed {
                            bits |= B_ABSORBED;
                        }
                        if resp_lost {
                            bits |= B_RESP_LOST;
                        }
                        c.overflow.push_back(Brief {
                            seq,
                            start,
                            ts: 0,
                            flags,
                            method: [0; 8],
                            bits,
                        });
                        self.pending_total += PLACEHOLDER_BYTES;
                    }
                }
            }
        } else {
            for b in c.overflow.iter_mut() {
                b.bits |= B_RESP_LOST | B_UNCERTAIN;
            }
            let from = c.next_resp_seq;
            for e in c.queue.iter_mut().filter(|e| e.seq >= from) {
                e.resp_lost = true;
                if c.pipelined_by == e.seq {
                    c.pipelined = false;
                    c.pipelined_by = NO_REQUEST;
                }
                if let Kind::Real(p) = &mut e.kind {
                    p.uncertain = true;
                }
            }
        }
    }

    pub(super) fn gap(&mut self, c: &mut Conn, r: Role, ts: u64, len: u64, reason: GapReason) {
        self.stats.gap_bytes += len;
        let mut flags = FlagSet::from(Flag::Gap);
        if reason == GapReason::TruncatedCapture {
            flags.insert(Flag::TruncatedCapture);
        }
        let h = &mut c.halves[r];
        let in_body = match &mut h.state {
            State::ConnectWait | State::Tunnel => {
                self.stats.upgrade_skipped_bytes += len;
                return;
            }
            State::Resync => {
                self.stats.resync_skipped_bytes += len + h.head_buf.len() as u64;
                h.head_buf.clear();
                self.note_loss(c, r, flags);
                return;
            }
            State::Start if !h.head_buf.is_empty() => {
                self.salvage_head(c, r, ts, len, flags);
                return;
            }
            State::Start => 0,
            State::Body(Body::UntilClose) => len,
            State::Body(Body::Length(rem)) => {
                let n = len.min(*rem);
                *rem -= n;
                n
            }
            State::Body(Body::Chunked(d)) => {
                if d.gap(len) {
                    len
                } else {
                    0
                }
            }
        };
        // Where the current message ends when the gap completes it (the caller moves `off` past
        // the whole gap afterwards).
        h.off += in_body;
        if in_body > 0 {
            if let Some(m) = h.cur.as_mut() {
                m.msg.body_len += in_body;
                m.msg.gap_bytes += in_body;
                m.flags.merge(flags);
                m.end_ts = ts;
                if let Some(d) = m.decoder.as_mut() {
                    // Decoding cannot continue across missing bytes; keep what we have.
                    let _ = d;
                    m.cut = true;
                }
            }
        }
        let finished_len = matches!(h.state, State::Body(Body::Length(0)));
        if in_body == len {
            if finished_len {
                self.finish_msg(c, r, ts, FlagSet::EMPTY, false);
            }
            return;
        }
        // The gap reaches past the current message's framing.
        if c.halves[r].cur.is_some() {
            if in_body > 0 {
                // Length body: complete but the gap also swallowed what followed it.
                self.finish_msg(c, r, ts, FlagSet::EMPTY, false);
            } else {
                let mut f = flags;
                f.insert(Flag::Incomplete);
                // A response cut inside its body (chunked framing lost) while more requests
                // wait: it is still its request's, and the gap may be the rest of it alone,
                // as for a cut head (see `Prov`).
                let h = &c.halves[r];
                let from = h.target.filter(|_| !h.is_request && !h.interim);
                if let Some(from) = from.filter(|k| {
                    self.counting_possible(c)
                        && (c.entry(k + 1).is_some() || !c.overflow.is_empty())
                }) {
                    self.begin_count(c, from, len);
                    self.finish_msg(c, r, ts, f, true);
                    self.stats.resyncs += 1;
                    let h = &mut c.halves[r];
                    h.state = State::Resync;
                    h.head_buf.clear();
                    return;
                }
                self.finish_msg(c, r, ts, f, true);
            }
        } else if !c.halves[r].is_request
            && matches!(c.halves[r].state, State::Start)
            && self.begin_lost_count(c, len)
        {
            return;
        }
        self.desync(c, r, flags);
    }

    /// A head was cut by missing bytes, typically a mirror session's packet length (AWS cuts
    /// every frame, so a response head longer than the kept part always is). The complete lines
    /// that arrived are a usable head: the message is kept, flagged, and ended at once, since
    /// where its head ended inside the gap (and so its body framing) is unknown. The direction
    /// then looks for the next start line. This is done only when the missing bytes cannot hide
    /// another whole message of this direction (a response gap hides one only if another
    /// request was outstanding, a request gap only on a pipelining client), so pairing stays
    /// certain; otherwise the head is dropped and the direction resynchronises as after a loss.
    ///
    /// A response head cut while several requests wait is salvaged too when the pairing after
    /// it can be proven by counting at the end (see `Prov`).
    fn salvage_head(&mut self, c: &mut Conn, r: Role, ts: u64, len: u64, flags: FlagSet) {
        let buf = std::mem::take(&mut c.halves[r].head_buf);
        let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
            // Not even a status line: as if the response had started inside the gap.
            if c.halves[r].is_request || !self.begin_lost_count(c, len) {
                self.desync(c, r, flags);
            }
            return;
        };
        // Only on a connection whose pairing is certain: otherwise the response to a cut request
        // may already have gone by unpaired, and only the loss path's placeholder accounts for
        // it.
        let hidden_possible = c.uncertain
            || if c.halves[r].is_request {
                c.pipelined || c.orphans > 0
            } else {
                c.fix_resp_cursor();
                let from = c.next_resp_seq;
                c.queue.iter().filter(|e| e.seq >= from).count() + c.overflow.len() > 1
            };
        let counting = hidden_possible
            && !c.halves[r].is_request
            && final_status_line(&buf)
            && self.counting_possible(c);
        if hidden_possible && !counting {
            // Whatever the cut head was, later messages cannot be paired on certainty: resync
            // and let the pairing logic account for possibly vanished messages.
            self.desync(c, r, flags);
            return;
        }
        let mut head = Vec::with_capacity(last_nl + 3);
        head.extend_from_slice(&buf[..=last_nl]);
        head.extend_from_slice(b"\r\n");
        let mut f = flags;
        f.insert(Flag::Incomplete);
        c.halves[r].resync_flags.merge(f);
        let _ = self.on_head(c, r, ts, &head);
        if counting {
            match c.halves[r].target {
                Some(from) if !c.uncertain && c.halves[r].cur.is_some() => {
                    self.begin_count(c, from, len);
                }
                _ => {
                    // The head did not pair after all: the plain loss path.
                    if c.halves[r].cur.is_some() {
                        self.finish_msg(c, r, ts, f, true);
                    }
                    c.halves[r].resync_flags = FlagSet::EMPTY;
                    self.desync(c, r, flags);
                    return;
                }
            }
        }
        let target = c.halves[r].target.filter(|_| c.halves[r].is_request);
        if let Some(e) = target.and_then(|s| c.entry_mut(s)) {
            // Where the head really ended is inside the gap.
            e.head_end = Ack::NONE;
        }
        if c.halves[r].cur.is_some() {
            self.finish_msg(c, r, ts, f, true);
        }
        let h = &mut c.halves[r];
        h.resync_flags = FlagSet::EMPTY;
        if !matches!(h.state, State::Start | State::Body(_)) {
            self.desync(c, r, flags);
        } else {
            // Not a loss of messages: only this one's tail is gone.
            self.stats.resyncs += 1;
            h.state = State::Resync;
            h.head_buf.clear();
        }
    }

    /// Ends direction `r` (FIN or close): close-delimited bodies end, anything else is cut.
    pub(super) fn end_half(
        &mut self,
        c: &mut Conn,
        r: Role,
        ts: u64,
        cut_flags: FlagSet,
        clean_close: bool,
    ) {
        let h = &mut c.halves[r];
        match &h.state {
            State::Body(Body::UntilClose) => {
                let f = if clean_close {
                    FlagSet::EMPTY
                } else {
                    let mut f = cut_flags;
                    f.insert(Flag::Incomplete);
                    f
                };
                self.finish_msg(c, r, ts, f, !clean_close);
            }
            State::Body(_) => {
                let mut f = cut_flags;
                f.insert(Flag::Incomplete);
                self.finish_msg(c, r, ts, f, true);
            }
            State::Start | State::Resync => {
                if !h.head_buf.is_empty() {
                    self.stats.resync_skipped_bytes += h.head_buf.len() as u64;
                    h.head_buf.clear();
                }
            }
            State::ConnectWait | State::Tunnel => {}
        }
    }
}

/// The bytes start with a status line whose code is final (2xx-5xx): a response that answers
/// a request rather than announcing another response.
fn final_status_line(b: &[u8]) -> bool {
    b.len() >= 13
        && b.starts_with(b"HTTP/1.")
        && b[8] == b' '
        && b[9..12].iter().all(u8::is_ascii_digit)
        && (b'2'..=b'5').contains(&b[9])
        && matches!(b[12], b' ' | b'\r' | b'\n')
}
