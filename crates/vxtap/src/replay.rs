//! `vxtap replay`: capture files through the whole pipeline to JSON lines.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::thread;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use vxtap_capture::{CaptureError, CaptureReader};
use vxtap_http::Exchange;
use vxtap_sink::{ExchangePipeline, JsonLinesConfig, JsonLinesWriter};

use crate::batch::SegmentBatch;
use crate::config::Settings;
use crate::pipeline::{
    output_pipeline, writer_only, Front, Totals, Transforms, Worker, WorkerStats,
};

/// Segments per batch handed to a worker.
const BATCH_SEGMENTS: usize = 256;
/// Payload bytes per batch handed to a worker.
const BATCH_BYTES: usize = 256 * 1024;
/// Exchanges handed to the output in one message, at most.
const OUTPUT_BATCH: usize = 256;

/// What a replay produced.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Every counter.
    pub totals: Totals,
    /// Damaged or unreadable inputs (the packets before the damage were processed).
    pub errors: Vec<CaptureError>,
    /// The output failed (records may be missing).
    pub output_error: Option<String>,
}

/// Runs a replay of `files` with `settings`, writing records as `sink` says.
pub fn replay(
    files: &[PathBuf],
    settings: &Settings,
    sink: JsonLinesConfig,
    show_progress: bool,
) -> Result<ReplayReport, String> {
    // A replay's output is the output of this replay only: start the file afresh (the writer
    // appends, which is right for `listen` restarts).
    if let Some(path) = &sink.path {
        std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    // With several workers, filtering and redaction run in the workers (in parallel); the
    // writer only serializes.
    let mut out = if settings.threads <= 1 {
        output_pipeline(settings, sink)?
    } else {
        writer_only(settings, sink)?
    };
    let mut transforms_totals = Totals::default();
    let mut front = Front::new(settings)?;
    let progress = Progress::new(show_progress && std::io::stderr().is_terminal());
    let mut report = ReplayReport::default();
    let workers = if settings.threads <= 1 {
        replay_inline(
            files,
            settings,
            &mut front,
            &mut out,
            &progress,
            &mut report,
        )?
    } else if files.iter().all(|f| mappable(f)) {
        replay_shared_nothing(
            files,
            settings,
            &mut front,
            &mut out,
            &progress,
            &mut report,
            &mut transforms_totals,
        )?
    } else {
        replay_sharded(
            files,
            settings,
            &mut front,
            &mut out,
            &progress,
            &mut report,
            &mut transforms_totals,
        )?
    };
    progress.finish();
    if let Err(e) = out.flush() {
        report.output_error.get_or_insert(e.to_string());
    }
    report.totals.add_front(&front);
    report.totals.workers = workers;
    report.totals.add_output(&out);
    report
        .totals
        .exchange_filter
        .merge(&transforms_totals.exchange_filter);
    report.totals.redacted += transforms_totals.redacted;
    report.totals.files = files.len() as u64;
    Ok(report)
}

/// Reads every file and calls `frame` for each packet; damaged files are reported and the
/// next file is read.
fn read_all(
    files: &[PathBuf],
    progress: &Progress,
    report: &mut ReplayReport,
    mut frame: impl FnMut(u32, u64, &[u8]),
) {
    for path in files {
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                report.errors.push(e);
                continue;
            }
        };
        progress.start_file(path, reader.progress().total);
        let mut n: u64 = 0;
        loop {
            match reader.next_packet() {
                Ok(Some(p)) => {
                    n += 1;
                    frame(p.linktype, p.ts_ns, p.data);
                    if n % 65_536 == 0 {
                        progress.set(reader.progress().done);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    report.errors.push(e);
                    break;
                }
            }
        }
        report.totals.frames += n;
    }
}

fn write_all(
    out: &mut ExchangePipeline<JsonLinesWriter>,
    exchanges: &mut Vec<Exchange>,
    report: &mut ReplayReport,
) {
    for ex in exchanges.drain(..) {
        if let Err(e) = out.handle(ex) {
            report.output_error.get_or_insert(e.to_string());
        }
    }
}

