//! [`KafkaSink`]: exchange records to a Kafka topic, never blocking the thread that feeds it.
//!
//! Records go to librdkafka's queue, bounded in records and bytes (`queue_records`,
//! `queue_bytes`; the binary charges it to `--max-memory`). A `send` that finds the queue full
//! does not wait: without a spool the record is dropped and counted
//! (`vxtap_output_dropped_total{reason="queue_full"}`); with one (`--spool DIR`) it is written
//! to the spool, and so is every record after it while anything waits there, so that the
//! spool is replayed in order, ahead of newer records, once the broker takes records again.
//!
//! A delivery that fails is counted by its error; with a spool, one worth retrying is spooled
//! (at the end: it may then come after newer records of its connection, which is why a spool
//! makes `message_timeout` default to never, so that an outage fills the queue and then the
//! spool instead of timing records out of the queue). [`KafkaSink::finish`] (SIGTERM, end of a
//! replay) waits for the queue to empty until a deadline, then purges what is left: with a
//! spool those records go to its front (they are older than anything in it), without one they
//! are counted as dropped (`reason="shutdown"`) and reported.
//!
//! Reachability: the statistics callback (every `statistics_interval`) and librdkafka's
//! `AllBrokersDown` error say whether any broker is up; [`KafkaSink::unreachable_for`] is what
//! `/readyz` compares with `unreachable_after`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;
use vxtap_http::Exchange;
use vxtap_sink::{Encode, EncodedSink, Sink, SinkError};

use crate::config::ProducerSettings;
use crate::frame::{Frame, KafkaEncoder};
use crate::spool::Spool;
use crate::stats::{snake_case, ClientSnapshot, DropReason, KafkaStats, SpoolReason};
use crate::{lock, KafkaError};

/// Records replayed from the spool per call of the sink (it also replays on every tick).
const REPLAY_PER_CALL: usize = 4096;
/// How often librdkafka's own warnings are logged, at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// State shared with librdkafka's callbacks (its polling thread).
#[derive(Debug)]
struct Shared {
    produced: AtomicU64,
    delivered: Arc<AtomicU64>,
    delivered_bytes: AtomicU64,
    dropped: [AtomicU64; 6],
    spooled: [AtomicU64; 4],
    errors: AtomicU64,
    delivery_errors: Mutex<Vec<(String, u64)>>,
    /// 0 while a broker is up, else since when none is (ms since the epoch).
    down_since_ms: AtomicU64,
    client: Mutex<ClientSnapshot>,
    spool: Option<Mutex<Spool>>,
    /// Set by [`KafkaSink::finish`] before purging: purged records go to the spool's front.
    purging: std::sync::atomic::AtomicBool,
    last_log: Mutex<Option<Instant>>,
}

impl Shared {
    fn drop_one(&self, r: DropReason) {
        let i = DropReason::ALL.iter().position(|x| *x == r).unwrap_or(0);
        self.dropped[i].fetch_add(1, Ordering::Relaxed);
    }

    fn spooled_one(&self, r: SpoolReason) {
        let i = SpoolReason::ALL.iter().position(|x| *x == r).unwrap_or(0);
        self.spooled[i].fetch_add(1, Ordering::Relaxed);
    }

    fn set_up(&self, up: bool) {
        if up {
            self.down_since_ms.store(0, Ordering::Relaxed);
        } else {
            let _ = self.down_since_ms.compare_exchange(
                0,
                now_ms().max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Logs at most once per [`LOG_EVERY`].
    fn log_limited(&self, f: impl FnOnce()) {
        let mut last = lock(&self.last_log);
        if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            f();
        }
    }

    /// Spools `frame` (at the front when purged at shutdown); counts a drop when it cannot.
    fn spool_frame(&self, frame: &[u8], reason: SpoolReason, front: bool) -> bool {
        let Some(spool) = &self.spool else {
            return false;
        };
        let mut sp = lock(spool);
        let r = if front {
            sp.push_front(frame)
        } else {
            sp.push(frame)
        };
        match r {
            Ok(true) => {
                self.spooled_one(reason);
                true
            }
            Ok(false) => {
                self.drop_one(DropReason::SpoolFull);
                true
            }
            Err(e) => {
                self.drop_one(DropReason::SpoolError);
                self.log_limited(|| tracing::error!("kafka output: {e}"));
                true
            }
        }
    }
}

/// Errors no retry can fix: such records are dropped rather than spooled forever.
fn permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::InvalidTopic
    )
}

