//! What the traffic says, for people: an endpoint inventory and a self-contained HTML report,
//! an OpenAPI 3.1 document inferred from the exchanges (and a diff of two such documents), HAR
//! 1.2 and k6 exports.
//!
//! Every stage takes the typed [`Exchange`] one at a time (after the binary's `Transforms`, so
//! it only ever sees redacted data) and keeps bounded state: endpoints are capped
//! ([`endpoint::EndpointCap`]), and what goes past a cap is counted, never stored. HAR is
//! streamed; the others are summaries written at the end.
//!
//! Module map:
//! - [`endpoint`]: which endpoint an exchange belongs to (method + route), and the cap.
//! - [`inventory`]: per endpoint counts, status mix, latency histogram, flags, VNIs, mirror
//!   sources; the error rate over time.
//! - [`html`]: the inventory as one HTML file with inline CSS, SVG charts (plotters) and a
//!   little inline JavaScript (filter and paging) that works offline.
//! - [`schema`]: JSON Schema inference merged across samples.
//! - [`openapi`]: the OpenAPI 3.1 document; [`diff`]: breaking and non-breaking changes between
//!   two documents.
//! - [`har`]: the streamed HAR 1.2 writer.
//! - [`k6`]: the k6 load-test script.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod diff;
pub mod endpoint;
pub mod har;
pub mod html;
pub mod inventory;
pub mod k6;
pub mod openapi;
pub mod schema;

pub use vxtap_http::Exchange;

/// What can go wrong writing or reading a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing the output failed.
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
    /// A document could not be turned into JSON (cannot happen for the values built here).
    #[error("serializing: {0}")]
    Json(#[from] serde_json::Error),
    /// A YAML document could not be read or written.
    #[error("YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A chart could not be drawn.
    #[error("drawing a chart: {0}")]
    Chart(String),
    /// A document is not an OpenAPI document vxtap can compare.
    #[error("not an OpenAPI document: {0}")]
    NotOpenApi(String),
}

#[cfg(test)]
pub(crate) mod testutil {
    use vxtap_http::exchange::{Body, Message, Peer, Timing};
    use vxtap_http::{Exchange, FlagSet};

    /// A request/response exchange at `ts_s` seconds (2026-01-01 + ts_s), lasting `ms`.
    pub fn ex(
        method: &str,
        uri: &str,
        status: u16,
        body: Option<&str>,
        ts_s: u64,
        ms: u64,
    ) -> Exchange {
        let start = 1_767_225_600_000_000_000 + ts_s * 1_000_000_000;
        let msg_body = |b: Option<&str>| {
            b.map(|b| Body {
                bytes: b.as_bytes().to_vec(),
                ..Body::default()
            })
        };
        Exchange {
            ts_ns: start,
            id: ts_s ^ 0x5555,
            vni: Some(101),
            tunnel: Some("vxlan"),
            mirror_source: Some("10.9.0.1".parse().unwrap()),
            client: Peer {
                ip: "10.0.0.1".parse().unwrap(),
                port: 40000,
            },
            server: Peer {
                ip: "10.0.0.2".parse().unwrap(),
                port: 8080,
            },
            request: Some(Message {
                method: Some(method.to_string()),
                uri: Some(uri.to_string()),
                headers: vec![
                    ("Host".into(), "api.example.com".into()),
                    ("Authorization".into(), "Bearer [REDACTED]".into()),
                    ("Content-Type".into(), "application/json".into()),
                ],
                ..Message::default()
            }),
            response: Some(Message {
                status: Some(status),
                reason: Some("OK".into()),
                headers: vec![("Content-Type".into(), "application/json".into())],
                body_len: body.map_or(0, |b| b.len() as u64),
                body: msg_body(body),
                ..Message::default()
            }),
            interim: Vec::new(),
            timing: Timing {
                request_start_ns: Some(start),
                request_end_ns: Some(start + 1_000_000),
                response_start_ns: Some(start + ms * 1_000_000),
                response_end_ns: Some(start + ms * 1_000_000 + 2_000_000),
            },
            flags: FlagSet::EMPTY,
            stream_id: None,
            rst_error: None,
            grpc: None,
        }
    }
}
