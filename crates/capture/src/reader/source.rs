//! Where the capture bytes come from, apart from what they mean: a memory map of a plain file
//! (shared with the workers as [`SharedMap`]), a buffer in memory, or a bounded stream for gzip
//! and pipes (refilled in place); releasing pages the walk has passed; and the prefetch hints
//! that keep the walk ahead of memory latency. The parsers in `pcap` and `pcapng` only see the
//! byte window `src.bytes()[start..end]` these maintain.

use super::{CaptureReader, FileFormat, Progress, State};
use crate::error::CaptureError;
use flate2::bufread::MultiGzDecoder;
use memmap2::Mmap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

/// Streaming buffer size; big reads keep syscalls and gzip calls per packet negligible.
pub(super) const STREAM_BUF: usize = 1 << 20;

/// Counts bytes pulled from the underlying input so gzip progress can be shown in file bytes.
pub(super) struct Counting {
    pub(super) inner: Box<dyn Read + Send>,
    pub(super) count: u64,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

pub(super) enum Input {
    Plain(BufReader<Counting>),
    Gz(Box<MultiGzDecoder<BufReader<Counting>>>),
}

impl Input {
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Plain(r) => r.read(buf),
            Input::Gz(r) => r.read(buf),
        }
    }

    pub(super) fn raw_count(&self) -> u64 {
        match self {
            Input::Plain(r) => r.get_ref().count - r.buffer().len() as u64,
            Input::Gz(r) => r.get_ref().get_ref().count,
        }
    }
}

pub(super) struct Stream {
    pub(super) input: Input,
    pub(super) buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    pub(super) base: u64,
    pub(super) eof: bool,
    pub(super) total: Option<u64>,
}

/// A read-only mapping of a capture file that other threads may hold on to: a reading thread
/// hands workers the offsets of payloads inside it instead of copying them.
#[derive(Clone, Debug)]
pub struct SharedMap(Arc<Mmap>);

impl SharedMap {
    /// The whole file.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Where `part` starts in the file, when `part` lies inside it.
    #[inline]
    pub fn offset_of(&self, part: &[u8]) -> Option<usize> {
        let whole = self.0.as_ptr_range();
        let range = part.as_ptr_range();
        (range.start >= whole.start && range.end <= whole.end)
            .then(|| range.start as usize - whole.start as usize)
    }

    /// True when both are the same mapping.
    pub fn same(&self, other: &SharedMap) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

pub(super) enum Source {
    Map(Arc<Mmap>),
    Vec(Vec<u8>),
    Stream(Box<Stream>),
}

impl Source {
    #[inline(always)]
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Source::Map(m) => &m[..],
            Source::Vec(v) => v,
            Source::Stream(s) => &s.buf,
        }
    }
}

/// How far reading runs ahead of the last release of a mapped file's consumed pages.
pub(super) const RELEASE_STEP: usize = 8 << 20;

/// How far ahead `prefetch_ahead` reaches, and the lines it touches there. Records are ~1 kB
/// apart, so each record header is a cache miss the hardware prefetcher cannot predict, and a
/// walk that only prefetches the next header is bound by memory latency (the C reference walks
/// at ~10 Mpps for that reason). Two lines half a kilobyte apart, 8 KiB ahead, start enough
/// streams that the headers are in cache when the walk gets there: measured on the 1 GB
/// workload, a bare header walk goes from 10 to 17 Mpps (4 KiB ahead: 12; one line: 13;
/// eight lines: 16, the extra requests cost more than they save).
pub(super) const PREFETCH_AHEAD: [usize; 2] = [8192, 8192 + 512];

/// Starts loading the first `lines` cache lines of `bytes` from `at` on (a hint; out-of-range
/// lines are skipped). For consumers of lent payloads: a worker reading segments that another
/// thread decoded gets no help from that thread's prefetching.
#[inline(always)]
pub fn prefetch_lines(bytes: &[u8], at: usize, lines: usize) {
    for k in 0..lines {
        if let Some(b) = bytes.get(at + k * 64) {
            prefetch_line(b);
        }
    }
}

/// Starts loading the cache lines that hold `value`, `lines` of them from its start: for a
/// slot about to be written that another core touched last (recycled batches).
#[inline(always)]
pub fn prefetch_value<T>(value: &T, lines: usize) {
    let start = (value as *const T).cast::<u8>();
    for k in 0..lines {
        // A hint only: the address is never dereferenced, so it may lie past `value`.
        prefetch_line(start.wrapping_add(k * 64));
    }
}

