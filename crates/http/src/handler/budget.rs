//! What pending state costs and the budgets that bound it.
//!
//! Requests awaiting their responses are charged, entry by entry, against a budget per
//! connection and one per handler ([`super::HttpConfig::max_pending_bytes`]); beyond it they
//! are kept as compact placeholders ([`super::Brief`], in [`super::Overflow`]) and become full
//! entries again when room frees up or their response comes. The same capacity-based sizes
//! give a connection's heap bytes, which the flow table charges against its memory budget.

use super::parse::version_of;
use super::{
    Ack, Brief, Briefs, Conn, Entry, HttpHandler, Kind, MsgBuild, Overflow, Pending, Prov,
    B_ABSORBED, B_CONNECT, B_GAVE_UP, B_HEAD, B_LOST, B_RESP_LOST, B_UNCERTAIN, FULL_ENTRY_BYTES,
    PLACEHOLDER_BYTES,
};
use crate::decode::{heap_block, Decoder};
use crate::exchange::{Content, Message};
use crate::flags::Flag;

impl HttpHandler {
    // ----- pending budget ----------------------------------------------------------------------

    /// Queues a full entry, charging it to the connection's and the handler's budgets.
    pub(super) fn q_push(&mut self, c: &mut Conn, mut e: Entry) {
        let n = entry_bytes(&e);
        e.charge = u32::try_from(n).unwrap_or(u32::MAX);
        c.queued_bytes = c.queued_bytes.wrapping_add(e.charge);
        self.pending_total += e.charge as usize;
        c.queue.push_back(e);
    }

    /// Takes the oldest full entry, returning its charge.
    pub(super) fn q_pop(&mut self, c: &mut Conn) -> Option<Entry> {
        let e = c.queue.pop_front()?;
        c.queued_bytes = c.queued_bytes.wrapping_sub(e.charge);
        self.pending_total -= e.charge as usize;
        Some(e)
    }

    /// Charges entry `seq` for `n` more bytes (a record stored in it).
    pub(super) fn q_add(&mut self, c: &mut Conn, seq: u64, n: usize) {
        if let Some(e) = c.entry_mut(seq) {
            let before = e.charge;
            e.charge = before.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            let d = e.charge - before;
            c.queued_bytes = c.queued_bytes.wrapping_add(d);
            self.pending_total += d as usize;
        }
    }

    /// Turns the oldest placeholder back into a full entry (its record: the method alone).
    pub(super) fn promote(&mut self, c: &mut Conn) {
        let Some(b) = c.overflow.pop_front() else {
            return;
        };
        self.pending_total -= PLACEHOLDER_BYTES;
        let on = |bit: u8| b.bits & bit != 0;
        let kind = if on(B_LOST) {
            Kind::Lost(b.flags)
        } else {
            let len = b.method.iter().position(|&x| x == 0).unwrap_or(8);
            let msg = Message {
                method: (len > 0).then(|| String::from_utf8_lossy(&b.method[..len]).into_owned()),
                version: version_of(None),
                ..Message::default()
            };
            let req = self.new_build(
                msg,
                b.ts,
                b.ts,
                Flag::PipelineOverflow.into(),
                None,
                Content::Plain,
            );
            Kind::Real(Box::new(Pending {
                req: Some(req),
                resp: None,
                interim: Vec::new(),
                uncertain: on(B_UNCERTAIN),
                gave_up: on(B_GAVE_UP),
                is_head: on(B_HEAD),
                is_connect: on(B_CONNECT),
                flags: b.flags,
            }))
        };
        // Where its head ended and what it acknowledged were not kept: acks prove nothing
        // about it.
        let e = Entry {
            seq: b.seq,
            kind,
            absorbed: on(B_ABSORBED),
            resp_lost: on(B_RESP_LOST),
            start: b.start,
            head_end: Ack::NONE,
            sent_ack: Ack::NONE,
            charge: 0,
        };
        self.q_push(c, e);
    }

    /// Promotes placeholders while the budgets have room; true when any was.
    pub(super) fn refill(&mut self, c: &mut Conn) -> bool {
        let mut any = false;
        while !c.overflow.is_empty()
            && c.queued_bytes as usize + FULL_ENTRY_BYTES <= self.cfg.max_pending_bytes
            && self.pending_total + FULL_ENTRY_BYTES <= self.cfg.max_pending_bytes_total
        {
            self.promote(c);
            any = true;
        }
        any
    }

    /// Makes request `seq` a full entry (a response is about to be paired with it), whatever
    /// the budgets: only as many as responses actually come.
    pub(super) fn ensure_main(&mut self, c: &mut Conn, seq: u64) {
        while c.overflow.front().is_some_and(|b| b.seq <= seq) {
            self.promote(c);
        }
    }
}

impl Conn {
    /// Bytes held by this connection: its own size plus [`Conn::heap_bytes`].
    pub fn buffered_bytes(&self) -> usize {
        std::mem::size_of::<Conn>() + self.heap_bytes()
    }

