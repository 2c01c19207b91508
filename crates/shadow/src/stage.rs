//! The stage: a bounded queue from the pipeline, a sender on its own tokio runtime, and a
//! record writer on its own thread.
//!
//! ```text
//!  pipeline thread ──offer (never blocks live)──► dispatcher ──► lane per production connection
//!      │ skipped records                               (one candidate connection, in order)
//!      └────────────────────────────► record writer ◄──────────── answers, errors
//!                                     redact, compare hook, JSON line, summary
//! ```
//! Every job is charged to the queue (count and bytes) from `offer` until its answer is in:
//! what waits for pacing, for a slow candidate or in flight is bounded by the two, and a full
//! queue drops and counts (live) or waits (files). The writer redacts every string it writes
//! from the traffic with the sink's `Redactor`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use vxtap_http::Exchange;
use vxtap_sink::Redactor;

use crate::client::{build_request, Conn, Connector};
use crate::config::{ShadowConfig, WhenFull};
use crate::control::{Breaker, BreakerState, Pacer, RateLimiter};
use crate::prepare::{prepare, Job, LaneKey};
use crate::record::{
    CandidateSide, Compare, ErrorKind, Outcome, Response, ShadowRecord, SkipReason, Verdict,
};
use crate::stats::ShadowStats;
use crate::summary::Summary;
use crate::ShadowError;

/// A lane with nothing queued is closed (with its candidate connection) after this long.
const LANE_IDLE: Duration = Duration::from_secs(2);
/// Lanes (candidate connections) kept at most: past it, every lane with nothing queued is
/// closed at once. Lanes with work are bounded by the queue itself.
const MAX_IDLE_LANES: usize = 512;
/// Records waiting for the writer; beyond it the senders wait (live skipped records are
/// dropped and counted instead).
const RECORD_QUEUE: usize = 4096;

/// Names the endpoint a request is counted under, from its method and redacted target.
pub trait Endpoints: Send {
    /// The endpoint of `method` `uri`.
    fn endpoint(&mut self, method: &str, uri: &str) -> String;
}

/// Route templates learned from the traffic (`vxtap_routes`): `GET /users/{id}`; the router
/// caps the endpoints (the rest are `other`), so the summary's keys stay bounded.
pub struct RouteEndpoints(pub vxtap_routes::Router);

impl Default for RouteEndpoints {
    fn default() -> Self {
        RouteEndpoints(vxtap_routes::Router::new(
            vxtap_routes::RouterConfig::default(),
        ))
    }
}

impl Endpoints for RouteEndpoints {
    fn endpoint(&mut self, method: &str, uri: &str) -> String {
        self.0.template(method, uri).to_string()
    }
}

/// Method and path without the query string (for tests that want literal endpoints). The
/// summary caps the distinct values it keeps.
#[derive(Clone, Copy, Debug, Default)]
pub struct PathEndpoints;

impl Endpoints for PathEndpoints {
    fn endpoint(&mut self, method: &str, uri: &str) -> String {
        let path = uri.split(['?', '#']).next().unwrap_or(uri);
        format!("{method} {path}")
    }
}

/// A finished exchange on its way to the writer.
#[derive(Debug)]
struct Done {
    job: Job,
    verdict: Verdict,
    candidate: CandidateSide,
    candidate_response: Option<Response>,
}

/// What the stage did, at the end.
#[derive(Debug)]
pub struct ShadowReport {
    /// Per endpoint and overall.
    pub summary: Summary,
    /// The comparison's summary, if it has one.
    pub comparison: Option<serde_json::Value>,
    /// The counters.
    pub stats: crate::stats::StatsSnapshot,
    /// Exchanges accepted but neither sent nor reported when the drain deadline passed.
    pub not_sent_at_shutdown: u64,
    /// The record output failed (records are missing).
    pub output_error: Option<String>,
}

/// State the sender's tasks share.
struct Shared {
    cfg: Arc<ShadowConfig>,
    connector: Connector,
    pacer: Pacer,
    rate: RateLimiter,
    breaker: Breaker,
    permits: Semaphore,
    stats: Arc<ShadowStats>,
    records: mpsc::Sender<Done>,
    /// Jobs whose record is made (for the shutdown count).
    settled: Arc<AtomicU64>,
    /// Open candidate connections of closed lanes, for the next new lane: a production
    /// connection still gets one candidate connection for its whole life, but thousands of
    /// short production connections do not cost thousands of connects.
    spare: std::sync::Mutex<Vec<Conn>>,
}

