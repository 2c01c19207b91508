//! The intrusive doubly-linked lists threaded through the slab: the open connections in age
//! (LRU) order, the lingering (closed) ones, and those waiting on a hole. Links are slot
//! numbers inside each connection, so moving a connection costs no allocation.

use super::FlowTable;
use crate::api::StreamHandler;

pub(super) const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
pub(super) struct Links {
    pub(super) prev: u32,
    pub(super) next: u32,
}

impl Links {
    pub(super) const NONE: Links = Links {
        prev: NIL,
        next: NIL,
    };
}

#[derive(Clone, Copy)]
pub(super) struct List {
    pub(super) head: u32,
    pub(super) tail: u32,
    pub(super) len: usize,
}

impl List {
    pub(super) const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// Which intrusive list a link operation is about.
#[derive(Clone, Copy)]
pub(super) enum Which {
    /// Age order: the open list or the lingering (closed) list; a connection is in one of them.
    Age,
    /// Connections with something waiting on a hole.
    Pending,
}

impl<H: StreamHandler> FlowTable<H> {
    pub(super) fn list(&mut self, w: Which, idx: u32) -> &mut List {
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

    pub(super) fn push_back(&mut self, w: Which, idx: u32) {
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

    pub(super) fn unlink(&mut self, w: Which, idx: u32) {
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
