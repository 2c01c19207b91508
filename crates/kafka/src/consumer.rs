//! Reading exchange records back from a topic as a member of a consumer group (`vxtap
//! consume`): a fleet of analysers scales by partitions, each record goes to one member.
//!
//! Offsets are committed only for records the caller says it has handled
//! ([`ExchangeConsumer::mark`], then [`ExchangeConsumer::commit`] once its output is flushed):
//! after a crash a record may be read again, never skipped (at least once).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::{KafkaOptions, KafkaTarget, ProducerSettings};
use crate::KafkaError;

/// One record as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Its key (the connection).
    pub key: Vec<u8>,
    /// Its value (one exchange's JSON record).
    pub value: Vec<u8>,
    /// Partition it came from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The `vni` header.
    pub vni: Option<u32>,
    /// The `mirror_source` header.
    pub mirror_source: Option<String>,
}

struct Ctx;

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::warn!("librdkafka {fac}: {msg}");
        }
    }

    fn error(&self, error: RdError, reason: &str) {
        tracing::warn!("kafka consumer: {error}: {reason}");
    }
}

impl ConsumerContext for Ctx {}

/// A consumer-group member reading one topic (see the module doc).
pub struct ExchangeConsumer {
    consumer: BaseConsumer<Ctx>,
    topic: String,
    /// Highest handled offset per partition, not committed yet.
    marked: BTreeMap<i32, i64>,
}

impl ExchangeConsumer {
    /// Joins `group` and subscribes to the target's topic. A new group starts at the oldest
    /// record (`auto.offset.reset=earliest`); a known one where it committed last.
    pub fn new(
        target: &KafkaTarget,
        options: &KafkaOptions,
        group: &str,
    ) -> Result<Self, KafkaError> {
        if group.is_empty() {
            return Err(KafkaError::Config(
                "the consumer group must not be empty".into(),
            ));
        }
        let mut c = ProducerSettings::client_config(target, options)?;
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        for (k, v) in &options.librdkafka {
            c.set(k, v);
        }
        let consumer: BaseConsumer<Ctx> = c.create_with_context(Ctx)?;
        consumer.subscribe(&[&target.topic])?;
        Ok(ExchangeConsumer {
            consumer,
            topic: target.topic.clone(),
            marked: BTreeMap::new(),
        })
    }

    /// The next record, waiting at most `timeout`; `Ok(None)` when none came. Errors are the
    /// broker's or the client's (a transient one clears by itself: poll again).
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<ConsumedRecord>, KafkaError> {
        let Some(r) = self.consumer.poll(timeout) else {
            return Ok(None);
        };
        let m = r?;
        let mut vni = None;
        let mut mirror_source = None;
        if let Some(h) = m.headers() {
            for header in h.iter() {
                match (header.key, header.value) {
                    ("vni", Some(v)) => {
                        vni = std::str::from_utf8(v).ok().and_then(|t| t.parse().ok());
                    }
                    ("mirror_source", Some(v)) => {
                        mirror_source = Some(String::from_utf8_lossy(v).into_owned());
                    }
                    _ => {}
                }
            }
        }
        Ok(Some(ConsumedRecord {
            key: m.key().unwrap_or_default().to_vec(),
            value: m.payload().unwrap_or_default().to_vec(),
            partition: m.partition(),
            offset: m.offset(),
            vni,
            mirror_source,
        }))
    }

    /// Marks a record as handled: [`ExchangeConsumer::commit`] commits past it.
    pub fn mark(&mut self, rec: &ConsumedRecord) {
        let e = self.marked.entry(rec.partition).or_insert(rec.offset);
        *e = (*e).max(rec.offset);
    }

    /// Commits the offsets after every marked record (synchronously).
    pub fn commit(&mut self) -> Result<(), KafkaError> {
        if self.marked.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in &self.marked {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o + 1))?;
        }
        self.consumer.commit(&tpl, CommitMode::Sync)?;
        self.marked.clear();
        Ok(())
    }
}
