//! Counters of one flow table. Plain integers (one table per worker, no sharing); the binary
//! merges the workers' snapshots and exports them.

use crate::api::{CloseReason, GapReason};
use vxtap_wire::labeled_enum;

labeled_enum! {
    /// Why a live connection was pushed out before its natural end.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum EvictReason {
        /// The flow-count cap (`max_flows`) was reached.
        MaxFlows => "max_flows",
        /// The global memory budget (`max_memory`) was exceeded.
        Memory => "memory",
    }
}

labeled_enum! {
    /// What forced a hole to be skipped (each is a bound that bit).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum SkipTrigger {
        /// The peer acknowledged bytes beyond the hole: the receiver got them, the mirror lost them.
        PeerAck => "peer_ack",
        /// The hole stayed open longer than `hole_timeout_ns`.
        HoleTimeout => "hole_timeout",
        /// Bytes buffered above the hole exceeded `max_buffer_per_direction`.
        FlowCap => "flow_cap",
        /// The global memory budget was exceeded.
        Memory => "memory",
        /// The connection ended (RST, timeout, eviction, end of input) with the hole still open.
        Close => "close",
    }
}

impl SkipTrigger {
    /// The gap reason reported to the consumer for a hole skipped by this trigger.
    pub fn gap_reason(self) -> GapReason {
        match self {
            SkipTrigger::Memory => GapReason::MemoryCap,
            _ => GapReason::Lost,
        }
    }
}

/// Counters of a flow table; `merge` adds another table's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Segments handed to `process`.
    pub segments: u64,
    /// Segments that belonged to no connection and could not open one (RST for an unknown flow).
    pub segments_without_flow: u64,
    /// Payload bytes handed to `on_data`.
    pub bytes_delivered: u64,
    /// `on_data` calls.
    pub data_chunks: u64,
    /// Bytes reported by `on_gap` because the mirror cut the frame.
    pub gap_bytes_truncated_capture: u64,
    /// Bytes reported by `on_gap` for holes never filled.
    pub gap_bytes_lost: u64,
    /// Bytes reported by `on_gap` because a memory cap bit.
    pub gap_bytes_memory_cap: u64,
    /// `on_gap` calls for truncated frames.
    pub gaps_truncated_capture: u64,
    /// `on_gap` calls for lost holes.
    pub gaps_lost: u64,
    /// `on_gap` calls caused by the memory budget.
    pub gaps_memory_cap: u64,
    /// Holes skipped because the peer acknowledged beyond them.
    pub holes_skipped_peer_ack: u64,
    /// Holes skipped after `hole_timeout_ns`.
    pub holes_skipped_hole_timeout: u64,
    /// Holes skipped because the per-direction buffer cap bit.
    pub holes_skipped_flow_cap: u64,
    /// Holes skipped because the global memory budget bit.
    pub holes_skipped_memory: u64,
    /// Holes skipped because the connection ended.
    pub holes_skipped_close: u64,
    /// Segments carrying nothing new (retransmissions, mirrored duplicates).
    pub retransmitted_segments: u64,
    /// Payload bytes that had already been received (delivered, gapped or buffered).
    pub retransmitted_bytes: u64,
    /// Retransmitted bytes that differed from the first copy (first data wins).
    pub overlap_conflict_bytes: u64,
    /// Segments with at least one conflicting overlapping byte.
    pub overlap_conflict_segments: u64,
    /// Segments copied into an out-of-order buffer.
    pub ooo_segments: u64,
    /// Payload bytes copied into out-of-order buffers.
    pub ooo_bytes: u64,
    /// Segments from before the point where a mid-stream pickup started (counted, not delivered).
    pub pre_start_segments: u64,
    /// Segments more than `max_seq_ahead` ahead of their stream (ignored, not buffered).
    pub out_of_window: u64,
    /// Payload bytes carried by RST segments (ignored).
    pub rst_payload_bytes: u64,
    /// Payload bytes not handed over because the consumer returned `StopDelivery`.
    pub bytes_after_stop: u64,
    /// Connections opened.
    pub flows_created: u64,
    /// Connections opened without a SYN or SYN-ACK (roles guessed).
    pub flows_midstream: u64,
    /// `SwapRoles` verdicts honoured.
    pub role_swaps: u64,
    /// New connections on the 5-tuple of a previous one (new SYN with another ISN).
    pub port_reuse: u64,
    /// SYN-ACKs with an unexpected ISN on an open connection (ignored).
    pub odd_syn_ignored: u64,
    /// Segments for a connection that already closed (absorbed while it lingers).
    pub late_after_close: u64,
    /// Connections closed after FIN both ways.
    pub closed_fin: u64,
    /// Connections closed by RST.
    pub closed_rst: u64,
    /// Connections closed by the idle timeout.
    pub closed_idle_timeout: u64,
    /// Connections closed by eviction (also counted per reason below).
    pub closed_evicted: u64,
    /// Connections closed at end of input.
    pub closed_end_of_input: u64,
    /// Connections closed because a new SYN reused their 5-tuple.
    pub closed_port_reuse: u64,
    /// Live connections evicted because `max_flows` was reached.
    pub evicted_max_flows: u64,
    /// Live connections evicted because `max_memory` was exceeded.
    pub evicted_memory: u64,
    /// Closed, lingering connections forgotten early to make room (harmless, counted).
    pub lingering_dropped: u64,
}

