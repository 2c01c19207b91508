//! The slab of connections and how it makes room: freeing a slot, growing the slab within its
//! share of the memory budget, moving closed connections to the lingering list, and eviction
//! (lingering first, then the oldest idle) or relief (flushing the oldest buffered holes).

use super::conn::ConnCtx;
use super::lru::{List, Which, NIL};
use super::FlowTable;
use crate::api::{CloseReason, StreamHandler};
use crate::stats::{EvictReason, SkipTrigger};

/// The slab and the index may take at most 1/`SLAB_SHARE` of the budget: they do not shrink
/// while connections live, so a SYN flood must not leave the buffers and the consumer's state
/// (heads, bodies, pending requests) without room once it is over.
const SLAB_SHARE: usize = 2;

impl<H: StreamHandler> FlowTable<H> {
    /// Frees a slot (the connection must already be closed or be closed by the caller).
    pub(super) fn remove(&mut self, idx: u32) {
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
    pub(super) fn grow_slab(&mut self) -> bool {
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
    pub(super) fn move_to_lingering(&mut self, idx: u32) {
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
    pub(super) fn sync_pending(&mut self, idx: u32) {
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
    pub(super) fn evict_one(&mut self, why: EvictReason, h: &mut H) -> bool {
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
            ConnCtx::new(c, &mut self.env, h).close_conn(ts, CloseReason::Evicted, trigger);
        }
        self.remove(i);
        true
    }

    /// One step towards the memory budget: flush the oldest buffering connection's holes as
    /// `MemoryCap` gaps (its buffered bytes are delivered, not lost), else evict.
    pub(super) fn relieve_one(&mut self, h: &mut H) -> bool {
        let mut i = self.pending.head;
        while i != NIL {
            let Some(c) = self.slots.get_mut(i as usize).and_then(|s| s.as_mut()) else {
                break;
            };
            let next = c.core.pend.next;
            if c.core.halves.iter().any(|hf| !hf.chunks.is_empty()) {
                let ts = self.now;
                for side in 0..2 {
                    ConnCtx::new(c, &mut self.env, h).drain_side(side, SkipTrigger::Memory, ts);
                }
                ConnCtx::new(c, &mut self.env, h).recharge();
                let fin_both = c.core.halves.iter().all(|hf| hf.fin_done());
                if fin_both {
                    ConnCtx::new(c, &mut self.env, h).close_conn(
                        ts,
                        CloseReason::Fin,
                        SkipTrigger::Close,
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
}
