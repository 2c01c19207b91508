//! Request/response pairing: the queue of requests awaiting responses, FIFO pairing, pairing
//! proven by TCP acknowledgements (see [`super::Conn`]'s `ack_pick`), responses held until the
//! client stream reaches their ack, and the emission of finished exchanges in request order.

use super::budget::build_bytes;
use super::{
    Ack, AckPick, Brief, Conn, Entry, HttpHandler, Kind, Pending, Role, State, B_ABSORBED,
    B_CONNECT, B_GAVE_UP, B_HEAD, B_LOST, B_RESP_LOST, B_UNCERTAIN, FULL_ENTRY_BYTES, NO_REQUEST,
    PIPELINE_SCAN, PLACEHOLDER_BYTES,
};
use crate::flags::{Flag, FlagSet};

impl HttpHandler {
    // ----- pairing ---------------------------------------------------------------------------

    pub(super) fn push_request(
        &mut self,
        c: &mut Conn,
        method: &str,
        is_head: bool,
        is_connect: bool,
    ) -> u64 {
        c.fix_resp_cursor();
        // Responses held for the client stream to get here first: those that answered requests
        // before this one (lost ones included) are accounted for before anything is concluded
        // from requests still waiting.
        let start = c.halves[Role::Req].head_off;
        self.resolve_held(c, Some(start));
        c.fix_resp_cursor();
        let from = c.next_resp_seq;
        let (mut blocking, mut evidence) = (false, None);
        // Every sequence number from the front on is queued (full or placeholder).
        let unanswered = c.next_seq.saturating_sub(from);
        // The response being received right now, if its head has been parsed.
        let answering = c.halves[Role::Resp]
            .cur
            .as_ref()
            .and(c.halves[Role::Resp].target);
        // The client had received server bytes not parsed yet when it sent this request: the
        // responses it waited for may be among them, so a waiting request proves nothing, and
        // a response still to come may answer an earlier request.
        let sent_ack = c.halves[Role::Req].head_ack;
        let rs = &c.halves[Role::Resp];
        let behind = sent_ack.get().is_some_and(|sent| sent > rs.off);
        // Syncing says the next response answers this request. By its ack, the client had
        // every response to earlier requests before `sent_ack`; so every server byte parsed
        // after it must be known to hold no response (a response delivered before its request
        // was, or one lost in a gap, would otherwise shift every later pairing).
        let sync_ok = sent_ack.get().is_none_or(|sent| {
            rs.mark <= sent
                && sent <= rs.off
                && (sent == rs.off || matches!(rs.state, State::Start))
        });

        // Newest first: the newest evidence is what counts, and the scan stops there (a long
        // queue is only ever built by a pipelining client). Past `PIPELINE_SCAN` entries
        // without evidence, the unscanned ones are taken as blocking a sync.
        let briefs = c.overflow.iter().rev().map(|b| {
            let on = |bit: u8| b.bits & bit != 0;
            if on(B_LOST) {
                (b.seq, !(on(B_ABSORBED) || on(B_RESP_LOST)), false)
            } else {
                let firm = !(on(B_UNCERTAIN) || on(B_RESP_LOST));
                (b.seq, firm, !firm && c.pipelined && !on(B_RESP_LOST))
            }
        });
        // (seq, proves pipelining, blocks a sync)
        let full = c
            .queue
            .iter()
            .rev()
            .take_while(|e| e.seq >= from)
            .map(|e| match &e.kind {
                // A request whose response is already arriving does not prove pipelining: a
                // mirror that reorders a few packets shows a waiting client's next request
                // before the tail of the previous response.
                Kind::Real(_) if answering == Some(e.seq) => (e.seq, false, false),
                // A request still waiting for a response that was not lost means the client
                // sends without waiting: pipelining.
                Kind::Real(p) if !p.uncertain && !e.resp_lost => (e.seq, true, false),
                Kind::Real(_) => (e.seq, false, c.pipelined && !e.resp_lost),
                // Likewise a lost request whose response has not come yet.
                Kind::Lost(_) => (e.seq, !(e.absorbed || e.resp_lost), false),
            });
        let mut scanned = 0;
        for (seq, proves, blocks) in briefs.chain(full) {
            if behind {
                break;
            }
            scanned += 1;
            if scanned > PIPELINE_SCAN {
                blocking = true;
                break;
            }
            if proves {
                evidence = Some(seq);
                break;
            }
            blocking |= blocks;
        }
        if evidence.is_some() {
            c.pipelined = true;
            c.pipelined_by = evidence.unwrap_or(NO_REQUEST);
            blocking = true;
        }
        // A client that waits gets a whole response (at least a status line) between two
        // requests, so each acks more of the server stream than the one before; one that acks
        // no more sent it without waiting. Proof, not a conclusion to withdraw.
        if sent_ack
            .get()
            .zip(c.last_sent_ack.get())
            .is_some_and(|(sent, last)| sent <= last)
        {
            c.pipelined = true;
            c.pipelined_by = NO_REQUEST;
        }
        if sent_ack.is_some() {
            c.last_sent_ack = sent_ack;
        }
        // A client that waits for each response has them all when it sends the next request:
        // the count after a response-side loss (see `Prov`) can be settled here. A pipelining
        // one is still owed responses; its count waits for the end.
        if c.overflow.prov().is_some() && c.halves[Role::Resp].idle() && sync_ok && !behind {
            let pipelined = c.pipelined;
            self.settle_count(c, pipelined);
        }
        // A client that waits for each response has, by now, received every response it will
        // get for earlier (lost or unattributable) requests; a pipelining one must first drain.
        if c.uncertain
            && c.halves[Role::Resp].idle()
            && !blocking
            && sync_ok
            && (!c.pipelined || unanswered == 0)
        {
            self.sync(c);
        }
        // Even the placeholders are over the budget: give up the oldest unanswered request; its
        // response, when it comes, is skipped so that later ones still pair correctly.
        if (c.overflow.len() + 1) * PLACEHOLDER_BYTES > self.cfg.max_pending_bytes
            && c.next_resp_seq < c.next_seq
        {
            let seq = c.next_resp_seq;
            c.next_resp_seq += 1;
            self.ensure_main(c, seq);
            if let Some(Entry {
                kind: Kind::Real(p),
                ..
            }) = c.entry_mut(seq)
            {
                p.gave_up = true;
                p.flags.insert(Flag::PipelineOverflow);
                c.skip_responses += 1;
            }
        }
        let rq = &c.halves[Role::Req];
        let (start, head_end, head_ts) = (rq.head_off, rq.off, rq.head_ts);
        let est = FULL_ENTRY_BYTES + 2 * head_end.saturating_sub(start) as usize;
        // Full records while the budgets allow and nothing waits in compact form before.
        let mut full = c.overflow.is_empty()
            && c.queued_bytes as usize + est <= self.cfg.max_pending_bytes
            && self.pending_total + est <= self.cfg.max_pending_bytes_total;
        let seq = c.next_seq;
        c.next_seq += 1;
        // A response that came before this request (see `Conn::early`) answers it, unless its
        // ack can tell which request it answers (`resolve_held`, once this one is queued).
        let early = if c.uncertain
            || c.next_resp_seq != seq
            || c.early.front().is_some_and(|m| m.ack.is_some())
        {
            None
        } else {
            c.early.pop_front()
        };
        if early.is_some() {
            full = true;
            c.next_resp_seq = seq + 1;
            c.orphans = c.orphans.saturating_sub(1);
        } else if !c.uncertain && c.next_resp_seq == seq && !c.midstream_unsynced {
            // ... and so does one still arriving that found no request when its head came.
            let h = &mut c.halves[Role::Resp];
            if h.cur.is_some()
                && h.target.is_none()
                && !h.interim
                && !h.held
                && h.unpaired_flags.is_empty()
            {
                full = true;
                h.target = Some(seq);
                c.next_resp_seq = seq + 1;
                c.orphans = c.orphans.saturating_sub(1);
            }
        }
        // The response direction lost its place after the client sent this request (the
        // reassembler may deliver a request long after the responses that followed it).
        let resp_lost = sent_ack.get().is_some_and(|sent| {
            matches!(c.halves[Role::Resp].state, State::Resync) || c.resp_synced_at > sent
        });
        if !full {
            let mut bits = 0;
            for (on, bit) in [
                (is_head, B_HEAD),
                (is_connect, B_CONNECT),
                (c.uncertain, B_UNCERTAIN),
                (resp_lost, B_RESP_LOST),
            ] {
                if on {
                    bits |= bit;
                }
            }
            let mut m = [0u8; 8];
            if method.len() <= m.len() {
                m[..method.len()].copy_from_slice(method.as_bytes());
            }
            c.overflow.push_back(Brief {
                seq,
                start,
                ts: head_ts,
                flags: FlagSet::EMPTY,
                method: m,
                bits,
            });
            self.pending_total += PLACEHOLDER_BYTES;
            self.stats.request_records_dropped += 1;
            return seq;
        }
        self.q_push(
            c,
            Entry {
                seq,
                absorbed: false,
                resp_lost,
                start,
                head_end: Ack(head_end),
                sent_ack,
                charge: 0,
                kind: Kind::Real(Box::new(Pending {
                    req: None,
                    resp: early.map(|b| *b),
                    interim: Vec::new(),
                    uncertain: c.uncertain,
                    gave_up: false,
                    is_head,
                    is_connect,
                    flags: FlagSet::EMPTY,
                })),
            },
        );
        self.try_emit(c);
        self.resolve_held(c, None);
        // Bound the queue even when an endless response holds its head.
        while c.queued_bytes as usize > 2 * self.cfg.max_pending_bytes && c.queue.len() > 1 {
            let Some(e) = self.q_pop(c) else { break };
            if e.seq >= c.next_resp_seq {
                c.next_resp_seq = e.seq + 1;
            }
            self.emit_entry(c, e, Flag::PipelineOverflow.into());
        }
        seq
    }