impl FlowStats {
    /// Adds another table's counters into this one.
    pub fn merge(&mut self, o: &FlowStats) {
        let mut mine = self.to_pairs();
        let theirs = o.to_pairs();
        for (m, t) in mine.iter_mut().zip(theirs.iter()) {
            m.1 += t.1;
        }
        *self = Self::from_pairs(&mine);
    }

    /// Gap bytes reported for one reason.
    pub fn gap_bytes(&self, r: GapReason) -> u64 {
        match r {
            GapReason::TruncatedCapture => self.gap_bytes_truncated_capture,
            GapReason::Lost => self.gap_bytes_lost,
            GapReason::MemoryCap => self.gap_bytes_memory_cap,
        }
    }

    /// Gap events reported for one reason.
    pub fn gaps(&self, r: GapReason) -> u64 {
        match r {
            GapReason::TruncatedCapture => self.gaps_truncated_capture,
            GapReason::Lost => self.gaps_lost,
            GapReason::MemoryCap => self.gaps_memory_cap,
        }
    }

    /// All gap bytes, whatever the reason.
    pub fn gap_bytes_total(&self) -> u64 {
        GapReason::ALL.iter().map(|r| self.gap_bytes(*r)).sum()
    }

    /// Connections closed for one reason.
    pub fn closed(&self, r: CloseReason) -> u64 {
        match r {
            CloseReason::Fin => self.closed_fin,
            CloseReason::Rst => self.closed_rst,
            CloseReason::IdleTimeout => self.closed_idle_timeout,
            CloseReason::Evicted => self.closed_evicted,
            CloseReason::EndOfInput => self.closed_end_of_input,
            CloseReason::PortReuse => self.closed_port_reuse,
        }
    }

    /// Live connections evicted for one reason.
    pub fn evicted(&self, r: EvictReason) -> u64 {
        match r {
            EvictReason::MaxFlows => self.evicted_max_flows,
            EvictReason::Memory => self.evicted_memory,
        }
    }

    /// Holes skipped for one trigger.
    pub fn holes_skipped(&self, t: SkipTrigger) -> u64 {
        match t {
            SkipTrigger::PeerAck => self.holes_skipped_peer_ack,
            SkipTrigger::HoleTimeout => self.holes_skipped_hole_timeout,
            SkipTrigger::FlowCap => self.holes_skipped_flow_cap,
            SkipTrigger::Memory => self.holes_skipped_memory,
            SkipTrigger::Close => self.holes_skipped_close,
        }
    }

    pub(crate) fn add_gap(&mut self, r: GapReason, len: u64) {
        match r {
            GapReason::TruncatedCapture => {
                self.gaps_truncated_capture += 1;
                self.gap_bytes_truncated_capture += len;
            }
            GapReason::Lost => {
                self.gaps_lost += 1;
                self.gap_bytes_lost += len;
            }
            GapReason::MemoryCap => {
                self.gaps_memory_cap += 1;
                self.gap_bytes_memory_cap += len;
            }
        }
    }

    pub(crate) fn add_close(&mut self, r: CloseReason) {
        match r {
            CloseReason::Fin => self.closed_fin += 1,
            CloseReason::Rst => self.closed_rst += 1,
            CloseReason::IdleTimeout => self.closed_idle_timeout += 1,
            CloseReason::Evicted => self.closed_evicted += 1,
            CloseReason::EndOfInput => self.closed_end_of_input += 1,
            CloseReason::PortReuse => self.closed_port_reuse += 1,
        }
    }

    pub(crate) fn add_skip(&mut self, t: SkipTrigger) {
        match t {
            SkipTrigger::PeerAck => self.holes_skipped_peer_ack += 1,
            SkipTrigger::HoleTimeout => self.holes_skipped_hole_timeout += 1,
            SkipTrigger::FlowCap => self.holes_skipped_flow_cap += 1,
            SkipTrigger::Memory => self.holes_skipped_memory += 1,
            SkipTrigger::Close => self.holes_skipped_close += 1,
        }
    }

