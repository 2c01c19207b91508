//! A tolerant HPACK decoder (RFC 7541) for a passive observer.
//!
//! Why our own: the decoders of `h2`, `hpack` and `fluke-hpack` are written for an endpoint,
//! for which an index it does not know is a connection error (COMPRESSION_ERROR), so they stop
//! at the first one. A tap that joined a connection late, or lost a header block to a gap,
//! meets such indexes routinely and must keep going: here an unknown dynamic index yields an
//! unknown field (reported, not fatal), every incremental-indexing literal is inserted even when
//! its name is unknown (a placeholder entry), so the indexes of everything inserted afterwards
//! stay right, and the table recovers as it turns over. Static-table and literal fields always
//! decode, which is how method, path and status survive a late join.
//!
//! Why inserting placeholders keeps indexes right: a dynamic index counts entries from the
//! newest, so it resolves correctly as long as the number of insertions since the entry is
//! exact, whatever the sizes. Sizes only decide eviction, and an entry whose size is unknown is
//! charged a lower bound, so it may be kept longer than the encoder keeps it (the encoder never
//! refers to it again, so that is harmless) but never evicted early.
//!
//! After a loss (a gap that may have hidden header blocks, or a late join) the number of
//! insertions is unknown: every entry held is dropped and the table is marked `lost`; indexes
//! past the entries inserted since then resolve to unknown. The table is bounded by the size
//! the encoder announces and, regardless of it, by a hard cap (`HpackDecoder::new`).

use crate::huffman_table::CODES;

/// Per-entry overhead RFC 7541 section 4.1 adds to name and value lengths.
pub const ENTRY_OVERHEAD: usize = 32;
/// The default dynamic table size (SETTINGS_HEADER_TABLE_SIZE's initial value).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// The static table (RFC 7541 Appendix A), index 1 first.
pub const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Why a header block did not decode whole (counted by the connection; never fatal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpackError {
    /// An index pointed past the known entries of a table that lost its history (expected
    /// after a late join or a gap).
    UnknownIndex,
    /// An index pointed past the entries of a table that has its whole history (the peer, or
    /// our reading of the stream, is wrong).
    BadIndex,
    /// An integer or string ran past the end of the block, or overflowed.
    Truncated,
    /// Invalid Huffman code (bad padding or EOS inside the string).
    Huffman,
    /// A dynamic table size update above the hard cap (clamped).
    SizeUpdate,
}

/// One decoded field. `name`/`value` None: that part could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The name, when known.
    pub name: Option<String>,
    /// The value, when known.
    pub value: Option<String>,
}

/// The result of decoding one header block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block {
    /// Fields in order, resolved or not.
    pub fields: Vec<Field>,
    /// Errors met (each also counted by the caller); empty for a block decoded whole.
    pub errors: Vec<HpackError>,
}

impl Block {
    /// True when every field resolved and nothing went wrong.
    pub fn complete(&self) -> bool {
        self.errors.is_empty()
            && self
                .fields
                .iter()
                .all(|f| f.name.is_some() && f.value.is_some())
    }
}

#[derive(Clone, Debug)]
struct Entry {
    name: Option<Box<str>>,
    value: Option<Box<str>>,
    /// RFC size (a lower bound when a part is unknown).
    size: usize,
}

/// The decoding side of one direction's HPACK context.
#[derive(Clone, Debug)]
pub struct HpackDecoder {
    /// Newest first.
    entries: std::collections::VecDeque<Entry>,
    size: usize,
    max_size: usize,
    hard_cap: usize,
    lost: bool,
}

impl HpackDecoder {
    /// A decoder whose table never holds more than `hard_cap` bytes (RFC size), whatever the
    /// encoder announces. `lost`: the history is unknown (joined late).
    pub fn new(hard_cap: usize, lost: bool) -> HpackDecoder {
        HpackDecoder {
            entries: Default::default(),
            size: 0,
            max_size: DEFAULT_TABLE_SIZE.min(hard_cap),
            hard_cap,
            lost,
        }
    }

    /// The history is unknown from here on (header blocks may have been lost).
    pub fn mark_lost(&mut self) {
        self.entries.clear();
        self.size = 0;
        self.lost = true;
    }