    /// Heap bytes held by this connection, as allocated (capacities, allocator overhead): head
    /// buffers, messages being read, queued exchanges with their captured bodies, decoders,
    /// early responses. What the flow table charges against the memory budget
    /// (`StreamHandler::mem_bytes`), so it runs once per segment: its cost is a few operations
    /// per pending message (a message's headers are summed once, when its head is parsed).
    pub fn heap_bytes(&self) -> usize {
        let halves: usize = self
            .halves
            .iter()
            .map(|h| {
                heap_block(h.head_buf.capacity()) + h.cur.as_deref().map_or(0, boxed_build_heap)
            })
            .sum();
        // The queue's contents are charged incrementally as entries are queued and filled
        // (`queued_bytes`, the pending budget's own count, at the same capacity-based sizes):
        // walking a queue that the byte budget lets grow to thousands of entries on every
        // segment would make deep pipelines quadratic. `queued_bytes` includes each entry's
        // inline size, which the ring's capacity already counts.
        let queued = heap_block(self.queue.capacity() * std::mem::size_of::<Entry>())
            + (self.queued_bytes as usize)
                .saturating_sub(self.queue.len() * std::mem::size_of::<Entry>());
        let early = heap_block(self.early.capacity() * std::mem::size_of::<Box<MsgBuild>>())
            + self
                .early
                .iter()
                .map(|m| boxed_build_heap(m))
                .sum::<usize>();
        halves + queued + early + self.overflow.heap_bytes()
    }

    /// Exchanges (and lost-request placeholders) waiting for completion.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.overflow.len()
    }

    /// Requests kept as compact placeholders (see
    /// [`HttpConfig::max_pending_bytes`](super::HttpConfig::max_pending_bytes)).
    pub fn placeholders(&self) -> usize {
        self.overflow.len()
    }
}

/// What a full entry holds, for the pending budgets: the same capacity-based sizes the memory
/// budget charges (see `Conn::heap_bytes`), fixed when the entry is charged.
fn entry_bytes(e: &Entry) -> usize {
    std::mem::size_of::<Entry>()
        + match &e.kind {
            Kind::Lost(_) => 0,
            Kind::Real(p) => {
                heap_block(std::mem::size_of::<Pending>())
                    + p.req.as_ref().map_or(0, build_heap)
                    + p.resp.as_ref().map_or(0, build_heap)
                    + heap_block(p.interim.capacity() * std::mem::size_of::<Message>())
                    + p.interim.iter().map(message_heap).sum::<usize>()
            }
        }
}

/// What a message being built adds to a pending entry, for the pending budgets.
pub(super) fn build_bytes(m: &MsgBuild) -> usize {
    boxed_build_heap(m)
}

fn str_heap(s: &String) -> usize {
    heap_block(s.capacity())
}

/// Heap bytes of a message: every string and the header vec, at capacity.
pub(super) fn message_heap(m: &Message) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, str_heap);
    let headers: usize = m
        .headers
        .iter()
        .map(|(a, b)| str_heap(a) + str_heap(b))
        .sum();
    heap_block(m.headers.capacity() * std::mem::size_of::<(String, String)>())
        + headers
        + opt(&m.method)
        + opt(&m.uri)
        + opt(&m.reason)
        + opt(&m.start_line)
        + m.body
            .as_ref()
            .map_or(0, |b| heap_block(b.bytes.capacity()))
}

/// Heap bytes a message being built holds (not counting the `MsgBuild` itself).
fn build_heap(m: &MsgBuild) -> usize {
    m.heap
        + heap_block(m.raw.capacity())
        + m.decoder.as_ref().map_or(0, |d| {
            heap_block(std::mem::size_of::<Decoder>()) + d.heap_bytes()
        })
}

/// A boxed message being built.
fn boxed_build_heap(m: &MsgBuild) -> usize {
    heap_block(std::mem::size_of::<MsgBuild>()) + build_heap(m)
}

impl Overflow {
    /// Heap bytes at capacity: the box and its placeholder ring.
    fn heap_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |b| {
            heap_block(std::mem::size_of::<Briefs>())
                + heap_block(b.q.capacity() * std::mem::size_of::<Brief>())
                + b.h2.as_ref().map_or(0, |h| h.heap_bytes())
        })
    }
    /// The HTTP/2 state, when the connection is HTTP/2.
    pub(super) fn h2(&self) -> Option<&super::h2::H2State> {
        self.0.as_ref()?.h2.as_ref()
    }
    pub(super) fn h2_mut(&mut self) -> Option<&mut super::h2::H2State> {
        self.0.as_mut()?.h2.as_mut()
    }
    pub(super) fn set_h2(&mut self, h: super::h2::H2State) {
        self.0.get_or_insert_with(Default::default).h2 = Some(h);
    }
    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |b| b.q.len())
    }
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(super) fn front(&self) -> Option<&Brief> {
        self.0.as_ref()?.q.front()
    }
    pub(super) fn back_mut(&mut self) -> Option<&mut Brief> {
        self.0.as_mut()?.q.back_mut()
    }
    pub(super) fn push_back(&mut self, b: Brief) {
        self.0.get_or_insert_with(Default::default).q.push_back(b);
    }
    fn pop_front(&mut self) -> Option<Brief> {
        let b = self.0.as_mut()?;
        let first = b.q.pop_front();
        if b.q.is_empty() && b.prov.is_none() && b.h2.is_none() {
            self.0 = None;
        }
        first
    }
    pub(super) fn prov(&self) -> Option<Prov> {
        self.0.as_ref()?.prov
    }
    pub(super) fn prov_mut(&mut self) -> Option<&mut Prov> {
        self.0.as_mut()?.prov.as_mut()
    }
    pub(super) fn set_prov(&mut self, p: Prov) {
        self.0.get_or_insert_with(Default::default).prov = Some(p);
    }
    pub(super) fn take_prov(&mut self) -> Option<Prov> {
        let b = self.0.as_mut()?;
        let p = b.prov.take();
        if b.q.is_empty() && b.h2.is_none() {
            self.0 = None;
        }
        p
    }
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = &Brief> {
        self.0.iter().flat_map(|b| b.q.iter())
    }
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Brief> {
        self.0.iter_mut().flat_map(|b| b.q.iter_mut())
    }
}
