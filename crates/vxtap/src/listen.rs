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

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use vxtap_capture::{RecvBatch, RecvStats, UdpConfig, UdpReceiver, DATAGRAM_BUF};
use vxtap_http::Exchange;
use vxtap_sink::{Decision, FilterReason, FilterStats, JsonLinesConfig, PacketFilter};
use vxtap_wire::{DecapStats, Decapsulator, Decoded};

use crate::admin::AdminServer;
use crate::batch::SegmentBatch;
use crate::config::ListenSettings;
use crate::health::{Beat, Every, Health};
use crate::metrics::MetricSet;
use crate::pipeline::{output_pipeline, Totals, Worker, WorkerStats, MAX_SILENCE};

/// Distinct VNIs given their own metric label; the rest share `other` (bounded cardinality).
const MAX_VNI_LABELS: usize = 64;
/// Segments per batch handed to a worker.
const BATCH_SEGMENTS: usize = 128;
/// Payload bytes per batch handed to a worker (jumbo frames fill a batch sooner).
const BATCH_BYTES: usize = BATCH_SEGMENTS * 1500;
/// Batches queued per worker before the receive threads start dropping.
const WORKER_QUEUE: usize = 128;
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
pub fn listen(settings: ListenSettings, hooks: Hooks) -> Result<Totals, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| format!("signal: {e}"))?;
    }
    let reopen = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reopen.clone())
        .map_err(|e| format!("signal: {e}"))?;

    let n_workers = settings.common.threads.max(1);
    // `--max-memory` covers the queues too: what the worker queues can hold at most is taken
    // off the flow tables' budget (never below 16 MiB for the tables).
    // A batch is handed over once it holds BATCH_BYTES, so it holds at most that plus one
    // 9 KB datagram.
    let queue_bytes = WORKER_QUEUE * (BATCH_BYTES + 9216) * n_workers;
    let mut settings = settings;
    settings.common.flow.max_memory = settings
        .common
        .flow
        .max_memory
        .saturating_sub(queue_bytes)
        .max(16 << 20);
    let common = &settings.common;
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
    };
    if let Some(rate) = common.packet_filter.sample {
        lock(&shared.metrics).sample_rate.set(rate);
    }

    // Output first, so that a bad output path fails before any socket is opened.
    let mut out = output_pipeline(
        common,
        JsonLinesConfig {
            path: settings.output.clone(),
            rotate_bytes: settings.rotate_size,
            rotate_interval: settings.rotate_interval,
            ..JsonLinesConfig::default()
        },
    )?;
    let (out_tx, out_rx) = bounded::<Vec<Exchange>>(256);

    // Sockets next: a bind error should stop startup before threads exist.
    let mut receivers = Vec::new();
    for i in 0..settings.recv_threads {
        let mut cfg = UdpConfig::new(settings.bind);
        cfg.recv_buffer = settings.recv_buffer;
        let mut bind_cfg = cfg.clone();
        if i > 0 {
            // Every socket must bind the port the first one got (port 0 in tests).
            if let Some(r) = receivers.first() {
                let r: &UdpReceiver = r;
                bind_cfg.bind = r.local_addr().map_err(|e| e.to_string())?;
            }
        }
        let r = UdpReceiver::bind(&bind_cfg).map_err(|e| e.to_string())?;
        if let Some(w) = r.recv_buffer().warning() {
            tracing::warn!("{w}");
        }
        receivers.push(r);
    }
    let local = receivers
        .first()
        .map(|r| r.local_addr())
        .transpose()
        .map_err(|e| e.to_string())?
        .ok_or("no receive thread")?;
    let shared_metrics = shared.metrics.clone();
    let (recv_snaps, worker_snaps, output_snap, output_drops) = (
        shared.recv.clone(),
        shared.workers.clone(),
        shared.output.clone(),
        shared.output_drops.clone(),
    );
    let admin = AdminServer::start(
        settings.admin_bind,
        shared.health.clone(),
        MAX_SILENCE.as_millis() as u64,
        move || {
            render(
                &shared_metrics,
                &recv_snaps,
                &worker_snaps,
                &output_snap,
                &output_drops,
            )
        },
    )?;
    tracing::info!(
        udp = %local,
        admin = %admin.local_addr,
        workers = n_workers,
        recv_threads = settings.recv_threads,
        "vxtap listening"
    );

    // Workers. Emptied batches travel back to the receive threads to be reused.
    let (recycle_tx, recycle_rx) = bounded::<SegmentBatch>(WORKER_QUEUE * n_workers * 2);
    let mut to_workers = Vec::new();
    let mut worker_handles: Vec<JoinHandle<()>> = Vec::new();
    for i in 0..n_workers {
        let (tx, rx) = bounded::<SegmentBatch>(WORKER_QUEUE);
        to_workers.push(tx);
        let worker = Worker::new(common.flow_for_worker(), common.http.clone())?;
        let beat = shared.health.register(format!("worker-{i}"));
        let snap = shared.workers[i].clone();
        let out_tx = out_tx.clone();
        let recycle_tx = recycle_tx.clone();
        let drops = shared.output_drops.clone();
        let stall = if i == 0 {
            hooks.stall_worker_after
        } else {
            None
        };
        worker_handles.push(
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || run_worker(worker, rx, recycle_tx, out_tx, beat, snap, drops, stall))
                .map_err(|e| e.to_string())?,
        );
    }
    drop(out_tx);

    // Output thread.
    let out_beat = shared.health.register("output");
    let out_health = shared.health.clone();
    let out_totals = shared.output.clone();
    let out_metrics = shared.metrics.clone();
    let output = thread::Builder::new()
        .name("output".into())
        .spawn(move || {
            let mut tick = Every::new(Duration::from_millis(500));
            loop {
                match out_rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(batch) => {
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
                        for ex in batch {
                            failed |= out.handle(ex).is_err();
                        }
                        if failed {
                            out_health.set_output_failing(true);
                        }
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
                    let ok = out.sink.tick(SystemTime::now()).is_ok() && out.flush().is_ok();
                    out_health.set_output_failing(!ok);
                    let mut t = lock(&out_totals);
                    *t = Totals::default();
                    t.add_output(&out);
                }
            }
            let _ = out.flush();
            let mut t = lock(&out_totals);
            *t = Totals::default();
            t.add_output(&out);
        })
        .map_err(|e| e.to_string())?;

    // Receive threads.
    let mut recv_handles = Vec::new();
    for (i, receiver) in receivers.into_iter().enumerate() {
        let beat = shared.health.register(format!("recv-{i}"));
        let snap = shared.recv[i].clone();
        let to_workers = to_workers.clone();
        let stop = stop.clone();
        let decap = Decapsulator::new(common.decap.clone());
        let filter = PacketFilter::new(&common.packet_filter).map_err(|e| e.to_string())?;
        let port = local.port();
        let recycle = recycle_rx.clone();
        recv_handles.push(
            thread::Builder::new()
                .name(format!("recv-{i}"))
                .spawn(move || {
                    run_receiver(
                        receiver, decap, filter, port, to_workers, recycle, stop, beat, snap,
                    )
                })
                .map_err(|e| e.to_string())?,
        );
    }
    drop(to_workers);

    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(50));
        if hooks.run_for.is_some_and(|d| started.elapsed() >= d) {
            stop.store(true, Ordering::Relaxed);
        }
    }
    tracing::info!("stopping: draining queues");
    shared.health.set_stopping();
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
    Ok(totals)
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

