//! `vxtap replay`: capture files through the whole pipeline to JSON lines.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::thread;

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use vxtap_capture::{CaptureError, CaptureReader, SharedMap};
use vxtap_http::Exchange;
use vxtap_sink::{Encode, EncodedSink, ExchangePipeline, JsonLinesConfig, Sink, Transforms};

use crate::output::OutputConfig;

use crate::batch::{SegmentBatch, ARENA_MAX};
use crate::config::Settings;
use crate::health::{RateLimitedLog, OUTPUT_ERROR_LOG_EVERY};
use crate::ordered::{local_output_channel, output_channel, Emitter, Merger};
use crate::pipeline::{
    output_pipeline, transforms, writer_only, Front, Totals, Worker, WorkerStats,
};

/// Segments per batch handed to a worker.
const BATCH_SEGMENTS: usize = 1024;
/// Batches queued per worker: with lent payloads the file pages behind them stay mapped, so
/// this bounds that part of the resident set too (~1 MiB of the file a batch). 8 rather than
/// 4 absorbs short stalls of either thread (535 against 541 ms for two workers, medians of 7
/// interleaved runs; 4 MiB more resident).
const WORKER_QUEUE: usize = 8;
/// Copied payload bytes per batch (pipes and gzip input; lent payloads take none). The arena
/// starts empty and grows only when something is copied: reserving it up front cost a mapped
/// replay 1-2 MiB of resident memory per batch (the allocator backs it with huge pages).
const BATCH_BYTES: usize = 1024 * 1024;
/// With one worker, the output is written once this many exchanges are ready.
const OUTPUT_BATCH: usize = 256;
/// Exchanges a worker encodes into one message for the merge (~3 kB a line on the reference
/// workload), and such messages queued per worker: together they bound the output's memory.
const ENCODED_BATCH: usize = 128;
const ENCODED_QUEUE: usize = 4;
/// The reading thread hands every shard its batch at least this often (in frames), so the
/// merge learns that a quiet shard has nothing older to send.
const SHARD_HEARTBEAT_FRAMES: u64 = 1024;

/// Bytes the batches of a sharded replay can hold at once: per worker fed by the reading
/// thread, its queue, the batch it is processing and the one being filled, each with up to
/// [`ARENA_MAX`] of copied payload (pipes and gzip input; mapped files lend theirs, and the
/// mapped pages behind them take that room instead).
pub fn queue_reservation(threads: usize) -> usize {
    threads.saturating_sub(1)
        * (WORKER_QUEUE + 2)
        * SegmentBatch::footprint(BATCH_SEGMENTS, ARENA_MAX)
}

/// What a replay produced.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Every counter.
    pub totals: Totals,
    /// Damaged or unreadable inputs (the packets before the damage were processed).
    pub errors: Vec<CaptureError>,
    /// The output failed (records may be missing).
    pub output_error: Option<String>,
    /// The output is a pipe whose reader went away (`vxtap replay ... | head`): reading
    /// stopped early, as command-line tools do.
    pub output_closed: bool,
}

/// True once the output's reader is gone: nothing more can be written, so reading on would
/// only waste the input.
fn output_closed<S: Sink>(out: &ExchangePipeline<Transforms, S>) -> bool {
    out.sink.stopped() == Some(std::io::ErrorKind::BrokenPipe)
}

/// Runs a replay of `files` with `settings`, writing records as `sink` says.
pub fn replay(
    files: &[PathBuf],
    settings: &Settings,
    sink: OutputConfig,
    show_progress: bool,
) -> Result<ReplayReport> {
    // A replay's output is the output of this replay only: start the file afresh (the writer
    // appends, which is right for `listen` restarts).
    if let OutputConfig::Lines(JsonLinesConfig {
        path: Some(path), ..
    }) = &sink
    {
        std::fs::File::create(path).with_context(|| path.display().to_string())?;
    }
    // The Kafka producer's queue is memory that grows with traffic: charged to the budget.
    let output_reserved = sink.memory_reservation();
    // With several workers, filtering and redaction run in the workers (in parallel); the
    // writer only serializes.
    let mut out = if settings.threads <= 1 {
        output_pipeline(settings, sink)?
    } else {
        writer_only(settings, sink)?
    };
    // A file can wait for a slow output; capture (listen) never does.
    out.sink.block_when_full();
    // `--max-memory` covers the worker queues too: with several workers, what their batches can
    // hold at most is taken off the flow tables' budget.
    let mut settings = settings.clone();
    if output_reserved > 0 {
        let reserved = usize::try_from(output_reserved).unwrap_or(usize::MAX);
        settings.flow.max_memory =
            settings
                .flow
                .max_memory
                .checked_sub(reserved)
                .ok_or_else(|| {
                    anyhow!(
                "--max-memory {} cannot hold the Kafka producer's queue ({reserved} bytes: \
                 queue_bytes plus {} bytes a record of queue_records; raise --max-memory or \
                 lower them in [output.kafka])",
                settings.flow.max_memory,
                vxtap_kafka::config::PER_RECORD_OVERHEAD
            )
                })?;
        settings.check_worker_memory()?;
    }
    if settings.threads > 1 {
        let reserved = queue_reservation(settings.threads);
        settings.flow.max_memory =
            settings
                .flow
                .max_memory
                .checked_sub(reserved)
                .ok_or_else(|| {
                    anyhow!(
                    "--max-memory {} is too small for {} workers: their queues need {reserved} \
                     bytes (raise --max-memory or lower --threads)",
                    settings.flow.max_memory, settings.threads
                )
                })?;
        settings.check_worker_memory()?;
    }
    let settings = &settings;
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
    report.totals.kafka_finish = out.sink.finish_default();
    report.totals.add_front(&front);
    report.totals.workers = workers;
    report.totals.add_output(&out);
    report
        .totals
        .transforms
        .merge(&transforms_totals.transforms);
    report.totals.files = files.len() as u64;
    report.output_closed = output_closed(&out);
    Ok(report)
}

