//! Sans-I/O TCP reassembly: decoded segments in, ordered byte streams, gaps and closes out.
//!
//! Time is a parameter (packet timestamps offline, the clock live), so replay is deterministic.

pub mod api;
pub mod config;
mod half;
pub mod hash;
mod index;
pub mod stats;
mod table;

pub use api::*;
pub use config::{ConfigError, FlowConfig, FlowKeyMode};
pub use stats::{EvictReason, FlowStats, SkipTrigger};
pub use table::{FlowTable, CONN_CORE_SIZE};

#[cfg(test)]
mod tests;