#[allow(clippy::too_many_arguments)]
fn run_receiver(
    mut sock: UdpReceiver,
    mut decap: Decapsulator,
    filter: PacketFilter,
    port: u16,
    to_workers: Vec<Sender<SegmentBatch>>,
    recycle: Receiver<SegmentBatch>,
    stop: Arc<AtomicBool>,
    beat: Arc<Beat>,
    snap: Arc<Mutex<RecvSnapshot>>,
) {
    let n = to_workers.len().max(1);
    let mut batch = RecvBatch::new(64, DATAGRAM_BUF);
    let mut pending: Vec<SegmentBatch> = (0..n)
        .map(|_| SegmentBatch::with_capacity(BATCH_SEGMENTS, BATCH_SEGMENTS * 1500))
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
                        pending[shard].push(&segment);
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
        for (shard, tx) in to_workers.iter().enumerate() {
            let full = pending[shard].len() >= BATCH_SEGMENTS
                || pending[shard].payload_bytes() >= BATCH_BYTES;
            if pending[shard].is_empty() || !(flush_all || full) {
                continue;
            }
            let fresh = spare
                .pop()
                .or_else(|| recycle.try_recv().ok())
                .unwrap_or_else(|| {
                    SegmentBatch::with_capacity(BATCH_SEGMENTS, BATCH_SEGMENTS * 1500)
                });
            let full = std::mem::replace(&mut pending[shard], fresh);
            match tx.try_send(full) {
                Ok(()) => {}
                Err(TrySendError::Full(mut b)) | Err(TrySendError::Disconnected(mut b)) => {
                    local.queue_dropped_segments += b.len() as u64;
                    b.clear();
                    spare.push(b);
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

#[allow(clippy::too_many_arguments)]
fn run_worker(
    mut worker: Worker,
    rx: Receiver<SegmentBatch>,
    recycle: Sender<SegmentBatch>,
    out: Sender<Vec<Exchange>>,
    beat: Arc<Beat>,
    snap: Arc<Mutex<WorkerStats>>,
    output_drops: Arc<Mutex<u64>>,
    stall_after: Option<Duration>,
) {
    let started = Instant::now();
    let mut publish = Every::new(Duration::from_millis(500));
    let mut ready = Vec::new();
    let send = |ready: &mut Vec<Exchange>| {
        if ready.is_empty() {
            return;
        }
        let batch = std::mem::take(ready);
        if let Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) = out.try_send(batch)
        {
            *lock(&output_drops) += b.len() as u64;
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
    worker.finish();
    worker.drain_into(&mut ready);
    // Shutdown drains completely: block rather than drop the last exchanges.
    if !ready.is_empty() {
        let _ = out.send(std::mem::take(&mut ready));
    }
    *lock(&snap) = worker.stats();
}
