//! The stage's counters, shared by the pipeline thread, the sender and the record writer
//! (relaxed atomics: each is a count, read only for metrics and the end of the run), and its
//! latency histograms (Prometheus, registered into the binary's registry).

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

use prometheus::{HistogramOpts, HistogramVec};

use crate::control::BreakerState;
use crate::record::{ErrorKind, SkipReason, Verdict};

/// Live counters.
#[derive(Debug)]
pub struct ShadowStats {
    verdicts: [AtomicU64; 3],
    skipped: Vec<AtomicU64>,
    errors: Vec<AtomicU64>,
    pub(crate) inflight: AtomicI64,
    pub(crate) queue_dropped: AtomicU64,
    pub(crate) queued_bytes: AtomicUsize,
    pub(crate) queued_jobs: AtomicUsize,
    /// Signalled when a job leaves the queue (a waiting `offer` looks again).
    pub(crate) room: (std::sync::Mutex<()>, std::sync::Condvar),
    pub(crate) records_written: AtomicU64,
    pub(crate) record_errors: AtomicU64,
    pub(crate) breaker: AtomicU64,
    pub(crate) breaker_opens: AtomicU64,
    /// `vxtap_shadow_latency_seconds{side}`.
    pub latency: HistogramVec,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Records by verdict (`sent`, `skipped`, `error`).
    pub verdicts: Vec<(&'static str, u64)>,
    /// Skipped exchanges by reason.
    pub skipped: Vec<(&'static str, u64)>,
    /// Errors by kind.
    pub errors: Vec<(&'static str, u64)>,
    /// Requests in flight now.
    pub inflight: i64,
    /// Exchanges dropped because the queue was full.
    pub queue_dropped: u64,
    /// Bytes the queue holds now.
    pub queued_bytes: u64,
    /// Records written.
    pub records_written: u64,
    /// Records that could not be written (the output failed).
    pub record_errors: u64,
    /// Breaker state (0 closed, 1 open, 2 half-open).
    pub breaker_state: u64,
    /// Times the breaker opened.
    pub breaker_opens: u64,
}

impl Default for ShadowStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ShadowStats {
    /// Zeroed counters.
    pub fn new() -> ShadowStats {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "vxtap_shadow_latency_seconds",
                "Shadowed exchanges' latency: production (first request byte to last response \
                 byte, packet time) and candidate (request sent to last response byte).",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["side"],
        )
        .expect("static histogram definition is valid");
        ShadowStats {
            verdicts: Default::default(),
            skipped: zeros(SkipReason::ALL.len()),
            errors: zeros(ErrorKind::ALL.len()),
            inflight: AtomicI64::new(0),
            queue_dropped: AtomicU64::new(0),
            queued_bytes: AtomicUsize::new(0),
            queued_jobs: AtomicUsize::new(0),
            room: Default::default(),
            records_written: AtomicU64::new(0),
            record_errors: AtomicU64::new(0),
            breaker: AtomicU64::new(0),
            breaker_opens: AtomicU64::new(0),
            latency,
        }
    }

    pub(crate) fn verdict(&self, v: Verdict, skip: Option<SkipReason>, err: Option<ErrorKind>) {
        self.verdicts[v as usize].fetch_add(1, Relaxed);
        if let Some(s) = skip {
            self.skipped[s.index()].fetch_add(1, Relaxed);
        }
        if let Some(e) = err {
            self.errors[e.index()].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn set_breaker(&self, s: BreakerState, opens: u64) {
        self.breaker.store(s as u64, Relaxed);
        self.breaker_opens.store(opens, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            verdicts: Verdict::ALL
                .iter()
                .map(|v| (v.as_str(), self.verdicts[*v as usize].load(Relaxed)))
                .collect(),
            skipped: SkipReason::ALL
                .iter()
                .map(|s| (s.as_str(), self.skipped[s.index()].load(Relaxed)))
                .collect(),
            errors: ErrorKind::ALL
                .iter()
                .map(|e| (e.as_str(), self.errors[e.index()].load(Relaxed)))
                .collect(),
            inflight: self.inflight.load(Relaxed),
            queue_dropped: self.queue_dropped.load(Relaxed),
            queued_bytes: self.queued_bytes.load(Relaxed) as u64,
            records_written: self.records_written.load(Relaxed),
            record_errors: self.record_errors.load(Relaxed),
            breaker_state: self.breaker.load(Relaxed),
            breaker_opens: self.breaker_opens.load(Relaxed),
        }
    }
}

impl StatsSnapshot {
    /// Count for verdict `v`.
    pub fn verdict(&self, v: &str) -> u64 {
        self.verdicts
            .iter()
            .find(|(k, _)| *k == v)
            .map_or(0, |e| e.1)
    }
    /// Count for skip reason `r`.
    pub fn skipped(&self, r: &str) -> u64 {
        self.skipped
            .iter()
            .find(|(k, _)| *k == r)
            .map_or(0, |e| e.1)
    }
    /// Count for error kind `k`.
    pub fn error(&self, k: &str) -> u64 {
        self.errors.iter().find(|(n, _)| *n == k).map_or(0, |e| e.1)
    }
}