impl Shared {
    fn release(&self, job: &Job) {
        release(&self.stats, job);
    }
}

fn release(stats: &ShadowStats, job: &Job) {
    stats.queued_bytes.fetch_sub(job.charged, Relaxed);
    stats.queued_jobs.fetch_sub(1, Relaxed);
    // Without the lock: a wake-up lost in between is made up by the waiter's timeout.
    stats.room.1.notify_one();
}

/// The running stage. Hand it every exchange after pairing and before redaction
/// ([`ShadowStage::offer`]); [`ShadowStage::finish`] drains it within the deadline.
pub struct ShadowStage {
    cfg: Arc<ShadowConfig>,
    jobs: Option<mpsc::Sender<Job>>,
    records: Option<mpsc::Sender<Done>>,
    stats: Arc<ShadowStats>,
    accepted: AtomicU64,
    settled: Arc<AtomicU64>,
    sender: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<WriterEnd>>,
    // Behind a mutex only so that the stage is `Sync` (shared with the listener's output
    // thread); taken once, by `finish`.
    done_rx: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    cancel: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for ShadowStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShadowStage")
            .field("target", &self.cfg.target)
            .finish()
    }
}

struct WriterEnd {
    summary: Summary,
    comparison: Option<serde_json::Value>,
    error: Option<String>,
}

