//! A small vector-style pipeline: exchange transforms, then a sink.

use crate::filter::{ExchangeDecision, ExchangeFilter, ExchangeFilterStats};
use crate::jsonl::JsonLinesWriter;
use crate::redact::Redactor;
use crate::SinkError;
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
}

impl Transform for Redactor {
    fn apply(&mut self, ex: &mut Exchange) -> bool {
        self.redact(ex);
        true
    }
}

impl Sink for JsonLinesWriter {
    fn write(&mut self, ex: &Exchange) -> Result<(), SinkError> {
        JsonLinesWriter::write(self, ex)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        JsonLinesWriter::flush(self)
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

/// HTTP-level filter, then redaction, then a sink.
///
/// The filter runs first: dropped exchanges then cost no redaction, and host/path matching sees
/// the values as sent (nothing of them is output).
#[derive(Debug)]
pub struct ExchangePipeline<S: Sink = JsonLinesWriter> {
    /// The HTTP-level filter.
    pub filter: ExchangeFilter,
    /// The redactor ([`Redactor::disabled`] for `--no-redact`).
    pub redactor: Redactor,
    /// The output.
    pub sink: S,
    /// Counts of the filter's decisions.
    pub filter_stats: ExchangeFilterStats,
    /// Exchanges the redactor changed.
    pub redacted: u64,
}

impl<S: Sink> ExchangePipeline<S> {
    /// Assembles a pipeline.
    pub fn new(filter: ExchangeFilter, redactor: Redactor, sink: S) -> Self {
        ExchangePipeline {
            filter,
            redactor,
            sink,
            filter_stats: ExchangeFilterStats::default(),
            redacted: 0,
        }
    }

    /// Filters, redacts and writes one exchange; `Ok` also when the filter dropped it.
    pub fn handle(&mut self, mut ex: Exchange) -> Result<(), SinkError> {
        if let ExchangeDecision::Drop(_) = self.filter.check(&ex, &mut self.filter_stats) {
            return Ok(());
        }
        if self.redactor.redact(&mut ex) {
            self.redacted += 1;
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
        let mut p = ExchangePipeline::new(filter, redactor, Vec::new());
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
        assert_eq!(p.filter_stats.path, 1);
        assert_eq!(p.filter_stats.kept, 1);
        assert_eq!(p.redacted, 1);
        let out = serde_json::to_string(&p.sink).unwrap();
        assert!(!out.contains("SECRET") && out.contains("\"redacted\""));
    }
}
