//! `vxtap consume kafka://BROKER/TOPIC --group G`: reads exchange records back from Kafka as a
//! member of a consumer group and feeds them to the same stages as a capture's exchanges: the
//! HTTP-level filters, redaction, and the output (JSON lines, or another topic). Records are
//! parsed into the typed [`vxtap_http::Exchange`] (`vxtap_sink::read`), so whatever consumes
//! exchanges (shadow traffic, comparison, reports) plugs in here as it does after a capture.
//!
//! Offsets are committed after the output was flushed, once a second and at the end: a crash
//! reads some records again, never skips one. A record that is not an exchange is counted
//! and skipped (`rejected`), never fatal: every input is hostile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vxtap_kafka::{ExchangeConsumer, KafkaTarget};
use vxtap_sink::{ExchangePipeline, JsonLinesConfig, Transforms};

use crate::cli::{ConsumeArgs, DecodeOpts, PipelineOpts};
use crate::config::{FileConfig, Settings};
use crate::output::{OutputConfig, OutputSink};
use crate::pipeline::{output_pipeline, Totals};

/// How often the output is flushed and the offsets committed.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// What a consume run did.
#[derive(Debug, Default)]
pub struct ConsumeReport {
    /// Records read from the topic.
    pub read: u64,
    /// Records that were not exchange records (skipped).
    pub rejected: u64,
    /// Errors the consumer reported (transient ones clear by themselves).
    pub consumer_errors: u64,
    /// The output's and transforms' counters.
    pub totals: Totals,
    /// The output failed (records may be missing).
    pub output_error: Option<String>,
}

/// Runs `vxtap consume` until a signal, `--idle-exit` or `--max-records`.
pub fn consume(args: &ConsumeArgs) -> Result<ConsumeReport> {
    let file = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    // Only the HTTP-level filters and redaction apply; the capture options are defaults.
    let decode = DecodeOpts {
        vxlan_ports: vec![vxtap_wire::VXLAN_PORT],
        vxlan_gpe_ports: vec![vxtap_wire::VXLAN_GPE_PORT],
        geneve_ports: vec![vxtap_wire::GENEVE_PORT],
        gre_udp_ports: vec![vxtap_wire::GRE_UDP_PORT],
        max_tunnel_depth: 4,
        validate_checksums: false,
    };
    let pipeline = PipelineOpts {
        threads: Some(1),
        flow_key: None,
        max_memory: None,
        max_flows: None,
        idle_timeout: None,
        hole_timeout: None,
        ack_grace: None,
        max_body_bytes: None,
        max_pending_bytes: None,
        max_pending_bytes_total: None,
        decode_content: false,
        grpc_decode: false,
    };
    let settings = Settings::resolve(&file, &decode, &pipeline, &args.privacy, 1)?;
    let target = KafkaTarget::parse(&args.source)?;
    let kafka_options = match &file.output {
        Some(crate::output::OutputValue::Table(t)) => t.kafka.clone().unwrap_or_default(),
        _ => Default::default(),
    };
    let sink = OutputConfig::resolve(args.output.as_ref(), None, None, JsonLinesConfig::default())?;
    let sink = match sink {
        // The output topic takes the same client options as the input.
        OutputConfig::Kafka(k) => OutputConfig::Kafka(Box::new(
            vxtap_kafka::ProducerSettings::new(k.target.clone(), kafka_options.clone(), None)?,
        )),
        other => other,
    };
    let mut out: ExchangePipeline<Transforms, OutputSink> = output_pipeline(&settings, sink)?;
    // The topic waits for a slow output topic (at least once: nothing is committed before).
    out.sink.block_when_full();
    let mut consumer = ExchangeConsumer::new(&target, &kafka_options, &args.group)
        .with_context(|| target.to_string())?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("signal")?;
    }
    let mut report = ConsumeReport::default();
    let mut last_record = Instant::now();
    let mut next_commit = Instant::now() + COMMIT_EVERY;
    let mut errors = crate::health::RateLimitedLog::new(crate::health::OUTPUT_ERROR_LOG_EVERY);
    while !stop.load(Ordering::Relaxed) {
        if args.max_records.is_some_and(|m| report.read >= m) {
            break;
        }
        if args.idle_exit.is_some_and(|d| last_record.elapsed() >= d) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Ok(Some(rec)) => {
                report.read += 1;
                last_record = Instant::now();
                match vxtap_sink::parse_record(&rec.value, report.read) {
                    Ok(ex) => {
                        if let Err(e) = out.handle(ex) {
                            errors.error("output failing", &e);
                            report.output_error.get_or_insert(e.to_string());
                        }
                    }
                    Err(e) => {
                        report.rejected += 1;
                        errors.error("not an exchange record", &e);
                    }
                }
                consumer.mark(&rec);
            }
            Ok(None) => {}
            Err(e) => {
                report.consumer_errors += 1;
                errors.error("kafka consumer", &e);
            }
        }
        if Instant::now() >= next_commit {
            next_commit = Instant::now() + COMMIT_EVERY;
            commit(&mut out, &mut consumer, &mut report);
        }
    }
    if let Some(f) = out.sink.finish_default() {
        report.totals.kafka_finish = Some(f);
    }
    commit(&mut out, &mut consumer, &mut report);
    report.totals.add_output(&out);
    Ok(report)
}

/// Flushes the output, then commits what it took (only after a successful flush).
fn commit(
    out: &mut ExchangePipeline<Transforms, OutputSink>,
    consumer: &mut ExchangeConsumer,
    report: &mut ConsumeReport,
) {
    match out.flush() {
        Ok(()) => {
            if let Err(e) = consumer.commit() {
                report.consumer_errors += 1;
                tracing::warn!("kafka consumer: commit: {e}");
            }
        }
        Err(e) => {
            report.output_error.get_or_insert(e.to_string());
        }
    }
}