fn too_large(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
    )
}

/// The librdkafka context: delivery reports, statistics, errors and logs.
struct Context {
    shared: Arc<Shared>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        // librdkafka repeats a down broker's complaint on every reconnect: rate-limited.
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            self.shared
                .log_limited(|| tracing::warn!("librdkafka {fac}: {msg}"));
        }
    }

    fn stats_raw(&self, json: &[u8]) {
        if let Some(snap) = ClientSnapshot::from_json(json) {
            // The snapshot first: whoever sees the broker up finds its statistics too.
            let up = snap.any_up();
            *lock(&self.shared.client) = snap;
            self.shared.set_up(up);
        }
    }

    fn stats(&self, _: Statistics) {}

    fn error(&self, error: RdError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.shared.set_up(false);
        }
        self.shared
            .log_limited(|| tracing::warn!("kafka: {error}: {reason}"));
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let s = &self.shared;
        let (err, msg) = match result {
            Ok(m) => {
                s.delivered.fetch_add(1, Ordering::Relaxed);
                s.delivered_bytes
                    .fetch_add(m.payload_len() as u64, Ordering::Relaxed);
                s.set_up(true);
                return;
            }
            Err((e, m)) => (e, m),
        };
        let code = err.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        {
            let label = snake_case(&format!("{code:?}"));
            let mut errs = lock(&s.delivery_errors);
            match errs.iter_mut().find(|(l, _)| *l == label) {
                Some(e) => e.1 += 1,
                None => errs.push((label, 1)),
            }
        }
        if permanent(code) {
            s.drop_one(if too_large(code) {
                DropReason::TooLarge
            } else {
                DropReason::DeliveryFailed
            });
            return;
        }
        let purged = matches!(
            code,
            RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight
        );
        // The record as it was sent, framed again for the spool.
        let mut vni = None;
        let mut source: Option<&[u8]> = None;
        if let Some(h) = msg.headers() {
            for header in h.iter() {
                match (header.key, header.value) {
                    ("vni", Some(v)) => {
                        vni = std::str::from_utf8(v).ok().and_then(|t| t.parse().ok());
                    }
                    ("mirror_source", Some(v)) => source = Some(v),
                    _ => {}
                }
            }
        }
        let frame = Frame {
            key: msg.key().unwrap_or_default(),
            vni,
            mirror_source: source,
            value: msg.payload().unwrap_or_default(),
        };
        let mut buf = Vec::with_capacity(frame.value.len() + frame.key.len() + 32);
        let spooled = frame.write(&mut buf).is_ok()
            && s.spool_frame(
                &buf,
                if purged {
                    SpoolReason::Shutdown
                } else {
                    SpoolReason::DeliveryFailed
                },
                purged && s.purging.load(Ordering::Relaxed),
            );
        if !spooled {
            s.drop_one(if purged {
                DropReason::Shutdown
            } else {
                DropReason::DeliveryFailed
            });
        }
    }
}

/// What [`KafkaSink::finish`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FinishReport {
    /// Records the broker had not acknowledged at the deadline (purged from the queue).
    pub undelivered: u64,
    /// Of those, kept in the spool for the next run.
    pub spooled: u64,
    /// Records waiting in the spool after the run (including older ones).
    pub spool_waiting: u64,
}