    /// Every counter as (snake_case name, value), in declaration order, for exporters.
    pub fn to_pairs(&self) -> [(&'static str, u64); 40] {
        [
            ("segments", self.segments),
            ("segments_without_flow", self.segments_without_flow),
            ("bytes_delivered", self.bytes_delivered),
            ("data_chunks", self.data_chunks),
            (
                "gap_bytes_truncated_capture",
                self.gap_bytes_truncated_capture,
            ),
            ("gap_bytes_lost", self.gap_bytes_lost),
            ("gap_bytes_memory_cap", self.gap_bytes_memory_cap),
            ("gaps_truncated_capture", self.gaps_truncated_capture),
            ("gaps_lost", self.gaps_lost),
            ("gaps_memory_cap", self.gaps_memory_cap),
            ("holes_skipped_peer_ack", self.holes_skipped_peer_ack),
            (
                "holes_skipped_hole_timeout",
                self.holes_skipped_hole_timeout,
            ),
            ("holes_skipped_flow_cap", self.holes_skipped_flow_cap),
            ("holes_skipped_memory", self.holes_skipped_memory),
            ("holes_skipped_close", self.holes_skipped_close),
            ("retransmitted_segments", self.retransmitted_segments),
            ("retransmitted_bytes", self.retransmitted_bytes),
            ("overlap_conflict_bytes", self.overlap_conflict_bytes),
            ("overlap_conflict_segments", self.overlap_conflict_segments),
            ("ooo_segments", self.ooo_segments),
            ("ooo_bytes", self.ooo_bytes),
            ("pre_start_segments", self.pre_start_segments),
            ("out_of_window", self.out_of_window),
            ("rst_payload_bytes", self.rst_payload_bytes),
            ("bytes_after_stop", self.bytes_after_stop),
            ("flows_created", self.flows_created),
            ("flows_midstream", self.flows_midstream),
            ("role_swaps", self.role_swaps),
            ("port_reuse", self.port_reuse),
            ("odd_syn_ignored", self.odd_syn_ignored),
            ("late_after_close", self.late_after_close),
            ("closed_fin", self.closed_fin),
            ("closed_rst", self.closed_rst),
            ("closed_idle_timeout", self.closed_idle_timeout),
            ("closed_evicted", self.closed_evicted),
            ("closed_end_of_input", self.closed_end_of_input),
            ("closed_port_reuse", self.closed_port_reuse),
            ("evicted_max_flows", self.evicted_max_flows),
            ("evicted_memory", self.evicted_memory),
            ("lingering_dropped", self.lingering_dropped),
        ]
    }

    fn from_pairs(p: &[(&'static str, u64); 40]) -> Self {
        let v = |i: usize| p[i].1;
        FlowStats {
            segments: v(0),
            segments_without_flow: v(1),
            bytes_delivered: v(2),
            data_chunks: v(3),
            gap_bytes_truncated_capture: v(4),
            gap_bytes_lost: v(5),
            gap_bytes_memory_cap: v(6),
            gaps_truncated_capture: v(7),
            gaps_lost: v(8),
            gaps_memory_cap: v(9),
            holes_skipped_peer_ack: v(10),
            holes_skipped_hole_timeout: v(11),
            holes_skipped_flow_cap: v(12),
            holes_skipped_memory: v(13),
            holes_skipped_close: v(14),
            retransmitted_segments: v(15),
            retransmitted_bytes: v(16),
            overlap_conflict_bytes: v(17),
            overlap_conflict_segments: v(18),
            ooo_segments: v(19),
            ooo_bytes: v(20),
            pre_start_segments: v(21),
            out_of_window: v(22),
            rst_payload_bytes: v(23),
            bytes_after_stop: v(24),
            flows_created: v(25),
            flows_midstream: v(26),
            role_swaps: v(27),
            port_reuse: v(28),
            odd_syn_ignored: v(29),
            late_after_close: v(30),
            closed_fin: v(31),
            closed_rst: v(32),
            closed_idle_timeout: v(33),
            closed_evicted: v(34),
            closed_end_of_input: v(35),
            closed_port_reuse: v(36),
            evicted_max_flows: v(37),
            evicted_memory: v(38),
            lingering_dropped: v(39),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_every_field() {
        let mut a = FlowStats {
            segments: 1,
            lingering_dropped: 2,
            ..Default::default()
        };
        let b = FlowStats {
            segments: 10,
            lingering_dropped: 20,
            evicted_memory: 5,
            ..Default::default()
        };
        a.merge(&b);
        assert_eq!(a.segments, 11);
        assert_eq!(a.lingering_dropped, 22);
        assert_eq!(a.evicted_memory, 5);
        // Round trip covers every field: names unique and the pair list complete.
        let names: std::collections::HashSet<_> = a.to_pairs().iter().map(|p| p.0).collect();
        assert_eq!(names.len(), 40);
        assert_eq!(FlowStats::from_pairs(&a.to_pairs()), a);
    }
}
