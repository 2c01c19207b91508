//! Deterministic output from several replay workers.
//!
//! Each worker serializes its own exchanges (JSON encoding is a fifth of a replay's CPU time;
//! done by the one writer thread it caps the speed-up of a second worker) and tags every line
//! with the index of the input frame that completed it. The merge ([`Merger`], run by the
//! sharded replay's reading thread between frames) writes the workers' streams in order of
//! (frame index, worker), so the same input and the same `--threads` give byte-identical
//! output however the threads were scheduled. Workers also report how far they have read (the
//! watermark) so the merge never waits for a quiet worker longer than `HEARTBEAT_FRAMES`.

use std::collections::VecDeque;
use std::time::SystemTime;

use crossbeam_channel::{
    bounded, unbounded, Receiver, RecvError, Select, Sender, TryRecvError, TrySendError,
};
use vxtap_http::Exchange;
use vxtap_sink::{Encode, EncodedSink, ExchangePipeline, Transform, Transforms};

use crate::health::{RateLimitedLog, OUTPUT_ERROR_LOG_EVERY};
use crate::pipeline::Worker;

/// A worker with nothing to send still reports its progress this often (in input frames).
pub const HEARTBEAT_FRAMES: u64 = 16 * 1024;

/// Lines one worker serialized, in its output order.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The lines back to back, newlines included.
    bytes: Vec<u8>,
    /// Per line: its merge key (the completing frame's index) and where it ends in `bytes`.
    lines: Vec<(u64, usize)>,
    /// Every later line of this worker has a key above this.
    watermark: u64,
    /// Exchanges that could not be serialized (counted as writer errors).
    encode_errors: u64,
}

/// A worker's end of its output: encoded batches out, emptied ones back for reuse (a fresh
/// buffer per batch costs cache misses and page faults on every line written into it).
pub struct WorkerEnd {
    tx: Sender<Encoded>,
    recycled: Receiver<Encoded>,
}

/// The merge's end of one worker's output.
pub struct MergeEnd {
    rx: Receiver<Encoded>,
    recycle: Sender<Encoded>,
}

/// One worker's output channel, `depth` batches deep.
pub fn output_channel(depth: usize) -> (WorkerEnd, MergeEnd) {
    let (tx, rx) = bounded(depth);
    let (recycle, recycled) = bounded(depth + 2);
    (WorkerEnd { tx, recycled }, MergeEnd { rx, recycle })
}

/// An output channel that never blocks its worker: for a worker on the thread that also runs
/// the merge, which would otherwise wait on itself. The merge drains it on every poll.
pub fn local_output_channel() -> (WorkerEnd, MergeEnd) {
    let (tx, rx) = unbounded();
    let (recycle, recycled) = bounded(8);
    (WorkerEnd { tx, recycled }, MergeEnd { rx, recycle })
}

/// The worker side: keys, filters, redacts and encodes what a [`Worker`] finishes, with the
/// sink's own encoder (`E`).
pub struct Emitter<E: Encode> {
    transforms: Transforms,
    encoder: E,
    out: WorkerEnd,
    /// Keys of the exchanges the worker holds ready, in its order.
    keys: Vec<u64>,
    drained: Vec<Exchange>,
    last_sent: u64,
    batch: usize,
}

impl<E: Encode> Emitter<E> {
    /// An emitter sending to `out` once `batch` exchanges are ready.
    pub fn new(transforms: Transforms, encoder: E, out: WorkerEnd, batch: usize) -> Self {
        Emitter {
            transforms,
            encoder,
            out,
            keys: Vec::new(),
            drained: Vec::new(),
            last_sent: 0,
            batch,
        }
    }

    /// Keys the exchanges that became ready while the worker handled input frame `frame`.
    pub fn key_ready(&mut self, worker: &Worker, frame: u64) {
        let ready = worker.ready();
        if ready > self.keys.len() {
            self.keys.resize(ready, frame);
        }
    }

