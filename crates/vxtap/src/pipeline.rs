//! The stages wired together: a front (decapsulation + packet filters) on the reading or
//! receiving thread, workers that own a shard of the flow table and the HTTP state, and the
//! exchange output (filters, redaction, JSON lines).
//!
//! With one worker everything runs inline on the reading thread (no copies, no channels); with
//! N the front copies each kept segment into a batch for the worker its symmetric flow hash
//! picks, so both directions of a connection, and both mirrored copies of it, meet in one shard.

use std::time::Duration;

use anyhow::Result;
use vxtap_flow::{FlowConfig, FlowStats, FlowTable};
use vxtap_http::{Exchange, HttpConfig, HttpHandler, HttpStats};
use vxtap_sink::{
    ExchangeFilter, ExchangePipeline, Redactor, TransformStats, Transforms, WriterStats,
};
use vxtap_wire::{DecapStats, Decapsulator, Decoded, LinkType, Segment};

use crate::config::Settings;
use crate::metrics::MetricSet;
use crate::output::{OutputConfig, OutputSink};
use crate::packet_filter::{FilterStats, PacketFilter};

/// Packet time between timer runs of a flow table.
const TICK_NS: u64 = 1_000_000_000;

/// Decapsulation and packet-level filtering: everything that happens before sharding.
pub struct Front {
    decap: Decapsulator,
    filter: PacketFilter,
    /// Segments kept or dropped by the packet filter, by reason.
    pub filter_stats: FilterStats,
    /// Frames whose pcap link type vxtap does not decode.
    pub unsupported_link: u64,
}

impl Front {
    /// A front for `settings`.
    pub fn new(settings: &Settings) -> Result<Self> {
        Ok(Front {
            decap: Decapsulator::new(settings.decap.clone()),
            filter: PacketFilter::new(&settings.packet_filter)?,
            filter_stats: FilterStats::default(),
            unsupported_link: 0,
        })
    }

    /// Decodes one captured frame and calls `keep` with its TCP segment when the filters keep it.
    #[inline]
    pub fn handle(
        &mut self,
        linktype: u32,
        ts_ns: u64,
        frame: &[u8],
        keep: impl FnOnce(&Segment<'_>),
    ) {
        let Some(link) = LinkType::from_pcap(linktype) else {
            self.unsupported_link += 1;
            return;
        };
        if let Decoded::Segment { segment, .. } = self.decap.decode(link, ts_ns, frame) {
            if self
                .filter
                .check(&segment, &mut self.filter_stats)
                .is_keep()
            {
                keep(&segment);
            }
        }
    }

    /// The decapsulation counters.
    pub fn decap_stats(&self) -> &DecapStats {
        self.decap.stats()
    }

    /// The decapsulator, for callers that need the decoded frame itself.
    pub fn decapsulator(&mut self) -> &mut Decapsulator {
        &mut self.decap
    }
}

/// One shard: a flow table and the HTTP state of its connections.
pub struct Worker {
    flows: FlowTable<HttpHandler>,
    http: HttpHandler,
    next_tick_ns: u64,
}

/// A worker's counters and gauges at one moment.
#[derive(Clone, Debug, Default)]
pub struct WorkerStats {
    /// Reassembly counters.
    pub flow: FlowStats,
    /// HTTP counters.
    pub http: HttpStats,
    /// Connections tracked now.
    pub active_flows: u64,
    /// Bytes of flow state and buffers now.
    pub memory_in_use: u64,
}

impl WorkerStats {
    /// Adds another worker's numbers.
    pub fn merge(&mut self, o: &WorkerStats) {
        self.flow.merge(&o.flow);
        self.http.merge(&o.http);
        self.active_flows += o.active_flows;
        self.memory_in_use += o.memory_in_use;
    }
}

impl Worker {
    /// A worker with its share of the limits.
    pub fn new(flow: FlowConfig, http: HttpConfig) -> Result<Self> {
        Ok(Worker {
            flows: FlowTable::new(flow)?,
            http: HttpHandler::new(http),
            next_tick_ns: 0,
        })
    }

    /// Feeds one segment; runs the flow table's timers when packet time moved on.
    #[inline]
    pub fn process(&mut self, seg: &Segment<'_>) {
        self.flows.process(seg, &mut self.http);
        if seg.ts_ns >= self.next_tick_ns {
            self.flows.advance_time(seg.ts_ns, &mut self.http);
            self.next_tick_ns = seg.ts_ns.saturating_add(TICK_NS);
        }
    }