/// One worker on the reading thread: no copies, no channels.
fn replay_inline(
    files: &[PathBuf],
    settings: &Settings,
    front: &mut Front,
    out: &mut ExchangePipeline<JsonLinesWriter>,
    progress: &Progress,
    report: &mut ReplayReport,
) -> Result<WorkerStats, String> {
    let mut worker = Worker::new(settings.flow_for_worker(), settings.http.clone())?;
    let mut ready = Vec::new();
    let mut staged = ReplayReport::default();
    read_all(files, progress, &mut staged, |link, ts, data| {
        front.handle(link, ts, data, |seg| worker.process(seg));
        if worker.ready() >= OUTPUT_BATCH {
            worker.drain_into(&mut ready);
            write_all(out, &mut ready, report);
        }
    });
    worker.finish();
    worker.drain_into(&mut ready);
    write_all(out, &mut ready, report);
    report.errors.append(&mut staged.errors);
    report.totals.frames += staged.totals.frames;
    Ok(worker.stats())
}

/// N flow-sharded workers. The reading thread decapsulates and filters every frame and is
/// itself worker 0: it processes its own shard in place (no copy) and hands the other shards'
/// segments over in batches. A writer thread serializes what the workers send it.
#[allow(clippy::too_many_arguments)]
fn replay_sharded(
    files: &[PathBuf],
    settings: &Settings,
    front: &mut Front,
    out: &mut ExchangePipeline<JsonLinesWriter>,
    progress: &Progress,
    report: &mut ReplayReport,
    transforms_totals: &mut Totals,
) -> Result<WorkerStats, String> {
    let n = settings.threads;
    let (recycle_tx, recycle_rx) = unbounded::<SegmentBatch>();
    let (out_tx, out_rx) = bounded::<Vec<Exchange>>(8);
    // Index 0 stays unused: shard 0 is the reading thread's own.
    let mut to_workers: Vec<Sender<SegmentBatch>> = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for i in 1..n {
        // Replay must not lose data, so the reader blocks on a full worker queue (live mode
        // drops and counts instead).
        let (tx, rx) = bounded::<SegmentBatch>(8);
        to_workers.push(tx);
        let worker = Worker::new(settings.flow_for_worker(), settings.http.clone())?;
        let transforms = Transforms::new(settings)?;
        let (recycle_tx, out_tx) = (recycle_tx.clone(), out_tx.clone());
        let h = thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || run_worker(worker, transforms, rx, recycle_tx, out_tx))
            .map_err(|e| format!("spawn worker: {e}"))?;
        handles.push(h);
    }
    let mut own = Worker::new(settings.flow_for_worker(), settings.http.clone())?;
    let mut own_transforms = Transforms::new(settings)?;

    let mut staged = ReplayReport::default();
    let writer = thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut local = ReplayReport::default();
            for mut batch in out_rx.iter() {
                write_all(out, &mut batch, &mut local);
            }
            local.output_error
        });
        let mut batches: Vec<SegmentBatch> = (1..n)
            .map(|_| SegmentBatch::with_capacity(BATCH_SEGMENTS, BATCH_BYTES))
            .collect();
        read_all(files, progress, &mut staged, |link, ts, data| {
            front.handle(link, ts, data, |seg| {
                let shard = (seg.symmetric_hash() % n as u64) as usize;
                if shard == 0 {
                    own.process(seg);
                    return;
                }
                let batch = &mut batches[shard - 1];
                batch.push(seg);
                if batch.len() >= BATCH_SEGMENTS || batch.payload_bytes() >= BATCH_BYTES {
                    let fresh = recycle_rx.try_recv().unwrap_or_else(|_| {
                        SegmentBatch::with_capacity(BATCH_SEGMENTS, BATCH_BYTES)
                    });
                    let full = std::mem::replace(batch, fresh);
                    // A worker only disappears by panicking, which aborts the process.
                    let _ = to_workers[shard - 1].send(full);
                }
            });
            send_ready(&mut own, &mut own_transforms, &out_tx, OUTPUT_BATCH);
        });
        for (batch, tx) in batches.into_iter().zip(&to_workers) {
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
        }
        to_workers.clear();
        own.finish();
        send_ready(&mut own, &mut own_transforms, &out_tx, 1);
        drop(out_tx);
        writer.join()
    });
    let mut totals = own.stats();
    transforms_totals.add_transforms(&own_transforms);
    for h in handles {
        let (stats, t) = h
            .join()
            .map_err(|_| "a worker thread panicked".to_string())?;
        totals.merge(&stats);
        transforms_totals.add_transforms(&t);
    }
    if let Ok(Some(e)) = writer {
        report.output_error.get_or_insert(e);
    }
    report.errors.append(&mut staged.errors);
    report.totals.frames += staged.totals.frames;
    Ok(totals)
}

