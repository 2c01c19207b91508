//! `vxtap compare A.jsonl B.jsonl`: two exchange files (production first, e.g. the blue and
//! green mirrors' records) compared offline, pairing exchanges by identical request.
//!
//! Identical request: same method, target (with query), request body, and the values of the
//! `--pair-header` headers. Production exchanges wait in a window of `--window` exchanges
//! (oldest out, counted unpaired), so memory is bounded whatever the files hold; candidate
//! exchanges take the oldest waiting production exchange with their request. Both sides are
//! redacted (the sink's `Redactor`, one key for both, so equal values stay equal) before they
//! are compared: every output path sees redacted data.
//!
//! The options shared with the shadow stage are [`CompareOpts`]: they build the
//! `vxtap_compare::CompareConfig`.

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use vxtap_compare::{CompareConfig, Engine, Pair, Response};
use vxtap_http::Exchange;
use vxtap_routes::Template;
use vxtap_sink::{ExchangeReader, RedactConfig, Redactor};

/// How responses are compared and reported (shared by `compare` and the shadow stage).
#[derive(Debug, Args, Clone, Default)]
pub struct CompareOpts {
    /// Declare a route template (repeatable): 'GET /api/v1/items/{id}' (no method: any).
    #[arg(long = "route", value_name = "TEMPLATE")]
    pub routes: Vec<String>,
    /// Most endpoints learned from traffic; the rest are counted under `other`.
    #[arg(long, default_value_t = 1000)]
    pub max_endpoints: usize,
    /// Absolute tolerance for numbers at a path (repeatable): 'body.scores[*]=0.001'.
    #[arg(long = "tolerance", value_name = "PATH=X")]
    pub tolerances: Vec<String>,
    /// Ignore differences at or below a path (repeatable): 'body.meta', 'header.x-cache'.
    #[arg(long = "ignore", value_name = "PATH")]
    pub ignores: Vec<String>,
    /// Never compare this header (repeatable; a trailing * is a prefix); added to the defaults
    /// (date, server, x-request-id, etag, content-length, x-envoy-*...).
    #[arg(long = "ignore-header", value_name = "NAME")]
    pub ignore_headers: Vec<String>,
    /// Compare the array at this path as a multiset (repeatable).
    #[arg(long = "unordered", value_name = "PATH")]
    pub unordered: Vec<String>,
    /// Match the array's elements at this path by a field (repeatable): 'body.items=id'.
    #[arg(long = "array-key", value_name = "PATH=FIELD")]
    pub array_keys: Vec<String>,
    /// TOML file of rules per endpoint (ignore, tolerance, unordered, keyed; see README).
    #[arg(long, value_name = "FILE")]
    pub compare_config: Option<PathBuf>,
    /// Report a path when its differences exceed its noise by this percent of both (Diffy's
    /// relative threshold).
    #[arg(long, value_name = "PERCENT")]
    pub report_relative: Option<f64>,
    /// ... and by this percent of the endpoint's requests (Diffy's absolute threshold).
    #[arg(long, value_name = "PERCENT")]
    pub report_absolute: Option<f64>,
    /// Paths shown per endpoint in the summary.
    #[arg(long, default_value_t = 10)]
    pub top_paths: usize,
}

impl CompareOpts {
    /// The comparison config these options say.
    pub fn config(&self) -> Result<CompareConfig> {
        let mut cfg = CompareConfig::default();
        if let Some(p) = &self.compare_config {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading compare config {}", p.display()))?;
            cfg.load_toml(&text)
                .with_context(|| format!("in compare config {}", p.display()))?;
        }
        for r in &self.routes {
            cfg.routes
                .declared
                .push(Template::parse(r).with_context(|| format!("--route {r:?}"))?);
        }
        cfg.routes.max_endpoints = self.max_endpoints;
        for t in &self.tolerances {
            cfg.add_tolerance(t)?;
        }
        for p in &self.ignores {
            cfg.add_ignore(p)?;
        }
        for h in &self.ignore_headers {
            cfg.add_ignored_header(h);
        }
        for p in &self.unordered {
            cfg.add_unordered(p)?;
        }
        for p in &self.array_keys {
            cfg.add_array_key(p)?;
        }
        for (v, slot) in [
            (self.report_relative, &mut cfg.report.relative),
            (self.report_absolute, &mut cfg.report.absolute),
        ] {
            if let Some(v) = v {
                anyhow::ensure!(
                    (0.0..=100.0).contains(&v),
                    "report thresholds are percents in 0..=100: {v}"
                );
                *slot = v;
            }
        }
        Ok(cfg)
    }
}