/// The Kafka output (see the module doc).
pub struct KafkaSink {
    producer: ThreadedProducer<Context>,
    shared: Arc<Shared>,
    settings: ProducerSettings,
    encoder: KafkaEncoder,
    /// Reused for each record.
    buf: Vec<u8>,
    finished: Option<FinishReport>,
    /// Wait for room instead of dropping or spooling (see [`KafkaSink::block_when_full`]).
    block: bool,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("target", &self.settings.target)
            .finish_non_exhaustive()
    }
}

enum Sent {
    Ok,
    QueueFull,
    Failed(RDKafkaErrorCode),
}

/// Hands one frame to librdkafka (never blocks).
fn send(producer: &ThreadedProducer<Context>, topic: &str, frame: &Frame<'_>) -> Sent {
    let mut headers = OwnedHeaders::new_with_capacity(2);
    if let Some(vni) = frame.vni {
        // As text: consumers (Vector, ClickHouse, kcat) show header values as strings.
        headers = headers.insert(Header {
            key: "vni",
            value: Some(vni.to_string().as_bytes()),
        });
    }
    if let Some(src) = frame.mirror_source {
        headers = headers.insert(Header {
            key: "mirror_source",
            value: Some(src),
        });
    }
    let record = BaseRecord::to(topic)
        .key(frame.key)
        .payload(frame.value)
        .headers(headers);
    match producer.send(record) {
        Ok(()) => Sent::Ok,
        Err((e, _)) => match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => Sent::QueueFull,
            Some(c) => Sent::Failed(c),
            None => Sent::Failed(RDKafkaErrorCode::Fail),
        },
    }
}

impl KafkaSink {
    /// Starts the producer (it connects in the background: an unreachable broker is not an
    /// error here, it is what the spool and `/readyz` are for) and opens the spool.
    pub fn new(settings: ProducerSettings, sample_rate: Option<f64>) -> Result<Self, KafkaError> {
        let spool = match &settings.spool {
            Some(cfg) => Some(Mutex::new(Spool::open(cfg.clone())?)),
            None => None,
        };
        let shared = Arc::new(Shared {
            produced: AtomicU64::new(0),
            delivered: Arc::new(AtomicU64::new(0)),
            delivered_bytes: AtomicU64::new(0),
            dropped: Default::default(),
            spooled: Default::default(),
            errors: AtomicU64::new(0),
            delivery_errors: Mutex::new(Vec::new()),
            // Unknown until the first statistics: counted as down from the start, so that a
            // broker never reached makes the instance unready after `unreachable_after`.
            down_since_ms: AtomicU64::new(now_ms().max(1)),
            client: Mutex::new(ClientSnapshot::default()),
            spool,
            purging: false.into(),
            last_log: Mutex::new(None),
        });
        let mut config = settings.producer_config()?;
        if settings.spool.is_some() && settings.options.message_timeout.is_none() {
            // See the module doc: with a spool, an outage fills the queue, then the spool.
            config.set("message.timeout.ms", "0");
        }
        let producer: ThreadedProducer<Context> = config.create_with_context(Context {
            shared: shared.clone(),
        })?;
        Ok(KafkaSink {
            producer,
            shared,
            encoder: KafkaEncoder::new(sample_rate)
                .map_err(|e| KafkaError::Config(e.to_string()))?,
            settings,
            buf: Vec::with_capacity(4096),
            finished: None,
            block: false,
        })
    }

    /// For inputs that can wait (`replay` of a file, `consume`): a full queue makes the
    /// caller wait for room, as a full disk would, instead of dropping or spooling; only a
    /// queue that stays full for `flush_timeout` (no broker taking records) falls back to
    /// the spool or a counted drop. Never for `listen`: capture must not wait.
    pub fn block_when_full(&mut self) {
        self.block = true;
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &ProducerSettings {
        &self.settings
    }

    /// How long no broker has been reachable (zero while one is).
    pub fn unreachable_for(&self) -> Duration {
        match self.shared.down_since_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            t => Duration::from_millis(now_ms().saturating_sub(t)),
        }
    }

