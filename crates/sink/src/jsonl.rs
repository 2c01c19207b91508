//! The JSON-lines sink: one compact JSON object per exchange, newline-terminated, to stdout or
//! a file with size/time rotation and `reopen()` for SIGHUP.
//!
//! Rotation renames `out.jsonl` to `out.jsonl.<YYYYMMDDTHHMMSS.ffffff>Z` (UTC, so names sort in
//! time order; `.N` is appended on the rare collision) and opens a fresh `out.jsonl`. Lines are
//! only ever written whole into the buffer and the buffer is flushed before a rename, and a
//! failed write is cut back to the last whole line ([`crate::lineout`]), so each file ends on
//! a line boundary even when the disk fills.

use crate::format::{hex16, rfc3339_us};
use crate::lineout::LineOut;
use crate::SinkError;
use base64::Engine as _;
use serde::ser::{SerializeSeq, SerializeStruct, Serializer};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vxtap_http::exchange::{Message, Peer, Timing};
use vxtap_http::{Exchange, FlagSet};

/// The JSON form of an [`Exchange`]: the one place where typed values become text (RFC 3339
/// times, hex ids, bodies as UTF-8 or base64, flag labels).
///
/// Field names and order are the public schema (README.md, schema/exchange.schema.json):
/// serializing through this view must give the same bytes the record always had.
#[derive(Clone, Copy)]
pub struct Record<'a>(pub &'a Exchange);

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ex = self.0;
        let mut st = s.serialize_struct("Exchange", 12)?;
        st.serialize_field("ts", rfc3339_us(ex.ts_ns).as_str())?;
        st.serialize_field("id", hex16(ex.id).as_str())?;
        st.serialize_field("vni", &ex.vni)?;
        st.serialize_field("tunnel", &ex.tunnel)?;
        st.serialize_field("mirror_source", &ex.mirror_source)?;
        st.serialize_field("client", &PeerJson(ex.client))?;
        st.serialize_field("server", &PeerJson(ex.server))?;
        st.serialize_field("request", &ex.request.as_ref().map(MessageJson))?;
        st.serialize_field("response", &ex.response.as_ref().map(MessageJson))?;
        st.serialize_field("interim", &Interim(&ex.interim))?;
        st.serialize_field("timing", &TimingJson(ex.timing))?;
        st.serialize_field("flags", &FlagsJson(ex.flags))?;
        st.end()
    }
}

struct PeerJson(Peer);

impl Serialize for PeerJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Peer", 2)?;
        st.serialize_field("ip", &self.0.ip)?;
        st.serialize_field("port", &self.0.port)?;
        st.end()
    }
}

struct Interim<'a>(&'a [Message]);

impl Serialize for Interim<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for m in self.0 {
            seq.serialize_element(&MessageJson(m))?;
        }
        seq.end()
    }
}

struct FlagsJson(FlagSet);

impl Serialize for FlagsJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for f in self.0.iter() {
            seq.serialize_element(f.as_str())?;
        }
        seq.end()
    }
}

struct TimingJson(Timing);

impl Serialize for TimingJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = &self.0;
        let time = |ns: Option<u64>| ns.map(rfc3339_us);
        let mut st = s.serialize_struct("Timing", 6)?;
        st.serialize_field(
            "request_start",
            &time(t.request_start_ns).as_ref().map(|x| x.as_str()),
        )?;
        st.serialize_field(
            "request_end",
            &time(t.request_end_ns).as_ref().map(|x| x.as_str()),
        )?;
        st.serialize_field(
            "response_start",
            &time(t.response_start_ns).as_ref().map(|x| x.as_str()),
        )?;
        st.serialize_field(
            "response_end",
            &time(t.response_end_ns).as_ref().map(|x| x.as_str()),
        )?;
        st.serialize_field("ttfb_us", &t.ttfb_us())?;
        st.serialize_field("duration_us", &t.duration_us())?;
        st.end()
    }
}

struct MessageJson<'a>(&'a Message);

