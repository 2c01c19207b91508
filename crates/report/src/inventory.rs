//! The endpoint inventory: per endpoint, how often it was called, how it answered and how fast;
//! for the whole input, the error rate over time, the flags, the VNIs and mirror sources.
//!
//! Latency is the exchange's duration (first request byte to last response byte, from packet
//! times) in an HdrHistogram with one significant digit: about 6% relative error per value,
//! 1.7 KiB per endpoint, so 10,000 endpoints (the default cap) take about 17 MiB. Exchanges
//! whose request was not seen are counted apart (they have no endpoint).

use crate::endpoint::{EndpointCap, EndpointKey, Routes, DEFAULT_MAX_ENDPOINTS};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::net::IpAddr;
use vxtap_http::{Exchange, Flag};

/// Longest latency the histograms hold (1 hour, in microseconds); longer ones are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Buckets of the error-rate timeline; past it the buckets double in width.
const TIMELINE_BUCKETS: usize = 120;
/// Distinct VNIs and mirror sources kept (the rest are counted together).
const MAX_LABELS: usize = 256;

fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 1).expect("constant bounds are valid")
}

/// What is known about one endpoint.
#[derive(Clone, Debug)]
pub struct EndpointStats {
    /// Exchanges.
    pub count: u64,
    /// Final responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without a response.
    pub no_response: u64,
    /// Durations in microseconds.
    pub latency: Histogram<u32>,
    /// Exchanges per flag, indexed by [`Flag::index`].
    pub flags: [u64; Flag::COUNT],
    /// First and last exchange time (ns since the epoch).
    pub first_ns: u64,
    /// See `first_ns`.
    pub last_ns: u64,
}

impl Default for EndpointStats {
    fn default() -> Self {
        EndpointStats {
            count: 0,
            statuses: BTreeMap::new(),
            no_response: 0,
            latency: histogram(),
            flags: [0; Flag::COUNT],
            first_ns: u64::MAX,
            last_ns: 0,
        }
    }
}

impl EndpointStats {
    fn add(&mut self, ex: &Exchange) {
        self.count += 1;
        match ex.response.as_ref().and_then(|r| r.status) {
            Some(s) => *self.statuses.entry(s).or_default() += 1,
            None => self.no_response += 1,
        }
        if let Some(us) = ex.timing.duration_us() {
            self.latency.saturating_record(us.clamp(1, MAX_LATENCY_US));
        }
        for f in ex.flags.iter() {
            self.flags[f.index()] += 1;
        }
        self.first_ns = self.first_ns.min(ex.ts_ns);
        self.last_ns = self.last_ns.max(ex.ts_ns);
    }

    /// Responses with a 5xx status plus requests without any response.
    pub fn errors(&self) -> u64 {
        self.no_response + self.statuses.range(500..600).map(|(_, n)| n).sum::<u64>()
    }

    /// Responses with a 4xx status.
    pub fn client_errors(&self) -> u64 {
        self.statuses.range(400..500).map(|(_, n)| n).sum()
    }

    /// Latency quantile in microseconds (None without a timed exchange).
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        (!self.latency.is_empty()).then(|| self.latency.value_at_quantile(q))
    }
}

/// Requests and errors per time bucket; the bucket width doubles whenever the buckets would
/// exceed [`TIMELINE_BUCKETS`], so any span fits in a bounded map.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// Bucket width in nanoseconds.
    pub width_ns: u64,
    /// Bucket start index (time / width) to (exchanges, errors).
    pub buckets: BTreeMap<u64, (u64, u64)>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            width_ns: 1_000_000_000,
            buckets: BTreeMap::new(),
        }
    }
}

impl Timeline {
    fn add(&mut self, ts_ns: u64, error: bool) {
        let b = self.buckets.entry(ts_ns / self.width_ns).or_default();
        b.0 += 1;
        b.1 += u64::from(error);
        while self.span() > TIMELINE_BUCKETS as u64 {
            self.width_ns = self.width_ns.saturating_mul(2);
            let old = std::mem::take(&mut self.buckets);
            for (k, (n, e)) in old {
                let b = self.buckets.entry(k / 2).or_default();
                b.0 += n;
                b.1 += e;
            }
        }
    }

    /// Buckets between the first and the last (inclusive).
    fn span(&self) -> u64 {
        match (self.buckets.keys().next(), self.buckets.keys().next_back()) {
            (Some(a), Some(b)) => b - a + 1,
            _ => 0,
        }
    }
}

