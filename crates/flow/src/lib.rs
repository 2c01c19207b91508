//! Sans-I/O TCP reassembly: decoded segments in, ordered byte streams, gaps and closes out.
//!
//! Time is a parameter (packet timestamps offline, the clock live), so replay is deterministic.

pub mod api;
pub use api::*;
