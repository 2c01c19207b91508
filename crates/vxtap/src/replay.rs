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
use crate::ordered::{merge_write, output_channel, Emitter};
use crate::pipeline::{
    output_pipeline, writer_only, Front, Totals, Transforms, Worker, WorkerStats,
};

/// Segments per batch handed to a worker.
const BATCH_SEGMENTS: usize = 256;
/// Payload bytes per batch handed to a worker.
const BATCH_BYTES: usize = 256 * 1024;
/// Exchanges handed to the output in one message, at most.
const OUTPUT_BATCH: usize = 256;
/// Exchanges a worker encodes into one message for the merge (~3 kB a line on the reference
/// workload), and such messages queued per worker: together they bound the output's memory.
const ENCODED_BATCH: usize = 64;
const ENCODED_QUEUE: usize = 4;
/// Encoded bytes the merge holds per worker when workers read on their own.
const MERGE_BUDGET: usize = 2 << 20;
/// The reading thread hands every shard its batch at least this often (in frames), so the
/// merge learns that a quiet shard has nothing older to send.
const SHARD_HEARTBEAT_FRAMES: u64 = 1024;

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
/// segments over in batches, tagged with their frame index. Every worker serializes its own
/// exchanges; a writer thread merges them in a deterministic order (`ordered`).
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
    let mut outputs = Vec::with_capacity(n);
    let (own_tx, own_rx) = output_channel(ENCODED_QUEUE);
    outputs.push(own_rx);
    // Index 0 stays unused: shard 0 is the reading thread's own.
    let mut to_workers: Vec<Sender<SegmentBatch>> = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for i in 1..n {
        // Replay must not lose data, so the reader blocks on a full worker queue (live mode
        // drops and counts instead).
        let (tx, rx) = bounded::<SegmentBatch>(8);
        to_workers.push(tx);
        let (enc_tx, enc_rx) = output_channel(ENCODED_QUEUE);
        outputs.push(enc_rx);
        let worker = Worker::new(settings.flow_for_worker(), settings.http.clone())?;
        let emitter = Emitter::new(
            Transforms::new(settings)?,
            out.sink.encoder().clone(),
            enc_tx,
            ENCODED_BATCH,
        );
        let recycle_tx = recycle_tx.clone();
        let h = thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || run_worker(worker, emitter, rx, recycle_tx))
            .map_err(|e| format!("spawn worker: {e}"))?;
        handles.push(h);
    }
    let mut own = Worker::new(settings.flow_for_worker(), settings.http.clone())?;
    let mut own_emitter = Emitter::new(
        Transforms::new(settings)?,
        out.sink.encoder().clone(),
        own_tx,
        ENCODED_BATCH,
    );

    let mut staged = ReplayReport::default();
    let (writer, own_transforms) = thread::scope(|scope| {
        // The workers' queues are bounded, so what the merge holds is bounded by them and by
        // the heartbeat below: no byte budget (it could stall the reading thread for good).
        let writer = scope.spawn(|| merge_write(outputs, out, None));
        let mut batches: Vec<SegmentBatch> = (1..n)
            .map(|_| SegmentBatch::with_capacity(BATCH_SEGMENTS, BATCH_BYTES))
            .collect();
        let mut frame = 0u64;
        let mut last_heartbeat = 0u64;
        let hand_over = |batch: &mut SegmentBatch, tx: &Sender<SegmentBatch>, upto: u64| {
            let fresh = recycle_rx
                .try_recv()
                .unwrap_or_else(|_| SegmentBatch::with_capacity(BATCH_SEGMENTS, BATCH_BYTES));
            let mut full = std::mem::replace(batch, fresh);
            full.upto = upto;
            // A worker only disappears by panicking, which aborts the process.
            let _ = tx.send(full);
        };
        read_all(files, progress, &mut staged, |link, ts, data| {
            frame += 1;
            front.handle(link, ts, data, |seg| {
                let shard = (seg.shard_hash() % n as u64) as usize;
                if shard == 0 {
                    own.process(seg);
                    return;
                }
                let batch = &mut batches[shard - 1];
                batch.push_framed(seg, frame);
                if batch.len() >= BATCH_SEGMENTS || batch.payload_bytes() >= BATCH_BYTES {
                    hand_over(batch, &to_workers[shard - 1], frame);
                }
            });
            own_emitter.after_frame(&mut own, frame);
            // Quiet shards still move their watermark, or the merge would wait on them.
            if frame >= last_heartbeat + SHARD_HEARTBEAT_FRAMES {
                last_heartbeat = frame;
                for (batch, tx) in batches.iter_mut().zip(&to_workers) {
                    hand_over(batch, tx, frame);
                }
            }
        });
        for (batch, tx) in batches.iter_mut().zip(&to_workers) {
            hand_over(batch, tx, frame);
        }
        to_workers.clear();
        let own_transforms = own_emitter.finish(&mut own, frame + 1);
        (writer.join(), own_transforms)
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
/// reading thread, and the workers never wait on each other. Each worker filters, redacts and
/// serializes its own exchanges; the calling thread merges them in a deterministic order
/// (`ordered`). Worker 0's front counts for all.
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
    let mut handles = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    for i in 0..n {
        let mut worker = Worker::new(settings.flow_for_worker(), settings.http.clone())?;
        let mut my_front = Front::new(settings)?;
        let (tx, rx) = output_channel(ENCODED_QUEUE);
        outputs.push(rx);
        let mut emitter = Emitter::new(
            Transforms::new(settings)?,
            out.sink.encoder().clone(),
            tx,
            ENCODED_BATCH,
        );
        let files = files.to_vec();
        let show = progress.bar.is_some() && i == 0;
        let h = thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || {
                let mut staged = ReplayReport::default();
                let progress = Progress::new(show);
                let mut frame = 0u64;
                read_all(&files, &progress, &mut staged, |link, ts, data| {
                    frame += 1;
                    my_front.handle(link, ts, data, |seg| {
                        if (seg.shard_hash() % n as u64) as usize == i {
                            worker.process(seg);
                        }
                    });
                    emitter.after_frame(&mut worker, frame);
                });
                progress.finish();
                let transforms = emitter.finish(&mut worker, frame + 1);
                (worker.stats(), my_front, staged, transforms)
            })
            .map_err(|e| format!("spawn worker: {e}"))?;
        handles.push(h);
    }
    // Workers read on their own, so a worker far ahead can simply wait: cap what the merge
    // holds for it.
    if let Some(e) = merge_write(outputs, out, Some(MERGE_BUDGET)) {
        report.output_error.get_or_insert(e);
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
    mut emitter: Emitter,
    rx: Receiver<SegmentBatch>,
    recycle: Sender<SegmentBatch>,
) -> (WorkerStats, Transforms) {
    let mut end = 0;
    for mut batch in rx.iter() {
        for (frame, seg) in batch.iter_framed() {
            worker.process(&seg);
            emitter.key_ready(&worker, frame);
        }
        // Every batch moves the watermark: the merge may be waiting for exactly this worker.
        emitter.flush(&mut worker, batch.upto);
        end = batch.upto;
        batch.clear();
        let _ = recycle.send(batch);
    }
    let transforms = emitter.finish(&mut worker, end + 1);
    (worker.stats(), transforms)
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
