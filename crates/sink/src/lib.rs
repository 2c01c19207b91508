//! Transforms between the HTTP layer and the outputs (redaction, filters) and the sinks.
//!
//! The shape follows vector's sources → transforms → sinks: the binary's packet filter runs on
//! segments before reassembly (so dropped traffic costs almost nothing), then after parsing
//! [`filter::ExchangeFilter`] and [`redact::Redactor`] run on each [`Exchange`], and a
//! [`pipeline::Sink`] such as [`jsonl::JsonLinesWriter`] writes what is left.

#![warn(missing_docs)]
// No unsafe here: capture is the one crate that needs it (mmap, syscalls).
#![forbid(unsafe_code)]

pub mod filter;
pub mod format;
pub mod jsonl;
pub mod lineout;
pub mod pipeline;
pub mod read;
pub mod redact;

pub use filter::{
    ExchangeDecision, ExchangeFilter, ExchangeFilterConfig, ExchangeFilterReason,
    ExchangeFilterStats,
};
pub use jsonl::{JsonLinesConfig, JsonLinesWriter, LineEncoder, Record, WriterStats};
pub use pipeline::{
    Encode, EncodedSink, ExchangePipeline, FilterStage, RedactStage, RedactStats, Sink, Transform,
    TransformStats, Transforms,
};
pub use read::{parse_record, ExchangeReader, ReadError};

pub use redact::{RedactConfig, RedactMode, RedactReport, Redactor, UninspectablePolicy};

use std::path::PathBuf;
pub use vxtap_http::Exchange;

/// Everything that can go wrong in this crate: bad configuration or a failing output.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A redaction pattern from the configuration is not a valid regular expression.
    #[error("invalid redaction pattern {pattern:?}: {source}")]
    InvalidPattern {
        /// The pattern as configured.
        pattern: String,
        /// Why the regex crate rejected it.
        source: Box<regex::Error>,
    },
    /// A JSON path from the configuration is not of the supported `$.a.b[*].c` form.
    #[error("invalid JSON path {path:?}: {why}")]
    InvalidJsonPath {
        /// The path as configured.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The environment variable named by `redact.key_env` is unset or empty.
    #[error("redaction key variable {0} is unset or empty")]
    MissingKeyEnv(String),
    /// The redaction key was rejected by HMAC (cannot happen for HMAC-SHA256; kept typed).
    #[error("invalid redaction key")]
    InvalidKey,
    /// No random redaction key could be drawn from the operating system.
    #[error("cannot draw a random redaction key: {0}")]
    Random(String),
    /// A status selector is not a code (`404`), a class (`5xx`) or a range (`500-504`).
    #[error("invalid status selector {0:?} (expected 404, 5xx or 500-504)")]
    InvalidStatus(String),
    /// A host pattern is empty or malformed.
    #[error("invalid host pattern {0:?} (expected example.com or *.example.com)")]
    InvalidHost(String),
    /// An output file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `write`, `flush`, `rename`).
        op: &'static str,
        /// The file concerned (`-` for stdout).
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A value could not be serialized to JSON (serde_json: configuration values).
    #[error("cannot serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    /// An exchange could not be serialized to its JSON line.
    #[error("cannot serialize exchange: {0}")]
    Encode(#[from] sonic_rs::Error),
}

#[cfg(test)]
pub(crate) mod testutil {
    use vxtap_http::exchange::{Body, Message, Peer, Timing};
    use vxtap_http::Exchange;

    /// A request message with the given method, target, headers and body.
    pub fn request(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Message {
        Message {
            method: Some(method.to_string()),
            uri: Some(uri.to_string()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body_len: body.map_or(0, |b| b.len() as u64),
            body: body.map(|b| Body {
                bytes: b.as_bytes().to_vec(),
                ..Body::default()
            }),
            ..Message::default()
        }
    }

    /// A response message with the given status, headers and body.
    pub fn response(status: u16, headers: &[(&str, &str)], body: Option<&str>) -> Message {
        Message {
            status: Some(status),
            reason: Some("X".to_string()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body_len: body.map_or(0, |b| b.len() as u64),
            body: body.map(|b| Body {
                bytes: b.as_bytes().to_vec(),
                ..Body::default()
            }),
            ..Message::default()
        }
    }

    /// An exchange between fixed endpoints.
    pub fn exchange(req: Option<Message>, resp: Option<Message>) -> Exchange {
        Exchange {
            // 2026-01-01T00:00:00Z
            ts_ns: 1_767_225_600_000_000_000,
            id: 0x0123_4567_89ab_cdef,
            vni: Some(7),
            tunnel: None,
            mirror_source: None,
            client: Peer {
                ip: "10.0.0.1".parse().unwrap(),
                port: 40000,
            },
            server: Peer {
                ip: "10.0.0.2".parse().unwrap(),
                port: 80,
            },
            request: req,
            response: resp,
            interim: Vec::new(),
            timing: Timing::default(),
            flags: vxtap_http::FlagSet::EMPTY,
            stream_id: None,
            rst_error: None,
            grpc: None,
        }
    }
}
