//! HTTP/2 frame headers (RFC 9113 section 4.1) as a view over nine bytes, with the field
//! offsets, frame types and flag bits as constants (the smoltcp style the wire crate uses).
//!
//! Only the header is a view: payloads are interpreted by the connection state
//! ([`crate::conn`]), which streams DATA payloads and buffers the others.

/// Length of a frame header.
pub const HEADER_LEN: usize = 9;
/// The client connection preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The default SETTINGS_MAX_FRAME_SIZE.
pub const DEFAULT_MAX_FRAME: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE a peer may announce.
pub const MAX_MAX_FRAME: u32 = (1 << 24) - 1;

/// Field offsets inside the header.
pub mod field {
    /// 24-bit payload length.
    pub const LENGTH: core::ops::Range<usize> = 0..3;
    /// Frame type.
    pub const TYPE: usize = 3;
    /// Flags.
    pub const FLAGS: usize = 4;
    /// Reserved bit and 31-bit stream identifier.
    pub const STREAM: core::ops::Range<usize> = 5..9;
}

/// Frame types (RFC 9113 section 6).
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0;
    /// HEADERS.
    pub const HEADERS: u8 = 1;
    /// PRIORITY.
    pub const PRIORITY: u8 = 2;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 4;
    /// PUSH_PROMISE.
    pub const PUSH_PROMISE: u8 = 5;
    /// PING.
    pub const PING: u8 = 6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 9;
}

/// Flag bits.
pub mod flag {
    /// DATA, HEADERS: the sender's last frame on the stream.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: acknowledgement.
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION: the header block ends here.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE: a pad length byte leads the payload.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: stream dependency and weight (5 bytes) follow the pad length.
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS parameters vxtap uses.
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 1;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 5;
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub len: u32,
    /// Frame type (see [`kind`]).
    pub kind: u8,
    /// Flag bits (see [`flag`]).
    pub flags: u8,
    /// Stream identifier (reserved bit cleared).
    pub stream: u32,
    /// The reserved bit was set (a sender must not; counted when seen).
    pub reserved: bool,
}

impl FrameHeader {
    /// Reads the header from the first nine bytes of `b`; None when shorter.
    pub fn parse(b: &[u8]) -> Option<FrameHeader> {
        let h: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        let l = field::LENGTH;
        let s = field::STREAM;
        let len = u32::from_be_bytes([0, h[l.start], h[l.start + 1], h[l.start + 2]]);
        let raw = u32::from_be_bytes([h[s.start], h[s.start + 1], h[s.start + 2], h[s.start + 3]]);
        Some(FrameHeader {
            len,
            kind: h[field::TYPE],
            flags: h[field::FLAGS],
            stream: raw & 0x7fff_ffff,
            reserved: raw & 0x8000_0000 != 0,
        })
    }

    /// True when the END_STREAM bit is set on a frame type that has it.
    pub fn end_stream(&self) -> bool {
        matches!(self.kind, kind::DATA | kind::HEADERS) && self.flags & flag::END_STREAM != 0
    }

    /// True when a header block ends with this frame.
    pub fn end_headers(&self) -> bool {
        self.flags & flag::END_HEADERS != 0
    }

