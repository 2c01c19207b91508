//! Counters of the HTTP layer: plain integers, merged across workers by the caller.

use crate::flags::Flag;
use vxtap_wire::labeled_enum;

labeled_enum! {
    /// Why a head or a body's framing was rejected (each has a counter and drives a resync).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
    #[repr(u8)]
    pub enum ParseError {
        /// The head did not end within the head-size cap.
        #[error("message head larger than the configured cap")]
        HeadTooLarge => "head_too_large",
        /// The head had more header fields than the cap.
        #[error("more header fields than the configured cap")]
        TooManyHeaders => "too_many_headers",
        /// The request or status line was malformed.
        #[error("malformed request or status line")]
        BadStartLine => "bad_start_line",
        /// A header field was malformed (including whitespace before the colon).
        #[error("malformed header field")]
        BadHeader => "bad_header",
        /// A Content-Length value was not a plain decimal number.
        #[error("invalid Content-Length")]
        BadContentLength => "bad_content_length",
        /// Several Content-Length values disagree.
        #[error("conflicting Content-Length values")]
        ConflictingContentLength => "conflicting_content_length",
        /// A request's Transfer-Encoding does not end in chunked.
        #[error("request Transfer-Encoding without final chunked")]
        BadTransferEncoding => "bad_transfer_encoding",
        /// A chunk size is over 1 TiB (64-bit overflow included): the size smuggling attacks use.
        #[error("chunk size over 1 TiB")]
        ChunkSizeOverflow => "chunk_size_overflow",
        /// Chunked framing was malformed.
        #[error("malformed chunked framing")]
        BadChunk => "bad_chunk",
    }
}

labeled_enum! {
    /// How an emitted exchange ended up.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[repr(u8)]
    pub enum Outcome {
        /// Request and response both present.
        Complete => "complete",
        /// Request without response.
        NoResponse => "no_response",
        /// Response without request.
        NoRequest => "no_request",
    }
}

/// Counters of one [`crate::HttpHandler`]; `merge` adds another worker's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Exchanges emitted, indexed by `Outcome as usize`.
    pub exchanges: [u64; Outcome::ALL.len()],
    /// Exchanges carrying each flag, indexed by `Flag as usize`.
    pub flags: [u64; Flag::ALL.len()],
    /// Parse errors, indexed by `ParseError as usize`.
    pub parse_errors: [u64; ParseError::ALL.len()],
    /// Request heads parsed.
    pub requests: u64,
    /// Final response heads parsed.
    pub responses: u64,
    /// Interim (1xx other than 101) response heads parsed.
    pub interim_responses: u64,
    /// Body bytes seen (after chunked framing is removed).
    pub body_bytes: u64,
    /// Bytes announced missing by the reassembler.
    pub gap_bytes: u64,
    /// Times a direction lost its framing and started looking for the next start line.
    pub resyncs: u64,
    /// Bytes discarded while looking for a start line.
    pub resync_skipped_bytes: u64,
    /// Bytes after a 101 Upgrade or CONNECT 2xx that were counted, not parsed.
    pub upgrade_skipped_bytes: u64,
    /// Connections upgraded (101 or CONNECT 2xx).
    pub upgrades: u64,
    /// Connections whose client/server roles were swapped on evidence from the bytes.
    pub role_swaps: u64,
    /// Placeholders for lost requests dropped without a response to absorb.
    pub lost_requests: u64,
    /// Pending requests kept as compact placeholders (their records dropped) because the
    /// pending budget was spent.
    pub request_records_dropped: u64,
    /// Responses after a response-side loss paired in order once the count at the end of the
    /// connection proved that the loss hid no other response.
    pub count_pairings: u64,
    /// Interim responses not kept because an exchange already held the maximum.
    pub interim_dropped: u64,
    /// Final responses paired by TCP acknowledgement evidence where a loss had left FIFO
    /// pairing uncertain.
    pub ack_pairings: u64,
    /// Content decodings attempted.
    pub decodes: u64,
    /// Connections opened.
    pub conns_opened: u64,
    /// Connections closed.
    pub conns_closed: u64,
    /// Exchanges emitted from HTTP/2 streams (also counted in `exchanges`).
    pub exchanges_h2: u64,
    /// gRPC calls by status code (0-16; 17: any other code).
    pub grpc_status: [u64; 18],
    /// The HTTP/2 reader's counters (frames, frame errors, HPACK failures...).
    pub h2: vxtap_h2::H2Stats,
}

impl HttpStats {
    /// Adds every counter of `other` to `self`.
    pub fn merge(&mut self, other: &HttpStats) {
        fn add<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        add(&mut self.exchanges, &other.exchanges);
        add(&mut self.flags, &other.flags);
        add(&mut self.parse_errors, &other.parse_errors);
        add(&mut self.grpc_status, &other.grpc_status);
        self.exchanges_h2 += other.exchanges_h2;
        self.h2.merge(&other.h2);
        self.requests += other.requests;
        self.responses += other.responses;
        self.interim_responses += other.interim_responses;
        self.body_bytes += other.body_bytes;
        self.gap_bytes += other.gap_bytes;
        self.resyncs += other.resyncs;
        self.resync_skipped_bytes += other.resync_skipped_bytes;
        self.upgrade_skipped_bytes += other.upgrade_skipped_bytes;
        self.upgrades += other.upgrades;
        self.role_swaps += other.role_swaps;
        self.lost_requests += other.lost_requests;
        self.request_records_dropped += other.request_records_dropped;
        self.count_pairings += other.count_pairings;
        self.interim_dropped += other.interim_dropped;
        self.ack_pairings += other.ack_pairings;
        self.decodes += other.decodes;
        self.conns_opened += other.conns_opened;
        self.conns_closed += other.conns_closed;
    }

    /// Exchanges emitted with `outcome`.
    pub fn exchanges_by(&self, outcome: Outcome) -> u64 {
        self.exchanges[outcome as usize]
    }

    /// Exchanges emitted carrying `flag`.
    pub fn flag_count(&self, flag: Flag) -> u64 {
        self.flags[flag as usize]
    }

    /// Parse errors of `kind`.
    pub fn parse_error_count(&self, kind: ParseError) -> u64 {
        self.parse_errors[kind as usize]
    }

    /// Total exchanges emitted.
    pub fn exchanges_total(&self) -> u64 {
        self.exchanges.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds() {
        let mut a = HttpStats::default();
        a.exchanges[0] = 2;
        a.resyncs = 1;
        let mut b = a.clone();
        b.flags[3] = 4;
        a.merge(&b);
        assert_eq!(a.exchanges[0], 4);
        assert_eq!(a.resyncs, 2);
        assert_eq!(a.flags[3], 4);
        for (i, e) in ParseError::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
    }
}
