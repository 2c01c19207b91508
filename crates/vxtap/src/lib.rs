//! The vxtap appliance: CLI commands, pipeline wiring, threads and metrics.

#![forbid(unsafe_code)]

pub mod admin;
pub mod batch;
pub mod cli;
pub mod compare;
pub mod config;
pub mod consume;
pub mod error;
pub mod health;
pub mod listen;
pub mod metrics;
pub mod ordered;
pub mod output;
pub mod packet_filter;
pub mod pipeline;
pub mod replay;
pub mod report_cmd;
pub mod send;
pub mod shadow;
pub mod size;
pub mod tools;
