//! A bounded on-disk queue of frames ([`crate::frame`]) for records the broker cannot take now:
//! the producer's queue is full, the broker is unreachable, or the process is stopping with
//! records still undelivered. Replayed in order once the broker is back.
//!
//! Written here rather than taken from a crate: what it needs is small (append, read in order,
//! delete what was read, a byte cap, a second writer at the front for shutdown) and the crates
//! that offer disk queues bring their own threads, formats or unbounded growth.
//!
//! Layout: `DIR/spool-<seq>.seg` segment files, read in `seq` order, each a run of records
//! `u32 length | u32 crc32 | payload` (little-endian). A segment is deleted as soon as it was
//! read to its end, so the disk holds only what is not yet delivered (plus the read part of
//! one segment). `DIR/cursor` remembers how far each partly read segment was read; it is
//! written by [`Spool::sync`] (on every flush of the sink and at exit), so after a crash at
//! most the records read since the last sync are sent again (duplicates, never losses).
//!
//! Bounds: every append that would take the spool past `max_bytes` is refused (the caller
//! counts it as dropped); a record longer than [`MAX_RECORD`] or failing its checksum is
//! corrupt and skipped, counted; a torn tail (a crash mid-append) ends that segment's reading.
//!
//! Order: records are read in the order they were appended, with one exception made on
//! purpose: records appended with [`Spool::push_front`] (the producer's queue purged at
//! shutdown, older than anything spooled) go to a new segment read before all others.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest record the spool reads back: a longer length field is corruption.
pub const MAX_RECORD: usize = 64 << 20;
/// Bytes of appends buffered before they are written to the segment.
const WRITE_BUFFER: usize = 64 << 10;
/// First segment number of a fresh spool: segments pushed to the front count down from it.
const FIRST_SEQ: u64 = 1 << 40;

/// Where the spool lives and how large it may get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Directory of the segment files (created if missing).
    pub dir: PathBuf,
    /// Most bytes on disk (segments, read parts included until deleted, plus buffered appends).
    pub max_bytes: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
}

/// A spool operation failed on the file system.
#[derive(Debug, thiserror::Error)]
#[error("spool {op} {}: {source}", path.display())]
pub struct SpoolError {
    /// What was being done.
    pub op: &'static str,
    /// The file concerned.
    pub path: PathBuf,
    /// The operating system's error.
    pub source: io::Error,
}

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Counters of a spool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records appended (this process).
    pub appended: u64,
    /// Records read back and consumed (this process).
    pub replayed: u64,
    /// Appends refused because the spool was full.
    pub full: u64,
    /// Records skipped as corrupt (bad length or checksum, torn tail).
    pub corrupt: u64,
    /// Records waiting now.
    pub records: u64,
    /// Bytes on disk now (with buffered appends).
    pub bytes: u64,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// Bytes in the file plus bytes buffered for it.
    size: u64,
    /// Offset of the next record to read.
    read: u64,
    /// Offset past the last whole record (reading stops here).
    end: u64,
    /// Records not read yet.
    records: u64,
}

/// An open segment being appended to.
#[derive(Debug)]
struct Appender {
    file: File,
    buf: Vec<u8>,
}

impl Appender {
    fn flush(&mut self, path: &Path) -> Result<(), SpoolError> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf).map_err(err("write", path))?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// The spool (see the module doc). Single-threaded: the sink wraps it in a mutex.
#[derive(Debug)]
pub struct Spool {
    cfg: SpoolConfig,
    /// In read order.
    segments: VecDeque<Segment>,
    /// Appends to `segments.back()`, when that segment belongs to this process.
    tail: Option<Appender>,
    /// Appends to `segments.front()` (see [`Spool::push_front`]).
    front: Option<Appender>,
    /// The open file of the segment being read, with its seq.
    reader: Option<(u64, File)>,
    /// The record at the read position, once loaded (not consumed until [`Spool::pop`]).
    head: Option<Vec<u8>>,
    /// Its length on disk, header included.
    head_len: u64,
    /// Something changed since the last [`Spool::sync`].
    dirty: bool,
    /// [`Spool::push_front`] found the spool empty: its records go to the end.
    front_is_tail: bool,
    stats: SpoolStats,
}

