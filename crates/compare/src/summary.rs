//! Aggregation per endpoint: verdict counts, status-class shifts, latency percentiles per
//! side, and per counting path the differences against the noise, reported by Diffy's rule.
//!
//! Noise per (endpoint, path) comes from three measurements, and the largest estimate wins:
//! shape noise (both values timestamps/UUIDs/tokens: counted with the differences themselves),
//! production against itself (identical requests, different production responses: a rate over
//! those repeat pairs), and a baseline secondary against production (a rate over the baseline
//! pairs, as Diffy's primary/secondary). Rates are scaled to the endpoint's requests. Declared
//! ignore rules remove differences before they are counted.
//!
//! Everything is bounded: counting paths per endpoint and overall have caps (differences past
//! them counted in `paths_overflow`), examples are two per path and clipped, latency histograms
//! are HDR histograms (2 significant digits, 1 µs to 1 hour) per side per endpoint, and
//! endpoints are the router's (capped, `other`).

use crate::config::{Limits, ReportRule};
use crate::diff::{Comparison, Difference, Kind, Verdict};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{self, Write};
use vxtap_routes::{EndpointId, Router};

/// Status classes: index 0 is "none" (no response), then 1xx..5xx (anything else is "none").
fn class(status: Option<u16>) -> usize {
    match status {
        Some(s @ 100..=599) => (s / 100) as usize,
        _ => 0,
    }
}

const CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];
/// Latency histograms cover 1 µs .. 1 h.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// One example of a difference at a counting path.
#[derive(Clone, Debug, Serialize)]
pub struct Example {
    /// The exchange id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Record form of the path.
    pub path: String,
    /// Production's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production: Option<Value>,
    /// The candidate's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Value>,
}

#[derive(Default)]
struct PathStat {
    kind: Option<Kind>,
    differences: u64,
    shape_noise: u64,
    self_noise: u64,
    baseline_noise: u64,
    examples: Vec<Example>,
}

impl PathStat {
    fn merge(&mut self, o: PathStat) {
        self.kind = self.kind.or(o.kind);
        self.differences += o.differences;
        self.shape_noise += o.shape_noise;
        self.self_noise += o.self_noise;
        self.baseline_noise += o.baseline_noise;
        for e in o.examples {
            if self.examples.len() < 2 {
                self.examples.push(e);
            }
        }
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<PathStat>()
            + self
                .examples
                .iter()
                .map(|e| e.path.len() + 2 * (crate::diff::MAX_EXCERPT * 4 + 64))
                .sum::<usize>()
    }
}

struct EpStats {
    requests: u64,
    verdicts: [u64; Verdict::COUNT],
    shifts: [[u64; 6]; 6],
    latency: [Option<Histogram<u32>>; 2],
    paths: HashMap<Box<str>, PathStat>,
    paths_overflow: u64,
    self_pairs: u64,
    baseline_pairs: u64,
}

impl Default for EpStats {
    fn default() -> Self {
        EpStats {
            requests: 0,
            verdicts: [0; Verdict::COUNT],
            shifts: [[0; 6]; 6],
            latency: [None, None],
            paths: HashMap::new(),
            paths_overflow: 0,
            self_pairs: 0,
            baseline_pairs: 0,
        }
    }
}

impl EpStats {
    fn merge(&mut self, o: EpStats) {
        self.requests += o.requests;
        for (a, b) in self.verdicts.iter_mut().zip(o.verdicts) {
            *a += b;
        }
        for (ra, rb) in self.shifts.iter_mut().zip(o.shifts) {
            for (a, b) in ra.iter_mut().zip(rb) {
                *a += b;
            }
        }
        for (mine, theirs) in self.latency.iter_mut().zip(o.latency) {
            match (mine.as_mut(), theirs) {
                (Some(m), Some(t)) => {
                    // Same bounds on both: cannot fail; a failure would only lose samples.
                    let _ = m.add(&t);
                }
                (None, Some(t)) => *mine = Some(t),
                _ => {}
            }
        }
        for (k, v) in o.paths {
            self.paths.entry(k).or_default().merge(v);
        }
        self.paths_overflow += o.paths_overflow;
        self.self_pairs += o.self_pairs;
        self.baseline_pairs += o.baseline_pairs;
    }
}