    /// Whether the table's history is incomplete.
    pub fn lost(&self) -> bool {
        self.lost
    }

    /// Heap bytes held by the table (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self
                .entries
                .iter()
                .map(|e| {
                    e.name.as_ref().map_or(0, |n| n.len()) + e.value.as_ref().map_or(0, |v| v.len())
                })
                .sum::<usize>()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict_to(&mut self, room: usize) {
        while self.size > room {
            match self.entries.pop_back() {
                Some(e) => self.size -= e.size,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }

    fn set_max(&mut self, n: usize) -> bool {
        let ok = n <= self.hard_cap;
        self.max_size = n.min(self.hard_cap);
        self.evict_to(self.max_size);
        ok
    }

    fn insert(&mut self, name: Option<&str>, value: Option<&str>, size: usize) {
        if size > self.max_size {
            // RFC 7541 4.4: an entry larger than the table empties it.
            self.entries.clear();
            self.size = 0;
            // Everything the encoder holds is known again: nothing.
            self.lost = false;
            return;
        }
        // Known entries fit in max_size; if they need room, older unknown entries must have
        // been evicted already (they are older than every known one).
        if self.size + size > self.max_size {
            self.lost = false;
        }
        self.evict_to(self.max_size - size);
        self.entries.push_front(Entry {
            name: name.map(Into::into),
            value: value.map(Into::into),
            size,
        });
        self.size += size;
    }

    fn lookup(&self, index: usize) -> Result<(Option<&str>, Option<&str>), HpackError> {
        if index == 0 {
            return Err(HpackError::BadIndex);
        }
        if let Some((n, v)) = STATIC.get(index - 1) {
            return Ok((Some(n), Some(v)));
        }
        match self.entries.get(index - 1 - STATIC.len()) {
            Some(e) => Ok((e.name.as_deref(), e.value.as_deref())),
            None if self.lost => Err(HpackError::UnknownIndex),
            None => Err(HpackError::BadIndex),
        }
    }

    /// Decodes one whole header block, updating the table. Never fails: what cannot be read
    /// is reported in [`Block::errors`] and as unresolved fields. A block cut short leaves the
    /// table marked lost (its later insertions are unknown).
    pub fn decode(&mut self, mut b: &[u8], max_fields: usize) -> Block {
        let mut out = Block::default();
        while let Some(&first) = b.first() {
            let r = self.field(&mut b, first, &mut out);
            if let Err(e) = r {
                out.errors.push(e);
                if matches!(e, HpackError::Truncated | HpackError::Huffman) {
                    // The rest of the block cannot be read, and may have inserted entries.
                    self.mark_lost();
                    break;
                }
            }
            if out.fields.len() > max_fields {
                out.fields.truncate(max_fields);
                out.errors.push(HpackError::Truncated);
                self.mark_lost();
                break;
            }
        }
        out
    }

    fn field(&mut self, b: &mut &[u8], first: u8, out: &mut Block) -> Result<(), HpackError> {
        if first & 0x80 != 0 {
            // Indexed field.
            let i = int(b, 7)?;
            match self.lookup(i) {
                Ok((n, v)) => out.fields.push(Field {
                    name: n.map(Into::into),
                    value: v.map(Into::into),
                }),
                Err(e) => {
                    out.fields.push(Field {
                        name: None,
                        value: None,
                    });
                    return Err(e);
                }
            }
            Ok(())
        } else if first & 0xe0 == 0x20 {
            // Dynamic table size update.
            let n = int(b, 5)?;
            if self.set_max(n) {
                Ok(())
            } else {
                Err(HpackError::SizeUpdate)
            }
        } else {
            // Literal: with incremental indexing (01), without (0000), never indexed (0001).
            let (prefix, index) = if first & 0xc0 == 0x40 {
                (6, true)
            } else {
                (4, false)
            };
            let i = int(b, prefix)?;
            let mut err = None;
            let name: Option<String> = if i == 0 {
                Some(string(b)?)
            } else {
                match self.lookup(i) {
                    Ok((n, _)) => n.map(Into::into),
                    Err(e) => {
                        err = Some(e);
                        None
                    }
                }
            };
            let value = string(b)?;
            if index {
                // Size of an unknown name is unknown: charge the lower bound (see module docs).
                let size = name.as_ref().map_or(0, |n| n.len()) + value.len() + ENTRY_OVERHEAD;
                self.insert(name.as_deref(), Some(&value), size);
            }
            out.fields.push(Field {
                name,
                value: Some(value),
            });
            match err {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 5.1); consumes its bytes.
fn int(b: &mut &[u8], n: u8) -> Result<usize, HpackError> {
    let (&first, rest) = b.split_first().ok_or(HpackError::Truncated)?;
    let max = (1usize << n) - 1;
    let mut v = (first as usize) & max;
    *b = rest;
    if v < max {
        return Ok(v);
    }
    let mut shift = 0u32;
    loop {
        let (&c, rest) = b.split_first().ok_or(HpackError::Truncated)?;
        *b = rest;
        // Past 28 bits of continuation the value is beyond any size we accept.
        if shift > 28 {
            return Err(HpackError::Truncated);
        }
        v += ((c & 0x7f) as usize) << shift;
        shift += 7;
        if c & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// An HPACK string literal (RFC 7541 5.2), Huffman-decoded when flagged; lossily UTF-8.
fn string(b: &mut &[u8]) -> Result<String, HpackError> {
    let huff = b.first().ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = int(b, 7)?;
    if len > b.len() {
        return Err(HpackError::Truncated);
    }
    let (s, rest) = b.split_at(len);
    *b = rest;
    let bytes = if huff { huffman_decode(s)? } else { s.to_vec() };
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The canonical-code tables derived from [`CODES`]: per bit length, the first code and the
/// index into `SYMS` of its symbol; symbols sorted by (length, code).
struct Canon {
    first: [u32; 31],
    count: [u32; 31],
    start: [u16; 31],
    syms: [u16; 257],
}

const fn canon() -> Canon {
    let mut c = Canon {
        first: [0; 31],
        count: [0; 31],
        start: [0; 31],
        syms: [0; 257],
    };
    // Symbols sorted by (length, code): for a canonical code, sorting by code within a length
    // is sorting by symbol, so counting per length and walking symbols in order suffices.
    let mut len = 0;
    let mut k = 0u16;
    while len < 31 {
        c.start[len] = k;
        let mut s = 0;
        let mut min = u32::MAX;
        while s < 257 {
            if CODES[s].0 as usize == len {
                c.syms[k as usize] = s as u16;
                k += 1;
                c.count[len] += 1;
                if CODES[s].1 < min {
                    min = CODES[s].1;
                }
            }
            s += 1;
        }
        c.first[len] = if c.count[len] > 0 { min } else { 0 };
        len += 1;
    }
    c
}

static CANON: Canon = canon();

/// Decodes a Huffman-coded string (RFC 7541 5.2): padding must be at most 7 one-bits.
pub fn huffman_decode(s: &[u8]) -> Result<Vec<u8>, HpackError> {
    let c = &CANON;
    let mut out = Vec::with_capacity(s.len() * 8 / 5);
    let mut code: u32 = 0;
    let mut len: usize = 0;
    for &byte in s {
        for i in (0..8).rev() {
            code = (code << 1) | ((byte >> i) & 1) as u32;
            len += 1;
            if len > 30 {
                return Err(HpackError::Huffman);
            }
            let n = c.count[len];
            if n > 0 {
                let d = code.wrapping_sub(c.first[len]);
                if code >= c.first[len] && d < n {
                    let sym = c.syms[(c.start[len] as u32 + d) as usize];
                    if sym == 256 {
                        return Err(HpackError::Huffman);
                    }
                    out.push(sym as u8);
                    code = 0;
                    len = 0;
                }
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (a prefix of EOS).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HpackError::Huffman);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn pairs(b: &Block) -> Vec<(String, String)> {
        b.fields
            .iter()
            .map(|f| {
                (
                    f.name.clone().unwrap_or_else(|| "?".into()),
                    f.value.clone().unwrap_or_else(|| "?".into()),
                )
            })
            .collect()
    }

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn rfc_c4_requests_with_huffman() {
        // RFC 7541 C.4.1 - C.4.3.
        let mut d = HpackDecoder::new(65536, false);
        let b = d.decode(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"), 100);
        assert!(b.complete());
        assert_eq!(
            pairs(&b),
            p(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ])
        );
        let b = d.decode(&hex("8286 84be 5886 a8eb 1064 9cbf"), 100);
        assert_eq!(
            pairs(&b),
            p(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        let b = d.decode(
            &hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
            100,
        );
        assert_eq!(
            pairs(&b),
            p(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(d.size, 164);
    }

    #[test]
    fn rfc_c5_responses_with_eviction() {
        // RFC 7541 C.5: table size 256, evictions.
        let mut d = HpackDecoder::new(65536, false);
        d.set_max(256);
        let b1 = hex(
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
             6c65 2e63 6f6d",
        );
        let b = d.decode(&b1, 100);
        assert!(b.complete());
        assert_eq!(b.fields[0].value.as_deref(), Some("302"));
        let b = d.decode(&hex("4803 3330 37c1 c0bf"), 100);
        assert!(b.complete(), "{b:?}");
        assert_eq!(
            pairs(&b),
            p(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com")
            ])
        );
        assert_eq!(d.size, 222);
    }

    #[test]
    fn unknown_index_after_loss_is_reported_and_table_recovers() {
        let mut d = HpackDecoder::new(65536, true);
        // :method GET (static), indexed 62 (unknown), literal with incremental indexing and
        // indexed name 62 (unknown name) value "v".
        let b = d.decode(&[0x82, 0xbe, 0x40 | 62, 0x01, b'v'], 100);
        assert_eq!(
            b.errors,
            vec![HpackError::UnknownIndex, HpackError::UnknownIndex]
        );
        assert_eq!(b.fields[0].value.as_deref(), Some("GET"));
        assert_eq!(b.fields[1].name, None);
        assert_eq!(b.fields[2].name, None);
        assert_eq!(b.fields[2].value.as_deref(), Some("v"));
        // The placeholder was inserted: a new-name literal now lands at 62, the placeholder at 63.
        let b = d.decode(&[0x40, 0x01, b'k', 0x01, b'x', 0xbe, 0xbf], 100);
        assert_eq!(b.fields[1].name.as_deref(), Some("k"));
        assert_eq!(b.fields[2].value.as_deref(), Some("v"));
        assert_eq!(b.fields[2].name, None);
        // Past the known entries: still unknown, not fatal.
        let b = d.decode(&[0xc0], 100);
        assert_eq!(b.errors, vec![HpackError::UnknownIndex]);
    }

    #[test]
    fn bad_index_without_loss_and_truncation() {
        let mut d = HpackDecoder::new(65536, false);
        assert_eq!(d.decode(&[0xbe], 10).errors, vec![HpackError::BadIndex]);
        assert_eq!(d.decode(&[0x80], 10).errors, vec![HpackError::BadIndex]);
        let b = d.decode(&[0x40, 0x05, b'a'], 10);
        assert_eq!(b.errors, vec![HpackError::Truncated]);
        assert!(d.lost());
    }

    #[test]
    fn hard_cap_bounds_the_table() {
        let mut d = HpackDecoder::new(100, false);
        // Size update to 1 MiB: clamped and reported.
        let b = d.decode(&[0x3f, 0xe1, 0xff, 0x3f], 10);
        assert_eq!(b.errors, vec![HpackError::SizeUpdate]);
        for i in 0..50u8 {
            d.decode(&[0x40, 0x01, b'a' + (i % 26), 0x02, b'x', b'y'], 10);
            assert!(d.size <= 100);
        }
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn huffman_round_trip_of_rfc_examples() {
        assert_eq!(
            huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")).unwrap(),
            b"www.example.com"
        );
        assert_eq!(huffman_decode(&hex("a8eb 1064 9cbf")).unwrap(), b"no-cache");
        // All-zero padding is invalid.
        assert!(huffman_decode(&[0x00]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut d = HpackDecoder::new(4096, false);
            let _ = d.decode(&b, 64);
            let _ = d.decode(&b, 64);
            proptest::prop_assert!(d.size <= 4096);
        }
    }
}
