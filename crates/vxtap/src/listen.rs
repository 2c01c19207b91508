//! `vxtap listen`: the appliance behind the NLB.
//!
//! ```text
//!  R receive threads ──(batches by symmetric flow hash, try_send)──► W workers ──► output thread
//!    recvmmsg + decap + filters         bounded channels            own flow shard   redact, write
//! ```
//! A full worker queue drops the batch and counts it: the receive thread never blocks, because
//! a blocked reader makes the kernel drop instead, invisibly. Each thread publishes a snapshot
//! of its counters about once a second under its own mutex, which only the metrics scrape also
//! takes; nothing on the hot path is shared between workers.
//!
//! [`listen`] reads as the startup order; the threads are spawned from one context,
//! `Listener` (the settings, the stop/reopen flags and the shared counters), and each thread
//! is a struct holding what it owns, whose `run` is the thread's loop.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use vxtap_capture::{RecvBatch, RecvStats, UdpConfig, UdpReceiver, DATAGRAM_BUF};
use vxtap_http::Exchange;
use vxtap_sink::{JsonLinesConfig, Sink};
use vxtap_wire::{DecapStats, Decapsulator, Decoded};

use crate::admin::AdminServer;
use crate::batch::SegmentBatch;
use crate::config::ListenSettings;
use crate::health::{Beat, Every, Health, RateLimitedLog, OUTPUT_ERROR_LOG_EVERY};
use crate::metrics::MetricSet;
use crate::output::{OutputConfig, OutputSink};
use crate::packet_filter::{Decision, FilterReason, FilterStats, PacketFilter};
use crate::pipeline::{output_pipeline_with, Totals, Worker, WorkerStats, MAX_SILENCE};
use crate::shadow::Feed;
use vxtap_shadow::ShadowStage;

/// The output stage: transforms, then JSON lines or Kafka.
type Pipeline = vxtap_sink::ExchangePipeline<vxtap_sink::Transforms, OutputSink>;

/// Time the Kafka output's end of run keeps for itself before the drain deadline: purging
/// what is left into the spool and syncing it.
const FINISH_MARGIN: Duration = Duration::from_millis(300);

/// Distinct VNIs given their own metric label; the rest share `other` (bounded cardinality).
const MAX_VNI_LABELS: usize = 64;
/// Segments per batch handed to a worker.
const BATCH_SEGMENTS: usize = 128;
/// Payload bytes per batch handed to a worker (jumbo frames fill a batch sooner).
const BATCH_BYTES: usize = BATCH_SEGMENTS * 1500;
/// Arena of a receive batch: a batch is handed over as soon as it holds `BATCH_BYTES`, so the
/// datagram that fills it fits and the arena never reallocates.
const BATCH_ARENA: usize = BATCH_BYTES + DATAGRAM_BUF;
/// Batches queued per worker before the receive threads start dropping, when the memory budget
/// allows; fewer with a smaller budget (see [`queue_plan`]).
const WORKER_QUEUE_MAX: usize = 128;
/// Exchanges waiting for the output thread, in bytes (all workers): beyond it, a worker drops
/// its batch and counts it (`vxtap_output_queue_dropped_exchanges_total`), as when the queue
/// is full. Part of the fixed overhead: evictions under memory pressure emit whole pipelines
/// of pending requests at once, and a slow output must not let them pile up.
const OUTPUT_QUEUE_BYTES: usize = 8 << 20;

/// Heap bytes of an exchange waiting for output, closely enough to bound the output queue
/// (strings at capacity; the fixed-size parts with the vec slot).
fn exchange_bytes(ex: &Exchange) -> usize {
    fn msg(m: &vxtap_http::Message) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        m.headers.capacity() * std::mem::size_of::<(String, String)>()
            + m.headers
                .iter()
                .map(|(a, b)| a.capacity() + b.capacity() + 32)
                .sum::<usize>()
            + opt(&m.method)
            + opt(&m.uri)
            + opt(&m.start_line)
            + opt(&m.reason)
            + m.body.as_ref().map_or(0, |b| b.bytes.capacity())
            + m.replay_body.as_ref().map_or(0, Vec::capacity)
    }
    // The record's fixed-size parts and its vecs, roughly.
    std::mem::size_of::<Exchange>()
        + 64
        + ex.request.as_ref().map_or(0, msg)
        + ex.response.as_ref().map_or(0, msg)
        + ex.interim.iter().map(msg).sum::<usize>()
}

/// A worker's finished exchanges on their way to the output thread, with the bytes they were
/// charged against [`OUTPUT_QUEUE_BYTES`]: the output thread releases exactly that charge
/// rather than measuring the batch again.
struct OutBatch {
    exchanges: Vec<Exchange>,
    charged: usize,
}

fn batch_bytes(batch: &[Exchange]) -> usize {
    batch.iter().map(exchange_bytes).sum()
}

/// Fewest batches queued per worker: below this, `--max-memory` is refused as too small.
const WORKER_QUEUE_MIN: usize = 2;
/// The worker queues take at most 1/QUEUE_SHARE of `--max-memory`; the flow tables get the rest.
const QUEUE_SHARE: usize = 4;

