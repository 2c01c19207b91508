//! The exchange record: one request paired with its response (either may be missing).
//!
//! This is the typed form every consumer works on (filters, redaction, sampling, writers):
//! bodies are bytes, times are nanoseconds, the id is an integer, flags are a [`FlagSet`].
//! Turning it into text (RFC 3339, hex, base64 or UTF-8 bodies) is the writers' job
//! (`vxtap_sink::jsonl`); the JSON form is the public output schema (see README.md and
//! schema/exchange.schema.json), whose field names and meanings are a compatibility promise.

use crate::flags::FlagSet;
use std::net::IpAddr;

/// One HTTP request/response exchange observed on the wire.
///
/// HTTP/2 will add a stream id (and gRPC its status and message fields) beside these; the
/// protocol of each message is already a [`Version`] rather than a string.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// Nanoseconds since the Unix epoch of the first request byte (or of the first response
    /// byte when the request was not seen).
    pub ts_ns: u64,
    /// Stable id from the connection's stable id and the exchange index ([`crate::exchange_id`]).
    pub id: u64,
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
    /// The request, or None when only a response was seen.
    pub request: Option<Message>,
    /// The response, or None when none was seen.
    pub response: Option<Message>,
    /// Interim (1xx) responses received before the final one (100 Continue, 103 Early Hints).
    pub interim: Vec<Message>,
    /// Timings from packet timestamps.
    pub timing: Timing,
    /// What is worth knowing about the exchange (the HTTP layer's flags, and the transforms'
    /// such as [`crate::Flag::Redacted`]).
    pub flags: FlagSet,
    /// HTTP/2 stream identifier (None for HTTP/1).
    pub stream_id: Option<u32>,
    /// HTTP/2 RST_STREAM error code when the stream was reset (flag `rst_stream`).
    pub rst_error: Option<u32>,
    /// gRPC call details, when the exchange is gRPC (`content-type: application/grpc*`).
    pub grpc: Option<Box<Grpc>>,
}

impl Exchange {
    /// The request, the response and the interim responses, in that order.
    pub fn messages_mut(&mut self) -> impl Iterator<Item = &mut Message> {
        self.request
            .iter_mut()
            .chain(self.response.iter_mut())
            .chain(self.interim.iter_mut())
    }
}

/// An IP endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// IP address.
    pub ip: IpAddr,
    /// TCP port.
    pub port: u16,
}

/// The protocol version of a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1 (also what a head without a parsable version is taken for).
    #[default]
    Http11,
    /// HTTP/2 (h2c: prior knowledge, upgrade, or picked up mid-stream).
    Http2,
}

impl Version {
    /// The version as it appears on a start line and in the record (`"HTTP/1.1"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2",
        }
    }

    /// The version whose record label ([`Version::as_str`]) is `s`.
    ///
    /// ```
    /// use vxtap_http::Version;
    /// for v in [Version::Http10, Version::Http11, Version::Http2] {
    ///     assert_eq!(Version::from_label(v.as_str()), Some(v));
    /// }
    /// assert_eq!(Version::from_label("HTTP/3"), None);
    /// ```
    pub fn from_label(s: &str) -> Option<Version> {
        match s {
            "HTTP/1.0" => Some(Version::Http10),
            "HTTP/1.1" => Some(Version::Http11),
            "HTTP/2" => Some(Version::Http2),
            _ => None,
        }
    }
}

/// A content coding (`Content-Encoding`) vxtap can undo.
pub use crate::decode::Coding as ContentCoding;

/// What the bytes of a [`Body`] are, as far as content coding goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Content {
    /// The content itself: no `Content-Encoding`, or it was decoded.
    #[default]
    Plain,
    /// Still in this content coding (captured as sent).
    Encoded(ContentCoding),
    /// In a content coding vxtap cannot decode (unknown, or several stacked), as sent.
    Opaque,
}

/// Why the captured bytes of a body are not the whole body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The capture cap (`--max-body-bytes`) was reached.
    Cap,
    /// Bytes inside the body never arrived (see [`Message::gap_bytes`]).
    Gap,
    /// Content decoding stopped at its bound.
    DecodeBound,
    /// The message ended (FIN, close, lost framing) before its framing said it would.
    Incomplete,
}

/// The captured part of a message body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body {
    /// The captured bytes (at most `--max-body-bytes`), decoded or not as [`Body::content`] says.
    pub bytes: Vec<u8>,
    /// Whether the bytes are still content-coded.
    pub content: Content,
    /// Why the bytes are not the whole body, if they are not.
    pub cut: Option<Cut>,
}