/// Which noise measurement a set of differences is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseSource {
    /// Production against production for an identical request.
    SelfRepeat,
    /// A baseline secondary against production.
    Baseline,
}

/// The per-endpoint accumulator (see the module doc).
pub struct Aggregator {
    limits: Limits,
    report: ReportRule,
    eps: Vec<Option<Box<EpStats>>>,
    total_paths: usize,
    paths_overflow: u64,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new(limits: Limits, report: ReportRule) -> Aggregator {
        Aggregator {
            limits,
            report,
            eps: Vec::new(),
            total_paths: 0,
            paths_overflow: 0,
        }
    }

    fn ep(&mut self, id: EndpointId) -> &mut EpStats {
        let i = id.index();
        if self.eps.len() <= i {
            self.eps.resize_with(i + 1, || None);
        }
        self.eps[i].get_or_insert_with(Default::default)
    }

    /// The path stat of `path` at endpoint `id`, within the caps (None: counted overflow).
    fn path_stat(&mut self, id: EndpointId, path: &str) -> Option<&mut PathStat> {
        let (per_ep, total) = (self.limits.max_paths_per_endpoint, self.limits.max_paths);
        let full = self.total_paths >= total;
        let i = id.index();
        if self.eps.len() <= i {
            self.eps.resize_with(i + 1, || None);
        }
        let ep = self.eps[i].get_or_insert_with(Default::default);
        if !ep.paths.contains_key(path) {
            if full || ep.paths.len() >= per_ep {
                ep.paths_overflow += 1;
                self.paths_overflow += 1;
                return None;
            }
            self.total_paths += 1;
        }
        Some(ep.paths.entry(path.into()).or_default())
    }

    /// Whether noise at `path` is known for endpoint `id` (measured by production repeats or
    /// the baseline): what makes a record's difference `noise`.
    pub fn noise_known(&self, id: EndpointId, path: &str) -> bool {
        self.eps
            .get(id.index())
            .and_then(|e| e.as_ref())
            .and_then(|e| e.paths.get(path))
            .is_some_and(|p| p.self_noise > 0 || p.baseline_noise > 0)
    }