    /// True once no broker was reachable for longer than `unreachable_after` (`/readyz`).
    pub fn unreachable(&self) -> bool {
        let d = self.unreachable_for();
        !d.is_zero() && d > self.settings.unreachable_after
    }

    /// Records the broker acknowledged, readable from another thread.
    pub fn delivered(&self) -> u64 {
        self.shared.delivered.load(Ordering::Relaxed)
    }

    /// The count of [`KafkaSink::delivered`], shared (the shutdown deadline reads it).
    pub fn delivered_counter(&self) -> Arc<AtomicU64> {
        self.shared.delivered.clone()
    }

    /// A snapshot of every counter.
    pub fn stats(&self) -> KafkaStats {
        let s = &self.shared;
        let unreachable = self.unreachable_for();
        KafkaStats {
            produced: s.produced.load(Ordering::Relaxed),
            delivered: s.delivered.load(Ordering::Relaxed),
            delivered_bytes: s.delivered_bytes.load(Ordering::Relaxed),
            dropped: std::array::from_fn(|i| s.dropped[i].load(Ordering::Relaxed)),
            spooled: std::array::from_fn(|i| s.spooled[i].load(Ordering::Relaxed)),
            delivery_errors: lock(&s.delivery_errors).clone(),
            errors: s.errors.load(Ordering::Relaxed),
            spool: s.spool.as_ref().map(|sp| lock(sp).stats()),
            client: lock(&s.client).clone(),
            in_flight: self.producer.in_flight_count().max(0) as u64,
            reachable: s.down_since_ms.load(Ordering::Relaxed) == 0,
            unreachable_ms: unreachable.as_millis() as u64,
        }
    }

