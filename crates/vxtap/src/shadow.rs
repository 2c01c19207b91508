//! `vxtap shadow` (capture files) and `vxtap listen --shadow-target` (live): the glue between
//! the pipeline and the shadow stage (`vxtap_shadow`), which does the work for both.
//!
//! The stage sees every exchange the HTTP-level filter keeps, after pairing and before
//! redaction (requests go out as captured); its records are redacted with the same redactor
//! as the exchange records. With shadow on, the HTTP layer keeps request and response bodies
//! up to `--shadow-max-body` for it (`HttpConfig::replay_body_bytes`); the exchange records
//! are trimmed back to `--max-body-bytes` by the HTTP layer itself, so they do not change.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use vxtap_http::Exchange;
use vxtap_shadow::{
    parse_header, NoCompare, RouteEndpoints, ShadowConfig, ShadowReport, ShadowStage, ShadowStats,
    StatsSnapshot, Target, WhenFull,
};
use vxtap_sink::{ExchangeFilter, ExchangeFilterStats, Redactor};

use crate::cli::ShadowOpts;
use crate::config::Settings;
use crate::metrics::MetricSet;
use crate::pipeline::{Front, Totals, Worker};
use crate::replay::{read_all, Progress, ReplayReport};

/// Exchanges handed to the stage at a time (the worker's ready list is drained this often).
const BATCH: usize = 256;

/// Bytes the shadow queue may hold: an eighth of `--max-memory`, at most 64 MiB, at least
/// 1 MiB. Taken off the flow tables' budget like the other queues.
pub fn queue_bytes(max_memory: usize) -> usize {
    (max_memory / 8).clamp(1 << 20, 64 << 20)
}

/// The stage's configuration from the command line.
pub fn config(
    target: &str,
    opts: &ShadowOpts,
    queue_bytes: usize,
    when_full: WhenFull,
    drain_timeout: Duration,
) -> Result<ShadowConfig> {
    let mut cfg = ShadowConfig::new(Target::parse(target)?);
    cfg.allow_targets = opts.allow_targets.clone();
    if !opts.replay_methods.is_empty() {
        cfg.methods = opts
            .replay_methods
            .iter()
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty())
            .collect();
    }
    cfg.keep_headers = opts
        .keep_headers
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for h in opts.target_headers.iter().chain(&opts.set_headers) {
        let (n, v) = parse_header(h)?;
        cfg.set_headers.retain(|(m, _)| *m != n);
        cfg.set_headers.push((n, v));
    }
    cfg.speed = opts.speed;
    cfg.rate = opts.rate;
    cfg.concurrency = opts.concurrency;
    cfg.timeout = opts.request_timeout;
    cfg.breaker_failures = opts.breaker_failures;
    cfg.breaker_cooldown = opts.breaker_cooldown;
    cfg.max_body = opts.shadow_max_body;
    cfg.queue_len = opts.shadow_queue;
    cfg.queue_bytes = queue_bytes;
    cfg.when_full = when_full;
    cfg.drain_timeout = drain_timeout;
    cfg.threads = opts.shadow_threads;
    cfg.validate()?;
    Ok(cfg)
}

/// Turns the replay capture on in `settings` and charges the shadow queue to `--max-memory`.
pub fn prepare_settings(settings: &mut Settings, opts: &ShadowOpts) -> Result<usize> {
    settings.http.replay_body_bytes = opts.shadow_max_body;
    let q = queue_bytes(settings.flow.max_memory);
    settings.flow.max_memory =
        settings.flow.max_memory.checked_sub(q).with_context(|| {
            format!("--max-memory is too small for the shadow queue ({q} bytes)")
        })?;
    Ok(q)
}

/// Opens where the records go (`-` or none: stdout).
pub fn open_output(path: Option<&Path>) -> Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(p) if p.as_os_str() != "-" => Box::new(
            std::fs::File::create(p).with_context(|| format!("shadow output {}", p.display()))?,
        ),
        _ => Box::new(std::io::stdout()),
    })
}

/// Starts the stage.
pub fn start(
    cfg: ShadowConfig,
    out: Box<dyn Write + Send>,
    redactor: Redactor,
    stats: Arc<ShadowStats>,
) -> Result<ShadowStage> {
    Ok(ShadowStage::start(
        cfg,
        out,
        redactor,
        Box::new(RouteEndpoints::default()),
        Box::new(NoCompare),
        stats,
    )?)
}

/// The HTTP-level filter in front of the stage (the exchanges the records would keep).
#[derive(Debug)]
pub struct Feed {
    filter: ExchangeFilter,
    stats: ExchangeFilterStats,
}

impl Feed {
    /// The filter `settings` ask for.
    pub fn new(settings: &Settings) -> Result<Feed> {
        Ok(Feed {
            filter: ExchangeFilter::new(&settings.exchange_filter)?,
            stats: ExchangeFilterStats::default(),
        })
    }

    /// Offers `ex` to `stage` if the filter keeps it; its replay bodies are taken out either
    /// way (nothing after this stage needs them).
    pub fn offer(&mut self, stage: &ShadowStage, ex: &mut Exchange) {
        if matches!(
            self.filter.check(ex, &mut self.stats),
            vxtap_sink::ExchangeDecision::Drop(_)
        ) {
            for m in ex.messages_mut() {
                m.replay_body = None;
            }
            return;
        }
        stage.offer(ex);
    }
}