    /// Counts one compared pair.
    pub fn record(
        &mut self,
        id: EndpointId,
        exchange_id: Option<&str>,
        cmp: &Comparison,
        statuses: (Option<u16>, Option<u16>),
        latency_us: (Option<u64>, Option<u64>),
    ) {
        let ep = self.ep(id);
        ep.requests += 1;
        ep.verdicts[cmp.verdict.index()] += 1;
        let (p, c) = (class(statuses.0), class(statuses.1));
        if p != c && p != 0 && c != 0 {
            ep.shifts[p][c] += 1;
        }
        for (side, us) in [latency_us.0, latency_us.1].into_iter().enumerate() {
            if let Some(us) = us {
                let h = ep.latency[side].get_or_insert_with(|| {
                    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2)
                        .expect("constant bounds are valid")
                });
                h.saturating_record(us.clamp(1, MAX_LATENCY_US));
            }
        }
        if matches!(cmp.verdict, Verdict::Error) {
            return;
        }
        for d in &cmp.differences {
            let Some(ps) = self.path_stat(id, &d.count_path) else {
                continue;
            };
            ps.kind.get_or_insert(d.kind);
            ps.differences += 1;
            if d.shape_noise {
                ps.shape_noise += 1;
            }
            if ps.examples.len() < 2 {
                ps.examples.push(Example {
                    id: exchange_id.map(str::to_string),
                    path: d.path.clone(),
                    production: d.production.clone(),
                    candidate: d.candidate.clone(),
                });
            }
        }
    }

    /// Counts one noise measurement pair (its differences are noise for those paths).
    pub fn record_noise(&mut self, id: EndpointId, source: NoiseSource, diffs: &[Difference]) {
        let ep = self.ep(id);
        match source {
            NoiseSource::SelfRepeat => ep.self_pairs += 1,
            NoiseSource::Baseline => ep.baseline_pairs += 1,
        }
        for d in diffs {
            if let Some(ps) = self.path_stat(id, &d.count_path) {
                match source {
                    NoiseSource::SelfRepeat => ps.self_noise += 1,
                    NoiseSource::Baseline => ps.baseline_noise += 1,
                }
            }
        }
    }

    /// Counting paths held, over all endpoints.
    pub fn paths(&self) -> usize {
        self.total_paths
    }

    /// Differences not counted because a path cap was reached.
    pub fn paths_overflow(&self) -> u64 {
        self.paths_overflow
    }

    /// An upper estimate of the heap held by path statistics and histograms.
    pub fn heap_bytes(&self) -> usize {
        let per_key = 64 + 16;
        self.eps
            .iter()
            .flatten()
            .map(|e| {
                std::mem::size_of::<EpStats>()
                    + e.paths.capacity() * (per_key + std::mem::size_of::<PathStat>())
                    + e.paths
                        .iter()
                        .map(|(k, v)| k.len() + v.bytes())
                        .sum::<usize>()
                    + e.latency
                        .iter()
                        .flatten()
                        .map(|h| h.distinct_values() * 4 + 256)
                        .sum::<usize>()
            })
            .sum::<usize>()
            + self.eps.capacity() * 8
    }

    /// The summary: endpoints merged through the router's supersessions, sorted by requests.
    pub fn summary(self, router: &Router, top_paths: usize) -> Summary {
        let report = self.report;
        let mut merged: HashMap<EndpointId, EpStats> = HashMap::new();
        for (i, e) in self.eps.into_iter().enumerate() {
            let Some(e) = e else { continue };
            let Some(id) = router.ids().nth(i) else {
                continue;
            };
            let to = router.resolve(id);
            merged.entry(to).or_default().merge(*e);
        }
        let mut endpoints: Vec<EndpointSummary> = merged
            .into_iter()
            .map(|(id, e)| endpoint_summary(router.name(id), e, report, top_paths))
            .collect();
        endpoints.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then(a.endpoint.cmp(&b.endpoint))
        });
        let mut total = Totals::default();
        for e in &endpoints {
            total.requests += e.requests;
            total.r#match += e.r#match;
            total.mismatch += e.mismatch;
            total.noise += e.noise;
            total.error += e.error;
            total.skipped += e.skipped;
            total.reported_paths += e.paths.iter().filter(|p| p.reported).count() as u64;
            for s in &e.status_shifts {
                if s.from != "none" && s.to != "none" && s.from != s.to {
                    total.status_shifts += s.count;
                }
            }
        }
        let rs = router.stats();
        Summary {
            total,
            endpoints,
            paths_overflow: self.paths_overflow,
            endpoint_overflow: rs.overflow,
            report,
        }
    }
}

fn percentile(h: &Option<Histogram<u32>>, q: f64) -> Option<u64> {
    h.as_ref()
        .filter(|h| !h.is_empty())
        .map(|h| h.value_at_quantile(q))
}

