//! The vxtap appliance: CLI commands, pipeline wiring, threads and metrics.

pub mod admin;
pub mod cli;
pub mod health;
pub mod metrics;
pub mod size;