    /// Whether this header could start a frame a conforming peer sends, judged on the header
    /// alone: a known type, its flag bits, its stream rules (connection frames on stream 0,
    /// stream frames elsewhere) and fixed payload sizes, and a length within `max_len`.
    /// Used to recognise HTTP/2 without a preface and to find frames again after a gap; it is
    /// deliberately strict (an unknown type or a stray flag bit is not plausible).
    pub fn plausible(&self, max_len: u32) -> bool {
        if self.reserved || self.len > max_len {
            return false;
        }
        let f = self.flags;
        let s = self.stream;
        match self.kind {
            kind::DATA => s != 0 && f & !(flag::END_STREAM | flag::PADDED) == 0,
            kind::HEADERS => {
                s != 0
                    && f & !(flag::END_STREAM | flag::END_HEADERS | flag::PADDED | flag::PRIORITY)
                        == 0
                    && self.len > 0
            }
            kind::PRIORITY => s != 0 && f == 0 && self.len == 5,
            kind::RST_STREAM => s != 0 && f == 0 && self.len == 4,
            kind::SETTINGS => {
                s == 0
                    && f & !flag::ACK == 0
                    && self.len.is_multiple_of(6)
                    && (f == 0 || self.len == 0)
            }
            kind::PUSH_PROMISE => {
                s != 0 && f & !(flag::END_HEADERS | flag::PADDED) == 0 && self.len >= 4
            }
            kind::PING => s == 0 && f & !flag::ACK == 0 && self.len == 8,
            kind::GOAWAY => s == 0 && f == 0 && self.len >= 8,
            kind::WINDOW_UPDATE => f == 0 && self.len == 4,
            kind::CONTINUATION => s != 0 && f & !flag::END_HEADERS == 0,
            _ => false,
        }
    }
}

/// Where the first plausible chain of frames starts in `buf`: an offset at which a plausible
/// header is followed by plausible headers up to the end of `buf` (at least `min_frames` of
/// them, or the chain ends exactly at the end of `buf`). None when there is none.
///
/// One plausible header alone proves little (nine bytes of anything); a chain whose lengths
/// land exactly on further plausible headers is what real HTTP/2 looks like.
pub fn find_chain(buf: &[u8], max_len: u32, min_frames: usize) -> Option<usize> {
    let last = buf.len().checked_sub(HEADER_LEN)?;
    (0..=last).find(|&start| chain_at(buf, start, max_len, min_frames))
}

/// What a resynchronising reader learns from its buffer (see [`scan_chain`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    /// `min_frames` plausible headers in a row start here.
    Found(usize),
    /// Every earlier offset is ruled out; this one needs more bytes to decide.
    NeedMore(usize),
    /// No offset can start a chain.
    None,
}

/// Like [`find_chain`], but decided only on proof: an offset is accepted when `min_frames`
/// plausible headers, each where the previous frame's length says, are all in `buf`, and
/// when the bytes to decide are not there yet the scan stops at that offset (the caller keeps
/// the bytes from it and asks again with more). So the answer never depends on where the
/// stream was cut into segments.
pub fn scan_chain(buf: &[u8], max_len: u32, min_frames: usize) -> Chain {
    for start in 0..buf.len() {
        let mut pos = start;
        let mut n = 0;
        let verdict = loop {
            if n >= min_frames {
                break Some(true);
            }
            let Some(h) = FrameHeader::parse(&buf[pos..]) else {
                break None;
            };
            if !h.plausible(max_len) {
                break Some(false);
            }
            n += 1;
            pos += HEADER_LEN + h.len as usize;
            if n < min_frames && pos >= buf.len() {
                break None;
            }
        };
        match verdict {
            Some(true) => return Chain::Found(start),
            Some(false) => {}
            None => return Chain::NeedMore(start),
        }
    }
    Chain::None
}