impl ShadowStage {
    /// Starts the sender and the writer. Records go to `out` (one JSON line each), redacted
    /// with `redactor`, with the fields `compare` adds.
    pub fn start(
        cfg: ShadowConfig,
        out: Box<dyn Write + Send>,
        redactor: Redactor,
        endpoints: Box<dyn Endpoints>,
        compare: Box<dyn Compare>,
        stats: Arc<ShadowStats>,
    ) -> Result<ShadowStage, ShadowError> {
        cfg.validate()?;
        let cfg = Arc::new(cfg);
        let connector = Connector::new(&cfg.target)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.threads)
            .thread_name("shadow")
            .enable_all()
            .build()
            .map_err(|e| ShadowError::Config(format!("shadow runtime: {e}")))?;
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>(cfg.queue_len);
        let (rec_tx, rec_rx) = mpsc::channel::<Done>(RECORD_QUEUE);
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            connector,
            pacer: Pacer::new(cfg.speed),
            rate: RateLimiter::new(cfg.rate),
            breaker: Breaker::new(cfg.breaker_failures, cfg.breaker_cooldown),
            permits: Semaphore::new(cfg.concurrency),
            stats: stats.clone(),
            records: rec_tx.clone(),
            settled: Arc::new(AtomicU64::new(0)),
            spare: std::sync::Mutex::new(Vec::new()),
        });
        let settled = shared.settled.clone();
        let writer = {
            let stats = stats.clone();
            let max_body = cfg.max_body;
            std::thread::Builder::new()
                .name("shadow-writer".into())
                .spawn(move || {
                    write_records(rec_rx, out, redactor, endpoints, compare, stats, max_body)
                })
                .map_err(|e| ShadowError::Config(format!("spawn: {e}")))?
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
        let sender = std::thread::Builder::new()
            .name("shadow-sender".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = dispatch(jobs_rx, shared) => {}
                        _ = cancel_rx => {}
                    }
                });
                let _ = done_tx.send(());
                // Past the drain deadline, what is still in flight is dropped with the
                // runtime (its record senders with it, so the writer can end).
                runtime.shutdown_timeout(Duration::from_millis(100));
            })
            .map_err(|e| ShadowError::Config(format!("spawn: {e}")))?;
        Ok(ShadowStage {
            cfg,
            jobs: Some(jobs_tx),
            records: Some(rec_tx),
            stats,
            accepted: AtomicU64::new(0),
            settled,
            sender: Some(sender),
            writer: Some(writer),
            done_rx: std::sync::Mutex::new(done_rx),
            cancel: Some(cancel_tx),
        })
    }

    /// The live counters (for metrics).
    pub fn stats(&self) -> &Arc<ShadowStats> {
        &self.stats
    }

    /// Considers one exchange: queues it for the candidate, or writes why not. Takes the
    /// exchange's replay bodies (`Message::replay_body`) out. Never blocks with
    /// [`WhenFull::Drop`].
    pub fn offer(&self, ex: &mut Exchange) {
        let mut job = prepare(ex, &self.cfg);
        if job.skip.is_none() {
            match self.charge(&job) {
                Ok(()) => {
                    let Some(tx) = &self.jobs else { return };
                    let sent = match self.cfg.when_full {
                        WhenFull::Drop => tx.try_send(job).map_err(|e| match e {
                            mpsc::error::TrySendError::Full(j)
                            | mpsc::error::TrySendError::Closed(j) => j,
                        }),
                        WhenFull::Wait => tx.blocking_send(job).map_err(|e| e.0),
                    };
                    match sent {
                        Ok(()) => {
                            self.accepted.fetch_add(1, Relaxed);
                            return;
                        }
                        Err(j) => {
                            job = j;
                            release(&self.stats, &job);
                            job.skip = Some(SkipReason::QueueFull);
                            self.stats.queue_dropped.fetch_add(1, Relaxed);
                        }
                    }
                }
                Err(()) => {
                    job.skip = Some(SkipReason::QueueFull);
                    self.stats.queue_dropped.fetch_add(1, Relaxed);
                }
            }
        }
        let reason = job.skip;
        let done = Done {
            job,
            verdict: Verdict::Skipped,
            candidate: CandidateSide::default(),
            candidate_response: None,
        };
        self.stats.verdict(Verdict::Skipped, reason, None);
        let Some(tx) = &self.records else { return };
        let sent = match self.cfg.when_full {
            WhenFull::Drop => tx.try_send(done).is_ok(),
            WhenFull::Wait => tx.blocking_send(done).is_ok(),
        };
        if !sent {
            self.stats.record_errors.fetch_add(1, Relaxed);
        }
    }

    /// Charges `job` to the queue (count and bytes); waits for room with [`WhenFull::Wait`].
    fn charge(&self, job: &Job) -> Result<(), ()> {
        let s = &self.stats;
        loop {
            let jobs = s.queued_jobs.load(Relaxed);
            let bytes = s.queued_bytes.load(Relaxed);
            let fits = jobs < self.cfg.queue_len
                && (bytes + job.charged <= self.cfg.queue_bytes || jobs == 0);
            if fits {
                // Only this thread adds; the sender only subtracts, so what was checked holds.
                s.queued_jobs.fetch_add(1, Relaxed);
                s.queued_bytes.fetch_add(job.charged, Relaxed);
                return Ok(());
            }
            if self.cfg.when_full == WhenFull::Drop {
                return Err(());
            }
            // Woken by each job that leaves; the timeout covers a wake-up lost in between.
            let guard = s.room.0.lock().unwrap_or_else(|p| p.into_inner());
            let _ = s.room.1.wait_timeout(guard, Duration::from_millis(2));
        }
    }

    /// Stops taking exchanges, lets queued and in-flight requests finish within the drain
    /// deadline (the rest are counted as not sent), and returns the summary once every record
    /// is written.
    pub fn finish(mut self) -> ShadowReport {
        drop(self.jobs.take());
        let deadline = self.cfg.drain_timeout;
        let done_rx = self.done_rx.get_mut().unwrap_or_else(|p| p.into_inner());
        let drained = done_rx.recv_timeout(deadline).is_ok();
        let mut not_sent = 0;
        if !drained {
            // Call the dispatch off: the runtime then drops what is still queued or in flight.
            if let Some(c) = self.cancel.take() {
                let _ = c.send(());
            }
            let _ = done_rx.recv();
            not_sent = self
                .accepted
                .load(Relaxed)
                .saturating_sub(self.settled.load(Relaxed));
            for _ in 0..not_sent {
                self.stats
                    .verdict(Verdict::Skipped, Some(SkipReason::Shutdown), None);
            }
            tracing::warn!(
                "shadow: drain deadline ({deadline:?}) passed: {not_sent} requests not sent"
            );
        }
        if let Some(h) = self.sender.take() {
            let _ = h.join();
        }
        // The runtime is gone with every other sender of records: the writer ends.
        drop(self.records.take());
        let end = self
            .writer
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or(WriterEnd {
                summary: Summary::default(),
                comparison: None,
                error: Some("the record writer failed".into()),
            });
        ShadowReport {
            summary: end.summary,
            comparison: end.comparison,
            stats: self.stats.snapshot(),
            not_sent_at_shutdown: not_sent,
            output_error: end.error,
        }
    }
}