    /// Call after the worker handled input frame `frame`: keys what became ready and sends
    /// when a batch is full or a heartbeat is due.
    pub fn after_frame(&mut self, worker: &mut Worker, frame: u64) {
        self.key_ready(worker, frame);
        if self.keys.len() >= self.batch || frame >= self.last_sent + HEARTBEAT_FRAMES {
            self.send(worker, frame);
        }
    }

    /// Sends what is ready now, promising that nothing later is keyed at or below `frame`.
    pub fn flush(&mut self, worker: &mut Worker, frame: u64) {
        self.key_ready(worker, frame);
        self.send(worker, frame);
    }

    /// Finishes the worker: its last exchanges are keyed `end` (the frame count, the same for
    /// every worker) and everything left is sent with a final watermark.
    pub fn finish(mut self, worker: &mut Worker, end: u64) -> Transforms {
        worker.finish();
        let ready = worker.ready();
        if ready > self.keys.len() {
            self.keys.resize(ready, end);
        }
        self.send(worker, u64::MAX);
        self.transforms
    }

    fn send(&mut self, worker: &mut Worker, watermark: u64) {
        self.last_sent = watermark;
        worker.drain_into(&mut self.drained);
        debug_assert_eq!(
            self.drained.len(),
            self.keys.len(),
            "every ready exchange is keyed"
        );
        let mut enc = self.out.recycled.try_recv().unwrap_or_default();
        enc.bytes.clear();
        enc.lines.clear();
        enc.watermark = watermark;
        enc.encode_errors = 0;
        for (mut ex, key) in self.drained.drain(..).zip(self.keys.drain(..)) {
            if !self.transforms.apply(&mut ex) {
                continue;
            }
            match self.encoder.encode(&ex, &mut enc.bytes) {
                Ok(()) => enc.lines.push((key, enc.bytes.len())),
                Err(_) => enc.encode_errors += 1,
            }
        }
        // The writer only goes away when the process is ending.
        let _ = self.out.tx.send(enc);
    }
}

/// Registers every live worker's output on `sel`; returns the worker of each operation.
fn select_live<'s>(
    rxs: &'s [Receiver<Encoded>],
    srcs: &[Source],
    sel: &mut Select<'s>,
) -> Vec<usize> {
    let mut index = Vec::with_capacity(srcs.len());
    for (w, s) in srcs.iter().enumerate() {
        if !s.done {
            sel.recv(&rxs[w]);
            index.push(w);
        }
    }
    index
}

/// One worker's stream as the merge sees it.
struct Source {
    recycle: Sender<Encoded>,
    /// Received batches, oldest first; the front one is being written.
    queue: VecDeque<Encoded>,
    /// Next line of the front batch and where it starts.
    pos: usize,
    start: usize,
    /// Bound on the keys of every line not yet received.
    watermark: u64,
    done: bool,
}

impl Source {
    /// The next line's key, dropping finished batches (their watermark then applies).
    fn next_key(&mut self) -> Option<u64> {
        loop {
            let front = self.queue.front()?;
            if let Some(&(k, _)) = front.lines.get(self.pos) {
                return Some(k);
            }
            self.watermark = front.watermark;
            if let Some(done) = self.queue.pop_front() {
                // The worker may have hung up already; the buffer is then simply freed.
                let _ = self.recycle.try_send(done);
            }
            self.pos = 0;
            self.start = 0;
        }
    }

    fn push(&mut self, enc: Encoded) {
        if enc.lines.is_empty() && self.queue.is_empty() {
            // A heartbeat: nothing to write, only the bound moves.
            self.watermark = enc.watermark;
            let _ = self.recycle.try_send(enc);
            return;
        }
        self.queue.push_back(enc);
    }
}

/// The merge of the workers' streams into `out`, driven by whichever thread owns it: `poll`
/// never blocks, so the reading thread of a sharded replay can run it between frames instead
/// of a third thread that would take a core's time slices from the two workers.
pub struct Merger<'a, S: EncodedSink> {
    rxs: Vec<Receiver<Encoded>>,
    srcs: Vec<Source>,
    out: &'a mut ExchangePipeline<Transforms, S>,
    first_error: Option<String>,
    errors: RateLimitedLog,
    now: SystemTime,
}

