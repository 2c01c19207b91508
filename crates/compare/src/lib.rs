//! Comparing a candidate's HTTP responses with production's (issue #17): per pair a verdict
//! and the differences, per endpoint the differences that matter against the noise that does
//! not, status-class shifts and latency of both sides.
//!
//! - [`diff`]: one pair: status, headers (default ignore list), bodies decoded on both sides,
//!   JSON by value with tolerances and array modes per path, else text or bytes.
//! - [`path`]: the path grammar records, the summary and the config share.
//! - [`shape`]: values that are noise by their shape (timestamps near the capture, UUIDs,
//!   request-id tokens).
//! - [`config`]: defaults, flags and the TOML file of rules per endpoint.
//! - [`summary`]: the bounded per-endpoint aggregation and Diffy's reporting rule.
//! - [`engine`]: all of it fed one pair at a time, with endpoints from `vxtap-routes` and noise
//!   learned from identical production requests and an optional baseline.
//!
//! The JSON walk is written here rather than taken from a JSON-diff crate: the ones on the
//! registry (json-patch's diff, assert-json-diff, serde_json_diff) have no tolerance per path,
//! no keyed or unordered arrays per path, no wildcard counting form and no bound on their
//! output, which are the point of this crate.

pub mod config;
pub mod diff;
pub mod engine;
pub mod path;
pub mod shape;
pub mod summary;

pub use config::{ArrayMode, CompareConfig, ConfigError, Limits, ReportRule, Rule};
pub use diff::{BodyCoding, Comparer, Comparison, Difference, Kind, Response, Verdict};
pub use engine::{request_fingerprint, Engine, Pair};
pub use path::{PathError, Pattern};
pub use summary::{Aggregator, NoiseSource, Summary};

#[cfg(test)]
mod tests;
