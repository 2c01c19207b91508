//! Incremental HTTP/1.x parsing per direction, request/response pairing, and the exchange record.
//!
//! [`HttpHandler`] implements [`vxtap_flow::StreamHandler`]: the reassembler feeds it ordered
//! bytes, gaps, FINs and closes; finished [`Exchange`]s collect in an internal queue that the
//! caller empties with [`HttpHandler::drain_into`].

#![warn(missing_docs)]

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