/// Arguments of `vxtap compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Production's exchanges (JSON lines as vxtap writes them).
    pub production: PathBuf,
    /// The candidate's exchanges.
    pub candidate: PathBuf,
    /// Where to write one record per pair (default: stdout).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Write the summary (per endpoint: verdicts, top paths, status shifts, latency) as JSON.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Request header whose value is part of a request's identity when pairing (repeatable).
    #[arg(long = "pair-header", value_name = "NAME")]
    pub pair_headers: Vec<String>,
    /// Production exchanges waiting for their candidate at most (oldest out, counted).
    #[arg(long, default_value_t = 200_000)]
    pub window: usize,
    /// No table on stderr.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub opts: CompareOpts,
}

/// Counts of a `compare` run.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct CompareTotals {
    /// Pairs compared.
    pub pairs: u64,
    /// Production exchanges without a candidate (never matched, or out of the window).
    pub unpaired_production: u64,
    /// Candidate exchanges without production.
    pub unpaired_candidate: u64,
    /// Exchanges without a request or a response (not comparable).
    pub incomplete: u64,
    /// Lines that were not records.
    pub rejected_lines: u64,
}

fn pair_key(ex: &Exchange, headers: &[String]) -> Option<u64> {
    let req = ex.request.as_ref()?;
    let mut h = DefaultHasher::new();
    req.method.hash(&mut h);
    req.uri.hash(&mut h);
    req.body.as_ref().map(|b| &b.bytes).hash(&mut h);
    for name in headers {
        req.header(name).hash(&mut h);
    }
    Some(h.finish())
}

fn latency_us(ex: &Exchange) -> Option<u64> {
    ex.timing.ttfb_us().or(ex.timing.duration_us())
}

fn side(ex: &Exchange) -> serde_json::Value {
    let r = ex.response.as_ref();
    json!({
        "status": r.and_then(|r| r.status),
        "latency_us": latency_us(ex),
        "body_len": r.map(|r| r.body_len),
    })
}

fn open(p: &PathBuf) -> Result<ExchangeReader<BufReader<File>>> {
    let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
    Ok(ExchangeReader::new(BufReader::with_capacity(1 << 20, f)))
}

/// Production exchanges waiting for their candidate: per request key in arrival order, and
/// the arrival order over all keys for the window (entries already taken are skipped lazily).
#[derive(Default)]
struct Waiting {
    by_key: HashMap<u64, VecDeque<(u64, Exchange)>>,
    order: VecDeque<(u64, u64)>,
    seq: u64,
    held: usize,
    window: usize,
}

impl Waiting {
    fn has(&self, key: u64) -> bool {
        self.by_key.contains_key(&key)
    }

    fn is_live(&self, (key, seq): (u64, u64)) -> bool {
        self.by_key
            .get(&key)
            .is_some_and(|q| q.iter().any(|(s, _)| *s == seq))
    }

