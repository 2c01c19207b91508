//! The end-of-run summary (`--summary FILE` and the table on stderr): per endpoint and
//! overall, what was sent, skipped and failed, production's status class against the
//! candidate's, and latency percentiles of both sides from HDR histograms (exact to 2
//! significant digits from 1 µs to an hour, 13 kB each: with 3 digits and 8-byte counts they
//! took 450 kB each, and a thousand endpoints took most of a gigabyte).

use std::collections::BTreeMap;
use std::fmt::Write;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::record::{ErrorKind, ShadowRecord, SkipReason, Verdict};

/// Distinct endpoints summarized; the rest are counted under `other`.
pub const MAX_ENDPOINTS: usize = 200;
/// The label of the endpoints past the cap.
pub const OTHER: &str = "other";

/// Latencies from 1 µs to 1 hour, 2 significant digits.
fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static bounds are valid")
}

/// Counts of one endpoint (or of all).
#[derive(Clone, Debug)]
pub struct Counts {
    /// Exchanges considered.
    pub exchanges: u64,
    /// Sent and answered.
    pub sent: u64,
    /// Skipped, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Errors, by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Answered exchanges by production's status class and the candidate's ("2xx->5xx").
    pub status_classes: BTreeMap<String, u64>,
    production: Histogram<u32>,
    candidate: Histogram<u32>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            exchanges: 0,
            sent: 0,
            skipped: BTreeMap::new(),
            errors: BTreeMap::new(),
            status_classes: BTreeMap::new(),
            production: histogram(),
            candidate: histogram(),
        }
    }
}

fn class(s: Option<u16>) -> String {
    match s {
        Some(s @ 100..=599) => format!("{}xx", s / 100),
        Some(_) => "other".into(),
        None => "none".into(),
    }
}

impl Counts {
    fn add(&mut self, r: &ShadowRecord) {
        self.exchanges += 1;
        match r.verdict {
            Verdict::Sent => {
                self.sent += 1;
                let k = format!(
                    "{}->{}",
                    class(r.production.status),
                    class(r.candidate.status)
                );
                *self.status_classes.entry(k).or_default() += 1;
                // Both sides of the same exchanges, so the percentiles compare like with like.
                if let Some(us) = r.production.latency_us {
                    self.production.saturating_record(us.max(1));
                }
                if let Some(us) = r.candidate.latency_us {
                    self.candidate.saturating_record(us.max(1));
                }
            }
            Verdict::Skipped => {
                let reason = r.reason.map_or("unknown", SkipReason::as_str);
                *self.skipped.entry(reason).or_default() += 1;
            }
            Verdict::Error => {
                let kind = r.candidate.error.map_or("unknown", ErrorKind::as_str);
                *self.errors.entry(kind).or_default() += 1;
            }
        }
    }

    /// Latency at quantile `q` (µs) of production and the candidate, when any was recorded.
    pub fn latency_us(&self, q: f64) -> (Option<u64>, Option<u64>) {
        let at = |h: &Histogram<u32>| (!h.is_empty()).then(|| h.value_at_quantile(q));
        (at(&self.production), at(&self.candidate))
    }

    fn to_json(&self) -> Value {
        let lat = |h: &Histogram<u32>| {
            if h.is_empty() {
                return Value::Null;
            }
            json!({
                "count": h.len(),
                "p50_us": h.value_at_quantile(0.5),
                "p95_us": h.value_at_quantile(0.95),
                "p99_us": h.value_at_quantile(0.99),
                "max_us": h.max(),
            })
        };
        json!({
            "exchanges": self.exchanges,
            "sent": self.sent,
            "skipped": self.skipped,
            "errors": self.errors,
            "status_classes": self.status_classes,
            "latency": {"production": lat(&self.production), "candidate": lat(&self.candidate)},
        })
    }
}

/// The summary being built, one record at a time.
#[derive(Debug, Default)]
pub struct Summary {
    /// All endpoints together.
    pub overall: Counts,
    /// Per endpoint (at most [`MAX_ENDPOINTS`] plus [`OTHER`]).
    pub endpoints: BTreeMap<String, Counts>,
}

impl Summary {
    /// Adds one record.
    pub fn add(&mut self, r: &ShadowRecord) {
        self.overall.add(r);
        let key =
            if self.endpoints.contains_key(&r.endpoint) || self.endpoints.len() < MAX_ENDPOINTS {
                r.endpoint.as_str()
            } else {
                OTHER
            };
        match self.endpoints.get_mut(key) {
            Some(c) => c.add(r),
            None => {
                let mut c = Counts::default();
                c.add(r);
                self.endpoints.insert(key.to_string(), c);
            }
        }
    }

    /// The summary as JSON (`--summary FILE`).
    pub fn to_json(&self, comparison: Option<Value>) -> Value {
        let endpoints: serde_json::Map<String, Value> = self
            .endpoints
            .iter()
            .map(|(k, c)| (k.clone(), c.to_json()))
            .collect();
        let mut v = json!({"overall": self.overall.to_json(), "endpoints": endpoints});
        if let Some(c) = comparison {
            v["comparison"] = c;
        }
        v
    }

    /// The table printed on stderr: one row per endpoint (busiest first, at most `rows`), then
    /// the overall row.
    pub fn table(&self, rows: usize) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<40} {:>8} {:>8} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10}  status (prod->cand)",
            "endpoint",
            "exch",
            "sent",
            "skipped",
            "errors",
            "prod p50",
            "cand p50",
            "prod p99",
            "cand p99"
        );
        let mut eps: Vec<(&String, &Counts)> = self.endpoints.iter().collect();
        eps.sort_by(|a, b| b.1.exchanges.cmp(&a.1.exchanges).then(a.0.cmp(b.0)));
        let fmt =
            |v: Option<u64>| v.map_or("-".to_string(), |us| format!("{:.2}ms", us as f64 / 1000.0));
        let row = |s: &mut String, name: &str, c: &Counts| {
            let (p50p, p50c) = c.latency_us(0.5);
            let (p99p, p99c) = c.latency_us(0.99);
            let classes: Vec<String> = c
                .status_classes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let mut name = name.to_string();
            if name.chars().count() > 40 {
                name = name.chars().take(39).collect::<String>() + "~";
            }
            let _ = writeln!(
                s,
                "{:<40} {:>8} {:>8} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10}  {}",
                name,
                c.exchanges,
                c.sent,
                c.skipped.values().sum::<u64>(),
                c.errors.values().sum::<u64>(),
                fmt(p50p),
                fmt(p50c),
                fmt(p99p),
                fmt(p99c),
                classes.join(" ")
            );
        };
        for (k, c) in eps.iter().take(rows) {
            row(&mut s, k, c);
        }
        if eps.len() > rows {
            let _ = writeln!(s, "({} more endpoints in --summary)", eps.len() - rows);
        }
        row(&mut s, "(all)", &self.overall);
        let reasons: Vec<String> = self
            .overall
            .skipped
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(
                self.overall
                    .errors
                    .iter()
                    .map(|(k, v)| format!("error:{k}={v}")),
            )
            .collect();
        if !reasons.is_empty() {
            let _ = writeln!(s, "  not answered: {}", reasons.join(" "));
        }
        s
    }
}
