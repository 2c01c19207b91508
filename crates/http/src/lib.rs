//! Incremental HTTP/1.x parsing per direction, request/response pairing, and the exchange record.

pub mod exchange;
pub use exchange::*;