impl Serialize for MessageJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut st = s.serialize_struct("Message", 12)?;
        if let Some(v) = &m.method {
            st.serialize_field("method", v)?;
        }
        if let Some(v) = &m.uri {
            st.serialize_field("uri", v)?;
        }
        if let Some(v) = &m.start_line {
            st.serialize_field("start_line", v)?;
        }
        if let Some(v) = &m.status {
            st.serialize_field("status", v)?;
        }
        if let Some(v) = &m.reason {
            st.serialize_field("reason", v)?;
        }
        st.serialize_field("version", m.version.as_str())?;
        st.serialize_field("headers", &m.headers)?;
        st.serialize_field("body_len", &m.body_len)?;
        match &m.body {
            None => st.serialize_field("body", &None::<&str>)?,
            // Bodies that are valid UTF-8 go out as text (borrowed, no copy); anything else as
            // base64 so that the line stays valid JSON and the bytes survive.
            // simdutf8: the same verdict as std, several times faster on long bodies.
            Some(b) => match simdutf8::basic::from_utf8(&b.bytes) {
                Ok(text) => {
                    st.serialize_field("body", text)?;
                    st.serialize_field("body_encoding", "utf8")?;
                }
                Err(_) => {
                    let enc = base64::engine::general_purpose::STANDARD.encode(&b.bytes);
                    st.serialize_field("body", &enc)?;
                    st.serialize_field("body_encoding", "base64")?;
                }
            },
        }
        st.serialize_field("body_truncated", &m.body_truncated)?;
        st.serialize_field("gap_bytes", &m.gap_bytes)?;
        st.end()
    }
}

/// Output options for [`JsonLinesWriter`].
#[derive(Clone, Debug, PartialEq)]
pub struct JsonLinesConfig {
    /// File to append to; `None` writes to stdout (no rotation).
    pub path: Option<PathBuf>,
    /// Rotate before a line would take the file past this many bytes; `None`: never.
    pub rotate_bytes: Option<u64>,
    /// Rotate when the file has been open this long; `None`: never.
    pub rotate_interval: Option<Duration>,
    /// Added as a top-level `"sample_rate"` field on every record when sampling is on.
    pub sample_rate: Option<f64>,
    /// Size of the write buffer. Default 64 KiB.
    pub buffer_bytes: usize,
}

impl Default for JsonLinesConfig {
    fn default() -> Self {
        JsonLinesConfig {
            path: None,
            rotate_bytes: None,
            rotate_interval: None,
            sample_rate: None,
            buffer_bytes: 64 * 1024,
        }
    }
}

/// Counters of the writer, for metrics and readiness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records written: their whole line reached the operating system (buffered records
    /// are not counted until they do).
    pub records: u64,
    /// Bytes of those records, newlines included.
    pub bytes: u64,
    /// Records that could not be written because the output failed (dropped).
    pub failed: u64,
    /// Rotations done.
    pub rotations: u64,
    /// Reopens done (SIGHUP).
    pub reopens: u64,
    /// Operations that returned an error (serialize, write, flush, rename, open).
    pub errors: u64,
}

/// Serializes records into JSON lines exactly as [`JsonLinesWriter`] writes them, without the
/// file: workers encode in parallel and the output thread only writes bytes
/// ([`JsonLinesWriter::write_line_at`]).
#[derive(Clone, Debug, Default)]
pub struct LineEncoder {
    /// Pre-rendered `,"sample_rate":R}` tail.
    sample_tail: Option<Vec<u8>>,
}

impl LineEncoder {
    /// An encoder adding `"sample_rate"` to every object when `sample_rate` is set.
    pub fn new(sample_rate: Option<f64>) -> Result<Self, SinkError> {
        let sample_tail = match sample_rate {
            Some(r) => {
                let mut tail = b",\"sample_rate\":".to_vec();
                serde_json::to_writer(&mut tail, &r)?;
                tail.push(b'}');
                Some(tail)
            }
            None => None,
        };
        Ok(LineEncoder { sample_tail })
    }

    /// Appends the record of `ex` as one line, newline included, to `out`. On error `out` is
    /// left as it was.
    pub fn encode_exchange(&self, ex: &Exchange, out: &mut Vec<u8>) -> Result<(), SinkError> {
        self.encode(&Record(ex), out)
    }

