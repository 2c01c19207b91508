//! The byte side of the JSON-lines output: a buffer of whole lines written to a file or to
//! stdout, honest about what reached the operating system.
//!
//! A record counts as written only once its newline was accepted by `write(2)`; a record that
//! was buffered but could not be written counts as failed. A failed or short write never leaves
//! a torn line behind: on a regular file the partial line is cut off again (`ftruncate` back to
//! the last newline); where that is impossible (a pipe, a terminal) nothing more is written to
//! that output, since whatever came next would be glued to the torn line. A closed pipe
//! (`EPIPE`) also stops the output for good: its reader is gone.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where the lines go: a file, stdout, or (in tests) something that fails on purpose.
pub trait LineTarget {
    /// One `write(2)`: may write less than `buf`.
    fn write_some(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Removes the last `torn` bytes written, so that the output ends on a line boundary.
    /// `Ok(false)` when the output cannot be cut (not a regular file).
    fn cut_tail(&mut self, torn: u64) -> io::Result<bool>;
}

impl LineTarget for File {
    fn write_some(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write(buf)
    }

    fn cut_tail(&mut self, torn: u64) -> io::Result<bool> {
        let meta = self.metadata()?;
        if !meta.is_file() {
            return Ok(false);
        }
        // Taken from the file itself rather than from a remembered offset: correct whether
        // the descriptor appends (our files, `>>`) or writes at its offset (`>`).
        let good = meta.len().saturating_sub(torn);
        self.set_len(good)?;
        self.seek(SeekFrom::Start(good))?;
        Ok(true)
    }
}

/// Counters of a [`LineOut`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineOutStats {
    /// Records whose whole line reached the operating system.
    pub records: u64,
    /// Bytes of those records.
    pub bytes: u64,
    /// Records that were accepted but could not be written (dropped).
    pub failed: u64,
}

/// Buffered whole-line output with honest counts.
pub struct LineOut<T: LineTarget> {
    target: T,
    buf: Vec<u8>,
    cap: usize,
    /// Records in `buf`.
    pending: u64,
    /// Bytes of an unfinished line that reached the target (normally 0 between flushes).
    torn: u64,
    stats: LineOutStats,
    /// Records written, shared with whoever must know it while this output is blocked in a
    /// write (the shutdown deadline).
    progress: Arc<AtomicU64>,
    /// Set when the output was given up (closed pipe, or a torn line that could not be cut).
    stopped: Option<io::ErrorKind>,
    /// The last write failed and none has succeeded since.
    failing: bool,
}

