//! The record output of `replay`, `listen` and `consume`: JSON lines to a file or stdout, or a
//! Kafka topic (`-o kafka://BROKER[,BROKER...]/TOPIC`, with `[output.kafka]` in the config
//! file and `--spool DIR`). One enum rather than a trait object: the threads that feed the
//! output stay generic over [`vxtap_sink::Sink`]/[`EncodedSink`] and static dispatch costs
//! nothing per record.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use vxtap_http::Exchange;
use vxtap_kafka::{FinishReport, KafkaEncoder, KafkaOptions, KafkaSink, KafkaStats, KafkaTarget};
use vxtap_sink::{
    Encode, EncodedSink, JsonLinesConfig, JsonLinesWriter, LineEncoder, Sink, SinkError,
    WriterStats,
};

use crate::metrics::MetricSet;

/// `output` in the config file: a path (or `kafka://` URL), or a table with `target` and the
/// Kafka options (`[output]` / `[output.kafka]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum OutputValue {
    /// `output = "/var/lib/vxtap/x.jsonl"` or `output = "kafka://b:9092/topic"`.
    Target(String),
    /// `[output]` with `target = ...` and `[output.kafka]`.
    Table(Box<OutputTable>),
}

/// The `[output]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputTable {
    /// A path or a `kafka://` URL (the `-o` flag wins).
    pub target: Option<String>,
    /// Kafka client options.
    pub kafka: Option<KafkaOptions>,
}

impl OutputValue {
    fn target(&self) -> Option<&str> {
        match self {
            OutputValue::Target(t) => Some(t),
            OutputValue::Table(t) => t.target.as_deref(),
        }
    }

    fn kafka(&self) -> Option<&KafkaOptions> {
        match self {
            OutputValue::Target(_) => None,
            OutputValue::Table(t) => t.kafka.as_ref(),
        }
    }
}

/// Where records go, resolved.
#[derive(Clone, Debug)]
pub enum OutputConfig {
    /// JSON lines (a file, or stdout when the path is `None`).
    Lines(JsonLinesConfig),
    /// A Kafka topic.
    Kafka(Box<vxtap_kafka::ProducerSettings>),
}

impl OutputConfig {
    /// Resolves the `-o` flag over the file's `output`, with `--spool`. `lines` carries the
    /// file options (rotation) used when the target is a path.
    pub fn resolve(
        flag: Option<&PathBuf>,
        file: Option<&OutputValue>,
        spool: Option<PathBuf>,
        lines: JsonLinesConfig,
    ) -> Result<OutputConfig> {
        let target: Option<String> = match flag {
            Some(p) => Some(p.to_string_lossy().into_owned()),
            None => file.and_then(OutputValue::target).map(str::to_string),
        };
        match target {
            Some(t) if KafkaTarget::is_kafka(&t) => {
                let target = KafkaTarget::parse(&t)?;
                let options = file
                    .and_then(OutputValue::kafka)
                    .cloned()
                    .unwrap_or_default();
                Ok(OutputConfig::Kafka(Box::new(
                    vxtap_kafka::ProducerSettings::new(target, options, spool)?,
                )))
            }
            t => {
                if spool.is_some() {
                    bail!("--spool is for a kafka:// output (a file output needs no spool)");
                }
                Ok(OutputConfig::Lines(JsonLinesConfig {
                    path: t.map(PathBuf::from),
                    ..lines
                }))
            }
        }
    }

    /// Bytes the output may hold in memory beyond a fixed overhead, for `--max-memory` (the
    /// Kafka producer's queue; JSON lines buffer a fixed 64 KiB).
    pub fn memory_reservation(&self) -> u64 {
        match self {
            OutputConfig::Lines(_) => 0,
            OutputConfig::Kafka(k) => k.memory_reservation(),
        }
    }
}

/// The output (see the module doc).
// One per process, on the output thread: the file writer stays inline (no indirection per
// record), the Kafka sink is boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum OutputSink {
    /// JSON lines.
    Lines(JsonLinesWriter),
    /// Kafka.
    Kafka(Box<KafkaSink>),
}

/// The encoder of an [`OutputSink`], for workers that encode in parallel.
#[derive(Clone, Debug)]
pub enum OutputEncoder {
    /// A JSON line.
    Lines(LineEncoder),
    /// A Kafka frame (key, headers, the same JSON line as value).
    Kafka(KafkaEncoder),
}

impl Encode for OutputEncoder {
    fn encode(&self, ex: &Exchange, out: &mut Vec<u8>) -> Result<(), SinkError> {
        match self {
            OutputEncoder::Lines(e) => e.encode_exchange(ex, out),
            OutputEncoder::Kafka(e) => e.encode(ex, out),
        }
    }
}