/// How deep the worker queues are and what they may hold, taken off `--max-memory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuePlan {
    /// Batches queued per worker.
    pub depth: usize,
    /// Bytes every batch in existence can hold at once, all workers together: the queued
    /// ones, the one each worker is processing, and each receive thread's partial and spare
    /// batch per worker.
    pub reserved: usize,
}

/// Sizes the worker queues within a quarter of `max_memory` (at most [`WORKER_QUEUE_MAX`]
/// batches each). The receive batches exist whatever the traffic, so they are charged up
/// front; a budget that cannot hold [`WORKER_QUEUE_MIN`] batches per worker within half of it
/// is refused rather than silently raised.
pub fn queue_plan(max_memory: usize, workers: usize, recv_threads: usize) -> Result<QueuePlan> {
    let workers = workers.max(1);
    let batch = SegmentBatch::footprint(BATCH_SEGMENTS, BATCH_ARENA);
    let fixed = 1 + 2 * recv_threads.max(1);
    let per_worker = max_memory / QUEUE_SHARE / workers / batch;
    let depth = per_worker.saturating_sub(fixed).min(WORKER_QUEUE_MAX);
    let depth = depth.max(WORKER_QUEUE_MIN);
    let reserved = (depth + fixed) * batch * workers;
    if reserved > max_memory / 2 {
        bail!(
            "--max-memory {max_memory} is too small for {workers} workers: their queues need \
             {reserved} bytes ({depth} batches of {batch} bytes queued per worker, plus those \
             being filled and processed), more than half the budget; raise --max-memory to at \
             least {} or lower --threads",
            2 * reserved
        );
    }
    Ok(QueuePlan { depth, reserved })
}
/// Longest time a segment waits in a receive thread's partial batch.
const FLUSH_EVERY: Duration = Duration::from_millis(1);

/// Counters of one receive thread.
#[derive(Clone, Debug, Default)]
pub struct RecvSnapshot {
    /// Socket counters (datagrams, bytes, truncated, kernel drops).
    pub socket: RecvStats,
    /// Decapsulation.
    pub decap: DecapStats,
    /// Packet filters.
    pub filter: FilterStats,
    /// Segments dropped because a worker's queue was full.
    pub queue_dropped_segments: u64,
    /// Datagrams per VNI (bounded label set).
    pub per_vni: Vec<(Option<u32>, u64, u64)>,
    /// Datagrams whose VNI did not get a label of its own.
    pub other_vni: (u64, u64),
}

impl RecvSnapshot {
    fn count_vni(&mut self, vni: Option<u32>, bytes: u64) {
        if let Some(e) = self.per_vni.iter_mut().find(|e| e.0 == vni) {
            e.1 += 1;
            e.2 += bytes;
        } else if self.per_vni.len() < MAX_VNI_LABELS {
            self.per_vni.push((vni, 1, bytes));
        } else {
            self.other_vni.0 += 1;
            self.other_vni.1 += bytes;
        }
    }
}

/// Counters of the output thread.
#[derive(Clone, Debug, Default)]
pub struct OutputSnapshot {
    /// Exchange batches dropped because the output queue was full.
    pub queue_dropped_exchanges: u64,
}

/// Test and benchmark hooks (hidden flags).
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    /// Exit after this long.
    pub run_for: Option<Duration>,
    /// Worker 0 stops working after this long (to test `/readyz`).
    pub stall_worker_after: Option<Duration>,
}

struct Shared {
    health: Arc<Health>,
    recv: Vec<Arc<Mutex<RecvSnapshot>>>,
    workers: Vec<Arc<Mutex<WorkerStats>>>,
    output: Arc<Mutex<Totals>>,
    output_drops: Arc<Mutex<u64>>,
    metrics: Arc<Mutex<MetricSet>>,
    /// Exchanges the workers put on the output queue (counted per batch).
    handed: Arc<AtomicU64>,
    /// Exchanges the output thread dealt with without writing them (filtered out, or failed),
    /// published per batch.
    unwritten_settled: Arc<AtomicU64>,
    /// The shadow stage's counters (`--shadow-target`).
    shadow: Option<Arc<vxtap_shadow::ShadowStats>>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        // A panicking thread aborts the process (panic = abort in release); in tests the data
        // is still the last snapshot, good enough to read.
        Err(p) => p.into_inner(),
    }
}

