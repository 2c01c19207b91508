//! Limits and knobs of a flow table.

use std::str::FromStr;
use vxtap_wire::labeled_enum;

labeled_enum! {
    /// What identifies a connection in the flow table.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub enum FlowKeyMode {
        /// The direction-independent inner 5-tuple only. A packet mirrored twice (both ENIs
        /// mirrored: two VNIs, two outer sources) lands on the same connection and its second copy
        /// is absorbed like a retransmission.
        #[default]
        FiveTuple => "five_tuple",
        /// The 5-tuple plus (VNI, mirror source): for overlapping VPC address spaces, where the same
        /// inner addresses can mean different hosts.
        Session => "session",
    }
}

impl FromStr for FlowKeyMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "five_tuple" | "five-tuple" | "5tuple" | "5-tuple" => Ok(FlowKeyMode::FiveTuple),
            "session" => Ok(FlowKeyMode::Session),
            other => Err(ConfigError::UnknownKeyMode(other.to_string())),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `--flow-key` was given a value that is not a known mode.
    #[error("unknown flow key mode {0:?} (expected five_tuple or session)")]
    UnknownKeyMode(String),
    /// A limit that must be positive was zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The per-direction buffer cap alone exceeds the global memory budget.
    #[error("per-direction buffer cap ({cap} bytes) exceeds the memory budget ({budget} bytes)")]
    BufferAboveBudget {
        /// The per-direction cap.
        cap: usize,
        /// The global budget.
        budget: usize,
    },
    /// The window for accepting segments ahead of the stream is beyond what serial arithmetic
    /// can tell apart from "behind".
    #[error("max_seq_ahead must be below 2^31 (got {0})")]
    WindowTooLarge(u32),
}

/// Limits and knobs of a [`crate::FlowTable`]. Times are nanoseconds of capture time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// What identifies a connection (default: the 5-tuple only).
    pub key_mode: FlowKeyMode,
    /// Bytes held out of order per direction (payload plus a fixed per-chunk overhead) before
    /// the oldest hole is skipped as a gap (default 256 KiB).
    pub max_buffer_per_direction: usize,
    /// Global budget, charged at what is allocated (capacities, not lengths): the connection
    /// slab and index, out-of-order buffers, and the consumer's per-connection heap as
    /// [`crate::StreamHandler::mem_bytes`] reports it (default 64 MiB). The slab and index
    /// take at most half of it (they do not shrink while connections live); past the budget,
    /// buffers are flushed and then the least recently used connections are evicted.
    pub max_memory: usize,
    /// Connections tracked at once, lingering closed ones included (default 1,000,000; the
    /// memory budget usually bites first).
    pub max_flows: usize,
    /// A connection with no packet for this long is closed with `IdleTimeout` (default 120 s).
    pub idle_timeout_ns: u64,
    /// A closed connection (FIN both ways, RST) is remembered this long to absorb late
    /// retransmissions and mirrored duplicates (default 10 s).
    pub linger_ns: u64,
    /// A hole not filled within this long (packet time) is skipped as a `Lost` gap (default 3 s).
    pub hole_timeout_ns: u64,
    /// A hole the peer has acknowledged is skipped once it is this old (packet time): acks can
    /// overtake the data they cover on a reordering mirror path, so "acked" alone is not "lost"
    /// (default 100 ms; 0 skips at once). The grace runs from the ack, and a hole acked later
    /// gets its own. Meanwhile the other direction runs ahead (responses come before the
    /// requests held behind the hole); the HTTP layer places them by their acks (see
    /// [`crate::StreamHandler::on_ack`]). On the faulty standard workload (generator seeds 7-11)
    /// 5 ms lost the late segments of 18 of 49,226 untouched exchanges; 50, 100 and 250 ms
    /// kept them all exact.
    pub ack_skip_grace_ns: u64,
    /// Segments whose sequence number is further than this ahead of the stream are ignored and
    /// counted rather than buffered (default 1 GiB, the largest scaled TCP window).
    pub max_seq_ahead: u32,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            key_mode: FlowKeyMode::FiveTuple,
            max_buffer_per_direction: 256 * 1024,
            max_memory: 64 * 1024 * 1024,
            max_flows: 1_000_000,
            idle_timeout_ns: 120 * 1_000_000_000,
            linger_ns: 10 * 1_000_000_000,
            hole_timeout_ns: 3 * 1_000_000_000,
            ack_skip_grace_ns: 100_000_000,
            max_seq_ahead: 1 << 30,
        }
    }
}

impl FlowConfig {
    /// Checks that the limits make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_flows == 0 {
            return Err(ConfigError::Zero("max_flows"));
        }
        if self.max_memory == 0 {
            return Err(ConfigError::Zero("max_memory"));
        }
        if self.max_buffer_per_direction == 0 {
            return Err(ConfigError::Zero("max_buffer_per_direction"));
        }
        if self.max_buffer_per_direction > self.max_memory {
            return Err(ConfigError::BufferAboveBudget {
                cap: self.max_buffer_per_direction,
                budget: self.max_memory,
            });
        }
        if self.max_seq_ahead == 0 {
            return Err(ConfigError::Zero("max_seq_ahead"));
        }
        // With no wait at all, every reordered segment would open a gap.
        if self.hole_timeout_ns == 0 {
            return Err(ConfigError::Zero("hole_timeout"));
        }
        if self.max_seq_ahead >= 1 << 31 {
            return Err(ConfigError::WindowTooLarge(self.max_seq_ahead));
        }
        Ok(())
    }
}