    /// Runs timers up to `now_ns` (live mode, when no packet arrives).
    pub fn advance_time(&mut self, now_ns: u64) {
        self.flows.advance_time(now_ns, &mut self.http);
    }

    /// Ends every connection (end of input or shutdown), emitting what is pending.
    pub fn finish(&mut self) {
        self.flows.finish(&mut self.http);
    }

    /// Ends at most `n` connections; true once all are ended (see `FlowTable::finish_some`).
    /// Drain the exchanges between calls to keep the end of the input within the budget.
    pub fn finish_some(&mut self, n: usize) -> bool {
        self.flows.finish_some(n, &mut self.http)
    }

    /// Exchanges ready to be written.
    pub fn ready(&self) -> usize {
        self.http.ready()
    }

    /// Moves the ready exchanges into `out`.
    pub fn drain_into(&mut self, out: &mut Vec<Exchange>) {
        self.http.drain_into(out);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> WorkerStats {
        WorkerStats {
            flow: *self.flows.stats(),
            http: self.http.stats().clone(),
            active_flows: self.flows.active_flows() as u64,
            memory_in_use: self.flows.memory_in_use() as u64,
        }
    }
}

/// The transform chain `settings` asks for (see [`Transforms`]: filter, then redaction), for
/// `replay` and `listen` alike. Build it once and clone it per worker: clones share the
/// redaction key, so equal secrets give equal tokens on every worker.
pub fn transforms(settings: &Settings) -> Result<Transforms> {
    let filter = ExchangeFilter::new(&settings.exchange_filter)?;
    Ok(Transforms::new(filter, redactor(settings)?))
}

/// The redactor `settings` ask for (the shadow records use the same one as the exchange
/// records: pass a clone of this so equal secrets give equal tokens in both).
pub fn redactor(settings: &Settings) -> Result<Redactor> {
    Ok(if settings.redact.enabled {
        Redactor::new(&settings.redact)?
            // Content-coded bodies are decoded for inspection under the same bound as
            // `--decode-content`, whatever that flag says.
            .with_decode_bound(settings.http.max_decoded_bytes)
    } else {
        Redactor::disabled()
    })
}

fn writer(settings: &Settings, sink: OutputConfig) -> Result<OutputSink> {
    OutputSink::open(sink, settings.packet_filter.sample)
}

/// The output stage when the workers already ran [`transforms`]: it only writes.
pub fn writer_only(
    settings: &Settings,
    sink: OutputConfig,
) -> Result<ExchangePipeline<Transforms, OutputSink>> {
    Ok(ExchangePipeline::new(
        Transforms::passthrough(),
        writer(settings, sink)?,
    ))
}

/// Builds the exchange output stage: the whole chain, then the writer.
pub fn output_pipeline(
    settings: &Settings,
    sink: OutputConfig,
) -> Result<ExchangePipeline<Transforms, OutputSink>> {
    Ok(ExchangePipeline::new(
        transforms(settings)?,
        writer(settings, sink)?,
    ))
}

/// [`output_pipeline`] with a given redactor (shared with the shadow records).
pub fn output_pipeline_with(
    settings: &Settings,
    sink: OutputConfig,
    redactor: Redactor,
) -> Result<ExchangePipeline<Transforms, OutputSink>> {
    let filter = ExchangeFilter::new(&settings.exchange_filter)?;
    Ok(ExchangePipeline::new(
        Transforms::new(filter, redactor),
        writer(settings, sink)?,
    ))
}

/// Every counter of a run, merged over the stages.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Capture files read.
    pub files: u64,
    /// Frames read from the inputs.
    pub frames: u64,
    /// Frames whose link type is not decoded.
    pub unsupported_link: u64,
    /// Decapsulation.
    pub decap: DecapStats,
    /// Packet filter and sampling.
    pub filter: FilterStats,
    /// Workers (reassembly and HTTP).
    pub workers: WorkerStats,
    /// HTTP-level filter and redaction.
    pub transforms: TransformStats,
    /// The output writer.
    pub writer: WriterStats,
    /// Records given up at shutdown because the drain deadline passed with the output still
    /// blocked (`listen`); `None` when the drain finished.
    pub abandoned_at_shutdown: Option<u64>,
    /// The Kafka output's counters, when the output is Kafka.
    pub kafka: Option<vxtap_kafka::KafkaStats>,
    /// What the Kafka output's end of run left undelivered.
    pub kafka_finish: Option<vxtap_kafka::FinishReport>,
}

impl Totals {
    /// Adds the front's counters.
    pub fn add_front(&mut self, front: &Front) {
        self.decap.merge(front.decap_stats());
        self.filter.merge(&front.filter_stats);
        self.unsupported_link += front.unsupported_link;
    }

