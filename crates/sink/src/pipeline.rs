//! The exchange pipeline, shaped like vector's: sources -> transforms -> sinks.
//!
//! The sources are the capture readers and the HTTP layer (they make [`Exchange`]s); each
//! step after them is a small component behind one trait: a [`Transform`] modifies or drops an
//! exchange, a [`Sink`] writes it. [`Transforms`] is the one place that decides the chain
//! (filter, then redaction) for `replay` and `listen` alike; sampling happens before
//! reassembly (the packet filter keeps whole flows by hash, which is far cheaper than
//! sampling exchanges) and the writers mark records with the rate. [`ExchangePipeline`] joins
//! a transform to a sink; a new sink (Kafka, shadow traffic) implements [`Sink`] (and
//! [`EncodedSink`] to take records the workers encoded in parallel) and plugs in without
//! touching the threads that feed it.

use crate::filter::{ExchangeDecision, ExchangeFilter, ExchangeFilterStats};
use crate::jsonl::{JsonLinesWriter, LineEncoder};
use crate::redact::Redactor;
use crate::SinkError;
use std::time::SystemTime;
use vxtap_http::Exchange;

/// A step between the HTTP layer and a sink: may modify the exchange or drop it.
pub trait Transform {
    /// Modifies `ex` in place; returns false to drop it.
    fn apply(&mut self, ex: &mut Exchange) -> bool;
}

/// Where exchanges end up.
pub trait Sink {
    /// Writes one exchange (possibly buffered).
    fn write(&mut self, ex: &Exchange) -> Result<(), SinkError>;
    /// Pushes buffered output out.
    fn flush(&mut self) -> Result<(), SinkError>;
    /// Housekeeping on an idle tick (time-based rotation, reconnects); nothing by default.
    fn tick(&mut self, _now: SystemTime) -> Result<(), SinkError> {
        Ok(())
    }
    /// Reopens the output (SIGHUP after log rotation); nothing by default.
    fn reopen(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Set once the output was given up for good (its reader went away: `BrokenPipe`, or an
    /// error that left it unusable); every later record counts as failed. `None` by default.
    fn stopped(&self) -> Option<std::io::ErrorKind> {
        None
    }
}

/// Turns an exchange into one self-contained record of bytes, off the sink's thread: workers
/// encode in parallel and the thread that owns the sink only moves bytes.
pub trait Encode: Clone + Send + 'static {
    /// Appends the record of `ex` to `out`; on error `out` is left as it was.
    fn encode(&self, ex: &Exchange, out: &mut Vec<u8>) -> Result<(), SinkError>;
}

/// A sink that takes records its own [`Encode`] made elsewhere (the sharded `replay` merges
/// the workers' encoded records in input order and hands them over one by one).
pub trait EncodedSink: Sink {
    /// The encoder whose records [`EncodedSink::write_encoded`] accepts.
    type Encoder: Encode;
    /// An encoder for the workers.
    fn encoder(&self) -> Self::Encoder;
    /// Writes one record made by [`EncodedSink::encoder`].
    fn write_encoded(&mut self, record: &[u8], now: SystemTime) -> Result<(), SinkError>;
    /// Counts `n` records that failed to encode before they reached the sink.
    fn add_errors(&mut self, n: u64);
}

impl Sink for JsonLinesWriter {
    fn write(&mut self, ex: &Exchange) -> Result<(), SinkError> {
        JsonLinesWriter::write(self, ex)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        JsonLinesWriter::flush(self)
    }
    fn tick(&mut self, now: SystemTime) -> Result<(), SinkError> {
        JsonLinesWriter::tick(self, now)
    }
    fn reopen(&mut self) -> Result<(), SinkError> {
        JsonLinesWriter::reopen(self)
    }
    fn stopped(&self) -> Option<std::io::ErrorKind> {
        JsonLinesWriter::stopped(self)
    }
}

impl Encode for LineEncoder {
    fn encode(&self, ex: &Exchange, out: &mut Vec<u8>) -> Result<(), SinkError> {
        self.encode_exchange(ex, out)
    }
}

impl EncodedSink for JsonLinesWriter {
    type Encoder = LineEncoder;
    fn encoder(&self) -> LineEncoder {
        JsonLinesWriter::encoder(self).clone()
    }
    fn write_encoded(&mut self, record: &[u8], now: SystemTime) -> Result<(), SinkError> {
        self.write_line_at(record, now)
    }
    fn add_errors(&mut self, n: u64) {
        JsonLinesWriter::add_errors(self, n);
    }
}

/// Collects exchanges in memory (tests, and callers that post-process).
impl Sink for Vec<Exchange> {
    fn write(&mut self, ex: &Exchange) -> Result<(), SinkError> {
        self.push(ex.clone());
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The HTTP-level filter as a transform, counting its decisions.
#[derive(Clone, Debug, Default)]
pub struct FilterStage {
    filter: ExchangeFilter,
    /// Counts of the filter's decisions.
    pub stats: ExchangeFilterStats,
}

impl FilterStage {
    /// A stage applying `filter`.
    pub fn new(filter: ExchangeFilter) -> Self {
        FilterStage {
            filter,
            stats: ExchangeFilterStats::default(),
        }
    }
}

impl Transform for FilterStage {
    fn apply(&mut self, ex: &mut Exchange) -> bool {
        !matches!(
            self.filter.check(ex, &mut self.stats),
            ExchangeDecision::Drop(_)
        )
    }
}

/// Counters of the redaction stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedactStats {
    /// Exchanges in which something was redacted.
    pub redacted: u64,
    /// Bodies redaction could not inspect and removed (`--uninspectable-bodies drop`).
    pub uninspectable_dropped: u64,
    /// Bodies redaction could not inspect and kept (`--uninspectable-bodies keep`).
    pub uninspectable_kept: u64,
}

impl RedactStats {
    /// Adds another stage's counts.
    pub fn merge(&mut self, o: &RedactStats) {
        self.redacted += o.redacted;
        self.uninspectable_dropped += o.uninspectable_dropped;
        self.uninspectable_kept += o.uninspectable_kept;
    }
}

/// Redaction as a transform (never drops an exchange; may drop a body it cannot inspect).
#[derive(Clone, Debug)]
pub struct RedactStage {
    redactor: Redactor,
    /// What it did.
    pub stats: RedactStats,
}

impl RedactStage {
    /// A stage applying `redactor` ([`Redactor::disabled`] for `--no-redact`).
    pub fn new(redactor: Redactor) -> Self {
        RedactStage {
            redactor,
            stats: RedactStats::default(),
        }
    }
}

impl Transform for RedactStage {
    fn apply(&mut self, ex: &mut Exchange) -> bool {
        let r = self.redactor.redact_report(ex);
        self.stats.redacted += u64::from(r.redacted);
        self.stats.uninspectable_dropped += u64::from(r.dropped);
        self.stats.uninspectable_kept += u64::from(r.kept);
        true
    }
}

/// Counters of a [`Transforms`] chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransformStats {
    /// The filter's decisions.
    pub filter: ExchangeFilterStats,
    /// What redaction did.
    pub redact: RedactStats,
}

impl TransformStats {
    /// Adds another chain's counts.
    pub fn merge(&mut self, o: &TransformStats) {
        self.filter.merge(&o.filter);
        self.redact.merge(&o.redact);
    }
}

/// The transform chain every exchange goes through: the HTTP-level filter, then redaction.
///
/// The filter runs first: dropped exchanges then cost no redaction, and host/path matching sees
/// the values as sent (nothing of them is output). Clones share the redaction key: build one
/// and clone it per worker, so equal secrets give equal tokens on every worker.
#[derive(Clone, Debug)]
pub struct Transforms {
    filter: FilterStage,
    redact: RedactStage,
}

impl Transforms {
    /// The chain: `filter`, then `redactor`.
    pub fn new(filter: ExchangeFilter, redactor: Redactor) -> Self {
        Transforms {
            filter: FilterStage::new(filter),
            redact: RedactStage::new(redactor),
        }
    }

