//! Reading pcap and pcapng captures from files, stdin or memory.
//!
//! Plain files are memory-mapped and packets are slices of the map. Gzip input and pipes are
//! streamed through one bounded, reused buffer. Either way a packet borrows the reader, so the
//! API is a lending `next_packet` rather than `Iterator`, and nothing is allocated per packet.
//!
//! Classic pcap is parsed by hand: a record is a fixed 16-byte header, and walking it directly
//! over the map costs a few nanoseconds per packet where pcap-parser's generic nom path and its
//! buffered reader would add copies and error plumbing. pcapng uses pcap-parser for the rare,
//! option-heavy blocks (section and interface headers); packet blocks (EPB, SPB, PB) are
//! hand-parsed too because pcap-parser collects their options into a `Vec` (an allocation per
//! packet whenever a packet carries a comment, which our own writer does).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;
use memmap2::Mmap;
use pcap_parser::pcapng::{
    parse_interfacedescriptionblock_be, parse_interfacedescriptionblock_le,
    parse_sectionheaderblock, OptionCode,
};

use crate::error::{CaptureError, Damage};

/// libpcap's MAXIMUM_SNAPLEN: the largest record any ordinary capture holds.
pub const MAX_SNAPLEN: u32 = 262_144;
/// Largest pcapng block (and pcap record, whatever its header's snaplen says) accepted; bounds
/// the streaming buffer, so a garbage length is reported as damage instead of allocated.
pub const MAX_BLOCK: u32 = 16 << 20;
/// Interfaces tracked per pcapng section; bounds memory against a flood of IDBs.
const MAX_INTERFACES: usize = 1 << 16;
/// Streaming buffer size; big reads keep syscalls and gzip calls per packet negligible.
const STREAM_BUF: usize = 1 << 20;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BOM: u32 = 0x1A2B_3C4D;

/// One captured packet, borrowed from the reader until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Capture time in nanoseconds since the Unix epoch (0 for pcapng Simple Packet Blocks).
    pub ts_ns: u64,
    /// The pcap `LINKTYPE_*` number of `data` (1 = Ethernet, 0 = BSD loopback, 113 = SLL ...).
    pub linktype: u32,
    /// The captured bytes, possibly shorter than `orig_len`.
    pub data: &'a [u8],
    /// The packet's length on the wire.
    pub orig_len: u32,
    /// pcapng interface id within its section (0 for classic pcap).
    pub interface: u32,
    /// The pcapng packet's first `opt_comment` (how `vxtap decap` keeps the VNI: `vni=123`).
    pub comment: Option<&'a [u8]>,
}

/// The container format detected from the magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Classic libpcap format.
    Pcap {
        /// Timestamps have nanosecond (not microsecond) fractions.
        nanos: bool,
        /// The file was written big-endian relative to its magic as read little-endian.
        big_endian: bool,
    },
    /// pcapng (sections may differ in byte order).
    Pcapng,
}

/// Bytes consumed so far and the total, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes consumed (compressed bytes for gzip input).
    pub done: u64,
    /// Input size when known (not for pipes).
    pub total: Option<u64>,
}

/// Counts bytes pulled from the underlying input so gzip progress can be shown in file bytes.
struct Counting {
    inner: Box<dyn Read + Send>,
    count: u64,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

enum Input {
    Plain(BufReader<Counting>),
    Gz(Box<MultiGzDecoder<BufReader<Counting>>>),
}

impl Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Plain(r) => r.read(buf),
            Input::Gz(r) => r.read(buf),
        }
    }

    fn raw_count(&self) -> u64 {
        match self {
            Input::Plain(r) => r.get_ref().count - r.buffer().len() as u64,
            Input::Gz(r) => r.get_ref().get_ref().count,
        }
    }
}

