//! Bounded content decoding (gzip, deflate, br, zstd) for `--decode-content`.
//!
//! Decoders are push-based writers into a bounded sink: once the sink is full the decoder stops,
//! which is what keeps a decompression bomb from costing more than the bound.

use std::io::{self, Write};

/// A content coding (`Content-Encoding`) vxtap knows how to undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` (or `x-gzip`).
    Gzip,
    /// `deflate` (zlib-wrapped or raw).
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
}

impl Coding {
    /// Parses a Content-Encoding value naming exactly one supported coding.
    pub fn from_header(v: &[u8]) -> Option<Coding> {
        let v = trim(v);
        if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") {
            Some(Coding::Gzip)
        } else if v.eq_ignore_ascii_case(b"deflate") {
            Some(Coding::Deflate)
        } else if v.eq_ignore_ascii_case(b"br") {
            Some(Coding::Brotli)
        } else if v.eq_ignore_ascii_case(b"zstd") {
            Some(Coding::Zstd)
        } else {
            None
        }
    }
}

pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(s, |p| p + 1);
    &v[s..e.max(s)]
}

/// A sink that accepts at most `cap` bytes and remembers when it refused some.
#[derive(Debug, Default)]
pub(crate) struct Bounded {
    pub buf: Vec<u8>,
    cap: usize,
    pub full: bool,
}

impl Write for Bounded {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let room = self.cap - self.buf.len();
        if room == 0 && !b.is_empty() {
            self.full = true;
            return Err(io::Error::other("decode bound reached"));
        }
        let n = room.min(b.len());
        self.buf.extend_from_slice(&b[..n]);
        if n < b.len() {
            self.full = true;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Inner {
    /// Deflate waits for its first byte to tell zlib-wrapped from raw streams.
    DeflatePending,
    Gzip(flate2::write::GzDecoder<Bounded>),
    Zlib(flate2::write::ZlibDecoder<Bounded>),
    Raw(flate2::write::DeflateDecoder<Bounded>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Bounded>>),
    Zstd(zstd::stream::write::Decoder<'static, Bounded>),
    /// Stopped: bound reached or error; output kept.
    Stopped(Bounded),
}

/// How a decoding ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeEnd {
    /// The stream decoded completely within the bound.
    Ok,
    /// Decoding stopped at the bound.
    Truncated,
    /// The stream was not valid for its coding.
    Error,
    /// The input itself was incomplete (gap or cut), so the end is unknown.
    InputCut,
}

/// Decodes a whole captured body in one go, producing at most `cap` bytes; `complete` says
/// whether `data` is the entire body (otherwise a stream that stops early is `InputCut`).
///
/// This is what redaction uses to inspect content-coded bodies: it decodes exactly the bytes
/// that will be emitted, so whatever a reader could decode from the record was inspected.
pub fn decode_all(coding: Coding, data: &[u8], cap: usize, complete: bool) -> (Vec<u8>, DecodeEnd) {
    let Some(mut d) = Decoder::new(coding, cap) else {
        return (Vec::new(), DecodeEnd::Error);
    };
    d.write(data);
    d.finish(complete)
}

/// One streaming decoder with its bounded output.
pub(crate) struct Decoder {
    inner: Inner,
    cap: usize,
    status: Option<DecodeEnd>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("status", &self.status)
            .finish()
    }
}

impl Decoder {
    /// A decoder for `coding` producing at most `cap` bytes (None if it cannot be set up).
    pub fn new(coding: Coding, cap: usize) -> Option<Decoder> {
        let sink = Bounded {
            buf: Vec::new(),
            cap,
            full: false,
        };
        let inner = match coding {
            Coding::Gzip => Inner::Gzip(flate2::write::GzDecoder::new(sink)),
            Coding::Deflate => Inner::DeflatePending,
            Coding::Brotli => Inner::Brotli(Box::new(
                brotli_decompressor::DecompressorWriter::new(sink, 4096),
            )),
            Coding::Zstd => Inner::Zstd(zstd::stream::write::Decoder::new(sink).ok()?),
        };
        Some(Decoder {
            inner,
            cap,
            status: None,
        })
    }

    fn sink(&self) -> Option<&Bounded> {
        match &self.inner {
            Inner::DeflatePending => None,
            Inner::Gzip(d) => Some(d.get_ref()),
            Inner::Zlib(d) => Some(d.get_ref()),
            Inner::Raw(d) => Some(d.get_ref()),
            Inner::Brotli(d) => Some(d.get_ref()),
            Inner::Zstd(d) => Some(d.get_ref()),
            Inner::Stopped(b) => Some(b),
        }
    }