/// Runs the listener until SIGTERM/SIGINT (or `hooks.run_for`), then drains and returns the
/// final totals.
///
/// Startup fails before any pipeline thread exists when the output, a socket or the admin port
/// cannot be opened; then the threads start downstream first (workers, output, receivers), so
/// that every queue has its consumer before anything is put on it.
pub fn listen(settings: ListenSettings, hooks: Hooks) -> Result<Totals> {
    let ctx = Listener::new(settings, hooks)?;
    // Output first, so that a bad output path fails before any socket is opened.
    let (out, shadow) = ctx.output_pipeline()?;
    let shadow_summary = ctx.settings.shadow.as_ref().and_then(|s| s.summary.clone());
    let (out_tx, out_rx) = bounded::<OutBatch>(256);
    // Sockets next: a bind error should stop startup before threads exist.
    let receivers = ctx.bind_receivers()?;
    let local = receivers
        .first()
        .map(|r| r.local_addr())
        .transpose()?
        .context("no receive thread")?;
    let admin = ctx.start_admin()?;
    tracing::info!(
        udp = %local,
        admin = %admin.local_addr,
        workers = ctx.n_workers,
        recv_threads = ctx.settings.recv_threads,
        queue_depth = ctx.plan.depth,
        queue_bytes = ctx.plan.reserved,
        flow_memory = ctx.settings.common.flow.max_memory,
        "vxtap listening"
    );

    // Workers. Emptied batches travel back to the receive threads to be reused.
    // Batches beyond what the queues can hold are freed on their way back: a burst does not
    // leave more batches alive than the plan charged for.
    let (recycle_tx, recycle_rx) = bounded::<SegmentBatch>(ctx.plan.depth * ctx.n_workers);
    let Workers {
        queues: to_workers,
        handles: worker_handles,
    } = ctx.spawn_workers(&out_tx, &recycle_tx)?;
    // The workers hold the only senders now: the output thread ends when they have.
    drop(out_tx);
    let written = out.sink.written_counter();
    let output = ctx.spawn_output(out, out_rx, shadow.clone())?;
    let recv_handles = ctx.spawn_receivers(receivers, local.port(), &to_workers, &recycle_rx)?;
    // The receive threads hold the only senders now: a worker ends when they have.
    drop(to_workers);

    ctx.wait_for_stop();
    let totals = ctx.drain(admin, written, output, recv_handles, worker_handles);
    // The output thread has let go of the stage unless it was left blocked.
    if let Some(stage) = shadow.and_then(|s| Arc::try_unwrap(s).ok()) {
        let report = stage.finish();
        eprint!("{}", crate::shadow::report_text(&report));
        if let Some(p) = &shadow_summary {
            crate::shadow::write_summary(p, &report)?;
        }
    }
    Ok(totals)
}

/// The running workers: one queue sender each (for the receive threads) and their threads.
struct Workers {
    queues: Vec<Sender<SegmentBatch>>,
    handles: Vec<JoinHandle<()>>,
}

/// What the listener's threads are spawned from: the settings (the flow budget already net of
/// the queues), the stop and reopen flags the signals set, and the counters the threads share
/// with the metrics scrape and the shutdown.
struct Listener {
    settings: ListenSettings,
    hooks: Hooks,
    plan: QueuePlan,
    n_workers: usize,
    /// Set by SIGTERM/SIGINT (or `hooks.run_for`).
    stop: Arc<AtomicBool>,
    /// Set by SIGHUP: the output thread reopens its file (log rotation).
    reopen: Arc<AtomicBool>,
    shared: Shared,
    /// Bytes of the exchanges on the output queue (see [`OUTPUT_QUEUE_BYTES`]).
    queued_out: Arc<AtomicUsize>,
    /// When the drain must be done (set when it starts), for the output's end of run.
    drain_deadline: Arc<Mutex<Option<Instant>>>,
}