    /// Pairing is certain again: give up everything still waiting before the new request.
    fn sync(&mut self, c: &mut Conn) {
        let flags = c.desync_flags;
        for e in c.queue.iter_mut() {
            if e.seq < c.next_resp_seq {
                continue;
            }
            match &mut e.kind {
                Kind::Real(p) => {
                    p.gave_up = true;
                    p.flags.merge(flags);
                }
                Kind::Lost(_) => self.stats.lost_requests += 1,
            }
        }
        for b in c.overflow.iter_mut() {
            if b.bits & B_LOST != 0 {
                self.stats.lost_requests += 1;
            } else {
                b.bits |= B_GAVE_UP;
                b.flags.merge(flags);
            }
        }
        c.next_resp_seq = c.next_seq;
        c.uncertain = false;
        c.desync_flags = FlagSet::EMPTY;
        c.orphans = 0;
        self.try_emit(c);
    }

    pub(super) fn interim_target(&mut self, c: &mut Conn) -> Option<u64> {
        c.fix_resp_cursor();
        if c.skip_responses > 0 || !c.early.is_empty() {
            return None;
        }
        let seq = c.next_resp_seq;
        self.ensure_main(c, seq);
        match c.entry_mut(seq) {
            Some(Entry {
                kind: Kind::Real(p),
                ..
            }) if !p.uncertain => Some(seq),
            _ => None,
        }
    }