fn segment_name(seq: u64) -> String {
    format!("spool-{seq:020}.seg")
}

impl Spool {
    /// Opens the spool in `cfg.dir`, picking up what an earlier process left there.
    pub fn open(cfg: SpoolConfig) -> Result<Spool, SpoolError> {
        fs::create_dir_all(&cfg.dir).map_err(err("create", &cfg.dir))?;
        let mut seqs = Vec::new();
        for entry in fs::read_dir(&cfg.dir).map_err(err("list", &cfg.dir))? {
            let entry = entry.map_err(err("list", &cfg.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(seq) = name
                .strip_prefix("spool-")
                .and_then(|s| s.strip_suffix(".seg"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let cursor = read_cursor(&cfg.dir.join("cursor"));
        let mut spool = Spool {
            cfg,
            segments: VecDeque::new(),
            tail: None,
            front: None,
            reader: None,
            head: None,
            head_len: 0,
            dirty: false,
            front_is_tail: false,
            stats: SpoolStats::default(),
        };
        for seq in seqs {
            let path = spool.cfg.dir.join(segment_name(seq));
            let read = cursor
                .iter()
                .find(|(s, _)| *s == seq)
                .map_or(0, |(_, o)| *o);
            let seg = scan(seq, path, read, &mut spool.stats.corrupt)?;
            spool.stats.bytes += seg.size;
            spool.stats.records += seg.records;
            spool.segments.push_back(seg);
        }
        // Segments left with nothing to read are removed at once.
        spool.segments.retain(|s| {
            let empty = s.records == 0;
            if empty {
                let _ = fs::remove_file(&s.path);
            }
            !empty
        });
        spool.stats.bytes = spool.segments.iter().map(|s| s.size).sum();
        Ok(spool)
    }

    /// The counters so far.
    pub fn stats(&self) -> SpoolStats {
        self.stats
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.stats.records == 0
    }

    fn fits(&mut self, len: usize) -> bool {
        if self.stats.bytes + 8 + len as u64 > self.cfg.max_bytes || len > MAX_RECORD {
            self.stats.full += 1;
            return false;
        }
        true
    }

    /// Appends a record at the end; `Ok(false)` when the spool is full (nothing written).
    pub fn push(&mut self, rec: &[u8]) -> Result<bool, SpoolError> {
        if !self.fits(rec.len()) {
            return Ok(false);
        }
        let roll = match (&self.tail, self.segments.back()) {
            (Some(_), Some(seg)) => {
                seg.size > 0 && seg.size + 8 + rec.len() as u64 > self.cfg.segment_bytes
            }
            _ => true,
        };
        if roll {
            self.close_tail()?;
            let seq = self.segments.back().map_or(FIRST_SEQ, |s| s.seq + 1);
            let (seg, app) = self.create(seq)?;
            self.segments.push_back(seg);
            self.tail = Some(app);
        }
        let (Some(app), Some(seg)) = (self.tail.as_mut(), self.segments.back_mut()) else {
            unreachable!("a tail segment was just ensured");
        };
        append(app, seg, rec);
        if app.buf.len() >= WRITE_BUFFER {
            let path = seg.path.clone();
            app.flush(&path)?;
        }
        self.stats.appended += 1;
        self.stats.records += 1;
        self.dirty = true;
        self.stats.bytes += 8 + rec.len() as u64;
        Ok(true)
    }

    /// Appends a record to a segment read before every other (records older than anything in
    /// the spool: the producer's queue purged at shutdown). Successive calls keep their order.
    /// `Ok(false)` when the spool is full.
    pub fn push_front(&mut self, rec: &[u8]) -> Result<bool, SpoolError> {
        if self.front_is_tail || (self.front.is_none() && self.segments.is_empty()) {
            // Nothing to be ahead of: the end is the front, for this and every later call.
            self.front_is_tail = true;
            return self.push(rec);
        }
        if !self.fits(rec.len()) {
            return Ok(false);
        }
        if self.front.is_none() {
            let seq = self.segments.front().map_or(FIRST_SEQ, |s| s.seq) - 1;
            let (seg, app) = self.create(seq)?;
            self.segments.push_front(seg);
            self.front = Some(app);
            // The record loaded for reading is no longer the first.
            self.head = None;
            self.reader = None;
        }
        let (Some(app), Some(seg)) = (self.front.as_mut(), self.segments.front_mut()) else {
            unreachable!("a front segment was just ensured");
        };
        append(app, seg, rec);
        self.stats.appended += 1;
        self.stats.records += 1;
        self.dirty = true;
        self.stats.bytes += 8 + rec.len() as u64;
        Ok(true)
    }

    fn create(&self, seq: u64) -> Result<(Segment, Appender), SpoolError> {
        let path = self.cfg.dir.join(segment_name(seq));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(err("create", &path))?;
        Ok((
            Segment {
                seq,
                path,
                size: 0,
                read: 0,
                end: 0,
                records: 0,
            },
            Appender {
                file,
                buf: Vec::with_capacity(WRITE_BUFFER),
            },
        ))
    }

    fn close_tail(&mut self) -> Result<(), SpoolError> {
        if let (Some(mut app), Some(seg)) = (self.tail.take(), self.segments.back()) {
            app.flush(&seg.path)?;
        }
        Ok(())
    }

    /// Writes buffered appends to their files (not synced).
    pub fn flush(&mut self) -> Result<(), SpoolError> {
        if let (Some(app), Some(seg)) = (self.tail.as_mut(), self.segments.back()) {
            app.flush(&seg.path)?;
        }
        if let (Some(app), Some(seg)) = (self.front.as_mut(), self.segments.front()) {
            app.flush(&seg.path)?;
        }
        Ok(())
    }

    /// Flushes, syncs the files and records the read positions (see the module doc).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if !self.dirty {
            return Ok(());
        }
        self.flush()?;
        for (app, path) in [
            (self.tail.as_ref(), self.segments.back().map(|s| &s.path)),
            (self.front.as_ref(), self.segments.front().map(|s| &s.path)),
        ] {
            if let (Some(app), Some(path)) = (app, path) {
                app.file.sync_data().map_err(err("sync", path))?;
            }
        }
        let mut text = String::new();
        for s in self.segments.iter().filter(|s| s.read > 0) {
            text.push_str(&format!("{} {}\n", s.seq, s.read));
        }
        let path = self.cfg.dir.join("cursor");
        let tmp = self.cfg.dir.join("cursor.tmp");
        fs::write(&tmp, text).map_err(err("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(err("rename", &path))?;
        self.dirty = false;
        Ok(())
    }

    /// The oldest waiting record, without consuming it; `None` when the spool is empty.
    pub fn peek(&mut self) -> Result<Option<&[u8]>, SpoolError> {
        while self.head.is_none() {
            let Some(seg) = self.segments.front() else {
                return Ok(None);
            };
            if seg.records == 0 || seg.read >= seg.end {
                // Read to its end (records left here were counted past a torn tail).
                self.stats.records = self.stats.records.saturating_sub(seg.records);
                self.remove_front()?;
                continue;
            }
            // Appends may still be buffered for the segment being read.
            let (seq, path, read) = (seg.seq, seg.path.clone(), seg.read);
            if self.segments.len() == 1 {
                if let Some(app) = self.tail.as_mut() {
                    app.flush(&path)?;
                }
            }
            if let Some(app) = self.front.as_mut() {
                app.flush(&path)?;
            }
            if self.reader.as_ref().is_none_or(|(s, _)| *s != seq) {
                let f = File::open(&path).map_err(err("open", &path))?;
                self.reader = Some((seq, f));
            }
            let Some((_, f)) = self.reader.as_mut() else {
                unreachable!("a reader was just opened");
            };
            match read_record(f, read).map_err(err("read", &path))? {
                Some((Some(rec), len)) => {
                    self.head = Some(rec);
                    self.head_len = len;
                }
                Some((None, len)) => {
                    if let Some(seg) = self.segments.front_mut() {
                        seg.read += len;
                    }
                    self.consume(true);
                }
                None => {
                    // The file ends before the scan said it would (cut by someone else).
                    self.stats.corrupt += 1;
                    if let Some(seg) = self.segments.front_mut() {
                        seg.end = seg.read;
                    }
                }
            }
        }
        Ok(self.head.as_deref())
    }

    /// Consumes the record [`Spool::peek`] returned.
    pub fn pop(&mut self) {
        if self.head.take().is_some() {
            if let Some(seg) = self.segments.front_mut() {
                seg.read += self.head_len;
            }
            self.consume(false);
        }
    }

    fn consume(&mut self, corrupt: bool) {
        self.dirty = true;
        if corrupt {
            self.stats.corrupt += 1;
        } else {
            self.stats.replayed += 1;
        }
        self.stats.records = self.stats.records.saturating_sub(1);
        if let Some(seg) = self.segments.front_mut() {
            seg.records = seg.records.saturating_sub(1);
        }
    }

    fn remove_front(&mut self) -> Result<(), SpoolError> {
        let Some(seg) = self.segments.pop_front() else {
            return Ok(());
        };
        if self.segments.is_empty() {
            self.tail = None;
        }
        self.front = None;
        self.reader = None;
        self.stats.bytes = self.stats.bytes.saturating_sub(seg.size);
        match fs::remove_file(&seg.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err("remove", &seg.path)(e)),
        }
    }
}

fn append(app: &mut Appender, seg: &mut Segment, rec: &[u8]) {
    app.buf.extend_from_slice(&(rec.len() as u32).to_le_bytes());
    app.buf
        .extend_from_slice(&crc32fast::hash(rec).to_le_bytes());
    app.buf.extend_from_slice(rec);
    seg.size += 8 + rec.len() as u64;
    seg.end = seg.size;
    seg.records += 1;
}

/// Reads the record at `at`: `Some((Some(payload), length))`, `Some((None, length))` for a
/// record whose checksum fails (skippable), `None` when the file ends or the length is
/// impossible (a torn tail: nothing after it can be trusted).
fn read_record(f: &mut File, at: u64) -> io::Result<Option<(Option<Vec<u8>>, u64)>> {
    f.seek(SeekFrom::Start(at))?;
    let mut head = [0u8; 8];
    if read_full(f, &mut head)? < 8 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_RECORD {
        return Ok(None);
    }
    let mut rec = vec![0u8; len];
    if read_full(f, &mut rec)? < len {
        return Ok(None);
    }
    let total = 8 + len as u64;
    if crc32fast::hash(&rec) != crc {
        return Ok(Some((None, total)));
    }
    Ok(Some((Some(rec), total)))
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Counts the records of a segment left by an earlier process, from `read` on (lengths only;
/// checksums are checked when each record is read).
fn scan(seq: u64, path: PathBuf, read: u64, corrupt: &mut u64) -> Result<Segment, SpoolError> {
    let mut f = File::open(&path).map_err(err("open", &path))?;
    let size = f.metadata().map_err(err("stat", &path))?.len();
    let mut at = read.min(size);
    let mut records = 0;
    loop {
        if at == size {
            break;
        }
        f.seek(SeekFrom::Start(at)).map_err(err("read", &path))?;
        let mut head = [0u8; 8];
        let n = read_full(&mut f, &mut head).map_err(err("read", &path))?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as u64;
        if n < 8 || len as usize > MAX_RECORD || at + 8 + len > size {
            *corrupt += 1;
            break;
        }
        at += 8 + len;
        records += 1;
    }
    Ok(Segment {
        seq,
        path,
        size,
        read: read.min(size),
        end: at,
        records,
    })
}

fn read_cursor(path: &Path) -> Vec<(u64, u64)> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_ascii_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, max: u64, seg: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes: max,
            segment_bytes: seg,
        }
    }

    fn drain(s: &mut Spool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = s.peek().unwrap() {
            out.push(r.to_vec());
            s.pop();
        }
        out
    }

    fn rec(i: u32) -> Vec<u8> {
        format!("record-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes()
    }

    fn segment_files(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".seg")
            })
            .count()
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_read_ones_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(cfg(dir.path(), 1 << 20, 300)).unwrap();
        for i in 0..100 {
            assert!(s.push(&rec(i)).unwrap());
        }
        assert!(segment_files(dir.path()) > 5);
        // Interleaved reads and appends keep one order.
        let mut got = Vec::new();
        for _ in 0..30 {
            got.push(s.peek().unwrap().unwrap().to_vec());
            s.pop();
        }
        for i in 100..150 {
            assert!(s.push(&rec(i)).unwrap());
        }
        got.extend(drain(&mut s));
        assert_eq!(got, (0..150).map(rec).collect::<Vec<_>>());
        let st = s.stats();
        assert_eq!((st.appended, st.replayed, st.records), (150, 150, 0));
        assert_eq!(st.bytes, 0);
        assert_eq!(segment_files(dir.path()), 0);
        // Usable again after running empty.
        assert!(s.push(b"again").unwrap());
        assert_eq!(drain(&mut s), vec![b"again".to_vec()]);
    }

    #[test]
    fn the_cap_refuses_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(cfg(dir.path(), 1000, 256)).unwrap();
        let mut stored = 0;
        for i in 0..100 {
            stored += u64::from(s.push(&rec(i)).unwrap());
        }
        let st = s.stats();
        assert!(st.bytes <= 1000, "{st:?}");
        assert_eq!(st.full, 100 - stored);
        assert!(stored > 5 && stored < 100);
        assert_eq!(drain(&mut s).len() as u64, stored);
        // Room again once read.
        assert!(s.push(&rec(1)).unwrap());
    }

