//! The exchange record: one request paired with its response (either may be missing).
//!
//! This is the public output schema (see README.md and schema/exchange.schema.json): field
//! names and meanings are a compatibility promise.

use serde::Serialize;
use std::net::IpAddr;

/// One HTTP request/response exchange observed on the wire.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Exchange {
    /// RFC 3339 timestamp with microseconds (UTC) of the first request byte (or of the first
    /// response byte when the request was not seen).
    pub ts: String,
    /// Stable hex id from the connection's stable id and the exchange index.
    pub id: String,
    /// The mirror session's id, if the traffic was encapsulated and the tunnel has one: the
    /// VXLAN or Geneve VNI, the ERSPAN session id, the GRE key.
    pub vni: Option<u32>,
    /// The tunnel the traffic arrived in (`TunnelKind` label: "vxlan", "geneve", "gre",
    /// "gre_udp", "erspan1", "erspan2", "erspan3"), or null when not encapsulated.
    pub tunnel: Option<&'static str>,
    /// Outer source IP of the tunnel (the mirror source), if encapsulated.
    pub mirror_source: Option<IpAddr>,
    /// Client endpoint.
    pub client: Peer,
    /// Server endpoint.
    pub server: Peer,
    /// The request, or null when only a response was seen.
    pub request: Option<Message>,
    /// The response, or null when none was seen.
    pub response: Option<Message>,
    /// Interim (1xx) responses received before the final one (100 Continue, 103 Early Hints).
    pub interim: Vec<Message>,
    /// Timings from packet timestamps.
    pub timing: Timing,
    /// Short snake_case flags (documented in README.md), sorted and unique.
    pub flags: Vec<&'static str>,
}

/// An IP endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// IP address.
    pub ip: IpAddr,
    /// TCP port.
    pub port: u16,
}

/// Encoding of the captured body in the JSON record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    /// Body bytes were valid UTF-8 and are emitted as is.
    Utf8,
    /// Body bytes were emitted base64-encoded.
    Base64,
}

/// A request or a response (the fields that do not apply are null/omitted).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Message {
    /// Request method (requests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Request target as sent (requests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The request line as sent, when it did not parse (flag `parse_error`): `method` and `uri`
    /// are then a best-effort reading of it and may be absent. At most 8 KiB; lossily decoded as
    /// UTF-8; redacted like `uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_line: Option<String>,
    /// Status code (responses only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Reason phrase (responses only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// "HTTP/1.1" or "HTTP/1.0".
    pub version: String,
    /// Header fields in order, names as sent; values lossily decoded as UTF-8.
    pub headers: Vec<(String, String)>,
    /// Bytes of the message body after removing chunked framing, before content decoding.
    pub body_len: u64,
    /// Captured body (up to the configured cap), or null when none was captured.
    pub body: Option<String>,
    /// How `body` is encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<BodyEncoding>,
    /// True when the captured body is shorter than `body_len` (cap, gap or decode bound).
    pub body_truncated: bool,
    /// Body bytes that never arrived (gaps inside a body of known length); counted in
    /// `body_len`, absent from `body`. For a response cut by a gap (flag `incomplete`) that
    /// the end-of-connection count proved held nothing else, also the whole gap's length (its
    /// split between head and body is unknown, so it is not in `body_len`).
    pub gap_bytes: u64,
}

/// Timings of an exchange, all from packet timestamps.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timing {
    /// RFC 3339 time of the first request byte.
    pub request_start: Option<String>,
    /// RFC 3339 time of the last request byte.
    pub request_end: Option<String>,
    /// RFC 3339 time of the first response byte.
    pub response_start: Option<String>,
    /// RFC 3339 time of the last response byte.
    pub response_end: Option<String>,
    /// Microseconds from the last request byte to the first response byte.
    pub ttfb_us: Option<u64>,
    /// Microseconds from the first request byte to the last response byte.
    pub duration_us: Option<u64>,
}
