//! gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md): length-prefixed message framing per
//! direction, status names, `grpc-message` percent-decoding, the RST_STREAM to status mapping,
//! and a schemaless protobuf dump.
//!
//! Message framing is independent of DATA frames (a message may span frames, a frame may hold
//! several messages), so [`MessageReader`] is fed the DATA payload bytes in order and keeps its
//! own state. Message bytes are kept for the first few messages only, within a byte cap.
//!
//! The protobuf dump is written here rather than with `prost`/`protobuf`: those decode into
//! types generated from a .proto, which a tap comparing two models' outputs does not have; the
//! wire format (varint, fixed64, length-delimited, fixed32) is all that is needed to show field
//! numbers, wire types and values.

/// Sizes kept per direction; further messages are counted only.
pub const MAX_SIZES: usize = 64;

/// One length-prefixed message as captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcMessage {
    /// The compressed flag of its prefix.
    pub compressed: bool,
    /// Its length as the prefix says.
    pub len: u32,
    /// The captured bytes (a prefix of the message when cut by the cap or the stream's end).
    pub bytes: Vec<u8>,
}

/// What one direction's messages were.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Messages {
    /// Messages whose prefix was read.
    pub count: u64,
    /// Their lengths (the first [`MAX_SIZES`]).
    pub sizes: Vec<u32>,
    /// The first messages, within the byte cap.
    pub first: Vec<GrpcMessage>,
    /// The framing was lost (a gap inside it) or the stream ended inside a message.
    pub framing_lost: bool,
}

/// Reads length-prefixed messages out of one direction's DATA bytes.
#[derive(Clone, Debug, Default)]
pub struct MessageReader {
    prefix: [u8; 5],
    have: u8,
    /// Bytes of the current message still to come (0: reading a prefix).
    left: u32,
    /// Capturing the current message into `out.first.last()`.
    capturing: bool,
    keep_messages: usize,
    keep_bytes: usize,
    kept_bytes: usize,
    lost: bool,
    /// The result so far.
    pub out: Messages,
}

impl MessageReader {
    /// A reader that keeps the first `keep_messages` messages within `keep_bytes` bytes.
    pub fn new(keep_messages: usize, keep_bytes: usize) -> MessageReader {
        MessageReader {
            keep_messages,
            keep_bytes,
            ..Default::default()
        }
    }

    /// Feeds DATA payload bytes.
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.lost {
            return;
        }
        while !data.is_empty() {
            if self.left == 0 && self.have < 5 {
                let n = (5 - self.have as usize).min(data.len());
                self.prefix[self.have as usize..self.have as usize + n].copy_from_slice(&data[..n]);
                self.have += n as u8;
                data = &data[n..];
                if self.have == 5 {
                    self.start_message();
                }
                continue;
            }
            let n = (self.left as usize).min(data.len());
            if self.capturing {
                let room = self.keep_bytes - self.kept_bytes;
                let take = n.min(room);
                if let Some(m) = self.out.first.last_mut() {
                    m.bytes.extend_from_slice(&data[..take]);
                }
                self.kept_bytes += take;
            }
            self.left -= n as u32;
            data = &data[n..];
            if self.left == 0 {
                self.have = 0;
                self.capturing = false;
            }
        }
    }

    fn start_message(&mut self) {
        let len = u32::from_be_bytes([
            self.prefix[1],
            self.prefix[2],
            self.prefix[3],
            self.prefix[4],
        ]);
        self.out.count += 1;
        if self.out.sizes.len() < MAX_SIZES {
            self.out.sizes.push(len);
        }
        self.capturing =
            self.out.first.len() < self.keep_messages && self.kept_bytes < self.keep_bytes;
        if self.capturing {
            self.out.first.push(GrpcMessage {
                compressed: self.prefix[0] & 1 != 0,
                len,
                bytes: Vec::new(),
            });
        }
        self.left = len;
        if len == 0 {
            self.have = 0;
            self.capturing = false;
        }
    }

    /// Bytes were lost: the framing cannot be followed any more.
    pub fn lose(&mut self) {
        self.lost = true;
        self.out.framing_lost = true;
    }

    /// The stream ended: a message still open means it was cut.
    pub fn finish(mut self) -> Messages {
        if self.left > 0 || self.have > 0 {
            self.out.framing_lost = true;
        }
        self.out
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.out.sizes.capacity() * 4
            + self
                .out
                .first
                .iter()
                .map(|m| m.bytes.capacity() + std::mem::size_of::<GrpcMessage>())
                .sum::<usize>()
    }
}

