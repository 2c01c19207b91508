//! HTTP/2 in clear text (h2c) and gRPC, read passively: frames, a tolerant HPACK decoder, the
//! per-connection stream state that turns both directions' bytes into finished streams, and
//! gRPC message framing.
//!
//! Sans-I/O and independent of the HTTP/1 crate: `vxtap-http` detects HTTP/2 on a connection
//! (preface, `Upgrade: h2c`, or frame headers mid-stream), hands its bytes to an [`H2Conn`],
//! and turns each [`StreamOut`] into an exchange record.
//!
//! - [`frame`]: frame header view, constants, plausibility (for detection and resync);
//! - [`hpack`]: the HPACK decoder that keeps going past unknown indexes (why our own: there);
//! - [`conn`]: connection and stream state, bounded;
//! - [`grpc`]: length-prefixed messages, statuses, the schemaless protobuf dump;
//! - [`stats`][crate::stats]: counters.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod conn;
pub mod frame;
pub mod grpc;
pub mod hpack;
mod huffman_table;
pub mod stats;

pub use conn::{grpc_status, H2Config, H2Conn, SideOut, Start, StreamOut};
pub use stats::{FrameError, H2Stats, HpackFailure};

/// Whether `data` (a segment of a connection picked up mid-stream) looks like HTTP/2 frames
/// from its first byte: a chain of at least two plausible frame headers, one whole frame that
/// ends exactly at the end of `data`, or a DATA, HEADERS or CONTINUATION frame (of at least
/// 256 bytes) whose payload runs past it, as a large frame split over segments does.
/// Conservative on purpose: HTTP/1 never passes (the first bytes of a request or status line
/// read as a 24-bit length are far above 16 KiB, the default frame size limit), nor does TLS
/// (0x16/0x17 lead the same way), and a chain must land exactly on further headers.
pub fn looks_like_h2(data: &[u8]) -> bool {
    if data.starts_with(frame::PREFACE) {
        return true;
    }
    let max = frame::DEFAULT_MAX_FRAME;
    if frame::chain_at(data, 0, max, 2) {
        return true;
    }
    match frame::FrameHeader::parse(data) {
        Some(h) => {
            h.plausible(max)
                && matches!(
                    h.kind,
                    frame::kind::DATA | frame::kind::HEADERS | frame::kind::CONTINUATION
                )
                && h.len >= 256
                && frame::HEADER_LEN + h.len as usize > data.len()
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_h2;

    #[test]
    fn detection_is_conservative() {
        for text in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"POST /x HTTP/1.1\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\x17\x03\x03\x40\x00",
            b"",
        ] {
            assert!(!looks_like_h2(text), "{text:?}");
        }
        // SETTINGS then WINDOW_UPDATE.
        let mut b = vec![0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        b.extend([0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert!(looks_like_h2(&b));
        // The first segment of a 16 KiB DATA frame.
        let mut d = vec![0, 0x40, 0, 0, 0, 0, 0, 0, 3];
        d.extend([0u8; 1400]);
        assert!(looks_like_h2(&d));
    }
}