/// The inventory of a whole input.
#[derive(Debug)]
pub struct Inventory {
    /// Per endpoint, capped.
    pub endpoints: EndpointCap<EndpointKey, EndpointStats>,
    /// Every exchange, whatever its endpoint (for the overall histogram and status mix).
    pub all: EndpointStats,
    /// Exchanges whose request was not seen.
    pub without_request: u64,
    /// Error rate over time.
    pub timeline: Timeline,
    /// Exchanges per VNI (None: not encapsulated), capped at [`MAX_LABELS`].
    pub vnis: BTreeMap<Option<u32>, u64>,
    /// Exchanges per mirror source, capped at [`MAX_LABELS`].
    pub mirror_sources: BTreeMap<Option<IpAddr>, u64>,
    /// Exchanges whose VNI or mirror source did not fit under the cap.
    pub labels_overflow: u64,
    /// Route templates.
    routes: Routes,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory::new(DEFAULT_MAX_ENDPOINTS)
    }
}

impl Inventory {
    /// An empty inventory keeping at most `max_endpoints` endpoints.
    pub fn new(max_endpoints: usize) -> Self {
        Inventory {
            endpoints: EndpointCap::new(max_endpoints),
            all: EndpointStats::default(),
            without_request: 0,
            timeline: Timeline::default(),
            vnis: BTreeMap::new(),
            mirror_sources: BTreeMap::new(),
            labels_overflow: 0,
            routes: Routes::with_max(max_endpoints),
        }
    }

    /// Counts one exchange.
    pub fn add(&mut self, ex: &Exchange) {
        self.all.add(ex);
        match self.routes.endpoint_of(ex) {
            Some(k) => self.endpoints.entry(k).add(ex),
            None => self.without_request += 1,
        }
        let error = ex
            .response
            .as_ref()
            .and_then(|r| r.status)
            .is_none_or(|s| s >= 500);
        self.timeline.add(ex.ts_ns, error);
        let mut overflow = false;
        if self.vnis.len() < MAX_LABELS || self.vnis.contains_key(&ex.vni) {
            *self.vnis.entry(ex.vni).or_default() += 1;
        } else {
            overflow = true;
        }
        if self.mirror_sources.len() < MAX_LABELS
            || self.mirror_sources.contains_key(&ex.mirror_source)
        {
            *self.mirror_sources.entry(ex.mirror_source).or_default() += 1;
        } else {
            overflow = true;
        }
        self.labels_overflow += u64::from(overflow);
    }

    /// Endpoints by request count, most called first (ties by key, so the order is stable).
    pub fn ranked(&self) -> Vec<(&EndpointKey, &EndpointStats)> {
        let mut v: Vec<_> = self.endpoints.map.iter().collect();
        v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
        v
    }

    /// Exchanges in total.
    pub fn total(&self) -> u64 {
        self.all.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ex;

    #[test]
    fn counts_statuses_latency_and_errors_per_endpoint() {
        let mut inv = Inventory::new(10);
        for i in 0..100 {
            let status = if i % 10 == 0 { 503 } else { 200 };
            inv.add(&ex("GET", &format!("/a?i={i}"), status, None, i, 10 + i));
        }
        inv.add(&ex("POST", "/b", 201, None, 5, 3));
        let ranked = inv.ranked();
        assert_eq!(ranked[0].0.to_string(), "GET /a");
        let a = ranked[0].1;
        assert_eq!(a.count, 100);
        assert_eq!(a.statuses[&503], 10);
        assert_eq!(a.errors(), 10);
        // Durations 12..=111 ms (request start to response end): p50 near 61 ms.
        let p50 = a.quantile_us(0.5).unwrap();
        assert!((57_000..=66_000).contains(&p50), "{p50}");
        assert!(a.quantile_us(0.99).unwrap() >= 100_000);
        assert_eq!(inv.total(), 101);
        assert_eq!(inv.vnis[&Some(101)], 101);
    }

    #[test]
    fn the_timeline_stays_bounded_over_any_span() {
        let mut t = Timeline::default();
        for i in 0..10_000u64 {
            t.add(i * 37 * 1_000_000_000, i % 3 == 0);
        }
        assert!(t.buckets.len() <= TIMELINE_BUCKETS);
        let (n, e): (u64, u64) = t
            .buckets
            .values()
            .fold((0, 0), |(a, b), (n, e)| (a + n, b + e));
        assert_eq!((n, e), (10_000, 3334));
    }

    #[test]
    fn ids_in_paths_make_one_template() {
        let mut inv = Inventory::new(100);
        for i in 0..10 {
            inv.add(&ex("GET", &format!("/item/{i}"), 200, None, i, 1));
        }
        assert_eq!(inv.endpoints.map.len(), 1);
        let key = inv.endpoints.map.keys().next().unwrap();
        assert_eq!(
            (key.method.as_str(), key.route.as_str()),
            ("GET", "/item/{id}")
        );
    }

    #[test]
    fn endpoints_past_the_cap_are_counted_together() {
        let mut inv = Inventory::new(3);
        // Literal segments (no id shape, few values): each path is its own template.
        for i in 0..10u8 {
            let path = format!("/item/x{}", char::from(b'a' + i));
            inv.add(&ex("GET", &path, 200, None, u64::from(i), 1));
        }
        assert_eq!(inv.endpoints.map.len(), 3);
        assert_eq!(inv.endpoints.overflow.count, 7);
    }
}