struct Lane {
    tx: mpsc::UnboundedSender<Job>,
    pending: Arc<AtomicUsize>,
    last: Instant,
}

/// Routes jobs to their lanes; closes idle lanes; returns when the queue is closed and every
/// lane has finished.
async fn dispatch(mut jobs: mpsc::Receiver<Job>, shared: Arc<Shared>) {
    let mut lanes: HashMap<LaneKey, Lane> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut sweep = tokio::time::interval(LANE_IDLE);
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { break };
                let now = Instant::now();
                if lanes.len() >= MAX_IDLE_LANES && !lanes.contains_key(&job.lane) {
                    lanes.retain(|_, l| l.pending.load(Relaxed) > 0);
                }
                let lane = lanes.entry(job.lane).or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let pending = Arc::new(AtomicUsize::new(0));
                    tasks.spawn(run_lane(rx, shared.clone(), pending.clone()));
                    Lane { tx, pending, last: now }
                });
                lane.last = now;
                lane.pending.fetch_add(1, Relaxed);
                if let Err(e) = lane.tx.send(job) {
                    // The lane task cannot end while its sender lives; if it did, report.
                    let job = e.0;
                    shared.release(&job);
                    finish(&shared, job, Err(SkipReason::Shutdown)).await;
                }
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                // Only lanes with nothing queued: a new lane for the same connection could
                // otherwise overtake the old one's last requests.
                lanes.retain(|_, l| l.pending.load(Relaxed) > 0 || now - l.last < LANE_IDLE);
                while tasks.try_join_next().is_some() {}
            }
        }
    }
    drop(lanes);
    while tasks.join_next().await.is_some() {}
}

/// One production connection's requests, in order, on one candidate connection.
async fn run_lane(
    mut rx: mpsc::UnboundedReceiver<Job>,
    shared: Arc<Shared>,
    pending: Arc<AtomicUsize>,
) {
    let mut conn: Option<Conn> = None;
    while let Some(job) = rx.recv().await {
        let result = send_one(&shared, &mut conn, &job).await;
        pending.fetch_sub(1, Relaxed);
        shared.release(&job);
        finish(&shared, job, result).await;
    }
    if let Some(c) = conn.filter(Conn::usable) {
        let mut spare = shared.spare.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < shared.cfg.concurrency {
            spare.push(c);
        }
    }
}

/// A usable connection: a spare one if there is, else a new one.
async fn open(shared: &Shared) -> Result<Conn, ErrorKind> {
    loop {
        let c = shared.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match c {
            Some(c) if c.usable() => return Ok(c),
            Some(_) => continue,
            None => return shared.connector.connect().await,
        }
    }
}

type SendResult = Result<Result<(crate::client::Answer, Duration), ErrorKind>, SkipReason>;

async fn send_one(shared: &Shared, conn: &mut Option<Conn>, job: &Job) -> SendResult {
    if let Some(due) = shared.pacer.due(job.ts_ns) {
        // Connect while waiting: the request then leaves at its time rather than a handshake
        // later (a failure here is retried, and counted, by the attempt below).
        if !conn.as_ref().is_some_and(Conn::usable)
            && shared.breaker.state() == BreakerState::Closed
        {
            if let Ok(Ok(c)) = tokio::time::timeout(shared.cfg.timeout, open(shared)).await {
                *conn = Some(c);
            }
        }
        tokio::time::sleep_until(due.into()).await;
    }
    let req = build_request(job, &shared.connector.authority())?;
    if !shared.breaker.allow() {
        return Err(SkipReason::BreakerOpen);
    }
    if let Some(slot) = shared.rate.slot() {
        tokio::time::sleep_until(slot.into()).await;
    }
    let _permit = shared
        .permits
        .acquire()
        .await
        .map_err(|_| SkipReason::Shutdown)?;
    shared.stats.inflight.fetch_add(1, Relaxed);
    let started = Instant::now();
    let attempt = async {
        if !conn.as_ref().is_some_and(Conn::usable) {
            *conn = Some(open(shared).await?);
        }
        let c = conn.as_mut().ok_or(ErrorKind::Connect)?;
        c.send(req, shared.cfg.max_body).await
    };
    let result = match tokio::time::timeout(shared.cfg.timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(ErrorKind::Timeout),
    };
    shared.stats.inflight.fetch_sub(1, Relaxed);
    match &result {
        Ok(_) => shared.breaker.success(),
        Err(_) => {
            // The connection's state is unknown after a failure: start afresh.
            *conn = None;
            shared.breaker.failure();
        }
    }
    shared
        .stats
        .set_breaker(shared.breaker.state(), shared.breaker.opens());
    Ok(result.map(|a| (a, started.elapsed())))
}