    /// Appends `rec` as one line, newline included, to `out`. On error `out` is left as it was.
    pub fn encode<T: Serialize + ?Sized>(
        &self,
        rec: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), SinkError> {
        let start = out.len();
        // sonic-rs escapes strings with SIMD and writes the same bytes as serde_json (the
        // property test `sonic_rs_writes_what_serde_json_writes` holds it to that): bodies and
        // headers are most of a record, and serde_json's byte-at-a-time escaping took 16 % of
        // a replay (0.95 s against 1.11 s for one worker on the reference workload).
        if let Err(e) = sonic_rs::to_writer(&mut *out, rec) {
            out.truncate(start);
            return Err(e.into());
        }
        if let Some(tail) = &self.sample_tail {
            // Splicing the field into the closing brace avoids `#[serde(flatten)]`, which
            // buffers the whole record into an intermediate tree first.
            if out.len() - start >= 2 && out.last() == Some(&b'}') {
                out.pop();
                if out.last() != Some(&b'{') {
                    out.extend_from_slice(tail);
                } else {
                    out.extend_from_slice(&tail[1..]);
                }
            }
        }
        out.push(b'\n');
        Ok(())
    }
}

/// Writes exchanges as JSON lines. Single-threaded: the binary's output thread owns it.
pub struct JsonLinesWriter {
    cfg: JsonLinesConfig,
    out: LineOut<File>,
    /// Reused for every record so serialization does not grow a String from zero each time.
    line: Vec<u8>,
    /// Bytes in the current file, counting what is still buffered.
    file_bytes: u64,
    opened_at: SystemTime,
    encoder: LineEncoder,
    stats: WriterStats,
}

impl std::fmt::Debug for JsonLinesWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesWriter")
            .field("cfg", &self.cfg)
            .field("file_bytes", &self.file_bytes)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn io_err(op: &'static str, path: Option<&Path>, source: io::Error) -> SinkError {
    SinkError::Io {
        op,
        path: path.map_or_else(|| PathBuf::from("-"), Path::to_path_buf),
        source,
    }
}

fn open_append(path: &Path, capacity: usize) -> Result<(LineOut<File>, u64), SinkError> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_err("open", Some(path), e))?;
    // Appending to an existing file (restart) counts its size towards the rotation limit.
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((LineOut::new(f, capacity), len))
}

/// `YYYYMMDDTHHMMSS.ffffffZ` for a UTC time (Howard Hinnant's civil-from-days).
pub fn utc_stamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, sod) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        d.subsec_micros()
    )
}

impl JsonLinesWriter {
    /// Opens the output (appending to an existing file).
    pub fn new(cfg: JsonLinesConfig) -> Result<Self, SinkError> {
        Self::new_at(cfg, SystemTime::now())
    }