    /// Picks the exchange a final response belongs to, or None (with flags) when unknown.
    pub(super) fn pair_response(&mut self, c: &mut Conn) -> (Option<u64>, FlagSet) {
        c.fix_resp_cursor();
        if c.skip_responses > 0 {
            c.skip_responses -= 1;
            return (None, Flag::PipelineOverflow.into());
        }
        let seq = c.next_resp_seq;
        self.ensure_main(c, seq);
        if c.early.iter().any(|m| m.ack.is_some()) {
            // Earlier responses wait for the client stream to reach their acks: this one
            // comes after them.
            c.halves[Role::Resp].held = true;
            return (None, FlagSet::EMPTY);
        }
        // While a count is pending (see `Prov`), this response's ack can settle it early: if it
        // proves the response answers the request next in order, the responses since the cut
        // one were exactly as many as the requests between (the gap hid none); if it proves
        // another, the gap did hide some.
        let mut proven = false;
        if c.overflow.prov().is_some() {
            let h = &c.halves[Role::Resp];
            match c.ack_pick(h.head_ack, h.head_off, c.req_frontier()) {
                AckPick::Req(s) if s == seq => proven = true,
                AckPick::Req(_) | AckPick::Lost(_) => self.count_failed(c),
                AckPick::Wait | AckPick::Unknown => {}
            }
        }
        let in_order = matches!(
            c.entry(seq),
            Some(Entry { kind: Kind::Real(p), .. }) if !p.uncertain
        );
        if in_order && proven {
            self.stats.ack_pairings += 1;
            self.count_proven(c);
        }
        if !in_order {
            let h = &c.halves[Role::Resp];
            match c.ack_pick(h.head_ack, h.head_off, c.req_frontier()) {
                AckPick::Req(seq) => {
                    self.ack_sync(c, seq);
                    return (Some(seq), FlagSet::EMPTY);
                }
                AckPick::Lost(seq) => {
                    if let Some(e) = c.entry_mut(seq) {
                        e.absorbed = true;
                    }
                    let mut f = c.desync_flags;
                    f.insert(Flag::NoRequest);
                    return (None, f);
                }
                AckPick::Wait => {
                    c.halves[Role::Resp].held = true;
                    return (None, FlagSet::EMPTY);
                }
                AckPick::Unknown => {}
            }
        }
        self.pair_in_order(c)
    }