fn endpoint_summary(name: &str, e: EpStats, report: ReportRule, top: usize) -> EndpointSummary {
    let n = e.requests.max(1) as f64;
    let mut paths: Vec<PathSummary> = e
        .paths
        .into_iter()
        .filter(|(_, p)| p.differences > 0)
        .map(|(k, p)| {
            let rate = |count: u64, pairs: u64| {
                if pairs == 0 {
                    0.0
                } else {
                    count as f64 / pairs as f64 * n
                }
            };
            let noise = (p.shape_noise as f64)
                .max(rate(p.self_noise, e.self_pairs))
                .max(rate(p.baseline_noise, e.baseline_pairs));
            let raw = p.differences as f64;
            let delta = (raw - noise).abs();
            let relative = if raw + noise > 0.0 {
                delta / (raw + noise) * 100.0
            } else {
                0.0
            };
            let absolute = delta / n * 100.0;
            PathSummary {
                path: k.into_string(),
                kind: p.kind.map_or("value", Kind::as_str),
                differences: p.differences,
                noise: (noise * 100.0).round() / 100.0,
                relative: (relative * 100.0).round() / 100.0,
                absolute: (absolute * 1000.0).round() / 1000.0,
                reported: raw > noise && relative > report.relative && absolute > report.absolute,
                examples: p.examples,
            }
        })
        .collect();
    paths.sort_by(|a, b| {
        b.reported
            .cmp(&a.reported)
            .then(b.differences.cmp(&a.differences))
            .then(a.path.cmp(&b.path))
    });
    let paths_shown_omitted = paths.len().saturating_sub(top) as u64;
    paths.truncate(top);
    let mut shifts = Vec::new();
    for (p, row) in e.shifts.iter().enumerate() {
        for (c, &count) in row.iter().enumerate() {
            if count > 0 {
                shifts.push(Shift {
                    from: CLASSES[p],
                    to: CLASSES[c],
                    count,
                });
            }
        }
    }
    shifts.sort_by_key(|s| std::cmp::Reverse(s.count));
    let side = |h: &Option<Histogram<u32>>| Latency {
        count: h.as_ref().map_or(0, |h| h.len()),
        p50: percentile(h, 0.50),
        p95: percentile(h, 0.95),
        p99: percentile(h, 0.99),
    };
    let (prod, cand) = (side(&e.latency[0]), side(&e.latency[1]));
    let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if a > 0 => Some((b as f64 / a as f64 * 100.0).round() / 100.0),
        _ => None,
    };
    let latency_ratio = Ratios {
        p50: ratio(prod.p50, cand.p50),
        p95: ratio(prod.p95, cand.p95),
        p99: ratio(prod.p99, cand.p99),
    };
    EndpointSummary {
        endpoint: name.to_string(),
        requests: e.requests,
        r#match: e.verdicts[Verdict::Match.index()],
        mismatch: e.verdicts[Verdict::Mismatch.index()],
        noise: e.verdicts[Verdict::Noise.index()],
        error: e.verdicts[Verdict::Error.index()],
        skipped: e.verdicts[Verdict::Skipped.index()],
        status_shifts: shifts,
        latency_us: LatencySides {
            production: prod,
            candidate: cand,
            ratio: latency_ratio,
        },
        noise_pairs: NoisePairs {
            production_repeats: e.self_pairs,
            baseline: e.baseline_pairs,
        },
        paths,
        paths_omitted: paths_shown_omitted,
        paths_overflow: e.paths_overflow,
    }
}

/// Latency percentiles of one side, microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: Option<u64>,
    /// 95th percentile.
    pub p95: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
}

/// Candidate over production per percentile.
#[derive(Clone, Debug, Serialize)]
pub struct Ratios {
    /// p50 ratio.
    pub p50: Option<f64>,
    /// p95 ratio.
    pub p95: Option<f64>,
    /// p99 ratio.
    pub p99: Option<f64>,
}

/// Both sides and the ratio.
#[derive(Clone, Debug, Serialize)]
pub struct LatencySides {
    /// Production (from packet times).
    pub production: Latency,
    /// Candidate.
    pub candidate: Latency,
    /// Candidate / production.
    pub ratio: Ratios,
}

/// A status-class shift (`2xx` -> `5xx`), or the same class (`from == to`, not a shift).
#[derive(Clone, Debug, Serialize)]
pub struct Shift {
    /// Production's class.
    pub from: &'static str,
    /// The candidate's class.
    pub to: &'static str,
    /// Pairs.
    pub count: u64,
}

/// One counting path of one endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct PathSummary {
    /// Counting form, pasteable into the config.
    pub path: String,
    /// The first kind seen.
    pub kind: &'static str,
    /// Pairs that differ there.
    pub differences: u64,
    /// The noise estimate in pairs (max of shape, production repeats and baseline, scaled).
    pub noise: f64,
    /// |differences - noise| / (differences + noise), percent.
    pub relative: f64,
    /// |differences - noise| / requests, percent.
    pub absolute: f64,
    /// Whether Diffy's rule reports it.
    pub reported: bool,
    /// Up to two examples.
    pub examples: Vec<Example>,
}

/// Noise measurement pairs of an endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct NoisePairs {
    /// Identical requests whose production responses were compared.
    pub production_repeats: u64,
    /// Baseline secondary responses compared with production.
    pub baseline: u64,
}