impl<T: LineTarget> LineOut<T> {
    /// An output buffering up to `cap` bytes of whole lines.
    pub fn new(target: T, cap: usize) -> Self {
        LineOut {
            target,
            buf: Vec::with_capacity(cap),
            cap,
            pending: 0,
            torn: 0,
            stats: LineOutStats::default(),
            progress: Arc::new(AtomicU64::new(0)),
            stopped: None,
            failing: false,
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> LineOutStats {
        self.stats
    }

    /// Records accepted but not written yet.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// The shared count of records written.
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.progress.clone()
    }

    /// Carries the counters over from the output this one replaces (rotation, reopen).
    pub fn inherit(&mut self, old: &LineOut<T>) {
        self.stats = old.stats;
        self.progress = old.progress.clone();
    }

    /// True while the output does not take data: the last write failed and none succeeded
    /// since (an empty buffer proves nothing), or the output was given up.
    pub fn failing(&self) -> bool {
        self.failing || self.stopped.is_some()
    }

    /// Why the output was given up, if it was.
    pub fn stopped(&self) -> Option<io::ErrorKind> {
        self.stopped
    }

    /// Accepts one line (newline included). The line is written by this call or a later
    /// flush; an error means the output failed (the line itself is kept for the next flush
    /// unless the output was given up, in which case it counts as failed).
    pub fn push(&mut self, line: &[u8]) -> io::Result<()> {
        if let Some(kind) = self.stopped {
            self.stats.failed += 1;
            return Err(io::Error::new(
                kind,
                "output was given up after an earlier failure",
            ));
        }
        let mut result = Ok(());
        if !self.buf.is_empty() && self.buf.len() + line.len() > self.cap {
            result = self.flush();
            if let Some(kind) = self.stopped {
                self.stats.failed += 1;
                return Err(result
                    .err()
                    .unwrap_or_else(|| io::Error::new(kind, "output was given up")));
            }
        }
        self.buf.extend_from_slice(line);
        self.pending += 1;
        if result.is_ok() && self.buf.len() >= self.cap {
            // A line longer than the buffer goes out at once rather than growing it.
            result = self.flush();
        }
        result
    }

    /// Writes every buffered line. On an error the lines not written are dropped and counted
    /// as failed, and the output still ends on a line boundary (see the module doc).
    pub fn flush(&mut self) -> io::Result<()> {
        let mut off = 0;
        let mut done = 0u64;
        let mut error = None;
        while off < self.buf.len() {
            match self.target.write_some(&self.buf[off..]) {
                Ok(0) => {
                    error = Some(io::Error::new(io::ErrorKind::WriteZero, "wrote 0 bytes"));
                    break;
                }
                Ok(n) => {
                    self.failing = false;
                    let chunk = &self.buf[off..off + n];
                    let lines = memchr::memchr_iter(b'\n', chunk).count() as u64;
                    match memchr::memrchr(b'\n', chunk) {
                        Some(last) => self.torn = (n - last - 1) as u64,
                        None => self.torn += n as u64,
                    }
                    done += lines;
                    self.stats.records += lines;
                    self.stats.bytes += n as u64;
                    off += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if done > 0 {
            self.progress.fetch_add(done, Ordering::Relaxed);
        }
        let Some(e) = error else {
            self.buf.clear();
            self.pending = 0;
            return Ok(());
        };
        self.failing = true;
        // Lines not written are dropped: keeping them would grow without bound while the
        // output stays broken.
        self.stats.failed += self.pending - done;
        self.buf.clear();
        self.pending = 0;
        if self.torn > 0 {
            match self.target.cut_tail(self.torn) {
                Ok(true) => {
                    self.stats.bytes -= self.torn;
                    self.torn = 0;
                }
                // A torn line that stays: anything written after it would be corrupt.
                Ok(false) | Err(_) => self.stopped = Some(e.kind()),
            }
        }
        if e.kind() == io::ErrorKind::BrokenPipe {
            self.stopped = Some(e.kind());
        }
        Err(e)
    }

    /// Drops what is buffered (counted as failed) without writing it.
    pub fn discard(&mut self) {
        self.stats.failed += self.pending;
        self.buf.clear();
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `room` bytes (at most `chunk` per call), then fails with `kind`.
    struct Failing {
        data: Vec<u8>,
        room: usize,
        chunk: usize,
        kind: io::ErrorKind,
        can_cut: bool,
    }

    impl LineTarget for Failing {
        fn write_some(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room).min(self.chunk);
            if n == 0 {
                return Err(io::Error::from(self.kind));
            }
            self.data.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }
        fn cut_tail(&mut self, torn: u64) -> io::Result<bool> {
            if self.can_cut {
                self.data.truncate(self.data.len() - torn as usize);
            }
            Ok(self.can_cut)
        }
    }

    fn target(room: usize, chunk: usize, kind: io::ErrorKind, can_cut: bool) -> Failing {
        Failing {
            data: Vec::new(),
            room,
            chunk,
            kind,
            can_cut,
        }
    }

    fn line(i: usize) -> Vec<u8> {
        format!("{{\"record\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 37)).into_bytes()
    }

    #[test]
    fn a_full_disk_leaves_whole_lines_and_honest_counts() {
        // Every room size, including ones that cut a line mid-way, and short writes.
        for room in [0, 1, 10, 100, 333, 1000, 2500] {
            for chunk in [7, 64, usize::MAX] {
                let mut out =
                    LineOut::new(target(room, chunk, io::ErrorKind::StorageFull, true), 256);
                let mut errors = 0;
                for i in 0..100 {
                    errors += out.push(&line(i)).is_err() as u64;
                }
                errors += out.flush().is_err() as u64;
                let s = out.stats();
                let data = &out.target.data;
                let lines = data.iter().filter(|&&b| b == b'\n').count() as u64;
                assert!(
                    data.is_empty() || data.ends_with(b"\n"),
                    "room {room}: torn tail"
                );
                assert_eq!(s.records, lines, "room {room} chunk {chunk}");
                assert_eq!(s.bytes, data.len() as u64);
                assert_eq!(s.records + s.failed, 100, "room {room} chunk {chunk}");
                assert_eq!(out.pending(), 0);
                assert_eq!(errors > 0, s.failed > 0);
                assert_eq!(out.failing(), s.failed > 0);
                // An empty flush does not make a failing output look healthy.
                let _ = out.flush();
                assert_eq!(out.failing(), s.failed > 0);
                assert_eq!(out.progress().load(Ordering::Relaxed), s.records);
            }
        }
    }

    #[test]
    fn a_torn_line_that_cannot_be_cut_stops_the_output() {
        let mut out = LineOut::new(
            target(50, usize::MAX, io::ErrorKind::StorageFull, false),
            64,
        );
        for i in 0..10 {
            let _ = out.push(&line(i));
        }
        let _ = out.flush();
        assert!(out.stopped().is_some());
        let s = out.stats();
        assert_eq!(s.records + s.failed, 10);
        // The torn line is there (a pipe cannot take it back), and nothing follows it.
        assert_eq!(out.target.data.len(), 50);
        assert!(out.push(&line(11)).is_err());
        assert_eq!(out.stats().failed, s.failed + 1);
    }

    #[test]
    fn a_closed_pipe_stops_the_output_quietly_at_a_boundary() {
        let mut out = LineOut::new(target(0, usize::MAX, io::ErrorKind::BrokenPipe, false), 64);
        let _ = out.push(&line(1));
        let e = out.flush().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(out.stopped(), Some(io::ErrorKind::BrokenPipe));
        assert_eq!(
            out.push(&line(2)).unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        assert_eq!(out.stats().failed, 2);
    }

    #[test]
    fn dev_full_writes_nothing_and_says_so() {
        let Ok(f) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let mut out = LineOut::new(f, 4096);
        out.push(&line(1)).unwrap();
        assert!(out.flush().is_err());
        assert_eq!(out.stats().records, 0);
        assert_eq!(out.stats().failed, 1);
    }

    #[test]
    fn a_torn_tail_is_cut_from_a_real_file_in_either_open_mode() {
        let dir = std::env::temp_dir().join(format!("vxtap-lineout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for append in [true, false] {
            let path = dir.join(format!("out-{append}.jsonl"));
            std::fs::write(&path, b"old\n").unwrap();
            let mut f = std::fs::OpenOptions::new()
                .append(append)
                .write(true)
                .open(&path)
                .unwrap();
            if !append {
                f.seek(SeekFrom::End(0)).unwrap();
            }
            f.write_all(b"whole\ntor").unwrap();
            assert!(f.cut_tail(3).unwrap());
            f.write_all(b"next\n").unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"old\nwhole\nnext\n");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
