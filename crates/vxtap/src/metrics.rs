//! Prometheus export. Workers keep plain `u64` counters in their own stats structs (no atomics
//! or locks on the hot path); once a second they publish a snapshot, and a scrape folds the
//! merged totals into Prometheus counters here by adding the delta since the last scrape.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::HashMap;

/// Registry plus the families created on first use, keyed by metric name.
pub struct MetricSet {
    registry: Registry,
    counters: HashMap<&'static str, IntCounterVec>,
    gauges: HashMap<&'static str, IntGaugeVec>,
    last: HashMap<(&'static str, Vec<String>), u64>,
    /// Exchange duration (first request byte to last response byte), seconds.
    pub exchange_duration: Histogram,
    /// Time to first byte (last request byte to first response byte), seconds.
    pub exchange_ttfb: Histogram,
    /// Share of connections kept by `--sample` (1 when sampling is off), so that counts can be
    /// scaled back up.
    pub sample_rate: prometheus::Gauge,
}

impl Default for MetricSet {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricSet {
    /// An empty registry with the exchange histograms registered.
    pub fn new() -> Self {
        let registry = Registry::new();
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ];
        let exchange_duration = Histogram::with_opts(
            HistogramOpts::new(
                "vxtap_http_exchange_duration_seconds",
                "First request byte to last response byte, from packet timestamps.",
            )
            .buckets(buckets.clone()),
        )
        .expect("static histogram definition is valid");
        let exchange_ttfb = Histogram::with_opts(
            HistogramOpts::new(
                "vxtap_http_exchange_ttfb_seconds",
                "Last request byte to first response byte, from packet timestamps.",
            )
            .buckets(buckets),
        )
        .expect("static histogram definition is valid");
        registry
            .register(Box::new(exchange_duration.clone()))
            .expect("first registration of a unique name");
        registry
            .register(Box::new(exchange_ttfb.clone()))
            .expect("first registration of a unique name");
        let sample_rate = prometheus::Gauge::new(
            "vxtap_sample_rate",
            "Share of connections kept by --sample (1 when off); divide counts by it to scale up.",
        )
        .expect("static gauge definition is valid");
        sample_rate.set(1.0);
        registry
            .register(Box::new(sample_rate.clone()))
            .expect("first registration of a unique name");
        MetricSet {
            registry,
            counters: HashMap::new(),
            gauges: HashMap::new(),
            last: HashMap::new(),
            exchange_duration,
            exchange_ttfb,
            sample_rate,
        }
    }

    /// Sets counter `name{labels}` to the cumulative `total` (adds the delta since last time).
    pub fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        total: u64,
    ) {
        let family = family(
            &mut self.counters,
            &self.registry,
            name,
            help,
            labels,
            IntCounterVec::new,
        );
        let values: Vec<&str> = labels.iter().map(|(_, v)| *v).collect();
        let key = (name, values.iter().map(|s| s.to_string()).collect());
        let prev = self.last.get(&key).copied().unwrap_or(0);
        if let Ok(c) = family.get_metric_with_label_values(&values) {
            // A counter never goes down; a total below the last one means a worker restarted
            // its stats, which we do not do, so clamp rather than panic.
            c.inc_by(total.saturating_sub(prev));
        }
        self.last.insert(key, total.max(prev));
    }

    /// Sets gauge `name{labels}` to `value`.
    pub fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: i64,
    ) {
        let family = family(
            &mut self.gauges,
            &self.registry,
            name,
            help,
            labels,
            IntGaugeVec::new,
        );
        let values: Vec<&str> = labels.iter().map(|(_, v)| *v).collect();
        if let Ok(g) = family.get_metric_with_label_values(&values) {
            g.set(value);
        }
    }

    /// Registers a collector another crate keeps (the shadow stage's latency histogram);
    /// a second registration of the same collector is ignored.
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) {
        let _ = self.registry.register(c);
    }

    /// Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = encoder.encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The family `name` of `map`, created and registered on first use with `make`.
fn family<'a, V>(
    map: &'a mut HashMap<&'static str, V>,
    registry: &Registry,
    name: &'static str,
    help: &'static str,
    labels: &[(&'static str, &str)],
    make: impl FnOnce(Opts, &[&str]) -> prometheus::Result<V>,
) -> &'a V
where
    V: prometheus::core::Collector + Clone + 'static,
{
    map.entry(name).or_insert_with(|| {
        let names: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
        let vec = make(Opts::new(name, help), &names)
            .expect("metric names and labels are static and valid");
        registry
            .register(Box::new(vec.clone()))
            .expect("each name is registered once");
        vec
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_totals() {
        let mut m = MetricSet::new();
        m.counter("vxtap_test_total", "t", &[("reason", "a")], 5);
        m.counter("vxtap_test_total", "t", &[("reason", "a")], 7);
        m.counter("vxtap_test_total", "t", &[("reason", "b")], 1);
        m.gauge("vxtap_test_active", "g", &[], 3);
        let text = m.render();
        assert!(text.contains("vxtap_test_total{reason=\"a\"} 7"), "{text}");
        assert!(text.contains("vxtap_test_total{reason=\"b\"} 1"), "{text}");
        assert!(text.contains("vxtap_test_active 3"), "{text}");
    }
}
