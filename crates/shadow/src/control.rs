//! Pace and protection: `--speed` (production's inter-arrival times, scaled), `--rate` (a
//! token bucket), and the circuit breaker. Small enough to own: each is a few lines of state
//! under a mutex held for no await, and none of the rate-limiting crates paces by a second
//! clock (packet time) as `--speed` must.

use std::sync::Mutex;
use std::time::{Duration, Instant};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Maps packet time to wall-clock time: the first request seen is sent at once, every later
/// one its production offset (scaled by `1 / speed`) after it.
#[derive(Debug)]
pub struct Pacer {
    speed: f64,
    anchor: Mutex<Option<(u64, Instant)>>,
}

impl Pacer {
    /// A pacer at `speed` (0: no pacing).
    pub fn new(speed: f64) -> Pacer {
        Pacer {
            speed,
            anchor: Mutex::new(None),
        }
    }

    /// When a request first sent at packet time `ts_ns` is due; None without pacing.
    pub fn due(&self, ts_ns: u64) -> Option<Instant> {
        if self.speed <= 0.0 {
            return None;
        }
        let mut a = lock(&self.anchor);
        let (ts0, t0) = *a.get_or_insert((ts_ns, Instant::now()));
        let offset = ts_ns.saturating_sub(ts0) as f64 / self.speed;
        // Capped at a day: a capture spanning years at a small speed must not overflow.
        Some(t0 + Duration::from_nanos(offset.min(86_400e9) as u64))
    }
}

/// A token bucket of one token refilled `rate` times a second (GCRA): requests are spaced
/// evenly, without bursts that would hit the candidate harder than `--rate` says.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// At most `rate` per second (0: no limit).
    pub fn new(rate: f64) -> RateLimiter {
        RateLimiter {
            interval: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)),
            next: Mutex::new(None),
        }
    }

    /// Takes the next slot: the instant this request may go (now or later).
    pub fn slot(&self) -> Option<Instant> {
        let interval = self.interval?;
        let now = Instant::now();
        let mut next = lock(&self.next);
        let at = next.map_or(now, |n| n.max(now));
        *next = Some(at + interval);
        Some(at)
    }
}

/// The breaker's state, as the gauge shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Sending.
    Closed = 0,
    /// Not sending until the cooldown ends.
    Open = 1,
    /// One probe in flight; its outcome closes or reopens.
    HalfOpen = 2,
}

#[derive(Debug)]
struct BreakerInner {
    state: BreakerState,
    failures: u32,
    open_until: Option<Instant>,
    opens: u64,
}

/// Stops sending after `threshold` consecutive failures, for `cooldown`; then lets one probe
/// through, whose success closes it and whose failure opens it again.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<BreakerInner>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold,
            cooldown,
            inner: Mutex::new(BreakerInner {
                state: BreakerState::Closed,
                failures: 0,
                open_until: None,
                opens: 0,
            }),
        }
    }

    /// Whether a request may go now (a true in the open state makes it the probe).
    pub fn allow(&self) -> bool {
        let mut b = lock(&self.inner);
        match b.state {
            BreakerState::Closed => true,
            BreakerState::HalfOpen => false,
            BreakerState::Open => {
                if b.open_until.is_some_and(|t| Instant::now() >= t) {
                    b.state = BreakerState::HalfOpen;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// The candidate answered.
    pub fn success(&self) {
        let mut b = lock(&self.inner);
        b.failures = 0;
        b.state = BreakerState::Closed;
    }

    /// The candidate did not answer (error or timeout).
    pub fn failure(&self) {
        let mut b = lock(&self.inner);
        b.failures = b.failures.saturating_add(1);
        if b.state == BreakerState::HalfOpen
            || (b.state == BreakerState::Closed && b.failures >= self.threshold)
        {
            b.state = BreakerState::Open;
            b.open_until = Some(Instant::now() + self.cooldown);
            b.opens += 1;
        }
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        lock(&self.inner).state
    }

    /// Times it opened.
    pub fn opens(&self) -> u64 {
        lock(&self.inner).opens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_probes_and_closes() {
        let b = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert!(b.allow());
            b.failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.success();
        for _ in 0..3 {
            assert!(b.allow());
            b.failure();
        }
        assert_eq!((b.state(), b.opens()), (BreakerState::Open, 1));
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "the probe");
        assert!(!b.allow(), "one probe at a time");
        b.failure();
        assert_eq!((b.state(), b.opens()), (BreakerState::Open, 2));
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
    }

    #[test]
    fn rate_spaces_slots_evenly() {
        let r = RateLimiter::new(100.0);
        let a = r.slot().unwrap();
        let b = r.slot().unwrap();
        let c = r.slot().unwrap();
        assert_eq!(b - a, Duration::from_millis(10));
        assert_eq!(c - b, Duration::from_millis(10));
        assert!(RateLimiter::new(0.0).slot().is_none());
    }

    #[test]
    fn pacer_scales_packet_time() {
        let p = Pacer::new(2.0);
        let t0 = p.due(1_000_000_000).unwrap();
        let t1 = p.due(1_100_000_000).unwrap();
        assert_eq!(t1 - t0, Duration::from_millis(50));
        // Earlier than the anchor: due at once (the anchor).
        assert_eq!(p.due(0).unwrap(), t0);
        assert!(Pacer::new(0.0).due(5).is_none());
    }
}