/// What `vxtap shadow` did.
#[derive(Debug)]
pub struct ShadowRun {
    /// The pipeline's counters (frames, connections, exchanges).
    pub totals: Totals,
    /// Damaged or unreadable inputs.
    pub errors: Vec<vxtap_capture::CaptureError>,
    /// The stage's summary and counters.
    pub report: ShadowReport,
}

/// `vxtap shadow`: the files through the pipeline (one worker: the candidate, not reassembly,
/// sets the pace), every exchange offered to the stage, which waits for room rather than drop
/// (a file loses nothing by being read more slowly).
pub fn shadow_files(
    files: &[PathBuf],
    settings: &Settings,
    stage: ShadowStage,
) -> Result<ShadowRun> {
    let mut settings = settings.clone();
    settings.threads = 1;
    let mut front = Front::new(&settings)?;
    let mut worker = Worker::new(settings.flow_for_worker(), settings.http_for_worker())?;
    let mut feed = Feed::new(&settings)?;
    let mut ready: Vec<Exchange> = Vec::new();
    let mut staged = ReplayReport::default();
    let progress = Progress::new(false);
    let mut offer_all = |ready: &mut Vec<Exchange>| {
        for mut ex in ready.drain(..) {
            feed.offer(&stage, &mut ex);
        }
    };
    read_all(files, &progress, &mut staged, false, |_, link, ts, data| {
        front.handle(link, ts, data, |seg| worker.process(seg));
        if worker.ready() >= BATCH {
            worker.drain_into(&mut ready);
            offer_all(&mut ready);
        }
        Some(usize::MAX)
    });
    loop {
        let done = worker.finish_some(BATCH);
        worker.drain_into(&mut ready);
        offer_all(&mut ready);
        if done {
            break;
        }
    }
    let report = stage.finish();
    let mut totals = Totals::default();
    totals.add_front(&front);
    totals.workers = worker.stats();
    totals.frames = staged.totals.frames;
    totals.files = files.len() as u64;
    Ok(ShadowRun {
        totals,
        errors: staged.errors,
        report,
    })
}

/// Writes the summary JSON to `path`.
pub fn write_summary(path: &Path, report: &ShadowReport) -> Result<()> {
    let mut v = report.summary.to_json(report.comparison.clone());
    v["not_sent_at_shutdown"] = report.not_sent_at_shutdown.into();
    v["queue_dropped"] = report.stats.queue_dropped.into();
    let text = serde_json::to_string_pretty(&v)?;
    std::fs::write(path, text + "\n").with_context(|| format!("summary {}", path.display()))
}

/// The end-of-run text for stderr: one line of totals, then the table.
pub fn report_text(report: &ShadowReport) -> String {
    let s = &report.stats;
    let mut t = format!(
        "vxtap shadow: {} sent, {} skipped, {} errors; breaker opened {} times; {} dropped on a \
         full queue; {} not sent at shutdown\n",
        s.verdict("sent"),
        s.verdict("skipped"),
        s.verdict("error"),
        s.breaker_opens,
        s.queue_dropped,
        report.not_sent_at_shutdown,
    );
    t.push_str(&report.summary.table(20));
    t
}

/// Exports the stage's counters (the latency histogram is registered once, see
/// [`MetricSet::register`]).
pub fn export(s: &StatsSnapshot, m: &mut MetricSet) {
    for (v, n) in &s.verdicts {
        m.counter(
            "vxtap_shadow_requests_total",
            "Exchanges considered for shadow replay, by verdict.",
            &[("verdict", v)],
            *n,
        );
    }
    for (r, n) in &s.skipped {
        m.counter(
            "vxtap_shadow_skipped_total",
            "Exchanges not sent to the candidate, by reason.",
            &[("reason", r)],
            *n,
        );
    }
    for (k, n) in &s.errors {
        m.counter(
            "vxtap_shadow_errors_total",
            "Shadow requests that got no answer, by kind.",
            &[("kind", k)],
            *n,
        );
    }
    m.gauge(
        "vxtap_shadow_inflight",
        "Shadow requests in flight now.",
        &[],
        s.inflight,
    );
    m.counter(
        "vxtap_shadow_queue_dropped_total",
        "Exchanges dropped because the shadow queue was full.",
        &[],
        s.queue_dropped,
    );
    m.gauge(
        "vxtap_shadow_queue_bytes",
        "Bytes the shadow queue holds now (charged to --max-memory).",
        &[],
        s.queued_bytes as i64,
    );
    m.gauge(
        "vxtap_shadow_breaker_state",
        "Circuit breaker: 0 closed, 1 open, 2 half-open.",
        &[],
        s.breaker_state as i64,
    );
    m.counter(
        "vxtap_shadow_breaker_opens_total",
        "Times the circuit breaker opened.",
        &[],
        s.breaker_opens,
    );
    m.counter(
        "vxtap_shadow_records_total",
        "Shadow records written.",
        &[],
        s.records_written,
    );
    m.counter(
        "vxtap_shadow_record_errors_total",
        "Shadow records lost (their output failed or its queue was full).",
        &[],
        s.record_errors,
    );
}