impl OutputSink {
    /// Opens the output; `sample_rate` is added to every record when sampling is on.
    pub fn open(cfg: OutputConfig, sample_rate: Option<f64>) -> Result<OutputSink> {
        Ok(match cfg {
            OutputConfig::Lines(c) => {
                OutputSink::Lines(JsonLinesWriter::new(JsonLinesConfig { sample_rate, ..c })?)
            }
            OutputConfig::Kafka(k) => {
                let target = k.target.to_string();
                OutputSink::Kafka(Box::new(
                    KafkaSink::new(*k, sample_rate).with_context(|| target)?,
                ))
            }
        })
    }

    /// The counters in the file output's terms: for Kafka, `records` are the records the
    /// broker acknowledged and `failed` those lost for good (not the ones spooled; capacity
    /// drops are counted, like the worker queues', in `vxtap_output_dropped_total`).
    pub fn stats(&self) -> WriterStats {
        match self {
            OutputSink::Lines(w) => w.stats(),
            OutputSink::Kafka(k) => {
                use vxtap_kafka::stats::DropReason as D;
                let s = k.stats();
                WriterStats {
                    records: s.delivered,
                    bytes: s.delivered_bytes,
                    failed: s.dropped_by(D::DeliveryFailed)
                        + s.dropped_by(D::TooLarge)
                        + s.dropped_by(D::SpoolError)
                        + s.dropped_by(D::Shutdown),
                    errors: s.errors,
                    ..WriterStats::default()
                }
            }
        }
    }

    /// The count of records written (delivered, for Kafka), readable from another thread.
    pub fn written_counter(&self) -> Arc<AtomicU64> {
        match self {
            OutputSink::Lines(w) => w.written_counter(),
            OutputSink::Kafka(k) => k.delivered_counter(),
        }
    }

    /// True while the output cannot take records (for `/readyz`): the file's last write
    /// failed, or no Kafka broker was reachable for longer than `unreachable_after`.
    pub fn output_failing(&self) -> bool {
        match self {
            OutputSink::Lines(w) => w.output_failing(),
            OutputSink::Kafka(k) => k.unreachable(),
        }
    }

    /// Inputs that can wait (`replay`, `consume`): a full Kafka queue makes them wait for
    /// room instead of dropping (see [`KafkaSink::block_when_full`]); nothing for files.
    pub fn block_when_full(&mut self) {
        if let OutputSink::Kafka(k) = self {
            k.block_when_full();
        }
    }

    /// The Kafka output's counters, when it is one.
    pub fn kafka_stats(&self) -> Option<KafkaStats> {
        match self {
            OutputSink::Lines(_) => None,
            OutputSink::Kafka(k) => Some(k.stats()),
        }
    }

    /// End of the run: for Kafka, waits until `deadline` for deliveries, then purges what
    /// is left into the spool (or counts it lost); `None` for JSON lines (a flush does it).
    pub fn finish(&mut self, deadline: Instant) -> Option<FinishReport> {
        match self {
            OutputSink::Lines(_) => None,
            OutputSink::Kafka(k) => Some(k.finish(deadline)),
        }
    }

    /// [`OutputSink::finish`] with the Kafka output's own `flush_timeout` (replay, consume).
    pub fn finish_default(&mut self) -> Option<FinishReport> {
        let timeout = match self {
            OutputSink::Lines(_) => return None,
            OutputSink::Kafka(k) => k.settings().flush_timeout,
        };
        self.finish(Instant::now() + timeout)
    }
}

impl Sink for OutputSink {
    fn write(&mut self, ex: &Exchange) -> Result<(), SinkError> {
        match self {
            OutputSink::Lines(w) => Sink::write(w, ex),
            OutputSink::Kafka(k) => k.write(ex),
        }
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            OutputSink::Lines(w) => Sink::flush(w),
            OutputSink::Kafka(k) => k.flush(),
        }
    }
    fn tick(&mut self, now: SystemTime) -> Result<(), SinkError> {
        match self {
            OutputSink::Lines(w) => Sink::tick(w, now),
            OutputSink::Kafka(k) => k.tick(now),
        }
    }
    fn reopen(&mut self) -> Result<(), SinkError> {
        match self {
            OutputSink::Lines(w) => Sink::reopen(w),
            OutputSink::Kafka(_) => Ok(()),
        }
    }
    fn stopped(&self) -> Option<std::io::ErrorKind> {
        match self {
            OutputSink::Lines(w) => Sink::stopped(w),
            OutputSink::Kafka(_) => None,
        }
    }
}