impl Listener {
    /// Registers the signals and plans the memory: `--max-memory` covers the queues too, so
    /// what the worker queues can hold at most is taken off the flow tables' budget.
    fn new(settings: ListenSettings, hooks: Hooks) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, stop.clone()).context("signal")?;
        }
        let reopen = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, reopen.clone())
            .context("signal")?;

        let n_workers = settings.common.threads.max(1);
        let plan = queue_plan(
            settings.common.flow.max_memory,
            n_workers,
            settings.recv_threads,
        )?;
        let mut settings = settings;
        settings.common.flow.max_memory -= plan.reserved;
        // The Kafka producer's queue grows with traffic too: charged to the same budget.
        if let Some(k) = &settings.kafka {
            let reserved = usize::try_from(k.memory_reservation()).unwrap_or(usize::MAX);
            settings.common.flow.max_memory = settings
                .common
                .flow
                .max_memory
                .checked_sub(reserved)
                .with_context(|| {
                    format!(
                        "--max-memory cannot hold the Kafka producer's queue ({reserved} \
                         bytes: queue_bytes plus {} bytes a record of queue_records; raise \
                         --max-memory or lower them in [output.kafka])",
                        vxtap_kafka::config::PER_RECORD_OVERHEAD
                    )
                })?;
        }
        settings.common.check_worker_memory()?;
        let shared = Shared {
            health: Arc::new(Health::default()),
            recv: (0..settings.recv_threads)
                .map(|_| Arc::new(Mutex::new(RecvSnapshot::default())))
                .collect(),
            workers: (0..n_workers)
                .map(|_| Arc::new(Mutex::new(WorkerStats::default())))
                .collect(),
            output: Arc::new(Mutex::new(Totals::default())),
            output_drops: Arc::new(Mutex::new(0)),
            metrics: Arc::new(Mutex::new(MetricSet::new())),
            handed: Arc::new(AtomicU64::new(0)),
            unwritten_settled: Arc::new(AtomicU64::new(0)),
            shadow: settings
                .shadow
                .as_ref()
                .map(|_| Arc::new(vxtap_shadow::ShadowStats::new())),
        };
        if let Some(s) = &shared.shadow {
            lock(&shared.metrics).register(Box::new(s.latency.clone()));
        }
        if let Some(rate) = settings.common.packet_filter.sample {
            lock(&shared.metrics).sample_rate.set(rate);
        }
        Ok(Listener {
            settings,
            hooks,
            plan,
            n_workers,
            stop,
            reopen,
            shared,
            queued_out: Arc::new(AtomicUsize::new(0)),
            drain_deadline: Arc::new(Mutex::new(None)),
        })
    }

    /// The output stage (transforms and the writer: JSON lines or Kafka), opened, and the
    /// shadow stage (`--shadow-target`) started with the same redactor.
    fn output_pipeline(&self) -> Result<(Pipeline, Option<Arc<ShadowStage>>)> {
        let settings = &self.settings;
        let redactor = crate::pipeline::redactor(&settings.common)?;
        let cfg = match &settings.kafka {
            Some(k) => OutputConfig::Kafka(k.clone()),
            None => OutputConfig::Lines(JsonLinesConfig {
                path: settings.output.clone(),
                rotate_bytes: settings.rotate_size,
                rotate_interval: settings.rotate_interval,
                ..JsonLinesConfig::default()
            }),
        };
        let out = output_pipeline_with(&settings.common, cfg, redactor.clone())?;
        let shadow = match (&settings.shadow, &self.shared.shadow) {
            (Some(sh), Some(stats)) => {
                let records = crate::shadow::open_output(sh.output.as_deref())?;
                Some(Arc::new(crate::shadow::start(
                    sh.cfg.clone(),
                    records,
                    redactor,
                    stats.clone(),
                )?))
            }
            _ => None,
        };
        Ok((out, shadow))
    }

    /// One socket per receive thread, all on the same port (SO_REUSEPORT).
    fn bind_receivers(&self) -> Result<Vec<UdpReceiver>> {
        let settings = &self.settings;
        let mut receivers = Vec::new();
        for i in 0..settings.recv_threads {
            let mut cfg = UdpConfig::new(settings.bind);
            cfg.recv_buffer = settings.recv_buffer;
            let mut bind_cfg = cfg.clone();
            if i > 0 {
                // Every socket must bind the port the first one got (port 0 in tests).
                if let Some(r) = receivers.first() {
                    let r: &UdpReceiver = r;
                    bind_cfg.bind = r.local_addr()?;
                }
            }
            let r = UdpReceiver::bind(&bind_cfg)?;
            if let Some(w) = r.recv_buffer().warning() {
                tracing::warn!("{w}");
            }
            receivers.push(r);
        }
        Ok(receivers)
    }

    /// The admin port: health, readiness and the metrics rendered from the shared snapshots.
    fn start_admin(&self) -> Result<AdminServer> {
        let shared = &self.shared;
        let shared_metrics = shared.metrics.clone();
        let (recv_snaps, worker_snaps, output_snap, output_drops) = (
            shared.recv.clone(),
            shared.workers.clone(),
            shared.output.clone(),
            shared.output_drops.clone(),
        );
        let shadow = shared.shadow.clone();
        AdminServer::start(
            self.settings.admin_bind,
            shared.health.clone(),
            MAX_SILENCE.as_millis() as u64,
            move || {
                if let Some(s) = &shadow {
                    crate::shadow::export(&s.snapshot(), &mut lock(&shared_metrics));
                }
                render(
                    &shared_metrics,
                    &recv_snaps,
                    &worker_snaps,
                    &output_snap,
                    &output_drops,
                )
            },
        )
    }

    /// Spawns the workers, each with its own queue (returned, one sender per worker, for the
    /// receive threads) and its share of the flow budget.
    fn spawn_workers(
        &self,
        out_tx: &Sender<OutBatch>,
        recycle_tx: &Sender<SegmentBatch>,
    ) -> Result<Workers> {
        let common = &self.settings.common;
        let shared = &self.shared;
        let mut to_workers = Vec::new();
        let mut worker_handles: Vec<JoinHandle<()>> = Vec::new();
        for i in 0..self.n_workers {
            let (tx, rx) = bounded::<SegmentBatch>(self.plan.depth);
            to_workers.push(tx);
            let thread = WorkerThread {
                worker: Worker::new(common.flow_for_worker(), common.http_for_worker())?,
                rx,
                recycle: recycle_tx.clone(),
                out: out_tx.clone(),
                queued: self.queued_out.clone(),
                beat: shared.health.register(format!("worker-{i}")),
                snap: shared.workers[i].clone(),
                output_drops: shared.output_drops.clone(),
                handed: shared.handed.clone(),
                stall_after: if i == 0 {
                    self.hooks.stall_worker_after
                } else {
                    None
                },
            };
            worker_handles.push(
                thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || thread.run())?,
            );
        }
        Ok(Workers {
            queues: to_workers,
            handles: worker_handles,
        })
    }

    /// Spawns the output thread, which owns `out` and ends when every worker has.
    fn spawn_output(
        &self,
        out: Pipeline,
        out_rx: Receiver<OutBatch>,
        shadow: Option<Arc<ShadowStage>>,
    ) -> Result<JoinHandle<()>> {
        let shared = &self.shared;
        let shadow = match shadow {
            Some(stage) => Some((stage, Feed::new(&self.settings.common)?)),
            None => None,
        };
        let thread = OutputThread {
            out,
            shadow,
            rx: out_rx,
            queued: self.queued_out.clone(),
            beat: shared.health.register("output"),
            health: shared.health.clone(),
            totals: shared.output.clone(),
            metrics: shared.metrics.clone(),
            settled: shared.unwritten_settled.clone(),
            reopen: self.reopen.clone(),
            drain_deadline: self.drain_deadline.clone(),
            drain_timeout: self.settings.drain_timeout,
        };
        Ok(thread::Builder::new()
            .name("output".into())
            .spawn(move || thread.run())?)
    }

    /// Spawns one receive thread per socket, each with its own decapsulator and packet filter.
    fn spawn_receivers(
        &self,
        receivers: Vec<UdpReceiver>,
        port: u16,
        to_workers: &[Sender<SegmentBatch>],
        recycle_rx: &Receiver<SegmentBatch>,
    ) -> Result<Vec<JoinHandle<()>>> {
        let common = &self.settings.common;
        let mut recv_handles = Vec::new();
        for (i, receiver) in receivers.into_iter().enumerate() {
            let thread = ReceiverThread {
                beat: self.shared.health.register(format!("recv-{i}")),
                snap: self.shared.recv[i].clone(),
                to_workers: to_workers.to_vec(),
                stop: self.stop.clone(),
                decap: Decapsulator::new(common.decap.clone()),
                filter: PacketFilter::new(&common.packet_filter)?,
                port,
                recycle: recycle_rx.clone(),
                sock: receiver,
            };
            recv_handles.push(
                thread::Builder::new()
                    .name(format!("recv-{i}"))
                    .spawn(move || thread.run())?,
            );
        }
        Ok(recv_handles)
    }

    /// Blocks until a signal (or `hooks.run_for`) asks to stop.
    fn wait_for_stop(&self) {
        let started = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
            if self.hooks.run_for.is_some_and(|d| started.elapsed() >= d) {
                self.stop.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Drains the threads (receivers into workers into the output) and returns the totals;
    /// `written` is the output's count of records written, read live when the output is
    /// blocked past the deadline.
    fn drain(
        self,
        admin: AdminServer,
        written: Arc<AtomicU64>,
        output: JoinHandle<()>,
        recv_handles: Vec<JoinHandle<()>>,
        worker_handles: Vec<JoinHandle<()>>,
    ) -> Totals {
        let (settings, shared) = (&self.settings, &self.shared);
        tracing::info!("stopping: draining queues");
        shared.health.set_stopping();
        // Every thread drains into the next and the output thread ends last, unless the output
        // is blocked (a FIFO or a pipe whose reader stopped): a write(2) cannot be called off, so
        // past the deadline the process gives up on it and says what was lost.
        let deadline = Instant::now() + settings.drain_timeout;
        *lock(&self.drain_deadline) = Some(deadline);
        while !output.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if !output.is_finished() {
            let written_now = written.load(Ordering::Relaxed);
            let lost = shared
                .handed
                .load(Ordering::Relaxed)
                .saturating_sub(written_now)
                .saturating_sub(shared.unwritten_settled.load(Ordering::Relaxed));
            tracing::error!(
                "drain deadline ({:?}) passed with the output blocked: {lost} records not written",
                settings.drain_timeout
            );
            let mut totals = collect(&shared.recv, &shared.workers, &shared.output);
            totals.frames = totals.decap.packets;
            // The output thread's last snapshot may be older than what it wrote since.
            totals.writer.records = totals.writer.records.max(written_now);
            totals.abandoned_at_shutdown = Some(lost);
            drop(admin);
            // The blocked threads are left behind: the process exits when the caller returns.
            return totals;
        }
        for h in recv_handles {
            let _ = h.join();
        }
        for h in worker_handles {
            let _ = h.join();
        }
        let _ = output.join();
        let mut totals = collect(&shared.recv, &shared.workers, &shared.output);
        totals.frames = totals.decap.packets;
        drop(admin);
        totals
    }
}

/// The output thread: transforms and writes what the workers hand over, reopens the file on
/// SIGHUP, and publishes its totals and health.
struct OutputThread {
    out: Pipeline,
    /// Shadow replay: every exchange is offered to it before redaction (it never blocks).
    shadow: Option<(Arc<ShadowStage>, Feed)>,
    rx: Receiver<OutBatch>,
    /// Bytes on the output queue (the workers add, this thread subtracts).
    queued: Arc<AtomicUsize>,
    beat: Arc<Beat>,
    health: Arc<Health>,
    totals: Arc<Mutex<Totals>>,
    metrics: Arc<Mutex<MetricSet>>,
    /// Exchanges dealt with without writing them, for the shutdown deadline.
    settled: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
    drain_deadline: Arc<Mutex<Option<Instant>>>,
    drain_timeout: Duration,
}

impl OutputThread {
    fn run(self) {
        let OutputThread {
            mut out,
            mut shadow,
            rx: out_rx,
            queued: out_queued,
            beat: out_beat,
            health: out_health,
            totals: out_totals,
            metrics: out_metrics,
            settled,
            reopen,
            drain_deadline,
            drain_timeout,
        } = self;
        let mut tick = Every::new(Duration::from_millis(500));
        let mut errors = RateLimitedLog::new(OUTPUT_ERROR_LOG_EVERY);
        // Published after each batch for the shutdown deadline: what this thread dealt
        // with without writing it.
        let publish_settled = |out: &Pipeline| {
            let f = out.transforms.stats().filter;
            let filtered = f.host + f.path + f.method + f.status;
            settled.store(filtered + out.sink.stats().failed, Ordering::Relaxed);
        };
        loop {
            match out_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(OutBatch {
                    exchanges: batch,
                    charged,
                }) => {
                    out_queued.fetch_sub(charged, Ordering::Relaxed);
                    let m = lock(&out_metrics);
                    for ex in &batch {
                        if let Some(d) = ex.timing.duration_us() {
                            m.exchange_duration.observe(d as f64 / 1e6);
                        }
                        if let Some(t) = ex.timing.ttfb_us() {
                            m.exchange_ttfb.observe(t as f64 / 1e6);
                        }
                    }
                    drop(m);
                    let mut failed = false;
                    for mut ex in batch {
                        if let Some((stage, feed)) = shadow.as_mut() {
                            feed.offer(stage, &mut ex);
                        }
                        if let Err(e) = out.handle(ex) {
                            failed = true;
                            errors.error("output failing", &e);
                        }
                    }
                    if failed || out.sink.output_failing() {
                        out_health.set_output_failing(true);
                    }
                    publish_settled(&out);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if reopen.swap(false, Ordering::Relaxed) {
                if let Err(e) = out.sink.reopen() {
                    tracing::error!("reopen output: {e}");
                }
            }
            if tick.due() {
                out_beat.beat();
                let r = out.sink.tick(SystemTime::now()).and_then(|()| out.flush());
                if let Err(e) = &r {
                    errors.error("output failing", e);
                }
                out_health.set_output_failing(r.is_err() || out.sink.output_failing());
                publish_settled(&out);
                let mut t = lock(&out_totals);
                *t = Totals::default();
                t.add_output(&out);
            }
        }
        if let Err(e) = out.flush() {
            // The last flush is reported whatever the rate limit says.
            tracing::error!("output failing at shutdown: {e}");
        }
        // Kafka: wait for the acknowledgements until just before the drain deadline, then
        // spool (or count as lost) what is still undelivered.
        let deadline = lock(&drain_deadline)
            .unwrap_or_else(|| Instant::now() + drain_timeout)
            .checked_sub(FINISH_MARGIN)
            .unwrap_or_else(Instant::now);
        let finish = out.sink.finish(deadline);
        if let Some(f) = finish {
            if f.undelivered > 0 {
                tracing::warn!(
                    undelivered = f.undelivered,
                    spooled = f.spooled,
                    "kafka: records not acknowledged by the drain deadline"
                );
            }
        }
        let mut t = lock(&out_totals);
        *t = Totals::default();
        t.add_output(&out);
        t.kafka_finish = finish;
    }
}

fn collect(
    recv: &[Arc<Mutex<RecvSnapshot>>],
    workers: &[Arc<Mutex<WorkerStats>>],
    output: &Arc<Mutex<Totals>>,
) -> Totals {
    let mut t = lock(output).clone();
    for r in recv {
        let r = lock(r);
        t.decap.merge(&r.decap);
        t.filter.merge(&r.filter);
    }
    let mut w = WorkerStats::default();
    for s in workers {
        w.merge(&lock(s));
    }
    t.workers = w;
    t
}

fn render(
    metrics: &Mutex<MetricSet>,
    recv: &[Arc<Mutex<RecvSnapshot>>],
    workers: &[Arc<Mutex<WorkerStats>>],
    output: &Arc<Mutex<Totals>>,
    output_drops: &Mutex<u64>,
) -> String {
    let totals = collect(recv, workers, output);
    let mut m = lock(metrics);
    totals.export(&mut m);
    let (mut dgrams, mut bytes, mut trunc, mut kdrops, mut qdrops) = (0, 0, 0, 0, 0);
    let mut per_vni: Vec<(String, u64, u64)> = Vec::new();
    for r in recv {
        let r = lock(r);
        dgrams += r.socket.datagrams;
        bytes += r.socket.bytes;
        trunc += r.socket.truncated;
        kdrops += r.socket.kernel_drops;
        qdrops += r.queue_dropped_segments;
        for (vni, p, b) in &r.per_vni {
            let label = vni.map_or_else(|| "none".to_string(), |v| v.to_string());
            match per_vni.iter_mut().find(|e| e.0 == label) {
                Some(e) => {
                    e.1 += p;
                    e.2 += b;
                }
                None => per_vni.push((label, *p, *b)),
            }
        }
        if r.other_vni.0 > 0 {
            per_vni.push(("other".into(), r.other_vni.0, r.other_vni.1));
        }
    }
    let c = |m: &mut MetricSet, name, help, v| m.counter(name, help, &[], v);
    c(
        &mut m,
        "vxtap_recv_datagrams_total",
        "UDP datagrams received.",
        dgrams,
    );
    c(
        &mut m,
        "vxtap_recv_bytes_total",
        "UDP payload bytes received.",
        bytes,
    );
    c(
        &mut m,
        "vxtap_recv_truncated_total",
        "Datagrams larger than the receive buffer (never expected: buffers hold jumbo frames).",
        trunc,
    );
    c(
        &mut m,
        "vxtap_recv_kernel_drops_total",
        "Datagrams the kernel dropped because the socket buffer was full (SO_RXQ_OVFL).",
        kdrops,
    );
    c(
        &mut m,
        "vxtap_recv_queue_dropped_segments_total",
        "Segments dropped because a worker queue was full.",
        qdrops,
    );
    c(
        &mut m,
        "vxtap_output_queue_dropped_exchanges_total",
        "Exchanges dropped because the output queue was full.",
        *lock(output_drops),
    );
    for (vni, p, b) in per_vni {
        m.counter(
            "vxtap_recv_vni_packets_total",
            "Datagrams per VNI (at most 64 labels, then `other`).",
            &[("vni", &vni)],
            p,
        );
        m.counter(
            "vxtap_recv_vni_bytes_total",
            "Bytes per VNI (at most 64 labels, then `other`).",
            &[("vni", &vni)],
            b,
        );
    }
    m.render()
}

/// A receive thread: reads datagrams, decapsulates and filters them, and batches the kept
/// segments per worker by their symmetric flow hash.
struct ReceiverThread {
    sock: UdpReceiver,
    decap: Decapsulator,
    filter: PacketFilter,
    /// The UDP port the datagrams arrived on (what the decapsulator expects of a tunnel).
    port: u16,
    to_workers: Vec<Sender<SegmentBatch>>,
    /// Batches the workers emptied, to be filled again.
    recycle: Receiver<SegmentBatch>,
    stop: Arc<AtomicBool>,
    beat: Arc<Beat>,
    snap: Arc<Mutex<RecvSnapshot>>,
}

impl ReceiverThread {
    // Moved out into locals first: the loop below is the hot path, unchanged.
    fn run(self) {
        let ReceiverThread {
            mut sock,
            mut decap,
            filter,
            port,
            to_workers,
            recycle,
            stop,
            beat,
            snap,
        } = self;
        let n = to_workers.len().max(1);
        let mut batch = RecvBatch::new(64, DATAGRAM_BUF);
        let mut pending: Vec<SegmentBatch> = (0..n)
            .map(|_| SegmentBatch::with_capacity(BATCH_SEGMENTS, BATCH_ARENA))
            .collect();
        let mut local = RecvSnapshot::default();
        let mut publish = Every::new(Duration::from_millis(500));
        let mut spare: Vec<SegmentBatch> = Vec::new();
        let mut next_flush = Instant::now() + FLUSH_EVERY;
        while !stop.load(Ordering::Relaxed) {
            let got = match sock.recv(&mut batch) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("receive: {e}");
                    thread::sleep(Duration::from_millis(10));
                    0
                }
            };
            for d in batch.iter().take(got) {
                let src: IpAddr = d.source.ip();
                if !filter.allows_source(src) {
                    local
                        .filter
                        .record(Decision::Drop(FilterReason::SourceNotAllowed));
                    continue;
                }
                match decap.decode_tunnel_payload(d.ts_ns, src, port, d.data) {
                    Decoded::Segment { segment, .. } => {
                        local.count_vni(segment.vni, d.len as u64);
                        if filter.check(&segment, &mut local.filter).is_keep() {
                            let shard = (segment.shard_hash() % n as u64) as usize;
                            let b = &mut pending[shard];
                            b.push(&segment);
                            // Handed over the moment it is full, so that it never grows past the
                            // capacities the memory plan charged for.
                            if b.len() >= BATCH_SEGMENTS || b.payload_bytes() >= BATCH_BYTES {
                                hand_over(b, &to_workers[shard], &mut spare, &recycle, &mut local);
                            }
                        }
                    }
                    Decoded::Other { vni, .. } => local.count_vni(vni, d.len as u64),
                    Decoded::Rejected(_) | Decoded::FragmentHeld => {}
                }
            }
            // Hand a batch over when it is full, when the socket went quiet, or at least every
            // millisecond: few, large batches keep the queues short under load, and latency stays
            // bounded when traffic is light.
            let now = Instant::now();
            let flush_all = got == 0 || now >= next_flush;
            if flush_all {
                next_flush = now + FLUSH_EVERY;
            }
            if flush_all {
                for (b, tx) in pending.iter_mut().zip(&to_workers) {
                    if !b.is_empty() {
                        hand_over(b, tx, &mut spare, &recycle, &mut local);
                    }
                }
            }
            if publish.due() || stop.load(Ordering::Relaxed) {
                beat.beat();
                let _ = sock.refresh_kernel_drops();
                local.socket = sock.stats();
                local.decap = decap.stats().clone();
                *lock(&snap) = local.clone();
            }
        }
        // Shutdown drains: what was received is processed, not dropped.
        for (batch, tx) in pending.into_iter().zip(&to_workers) {
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
        }
        local.socket = sock.stats();
        local.decap = decap.stats().clone();
        *lock(&snap) = local;
    }
}