    /// Pairing by order alone: the next waiting request, unless a loss made that uncertain.
    pub(super) fn pair_in_order(&mut self, c: &mut Conn) -> (Option<u64>, FlagSet) {
        c.fix_resp_cursor();
        let seq = c.next_resp_seq;
        self.ensure_main(c, seq);
        let pipelined = c.pipelined;
        let desync = c.desync_flags;
        match c.entry_mut(seq) {
            None => {
                // A response more than the requests: whatever the count was to prove, it
                // cannot.
                self.count_failed(c);
                let desync = c.desync_flags;
                c.orphans = c.orphans.saturating_add(1).min(16);
                (None, desync)
            }
            Some(Entry {
                kind: Kind::Lost(f),
                absorbed,
                ..
            }) => {
                let f = *f;
                *absorbed = true;
                if pipelined {
                    // Each placeholder stands for one request when requests are pipelined.
                    c.next_resp_seq += 1;
                    self.try_emit(c);
                }
                (None, f)
            }
            Some(Entry {
                kind: Kind::Real(p),
                ..
            }) => {
                let uncertain = p.uncertain;
                if uncertain {
                    p.gave_up = true;
                    p.flags.merge(desync);
                }
                c.next_resp_seq += 1;
                if uncertain {
                    // The response may just as well answer the next lost request.
                    let from = c.next_resp_seq;
                    if let Some(e) = c
                        .queue
                        .iter_mut()
                        .find(|e| e.seq >= from && matches!(e.kind, Kind::Lost(_)))
                    {
                        e.absorbed = true;
                    } else {
                        // ... or one whose loss the reassembler has not reported yet.
                        c.orphans = c.orphans.saturating_add(1).min(16);
                    }
                    self.try_emit(c);
                    (None, desync)
                } else {
                    (Some(seq), FlagSet::EMPTY)
                }
            }
        }
    }

    /// A final response is proven to answer request `seq` (see [`Conn::ack_pick`]): the requests
    /// before it lost their responses, and pairing is in order again from here unless requests
    /// after it were lost as well.
    fn ack_sync(&mut self, c: &mut Conn, seq: u64) {
        self.stats.ack_pairings += 1;
        let flags = c.desync_flags;
        let from = c.next_resp_seq;
        let lost_after = c
            .queue
            .iter()
            .any(|e| e.seq > seq && matches!(e.kind, Kind::Lost(_)))
            || c.overflow.iter().any(|b| b.bits & B_LOST != 0);
        let in_sync = !lost_after && !matches!(c.halves[Role::Req].state, State::Resync);
        for e in c.queue.iter_mut().filter(|e| e.seq >= from) {
            let Kind::Real(p) = &mut e.kind else { continue };
            if e.seq < seq {
                p.gave_up = true;
                p.flags.merge(flags);
            } else if e.seq == seq || in_sync {
                // What the response direction lost came before this response, so it cannot
                // have held the responses of later requests.
                p.uncertain = false;
                e.resp_lost = false;
            }
        }
        // (Acks place nothing while placeholders wait, see `Conn::ack_pick`; this keeps the
        // rule whole.)
        if in_sync {
            for b in c.overflow.iter_mut() {
                b.bits &= !(B_UNCERTAIN | B_RESP_LOST);
            }
        }
        c.next_resp_seq = seq + 1;
        if in_sync {
            c.uncertain = false;
            c.desync_flags = FlagSet::EMPTY;
            c.orphans = 0;
        }
        self.try_emit(c);
    }

