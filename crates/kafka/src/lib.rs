//! Kafka for vxtap: the producer sink behind `--output kafka://BROKER[,BROKER...]/TOPIC`, its
//! bounded on-disk spool, and the consumer behind `vxtap consume`.
//!
//! Each exchange is one message: key = its connection (so a connection's exchanges share a
//! partition and keep their order), value = exactly the JSON line of the file output without
//! its newline, headers `vni` and `mirror_source`. The client is librdkafka (through the
//! `rdkafka` crate, built from source without cmake), not a hand-written protocol: the wire
//! protocol, batching, compression, idempotence, TLS and SASL/SCRAM are its job.
//!
//! - [`frame`]: key, headers and value as one buffer, made in parallel by the workers.
//! - [`sink`]: [`KafkaSink`], a [`vxtap_sink::Sink`] and [`vxtap_sink::EncodedSink`]; it never
//!   blocks the thread that feeds it (a full queue drops and counts, or spools).
//! - [`spool`]: the bounded on-disk queue of what could not be handed to the broker.
//! - [`stats`]: librdkafka's statistics and the sink's counters, as one snapshot for metrics.
//! - [`consumer`]: a consumer-group reader of exchange records.
//! - [`config`]: the `kafka://` target and the `[output.kafka]` options.

#![warn(missing_docs)]

pub mod config;
pub mod consumer;
pub mod frame;
pub mod sink;
pub mod spool;
pub mod stats;

pub use config::{KafkaOptions, KafkaTarget, ProducerSettings};
pub use consumer::{ConsumedRecord, ExchangeConsumer};
pub use frame::{Frame, KafkaEncoder};
pub use sink::{FinishReport, KafkaSink};
pub use spool::{Spool, SpoolConfig, SpoolStats};
pub use stats::{BrokerSnapshot, KafkaStats};

/// What can go wrong setting Kafka up (delivery problems are counted, not returned).
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The `kafka://` target is malformed.
    #[error("kafka target {0}")]
    Target(String),
    /// A setting is invalid or a secret is missing.
    #[error("kafka configuration: {0}")]
    Config(String),
    /// librdkafka refused the configuration or could not start the client.
    #[error("kafka client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// The spool could not be opened.
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
}

/// Locks a mutex whose data stays usable if a holder panicked (counters only).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