/// Counts the outcome and hands the record to the writer (waiting for it: only the lane waits).
async fn finish(shared: &Shared, job: Job, result: SendResult) {
    let stats = &shared.stats;
    let done = match result {
        Err(reason) => {
            let mut job = job;
            job.skip = Some(reason);
            stats.verdict(Verdict::Skipped, Some(reason), None);
            Done {
                job,
                verdict: Verdict::Skipped,
                candidate: CandidateSide::default(),
                candidate_response: None,
            }
        }
        Ok(Err(kind)) => {
            stats.verdict(Verdict::Error, None, Some(kind));
            Done {
                job,
                verdict: Verdict::Error,
                candidate: CandidateSide {
                    error: Some(kind),
                    ..CandidateSide::default()
                },
                candidate_response: None,
            }
        }
        Ok(Ok((answer, took))) => {
            stats.verdict(Verdict::Sent, None, None);
            if let Some(us) = job.production.latency_us {
                stats
                    .latency
                    .with_label_values(&["production"])
                    .observe(us as f64 / 1e6);
            }
            stats
                .latency
                .with_label_values(&["candidate"])
                .observe(took.as_secs_f64());
            Done {
                candidate: CandidateSide {
                    status: Some(answer.response.status),
                    latency_us: Some(took.as_micros() as u64),
                    body_len: Some(answer.body_len),
                    error: None,
                },
                job,
                verdict: Verdict::Sent,
                candidate_response: Some(answer.response),
            }
        }
    };
    shared.settled.fetch_add(1, Relaxed);
    if shared.records.send(done).await.is_err() {
        stats.record_errors.fetch_add(1, Relaxed);
    }
}

/// The writer thread: redacts, asks the comparison, writes one line per record, and builds the
/// summary. Flushes whenever it has caught up.
fn write_records(
    mut rx: mpsc::Receiver<Done>,
    out: Box<dyn Write + Send>,
    redactor: Redactor,
    mut endpoints: Box<dyn Endpoints>,
    mut compare: Box<dyn Compare>,
    stats: Arc<ShadowStats>,
    _max_body: usize,
) -> WriterEnd {
    let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
    let mut summary = Summary::default();
    let mut error: Option<String> = None;
    let mut line = Vec::with_capacity(512);
    loop {
        let done = match rx.try_recv() {
            Ok(d) => d,
            Err(mpsc::error::TryRecvError::Empty) => {
                if let Err(e) = out.flush() {
                    error.get_or_insert(e.to_string());
                }
                match rx.blocking_recv() {
                    Some(d) => d,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        let Done {
            job,
            verdict,
            candidate,
            candidate_response,
        } = done;
        let uri = job
            .uri
            .as_deref()
            .map(|u| redactor.redact_uri(u).into_owned());
        let method = job.method.clone();
        let endpoint = endpoints.endpoint(
            method.as_deref().unwrap_or("-"),
            uri.as_deref().unwrap_or("-"),
        );
        let mut record = ShadowRecord {
            id: job.id,
            method,
            uri,
            endpoint,
            verdict,
            reason: job.skip.filter(|_| verdict == Verdict::Skipped),
            production: job.production.clone(),
            candidate,
            extra: serde_json::Map::new(),
        };
        record.extra = compare.compare(&Outcome {
            record: &record,
            production: job.production_response.as_ref(),
            candidate: candidate_response.as_ref(),
        });
        summary.add(&record);
        line.clear();
        if serde_json::to_writer(&mut line, &record).is_ok() {
            line.push(b'\n');
            match out.write_all(&line) {
                Ok(()) => {
                    stats.records_written.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    stats.record_errors.fetch_add(1, Relaxed);
                    error.get_or_insert(e.to_string());
                }
            }
        } else {
            stats.record_errors.fetch_add(1, Relaxed);
        }
    }
    if let Err(e) = out.flush() {
        error.get_or_insert(e.to_string());
    }
    WriterEnd {
        summary,
        comparison: compare.summary(),
        error,
    }
}