/// Runs a replay of `files` on the reading thread (one worker, whatever `settings.threads`
/// says) into `sink`, after the same transforms (filters, redaction) as the JSON output: the
/// offline stages (`report`, `openapi`, `har`, `k6`) take the typed exchanges here instead of
/// parsing the JSON lines back.
pub fn replay_into<S: Sink>(
    files: &[PathBuf],
    settings: &Settings,
    sink: S,
) -> Result<(ReplayReport, S)> {
    let mut settings = settings.clone();
    settings.threads = 1;
    let mut out = ExchangePipeline::new(transforms(&settings)?, sink);
    let mut front = Front::new(&settings)?;
    let progress = Progress::new(false);
    let mut report = ReplayReport::default();
    let workers = replay_inline(
        files,
        &settings,
        &mut front,
        &mut out,
        &progress,
        &mut report,
    )?;
    if let Err(e) = out.flush() {
        report.output_error.get_or_insert(e.to_string());
    }
    report.totals.add_front(&front);
    report.totals.workers = workers;
    report.totals.transforms.merge(&out.transforms.stats());
    report.totals.files = files.len() as u64;
    Ok((report, out.sink))
}

/// Reads every file and calls `frame` for each packet; damaged files are reported and the
/// next file is read. With `lend`, `frame` also gets the file's mapping (when it is mapped) so
/// payloads can be lent to other threads by offset, and returns the oldest offset still lent:
/// pages are released only before it. Without, that value is ignored. `frame` returns `None`
/// to stop reading altogether (the output is gone).
pub(crate) fn read_all(
    files: &[PathBuf],
    progress: &Progress,
    report: &mut ReplayReport,
    lend: bool,
    mut frame: impl FnMut(Option<&SharedMap>, u32, u64, &[u8]) -> Option<usize>,
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
        let map = if lend { reader.shared_map() } else { None };
        if map.is_some() {
            reader.set_manual_release();
        }
        let mut n: u64 = 0;
        loop {
            match reader.next_packet() {
                Ok(Some(p)) => {
                    n += 1;
                    let Some(floor) = frame(map.as_ref(), p.linktype, p.ts_ns, p.data) else {
                        report.totals.frames += n;
                        return;
                    };
                    if map.is_some() {
                        reader.release_before(floor);
                    }
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

fn write_all<S: Sink>(
    out: &mut ExchangePipeline<Transforms, S>,
    exchanges: &mut Vec<Exchange>,
    report: &mut ReplayReport,
    errors: &mut RateLimitedLog,
) {
    for ex in exchanges.drain(..) {
        if let Err(e) = out.handle(ex) {
            // A closed pipe is the reader's choice, not a failure to report.
            if !output_closed(out) {
                errors.error("output failing", &e);
            }
            report.output_error.get_or_insert(e.to_string());
        }
    }
}

/// One worker on the reading thread: no copies, no channels.
fn replay_inline<S: Sink>(
    files: &[PathBuf],
    settings: &Settings,
    front: &mut Front,
    out: &mut ExchangePipeline<Transforms, S>,
    progress: &Progress,
    report: &mut ReplayReport,
) -> Result<WorkerStats> {
    let mut worker = Worker::new(settings.flow_for_worker(), settings.http_for_worker())?;
    let mut ready = Vec::new();
    let mut errors = RateLimitedLog::new(OUTPUT_ERROR_LOG_EVERY);
    let mut staged = ReplayReport::default();
    read_all(files, progress, &mut staged, false, |_, link, ts, data| {
        front.handle(link, ts, data, |seg| worker.process(seg));
        if worker.ready() >= OUTPUT_BATCH {
            worker.drain_into(&mut ready);
            write_all(out, &mut ready, report, &mut errors);
            if output_closed(out) {
                return None;
            }
        }
        Some(usize::MAX)
    });
    // In steps, writing as it goes: the pending state of a full table, turned into exchanges
    // all at once, would take as much memory again as the budget.
    loop {
        let done = worker.finish_some(OUTPUT_BATCH);
        worker.drain_into(&mut ready);
        write_all(out, &mut ready, report, &mut errors);
        if done {
            break;
        }
    }
    report.errors.append(&mut staged.errors);
    report.totals.frames += staged.totals.frames;
    Ok(worker.stats())
}

/// N flow-sharded workers. The reading thread decapsulates and filters every frame and is
/// itself worker 0: it processes its own shard in place and hands the other shards' segments
/// over in batches, tagged with their frame index. Payloads of a mapped file are lent by
/// offset, not copied (only pipes and gzip input are copied into the batch). Every worker
/// serializes its own exchanges; the reading thread also merges them, between frames, in a
/// deterministic order (`ordered`).
///
/// Measured against the alternative where every worker maps and decapsulates the whole file
/// and keeps only its own flows: that repeats the reading (a fifth of the work) in every
/// worker, and two such workers each needed 0.67 s of CPU where these two need 0.60 s.
#[allow(clippy::too_many_arguments)]
fn replay_sharded<S: EncodedSink>(
    files: &[PathBuf],
    settings: &Settings,
    front: &mut Front,
    out: &mut ExchangePipeline<Transforms, S>,
    progress: &Progress,
    report: &mut ReplayReport,
    transforms_totals: &mut Totals,
) -> Result<WorkerStats> {
    let n = settings.threads;
    // One set of transforms, cloned: a redactor built per worker would draw its own random
    // key, and the same secret would hash differently depending on its flow's worker.
    let transforms = transforms(settings)?;
    let (recycle_tx, recycle_rx) = unbounded::<SegmentBatch>();
    let mut outputs = Vec::with_capacity(n);
    let (own_tx, own_rx) = local_output_channel();
    outputs.push(own_rx);
    // Worker w >= 1 is fed through to_workers[w - 1]; shard 0 is the reading thread's own.
    let mut to_workers: Vec<Sender<SegmentBatch>> = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for i in 1..n {
        // Replay must not lose data, so the reader blocks on a full worker queue (live mode
        // drops and counts instead).
        let (tx, rx) = bounded::<SegmentBatch>(WORKER_QUEUE);
        to_workers.push(tx);
        let (enc_tx, enc_rx) = output_channel(ENCODED_QUEUE);
        outputs.push(enc_rx);
        let worker = Worker::new(settings.flow_for_worker(), settings.http_for_worker())?;
        let emitter = Emitter::new(
            transforms.clone(),
            EncodedSink::encoder(&out.sink),
            enc_tx,
            ENCODED_BATCH,
        );
        let recycle_tx = recycle_tx.clone();
        let h = thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || run_worker(worker, emitter, rx, recycle_tx))
            .context("spawn worker")?;
        handles.push(h);
    }
    let mut own = Worker::new(settings.flow_for_worker(), settings.http_for_worker())?;
    let mut own_emitter = Emitter::new(
        transforms,
        EncodedSink::encoder(&out.sink),
        own_tx,
        ENCODED_BATCH,
    );

    let mut staged = ReplayReport::default();
    // The merge runs on this thread, between frames: a third thread would take time slices
    // from the two workers on two cores.
    let mut merger = Merger::new(outputs, out);
    let mut lending = Lending {
        batches: (1..n)
            .map(|_| SegmentBatch::with_capacity(BATCH_SEGMENTS, 0))
            .collect(),
        in_flight: vec![VecDeque::new(); n - 1],
        returned: recycle_rx,
        free: Vec::new(),
    };
    let mut frame = 0u64;
    let mut last_heartbeat = 0u64;
    // Nothing is released before the first look at what is lent. (Offsets of a previous
    // file may linger into the next for a heartbeat; releasing is content-preserving for
    // a read-only file mapping, so that costs at most some resident pages.)
    let mut floor = 0;
    read_all(files, progress, &mut staged, true, |map, link, ts, data| {
        frame += 1;
        front.handle(link, ts, data, |seg| {
            let shard = reader_light_shard(seg.shard_hash(), n);
            if shard == 0 {
                own.process(seg);
                return;
            }
            let batch = &mut lending.batches[shard - 1];
            batch.push_framed(seg, frame, map);
            if batch.len() >= BATCH_SEGMENTS || batch.payload_bytes() >= BATCH_BYTES {
                lending.hand_over(shard - 1, &to_workers[shard - 1], frame, &mut merger);
            }
        });
        own_emitter.after_frame(&mut own, frame);
        // Quiet shards still move their watermark, or the merge would wait on them.
        if frame >= last_heartbeat + SHARD_HEARTBEAT_FRAMES {
            last_heartbeat = frame;
            for (w, tx) in to_workers.iter().enumerate() {
                lending.hand_over(w, tx, frame, &mut merger);
            }
            merger.poll();
            if merger.output_closed() {
                return None;
            }
            floor = lending.oldest_lent();
        }
        Some(floor)
    });
    for (w, tx) in to_workers.iter().enumerate() {
        lending.hand_over(w, tx, frame, &mut merger);
    }
    to_workers.clear();
    let own_transforms = own_emitter.finish(&mut own, frame + 1);
    let output_error = merger.finish();
    let mut totals = own.stats();
    transforms_totals.add_transforms(&own_transforms);
    for h in handles {
        let (stats, t) = h.join().map_err(|_| anyhow!("a worker thread panicked"))?;
        totals.merge(&stats);
        transforms_totals.add_transforms(&t);
    }
    if let Some(e) = output_error {
        report.output_error.get_or_insert(e);
    }
    report.errors.append(&mut staged.errors);
    report.totals.frames += staged.totals.frames;
    Ok(totals)
}

/// The reading thread's side of the batches: the one being filled per worker, and where the
/// payloads lent to each worker start, oldest first (a worker returns its batches in order).
struct Lending {
    batches: Vec<SegmentBatch>,
    in_flight: Vec<VecDeque<u64>>,
    returned: Receiver<SegmentBatch>,
    free: Vec<SegmentBatch>,
}

impl Lending {
    /// Sends worker `w`'s batch (even an empty one: it carries the watermark `upto`) and
    /// starts a fresh one.
    fn hand_over<S: EncodedSink>(
        &mut self,
        w: usize,
        tx: &Sender<SegmentBatch>,
        upto: u64,
        merger: &mut Merger<'_, S>,
    ) {
        self.collect_returned();
        let fresh = self
            .free
            .pop()
            .unwrap_or_else(|| SegmentBatch::with_capacity(BATCH_SEGMENTS, 0));
        let mut full = std::mem::replace(&mut self.batches[w], fresh);
        full.upto = upto;
        full.owner = w;
        if let Some(at) = full.lent_from {
            self.in_flight[w].push_back(at);
        }
        // The worker may wait on its output, which only this thread merges.
        merger.send_merging(tx, full);
    }

    /// Takes back the batches workers finished with: what they lent is free again.
    fn collect_returned(&mut self) {
        while let Ok(mut b) = self.returned.try_recv() {
            if b.lent_from.take().is_some() {
                self.in_flight[b.owner].pop_front();
            }
            self.free.push(b);
        }
    }

    /// The oldest file offset a worker may still read (`usize::MAX`: none).
    fn oldest_lent(&mut self) -> usize {
        self.collect_returned();
        let filling = self.batches.iter().filter_map(|b| b.lent_from);
        let lent = self.in_flight.iter().filter_map(|q| q.front().copied());
        filling
            .chain(lent)
            .min()
            .map_or(usize::MAX, |at| at as usize)
    }
}

/// The worker of a flow when the reading thread is worker 0: it also reads, decapsulates and
/// batches every frame and merges the output, so it takes a smaller share of the flows.
/// Weight 5 against 8 for the others, measured on the reference workload (medians of 7
/// interleaved 2-worker runs, queue 8, one worker 885 ms): 10/16 495 ms, 11/16 495, 9/16 507,
/// 8/16 534. Per-thread CPU time shows the balance: below it the reader waits on a full worker
/// queue, above it the worker starves. The right weight moves with the per-exchange cost and
/// with the machine's state (9/16 measured best in a slower hour). A multiply-shift, not a
/// modulo, maps the hash onto the weights: it runs for every segment.
fn reader_light_shard(hash: u64, n: usize) -> usize {
    const READER: u64 = 5;
    const OTHER: u64 = 8;
    let units = READER + OTHER * (n as u64 - 1);
    let slot = ((u128::from(hash) * u128::from(units)) >> 64) as u64;
    if slot < READER {
        0
    } else {
        1 + ((slot - READER) / OTHER) as usize
    }
}

fn run_worker<E: Encode>(
    mut worker: Worker,
    mut emitter: Emitter<E>,
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
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub(crate) fn new(enabled: bool) -> Self {
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