#[inline(always)]
pub(super) fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint that never faults, whatever the address; SSE is part of the
    // x86_64 baseline.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Starts loading the next record header and the frame headers after it (what a decoder reads
/// right after), and lines further ahead (see [`PREFETCH_AHEAD`]).
#[inline(always)]
pub(super) fn prefetch_ahead(bytes: &[u8], next: usize) {
    for at in [
        next,
        next + 64,
        next + PREFETCH_AHEAD[0],
        next + PREFETCH_AHEAD[1],
    ] {
        if let Some(b) = bytes.get(at) {
            prefetch_line(b);
        }
    }
}

pub(super) fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

impl CaptureReader {
    /// Opens a capture file (memory-mapped; gzip streamed), or stdin when `path` is `-`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref();
        if path == Path::new("-") {
            return Self::from_reader(path, io::stdin());
        }
        let name: Arc<Path> = Arc::from(path);
        let open_err = |source| CaptureError::Open {
            path: name.clone(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        let mut head = [0u8; 2];
        let mut got = 0;
        if meta.is_file() && meta.len() >= 2 {
            // Peek with pread so the file position stays at 0 for the streaming decoder.
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileExt;
                got = file.read_at(&mut head, 0).map_err(open_err)?;
            }
        }
        if meta.is_file() && meta.len() > 0 && !(got == 2 && is_gzip(&head)) {
            // SAFETY: the map is read-only and private to this reader. Another process
            // truncating or rewriting the file while we read is the documented hazard of
            // mmap; captures being replayed are not expected to change underneath us.
            let map = unsafe { Mmap::map(&file) }.map_err(open_err)?;
            #[cfg(unix)]
            let _ = map.advise(memmap2::Advice::Sequential);
            return Self::with_source(name, Source::Map(Arc::new(map)));
        }
        let total = meta.is_file().then_some(meta.len());
        if meta.is_file() && meta.len() == 0 {
            return Self::with_source(name, Source::Vec(Vec::new()));
        }
        // Non-regular files (pipes, /dev/stdin) and gzip are streamed.
        Self::stream(name, Box::new(file), total)
    }

    /// Reads a capture (plain or gzip) from any reader, streaming through a bounded buffer.
    pub fn from_reader(
        name: impl AsRef<Path>,
        reader: impl Read + Send + 'static,
    ) -> Result<Self, CaptureError> {
        Self::stream(Arc::from(name.as_ref()), Box::new(reader), None)
    }