/// Whether a plausible chain starts at `start` (see [`find_chain`]).
pub fn chain_at(buf: &[u8], start: usize, max_len: u32, min_frames: usize) -> bool {
    let mut pos = start;
    let mut n = 0;
    loop {
        let Some(h) = FrameHeader::parse(&buf[pos..]) else {
            // Ends inside a header: fine if the chain is long enough already.
            return n >= min_frames || (n > 0 && pos == buf.len());
        };
        if !h.plausible(max_len) {
            return false;
        }
        n += 1;
        let next = pos + HEADER_LEN + h.len as usize;
        if next >= buf.len() {
            return n >= min_frames || next == buf.len();
        }
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(len: u32, kind: u8, flags: u8, stream: u32) -> [u8; 9] {
        let l = len.to_be_bytes();
        let s = stream.to_be_bytes();
        [l[1], l[2], l[3], kind, flags, s[0], s[1], s[2], s[3]]
    }

    #[test]
    fn parses_fields() {
        let h = FrameHeader::parse(&hdr(0x012345, kind::HEADERS, 0x25, 0x8000_0007)).unwrap();
        assert_eq!(h.len, 0x012345);
        assert_eq!(h.kind, kind::HEADERS);
        assert_eq!(h.flags, 0x25);
        assert_eq!(h.stream, 7);
        assert!(h.reserved);
        assert!(h.end_stream() && h.end_headers());
        assert!(FrameHeader::parse(&[0; 8]).is_none());
    }

    #[test]
    fn plausibility_rules() {
        let p = |b: [u8; 9]| FrameHeader::parse(&b).unwrap().plausible(DEFAULT_MAX_FRAME);
        assert!(p(hdr(18, kind::SETTINGS, 0, 0)));
        assert!(!p(hdr(17, kind::SETTINGS, 0, 0)));
        assert!(!p(hdr(6, kind::SETTINGS, 0, 1)));
        assert!(p(hdr(8, kind::PING, 1, 0)));
        assert!(!p(hdr(9, kind::PING, 0, 0)));
        assert!(p(hdr(100, kind::DATA, 1, 3)));
        assert!(!p(hdr(100, kind::DATA, 0, 0)));
        assert!(!p(hdr(100, kind::DATA, 0x20, 3)));
        assert!(!p(hdr(20_000, kind::DATA, 0, 3)));
        assert!(!p(hdr(4, 10, 0, 3)));
        // An HTTP/1 request line read as a frame header: "GET / HTTP/1.1".
        assert!(!FrameHeader::parse(b"GET / HTTP/1.1")
            .unwrap()
            .plausible(MAX_MAX_FRAME));
        assert!(!FrameHeader::parse(b"HTTP/1.1 200 OK")
            .unwrap()
            .plausible(MAX_MAX_FRAME));
    }

    #[test]
    fn chains() {
        let mut b = Vec::new();
        b.extend_from_slice(&hdr(6, kind::SETTINGS, 0, 0));
        b.extend_from_slice(&[0, 3, 0, 0, 0, 100]);
        b.extend_from_slice(&hdr(4, kind::WINDOW_UPDATE, 0, 0));
        b.extend_from_slice(&[0, 0, 1, 0]);
        assert_eq!(find_chain(&b, DEFAULT_MAX_FRAME, 2), Some(0));
        let mut junk = b"xyz".to_vec();
        junk.extend_from_slice(&b);
        assert_eq!(find_chain(&junk, DEFAULT_MAX_FRAME, 2), Some(3));
        assert_eq!(
            find_chain(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", MAX_MAX_FRAME, 1),
            None
        );
    }
}

#[cfg(test)]
mod scan_tests {
    use super::*;

    proptest::proptest! {
        /// Whatever the bytes, scanning them whole or fed in two pieces (keeping what the scan
        /// says to keep) finds the same place.
        #[test]
        fn scan_is_split_invariant(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                                   cut in 0usize..200) {
            let whole = scan_chain(&b, DEFAULT_MAX_FRAME, 2);
            let cut = cut.min(b.len());
            let mut buf = b[..cut].to_vec();
            let mut skipped = 0;
            let first = scan_chain(&buf, DEFAULT_MAX_FRAME, 2);
            let got = match first {
                Chain::Found(at) => Chain::Found(at),
                Chain::NeedMore(_) | Chain::None => {
                    let at = if let Chain::NeedMore(at) = first { at } else { buf.len() };
                    buf.drain(..at);
                    skipped = at;
                    buf.extend_from_slice(&b[cut..]);
                    match scan_chain(&buf, DEFAULT_MAX_FRAME, 2) {
                        Chain::Found(x) => Chain::Found(x + skipped),
                        Chain::NeedMore(x) => Chain::NeedMore(x + skipped),
                        Chain::None => Chain::None,
                    }
                }
            };
            let _ = skipped;
            proptest::prop_assert_eq!(whole, got);
        }
    }
}
