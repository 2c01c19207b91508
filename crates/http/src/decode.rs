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

/// What an allocator spends per heap block beyond the bytes asked for (glibc: an 8-byte
/// header, 16-byte granules), so that charges match what is really allocated.
pub(crate) const ALLOC_OVERHEAD: usize = 16;

/// Bytes a heap block of `cap` bytes really takes (0: no block).
pub(crate) fn heap_block(cap: usize) -> usize {
    if cap == 0 {
        0
    } else {
        cap + ALLOC_OVERHEAD
    }
}

/// Largest growth of a capped buffer at once (see [`extend_capped`]).
pub(crate) const GROWTH_STEP: usize = 64 * 1024;

/// Appends `bytes` to `v` without letting its capacity pass `cap` (when `v.len() +
/// bytes.len() <= cap`): growth doubles as usual up to [`GROWTH_STEP`], then goes by that step,
/// and never past the cap. A capped buffer thus never holds up to twice its cap, and one
/// segment grows a buffer by a bounded amount: the flow table charges growth after the
/// callback that caused it, so this step bounds how far a worker can overshoot its budget.
pub(crate) fn extend_capped(v: &mut Vec<u8>, bytes: &[u8], cap: usize) {
    let need = v.len() + bytes.len();
    if need > v.capacity() {
        let grown = v.capacity() + v.capacity().clamp(16, GROWTH_STEP);
        let target = need.max(grown).min(cap.max(need));
        v.reserve_exact(target - v.len());
    }
    v.extend_from_slice(bytes);
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
        extend_capped(&mut self.buf, &b[..n], self.cap);
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

/// What an inflater holds beside its output: flate2's 32 KiB input buffer and miniz_oxide's
/// state (32 KiB window plus tables). Checked against a counting allocator by the http tests.
const INFLATE_STATE: usize = 80 * 1024;
/// Brotli beside its ring buffer (which is at most the stream's window, read from the stream's
/// first byte): tables and the 4 KiB writer buffer.
const BROTLI_STATE: usize = 64 * 1024;
/// Zstd windows are capped at 2^ZSTD_WINDOW_LOG (8 MiB, the limit RFC 9659 sets for HTTP).
const ZSTD_WINDOW_LOG: u32 = 23;
/// Zstd beside its window: the decompression context.
const ZSTD_STATE: usize = 256 * 1024;

/// The window a brotli stream declares in its first byte (RFC 7932 9.1), the most its ring
/// buffer takes; `None` for the large-window extension (not enabled: the stream fails).
fn brotli_window(first: u8) -> Option<usize> {
    let wbits = if first & 1 == 0 {
        16
    } else if (first >> 1) & 7 != 0 {
        17 + ((first >> 1) & 7) as u32
    } else {
        match (first >> 4) & 7 {
            0 => 17,
            1 => return None,
            m => 8 + m as u32,
        }
    };
    Some(1 << wbits)
}

/// The window a zstd frame header declares (RFC 8878 3.1.1.1), when `head` holds enough of it.
fn zstd_window(head: &[u8]) -> Option<usize> {
    if head.len() < 6 || head[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
        return None;
    }
    let fhd = head[4];
    if fhd & 0x20 != 0 {
        // Single segment: the window is the content size, whose field comes after a
        // dictionary id; not worth parsing here (the cap applies).
        return None;
    }
    let wd = head[5];
    let base = 1usize << (10 + (wd >> 3) as u32);
    Some(base + base / 8 * (wd & 7) as usize)
}

/// Decodes a whole captured body in one go, producing at most `cap` bytes; `complete` says
/// whether `data` is the entire body (otherwise a stream that stops early is `InputCut`).
///
/// This is what redaction uses to inspect content-coded bodies: it decodes exactly the bytes
/// that will be emitted, so whatever a reader could decode from the record was inspected.
pub fn decode_all(coding: Coding, data: &[u8], cap: usize, complete: bool) -> (Vec<u8>, DecodeEnd) {
    // brotli's and zstd's write-side decoders hold back output of a stream that stops early
    // (brotli_decompressor's writer lost 3 KB of an 11 KB body cut one byte short, found by
    // the `no_leak` property test), while their read-side decoders, which is what a reader
    // of the record uses, hand it over. Redaction must see everything a reader can decode,
    // so these two decode through their readers here.
    match coding {
        Coding::Brotli => {
            return read_all(
                brotli_decompressor::Decompressor::new(data, 4096),
                cap,
                complete,
            )
        }
        Coding::Zstd => {
            return match zstd::stream::read::Decoder::with_buffer(data) {
                Ok(d) => read_all(d, cap, complete),
                Err(_) => (Vec::new(), DecodeEnd::Error),
            }
        }
        Coding::Gzip | Coding::Deflate => {}
    }
    let Some(mut d) = Decoder::new(coding, cap) else {
        return (Vec::new(), DecodeEnd::Error);
    };
    d.write(data);
    d.finish(complete)
}

/// Drains a read-side decoder into at most `cap` bytes (see [`decode_all`]).
fn read_all(mut r: impl std::io::Read, cap: usize, complete: bool) -> (Vec<u8>, DecodeEnd) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => {
                let end = if complete {
                    DecodeEnd::Ok
                } else {
                    DecodeEnd::InputCut
                };
                return (out, end);
            }
            Ok(n) => {
                if out.len() + n > cap {
                    out.extend_from_slice(&buf[..cap - out.len()]);
                    return (out, DecodeEnd::Truncated);
                }
                out.extend_from_slice(&buf[..n]);
            }
            // A stream cut short reads as an error at its end: what came before it stands.
            Err(_) if !complete => return (out, DecodeEnd::InputCut),
            Err(_) => return (out, DecodeEnd::Error),
        }
    }
}