    #[test]
    fn a_restart_resumes_after_what_was_read_and_survives_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(cfg(dir.path(), 1 << 20, 400)).unwrap();
            for i in 0..40 {
                s.push(&rec(i)).unwrap();
            }
            for _ in 0..15 {
                s.peek().unwrap();
                s.pop();
            }
            s.sync().unwrap();
        }
        // A crash mid-append: half a record at the end of the newest segment.
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        names.sort();
        let last = names.last().unwrap();
        let mut f = OpenOptions::new().append(true).open(last).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'x']).unwrap();
        drop(f);
        let mut s = Spool::open(cfg(dir.path(), 1 << 20, 400)).unwrap();
        assert_eq!(s.stats().records, 25);
        assert_eq!(s.stats().corrupt, 1);
        s.push(&rec(40)).unwrap();
        let got = drain(&mut s);
        assert_eq!(got, (15..41).map(rec).collect::<Vec<_>>());
    }

    #[test]
    fn a_flipped_byte_skips_one_record() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
            for i in 0..3 {
                s.push(&rec(i)).unwrap();
            }
            s.sync().unwrap();
        }
        let seg = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let mut bytes = fs::read(&seg).unwrap();
        let second = 8 + rec(0).len() + 8;
        bytes[second] ^= 0xff;
        fs::write(&seg, bytes).unwrap();
        let mut s = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
        assert_eq!(drain(&mut s), vec![rec(0), rec(2)]);
        assert_eq!(s.stats().corrupt, 1);
    }

    #[test]
    fn front_records_are_read_first_then_the_rest_where_reading_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(cfg(dir.path(), 1 << 20, 200)).unwrap();
        for i in 10..30 {
            s.push(&rec(i)).unwrap();
        }
        // Half of it was read (sent, then purged back at shutdown).
        for _ in 0..5 {
            s.peek().unwrap();
            s.pop();
        }
        // Peeked but not popped: must not be lost or duplicated.
        assert_eq!(s.peek().unwrap().unwrap(), rec(15).as_slice());
        for i in 0..5 {
            assert!(s.push_front(&rec(i)).unwrap());
        }
        // Appends at the end go on meanwhile.
        s.push(&rec(30)).unwrap();
        s.sync().unwrap();
        drop(s);
        let mut s = Spool::open(cfg(dir.path(), 1 << 20, 200)).unwrap();
        let want: Vec<_> = (0..5).chain(15..31).map(rec).collect();
        assert_eq!(drain(&mut s), want);
    }

    #[test]
    fn front_pushes_into_an_empty_spool_are_plain_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(cfg(dir.path(), 1 << 20, 200)).unwrap();
        for i in 0..3 {
            s.push_front(&rec(i)).unwrap();
        }
        s.push(&rec(3)).unwrap();
        assert_eq!(drain(&mut s), (0..4).map(rec).collect::<Vec<_>>());
    }
}