    /// Adds an exchange; returns how many old ones the window pushed out.
    fn push(&mut self, key: u64, ex: Exchange) -> u64 {
        let mut evicted = 0;
        while self.held >= self.window {
            let Some((k, s)) = self.order.pop_front() else {
                break;
            };
            if let Some(q) = self.by_key.get_mut(&k) {
                // Entries of one key leave in order, so a live one is at its queue's front.
                if q.front().is_some_and(|(qs, _)| *qs == s) {
                    q.pop_front();
                    self.held -= 1;
                    evicted += 1;
                }
                if q.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
        self.seq += 1;
        self.by_key
            .entry(key)
            .or_default()
            .push_back((self.seq, ex));
        self.order.push_back((key, self.seq));
        self.held += 1;
        // Taken entries stay in `order` until they reach its front; compact when they
        // outnumber the live ones, so `order` stays within twice the window.
        if self.order.len() > 2 * self.window.max(self.held) {
            let order = std::mem::take(&mut self.order);
            self.order = order.into_iter().filter(|&e| self.is_live(e)).collect();
        }
        evicted
    }

    /// The oldest waiting exchange with this request.
    fn take(&mut self, key: u64) -> Option<Exchange> {
        let q = self.by_key.get_mut(&key)?;
        let (_, ex) = q.pop_front()?;
        if q.is_empty() {
            self.by_key.remove(&key);
        }
        self.held -= 1;
        Some(ex)
    }
}

/// Runs `vxtap compare`: records to `-o`, the summary to `--summary`, the table to stderr.
pub fn run(args: &CompareArgs) -> Result<CompareTotals> {
    let cfg = args.opts.config()?;
    let mut engine = Engine::new(cfg);
    let redactor = Redactor::new(&RedactConfig::default()).context("building the redactor")?;
    let mut totals = CompareTotals::default();
    let headers: Vec<String> = args
        .pair_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();

    let mut waiting = Waiting {
        window: args.window.max(1),
        ..Waiting::default()
    };
    let mut prod = open(&args.production)?;
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut cand = open(&args.candidate)?;
    for ex in cand.by_ref() {
        let Ok(mut cx) = ex else { continue };
        let Some(key) = pair_key(&cx, &headers) else {
            totals.incomplete += 1;
            continue;
        };
        // Read production until this request is waiting (or the file ends): two mirrors see
        // requests in about the same order, so the window holds what is still to come.
        while !waiting.has(key) {
            let Some(ex) = prod.next() else { break };
            let Ok(mut ex) = ex else { continue };
            let Some(pkey) = pair_key(&ex, &headers).filter(|_| ex.response.is_some()) else {
                totals.incomplete += 1;
                continue;
            };
            redactor.redact(&mut ex);
            totals.unpaired_production += waiting.push(pkey, ex);
        }
        let Some(px) = waiting.take(key) else {
            totals.unpaired_candidate += 1;
            continue;
        };
        redactor.redact(&mut cx);
        totals.pairs += 1;
        let (Some(preq), Some(presp)) = (px.request.as_ref(), px.response.as_ref()) else {
            continue;
        };
        let Some(production) = Response::from_message(presp) else {
            totals.incomplete += 1;
            continue;
        };
        let candidate = match cx.response.as_ref().and_then(Response::from_message) {
            Some(r) => Ok(r),
            None => Err("no_response"),
        };
        let pid = format!("{:016x}", px.id);
        let method = preq.method.as_deref().unwrap_or("");
        let uri = preq.uri.as_deref().unwrap_or("");
        let pair = Pair {
            id: Some(&pid),
            method,
            uri,
            request_body: preq.body.as_ref().map_or(&[][..], |b| &b.bytes),
            ts_ns: px.ts_ns,
            production,
            candidate,
            latency_us: (latency_us(&px), latency_us(&cx)),
        };
        let (ep, cmp) = engine.process(&pair);
        let rec = json!({
            "id": pid,
            "candidate_id": format!("{:016x}", cx.id),
            "method": method,
            "uri": uri,
            "endpoint": engine.endpoint_name(ep),
            "production": side(&px),
            "candidate": side(&cx),
            "comparison": cmp,
        });
        serde_json::to_writer(&mut out, &rec)?;
        out.write_all(b"\n")?;
    }
    totals.rejected_lines += cand.rejected;
    for ex in prod.by_ref() {
        match ex {
            Ok(ex) if ex.response.is_some() && ex.request.is_some() => {
                totals.unpaired_production += 1
            }
            Ok(_) => totals.incomplete += 1,
            Err(_) => {}
        }
    }
    totals.rejected_lines += prod.rejected;
    totals.unpaired_production += waiting.held as u64;
    out.flush().context("writing comparison records")?;
    drop(out);

    let top = args.opts.top_paths;
    let summary = engine.summary(top);
    if let Some(p) = &args.summary {
        let mut v = serde_json::to_value(&summary)?;
        v["pairing"] = serde_json::to_value(&totals)?;
        let f = File::create(p).with_context(|| format!("creating {}", p.display()))?;
        let mut w = BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, &v)?;
        w.write_all(b"\n")?;
        w.flush()
            .with_context(|| format!("writing summary {}", p.display()))?;
    }
    if !args.quiet {
        let mut err = std::io::stderr().lock();
        summary.write_table(&mut err, 30)?;
        writeln!(
            err,
            "pairing: {} pairs, {} production and {} candidate exchanges unpaired, {} incomplete, {} lines rejected",
            totals.pairs,
            totals.unpaired_production,
            totals.unpaired_candidate,
            totals.incomplete,
            totals.rejected_lines
        )?;
    }
    Ok(totals)
}