    /// Adds the counters of transforms run in a worker.
    pub fn add_transforms(&mut self, t: &Transforms) {
        self.transforms.merge(&t.stats());
    }

    /// Adds the output stage's counters.
    pub fn add_output(&mut self, out: &ExchangePipeline<Transforms, OutputSink>) {
        self.transforms.merge(&out.transforms.stats());
        let w = out.sink.stats();
        self.writer = w;
        self.kafka = out.sink.kafka_stats();
    }

    /// Exports everything into Prometheus families.
    pub fn export(&self, m: &mut MetricSet) {
        if let Some(k) = &self.kafka {
            crate::output::export_kafka(k, m);
        }
        for c in self.decap.counters() {
            match c.label {
                Some(l) => m.counter(c.name, "Decapsulation counter.", &[l], c.value),
                None => m.counter(c.name, "Decapsulation counter.", &[], c.value),
            }
        }
        m.counter(
            "vxtap_capture_unsupported_link_total",
            "Frames whose link type is not decoded.",
            &[],
            self.unsupported_link,
        );
        for (reason, n) in self.filter.iter() {
            m.counter(
                "vxtap_filter_dropped_total",
                "Segments dropped by packet filters and sampling, by reason.",
                &[("reason", reason)],
                n,
            );
        }
        m.counter(
            "vxtap_filter_kept_total",
            "Segments kept by packet filters and sampling.",
            &[],
            self.filter.kept,
        );
        for (name, v) in self.workers.flow.to_pairs() {
            m.counter(
                flow_metric_name(name),
                "Reassembly counter (see README: metrics).",
                &[],
                v,
            );
        }
        let h = &self.workers.http;
        for o in vxtap_http::Outcome::ALL {
            m.counter(
                "vxtap_http_exchanges_total",
                "Exchanges emitted, by outcome.",
                &[("outcome", o.as_str())],
                h.exchanges_by(o),
            );
        }
        for f in vxtap_http::Flag::ALL
            .into_iter()
            .filter(|f| !f.set_after_http())
        {
            m.counter(
                "vxtap_http_exchange_flags_total",
                "Exchanges emitted carrying each flag.",
                &[("flag", f.as_str())],
                h.flag_count(f),
            );
        }
        for p in vxtap_http::ParseError::ALL {
            m.counter(
                "vxtap_http_parse_errors_total",
                "HTTP parse errors, by kind.",
                &[("kind", p.as_str())],
                h.parse_error_count(p),
            );
        }
        for (name, v) in [
            ("vxtap_http_requests_total", h.requests),
            ("vxtap_http_responses_total", h.responses),
            ("vxtap_http_gap_bytes_total", h.gap_bytes),
            ("vxtap_http_resyncs_total", h.resyncs),
            // Responses placed by TCP acknowledgements after a loss left order ambiguous.
            ("vxtap_http_ack_pairings_total", h.ack_pairings),
            // Responses after a loss paired once the end-of-connection count proved them.
            ("vxtap_http_count_pairings_total", h.count_pairings),
            // Pending requests whose records the pending budget dropped (placeholders kept).
            (
                "vxtap_http_request_records_dropped_total",
                h.request_records_dropped,
            ),
            (
                "vxtap_http_upgrade_skipped_bytes_total",
                h.upgrade_skipped_bytes,
            ),
        ] {
            m.counter(name, "HTTP counter.", &[], v);
        }
        export_h2(h, m);
        for (reason, n) in self.transforms.filter.iter() {
            m.counter(
                "vxtap_output_filtered_total",
                "Exchanges dropped by HTTP-level filters, by reason.",
                &[("reason", reason)],
                n,
            );
        }
        m.counter(
            "vxtap_output_redacted_total",
            "Exchanges in which something was redacted.",
            &[],
            self.transforms.redact.redacted,
        );
        for (action, n) in [
            ("dropped", self.transforms.redact.uninspectable_dropped),
            ("kept", self.transforms.redact.uninspectable_kept),
        ] {
            m.counter(
                "vxtap_output_uninspectable_bodies_total",
                "Bodies redaction could not inspect (undecodable content coding, or decoded \
                 content past the decode bound), by what --uninspectable-bodies did with them.",
                &[("action", action)],
                n,
            );
        }
        m.counter(
            "vxtap_output_records_total",
            "Exchange records written (their whole line reached the output).",
            &[],
            self.writer.records,
        );
        m.counter(
            "vxtap_output_failed_records_total",
            "Exchange records dropped because the output failed (never written).",
            &[],
            self.writer.failed,
        );
        m.counter(
            "vxtap_output_errors_total",
            "Output write errors.",
            &[],
            self.writer.errors,
        );
        m.gauge(
            "vxtap_flow_active",
            "Connections tracked now.",
            &[],
            self.workers.active_flows as i64,
        );
        m.gauge(
            "vxtap_flow_memory_bytes",
            "Bytes of flow state and reassembly buffers now.",
            &[],
            self.workers.memory_in_use as i64,
        );
    }