impl<'a, S: EncodedSink> Merger<'a, S> {
    /// A merge of `ends` (worker order: ties on a key go to the lower index) into `out`.
    pub fn new(ends: Vec<MergeEnd>, out: &'a mut ExchangePipeline<Transforms, S>) -> Self {
        let (rxs, srcs) = ends
            .into_iter()
            .map(|e| {
                let src = Source {
                    recycle: e.recycle,
                    queue: VecDeque::new(),
                    pos: 0,
                    start: 0,
                    watermark: 0,
                    done: false,
                };
                (e.rx, src)
            })
            .unzip();
        Merger {
            rxs,
            srcs,
            out,
            first_error: None,
            errors: RateLimitedLog::new(OUTPUT_ERROR_LOG_EVERY),
            now: SystemTime::now(),
        }
    }

    /// Takes what the workers have sent and writes every line that is safe now, without
    /// waiting for anything.
    pub fn poll(&mut self) {
        for w in 0..self.rxs.len() {
            while !self.srcs[w].done {
                match self.rxs[w].try_recv() {
                    Ok(enc) => self.take(w, Ok(enc)),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => self.take(w, Err(RecvError)),
                }
            }
        }
        while self.write_next() {}
    }

    /// Sends `msg` on `tx`; while `tx` is full, keeps merging, so the worker behind `tx` can
    /// never wait on an output that only this thread would take.
    pub fn send_merging<T>(&mut self, tx: &Sender<T>, msg: T) {
        let msg = match tx.try_send(msg) {
            Ok(()) => return,
            Err(TrySendError::Full(m)) => m,
            // The receiver only goes away when its thread panicked, which aborts the process.
            Err(TrySendError::Disconnected(_)) => return,
        };
        loop {
            self.poll();
            let mut sel = Select::new();
            let send_at = sel.send(tx);
            let index = select_live(&self.rxs, &self.srcs, &mut sel);
            let op = sel.select();
            if op.index() == send_at {
                let _ = op.send(tx, msg);
                return;
            }
            // Some output came instead: take it, merge, and select again (the send is among
            // the operations, so room in `tx` ends the loop).
            let w = index[op.index() - send_at - 1];
            let got = op.recv(&self.rxs[w]);
            self.take(w, got);
        }
    }

    /// True once the output's reader is gone (a closed pipe): nothing more can be written.
    pub fn output_closed(&self) -> bool {
        self.out.sink.stopped() == Some(std::io::ErrorKind::BrokenPipe)
    }

    /// Blocks until every worker has hung up, writing everything, and returns the first
    /// output error.
    pub fn finish(mut self) -> Option<String> {
        loop {
            while self.write_next() {}
            if self.srcs.iter().all(|s| s.done) {
                // Everything received was written: a line the loop above did not write would
                // have been safe once every source was done.
                break;
            }
            let mut sel = Select::new();
            let index = select_live(&self.rxs, &self.srcs, &mut sel);
            let op = sel.select();
            let w = index[op.index()];
            let got = op.recv(&self.rxs[w]);
            self.take(w, got);
        }
        self.first_error
    }

    /// Takes what worker `w` sent (or its hang-up).
    fn take(&mut self, w: usize, got: Result<Encoded, RecvError>) {
        let Ok(enc) = got else {
            self.srcs[w].done = true;
            return;
        };
        if enc.encode_errors > 0 {
            self.out.sink.add_errors(enc.encode_errors);
        }
        self.srcs[w].push(enc);
        // Time-based rotation needs the clock, not per line: per batch is enough.
        self.now = SystemTime::now();
    }