    /// Like [`JsonLinesWriter::new`] with an explicit clock reading (for tests and replay).
    pub fn new_at(cfg: JsonLinesConfig, now: SystemTime) -> Result<Self, SinkError> {
        let cap = cfg.buffer_bytes.max(4096);
        let (out, file_bytes) = match &cfg.path {
            Some(p) => open_append(p, cap)?,
            None => {
                // A duplicate of fd 1 written to directly: std's stdout buffers and retries
                // on its own, which would hide what reached the pipe or file.
                let fd = io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| io_err("open", None, e))?;
                (LineOut::new(File::from(fd), cap), 0)
            }
        };
        let encoder = LineEncoder::new(cfg.sample_rate)?;
        Ok(JsonLinesWriter {
            cfg,
            out,
            line: Vec::with_capacity(4096),
            file_bytes,
            opened_at: now,
            encoder,
            stats: WriterStats::default(),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> WriterStats {
        let o = self.out.stats();
        WriterStats {
            records: o.records,
            bytes: o.bytes,
            failed: o.failed,
            ..self.stats
        }
    }

    /// Records accepted but still buffered (neither written nor failed yet).
    pub fn pending(&self) -> u64 {
        self.out.pending()
    }

    /// The count of records written, readable by another thread while this writer is blocked
    /// in a write (a shutdown deadline reports what never made it out).
    pub fn written_counter(&self) -> Arc<AtomicU64> {
        self.out.progress()
    }

    /// True while the output does not take data: the last write failed and none succeeded
    /// since, or the output was given up (for readiness; an idle flush proves nothing).
    pub fn output_failing(&self) -> bool {
        self.out.failing()
    }

    /// Set once the output was given up for good: `BrokenPipe` when the reader of a pipe went
    /// away, or the error that left a line torn on an output that cannot be cut back. Every
    /// later record then counts as failed.
    pub fn stopped(&self) -> Option<io::ErrorKind> {
        self.out.stopped()
    }

    /// Drops the buffered records without writing them (counted as failed): shutdown gave up.
    pub fn discard_pending(&mut self) {
        self.out.discard();
    }

    /// The output file, `None` for stdout.
    pub fn path(&self) -> Option<&Path> {
        self.cfg.path.as_deref()
    }

    /// Writes one exchange as a line (buffered), rotating first when due.
    pub fn write(&mut self, ex: &Exchange) -> Result<(), SinkError> {
        self.write_at(ex, SystemTime::now())
    }

    /// Like [`JsonLinesWriter::write`] with an explicit clock reading.
    pub fn write_at(&mut self, ex: &Exchange, now: SystemTime) -> Result<(), SinkError> {
        self.write_record_at(&Record(ex), now)
    }

    /// Writes any serializable object as a line (the `sample_rate` field is added to objects).
    ///
    /// An `Io` error with op `rename` or `open` means the rotation failed but the record was
    /// still accepted (for the current file). An error with op `write` means the output
    /// failed: what it could not write is counted in [`WriterStats::failed`], and this record
    /// too once the output was given up ([`JsonLinesWriter::stopped`]); otherwise the record
    /// waits in the buffer for the next flush. Any other error means it was not accepted.
    pub fn write_record_at<T: Serialize + ?Sized>(
        &mut self,
        rec: &T,
        now: SystemTime,
    ) -> Result<(), SinkError> {
        let r = self.write_inner(rec, now);
        if r.is_err() {
            self.stats.errors += 1;
        }
        r
    }

    fn write_inner<T: Serialize + ?Sized>(
        &mut self,
        rec: &T,
        now: SystemTime,
    ) -> Result<(), SinkError> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let r = self
            .encoder
            .encode(rec, &mut line)
            .and_then(|()| self.write_line_inner(&line, now));
        self.line = line;
        r
    }

    /// Writes one line that a [`LineEncoder`] made (newline included), rotating first when due.
    /// Errors count and mean what they mean for [`JsonLinesWriter::write_record_at`].
    pub fn write_line_at(&mut self, line: &[u8], now: SystemTime) -> Result<(), SinkError> {
        let r = self.write_line_inner(line, now);
        if r.is_err() {
            self.stats.errors += 1;
        }
        r
    }

    /// Counts `n` records that failed before they reached the writer (serialized elsewhere).
    pub fn add_errors(&mut self, n: u64) {
        self.stats.errors += n;
    }

    /// The encoder this writer uses, for workers that serialize in parallel.
    pub fn encoder(&self) -> &LineEncoder {
        &self.encoder
    }

    fn write_line_inner(&mut self, line: &[u8], now: SystemTime) -> Result<(), SinkError> {
        let len = line.len() as u64;
        let mut rotate_err = None;
        if self.rotation_due(len, now) {
            if let Err(e) = self.rotate_inner(now) {
                // A failed rotation must not lose the record: it goes to the current file, and
                // the next attempt waits for another full size or interval instead of failing
                // on every line.
                self.file_bytes = 0;
                self.opened_at = now;
                rotate_err = Some(e);
            }
        }
        let path = self.cfg.path.as_deref();
        self.out.push(line).map_err(|e| io_err("write", path, e))?;
        self.file_bytes += len;
        rotate_err.map_or(Ok(()), Err)
    }

    fn rotation_due(&self, next_len: u64, now: SystemTime) -> bool {
        if self.cfg.path.is_none() || self.file_bytes == 0 {
            return false;
        }
        let by_size = self
            .cfg
            .rotate_bytes
            .is_some_and(|max| self.file_bytes + next_len > max);
        let by_time = self.cfg.rotate_interval.is_some_and(|iv| {
            now.duration_since(self.opened_at)
                .is_ok_and(|age| age >= iv)
        });
        by_size || by_time
    }

    /// Rotates now if the time limit has passed (call from an idle tick so a quiet output still
    /// rotates on schedule).
    pub fn tick(&mut self, now: SystemTime) -> Result<(), SinkError> {
        if self.rotation_due(0, now) {
            if let Err(e) = self.rotate_at(now) {
                // Retry after another interval rather than on every tick.
                self.opened_at = now;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Flushes, renames the file to `<path>.<UTC stamp>` and opens a fresh one; returns the
    /// rotated file's path (`None` for stdout, or when the file had vanished).
    pub fn rotate_at(&mut self, now: SystemTime) -> Result<Option<PathBuf>, SinkError> {
        let r = self.rotate_inner(now);
        if r.is_err() {
            self.stats.errors += 1;
        }
        r
    }

    fn rotate_inner(&mut self, now: SystemTime) -> Result<Option<PathBuf>, SinkError> {
        let Some(path) = self.cfg.path.clone() else {
            return Ok(None);
        };
        self.flush_inner()?;
        // Built on the OsStr so that a path that is not UTF-8 is not mangled by display().
        let mut base = path.as_os_str().to_owned();
        base.push(".");
        base.push(utc_stamp(now));
        let mut target = PathBuf::from(&base);
        let mut n = 1u32;
        while target.exists() {
            let mut name = base.clone();
            name.push(format!(".{n}"));
            target = PathBuf::from(name);
            n += 1;
        }
        match std::fs::rename(&path, &target) {
            Ok(()) => {}
            // Someone else moved or deleted the file: there is nothing to rename, and a fresh
            // file is exactly what rotation wants.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.open_fresh(&path, now)?;
                self.stats.rotations += 1;
                return Ok(None);
            }
            Err(e) => return Err(io_err("rename", Some(&path), e)),
        }
        self.open_fresh(&path, now)?;
        self.stats.rotations += 1;
        Ok(Some(target))
    }

    fn open_fresh(&mut self, path: &Path, now: SystemTime) -> Result<(), SinkError> {
        let (mut w, len) = open_append(path, self.cfg.buffer_bytes.max(4096))?;
        w.inherit(&self.out);
        self.out = w;
        self.file_bytes = len;
        self.opened_at = now;
        Ok(())
    }

    /// Flushes and reopens the file by name (SIGHUP after logrotate moved it). A no-op on
    /// stdout.
    pub fn reopen(&mut self) -> Result<(), SinkError> {
        let r = self.reopen_inner();
        if r.is_err() {
            self.stats.errors += 1;
        }
        r
    }

    fn reopen_inner(&mut self) -> Result<(), SinkError> {
        // Flush first: buffered lines belong to the file they were written for (the moved one).
        self.flush_inner()?;
        if let Some(path) = self.cfg.path.clone() {
            self.open_fresh(&path, SystemTime::now())?;
            self.stats.reopens += 1;
        }
        Ok(())
    }

    /// Writes buffered lines out to the file or stdout.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        let r = self.flush_inner();
        if r.is_err() {
            self.stats.errors += 1;
        }
        r
    }

    fn flush_inner(&mut self) -> Result<(), SinkError> {
        let path = self.cfg.path.as_deref();
        self.out.flush().map_err(|e| io_err("flush", path, e))
    }
}

impl Drop for JsonLinesWriter {
    fn drop(&mut self) {
        // Best effort: an error here has nowhere to go (callers flush and check first).
        let _ = self.flush_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{exchange, request, response};

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The line encoder uses sonic-rs for speed; the record's bytes must stay exactly what
        /// serde_json writes (the documented schema, golden files, ids users diff on), for any
        /// text: control characters, quotes, backslashes, non-ASCII, empty strings.
        #[test]
        fn sonic_rs_writes_what_serde_json_writes(
            method in proptest::option::of(".{0,8}"),
            uri in "(\\PC|[\\x00-\\x1f\"\\\\])*",
            headers in proptest::collection::vec((".{0,12}", "(\\PC|[\\x00-\\x1f\x7f\"\\\\/])*"), 0..6),
            body in proptest::option::of(proptest::prelude::any::<String>()),
            status in proptest::option::of(proptest::prelude::any::<u16>()),
            ips in (proptest::prelude::any::<std::net::IpAddr>(), proptest::prelude::any::<std::net::IpAddr>()),
            mirror in proptest::option::of(proptest::prelude::any::<std::net::IpAddr>()),
            nums in (proptest::prelude::any::<u64>(), proptest::option::of(proptest::prelude::any::<u32>()), proptest::option::of(proptest::prelude::any::<u64>())),
            sample in proptest::option::of(0.0001f64..=1.0),
        ) {
            let hdrs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let mut req = request(method.as_deref().unwrap_or("GET"), &uri, &hdrs, body.as_deref());
            req.method = method.clone();
            req.body_len = nums.0;
            let mut resp = response(status.unwrap_or(200), &hdrs, body.as_deref());
            resp.status = status;
            resp.gap_bytes = nums.0 / 3;
            let mut ex = exchange(Some(req.clone()), Some(resp));
            ex.client.ip = ips.0;
            ex.server.ip = ips.1;
            ex.mirror_source = mirror;
            ex.vni = nums.1;
            ex.timing.request_start_ns = Some(nums.0);
            ex.timing.request_end_ns = nums.2;
            ex.timing.response_start_ns = nums.2.map(|t| t.saturating_add(nums.0 % 1_000_000_007));
            ex.interim.push(req);
            ex.flags.insert(vxtap_http::Flag::Gap);
            ex.flags.insert(vxtap_http::Flag::NoResponse);
            let encoder = LineEncoder::new(sample).unwrap();
            let mut ours = Vec::new();
            encoder.encode_exchange(&ex, &mut ours).unwrap();
            let mut reference = serde_json::to_vec(&Record(&ex)).unwrap();
            if let Some(tail) = &encoder.sample_tail {
                reference.pop();
                reference.extend_from_slice(tail);
            }
            reference.push(b'\n');
            proptest::prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&reference));
        }
    }