/// True for a regular, uncompressed file: one that `CaptureReader` memory-maps.
fn mappable(path: &std::path::Path) -> bool {
    use std::io::Read;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let mut magic = [0u8; 2];
    meta.is_file()
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && magic != [0x1f, 0x8b]
}

/// N workers over mapped files, sharing nothing: each maps the inputs itself (the page cache
/// holds one copy), decapsulates every frame and keeps the segments whose symmetric flow hash
/// is its own. Decapsulating twice costs less than copying every payload into batches for a
/// reading thread, and the workers never wait on each other. Worker 0's front counts for all.
#[allow(clippy::too_many_arguments)]
fn replay_shared_nothing(
    files: &[PathBuf],
    settings: &Settings,
    front: &mut Front,
    out: &mut ExchangePipeline<JsonLinesWriter>,
    progress: &Progress,
    report: &mut ReplayReport,
    transforms_totals: &mut Totals,
) -> Result<WorkerStats, String> {
    let n = settings.threads;
    let (out_tx, out_rx) = bounded::<Vec<Exchange>>(8);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let mut worker = Worker::new(settings.flow_for_worker(), settings.http.clone())?;
        let mut my_front = Front::new(settings)?;
        let mut transforms = Transforms::new(settings)?;
        let out_tx = out_tx.clone();
        let files = files.to_vec();
        let show = progress.bar.is_some() && i == 0;
        let h = thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || {
                let mut staged = ReplayReport::default();
                let progress = Progress::new(show);
                read_all(&files, &progress, &mut staged, |link, ts, data| {
                    my_front.handle(link, ts, data, |seg| {
                        if (seg.symmetric_hash() % n as u64) as usize == i {
                            worker.process(seg);
                        }
                    });
                    send_ready(&mut worker, &mut transforms, &out_tx, OUTPUT_BATCH);
                });
                progress.finish();
                worker.finish();
                send_ready(&mut worker, &mut transforms, &out_tx, 1);
                (worker.stats(), my_front, staged, transforms)
            })
            .map_err(|e| format!("spawn worker: {e}"))?;
        handles.push(h);
    }
    drop(out_tx);
    for mut batch in out_rx.iter() {
        write_all(out, &mut batch, report);
    }
    let mut totals = WorkerStats::default();
    for (i, h) in handles.into_iter().enumerate() {
        let (stats, f, mut staged, t) = h
            .join()
            .map_err(|_| "a worker thread panicked".to_string())?;
        totals.merge(&stats);
        transforms_totals.add_transforms(&t);
        if i == 0 {
            *front = f;
            report.errors.append(&mut staged.errors);
            report.totals.frames += staged.totals.frames;
        }
    }
    Ok(totals)
}

fn run_worker(
    mut worker: Worker,
    mut transforms: Transforms,
    rx: Receiver<SegmentBatch>,
    recycle: Sender<SegmentBatch>,
    out: Sender<Vec<Exchange>>,
) -> (WorkerStats, Transforms) {
    for mut batch in rx.iter() {
        for seg in batch.iter() {
            worker.process(&seg);
        }
        batch.clear();
        let _ = recycle.send(batch);
        send_ready(&mut worker, &mut transforms, &out, OUTPUT_BATCH);
    }
    worker.finish();
    send_ready(&mut worker, &mut transforms, &out, 1);
    (worker.stats(), transforms)
}

/// Hands the worker's finished exchanges, filtered and redacted, to the writer once at least
/// `min` are ready.
fn send_ready(
    worker: &mut Worker,
    transforms: &mut Transforms,
    out: &Sender<Vec<Exchange>>,
    min: usize,
) {
    if worker.ready() >= min {
        let mut batch = Vec::with_capacity(worker.ready());
        worker.drain_into(&mut batch);
        transforms.apply(&mut batch);
        if !batch.is_empty() {
            // The writer only goes away when the process is ending.
            let _ = out.send(batch);
        }
    }
}

/// A progress bar on stderr for long replays (only on a terminal).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Progress {
            bar: enabled.then(indicatif::ProgressBar::hidden),
        }
    }

    fn start_file(&self, path: &std::path::Path, total: Option<u64>) {
        if let Some(bar) = &self.bar {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_length(total.unwrap_or(0));
            bar.set_position(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(path.display().to_string());
        }
    }

    fn set(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