/// Sends `pending` to its worker and puts a fresh batch in its place (a spare one, a recycled
/// one, or a new one); a full queue drops the batch's segments (counted) and keeps it as spare.
fn hand_over(
    pending: &mut SegmentBatch,
    tx: &Sender<SegmentBatch>,
    spare: &mut Vec<SegmentBatch>,
    recycle: &Receiver<SegmentBatch>,
    local: &mut RecvSnapshot,
) {
    let fresh = spare
        .pop()
        .or_else(|| recycle.try_recv().ok())
        .unwrap_or_else(|| SegmentBatch::with_capacity(BATCH_SEGMENTS, BATCH_ARENA));
    let full = std::mem::replace(pending, fresh);
    match tx.try_send(full) {
        Ok(()) => {}
        Err(TrySendError::Full(mut b)) | Err(TrySendError::Disconnected(mut b)) => {
            local.queue_dropped_segments += b.len() as u64;
            b.clear();
            spare.push(b);
        }
    }
}

/// A worker: owns a shard of the flow table and the HTTP state, and hands its exchanges to
/// the output thread in batches.
struct WorkerThread {
    worker: Worker,
    rx: Receiver<SegmentBatch>,
    /// Where emptied batches go back to the receive threads.
    recycle: Sender<SegmentBatch>,
    out: Sender<OutBatch>,
    /// Bytes on the output queue (see [`OUTPUT_QUEUE_BYTES`]).
    queued: Arc<AtomicUsize>,
    beat: Arc<Beat>,
    snap: Arc<Mutex<WorkerStats>>,
    output_drops: Arc<Mutex<u64>>,
    /// Exchanges put on the output queue, for the shutdown deadline.
    handed: Arc<AtomicU64>,
    /// Test hook: stop working after this long.
    stall_after: Option<Duration>,
}