    /// Writes the next line if it is safe: no live worker can still send a line keyed below
    /// it. Returns false when it must wait (or everything is written).
    fn write_next(&mut self) -> bool {
        let mut best: Option<(u64, usize)> = None;
        for (w, s) in self.srcs.iter_mut().enumerate() {
            if let Some(k) = s.next_key() {
                if best.is_none_or(|b| (k, w) < b) {
                    best = Some((k, w));
                }
            }
        }
        let Some((key, w)) = best else { return false };
        // A live worker with nothing queued may still send a line keyed just above its
        // watermark: the best line is safe only when its key is at or below that.
        if self
            .srcs
            .iter()
            .any(|s| !s.done && s.queue.is_empty() && key > s.watermark)
        {
            return false;
        }
        let s = &mut self.srcs[w];
        if let Some(front) = s.queue.front() {
            let (_, end) = front.lines[s.pos];
            if let Err(e) = self
                .out
                .sink
                .write_encoded(&front.bytes[s.start..end], self.now)
            {
                // A closed pipe is the reader's choice, not a failure to report.
                if self.out.sink.stopped() != Some(std::io::ErrorKind::BrokenPipe) {
                    self.errors.error("output failing", &e);
                }
                self.first_error.get_or_insert(e.to_string());
            }
            s.pos += 1;
            s.start = end;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vxtap_sink::{JsonLinesConfig, JsonLinesWriter};

    /// A batch of lines "w:key:i" for the given keys.
    fn batch(w: usize, keys: &[u64], watermark: u64) -> Encoded {
        let mut enc = Encoded {
            watermark,
            ..Encoded::default()
        };
        for (i, k) in keys.iter().enumerate() {
            enc.bytes
                .extend_from_slice(format!("{w}:{k}:{i}\n").as_bytes());
            enc.lines.push((*k, enc.bytes.len()));
        }
        enc
    }

    /// Runs `merge` against a fresh output file and returns the (worker, key) of every line.
    fn written(
        merge: impl FnOnce(&mut ExchangePipeline<Transforms, JsonLinesWriter>),
    ) -> Vec<(usize, u64)> {
        let path = std::env::temp_dir().join(format!(
            "vxtap-ordered-{}-{:?}.jsonl",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        let mut out = ExchangePipeline::new(
            Transforms::passthrough(),
            JsonLinesWriter::new(JsonLinesConfig {
                path: Some(path.clone()),
                ..JsonLinesConfig::default()
            })
            .unwrap(),
        );
        merge(&mut out);
        out.sink.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).ok();
        text.lines()
            .map(|l| {
                let mut f = l.split(':');
                let w = f.next().unwrap().parse().unwrap();
                let k = f.next().unwrap().parse().unwrap();
                (w, k)
            })
            .collect()
    }

    fn merged(streams: Vec<Vec<Encoded>>) -> Vec<(usize, u64)> {
        written(|out| {
            let mut rxs = Vec::new();
            let mut senders = Vec::new();
            for stream in streams {
                // Tiny queues: producers block, as real workers do.
                let (worker_end, merge_end) = output_channel(1);
                rxs.push(merge_end);
                senders.push(std::thread::spawn(move || {
                    for b in stream {
                        worker_end.tx.send(b).unwrap();
                    }
                }));
            }
            assert!(Merger::new(rxs, out).finish().is_none());
            for s in senders {
                s.join().unwrap();
            }
        })
    }

    /// A sink other than the JSON-lines writer (as a Kafka producer would be): records in
    /// memory, one per write.
    #[derive(Default)]
    struct Records(Vec<Vec<u8>>);

    #[derive(Clone)]
    struct NoEncoder;

    impl Encode for NoEncoder {
        fn encode(&self, _: &Exchange, _: &mut Vec<u8>) -> Result<(), vxtap_sink::SinkError> {
            Ok(())
        }
    }

    impl vxtap_sink::Sink for Records {
        fn write(&mut self, _: &Exchange) -> Result<(), vxtap_sink::SinkError> {
            Ok(())
        }
        fn flush(&mut self) -> Result<(), vxtap_sink::SinkError> {
            Ok(())
        }
    }

    impl EncodedSink for Records {
        type Encoder = NoEncoder;
        fn encoder(&self) -> NoEncoder {
            NoEncoder
        }
        fn write_encoded(
            &mut self,
            record: &[u8],
            _: SystemTime,
        ) -> Result<(), vxtap_sink::SinkError> {
            self.0.push(record.to_vec());
            Ok(())
        }
        fn add_errors(&mut self, _: u64) {}
    }

    /// The merge hands any [`EncodedSink`] whole records in key order: a new output plugs in
    /// without touching the threads.
    #[test]
    fn the_merge_feeds_any_encoded_sink() {
        let mut out = ExchangePipeline::new(Transforms::passthrough(), Records::default());
        let (a, a_end) = output_channel(4);
        let (b, b_end) = output_channel(4);
        a.tx.send(batch(0, &[1, 4], u64::MAX)).unwrap();
        b.tx.send(batch(1, &[2, 3], u64::MAX)).unwrap();
        drop((a, b));
        assert!(Merger::new(vec![a_end, b_end], &mut out).finish().is_none());
        let got: Vec<String> = out
            .sink
            .0
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        assert_eq!(got, ["0:1:0\n", "1:2:0\n", "1:3:1\n", "0:4:1\n"]);
    }

    /// The sharded replay's shape: the merging thread also feeds a worker through a bounded
    /// queue and has lines of its own. The worker's output queue holds one batch, so a feeder
    /// that did not merge while its send waits would deadlock with the worker.
    #[test]
    fn the_feeding_thread_merges_while_it_waits() {
        const FRAMES: u64 = 2_000;
        let run = || {
            written(|out| {
                let (own, own_end) = local_output_channel();
                let (worker_out, worker_end) = output_channel(1);
                let (to_worker, input) = bounded::<u64>(1);
                let worker = std::thread::spawn(move || {
                    // One line per frame handed over, keyed by it; the watermark follows.
                    for frame in input {
                        worker_out.tx.send(batch(1, &[frame], frame)).unwrap();
                    }
                    worker_out.tx.send(batch(1, &[], u64::MAX)).unwrap();
                });
                let mut merger = Merger::new(vec![own_end, worker_end], out);
                for frame in 1..=FRAMES {
                    if frame % 2 == 0 {
                        merger.send_merging(&to_worker, frame);
                    } else {
                        own.tx.send(batch(0, &[frame], frame)).unwrap();
                    }
                    if frame % 64 == 0 {
                        merger.poll();
                    }
                }
                drop(to_worker);
                own.tx.send(batch(0, &[], u64::MAX)).unwrap();
                drop(own);
                assert!(merger.finish().is_none());
                worker.join().unwrap();
            })
        };
        let (done_tx, done_rx) = bounded(1);
        std::thread::spawn(move || done_tx.send(run()).unwrap());
        let got = done_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the merge and the worker deadlocked");
        let expected: Vec<(usize, u64)> =
            (1..=FRAMES).map(|f| ((f % 2 == 0) as usize, f)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn lines_come_out_by_key_then_worker_whatever_the_timing() {
        let streams = vec![
            vec![
                batch(0, &[1, 1, 5], 6),
                batch(0, &[], 20),
                batch(0, &[30], u64::MAX),
            ],
            vec![
                batch(1, &[], 3),
                batch(1, &[2, 5, 9], 9),
                batch(1, &[31], u64::MAX),
            ],
            vec![batch(2, &[5], u64::MAX)],
        ];
        let got = merged(streams);
        assert_eq!(
            got,
            [
                (0, 1),
                (0, 1),
                (1, 2),
                (0, 5),
                (1, 5),
                (2, 5),
                (1, 9),
                (0, 30),
                (1, 31)
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn random_streams_merge_sorted_and_complete(
            steps in proptest::collection::vec(
                proptest::collection::vec((0u64..4, 0usize..4), 1..12), 1..4),
        ) {
            // Each worker's keys rise; watermarks are the last key it has passed.
            let mut streams = Vec::new();
            let mut expected = Vec::new();
            for (w, s) in steps.iter().enumerate() {
                let mut key = 0u64;
                let mut batches = Vec::new();
                for &(advance, count) in s {
                    key += advance;
                    let keys = vec![key + 1; count];
                    expected.extend(keys.iter().map(|&k| (k, w)));
                    key += 1;
                    batches.push(batch(w, &keys, key));
                }
                batches.push(batch(w, &[], u64::MAX));
                streams.push(batches);
            }
            expected.sort();
            let got: Vec<(u64, usize)> = merged(streams).into_iter().map(|(w, k)| (k, w)).collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