    /// Places held responses (finished ones in `early`, then the one being received) whose acks
    /// the client stream has now reached; stops at the first that must still wait.
    ///
    /// `frontier` overrides how far the client stream is known (a request being queued is
    /// known to start there, and nothing unqueued before it).
    pub(super) fn resolve_held(&mut self, c: &mut Conn, frontier: Option<u64>) {
        while let Some(m) = c.early.front() {
            if m.ack.is_none() {
                // Held on FIFO grounds: the next request takes it.
                return;
            }
            let pick = c.ack_pick(m.ack, m.off, frontier.or(c.req_frontier()));
            if pick == AckPick::Wait {
                return;
            }
            let Some(m) = c.early.pop_front() else { return };
            match pick {
                AckPick::Req(seq) => {
                    self.ack_sync(c, seq);
                    let n = build_bytes(&m);
                    if let Some(Entry {
                        kind: Kind::Real(p),
                        ..
                    }) = c.entry_mut(seq)
                    {
                        p.resp = Some(*m);
                        self.q_add(c, seq, n);
                    }
                    self.try_emit(c);
                }
                other => {
                    if let AckPick::Lost(seq) = other {
                        if let Some(e) = c.entry_mut(seq) {
                            e.absorbed = true;
                        }
                    }
                    let f = c.desync_flags;
                    self.emit(c, None, Some(*m), Vec::new(), f);
                }
            }
        }
        let h = &c.halves[Role::Resp];
        if !(h.held && h.cur.is_some() && h.target.is_none()) {
            return;
        }
        let pick = c.ack_pick(h.head_ack, h.head_off, frontier.or(c.req_frontier()));
        if pick == AckPick::Wait {
            return;
        }
        c.halves[Role::Resp].held = false;
        match pick {
            AckPick::Req(seq) => {
                c.halves[Role::Resp].target = Some(seq);
                self.ack_sync(c, seq);
            }
            other => {
                if let AckPick::Lost(seq) = other {
                    if let Some(e) = c.entry_mut(seq) {
                        e.absorbed = true;
                    }
                }
                let mut f = c.desync_flags;
                f.insert(Flag::NoRequest);
                c.halves[Role::Resp].unpaired_flags = f;
            }
        }
    }

    /// Emits finished exchanges from the front of the queue, in request order.
    pub(super) fn try_emit(&mut self, c: &mut Conn) {
        // Held exchanges wait for the count (see `Prov`), unless what it needs is gone.
        let mut held_from = u64::MAX;
        if let Some(p) = c.overflow.prov() {
            if c.uncertain
                || c.skip_responses > 0
                || !c.early.is_empty()
                || c.queued_bytes as usize > self.cfg.max_pending_bytes
            {
                self.count_failed(c);
                return;
            }
            held_from = p.from;
        }
        loop {
            let Some(front) = c.queue.front() else {
                if self.refill(c) {
                    continue;
                }
                break;
            };
            let ready = front.seq < held_from
                && match &front.kind {
                    Kind::Lost(_) => front.seq < c.next_resp_seq,
                    Kind::Real(p) => {
                        p.req.is_some()
                            && (p.resp.is_some() || (p.gave_up && front.seq < c.next_resp_seq))
                            && c.halves[Role::Resp].target != Some(front.seq)
                    }
                };
            if !ready {
                // Room freed by what was emitted goes to the placeholders waiting.
                self.refill(c);
                break;
            }
            let Some(e) = self.q_pop(c) else { break };
            match e.kind {
                Kind::Lost(_) => {}
                Kind::Real(_) => self.emit_entry(c, e, FlagSet::EMPTY),
            }
        }
    }

    fn emit_entry(&mut self, c: &mut Conn, e: Entry, extra: FlagSet) {
        if let Kind::Real(p) = e.kind {
            let p = *p;
            let mut flags = p.flags;
            flags.merge(extra);
            self.emit(c, p.req, p.resp, p.interim, flags);
        } else {
            self.stats.lost_requests += 1;
        }
    }

    /// Emits every queued exchange (connection end or upgrade).
    pub(super) fn flush_all(&mut self, c: &mut Conn, extra: FlagSet) {
        loop {
            if c.queue.is_empty() {
                self.promote(c);
            }
            let Some(e) = self.q_pop(c) else { break };
            if let Kind::Real(p) = &e.kind {
                if p.req.is_none() && p.resp.is_none() {
                    continue;
                }
            }
            self.emit_entry(c, e, extra);
        }
        c.next_resp_seq = c.next_seq;
    }
}

