//! Incremental HTTP/1.x parsing per direction, request/response pairing, and the exchange record.
//!
//! [`HttpHandler`] implements [`vxtap_flow::StreamHandler`]: the reassembler feeds it ordered
//! bytes, gaps, FINs and closes; finished [`Exchange`]s collect in an internal queue that the
//! caller empties with [`HttpHandler::drain_into`].

#![warn(missing_docs)]
// No unsafe here: capture is the one crate that needs it (mmap, syscalls).
#![forbid(unsafe_code)]

mod chunked;
mod decode;
pub mod exchange;
pub mod flags;
mod framing;
mod handler;
pub mod stats;

pub use decode::{decode_all, DecodeEnd};
pub use exchange::*;
pub use flags::{Flag, FlagSet};
pub use handler::{exchange_id, Conn, HttpConfig, HttpHandler, HEADERS_LIMIT, PLACEHOLDER_BYTES};
pub use stats::{HttpStats, Outcome, ParseError};
/// The HTTP/2 crate, whose protobuf dump types the gRPC record holds.
pub use vxtap_h2;

/// Entry points for the coverage-guided fuzz targets in `fuzz/`, which reach crate-private
/// parsers through them. Compiled only under `--cfg fuzzing` (set by `fuzz/run.sh`), so they
/// are not part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use crate::chunked::ChunkDecoder;
    use crate::stats::ParseError;

    /// What decoding a chunked body found: the body, whether it ended, the bytes after its end,
    /// and whether a line ended in a bare LF.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Chunked {
        /// Body data with the framing removed.
        pub body: Vec<u8>,
        /// The last chunk and the trailers were read.
        pub done: bool,
        /// Input bytes left after the end of the body.
        pub leftover: usize,
        /// A framing line ended with LF alone.
        pub bare_lf: bool,
    }

    /// Decodes `input` as a chunked body, fed in pieces that end at each of `splits` (offsets,
    /// any order, out-of-range ones ignored), as TCP segments would deliver it.
    pub fn decode_chunked(input: &[u8], splits: &[usize]) -> Result<Chunked, ParseError> {
        let mut cuts: Vec<usize> = splits
            .iter()
            .copied()
            .filter(|&s| s < input.len())
            .collect();
        cuts.push(input.len());
        cuts.sort_unstable();
        let mut d = ChunkDecoder::new();
        let mut body = Vec::new();
        let mut from = 0;
        for cut in cuts {
            let part = &input[from..cut];
            from = cut;
            let mut pos = 0;
            while pos < part.len() {
                let s = d.step(&part[pos..])?;
                if let Some((a, b)) = s.data {
                    body.extend_from_slice(&part[pos + a..pos + b]);
                }
                // Progress on every step: a decoder that consumed nothing would spin forever.
                assert!(s.consumed > 0 || s.done, "chunk decoder made no progress");
                pos += s.consumed;
                if s.done {
                    return Ok(Chunked {
                        body,
                        done: true,
                        leftover: part.len() - pos + (input.len() - cut),
                        bare_lf: d.bare_lf,
                    });
                }
            }
        }
        Ok(Chunked {
            body,
            done: false,
            leftover: 0,
            bare_lf: d.bare_lf,
        })
    }
}