impl WorkerThread {
    // Moved out into locals first: the loop below is the hot path, unchanged.
    fn run(self) {
        let WorkerThread {
            mut worker,
            rx,
            recycle,
            out,
            queued,
            beat,
            snap,
            output_drops,
            handed,
            stall_after,
        } = self;
        let started = Instant::now();
        let mut publish = Every::new(Duration::from_millis(500));
        let mut ready = Vec::new();
        let send = |ready: &mut Vec<Exchange>| {
            if ready.is_empty() {
                return;
            }
            let batch = std::mem::take(ready);
            let n = batch.len() as u64;
            let bytes = batch_bytes(&batch);
            let before = queued.load(Ordering::Relaxed);
            // An empty queue takes any batch, however large: the output must not starve.
            if before > 0 && before + bytes > OUTPUT_QUEUE_BYTES {
                *lock(&output_drops) += n;
                return;
            }
            queued.fetch_add(bytes, Ordering::Relaxed);
            let batch = OutBatch {
                exchanges: batch,
                charged: bytes,
            };
            match out.try_send(batch) {
                Ok(()) => {
                    handed.fetch_add(n, Ordering::Relaxed);
                }
                Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => {
                    queued.fetch_sub(bytes, Ordering::Relaxed);
                    *lock(&output_drops) += b.exchanges.len() as u64;
                }
            }
        };
        loop {
            if stall_after.is_some_and(|d| started.elapsed() >= d) {
                // Test hook: a stalled worker stops beating and processing; it still empties its
                // queue so that shutdown is not blocked.
                while !matches!(
                    rx.recv_timeout(Duration::from_millis(100)),
                    Err(RecvTimeoutError::Disconnected)
                ) {}
                break;
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(mut batch) => {
                    for seg in batch.iter() {
                        worker.process(&seg);
                    }
                    batch.clear();
                    let _ = recycle.try_send(batch);
                }
                Err(RecvTimeoutError::Timeout) => worker.advance_time(now_ns()),
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if worker.ready() > 0 {
                worker.drain_into(&mut ready);
                send(&mut ready);
            }
            if publish.due() {
                beat.beat();
                worker.advance_time(now_ns());
                *lock(&snap) = worker.stats();
            }
        }
        // Shutdown drains completely: block rather than drop the last exchanges; in steps, so
        // that the pending state of a full table does not become output all at once.
        loop {
            let done = worker.finish_some(BATCH_SEGMENTS);
            worker.drain_into(&mut ready);
            if !ready.is_empty() {
                // Counted before the send: if the output is blocked for good, these are among the
                // records the shutdown deadline reports as not written.
                handed.fetch_add(ready.len() as u64, Ordering::Relaxed);
                let charged = batch_bytes(&ready);
                queued.fetch_add(charged, Ordering::Relaxed);
                let _ = out.send(OutBatch {
                    exchanges: std::mem::take(&mut ready),
                    charged,
                });
            }
            if done {
                break;
            }
        }
        *lock(&snap) = worker.stats();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_take_at_most_a_quarter_of_the_budget() {
        let batch = SegmentBatch::footprint(BATCH_SEGMENTS, BATCH_ARENA);
        // The default budget on two workers: queues shrink to fit their quarter.
        let p = queue_plan(64 << 20, 2, 1).unwrap();
        assert!(p.reserved <= 16 << 20, "{p:?}");
        assert_eq!(p.reserved, (p.depth + 3) * batch * 2);
        assert!(p.depth >= WORKER_QUEUE_MIN && p.depth < WORKER_QUEUE_MAX);
        // A large budget gets the full depth, and no more.
        let p = queue_plan(4 << 30, 2, 1).unwrap();
        assert_eq!(p.depth, WORKER_QUEUE_MAX);
        // The issue's 16 MiB on two workers still runs, within half the budget.
        let p = queue_plan(16 << 20, 2, 1).unwrap();
        assert!(p.reserved <= 8 << 20, "{p:?}");
    }

    #[test]
    fn budgets_too_small_for_the_queues_are_refused() {
        let e = queue_plan(4 << 20, 8, 2).unwrap_err().to_string();
        assert!(e.contains("--max-memory"), "{e}");
    }
}
