//! Liveness of the pipeline's threads, for `/readyz`: every thread beats a heartbeat; the
//! pipeline is ready only while every beat is recent and the output is not failing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One thread's heartbeat.
#[derive(Debug)]
pub struct Beat {
    name: String,
    last_ms: AtomicU64,
}

impl Beat {
    /// Records that the thread is making progress now.
    pub fn beat(&self) {
        self.last_ms.store(now_ms(), Ordering::Relaxed);
    }
}

/// Shared health state of the pipeline.
#[derive(Debug, Default)]
pub struct Health {
    beats: std::sync::Mutex<Vec<Arc<Beat>>>,
    output_failing: AtomicBool,
    stopping: AtomicBool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Health {
    /// Registers a thread and returns its heartbeat (already beating).
    pub fn register(&self, name: impl Into<String>) -> Arc<Beat> {
        let beat = Arc::new(Beat {
            name: name.into(),
            last_ms: AtomicU64::new(now_ms()),
        });
        if let Ok(mut beats) = self.beats.lock() {
            beats.push(beat.clone());
        }
        beat
    }

    /// Marks the output as failing (or recovered).
    pub fn set_output_failing(&self, failing: bool) {
        self.output_failing.store(failing, Ordering::Relaxed);
    }

    /// Marks the process as shutting down (not ready: the NLB should stop sending).
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// `Ok` when ready; otherwise the reasons, one per line.
    pub fn readiness(&self, max_silence_ms: u64) -> Result<(), String> {
        let now = now_ms();
        let mut problems = Vec::new();
        if self.stopping.load(Ordering::Relaxed) {
            problems.push("shutting down".to_string());
        }
        if self.output_failing.load(Ordering::Relaxed) {
            problems.push("output is failing".to_string());
        }
        if let Ok(beats) = self.beats.lock() {
            for b in beats.iter() {
                let silent = now.saturating_sub(b.last_ms.load(Ordering::Relaxed));
                if silent > max_silence_ms {
                    problems.push(format!("thread {} stalled for {} ms", b.name, silent));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

/// A monotonic stopwatch used to rate-limit periodic work without syscalls per packet.
#[derive(Debug)]
pub struct Every {
    period: std::time::Duration,
    next: Instant,
}

impl Every {
    /// Fires at most once per `period`.
    pub fn new(period: std::time::Duration) -> Self {
        Every {
            period,
            next: Instant::now() + period,
        }
    }

    /// True when the period has elapsed since the last time this returned true.
    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.next {
            self.next = now + self.period;
            true
        } else {
            false
        }
    }
}

/// How often a failing output is logged (`listen` and `replay`).
pub const OUTPUT_ERROR_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Logs a recurring error at most once per period, saying how many were left out between: a
/// failing disk must be visible in the log without flooding it once per record.
#[derive(Debug)]
pub struct RateLimitedLog {
    period: std::time::Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    /// At most one line per `period`.
    pub fn new(period: std::time::Duration) -> Self {
        RateLimitedLog {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// Logs `what: err` now, or counts it to be mentioned with the next line. Returns whether
    /// it logged.
    pub fn error(&mut self, what: &str, err: &dyn std::fmt::Display) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.period)
        {
            self.suppressed += 1;
            return false;
        }
        if self.suppressed > 0 {
            tracing::error!(
                "{what}: {err} ({} more such errors since the last report)",
                self.suppressed
            );
        } else {
            tracing::error!("{what}: {err}");
        }
        self.last = Some(now);
        self.suppressed = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalls_and_output_failures_make_it_unready() {
        let h = Health::default();
        let b = h.register("worker-0");
        assert!(h.readiness(10_000).is_ok());
        b.last_ms.store(now_ms() - 20_000, Ordering::Relaxed);
        let err = h.readiness(10_000).unwrap_err();
        assert!(err.contains("worker-0"), "{err}");
        b.beat();
        h.set_output_failing(true);
        assert!(h.readiness(10_000).unwrap_err().contains("output"));
    }

    #[test]
    fn rate_limited_log_logs_once_per_period() {
        let mut log = RateLimitedLog::new(std::time::Duration::from_secs(3600));
        assert!(log.error("output", &"disk full"));
        for _ in 0..1000 {
            assert!(!log.error("output", &"disk full"));
        }
        assert_eq!(log.suppressed, 1000);
        let mut log = RateLimitedLog::new(std::time::Duration::ZERO);
        assert!(log.error("output", &"a") && log.error("output", &"b"));
    }
}