struct Stream {
    input: Input,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    total: Option<u64>,
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

enum Source {
    Map(Arc<Mmap>),
    Vec(Vec<u8>),
    Stream(Box<Stream>),
}

impl Source {
    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Map(m) => &m[..],
            Source::Vec(v) => v,
            Source::Stream(s) => &s.buf,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct PcapFmt {
    swapped: bool,
    nanos: bool,
    linktype: u32,
    hdr_len: usize,
    max_len: u32,
}

/// Converts an interface's timestamp units to nanoseconds.
#[derive(Debug, Clone, Copy)]
enum TsConv {
    Mul(u64),
    Div(u64),
    /// Units per second that neither divide nor are divided by 10^9 (e.g. 2^-n resolutions).
    Ratio(u64),
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: u32,
    snaplen: u32,
    conv: TsConv,
    offset_ns: i128,
}

impl Iface {
    #[inline]
    fn ts_ns(&self, ts: u64) -> u64 {
        let ns: i128 = match self.conv {
            TsConv::Mul(m) => ts as i128 * m as i128,
            TsConv::Div(d) => (ts / d) as i128,
            TsConv::Ratio(r) => (ts as i128 * 1_000_000_000) / r as i128,
        };
        (ns + self.offset_ns).clamp(0, u64::MAX as i128) as u64
    }
}

enum State {
    Pcap(PcapFmt),
    Pcapng { be: bool, ifaces: Vec<Iface> },
    Done,
}

/// Reads packets from a pcap or pcapng capture without allocating per packet.
///
/// After the end or after an error `next_packet` returns `Ok(None)` forever.
pub struct CaptureReader {
    path: Arc<Path>,
    src: Source,
    /// Window of unread bytes in `src.bytes()`.
    start: usize,
    end: usize,
    state: State,
    format: FileFormat,
    /// Bytes of a mapped file already handed back to the kernel (see `release_to`).
    released: usize,
    /// Pages are released only through `release_before`.
    manual_release: bool,
}

/// How far reading runs ahead of the last release of a mapped file's consumed pages.
const RELEASE_STEP: usize = 8 << 20;

#[inline(always)]
fn rd16(b: &[u8], at: usize, be: bool) -> u16 {
    match b.get(at..at + 2).and_then(|s| <[u8; 2]>::try_from(s).ok()) {
        Some(a) if be => u16::from_be_bytes(a),
        Some(a) => u16::from_le_bytes(a),
        None => 0,
    }
}

#[inline(always)]
fn rd32(b: &[u8], at: usize, be: bool) -> u32 {
    match b.get(at..at + 4).and_then(|s| <[u8; 4]>::try_from(s).ok()) {
        Some(a) if be => u32::from_be_bytes(a),
        Some(a) => u32::from_le_bytes(a),
        None => 0,
    }
}

/// How far ahead `prefetch_ahead` reaches, and the lines it touches there. Records are ~1 kB
/// apart, so each record header is a cache miss the hardware prefetcher cannot predict, and a
/// walk that only prefetches the next header is bound by memory latency (the C reference walks
/// at ~10 Mpps for that reason). Two lines half a kilobyte apart, 8 KiB ahead, start enough
/// streams that the headers are in cache when the walk gets there: measured on the 1 GB
/// workload, a bare header walk goes from 10 to 17 Mpps (4 KiB ahead: 12; one line: 13;
/// eight lines: 16, the extra requests cost more than they save).
const PREFETCH_AHEAD: [usize; 2] = [8192, 8192 + 512];

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
fn prefetch_line(p: *const u8) {
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
fn prefetch_ahead(bytes: &[u8], next: usize) {
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

fn is_gzip(head: &[u8]) -> bool {
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

    fn stream(
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

    fn with_source(path: Arc<Path>, src: Source) -> Result<Self, CaptureError> {
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

    /// The input's name, as used in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detected container format.
    pub fn format(&self) -> FileFormat {
        self.format
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

    fn base(&self) -> u64 {
        match &self.src {
            Source::Stream(s) => s.base,
            _ => 0,
        }
    }

    /// Makes at least `need` unread bytes available if the input has them; false at EOF.
    #[inline(always)]
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        self.refill(need)
    }

    #[cold]
    fn refill(&mut self, need: usize) -> Result<bool, CaptureError> {
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

    fn truncated(&mut self, what: &'static str, needed: usize) -> CaptureError {
        self.state = State::Done;
        CaptureError::Truncated {
            path: self.path.clone(),
            offset: self.position(),
            what,
            needed: needed as u64,
            available: (self.end - self.start) as u64,
        }
    }

    fn corrupt(&mut self, what: &'static str, damage: Damage) -> CaptureError {
        self.state = State::Done;
        CaptureError::Corrupt {
            path: self.path.clone(),
            offset: self.position(),
            what,
            damage,
        }
    }

    fn read_file_header(&mut self) -> Result<(), CaptureError> {
        if !self.fill(4)? {
            let magic = self.src.bytes()[self.start..self.end].to_vec();
            return Err(CaptureError::UnknownFormat {
                path: self.path.clone(),
                magic,
            });
        }
        let b = &self.src.bytes()[self.start..];
        let magic = rd32(b, 0, false);
        let (swapped, nanos, hdr_len) = match magic {
            0xA1B2_C3D4 => (false, false, 16),
            0xD4C3_B2A1 => (true, false, 16),
            0xA1B2_3C4D => (false, true, 16),
            0x4D3C_B2A1 => (true, true, 16),
            // Kuznetzov's patched libpcap: 8 extra bytes (ifindex, protocol, type) per record.
            0xA1B2_CD34 => (false, false, 24),
            0x34CD_B2A1 => (true, false, 24),
            SHB => {
                self.format = FileFormat::Pcapng;
                self.state = State::Pcapng {
                    be: false,
                    ifaces: Vec::new(),
                };
                if !self.fill(12)? {
                    return Err(self.truncated("pcapng section header", 12));
                }
                return Ok(());
            }
            _ => {
                let magic = b[..4].to_vec();
                return Err(CaptureError::UnknownFormat {
                    path: self.path.clone(),
                    magic,
                });
            }
        };
        if !self.fill(24)? {
            return Err(self.truncated("pcap file header", 24));
        }
        let b = &self.src.bytes()[self.start..];
        let (major, minor) = (rd16(b, 4, swapped), rd16(b, 6, swapped));
        let snaplen = rd32(b, 16, swapped);
        // libpcap keeps FCS-length flags in the top bits of the link type.
        let linktype = rd32(b, 20, swapped) & 0x03FF_FFFF;
        if major != 2 {
            return Err(self.corrupt(
                "pcap file header",
                Damage::UnsupportedVersion { major, minor },
            ));
        }
        self.format = FileFormat::Pcap {
            nanos,
            big_endian: swapped,
        };
        let max_len = MAX_SNAPLEN.max(snaplen.min(MAX_BLOCK));
        self.state = State::Pcap(PcapFmt {
            swapped,
            nanos,
            linktype,
            hdr_len,
            max_len,
        });
        self.start += 24;
        Ok(())
    }

    /// The next packet, `Ok(None)` at the clean end, or the damage that stops the file.
    #[inline]
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        if self.start >= self.released + RELEASE_STEP && !self.manual_release {
            self.release_to(self.start);
        }
        match self.state {
            State::Pcap(p) => self.next_pcap(p),
            State::Pcapng { .. } => self.next_pcapng(),
            State::Done => Ok(None),
        }
    }

    /// Drops the pages of a mapped file that were already read from this process's resident
    /// set. Without it a replay's RSS grows to the file's size (the page cache stays shared and
    /// warm; only our mapping lets go), which breaks the memory bound users configure.
    #[cold]
    fn release_to(&mut self, offset: usize) {
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

    /// Calls `f` for every packet; returns the packet count, or the error that ended the file.
    pub fn for_each(&mut self, mut f: impl FnMut(&Packet<'_>)) -> Result<u64, CaptureError> {
        let mut n = 0;
        while let Some(p) = self.next_packet()? {
            f(&p);
            n += 1;
        }
        Ok(n)
    }

    #[inline(always)]
    fn next_pcap(&mut self, p: PcapFmt) -> Result<Option<Packet<'_>>, CaptureError> {
        let hl = p.hdr_len;
        if !self.fill(hl)? {
            if self.start == self.end {
                self.state = State::Done;
                return Ok(None);
            }
            return Err(self.truncated("pcap record header", hl));
        }
        let b = &self.src.bytes()[self.start..self.end];
        let sec = rd32(b, 0, p.swapped) as u64;
        let frac = rd32(b, 4, p.swapped) as u64;
        let incl = rd32(b, 8, p.swapped);
        let orig = rd32(b, 12, p.swapped);
        if incl > p.max_len {
            let damage = Damage::RecordTooLong {
                len: incl,
                max: p.max_len,
            };
            return Err(self.corrupt("pcap record header", damage));
        }
        let total = hl + incl as usize;
        if !self.fill(total)? {
            return Err(self.truncated("pcap record", total));
        }
        let at = self.start + hl;
        self.start += total;
        let bytes = self.src.bytes();
        prefetch_ahead(bytes, self.start);
        let ts_ns = sec * 1_000_000_000 + if p.nanos { frac } else { frac * 1000 };
        let data = bytes.get(at..at + incl as usize).unwrap_or_default();
        Ok(Some(Packet {
            ts_ns,
            linktype: p.linktype,
            data,
            orig_len: orig,
            interface: 0,
            comment: None,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        loop {
            if !self.fill(8)? {
                if self.start == self.end {
                    self.state = State::Done;
                    return Ok(None);
                }
                return Err(self.truncated("pcapng block header", 8));
            }
            let State::Pcapng { be, .. } = self.state else {
                return Ok(None);
            };
            let b = &self.src.bytes()[self.start..self.end];
            let btype = rd32(b, 0, be);
            let be = if btype == SHB {
                if !self.fill(12)? {
                    return Err(self.truncated("pcapng section header", 12));
                }
                let b = &self.src.bytes()[self.start..self.end];
                match rd32(b, 8, false) {
                    BOM => false,
                    0x4D3C_2B1A => true,
                    _ => {
                        return Err(self.corrupt("pcapng section header", Damage::BadSectionHeader))
                    }
                }
            } else {
                be
            };
            let b = &self.src.bytes()[self.start..self.end];
            let blen = rd32(b, 4, be);
            if blen < 12 || blen & 3 != 0 || blen > MAX_BLOCK {
                return Err(self.corrupt("pcapng block", Damage::BadBlockLength { len: blen }));
            }
            let len = blen as usize;
            if !self.fill(len)? {
                return Err(self.truncated("pcapng block", len));
            }
            let b = &self.src.bytes()[self.start..self.start + len];
            let last = rd32(b, len - 4, be);
            if last != blen {
                let damage = Damage::LengthMismatch { first: blen, last };
                return Err(self.corrupt("pcapng block", damage));
            }
            match btype {
                EPB | PB => {
                    if blen < 32 {
                        let d = Damage::BadBlockLength { len: blen };
                        return Err(self.corrupt("pcapng packet block", d));
                    }
                    let (if_id, ts_hi, ts_lo, caplen, orig) = if btype == EPB {
                        (
                            rd32(b, 8, be),
                            rd32(b, 12, be),
                            rd32(b, 16, be),
                            rd32(b, 20, be),
                            rd32(b, 24, be),
                        )
                    } else {
                        // Obsolete Packet Block: 16-bit interface id, then a drops count.
                        let id = rd16(b, 8, be) as u32;
                        (
                            id,
                            rd32(b, 12, be),
                            rd32(b, 16, be),
                            rd32(b, 20, be),
                            rd32(b, 24, be),
                        )
                    };
                    if caplen > blen - 32 {
                        let d = Damage::PacketOverrunsBlock {
                            caplen,
                            block_len: blen,
                        };
                        return Err(self.corrupt("pcapng packet block", d));
                    }
                    let iface = match self.iface(if_id) {
                        Ok(i) => i,
                        Err(d) => return Err(self.corrupt("pcapng packet block", d)),
                    };
                    let at = self.start + 28;
                    // Options follow the padded data; only blocks that have any pay for the walk.
                    let opts_at = 28 + (caplen as usize).div_ceil(4) * 4;
                    let comment = match b.get(opts_at..len - 4) {
                        Some(opts) if !opts.is_empty() => find_comment(opts, be)
                            .map(|(s, e)| (self.start + opts_at + s, self.start + opts_at + e)),
                        _ => None,
                    };
                    self.start += len;
                    let ts = ((ts_hi as u64) << 32) | ts_lo as u64;
                    let bytes = self.src.bytes();
                    let data = bytes.get(at..at + caplen as usize).unwrap_or_default();
                    return Ok(Some(Packet {
                        ts_ns: iface.ts_ns(ts),
                        linktype: iface.linktype,
                        data,
                        orig_len: orig,
                        interface: if_id,
                        comment: comment.and_then(|(s, e)| bytes.get(s..e)),
                    }));
                }
                SPB => {
                    if blen < 16 {
                        let d = Damage::BadBlockLength { len: blen };
                        return Err(self.corrupt("pcapng simple packet block", d));
                    }
                    let orig = rd32(b, 8, be);
                    let iface = match self.iface(0) {
                        Ok(i) => i,
                        Err(d) => return Err(self.corrupt("pcapng simple packet block", d)),
                    };
                    // The SPB has no caplen: the data is min(original length, snaplen), padded.
                    let mut caplen = orig.min(blen - 16);
                    if iface.snaplen != 0 {
                        caplen = caplen.min(iface.snaplen);
                    }
                    let at = self.start + 12;
                    self.start += len;
                    let data = self
                        .src
                        .bytes()
                        .get(at..at + caplen as usize)
                        .unwrap_or_default();
                    return Ok(Some(Packet {
                        ts_ns: 0,
                        linktype: iface.linktype,
                        data,
                        orig_len: orig,
                        interface: 0,
                        comment: None,
                    }));
                }
                SHB => {
                    let ok = matches!(parse_sectionheaderblock(b),
                        Ok((_, shb)) if shb.major_version == 1);
                    if !ok {
                        return Err(self.corrupt("pcapng section header", Damage::BadSectionHeader));
                    }
                    if let State::Pcapng { be: e, ifaces } = &mut self.state {
                        *e = be;
                        ifaces.clear();
                    }
                }
                IDB => {
                    let iface = match parse_idb(b, be) {
                        Ok(i) => i,
                        Err(d) => return Err(self.corrupt("pcapng interface description", d)),
                    };
                    if let State::Pcapng { ifaces, .. } = &mut self.state {
                        if ifaces.len() >= MAX_INTERFACES {
                            let d = Damage::TooManyInterfaces;
                            return Err(self.corrupt("pcapng interface description", d));
                        }
                        ifaces.push(iface);
                    }
                }
                _ => {} // statistics, name resolution, custom, ...: not needed for packets
            }
            self.start += len;
        }
    }

    #[inline(always)]
    fn iface(&self, id: u32) -> Result<Iface, Damage> {
        match &self.state {
            State::Pcapng { ifaces, .. } => {
                ifaces
                    .get(id as usize)
                    .copied()
                    .ok_or(Damage::UnknownInterface {
                        id,
                        declared: ifaces.len(),
                    })
            }
            _ => Err(Damage::UnknownInterface { id, declared: 0 }),
        }
    }
}

/// Range of the first `opt_comment` value within a packet block's options.
fn find_comment(opts: &[u8], be: bool) -> Option<(usize, usize)> {
    let mut off = 0;
    while off + 4 <= opts.len() {
        let code = rd16(opts, off, be);
        let len = rd16(opts, off + 2, be) as usize;
        let start = off + 4;
        if code == 0 || start + len > opts.len() {
            return None;
        }
        if code == 1 {
            return Some((start, start + len));
        }
        off = start + len.div_ceil(4) * 4;
    }
    None
}

/// Decodes `if_tsresol` ourselves: pcap-parser 0.17 rejects every power-of-two resolution
/// because it range-checks the byte before masking off the 0x80 flag.
fn units_per_second(tsresol: u8) -> Option<u64> {
    let exp = u32::from(tsresol & 0x7F);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(exp)
    } else {
        1u64.checked_shl(exp).filter(|_| exp < 64)
    }
}

fn parse_idb(b: &[u8], be: bool) -> Result<Iface, Damage> {
    let parsed = if be {
        parse_interfacedescriptionblock_be(b)
    } else {
        parse_interfacedescriptionblock_le(b)
    };
    let Ok((_, idb)) = parsed else {
        return Err(Damage::BadInterfaceBlock);
    };
    let per_sec =
        units_per_second(idb.if_tsresol).ok_or(Damage::BadTimeResolution(idb.if_tsresol))?;
    let conv = if per_sec <= 1_000_000_000 && 1_000_000_000 % per_sec == 0 {
        TsConv::Mul(1_000_000_000 / per_sec)
    } else if per_sec % 1_000_000_000 == 0 {
        TsConv::Div(per_sec / 1_000_000_000)
    } else {
        TsConv::Ratio(per_sec)
    };
    // pcap-parser 0.17 decodes if_tsoffset little-endian whatever the section's byte order,
    // so read the option value here with the right one.
    let offset_s = idb
        .options
        .iter()
        .find(|o| o.code == OptionCode::IfTsoffset)
        .and_then(|o| o.value.get(..8))
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map(|a| {
            if be {
                i64::from_be_bytes(a)
            } else {
                i64::from_le_bytes(a)
            }
        })
        .unwrap_or(0);
    Ok(Iface {
        linktype: idb.linktype.0 as u32 & 0xFFFF,
        snaplen: idb.snaplen,
        conv,
        offset_ns: offset_s as i128 * 1_000_000_000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Hand-built pcapng blocks in either byte order.
    struct Ng {
        be: bool,
        out: Vec<u8>,
    }

    impl Ng {
        fn u16(&self, v: u16) -> [u8; 2] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn u32(&self, v: u32) -> [u8; 4] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn block(&mut self, btype: u32, body: &[u8]) {
            let len = 12 + body.len() as u32;
            let (t, l) = (self.u32(btype), self.u32(len));
            self.out.extend_from_slice(&t);
            self.out.extend_from_slice(&l);
            self.out.extend_from_slice(body);
            self.out.extend_from_slice(&l);
        }
        fn shb(&mut self, be: bool) {
            self.be = be;
            let mut b = self.u32(BOM).to_vec();
            b.extend_from_slice(&self.u16(1));
            b.extend_from_slice(&self.u16(0));
            b.extend_from_slice(&[0xFF; 8]);
            self.block(SHB, &b);
        }
        fn idb(&mut self, linktype: u16, tsresol: Option<u8>, tsoffset: Option<i64>) {
            let mut b = self.u16(linktype).to_vec();
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&self.u32(0));
            if let Some(r) = tsresol {
                b.extend_from_slice(&self.u16(9));
                b.extend_from_slice(&self.u16(1));
                b.extend_from_slice(&[r, 0, 0, 0]);
            }
            if let Some(o) = tsoffset {
                b.extend_from_slice(&self.u16(14));
                b.extend_from_slice(&self.u16(8));
                let v = if self.be {
                    o.to_be_bytes()
                } else {
                    o.to_le_bytes()
                };
                b.extend_from_slice(&v);
            }
            b.extend_from_slice(&[0; 4]);
            self.block(IDB, &b);
        }
        fn epb(&mut self, iface: u32, ts: u64, data: &[u8]) {
            let mut b = self.u32(iface).to_vec();
            b.extend_from_slice(&self.u32((ts >> 32) as u32));
            b.extend_from_slice(&self.u32(ts as u32));
            b.extend_from_slice(&self.u32(data.len() as u32));
            b.extend_from_slice(&self.u32(data.len() as u32));
            b.extend_from_slice(data);
            b.resize(b.len() + (4 - data.len() % 4) % 4, 0);
            self.block(EPB, &b);
        }
        fn spb(&mut self, data: &[u8]) {
            let mut b = self.u32(data.len() as u32).to_vec();
            b.extend_from_slice(data);
            b.resize(b.len() + (4 - data.len() % 4) % 4, 0);
            self.block(SPB, &b);
        }
    }

    type Got = (u64, u32, Vec<u8>, u32);

    fn collect(bytes: Vec<u8>) -> (Vec<Got>, Option<CaptureError>) {
        let mut r = CaptureReader::from_bytes("t.pcapng", bytes).expect("header");
        let mut v = Vec::new();
        loop {
            match r.next_packet() {
                Ok(Some(p)) => v.push((p.ts_ns, p.linktype, p.data.to_vec(), p.interface)),
                Ok(None) => return (v, None),
                Err(e) => return (v, Some(e)),
            }
        }
    }

    #[test]
    fn pcapng_sections_of_both_byte_orders_and_resolutions() {
        let mut ng = Ng {
            be: false,
            out: Vec::new(),
        };
        ng.shb(false);
        ng.idb(1, None, None); // default: microseconds
        ng.idb(228, Some(9), Some(10)); // nanoseconds, +10 s offset
        ng.block(0x0BAD, &[1, 2, 3, 4]); // unknown block: skipped
        ng.epb(0, 1_500_000, b"le-us");
        ng.epb(1, 7, b"le-ns");
        ng.shb(true);
        ng.idb(113, Some(0x80 | 10), None); // 2^-10 s units
        ng.idb(1, Some(3), None); // milliseconds
        ng.epb(0, 1024 * 3 + 512, b"be-pow2");
        ng.epb(1, 42, b"be-ms");
        ng.spb(b"simple");
        let (got, err) = collect(ng.out);
        assert!(err.is_none(), "{err:?}");
        let want: Vec<Got> = vec![
            (1_500_000_000, 1, b"le-us".to_vec(), 0),
            (10_000_000_007, 228, b"le-ns".to_vec(), 1),
            (3_500_000_000, 113, b"be-pow2".to_vec(), 0),
            (42_000_000, 1, b"be-ms".to_vec(), 1),
            (0, 113, b"simple".to_vec(), 0),
        ];
        assert_eq!(got, want);
    }

    /// Hands out at most `step` bytes per read, to exercise every refill boundary.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn streaming_in_tiny_reads_matches_memory() {
        let mut ng = Ng {
            be: false,
            out: Vec::new(),
        };
        ng.shb(true);
        ng.idb(1, Some(9), None);
        for i in 0..50u8 {
            ng.epb(0, i as u64, &vec![i; i as usize * 37]);
        }
        let mut pcap = crate::PcapWriter::new(Vec::new(), 1, crate::TsResolution::Nano).unwrap();
        for i in 0..50u8 {
            pcap.write_packet(i as u64, &vec![i; i as usize * 37], 5000)
                .unwrap();
        }
        for bytes in [ng.out, pcap.into_inner().unwrap()] {
            let want = collect(bytes.clone());
            assert!(want.1.is_none());
            assert_eq!(want.0.len(), 50);
            for step in [1, 3, 7, 4096] {
                let t = Trickle {
                    data: bytes.clone(),
                    at: 0,
                    step,
                };
                let mut r = CaptureReader::from_reader("trickle", t).unwrap();
                let mut got = Vec::new();
                while let Some(p) = r.next_packet().unwrap() {
                    got.push((p.ts_ns, p.linktype, p.data.to_vec(), p.interface));
                }
                assert_eq!(got, want.0, "step {step}");
                assert_eq!(r.position(), bytes.len() as u64);
            }
            // gzip detection must survive a pipe that hands out one byte at a time.
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            io::Write::write_all(&mut gz, &bytes).unwrap();
            let gz = gz.finish().unwrap();
            for step in [1, 4096] {
                let t = Trickle {
                    data: gz.clone(),
                    at: 0,
                    step,
                };
                let mut r = CaptureReader::from_reader("trickle.gz", t).unwrap();
                let mut n = 0;
                while r.next_packet().unwrap().is_some() {
                    n += 1;
                }
                assert_eq!(n, 50);
                assert_eq!(r.progress().done, gz.len() as u64);
            }
        }
    }

    #[test]
    fn pcapng_packet_for_undeclared_interface_is_damage() {
        let mut ng = Ng {
            be: false,
            out: Vec::new(),
        };
        ng.shb(false);
        ng.idb(1, None, None);
        ng.epb(0, 1, b"ok");
        let at = ng.out.len() as u64;
        ng.epb(3, 1, b"bad");
        let (got, err) = collect(ng.out);
        assert_eq!(got.len(), 1);
        match err {
            Some(CaptureError::Corrupt { offset, damage, .. }) => {
                assert_eq!(offset, at);
                assert_eq!(damage, Damage::UnknownInterface { id: 3, declared: 1 });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pcapng_truncated_block_reports_its_offset() {
        let mut ng = Ng {
            be: true,
            out: Vec::new(),
        };
        ng.shb(true);
        ng.idb(1, None, None);
        ng.epb(0, 1, b"ok");
        let at = ng.out.len();
        ng.epb(0, 2, &[7; 100]);
        for cut in [at + 1, at + 8, at + 50, ng.out.len() - 1] {
            let (got, err) = collect(ng.out[..cut].to_vec());
            assert_eq!(got.len(), 1);
            let err = err.expect("error");
            assert!(matches!(err, CaptureError::Truncated { .. }), "{err}");
            assert_eq!(err.offset(), Some(at as u64));
        }
    }

    fn drain(r: &mut CaptureReader) {
        // A bounded loop: every call consumes input or ends the reader.
        for _ in 0..100_000 {
            match r.next_packet() {
                Ok(Some(p)) => assert!(p.data.len() <= MAX_BLOCK as usize),
                Ok(None) | Err(_) => return,
            }
        }
        panic!("reader did not terminate");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(mut r) = CaptureReader::from_bytes("rand", bytes.clone()) {
                drain(&mut r);
            }
            if let Ok(mut r) = CaptureReader::from_reader("rand", io::Cursor::new(bytes)) {
                drain(&mut r);
            }
        }

        #[test]
        fn mutated_headers_never_panic(
            pcapng in any::<bool>(),
            tail in proptest::collection::vec(any::<u8>(), 0..1024),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        ) {
            // Start from a valid header so the fuzzing reaches the record/block parsers.
            let mut bytes = if pcapng {
                let mut ng = Ng { be: false, out: Vec::new() };
                ng.shb(false);
                ng.idb(1, Some(9), None);
                ng.epb(0, 5, b"hello");
                ng.out
            } else {
                let mut b = vec![0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0];
                b.extend_from_slice(&[0; 8]);
                b.extend_from_slice(&65535u32.to_le_bytes());
                b.extend_from_slice(&1u32.to_le_bytes());
                b
            };
            bytes.extend_from_slice(&tail);
            for (at, v) in flips {
                let n = bytes.len();
                bytes[at % n] = v;
            }
            if let Ok(mut r) = CaptureReader::from_bytes("mut", bytes.clone()) {
                drain(&mut r);
            }
            if let Ok(mut r) = CaptureReader::from_reader("mut", io::Cursor::new(bytes)) {
                drain(&mut r);
            }
        }
    }
}
