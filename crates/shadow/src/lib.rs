//! Shadow replay: mirrored HTTP requests sent to a candidate service, safely, at production's
//! pace, with both answers collected for comparison.
//!
//! One stage ([`ShadowStage`]) after pairing and before redaction, for `vxtap shadow` (capture
//! files) and `vxtap listen --shadow-target` (live) alike. Safety comes first, and all of it is
//! in [`prepare`] and [`config`]: only the methods allowed (GET, HEAD, OPTIONS by default), an
//! explicit target checked against `--allow-target`, redirects never followed, the
//! `x-vxtap-shadow: 1` marker on every request and mirrored requests carrying it never
//! replayed, credentials dropped, bodies sent whole or not at all. A slow or dead candidate
//! never slows capture: a bounded queue (count and bytes) that drops and counts, a per-request
//! timeout, and a circuit breaker ([`control`]). Every record written is redacted.

pub mod client;
pub mod config;
pub mod control;
pub mod prepare;
pub mod record;
pub mod stage;
pub mod stats;
pub mod summary;

pub use config::{parse_header, ShadowConfig, Target, WhenFull, MARKER_HEADER};
pub use record::{Compare, NoCompare, Outcome, Response, ShadowRecord, SkipReason, Verdict};
pub use stage::{Endpoints, PathEndpoints, RouteEndpoints, ShadowReport, ShadowStage};
pub use stats::{ShadowStats, StatsSnapshot};
pub use summary::Summary;

/// Why the stage cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    /// `--target` or `--allow-target` refused.
    #[error("shadow target: {0}")]
    Target(String),
    /// `--set-header`, `--target-header` malformed.
    #[error("shadow header: {0}")]
    Header(String),
    /// Another option out of range.
    #[error("shadow: {0}")]
    Config(String),
}