    /// Takes the sink as it is: finishing a decoder would try to flush into a full sink.
    fn take_sink(&mut self) -> Bounded {
        match &mut self.inner {
            Inner::DeflatePending => Bounded::default(),
            Inner::Gzip(d) => std::mem::take(d.get_mut()),
            Inner::Zlib(d) => std::mem::take(d.get_mut()),
            Inner::Raw(d) => std::mem::take(d.get_mut()),
            Inner::Brotli(d) => std::mem::take(d.get_mut()),
            Inner::Zstd(d) => std::mem::take(d.get_mut()),
            Inner::Stopped(b) => std::mem::take(b),
        }
    }

    fn stop(&mut self, end: DecodeEnd) {
        let sink = self.take_sink();
        self.inner = Inner::Stopped(sink);
        if self.status.is_none() {
            self.status = Some(end);
        }
    }

    /// Feeds compressed bytes; stops quietly at the bound or on an error.
    pub fn write(&mut self, data: &[u8]) {
        if data.is_empty() || self.status.is_some() {
            return;
        }
        if let Inner::DeflatePending = self.inner {
            let sink = Bounded {
                buf: Vec::new(),
                cap: self.cap,
                full: false,
            };
            // zlib's CMF byte says "deflate, window <= 32K"; raw deflate rarely looks like that.
            self.inner = if data[0] & 0x0f == 8 && data[0] >> 4 <= 7 {
                Inner::Zlib(flate2::write::ZlibDecoder::new(sink))
            } else {
                Inner::Raw(flate2::write::DeflateDecoder::new(sink))
            };
        }
        let r = match &mut self.inner {
            Inner::Gzip(d) => d.write_all(data),
            Inner::Zlib(d) => d.write_all(data),
            Inner::Raw(d) => d.write_all(data),
            Inner::Brotli(d) => d.write_all(data),
            Inner::Zstd(d) => d.write_all(data),
            Inner::DeflatePending | Inner::Stopped(_) => Ok(()),
        };
        let full = self.sink().is_some_and(|s| s.full);
        if full {
            self.stop(DecodeEnd::Truncated);
        } else if r.is_err() {
            self.stop(DecodeEnd::Error);
        }
    }

    /// Ends decoding; `input_complete` says whether every body byte was fed.
    pub fn finish(mut self, input_complete: bool) -> (Vec<u8>, DecodeEnd) {
        if let Some(end) = self.status {
            return (self.take_sink().buf, end);
        }
        // Decoders buffer output internally; flushing it may hit the bound only now.
        let res = match &mut self.inner {
            Inner::DeflatePending | Inner::Stopped(_) => Ok(()),
            Inner::Gzip(d) => d.try_finish(),
            Inner::Zlib(d) => d.try_finish(),
            Inner::Raw(d) => d.try_finish(),
            Inner::Brotli(d) => d.close(),
            Inner::Zstd(d) => d.flush(),
        };
        let sink = self.take_sink();
        let end = if sink.full {
            DecodeEnd::Truncated
        } else if !input_complete {
            DecodeEnd::InputCut
        } else if res.is_err() {
            DecodeEnd::Error
        } else {
            DecodeEnd::Ok
        };
        (sink.buf, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_roundtrip_in_pieces() {
        let z = gz(b"hello hello hello world");
        let mut d = Decoder::new(Coding::Gzip, 1000).unwrap();
        for b in z.chunks(3) {
            d.write(b);
        }
        assert_eq!(
            d.finish(true),
            (b"hello hello hello world".to_vec(), DecodeEnd::Ok)
        );
    }

    #[test]
    fn bomb_stops_at_bound() {
        let z = gz(&vec![0u8; 10 << 20]);
        let mut d = Decoder::new(Coding::Gzip, 4096).unwrap();
        d.write(&z);
        let (out, end) = d.finish(true);
        assert_eq!(out.len(), 4096);
        assert_eq!(end, DecodeEnd::Truncated);
    }

    #[test]
    fn deflate_both_wrappings_and_others() {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"zlib!").unwrap();
        let mut d = Decoder::new(Coding::Deflate, 100).unwrap();
        d.write(&e.finish().unwrap());
        assert_eq!(d.finish(true).0, b"zlib!");
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"raw!").unwrap();
        let mut d = Decoder::new(Coding::Deflate, 100).unwrap();
        d.write(&e.finish().unwrap());
        assert_eq!(d.finish(true).0, b"raw!");
        let z = zstd::stream::encode_all(&b"zstd data"[..], 3).unwrap();
        let mut d = Decoder::new(Coding::Zstd, 100).unwrap();
        d.write(&z);
        assert_eq!(d.finish(true), (b"zstd data".to_vec(), DecodeEnd::Ok));
    }

    #[test]
    fn garbage_is_an_error() {
        let mut d = Decoder::new(Coding::Gzip, 100).unwrap();
        d.write(b"this is not gzip at all");
        assert_eq!(d.finish(true).1, DecodeEnd::Error);
        let mut d = Decoder::new(Coding::Brotli, 100).unwrap();
        d.write(&[0xff; 64]);
        assert_eq!(d.finish(true).1, DecodeEnd::Error);
    }
}
