//! Incremental decoder of chunked transfer coding (RFC 9112 section 7.1).
//!
//! Framing may be split at any byte; data is returned as ranges of the caller's buffer so that
//! body bytes are never copied here.

use crate::stats::ParseError;

/// Longest chunk extension or trailer section accepted; beyond it the framing is rejected so a
/// hostile stream cannot make the parser scan forever without progress on the body.
const MAX_FRAMING_LINE: u32 = 16 * 1024;

/// Largest chunk size accepted (1 TiB). A size that fits in 64 bits is not enough: 16 hex
/// digits (`ffffffffffffffff`) fit, yet such a chunk would swallow everything the connection
/// carries after it (the next request included) while a server that parses sizes as signed
/// 64-bit, or wraps them, sees something else: the disagreement request smuggling needs. No
/// real client sends a single chunk near this size.
pub(crate) const MAX_CHUNK_SIZE: u64 = 1 << 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    SizeWs,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerEndLf,
    Done,
}

/// What one call to [`ChunkDecoder::step`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// Bytes of the input consumed (framing and data).
    pub consumed: usize,
    /// Range of body data within the input, if this step reached chunk data.
    pub data: Option<(usize, usize)>,
    /// The last chunk and trailer section ended.
    pub done: bool,
}

/// State of one chunked body.
#[derive(Clone, Debug)]
pub(crate) struct ChunkDecoder {
    state: State,
    size: u64,
    any_digit: bool,
    remaining: u64,
    line_len: u32,
    /// A line ended with LF alone (tolerated, but a smuggling signal).
    pub bare_lf: bool,
}