impl EncodedSink for OutputSink {
    type Encoder = OutputEncoder;
    fn encoder(&self) -> OutputEncoder {
        match self {
            OutputSink::Lines(w) => OutputEncoder::Lines(EncodedSink::encoder(w)),
            OutputSink::Kafka(k) => OutputEncoder::Kafka(k.encoder()),
        }
    }
    fn write_encoded(&mut self, record: &[u8], now: SystemTime) -> Result<(), SinkError> {
        match self {
            OutputSink::Lines(w) => w.write_encoded(record, now),
            OutputSink::Kafka(k) => k.write_encoded(record, now),
        }
    }
    fn add_errors(&mut self, n: u64) {
        match self {
            OutputSink::Lines(w) => EncodedSink::add_errors(w, n),
            OutputSink::Kafka(k) => k.add_errors(n),
        }
    }
}

/// Exports the Kafka output's counters (see README: metrics).
pub fn export_kafka(k: &KafkaStats, m: &mut MetricSet) {
    use vxtap_kafka::stats::{DropReason, SpoolReason};
    for r in DropReason::ALL {
        m.counter(
            "vxtap_output_dropped_total",
            "Records neither delivered nor kept (Kafka output), by reason.",
            &[("reason", r.as_str())],
            k.dropped_by(r),
        );
    }
    for r in SpoolReason::ALL {
        m.counter(
            "vxtap_kafka_spooled_total",
            "Records written to the spool, by reason.",
            &[("reason", r.as_str())],
            k.spooled_by(r),
        );
    }
    for (error, n) in &k.delivery_errors {
        m.counter(
            "vxtap_kafka_delivery_errors_total",
            "Failed deliveries, by librdkafka error.",
            &[("error", error)],
            *n,
        );
    }
    for (name, v) in [
        ("vxtap_kafka_produced_total", k.produced),
        ("vxtap_kafka_delivered_total", k.delivered),
        ("vxtap_kafka_delivered_bytes_total", k.delivered_bytes),
        ("vxtap_kafka_errors_total", k.errors),
    ] {
        m.counter(name, "Kafka output counter (see README: metrics).", &[], v);
    }
    if let Some(sp) = &k.spool {
        m.counter(
            "vxtap_kafka_spool_replayed_total",
            "Records read back from the spool and handed to the producer.",
            &[],
            sp.replayed,
        );
        m.counter(
            "vxtap_kafka_spool_corrupt_total",
            "Spool records skipped as corrupt.",
            &[],
            sp.corrupt,
        );
        m.gauge(
            "vxtap_kafka_spool_records",
            "Records waiting in the spool.",
            &[],
            sp.records as i64,
        );
        m.gauge(
            "vxtap_kafka_spool_bytes",
            "Bytes of the spool on disk.",
            &[],
            sp.bytes as i64,
        );
    }
    let c = &k.client;
    for (name, help, v) in [
        (
            "vxtap_kafka_queue_records",
            "Records in the producer's queue (statistics).",
            c.queue_records,
        ),
        (
            "vxtap_kafka_queue_bytes",
            "Bytes in the producer's queue (statistics).",
            c.queue_bytes,
        ),
        (
            "vxtap_kafka_queue_max_records",
            "The producer queue's record limit.",
            c.queue_max_records,
        ),
        (
            "vxtap_kafka_queue_max_bytes",
            "The producer queue's byte limit.",
            c.queue_max_bytes,
        ),
    ] {
        m.gauge(name, help, &[], v as i64);
    }
    m.gauge(
        "vxtap_kafka_reachable",
        "1 while some broker is up.",
        &[],
        i64::from(k.reachable),
    );
    m.gauge(
        "vxtap_kafka_unreachable_seconds",
        "Seconds since no broker was up (0 while one is).",
        &[],
        (k.unreachable_ms / 1000) as i64,
    );
    for b in &c.brokers {
        let l = [("broker", b.name.as_str())];
        m.gauge(
            "vxtap_kafka_broker_up",
            "1 while the broker's state is UP.",
            &l,
            i64::from(b.up),
        );
        m.gauge(
            "vxtap_kafka_broker_rtt_avg_microseconds",
            "Request round trip, mean over the last statistics interval.",
            &l,
            b.rtt_avg_us,
        );
        m.gauge(
            "vxtap_kafka_broker_rtt_p99_microseconds",
            "Request round trip, 99th percentile over the last statistics interval.",
            &l,
            b.rtt_p99_us,
        );
        m.gauge(
            "vxtap_kafka_broker_outbuf_requests",
            "Requests waiting to be sent.",
            &l,
            b.outbuf,
        );
        m.gauge(
            "vxtap_kafka_broker_waitresp_requests",
            "Requests sent, awaiting a response.",
            &l,
            b.waitresp,
        );
        m.counter(
            "vxtap_kafka_broker_request_timeouts_total",
            "Requests that timed out.",
            &l,
            b.req_timeouts,
        );
        m.counter(
            "vxtap_kafka_broker_tx_errors_total",
            "Transmission errors.",
            &l,
            b.tx_errors,
        );
        m.counter(
            "vxtap_kafka_broker_disconnects_total",
            "Connections to the broker closed.",
            &l,
            b.disconnects.max(0) as u64,
        );
    }
}