    /// The end-of-run summary printed on stderr: what went in, what came out, and every
    /// non-zero reason something was dropped, gapped or flagged.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let h = &self.workers.http;
        let f = &self.workers.flow;
        let _ = writeln!(
            s,
            "vxtap: {} frames, {} TCP segments, {} connections, {} exchanges ({} complete, {} no_response, {} no_request), {} written",
            self.frames,
            f.segments,
            f.flows_created,
            h.exchanges_total(),
            h.exchanges_by(vxtap_http::Outcome::Complete),
            h.exchanges_by(vxtap_http::Outcome::NoResponse),
            h.exchanges_by(vxtap_http::Outcome::NoRequest),
            self.writer.records,
        );
        let mut line = |title: &str, items: Vec<(String, u64)>| {
            let items: Vec<String> = items
                .into_iter()
                .filter(|(_, v)| *v > 0)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if !items.is_empty() {
                let _ = writeln!(s, "  {title}: {}", items.join(" "));
            }
        };
        line(
            "flags",
            vxtap_http::Flag::ALL
                .iter()
                .filter(|fl| !fl.set_after_http())
                .map(|fl| (fl.as_str().to_string(), h.flag_count(*fl)))
                .collect(),
        );
        let mut rejected: Vec<(String, u64)> = self
            .decap
            .counters()
            .into_iter()
            .filter(|c| c.name == "vxtap_decap_rejected_total")
            .filter_map(|c| c.label.map(|(_, v)| (v.to_string(), c.value)))
            .collect();
        rejected.push(("unsupported_link_type".into(), self.unsupported_link));
        line("rejected", rejected);
        line(
            "inner",
            self.decap
                .counters()
                .into_iter()
                .filter(|c| c.name == "vxtap_decap_inner_packets_total")
                .filter_map(|c| c.label.map(|(_, v)| (v.to_string(), c.value)))
                .collect(),
        );
        line(
            "filtered",
            self.filter
                .iter()
                .map(|(k, v)| (k.to_string(), v))
                .chain(
                    self.transforms
                        .filter
                        .iter()
                        .map(|(k, v)| (k.to_string(), v)),
                )
                .collect(),
        );
        line(
            "reassembly",
            f.to_pairs()
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("gap")
                        || k.starts_with("evicted")
                        || k.starts_with("closed_idle")
                        || *k == "retransmitted_segments"
                        || *k == "ooo_segments"
                        || *k == "overlap_conflict_bytes"
                        || *k == "out_of_window"
                        || *k == "flows_midstream"
                })
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        );
        line(
            "http_errors",
            vxtap_http::ParseError::ALL
                .iter()
                .map(|p| (p.as_str().to_string(), h.parse_error_count(*p)))
                .collect(),
        );
        line(
            "output",
            vec![
                ("redacted".into(), self.transforms.redact.redacted),
                (
                    "uninspectable_dropped".into(),
                    self.transforms.redact.uninspectable_dropped,
                ),
                (
                    "uninspectable_kept".into(),
                    self.transforms.redact.uninspectable_kept,
                ),
                ("write_errors".into(), self.writer.errors),
                ("failed_records".into(), self.writer.failed),
                (
                    "not_written_at_shutdown".into(),
                    self.abandoned_at_shutdown.unwrap_or(0),
                ),
            ],
        );
        if let Some(k) = &self.kafka {
            use vxtap_kafka::stats::{DropReason, SpoolReason};
            let mut items: Vec<(String, u64)> = vec![
                ("produced".into(), k.produced),
                ("delivered".into(), k.delivered),
            ];
            items.extend(
                DropReason::ALL
                    .iter()
                    .map(|r| (format!("dropped_{}", r.as_str()), k.dropped_by(*r))),
            );
            items.extend(
                SpoolReason::ALL
                    .iter()
                    .map(|r| (format!("spooled_{}", r.as_str()), k.spooled_by(*r))),
            );
            items.extend(
                k.delivery_errors
                    .iter()
                    .map(|(e, n)| (format!("error_{e}"), *n)),
            );
            if let Some(f) = &self.kafka_finish {
                items.push(("undelivered_at_shutdown".into(), f.undelivered));
                items.push(("spool_waiting".into(), f.spool_waiting));
            }
            line("kafka", items);
        }
        s
    }
}

