//! The flow table: one per worker, no locks, no threads. Segments in, stream events out.

use vxtap_wire::Segment;

use crate::api::{CloseReason, ConnMeta, Endpoint, StreamHandler};
use crate::config::{ConfigError, FlowConfig};
use crate::half::Half;
use crate::index::Index;
use crate::stats::{EvictReason, FlowStats, SkipTrigger};

mod conn;
mod key;
mod lru;
mod slab;

pub use conn::CONN_CORE_SIZE;
use conn::{stable_id, Conn, ConnCore, ConnCtx, Env, Outcome};
use key::FlowKey;
use lru::{Links, List, Which, NIL};

/// The LRU position is refreshed at most once per this much packet time, so a busy connection
/// does not relink (two random cache lines) on every packet; idle expiry is this coarse.
const TOUCH_GRANULARITY_NS: u64 = 1_000_000_000;

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
            ConnCtx::new(c, &mut self.env, handler).recharge();
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
            ConnCtx::new(c, &mut self.env, handler).close_conn(ts, reason, SkipTrigger::Close);
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
                    ConnCtx::new(c, &mut self.env, handler).enforce_bounds(side, now);
                }
            }
            ConnCtx::new(c, &mut self.env, handler).recharge();
            let still = c.core.halves.iter().any(|hf| hf.pending());
            let fin_both = c.core.halves.iter().all(|hf| hf.fin_done());
            if fin_both {
                let ts = c.core.last_ts;
                ConnCtx::new(c, &mut self.env, handler).close_conn(
                    ts,
                    CloseReason::Fin,
                    SkipTrigger::Close,
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
                ConnCtx::new(c, &mut self.env, handler).close_conn(
                    ts,
                    CloseReason::EndOfInput,
                    SkipTrigger::Close,
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
            return ConnCtx::new(c, &mut self.env, h).conn_segment(side, seg);
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
}