impl Conn {
    /// True when request `seq` is kept as a placeholder.
    pub(super) fn in_overflow(&self, seq: u64) -> bool {
        self.overflow.front().is_some_and(|b| b.seq <= seq) && seq < self.next_seq
    }

    pub(super) fn entry(&self, seq: u64) -> Option<&Entry> {
        let front = self.queue.front()?.seq;
        let idx = seq.checked_sub(front)?;
        self.queue.get(usize::try_from(idx).ok()?)
    }

    /// The earliest client stream offset at which a request not queued yet can start (`None`
    /// after an upgrade).
    fn req_frontier(&self) -> Option<u64> {
        let h = &self.halves[Role::Req];
        match h.state {
            State::Start if h.head_buf.is_empty() => Some(h.off),
            State::Start => Some(h.head_off),
            State::Body(_) => Some(h.off),
            State::Resync => Some(h.mark),
            State::ConnectWait | State::Tunnel => None,
        }
    }

    /// The request that a final response starting at server offset `resp_off` answers, proven
    /// by `acked`, the client stream offset its segment acknowledged.
    ///
    /// A server answers a request only once it has the request's head, so `acked` is at least
    /// where that head ends. A client that does not pipeline sends its next request only after
    /// the whole response, so `acked` is at most where the next request starts. Between the
    /// two lies exactly one request. Requests before it that are still waiting must have had
    /// their responses lost (the response direction lost bytes since they were queued),
    /// otherwise this response would be theirs. A placeholder for lost requests whose span
    /// holds `acked` means a lost request's response. Nothing is decided for a client seen
    /// pipelining, for `acked` inside a request's head, or for a request sent after the client
    /// already had this response's first byte (a late retransmission carries a newer ack than
    /// the original did).
    ///
    /// `frontier`: how far the client stream is known (see [`Conn::req_frontier`]).
    fn ack_pick(&self, acked: Ack, resp_off: u64, frontier: Option<u64>) -> AckPick {
        let Some(acked) = acked.get() else {
            return AckPick::Unknown;
        };
        if !self.overflow.is_empty()
            || self.pipelined
            || self.midstream_unsynced
            || self.skip_responses > 0
            || self.stopped
        {
            return AckPick::Unknown;
        }
        let Some(frontier) = frontier else {
            return AckPick::Unknown;
        };
        let from = self.next_resp_seq;
        let mut waiting = self.queue.iter().filter(|e| e.seq >= from).peekable();
        while let Some(e) = waiting.next() {
            let last = waiting.peek().is_none();
            let next_start = waiting.peek().map_or(frontier, |n| n.start);
            match e.kind {
                Kind::Real(_) => {
                    if e.head_end.get().is_none_or(|end| acked < end) {
                        // Before the server had this request (or where its head ended is
                        // unknown): an earlier request, already answered or given up.
                        return AckPick::Unknown;
                    }
                    if acked <= next_start {
                        return if e.sent_ack.get().is_some_and(|sent| sent <= resp_off) {
                            AckPick::Req(e.seq)
                        } else {
                            AckPick::Unknown
                        };
                    }
                    if last {
                        // Its body (or a next request) is still to come.
                        return AckPick::Wait;
                    }
                    if !e.resp_lost {
                        return AckPick::Unknown;
                    }
                }
                Kind::Lost(_) if acked <= e.start => return AckPick::Unknown,
                Kind::Lost(_) if acked <= next_start => return AckPick::Lost(e.seq),
                Kind::Lost(_) if last => return AckPick::Wait,
                Kind::Lost(_) => {}
            }
        }
        if acked > frontier {
            AckPick::Wait
        } else {
            AckPick::Unknown
        }
    }

    pub(super) fn entry_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let front = self.queue.front()?.seq;
        let idx = seq.checked_sub(front)?;
        self.queue.get_mut(usize::try_from(idx).ok()?)
    }

    pub(super) fn fix_resp_cursor(&mut self) {
        if let Some(f) = self.queue.front() {
            if self.next_resp_seq < f.seq {
                self.next_resp_seq = f.seq;
            }
        } else if let Some(b) = self.overflow.front() {
            self.next_resp_seq = self.next_resp_seq.max(b.seq);
        } else if self.next_resp_seq < self.next_seq {
            self.next_resp_seq = self.next_seq;
        }
    }
}
