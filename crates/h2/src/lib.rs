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
//! - [`stats`]: counters.

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

/// Whether `data` (the first bytes seen in one direction of a connection picked up
/// mid-stream) looks like HTTP/2 frames: a chain of at least `CHAIN` plausible frame headers
/// starting at offset 0, or one whole frame that ends exactly at the end of `data`.
/// Conservative on purpose: HTTP/1 never passes (a request or status line is not a plausible
/// frame header), and a chain that must land exactly on further headers rarely happens by
/// chance.
pub fn looks_like_h2(data: &[u8]) -> bool {
    if data.starts_with(frame::PREFACE) {
        return true;
    }
    frame::chain_at(data, 0, frame::DEFAULT_MAX_FRAME, 2)
}