impl ChunkDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        ChunkDecoder {
            state: State::Size,
            size: 0,
            any_digit: false,
            remaining: 0,
            line_len: 0,
            bare_lf: false,
        }
    }

    /// True once the whole body, trailers included, has been read.
    #[cfg(test)]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// `len` bytes are missing; true when they fall inside chunk data (the body goes on).
    pub fn gap(&mut self, len: u64) -> bool {
        if self.state == State::Data && len <= self.remaining {
            self.remaining -= len;
            if self.remaining == 0 {
                self.state = State::DataCr;
            }
            true
        } else {
            false
        }
    }

    fn end_size_line(&mut self) {
        if self.size == 0 {
            self.state = State::TrailerStart;
        } else {
            self.remaining = self.size;
            self.state = State::Data;
        }
        self.size = 0;
        self.any_digit = false;
        self.line_len = 0;
    }

    /// Consumes framing up to the next data run, the end of the body, or the end of `buf`.
    pub fn step(&mut self, buf: &[u8]) -> Result<Step, ParseError> {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            match self.state {
                State::Size => {
                    let digit = match b {
                        b'0'..=b'9' => Some(b - b'0'),
                        b'a'..=b'f' => Some(b - b'a' + 10),
                        b'A'..=b'F' => Some(b - b'A' + 10),
                        _ => None,
                    };
                    if let Some(d) = digit {
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(d)))
                            .filter(|&s| s <= MAX_CHUNK_SIZE)
                            .ok_or(ParseError::ChunkSizeOverflow)?;
                        self.any_digit = true;
                    } else if !self.any_digit {
                        return Err(ParseError::BadChunk);
                    } else {
                        match b {
                            b';' => self.state = State::Ext,
                            b' ' | b'\t' => self.state = State::SizeWs,
                            b'\r' => self.state = State::SizeLf,
                            b'\n' => {
                                self.bare_lf = true;
                                self.end_size_line();
                            }
                            _ => return Err(ParseError::BadChunk),
                        }
                    }
                    i += 1;
                }
                State::SizeWs => {
                    match b {
                        b' ' | b'\t' => {}
                        b';' => self.state = State::Ext,
                        b'\r' => self.state = State::SizeLf,
                        b'\n' => {
                            self.bare_lf = true;
                            self.end_size_line();
                        }
                        _ => return Err(ParseError::BadChunk),
                    }
                    i += 1;
                }
                State::Ext | State::TrailerLine => {
                    let rest = &buf[i..];
                    match memchr::memchr(b'\n', rest) {
                        Some(p) => {
                            self.bump_line(p)?;
                            i += p + 1;
                            if self.state == State::Ext {
                                self.end_size_line();
                            } else {
                                self.state = State::TrailerStart;
                            }
                        }
                        None => {
                            self.bump_line(rest.len())?;
                            i = buf.len();
                        }
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ParseError::BadChunk);
                    }
                    i += 1;
                    self.end_size_line();
                }
                State::Data => {
                    let avail = (buf.len() - i) as u64;
                    let n = avail.min(self.remaining) as usize;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Step {
                        consumed: i + n,
                        data: Some((i, i + n)),
                        done: false,
                    });
                }
                State::DataCr => {
                    match b {
                        b'\r' => self.state = State::DataLf,
                        b'\n' => {
                            self.bare_lf = true;
                            self.state = State::Size;
                        }
                        _ => return Err(ParseError::BadChunk),
                    }
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ParseError::BadChunk);
                    }
                    self.state = State::Size;
                    i += 1;
                }
                State::TrailerStart => {
                    match b {
                        b'\r' => self.state = State::TrailerEndLf,
                        b'\n' => {
                            self.bare_lf = true;
                            self.state = State::Done;
                        }
                        _ => self.state = State::TrailerLine,
                    }
                    if self.state != State::TrailerLine {
                        i += 1;
                    }
                }
                State::TrailerEndLf => {
                    if b != b'\n' {
                        return Err(ParseError::BadChunk);
                    }
                    self.state = State::Done;
                    i += 1;
                }
                State::Done => break,
            }
            if self.state == State::Done {
                return Ok(Step {
                    consumed: i,
                    data: None,
                    done: true,
                });
            }
        }
        Ok(Step {
            consumed: i,
            data: None,
            done: self.state == State::Done,
        })
    }

    fn bump_line(&mut self, n: usize) -> Result<(), ParseError> {
        self.line_len = self
            .line_len
            .saturating_add(n.min(u32::MAX as usize) as u32);
        if self.line_len > MAX_FRAMING_LINE {
            return Err(ParseError::BadChunk);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&[u8]]) -> Result<(Vec<u8>, bool, usize), ParseError> {
        let mut d = ChunkDecoder::new();
        let mut out = Vec::new();
        let mut leftover = 0;
        for p in parts {
            let mut pos = 0;
            while pos < p.len() {
                let s = d.step(&p[pos..])?;
                if let Some((a, b)) = s.data {
                    out.extend_from_slice(&p[pos + a..pos + b]);
                }
                pos += s.consumed;
                if s.done {
                    leftover += p.len() - pos;
                    break;
                }
            }
        }
        Ok((out, d.is_done(), leftover))
    }

    #[test]
    fn extensions_and_trailers() {
        let body = b"4;ext=1;q=\"x\"\r\nWiki\r\n5 ; e\r\npedia\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\nNEXT";
        let (out, done, left) = decode(&[body]).unwrap();
        assert_eq!(out, b"Wikipedia");
        assert!(done);
        assert_eq!(left, 4);
    }

    #[test]
    fn split_everywhere() {
        let body: &[u8] = b"a\r\n0123456789\r\n1;x\r\nZ\r\n0\r\nT: v\r\n\r\n";
        for i in 0..=body.len() {
            for j in i..=body.len() {
                let (out, done, _) = decode(&[&body[..i], &body[i..j], &body[j..]]).unwrap();
                assert_eq!(out, b"0123456789Z", "split at {i},{j}");
                assert!(done);
            }
        }
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(
            decode(&[b"10000000000000000\r\n"]).unwrap_err(),
            ParseError::ChunkSizeOverflow
        );
        // Sizes that fit in 64 bits but no real chunk has (they would swallow the stream).
        for size in [
            "ffffffffffffffff",
            "8000000000000000",
            "7fffffffffffffff",
            "10000000001",
        ] {
            assert_eq!(
                decode(&[format!("{size}\r\n").as_bytes()]).unwrap_err(),
                ParseError::ChunkSizeOverflow,
                "{size}"
            );
        }
        // The bound itself is accepted.
        let (_, done, _) = decode(&[b"10000000000\r\nxy"]).unwrap();
        assert!(!done);
        // Leading zeros do not overflow.
        let (_, done, _) = decode(&[b"00000000000000000000000\r\n\r\n"]).unwrap();
        assert!(done);
    }

    #[test]
    fn bad_framing() {
        assert!(decode(&[b"zz\r\n"]).is_err());
        assert!(decode(&[b"3\r\nabcX"]).is_err());
        let mut d = ChunkDecoder::new();
        d.step(b"3\nabc\n0\n\n").unwrap();
        assert!(d.bare_lf);
    }
}
