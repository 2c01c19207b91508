//! One Kafka message as bytes: key, headers and value in a single buffer.
//!
//! The workers of a sharded replay encode records in parallel and hand the output thread
//! bytes ([`vxtap_sink::EncodedSink`]); a Kafka message needs more than the JSON line, so the
//! [`KafkaEncoder`] writes a small frame around it. The same frame is what the spool stores,
//! so a spooled record goes back to the broker exactly as it would have gone the first time.
//!
//! ```text
//!  u8 version (1) | u16 key length | key | u8 has_vni | u32 vni | u8 source length | source | value
//! ```
//! Integers are little-endian. The value is the JSON line of the file output without its
//! newline. The key is the connection (`client-server`, e.g. `10.0.0.1:40000-10.0.0.2:80`):
//! every exchange of one connection gets the same key, hence the same partition, hence keeps
//! its order. (The exchange id cannot serve: it hashes the connection's id with the exchange's
//! index, so two exchanges of one connection have unrelated ids.)

use std::io::Write as _;
use std::net::SocketAddr;

use vxtap_http::Exchange;
use vxtap_sink::{Encode, LineEncoder, SinkError};

/// Version byte of the frame layout.
const VERSION: u8 = 1;

/// A frame read back from bytes: borrowed views into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The message key (the connection).
    pub key: &'a [u8],
    /// The `vni` header, when the exchange came through a tunnel with one.
    pub vni: Option<u32>,
    /// The `mirror_source` header (the outer source address as text), when encapsulated.
    pub mirror_source: Option<&'a [u8]>,
    /// The message value: the JSON record without its newline.
    pub value: &'a [u8],
}

/// Why bytes are not a frame (a corrupt spool record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame is shorter than its own lengths say.
    #[error("truncated frame")]
    Truncated,
    /// The version byte is not one this build writes.
    #[error("unknown frame version {0}")]
    Version(u8),
    /// The key or source does not fit the frame's length fields.
    #[error("key or source too long for a frame")]
    TooLong,
}

impl<'a> Frame<'a> {
    /// Appends this frame to `out`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let key_len = u16::try_from(self.key.len()).map_err(|_| FrameError::TooLong)?;
        let src = self.mirror_source.unwrap_or_default();
        let src_len = u8::try_from(src.len()).map_err(|_| FrameError::TooLong)?;
        out.push(VERSION);
        out.extend_from_slice(&key_len.to_le_bytes());
        out.extend_from_slice(self.key);
        out.push(u8::from(self.vni.is_some()));
        out.extend_from_slice(&self.vni.unwrap_or(0).to_le_bytes());
        out.push(src_len);
        out.extend_from_slice(src);
        out.extend_from_slice(self.value);
        Ok(())
    }

    /// Reads a frame; never panics on hostile bytes.
    pub fn parse(b: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        let take = |at: usize, n: usize| b.get(at..at + n).ok_or(FrameError::Truncated);
        let version = *b.first().ok_or(FrameError::Truncated)?;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let key_len = u16::from_le_bytes([take(1, 2)?[0], take(1, 2)?[1]]) as usize;
        let key = take(3, key_len)?;
        let mut at = 3 + key_len;
        let has_vni = take(at, 1)?[0] != 0;
        let v = take(at + 1, 4)?;
        let vni = has_vni.then(|| u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
        at += 5;
        let src_len = take(at, 1)?[0] as usize;
        let src = take(at + 1, src_len)?;
        at += 1 + src_len;
        Ok(Frame {
            key,
            vni,
            mirror_source: (src_len > 0).then_some(src),
            value: &b[at..],
        })
    }
}

/// The message key of an exchange: its connection, `client-server`.
pub fn connection_key(ex: &Exchange, out: &mut Vec<u8>) {
    let c = SocketAddr::new(ex.client.ip, ex.client.port);
    let s = SocketAddr::new(ex.server.ip, ex.server.port);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{c}-{s}");
}

/// Encodes exchanges as frames, off the output thread (see the module doc); the value is
/// exactly what [`LineEncoder`] writes for the file output, without the newline.
#[derive(Clone, Debug, Default)]
pub struct KafkaEncoder {
    line: LineEncoder,
}

impl KafkaEncoder {
    /// An encoder whose values carry `"sample_rate"` when sampling is on, as the file's do.
    pub fn new(sample_rate: Option<f64>) -> Result<Self, SinkError> {
        Ok(KafkaEncoder {
            line: LineEncoder::new(sample_rate)?,
        })
    }
}

impl Encode for KafkaEncoder {
    fn encode(&self, ex: &Exchange, out: &mut Vec<u8>) -> Result<(), SinkError> {
        let start = out.len();
        let mut key = Vec::with_capacity(64);
        connection_key(ex, &mut key);
        let mut src = Vec::new();
        if let Some(ip) = ex.mirror_source {
            let _ = write!(src, "{ip}");
        }
        let head = Frame {
            key: &key,
            vni: ex.vni,
            mirror_source: ex.mirror_source.map(|_| &src[..]),
            value: &[],
        };
        // An IPv6 address and two ports fit a u16 and a u8 by far; kept typed all the same.
        if let Err(e) = head.write(out) {
            out.truncate(start);
            return Err(SinkError::Serialize(serde::ser::Error::custom(e)));
        }
        if let Err(e) = self.line.encode_exchange(ex, out) {
            out.truncate(start);
            return Err(e);
        }
        // The value is the line without its newline.
        if out.last() == Some(&b'\n') {
            out.pop();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_hostile_bytes_are_refused() {
        let f = Frame {
            key: b"10.0.0.1:1-10.0.0.2:80",
            vni: Some(0xab_cdef),
            mirror_source: Some(b"10.1.1.1"),
            value: b"{\"a\":1}",
        };
        let mut b = Vec::new();
        f.write(&mut b).unwrap();
        assert_eq!(Frame::parse(&b).unwrap(), f);
        let bare = Frame {
            key: b"",
            vni: None,
            mirror_source: None,
            value: b"",
        };
        let mut b2 = Vec::new();
        bare.write(&mut b2).unwrap();
        assert_eq!(Frame::parse(&b2).unwrap(), bare);
        // Every prefix of a frame up to its value is truncated, never a panic.
        let head = b.len() - f.value.len();
        for n in 0..head {
            assert!(Frame::parse(&b[..n]).is_err(), "prefix {n}");
        }
        let mut bad = b.clone();
        bad[0] = 9;
        assert_eq!(Frame::parse(&bad), Err(FrameError::Version(9)));
        // A key length past the end.
        assert_eq!(
            Frame::parse(&[1, 0xff, 0xff, 1]),
            Err(FrameError::Truncated)
        );
    }
}