/// A request or a response (the fields that do not apply are None).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    /// Request method (requests only).
    pub method: Option<String>,
    /// Request target as sent (requests only).
    pub uri: Option<String>,
    /// The request line as sent, when it did not parse (flag `parse_error`): `method` and `uri`
    /// are then a best-effort reading of it and may be absent. At most 8 KiB; lossily decoded as
    /// UTF-8; redacted like `uri`.
    pub start_line: Option<String>,
    /// Status code (responses only).
    pub status: Option<u16>,
    /// Reason phrase (responses only).
    pub reason: Option<String>,
    /// Protocol version.
    pub version: Version,
    /// Header fields in order, names as sent; values lossily decoded as UTF-8.
    pub headers: Vec<(String, String)>,
    /// Bytes of the message body after removing chunked framing, before content decoding.
    pub body_len: u64,
    /// Captured body, or None when none was captured (or a transform removed it).
    pub body: Option<Body>,
    /// True when the captured body is shorter than `body_len` (cap, gap or decode bound).
    pub body_truncated: bool,
    /// HTTP/2 `:authority` (requests).
    pub authority: Option<String>,
    /// HTTP/2 `:scheme` (requests).
    pub scheme: Option<String>,
    /// HTTP/2 trailer fields (a header block after the body), in order; empty when none.
    pub trailers: Vec<(String, String)>,
    /// Body bytes that never arrived (gaps inside a body of known length); counted in
    /// `body_len`, absent from `body`. For a response cut by a gap (flag `incomplete`) that
    /// the end-of-connection count proved held nothing else, also the whole gap's length (its
    /// split between head and body is unknown, so it is not in `body_len`).
    pub gap_bytes: u64,
    /// The body as it crossed the wire (chunked framing removed, content coding kept), up to
    /// `HttpConfig::replay_body_bytes`, for a shadow replay (`vxtap shadow`): None unless that
    /// is set. Independent of `body` and `--max-body-bytes`; never written to a record (the
    /// shadow stage takes it out before the exchange reaches the writers).
    pub replay_body: Option<Vec<u8>>,
}

impl Message {
    /// The value of the first header field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A gRPC call (grpc/grpc doc/PROTOCOL-HTTP2.md).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grpc {
    /// Service from `:path` (`/package.Service/Method`).
    pub service: Option<String>,
    /// Method from `:path`.
    pub method: Option<String>,
    /// Status code: `grpc-status` from the trailers, from the headers of a Trailers-Only
    /// response, or synthesised from RST_STREAM as the gRPC spec maps it.
    pub status: Option<u32>,
    /// Canonical name of `status` (`OK`, `NOT_FOUND`...).
    pub status_name: Option<&'static str>,
    /// `grpc-message`, percent-decoded.
    pub message: Option<String>,
    /// `grpc-encoding` of the messages (request's, else response's).
    pub encoding: Option<String>,
    /// The request's messages.
    pub request: GrpcMessages,
    /// The response's messages.
    pub response: GrpcMessages,
}

/// One direction's length-prefixed messages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GrpcMessages {
    /// Messages whose length prefix was read.
    pub count: u64,
    /// Their lengths as prefixed (the first 64).
    pub sizes: Vec<u32>,
    /// The first messages (decompressed when compressed and decodable), within
    /// `--max-body-bytes`.
    pub first: Vec<GrpcBody>,
    /// The framing could not be followed to the end (a gap, or a message cut).
    pub framing_lost: bool,
}

/// One captured gRPC message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GrpcBody {
    /// The bytes (decompressed when the message was compressed and could be decoded).
    pub bytes: Vec<u8>,
    /// The prefix's compressed flag.
    pub compressed: bool,
    /// The bytes are fewer than the message (cap, decode bound, cut).
    pub truncated: bool,
    /// The schemaless protobuf dump (`--grpc-decode`), when the bytes parse as protobuf.
    pub dump: Option<Vec<vxtap_h2::grpc::PbField>>,
}

/// Timings of an exchange, all from packet timestamps (nanoseconds since the Unix epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// First request byte.
    pub request_start_ns: Option<u64>,
    /// Last request byte.
    pub request_end_ns: Option<u64>,
    /// First response byte.
    pub response_start_ns: Option<u64>,
    /// Last response byte.
    pub response_end_ns: Option<u64>,
}

impl Timing {
    /// Microseconds from the last request byte to the first response byte.
    pub fn ttfb_us(&self) -> Option<u64> {
        Some(self.response_start_ns?.saturating_sub(self.request_end_ns?) / 1000)
    }

    /// Microseconds from the first request byte to the last response byte.
    pub fn duration_us(&self) -> Option<u64> {
        Some(self.response_end_ns?.saturating_sub(self.request_start_ns?) / 1000)
    }
}