/// Prometheus name of a flow-table counter: `vxtap_flow_<name>_total`. The names come from a
/// fixed list, so they are leaked once per distinct name (bounded) to get `&'static str`.
fn flow_metric_name(name: &'static str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let map = NAMES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = match map.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    map.entry(name)
        .or_insert_with(|| Box::leak(format!("vxtap_flow_{name}_total").into_boxed_str()))
}

/// How long a worker or receive thread may be silent before `/readyz` reports it stalled.
pub const MAX_SILENCE: Duration = Duration::from_secs(5);

/// The HTTP/2 and gRPC counters (issue 15): exchanges by version, gRPC statuses, HPACK failures
/// and frame errors by kind, and the HTTP/2 reader's totals.
fn export_h2(h: &vxtap_http::HttpStats, m: &mut MetricSet) {
    let all: u64 = vxtap_http::Outcome::ALL
        .into_iter()
        .map(|o| h.exchanges_by(o))
        .sum();
    for (version, n) in [
        ("HTTP/1", all.saturating_sub(h.exchanges_h2)),
        ("HTTP/2", h.exchanges_h2),
    ] {
        m.counter(
            "vxtap_http_exchanges_by_version_total",
            "Exchanges emitted, by protocol version.",
            &[("version", version)],
            n,
        );
    }
    for (code, n) in h.grpc_status.iter().enumerate() {
        let name = vxtap_h2::grpc::status_name(code as u32).unwrap_or("other");
        m.counter(
            "vxtap_grpc_status_total",
            "gRPC calls emitted, by status (other: a code outside 0-16).",
            &[("status", name)],
            *n,
        );
    }
    let s = &h.h2;
    for k in vxtap_h2::HpackFailure::ALL {
        m.counter(
            "vxtap_h2_hpack_failures_total",
            "HPACK fields that did not decode, by kind.",
            &[("kind", k.as_str())],
            s.hpack_errors[k.index()],
        );
    }
    for k in vxtap_h2::FrameError::ALL {
        m.counter(
            "vxtap_h2_frame_errors_total",
            "HTTP/2 frame errors (counted, never fatal), by kind.",
            &[("kind", k.as_str())],
            s.frame_errors[k.index()],
        );
    }
    for (name, v) in [
        ("vxtap_h2_connections_total", s.conns),
        ("vxtap_h2_frames_total", s.frames),
        ("vxtap_h2_streams_total", s.streams),
        ("vxtap_h2_streams_evicted_total", s.streams_evicted),
        ("vxtap_h2_rst_streams_total", s.rst_streams),
        ("vxtap_h2_goaways_total", s.goaways),
        ("vxtap_h2_pushes_total", s.pushes),
        ("vxtap_h2_resyncs_total", s.resyncs),
        (
            "vxtap_h2_resync_skipped_bytes_total",
            s.resync_skipped_bytes,
        ),
        ("vxtap_h2_gap_bytes_total", s.gap_bytes),
        ("vxtap_h2_hpack_table_capped_total", s.hpack_table_capped),
    ] {
        m.counter(name, "HTTP/2 counter.", &[], v);
    }
}
