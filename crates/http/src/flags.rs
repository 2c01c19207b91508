//! Flags attached to exchanges: short snake_case words, documented one per variant.
//!
//! The README copies this list; the order of `Flag::ALL` is alphabetical so that iterating a
//! [`FlagSet`] yields the sorted, unique list the record promises.

use vxtap_wire::labeled_enum;

labeled_enum! {
    /// One fact worth knowing about an exchange.
    ///
    /// Declared in alphabetical order: `ALL` follows the declaration, and it is the output order.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[repr(u8)]
    pub enum Flag {
        /// A body is emitted content-decoded although `--decode-content` is off: redaction found
        /// secrets in the decoded content and the record carries the redacted, decoded form.
        BodyDecoded => "body_decoded",
        /// A body was removed (`body: null`) because redaction could not inspect it and the
        /// `--uninspectable-bodies drop` policy applies to its content type.
        BodyDropped => "body_dropped",
        /// A captured body is shorter than `body_len` (capture cap, gap or decode bound).
        BodyTruncated => "body_truncated",
        /// `--decode-content` failed to decode the body; the raw capture is emitted instead.
        DecodeError => "decode_error",
        /// Content decoding stopped at the decoded-size bound (large body or decompression bomb).
        DecodeTruncated => "decode_truncated",
        /// The connection was evicted from the flow table while this exchange was pending.
        Evicted => "evicted",
        /// Bytes of this exchange never arrived (see `gap_bytes` on the messages).
        Gap => "gap",
        /// An HTTP/2 GOAWAY arrived while the stream was open.
        Goaway => "goaway",
        /// A head exceeded the head-size cap; it was skipped and the stream resynchronised.
        HeadTooLarge => "head_too_large",
        /// An HTTP/2 header block did not decode whole (HPACK state lost to a late join or a gap,
        /// or a block dropped): unresolved fields are left out.
        HeadersPartial => "headers_partial",
        /// A message was cut by the end of the connection (or its framing was lost).
        Incomplete => "incomplete",
        /// The connection was picked up without its handshake and this exchange precedes the first
        /// cleanly paired one.
        Midstream => "midstream",
        /// The response's request was not seen (mid-stream start, or lost to a gap or parse error).
        NoRequest => "no_request",
        /// The request got no response (connection closed, timed out, or the response was lost).
        NoResponse => "no_response",
        /// A head could not be parsed; the stream was resynchronised at the next start line.
        ParseError => "parse_error",
        /// Requests awaiting responses exceeded the pending budget: this request's record was
        /// dropped (method and time kept, still paired), or, past the placeholders' budget too, the
        /// request was given up.
        PipelineOverflow => "pipeline_overflow",
        /// An HTTP/2 server push (the request is the PUSH_PROMISE's).
        Pushed => "pushed",
        /// Redaction replaced something in this exchange (a header, the target or a body).
        Redacted => "redacted",
        /// The HTTP/2 stream was reset (RST_STREAM; the error code is `rst_error`).
        RstStream => "rst_stream",
        /// Ambiguous framing a request-smuggling attack relies on (TE+CL, conflicting CL,
        /// obfuscated Transfer-Encoding, chunk-size overflow, bare LF, space before colon).
        SmugglingSuspect => "smuggling_suspect",
        /// The connection timed out (idle) while this exchange was pending.
        Timeout => "timeout",
        /// A head had more header fields than the cap; it was skipped and the stream resynchronised.
        TooManyHeaders => "too_many_headers",
        /// Bytes were missing because the capture truncated frames (snaplen or mirror cut).
        TruncatedCapture => "truncated_capture",
        /// A body could not be inspected by redaction (a content coding vxtap cannot decode, a
        /// decoding error, or decoded content past the decode bound); see `--uninspectable-bodies`.
        Uninspectable => "uninspectable",
        /// The exchange switched protocols (101 Upgrade or CONNECT 2xx); later bytes are not HTTP/1.
        Upgrade => "upgrade",
    }
}

/// A small set of flags (a bit mask; cheap to copy and merge).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlagSet(u32);

impl FlagSet {
    /// The empty set.
    pub const EMPTY: FlagSet = FlagSet(0);

    /// Adds a flag.
    pub fn insert(&mut self, f: Flag) {
        self.0 |= 1 << (f as u8);
    }

    /// True when the flag is in the set.
    pub fn contains(self, f: Flag) -> bool {
        self.0 & (1 << (f as u8)) != 0
    }

    /// Adds every flag of `other`.
    pub fn merge(&mut self, other: FlagSet) {
        self.0 |= other.0;
    }

    /// True when no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags in output (alphabetical) order.
    pub fn iter(self) -> impl Iterator<Item = Flag> {
        Flag::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    /// The labels in output order, as the record carries them.
    pub fn labels(self) -> Vec<&'static str> {
        self.iter().map(Flag::as_str).collect()
    }

    /// Removes a flag.
    pub fn remove(&mut self, f: Flag) {
        self.0 &= !(1 << (f as u8));
    }

    /// Number of flags in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
}

impl Flag {
    /// True for the flags the transforms after the HTTP layer set (redaction), which the HTTP
    /// layer's per-flag counters therefore never count.
    pub fn set_after_http(self) -> bool {
        matches!(
            self,
            Flag::BodyDecoded | Flag::BodyDropped | Flag::Redacted | Flag::Uninspectable
        )
    }
}

impl From<Flag> for FlagSet {
    fn from(f: Flag) -> Self {
        let mut s = FlagSet::EMPTY;
        s.insert(f);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_sorted_and_complete() {
        let labels: Vec<_> = Flag::ALL.iter().map(|f| f.as_str()).collect();
        let mut sorted = labels.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(labels, sorted);
        for (i, f) in Flag::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "discriminants follow ALL");
        }
    }

    #[test]
    fn set_yields_sorted_labels() {
        let mut s = FlagSet::EMPTY;
        s.insert(Flag::Upgrade);
        s.insert(Flag::Gap);
        s.insert(Flag::Gap);
        assert_eq!(s.labels(), vec!["gap", "upgrade"]);
    }
}