    /// Reads a capture held in memory (gzip is decompressed as a stream).
    pub fn from_bytes(name: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Self, CaptureError> {
        let name: Arc<Path> = Arc::from(name.as_ref());
        if is_gzip(&bytes) {
            let total = Some(bytes.len() as u64);
            return Self::stream(name, Box::new(io::Cursor::new(bytes)), total);
        }
        Self::with_source(name, Source::Vec(bytes))
    }

    pub(super) fn stream(
        name: Arc<Path>,
        reader: Box<dyn Read + Send>,
        total: Option<u64>,
    ) -> Result<Self, CaptureError> {
        // Peek two bytes for the gzip magic, looping because a pipe may hand out one byte,
        // then put them back in front of the stream.
        let mut reader = reader;
        let mut head = [0u8; 2];
        let mut got = 0;
        while got < 2 {
            match reader.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Read {
                        path: name,
                        offset: got as u64,
                        source,
                    });
                }
            }
        }
        let gz = got == 2 && is_gzip(&head);
        let inner: Box<dyn Read + Send> =
            Box::new(io::Cursor::new(head).take(got as u64).chain(reader));
        let br = BufReader::with_capacity(64 * 1024, Counting { inner, count: 0 });
        let input = if gz {
            Input::Gz(Box::new(MultiGzDecoder::new(br)))
        } else {
            Input::Plain(br)
        };
        let stream = Stream {
            input,
            buf: vec![0; STREAM_BUF],
            base: 0,
            eof: false,
            total,
        };
        Self::with_source(name, Source::Stream(Box::new(stream)))
    }

    pub(super) fn with_source(path: Arc<Path>, src: Source) -> Result<Self, CaptureError> {
        let end = match &src {
            Source::Stream(_) => 0,
            other => other.bytes().len(),
        };
        let mut r = CaptureReader {
            path,
            src,
            start: 0,
            released: 0,
            manual_release: false,
            end,
            state: State::Done,
            format: FileFormat::Pcapng,
        };
        r.read_file_header()?;
        Ok(r)
    }

    /// The mapping of a plain file (`None` for gzip, pipes and memory): packets' data are
    /// slices of it, so their offsets in it can stand for them across threads.
    pub fn shared_map(&self) -> Option<SharedMap> {
        match &self.src {
            Source::Map(m) => Some(SharedMap(m.clone())),
            _ => None,
        }
    }

    /// Offset of the next unread byte in the (decompressed) capture stream.
    pub fn position(&self) -> u64 {
        self.base() + self.start as u64
    }

    /// Input bytes consumed and the input size, for a progress bar.
    pub fn progress(&self) -> Progress {
        match &self.src {
            Source::Map(m) => Progress {
                done: self.start as u64,
                total: Some(m.len() as u64),
            },
            Source::Vec(v) => Progress {
                done: self.start as u64,
                total: Some(v.len() as u64),
            },
            Source::Stream(s) => match &s.input {
                Input::Gz(_) => Progress {
                    done: s.input.raw_count(),
                    total: s.total,
                },
                Input::Plain(_) => Progress {
                    done: self.position(),
                    total: s.total,
                },
            },
        }
    }

    pub(super) fn base(&self) -> u64 {
        match &self.src {
            Source::Stream(s) => s.base,
            _ => 0,
        }
    }

    /// Makes at least `need` unread bytes available if the input has them; false at EOF.
    #[inline(always)]
    pub(super) fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        self.refill(need)
    }

    #[cold]
    pub(super) fn refill(&mut self, need: usize) -> Result<bool, CaptureError> {
        let Source::Stream(s) = &mut self.src else {
            return Ok(false);
        };
        if s.eof {
            return Ok(false);
        }
        if self.start > 0 {
            s.buf.copy_within(self.start..self.end, 0);
            s.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if need > s.buf.len() {
            // Callers bound `need` by MAX_BLOCK, so the buffer never exceeds ~16 MiB.
            s.buf.resize(need.next_power_of_two(), 0);
        }
        while self.end < need {
            match s.input.read(&mut s.buf[self.end..]) {
                Ok(0) => {
                    s.eof = true;
                    return Ok(false);
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    s.eof = true;
                    return Err(CaptureError::Read {
                        path: self.path.clone(),
                        offset: s.base + self.end as u64,
                        source,
                    });
                }
            }
        }
        Ok(true)
    }

    /// Drops the pages of a mapped file that were already read from this process's resident
    /// set. Without it a replay's RSS grows to the file's size (the page cache stays shared and
    /// warm; only our mapping lets go), which breaks the memory bound users configure.
    #[cold]
    pub(super) fn release_to(&mut self, offset: usize) {
        let Source::Map(m) = &self.src else {
            self.released = usize::MAX / 2;
            return;
        };
        let upto = offset.min(self.start) & !(4096 - 1);
        if upto > self.released {
            // SAFETY: DONTNEED on a private read-only file mapping only drops our page-table
            // entries; a later access faults the same file bytes back in. The mapping is never
            // written, so there is no private copy that DONTNEED could discard: slices into
            // the released range (a worker holding a `SharedMap`) stay valid and unchanged.
            let _ = unsafe {
                m.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    self.released,
                    upto - self.released,
                )
            };
            self.released = upto;
        }
    }

    /// Stops releasing consumed pages on its own: a caller that lends offsets into the mapping
    /// ([`CaptureReader::shared_map`]) to other threads calls
    /// [`CaptureReader::release_before`] with the oldest offset still in use instead.
    pub fn set_manual_release(&mut self) {
        self.manual_release = true;
    }

    /// Releases the mapped pages before `offset` (never past what was read), once that frees at
    /// least the release step: the manual counterpart of what `next_packet` does by default.
    #[inline]
    pub fn release_before(&mut self, offset: usize) {
        if offset.min(self.start) >= self.released + RELEASE_STEP {
            self.release_to(offset);
        }
    }
}