    /// Sends one framed record (see [`crate::frame`]), or spools or drops it.
    pub fn write_frame(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let s = &self.shared;
        let frame = match Frame::parse(bytes) {
            Ok(f) => f,
            Err(e) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
                return Err(SinkError::Serialize(serde::ser::Error::custom(e)));
            }
        };
        if let Some(spool) = &s.spool {
            // Behind what waits, or the spool would not be in order.
            if !lock(spool).is_empty() {
                self.replay();
                if !lock(spool).is_empty() {
                    s.spool_frame(bytes, SpoolReason::BehindSpool, false);
                    return Ok(());
                }
            }
        }
        let mut sent = send(&self.producer, &self.settings.target.topic, &frame);
        if self.block && matches!(sent, Sent::QueueFull) {
            let give_up = Instant::now() + self.settings.flush_timeout;
            while matches!(sent, Sent::QueueFull) && Instant::now() < give_up {
                // Delivery reports free room; the polling thread serves them meanwhile.
                std::thread::sleep(Duration::from_micros(500));
                sent = send(&self.producer, &self.settings.target.topic, &frame);
            }
        }
        match sent {
            Sent::Ok => {
                s.produced.fetch_add(1, Ordering::Relaxed);
            }
            Sent::QueueFull => {
                if !s.spool_frame(bytes, SpoolReason::QueueFull, false) {
                    s.drop_one(DropReason::QueueFull);
                }
            }
            Sent::Failed(code) if too_large(code) => s.drop_one(DropReason::TooLarge),
            Sent::Failed(code) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
                s.drop_one(DropReason::DeliveryFailed);
                s.log_limited(|| tracing::error!("kafka output: produce failed: {code:?}"));
            }
        }
        Ok(())
    }

    /// Moves records from the spool to the producer while a broker is up and the queue has
    /// room; returns how many.
    pub fn replay(&self) -> usize {
        let s = &self.shared;
        let Some(spool) = &s.spool else { return 0 };
        if s.down_since_ms.load(Ordering::Relaxed) != 0 {
            return 0;
        }
        let mut sp = lock(spool);
        let mut n = 0;
        while n < REPLAY_PER_CALL {
            let rec = match sp.peek() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    s.errors.fetch_add(1, Ordering::Relaxed);
                    s.log_limited(|| tracing::error!("kafka output: {e}"));
                    break;
                }
            };
            let frame = match Frame::parse(rec) {
                Ok(f) => f,
                Err(_) => {
                    // Passed its checksum but is not a frame: not ours to send.
                    s.errors.fetch_add(1, Ordering::Relaxed);
                    sp.pop();
                    continue;
                }
            };
            match send(&self.producer, &self.settings.target.topic, &frame) {
                Sent::Ok => {
                    s.produced.fetch_add(1, Ordering::Relaxed);
                    sp.pop();
                    n += 1;
                }
                Sent::QueueFull => break,
                Sent::Failed(code) if permanent(code) || too_large(code) => {
                    s.drop_one(if too_large(code) {
                        DropReason::TooLarge
                    } else {
                        DropReason::DeliveryFailed
                    });
                    sp.pop();
                }
                Sent::Failed(_) => break,
            }
        }
        n
    }

    /// Waits until `deadline` for every record to be acknowledged, then purges what is left:
    /// to the spool's front with a spool, counted as dropped (`shutdown`) without. Returns what
    /// was not delivered. Later calls return the first report.
    pub fn finish(&mut self, deadline: Instant) -> FinishReport {
        if let Some(r) = self.finished {
            return r;
        }
        // Replay what the spool holds while there is time: it is older than nothing queued.
        loop {
            self.replay();
            let left = deadline.saturating_duration_since(Instant::now());
            let step = left.min(Duration::from_millis(100));
            let _ = self.producer.flush(step);
            let spool_done = self
                .shared
                .spool
                .as_ref()
                .is_none_or(|sp| lock(sp).is_empty());
            if (self.producer.in_flight_count() == 0 && spool_done) || Instant::now() >= deadline {
                break;
            }
        }
        let before = self.stats();
        let undelivered = self.producer.in_flight_count().max(0) as u64;
        if undelivered > 0 {
            self.shared.purging.store(true, Ordering::Relaxed);
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
            // The purged records come back as delivery reports on the polling thread.
            let give_up = Instant::now() + Duration::from_secs(2);
            while self.producer.in_flight_count() > 0 && Instant::now() < give_up {
                self.producer.poll(Duration::from_millis(10));
            }
        }
        let after = self.stats();
        let spooled =
            after.spooled_by(SpoolReason::Shutdown) - before.spooled_by(SpoolReason::Shutdown);
        let mut waiting = 0;
        if let Some(sp) = &self.shared.spool {
            let mut sp = lock(sp);
            if let Err(e) = sp.sync() {
                tracing::error!("kafka output: {e}");
            }
            waiting = sp.stats().records;
        }
        let report = FinishReport {
            undelivered,
            spooled,
            spool_waiting: waiting,
        };
        self.finished = Some(report);
        report
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, ex: &Exchange) -> Result<(), SinkError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let r = match self.encoder.encode(ex, &mut buf) {
            Ok(()) => self.write_frame(&buf),
            Err(e) => {
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        };
        self.buf = buf;
        r
    }

    /// Never blocks: replays from the spool and writes its buffered appends.
    fn flush(&mut self) -> Result<(), SinkError> {
        self.replay();
        if let Some(sp) = &self.shared.spool {
            if let Err(e) = lock(sp).sync() {
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
                return Err(SinkError::Io {
                    op: "spool",
                    path: e.path.clone(),
                    source: e.source,
                });
            }
        }
        Ok(())
    }

    fn tick(&mut self, _now: SystemTime) -> Result<(), SinkError> {
        self.replay();
        Ok(())
    }
}

impl EncodedSink for KafkaSink {
    type Encoder = KafkaEncoder;

    fn encoder(&self) -> KafkaEncoder {
        self.encoder.clone()
    }

    fn write_encoded(&mut self, record: &[u8], _now: SystemTime) -> Result<(), SinkError> {
        self.write_frame(record)
    }

    fn add_errors(&mut self, n: u64) {
        self.shared.errors.fetch_add(n, Ordering::Relaxed);
    }
}