/// The canonical name of a gRPC status code (grpc/grpc doc/statuscodes.md).
pub fn status_name(code: u32) -> Option<&'static str> {
    Some(match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => return None,
    })
}

/// The gRPC status a client reports for a stream reset with this HTTP/2 error code, per
/// PROTOCOL-HTTP2.md ("Errors"): NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR,
/// SETTINGS_TIMEOUT, FRAME_SIZE_ERROR, COMPRESSION_ERROR and CONNECT_ERROR are INTERNAL;
/// REFUSED_STREAM is UNAVAILABLE; CANCEL is CANCELLED; ENHANCE_YOUR_CALM is
/// RESOURCE_EXHAUSTED; INADEQUATE_SECURITY is PERMISSION_DENIED. STREAM_CLOSED and unknown
/// codes are mapped to INTERNAL as well (the spec lists them as not applicable).
pub fn status_from_rst(error_code: u32) -> u32 {
    match error_code {
        0x7 => 14, // REFUSED_STREAM
        0x8 => 1,  // CANCEL
        0xb => 8,  // ENHANCE_YOUR_CALM
        0xc => 7,  // INADEQUATE_SECURITY
        _ => 13,
    }
}

/// Decodes `grpc-message` (percent-encoded UTF-8, PROTOCOL-HTTP2.md); a malformed escape is
/// kept as it is, as the spec asks.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = |c: u8| (c as char).to_digit(16);
            if let (Some(a), Some(c)) = (h(b[i + 1]), h(b[i + 2])) {
                out.push((a * 16 + c) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/package.Service/Method` split into service and method.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let p = path.strip_prefix('/')?;
    let (s, m) = p.split_once('/')?;
    if s.is_empty() || m.is_empty() || m.contains('/') {
        return None;
    }
    Some((s, m))
}

/// One field of a schemaless protobuf dump.
#[derive(Clone, Debug, PartialEq)]
pub struct PbField {
    /// Field number.
    pub number: u32,
    /// Wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
    pub wire_type: u8,
    /// The value.
    pub value: PbValue,
}

/// A protobuf field's value as the wire format gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum PbValue {
    /// Varint (shown unsigned; zigzag and sign are the schema's business).
    Varint(u64),
    /// 64-bit fixed.
    Fixed64(u64),
    /// 32-bit fixed.
    Fixed32(u32),
    /// Length-delimited bytes that parse as a nested message.
    Message(Vec<PbField>),
    /// Length-delimited bytes that are valid UTF-8 text.
    String(String),
    /// Other length-delimited bytes.
    Bytes(Vec<u8>),
}

/// Nesting levels the dump descends into; deeper length-delimited values stay bytes.
const MAX_DEPTH: usize = 8;
/// Fields a dump holds at most (across nesting); the rest is not decoded.
const MAX_FIELDS: usize = 1024;

/// Dumps `b` as protobuf without a schema; None when it is not a well-formed message.
/// Length-delimited values are shown as a nested message when they parse as one, else as
/// text when printable UTF-8, else as bytes.
pub fn protobuf_dump(b: &[u8]) -> Option<Vec<PbField>> {
    let mut budget = MAX_FIELDS;
    dump(b, 0, &mut budget)
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&c, rest) = b.split_first()?;
        *b = rest;
        v |= ((c & 0x7f) as u64) << (7 * i);
        if c & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn dump(mut b: &[u8], depth: usize, budget: &mut usize) -> Option<Vec<PbField>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        let key = varint(&mut b)?;
        let number = u32::try_from(key >> 3).ok().filter(|n| *n != 0)?;
        let wire_type = (key & 7) as u8;
        let value = match wire_type {
            0 => PbValue::Varint(varint(&mut b)?),
            1 => {
                let (v, rest) = b.split_first_chunk::<8>()?;
                b = rest;
                PbValue::Fixed64(u64::from_le_bytes(*v))
            }
            5 => {
                let (v, rest) = b.split_first_chunk::<4>()?;
                b = rest;
                PbValue::Fixed32(u32::from_le_bytes(*v))
            }
            2 => {
                let len = usize::try_from(varint(&mut b)?).ok()?;
                if len > b.len() {
                    return None;
                }
                let (v, rest) = b.split_at(len);
                b = rest;
                let text = std::str::from_utf8(v).ok().filter(|s| {
                    !s.is_empty() && s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t')
                });
                let mut nested_budget = *budget;
                let nested = if depth < MAX_DEPTH && !v.is_empty() {
                    dump(v, depth + 1, &mut nested_budget)
                } else {
                    None
                };
                match (nested, text) {
                    // Text that happens to parse as a message reads better as text.
                    (_, Some(s)) => PbValue::String(s.to_owned()),
                    (Some(m), None) => {
                        *budget = nested_budget;
                        PbValue::Message(m)
                    }
                    (None, None) => PbValue::Bytes(v.to_vec()),
                }
            }
            _ => return None,
        };
        out.push(PbField {
            number,
            wire_type,
            value,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(flag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn framing_is_independent_of_chunks() {
        let mut all = msg(0, b"hello");
        all.extend(msg(1, b""));
        all.extend(msg(0, &[7; 300]));
        for split in 0..all.len() {
            let mut r = MessageReader::new(2, 100);
            r.feed(&all[..split]);
            r.feed(&all[split..]);
            let m = r.finish();
            assert_eq!(m.count, 3);
            assert_eq!(m.sizes, vec![5, 0, 300]);
            assert_eq!(m.first.len(), 2);
            assert_eq!(m.first[0].bytes, b"hello");
            assert!(m.first[1].compressed);
            assert!(!m.framing_lost);
        }
        let mut r = MessageReader::new(4, 10);
        r.feed(&all);
        let m = r.finish();
        assert_eq!(m.first.len(), 3);
        assert_eq!(m.first[2].bytes.len(), 5, "byte cap");
    }

    #[test]
    fn cut_message_is_framing_lost() {
        let mut r = MessageReader::new(1, 100);
        r.feed(&msg(0, b"hello")[..7]);
        assert!(r.finish().framing_lost);
    }

    #[test]
    fn statuses_and_messages() {
        assert_eq!(status_name(4), Some("DEADLINE_EXCEEDED"));
        assert_eq!(status_name(17), None);
        assert_eq!(status_from_rst(8), 1);
        assert_eq!(status_from_rst(7), 14);
        assert_eq!(status_from_rst(2), 13);
        assert_eq!(percent_decode("a%20b%E2%82%AC%zz%"), "a b\u{20ac}%zz%");
        assert_eq!(
            split_path("/helloworld.Greeter/SayHello"),
            Some(("helloworld.Greeter", "SayHello"))
        );
        assert_eq!(split_path("/x"), None);
    }

    #[test]
    fn protobuf() {
        // field 1 varint 150; field 2 string "testing"; field 3 nested {1: 1}; field 4 fixed32.
        let b = [
            0x08, 0x96, 0x01, 0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g', 0x1a, 0x02,
            0x08, 0x01, 0x25, 1, 0, 0, 0,
        ];
        let d = protobuf_dump(&b).unwrap();
        assert_eq!(d[0].value, PbValue::Varint(150));
        assert_eq!(d[1].value, PbValue::String("testing".into()));
        assert_eq!(
            d[2].value,
            PbValue::Message(vec![PbField {
                number: 1,
                wire_type: 0,
                value: PbValue::Varint(1)
            }])
        );
        assert_eq!(d[3].value, PbValue::Fixed32(1));
        assert!(protobuf_dump(&[0x08]).is_none());
        assert!(protobuf_dump(&[0x0f]).is_none());
    }
}