    /// A fresh, empty directory under the system temp dir, unique to this process and test.
    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vxtap-sink-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn ex(i: usize) -> Exchange {
        exchange(
            Some(request(
                "GET",
                &format!("/item/{i}"),
                &[("Host", "h")],
                None,
            )),
            Some(response(200, &[], Some(&"x".repeat(i % 50)))),
        )
    }

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
    }

    /// The files of `dir` in write order: rotated ones by their (time-ordered) names, then the
    /// live file.
    fn files_in_order(dir: &Path, live: &str) -> Vec<PathBuf> {
        let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap() != live)
            .collect();
        rotated.sort();
        rotated.push(dir.join(live));
        rotated
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000.000000Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400 + 3_723, 5_000);
        assert_eq!(utc_stamp(t), "20000229T010203.000005Z");
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "20991231T235959.000000Z"
        );
    }

    #[test]
    fn size_rotation_keeps_whole_lines() {
        let dir = temp_dir("size");
        let path = dir.join("out.jsonl");
        let mut w = JsonLinesWriter::new_at(
            JsonLinesConfig {
                path: Some(path.clone()),
                rotate_bytes: Some(2000),
                buffer_bytes: 4096,
                ..JsonLinesConfig::default()
            },
            t(0),
        )
        .unwrap();
        let mut expected = String::new();
        for i in 0..200 {
            let e = ex(i);
            expected.push_str(&serde_json::to_string(&Record(&e)).unwrap());
            expected.push('\n');
            w.write_at(&e, t(i as u64)).unwrap();
        }
        w.flush().unwrap();
        let stats = w.stats();
        assert_eq!(stats.records, 200);
        assert_eq!(stats.bytes, expected.len() as u64);
        assert_eq!(stats.errors, 0);
        let files = files_in_order(&dir, "out.jsonl");
        assert!(files.len() > 5, "only {} files", files.len());
        assert_eq!(stats.rotations as usize, files.len() - 1);
        let mut joined = String::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.ends_with('\n'), "{} ends mid-line", f.display());
            assert!(text.len() <= 2000, "{} too big", f.display());
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line).unwrap();
            }
            joined.push_str(&text);
        }
        assert_eq!(joined, expected);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn time_rotation_and_collisions() {
        let dir = temp_dir("time");
        let path = dir.join("out.jsonl");
        let mut w = JsonLinesWriter::new_at(
            JsonLinesConfig {
                path: Some(path.clone()),
                rotate_interval: Some(Duration::from_secs(60)),
                ..JsonLinesConfig::default()
            },
            t(0),
        )
        .unwrap();
        w.write_at(&ex(1), t(1)).unwrap();
        w.write_at(&ex(2), t(59)).unwrap();
        assert_eq!(w.stats().rotations, 0);
        w.write_at(&ex(3), t(61)).unwrap();
        assert_eq!(w.stats().rotations, 1);
        w.tick(t(100)).unwrap();
        assert_eq!(w.stats().rotations, 1);
        w.tick(t(121)).unwrap();
        assert_eq!(w.stats().rotations, 2);
        // An empty file is not rotated by time.
        w.tick(t(1000)).unwrap();
        assert_eq!(w.stats().rotations, 2);
        // Two rotations stamped with the same instant do not overwrite each other.
        w.write_at(&ex(4), t(1001)).unwrap();
        let a = w.rotate_at(t(2000)).unwrap().unwrap();
        w.write_at(&ex(5), t(2000)).unwrap();
        let b = w.rotate_at(t(2000)).unwrap().unwrap();
        assert_ne!(a, b);
        assert!(a.exists() && b.exists());
        w.flush().unwrap();
        let names: Vec<String> = files_in_order(&dir, "out.jsonl")
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 5, "{names:?}");
        assert_eq!(names[0], format!("out.jsonl.{}", utc_stamp(t(61))));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reopen_after_rename_writes_to_new_file() {
        let dir = temp_dir("reopen");
        let path = dir.join("out.jsonl");
        let mut w = JsonLinesWriter::new(JsonLinesConfig {
            path: Some(path.clone()),
            ..JsonLinesConfig::default()
        })
        .unwrap();
        w.write(&ex(1)).unwrap();
        // logrotate moves the file; lines still buffered belong to it.
        let moved = dir.join("out.jsonl.1");
        std::fs::rename(&path, &moved).unwrap();
        w.write(&ex(2)).unwrap();
        w.reopen().unwrap();
        w.write(&ex(3)).unwrap();
        w.flush().unwrap();
        let old = std::fs::read_to_string(&moved).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old.lines().count(), 2);
        assert_eq!(new.lines().count(), 1);
        assert!(new.contains("/item/3"));
        assert_eq!(w.stats().reopens, 1);
        drop(w);
        // A new writer appends rather than truncating.
        let mut w = JsonLinesWriter::new(JsonLinesConfig {
            path: Some(path.clone()),
            ..JsonLinesConfig::default()
        })
        .unwrap();
        w.write(&ex(4)).unwrap();
        drop(w);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rotation_of_a_vanished_file_keeps_records() {
        let dir = temp_dir("vanish");
        let path = dir.join("out.jsonl");
        let mut w = JsonLinesWriter::new_at(
            JsonLinesConfig {
                path: Some(path.clone()),
                rotate_bytes: Some(10),
                ..JsonLinesConfig::default()
            },
            t(0),
        )
        .unwrap();
        w.write_at(&ex(1), t(1)).unwrap();
        w.flush().unwrap();
        std::fs::remove_file(&path).unwrap();
        w.write_at(&ex(2), t(2)).unwrap();
        w.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("/item/2") && text.lines().count() == 1);
        assert_eq!(w.stats().errors, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sample_rate_field() {
        let dir = temp_dir("rate");
        let path = dir.join("out.jsonl");
        let mut w = JsonLinesWriter::new(JsonLinesConfig {
            path: Some(path.clone()),
            sample_rate: Some(0.05),
            ..JsonLinesConfig::default()
        })
        .unwrap();
        w.write(&ex(1)).unwrap();
        w.write_record_at(&serde_json::json!({}), SystemTime::now())
            .unwrap();
        w.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let v: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(v["sample_rate"], 0.05);
        assert_eq!(v["request"]["uri"], "/item/1");
        assert_eq!(lines.next(), Some(r#"{"sample_rate":0.05}"#));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors_are_typed_and_counted() {
        let dir = temp_dir("err");
        let r = JsonLinesWriter::new(JsonLinesConfig {
            path: Some(dir.join("missing/out.jsonl")),
            ..JsonLinesConfig::default()
        });
        assert!(matches!(r, Err(SinkError::Io { op: "open", .. })));
        let _ = std::fs::remove_dir_all(&dir);
        // /dev/full accepts the open and fails every write with ENOSPC.
        if Path::new("/dev/full").exists() {
            let mut w = JsonLinesWriter::new(JsonLinesConfig {
                path: Some(PathBuf::from("/dev/full")),
                ..JsonLinesConfig::default()
            })
            .unwrap();
            w.write(&ex(1)).unwrap();
            let e = w.flush().unwrap_err();
            assert!(matches!(e, SinkError::Io { op: "flush", .. }), "{e}");
            assert_eq!(w.stats().errors, 1);
            // Nothing reached the file: nothing counts as written, the record as failed.
            assert_eq!(w.stats().records, 0);
            assert_eq!(w.stats().failed, 1);
            assert_eq!(w.pending(), 0);
        }
    }
}