/// One streaming decoder with its bounded output.
pub(crate) struct Decoder {
    inner: Inner,
    cap: usize,
    status: Option<DecodeEnd>,
    /// Window the stream declared (its decoder's history buffer), once its first bytes are
    /// seen; the worst case for its coding until then.
    window: usize,
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
            Coding::Zstd => {
                let mut d = zstd::stream::write::Decoder::new(sink).ok()?;
                // A frame may ask for a window of up to 2 GiB; more than HTTP allows is refused
                // (a decode error) rather than allocated.
                d.window_log_max(ZSTD_WINDOW_LOG).ok()?;
                Inner::Zstd(d)
            }
        };
        Some(Decoder {
            inner,
            cap,
            status: None,
            window: match coding {
                Coding::Brotli => 1 << 24,
                Coding::Zstd => 1 << ZSTD_WINDOW_LOG,
                // Inflaters carry their 32 KiB window in INFLATE_STATE.
                Coding::Gzip | Coding::Deflate => 0,
            },
        })
    }

    /// Heap bytes this decoder may hold: its output at capacity, plus a worst case for the
    /// codec's own state (which the codec libraries allocate out of sight).
    pub fn heap_bytes(&self) -> usize {
        let state = match &self.inner {
            Inner::DeflatePending | Inner::Stopped(_) => 0,
            Inner::Gzip(_) | Inner::Zlib(_) | Inner::Raw(_) => INFLATE_STATE,
            Inner::Brotli(_) => BROTLI_STATE + self.window,
            Inner::Zstd(_) => ZSTD_STATE + self.window,
        };
        state + self.sink().map_or(0, |s| heap_block(s.buf.capacity()))
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
        if let (Inner::Brotli(_), true) = (&self.inner, self.window == 1 << 24) {
            // Charged by the window the stream asks for (usually 4 MiB or less), not 16 MiB.
            if let Some(w) = brotli_window(data[0]) {
                self.window = w;
            }
        }
        if let (Inner::Zstd(_), true) = (&self.inner, self.window == 1 << ZSTD_WINDOW_LOG) {
            if let Some(w) = zstd_window(data) {
                self.window = w.min(1 << ZSTD_WINDOW_LOG);
            }
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
    fn declared_windows_are_read_from_the_stream_head() {
        // RFC 7932: lgwin 22 (brotli's default) and 16.
        let mut c = brotli_window_of(22);
        assert_eq!(brotli_window(c.remove(0)), Some(1 << 22));
        assert_eq!(brotli_window(brotli_window_of(16)[0]), Some(1 << 16));
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.write_all(&vec![7u8; 1 << 20]).unwrap();
        let z = e.finish().unwrap();
        // Level 3 without a pledged size: a 2 MiB window.
        assert_eq!(zstd_window(&z), Some(2 << 20));
        assert_eq!(zstd_window(b"not zstd"), None);
    }

    /// The first bytes of a brotli stream with window `lgwin`, built by hand (RFC 7932 9.1).
    fn brotli_window_of(lgwin: u32) -> Vec<u8> {
        match lgwin {
            16 => vec![0],
            18..=24 => vec![1 | (((lgwin - 17) as u8) << 1)],
            17 => vec![1],
            _ => vec![1 | ((lgwin - 8) as u8) << 4],
        }
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
