//! The shadow record (one JSON line per exchange considered) and the hook the comparison
//! plugs into.
//!
//! Both responses reach the stage that writes the record ([`Outcome`]: production's status,
//! headers and body up to `--shadow-max-body` as captured, the candidate's as received), and a
//! [`Compare`] implementation may add fields to the record from them; the record's own fields
//! never change shape for it.

use serde::Serialize;

/// What happened to an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The candidate answered.
    Sent,
    /// Not sent (see [`SkipReason`]).
    Skipped,
    /// Sent, but no answer (see [`ErrorKind`]).
    Error,
}

impl Verdict {
    /// Every verdict, for metrics.
    pub const ALL: [Verdict; 3] = [Verdict::Sent, Verdict::Skipped, Verdict::Error];
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Sent => "sent",
            Verdict::Skipped => "skipped",
            Verdict::Error => "error",
        }
    }
}

vxtap_wire::labeled_enum! {
    /// Why an exchange was not sent.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum SkipReason {
        /// Only a response was seen.
        NoRequest => "no_request",
        /// The request did not parse (its method or target is a guess).
        UnparsedRequest => "unparsed_request",
        /// The method is not in `--methods` (GET, HEAD and OPTIONS by default).
        Method => "method",
        /// The request carried `x-vxtap-shadow`: it is shadow traffic itself (loop guard).
        LoopGuard => "loop_guard",
        /// The request body did not arrive whole (gap, FIN or close before its end).
        BodyIncomplete => "body_incomplete",
        /// The request body is larger than `--shadow-max-body`.
        BodyTooLarge => "body_too_large",
        /// The request body was not kept (shadow replay of bodies is off).
        BodyNotCaptured => "body_not_captured",
        /// The captured target or a header cannot be sent as a request.
        Unsendable => "unsendable",
        /// The queue was full (a slow candidate never slows capture).
        QueueFull => "queue_full",
        /// The circuit breaker was open.
        BreakerOpen => "breaker_open",
        /// Shutdown's drain deadline passed before it was sent.
        Shutdown => "shutdown",
    }
}

vxtap_wire::labeled_enum! {
    /// Why a sent request got no answer.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ErrorKind {
        /// Connecting (TCP or TLS) failed.
        Connect => "connect",
        /// No whole answer within the per-request timeout.
        Timeout => "timeout",
        /// The connection failed mid-request, or the answer was not HTTP.
        Protocol => "protocol",
    }
}

/// Production's side of a record.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProductionSide {
    /// Status code, when a response was seen.
    pub status: Option<u16>,
    /// First request byte to last response byte, from packet timestamps.
    pub latency_us: Option<u64>,
    /// Response body bytes (chunked framing removed, before content decoding).
    pub body_len: Option<u64>,
}

/// The candidate's side of a record.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CandidateSide {
    /// Status code.
    pub status: Option<u16>,
    /// Request sent to last response byte received.
    pub latency_us: Option<u64>,
    /// Response body bytes received (as received: content coding kept).
    pub body_len: Option<u64>,
    /// Why there is no answer.
    pub error: Option<ErrorKind>,
}

/// One line of the shadow output. Every string that came from the traffic is redacted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShadowRecord {
    /// The exchange's id (as in the exchange records).
    pub id: u64,
    /// Request method.
    pub method: Option<String>,
    /// Request target, redacted.
    pub uri: Option<String>,
    /// The endpoint the request is counted under.
    pub endpoint: String,
    /// What happened.
    pub verdict: Verdict,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<SkipReason>,
    /// Production's answer.
    pub production: ProductionSide,
    /// The candidate's answer.
    pub candidate: CandidateSide,
    /// Fields a [`Compare`] added (flattened into the record).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One side's response as the comparison sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields in order (names as received).
    pub headers: Vec<(String, String)>,
    /// Body bytes as sent on the wire (chunked framing removed, content coding kept: see the
    /// `content-encoding` header), up to `--shadow-max-body`.
    pub body: Vec<u8>,
    /// True when `body` is shorter than the body (the cap, or a capture gap on production's
    /// side).
    pub body_truncated: bool,
}

/// What the comparison gets for one exchange: the request as sent (unredacted, never to be
/// echoed into a record without the redactor) and both responses.
#[derive(Debug)]
pub struct Outcome<'a> {
    /// The record as it stands (already redacted).
    pub record: &'a ShadowRecord,
    /// Production's response, when one was captured.
    pub production: Option<&'a Response>,
    /// The candidate's, when it answered.
    pub candidate: Option<&'a Response>,
}

/// The comparison's hook: called once per record, in record order, on the thread that writes
/// the records (so it may keep state such as learned noise). What it returns is added to the
/// record; it must redact anything it echoes from the traffic with the redactor it was given.
pub trait Compare: Send {
    /// Fields to add to the record of `outcome`.
    fn compare(&mut self, outcome: &Outcome<'_>) -> serde_json::Map<String, serde_json::Value>;
    /// Added to the summary under `comparison`, at the end.
    fn summary(&self) -> Option<serde_json::Value> {
        None
    }
}

/// No comparison (this issue): records carry the two sides alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCompare;

impl Compare for NoCompare {
    fn compare(&mut self, _: &Outcome<'_>) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
}