    /// A chain that keeps and changes nothing (the output side when workers already ran the
    /// real chain).
    pub fn passthrough() -> Self {
        Self::new(ExchangeFilter::default(), Redactor::disabled())
    }

    /// The counters so far.
    pub fn stats(&self) -> TransformStats {
        TransformStats {
            filter: self.filter.stats,
            redact: self.redact.stats,
        }
    }
}

impl Transform for Transforms {
    fn apply(&mut self, ex: &mut Exchange) -> bool {
        self.filter.apply(ex) && self.redact.apply(ex)
    }
}

/// A transform, then a sink.
#[derive(Debug)]
pub struct ExchangePipeline<T: Transform = Transforms, S: Sink = JsonLinesWriter> {
    /// What runs on each exchange before it is written.
    pub transforms: T,
    /// The output.
    pub sink: S,
}

impl<T: Transform, S: Sink> ExchangePipeline<T, S> {
    /// Assembles a pipeline.
    pub fn new(transforms: T, sink: S) -> Self {
        ExchangePipeline { transforms, sink }
    }

    /// Transforms and writes one exchange; `Ok` also when a transform dropped it.
    pub fn handle(&mut self, mut ex: Exchange) -> Result<(), SinkError> {
        if !self.transforms.apply(&mut ex) {
            return Ok(());
        }
        self.sink.write(&ex)
    }

    /// Flushes the sink.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.sink.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ExchangeFilterConfig;
    use crate::redact::RedactConfig;
    use crate::testutil::{exchange, request, response};

    #[test]
    fn filters_then_redacts_then_writes() {
        let filter = ExchangeFilter::new(&ExchangeFilterConfig {
            path_prefixes: vec!["/api".into()],
            ..Default::default()
        })
        .unwrap();
        let redactor = Redactor::with_key(&RedactConfig::default(), b"k").unwrap();
        let mut p = ExchangePipeline::new(Transforms::new(filter, redactor), Vec::new());
        let mk = |uri: &str| {
            exchange(
                Some(request(
                    "GET",
                    uri,
                    &[("Authorization", "Bearer SECRET")],
                    None,
                )),
                Some(response(200, &[], None)),
            )
        };
        p.handle(mk("/api/x")).unwrap();
        p.handle(mk("/other")).unwrap();
        p.flush().unwrap();
        assert_eq!(p.sink.len(), 1);
        let stats = p.transforms.stats();
        assert_eq!(stats.filter.path, 1);
        assert_eq!(stats.filter.kept, 1);
        assert_eq!(stats.redact.redacted, 1);
        let ex = &p.sink[0];
        let out = serde_json::to_string(&crate::Record(ex)).unwrap();
        assert!(!out.contains("SECRET") && out.contains("\"redacted\""));
    }
}