/// One endpoint's summary.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointSummary {
    /// Route template (`GET /users/{id}`), or `other`.
    pub endpoint: String,
    /// Pairs.
    pub requests: u64,
    /// Verdict counts.
    #[serde(rename = "match")]
    pub r#match: u64,
    /// Verdict counts.
    pub mismatch: u64,
    /// Verdict counts.
    pub noise: u64,
    /// Verdict counts.
    pub error: u64,
    /// Verdict counts.
    pub skipped: u64,
    /// Status-class pairs that differ.
    pub status_shifts: Vec<Shift>,
    /// Latency.
    pub latency_us: LatencySides,
    /// Noise measurements.
    pub noise_pairs: NoisePairs,
    /// Top paths: reported first, then by differences.
    pub paths: Vec<PathSummary>,
    /// Paths with differences past the top shown.
    pub paths_omitted: u64,
    /// Differences not counted (path caps).
    pub paths_overflow: u64,
}

/// Totals over all endpoints.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Pairs.
    pub requests: u64,
    /// Verdict counts.
    #[serde(rename = "match")]
    pub r#match: u64,
    /// Verdict counts.
    pub mismatch: u64,
    /// Verdict counts.
    pub noise: u64,
    /// Verdict counts.
    pub error: u64,
    /// Verdict counts.
    pub skipped: u64,
    /// Pairs whose status class changed.
    pub status_shifts: u64,
    /// Paths Diffy's rule reports, over all endpoints.
    pub reported_paths: u64,
}

/// The comparison summary (`--summary FILE`).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Totals.
    pub total: Totals,
    /// Per endpoint, most requests first.
    pub endpoints: Vec<EndpointSummary>,
    /// Differences not counted because a path cap was reached.
    pub paths_overflow: u64,
    /// Requests routed to `other` by the endpoint cap.
    pub endpoint_overflow: u64,
    /// The reporting rule in force.
    #[serde(serialize_with = "ser_report")]
    pub report: ReportRule,
}

fn ser_report<S: serde::Serializer>(r: &ReportRule, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("report", 2)?;
    st.serialize_field("relative_percent", &r.relative)?;
    st.serialize_field("absolute_percent", &r.absolute)?;
    st.end()
}

impl Summary {
    /// The end-of-run table: one line per endpoint (at most `max_rows`), then the reported
    /// paths.
    pub fn write_table(&self, out: &mut dyn Write, max_rows: usize) -> io::Result<()> {
        let t = &self.total;
        writeln!(
            out,
            "compare: {} pairs: {} match, {} mismatch, {} noise, {} error, {} skipped; {} status-class shifts; {} reported paths",
            t.requests, t.r#match, t.mismatch, t.noise, t.error, t.skipped, t.status_shifts, t.reported_paths
        )?;
        writeln!(
            out,
            "{:<40} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7} {:>10} {:>10} {:>6}  top path",
            "endpoint",
            "requests",
            "match",
            "mismatch",
            "noise",
            "error",
            "skipped",
            "p50 prod",
            "p50 cand",
            "p99 x"
        )?;
        let us = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v}us"));
        for e in self.endpoints.iter().take(max_rows) {
            let top = e
                .paths
                .iter()
                .find(|p| p.reported)
                .map_or(String::new(), |p| format!("{} ({})", p.path, p.differences));
            let name: String = e.endpoint.chars().take(40).collect();
            writeln!(
                out,
                "{:<40} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7} {:>10} {:>10} {:>6}  {}",
                name,
                e.requests,
                e.r#match,
                e.mismatch,
                e.noise,
                e.error,
                e.skipped,
                us(e.latency_us.production.p50),
                us(e.latency_us.candidate.p50),
                e.latency_us
                    .ratio
                    .p99
                    .map_or("-".into(), |r| format!("{r:.2}")),
                top
            )?;
            for s in e.status_shifts.iter().filter(|s| s.from != s.to) {
                writeln!(
                    out,
                    "{:<40}   status {} -> {}: {}",
                    "", s.from, s.to, s.count
                )?;
            }
        }
        if self.endpoints.len() > max_rows {
            writeln!(
                out,
                "... {} more endpoints (see --summary)",
                self.endpoints.len() - max_rows
            )?;
        }
        Ok(())
    }
}
