//! Sans-I/O TCP reassembly: decoded segments in, ordered byte streams, gaps and closes out.
//!
//! Time is a parameter (packet timestamps offline, the clock live), so replay is deterministic.
//! One [`FlowTable`] per worker; no locks, no threads, no I/O. The consumer ([`StreamHandler`])
//! is passed to every call rather than owned, so the caller keeps it beside the table.
//!
//! What the table promises, per direction of every connection:
//! - bytes come out in order, each exactly once, at their stream position; every byte that is
//!   not delivered is reported by `on_gap` with its exact length and a reason (or, for bytes
//!   before a mid-stream pickup's first segment, counted in `pre_start_segments`);
//! - in-order data with nothing buffered is handed over straight from the segment's slice (no
//!   copy, no allocation); only out-of-order bytes are copied;
//! - the bytes come with the ack of the segment that carried them, as an offset of the other
//!   direction's stream (`on_ack`, called when that evidence changes), so that a consumer can
//!   tell what the sender had received when it sent them;
//! - memory stays within [`FlowConfig::max_memory`], whatever the input.
//!
//! Holes are skipped (as `Lost` gaps) when bytes buffered above them exceed the per-direction
//! cap, when they are older than `hole_timeout_ns`, when the peer acknowledged beyond them for
//! longer than `ack_skip_grace_ns` (acks can overtake their data on a reordering mirror path,
//! so an ack alone is not proof of loss; each acked hole waits its own grace), and when the
//! connection ends. An ack exactly one
//! past everything seen is held back (it is most likely the ack of a FIN that was never seen,
//! and must not become a phantom one-byte gap) until data beyond it shows up.

#![warn(missing_docs)]
// No unsafe here: capture is the one crate that needs it (mmap, syscalls).
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
mod half;
/// The flow table's hasher lives with the other 5-tuple hashes in `vxtap_wire::hash`.
pub use vxtap_wire::hash;
mod index;
pub mod stats;
mod table;

pub use api::*;
pub use config::{ConfigError, FlowConfig, FlowKeyMode};
pub use stats::{EvictReason, FlowStats, SkipTrigger};
pub use table::{FlowTable, CONN_CORE_SIZE};

#[cfg(test)]
mod tests;
