//! Pairing proven by counting: after a gap cuts a response while more requests wait, the
//! responses that follow are paired in order but held until the count proves that every
//! request got exactly one (see [`super::Prov`]); any doubt undoes those pairings.

use super::{
    Conn, Entry, HttpHandler, Kind, Prov, Role, State, B_RESP_LOST, B_UNCERTAIN, NO_REQUEST,
};
use crate::flags::{Flag, FlagSet};

impl HttpHandler {
    // ----- pairing proven by counting ----------------------------------------------------------

    /// A response-side loss can be settled by counting (see `Prov`) only on a connection whose
    /// pairing is otherwise certain and simple: nothing uncertain, held or skipped, the client
    /// stream in step, and no count already running.
    pub(super) fn counting_possible(&self, c: &Conn) -> bool {
        !c.uncertain
            && !c.midstream_unsynced
            && !c.stopped
            && c.early.is_empty()
            && c.skip_responses == 0
            && !c.halves[Role::Resp].held
            && c.overflow.prov().is_none()
            && matches!(c.halves[Role::Req].state, State::Start | State::Body(_))
    }

    /// A response answering request `from` was cut by a gap of `len` bytes that may also hide
    /// whole responses: pair on in order, and hold, until the count (see `Prov`).
    pub(super) fn begin_count(&mut self, c: &mut Conn, from: u64, len: u64) {
        c.overflow.set_prov(Prov {
            from,
            gap: len,
            unasked: false,
        });
        // As after any response-side loss (see `note_loss`): a later request's response may be
        // in the gap, so its absence proves no pipelining (but pairing stays in order, to be
        // counted).
        for e in c.queue.iter_mut().filter(|e| e.seq >= from) {
            e.resp_lost = true;
            if c.pipelined_by == e.seq {
                c.pipelined = false;
                c.pipelined_by = NO_REQUEST;
            }
        }
        for b in c.overflow.iter_mut() {
            b.bits |= B_RESP_LOST;
        }
    }

    /// A gap began where a response was due (between responses, or before its status line was
    /// complete) while several requests wait: the response of the oldest waiting request
    /// started in it. Assume it was the only one there (that request: `no_response`, `gap`)
    /// and pair on in order, held until the count (see `Prov`), which also catches a gap that
    /// held no response (one response too many) or only an interim one. False when a count
    /// cannot be run; the caller then resynchronises as after any loss.
    pub(super) fn begin_lost_count(&mut self, c: &mut Conn, len: u64) -> bool {
        c.fix_resp_cursor();
        let k = c.next_resp_seq;
        if !self.counting_possible(c) || c.halves[Role::Resp].cur.is_some() {
            return false;
        }
        self.ensure_main(c, k);
        let more = c.entry(k + 1).is_some() || !c.overflow.is_empty();
        match c.entry_mut(k) {
            Some(Entry {
                kind: Kind::Real(p),
                ..
            }) if more && p.resp.is_none() && p.req.is_some() => {
                p.gave_up = true;
                p.flags.insert(Flag::Gap);
            }
            _ => return false,
        }
        c.next_resp_seq = k + 1;
        self.begin_count(c, k, len);
        self.stats.resyncs += 1;
        let h = &mut c.halves[Role::Resp];
        h.state = State::Resync;
        h.head_buf.clear();
        true
    }

    /// Every response to the requests so far has been seen: at the end of the connection, or
    /// when a client that waits for its responses sends its next request. If each request got
    /// exactly one, the held pairings are proven; otherwise they are undone. `owed`: the
    /// client pipelines, so a request still unanswered may yet be (no verdict then).
    pub(super) fn settle_count(&mut self, c: &mut Conn, owed: bool) {
        let Some(p) = c.overflow.prov() else { return };
        c.fix_resp_cursor();
        let answered = c.next_resp_seq == c.next_seq
            && c.overflow.is_empty()
            && c.early.is_empty()
            && c.halves[Role::Resp].cur.is_none()
            && !p.unasked;
        if !answered {
            if !owed {
                self.count_failed(c);
            }
            return;
        }
        self.stats.count_pairings += c.next_resp_seq - p.from - 1;
        self.count_proven(c);
    }

    /// The pairings held since the cut response are proven: emit them.
    pub(super) fn count_proven(&mut self, c: &mut Conn) {
        let Some(p) = c.overflow.take_prov() else {
            return;
        };
        if let Some(Entry {
            kind: Kind::Real(e),
            ..
        }) = c.entry_mut(p.from)
        {
            if let Some(m) = e.resp.as_mut() {
                // Exactly one message lay in the gap: all of its bytes were this response's.
                m.msg.gap_bytes += p.gap;
            }
        }
        self.try_emit(c);
    }

    /// The count cannot settle (another loss, an unpaired response, pressure, an upgrade):
    /// the responses paired since the cut one lose their requests, and the requests still
    /// waiting become uncertain, as after any loss.
    pub(super) fn count_failed(&mut self, c: &mut Conn) {
        let Some(p) = c.overflow.take_prov() else {
            return;
        };
        let flags = FlagSet::from(Flag::Gap);
        let upto = c.next_resp_seq;
        let mut undone = Vec::new();
        for e in c.queue.iter_mut() {
            if e.seq <= p.from {
                continue;
            }
            e.resp_lost = true;
            let Kind::Real(pp) = &mut e.kind else {
                continue;
            };
            pp.uncertain = true;
            if e.seq < upto {
                pp.gave_up = true;
                pp.flags.merge(flags);
                if let Some(m) = pp.resp.take() {
                    undone.push(m);
                }
            }
        }
        for b in c.overflow.iter_mut() {
            b.bits |= B_UNCERTAIN | B_RESP_LOST;
        }
        let h = &mut c.halves[Role::Resp];
        if h.cur.is_some() && h.target.is_some_and(|t| t > p.from) && !h.interim {
            h.target = None;
            h.unpaired_flags = flags;
        }
        c.uncertain = true;
        c.desync_flags.merge(flags);
        c.pipelined_by = NO_REQUEST;
        for m in undone {
            self.emit(c, None, Some(m), Vec::new(), flags);
        }
        self.try_emit(c);
    }
}
