//! One snapshot of everything the Kafka output knows about itself: the sink's counters, the
//! spool's, and what librdkafka's statistics (`statistics.interval.ms`) say about its queue and
//! the brokers. The binary turns it into Prometheus metrics.

use rdkafka::statistics::Statistics;

use crate::spool::SpoolStats;

/// Brokers given a metric label of their own; more are left out (bounded cardinality).
pub const MAX_BROKER_LABELS: usize = 32;

/// Why a record was not delivered and not kept either (`vxtap_output_dropped_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The producer's queue was full and no spool is configured.
    QueueFull,
    /// The spool was full.
    SpoolFull,
    /// The spool could not be written.
    SpoolError,
    /// The broker refused it for good, or it failed with no spool to keep it.
    DeliveryFailed,
    /// Larger than the broker or the client accepts.
    TooLarge,
    /// Still undelivered when the drain deadline passed, with no spool to keep it.
    Shutdown,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 6] = [
        DropReason::QueueFull,
        DropReason::SpoolFull,
        DropReason::SpoolError,
        DropReason::DeliveryFailed,
        DropReason::TooLarge,
        DropReason::Shutdown,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::SpoolFull => "spool_full",
            DropReason::SpoolError => "spool_error",
            DropReason::DeliveryFailed => "delivery_failed",
            DropReason::TooLarge => "too_large",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// Why a record went to the spool (`vxtap_kafka_spooled_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoolReason {
    /// The producer's queue was full.
    QueueFull,
    /// Older records were waiting in the spool: new ones queue behind them, to keep order.
    BehindSpool,
    /// Its delivery failed with an error worth retrying.
    DeliveryFailed,
    /// Still undelivered when the drain deadline passed.
    Shutdown,
}

impl SpoolReason {
    /// Every reason, in label order.
    pub const ALL: [SpoolReason; 4] = [
        SpoolReason::QueueFull,
        SpoolReason::BehindSpool,
        SpoolReason::DeliveryFailed,
        SpoolReason::Shutdown,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SpoolReason::QueueFull => "queue_full",
            SpoolReason::BehindSpool => "behind_spool",
            SpoolReason::DeliveryFailed => "delivery_failed",
            SpoolReason::Shutdown => "shutdown",
        }
    }
}

/// One broker as the last statistics saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerSnapshot {
    /// `host:port/id` as librdkafka names it.
    pub name: String,
    /// True when its state is `UP`.
    pub up: bool,
    /// librdkafka's state name (`UP`, `DOWN`, `CONNECT`, `AUTH`, ...).
    pub state: String,
    /// Request round-trip time, mean over the last interval, microseconds.
    pub rtt_avg_us: i64,
    /// Its 99th percentile, microseconds.
    pub rtt_p99_us: i64,
    /// Requests waiting to be sent.
    pub outbuf: i64,
    /// Requests sent, waiting for a response.
    pub waitresp: i64,
    /// Requests that timed out.
    pub req_timeouts: u64,
    /// Transmission errors.
    pub tx_errors: u64,
    /// Connections closed.
    pub disconnects: i64,
}

/// What librdkafka's last statistics said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientSnapshot {
    /// Records in the producer's queues (waiting or in flight).
    pub queue_records: u64,
    /// Their bytes.
    pub queue_bytes: u64,
    /// The queue's record limit.
    pub queue_max_records: u64,
    /// The queue's byte limit.
    pub queue_max_bytes: u64,
    /// The brokers (at most [`MAX_BROKER_LABELS`]).
    pub brokers: Vec<BrokerSnapshot>,
}

impl ClientSnapshot {
    /// Takes what the metrics need from librdkafka's statistics.
    pub fn from_statistics(s: &Statistics) -> ClientSnapshot {
        let mut brokers: Vec<BrokerSnapshot> = s
            .brokers
            .values()
            // The internal broker is librdkafka's own bookkeeping, never a connection.
            .filter(|b| b.source != "internal")
            .map(|b| BrokerSnapshot {
                name: b.name.clone(),
                up: b.state == "UP",
                state: b.state.clone(),
                rtt_avg_us: b.rtt.as_ref().map_or(0, |w| w.avg),
                rtt_p99_us: b.rtt.as_ref().map_or(0, |w| w.p99),
                outbuf: b.outbuf_cnt,
                waitresp: b.waitresp_cnt,
                req_timeouts: b.req_timeouts,
                tx_errors: b.txerrs,
                disconnects: b.disconnects.unwrap_or(0),
            })
            .collect();
        brokers.sort_by(|a, b| a.name.cmp(&b.name));
        brokers.truncate(MAX_BROKER_LABELS);
        ClientSnapshot {
            queue_records: s.msg_cnt,
            queue_bytes: s.msg_size,
            queue_max_records: s.msg_max,
            queue_max_bytes: s.msg_size_max,
            brokers,
        }
    }

    /// Takes the same from the statistics JSON as librdkafka sends it, leniently: a field
    /// missing or of another type (brokers and librdkafka versions differ) is taken as 0,
    /// where the typed [`Statistics`] would reject the whole report.
    pub fn from_json(json: &[u8]) -> Option<ClientSnapshot> {
        use serde_json::Value;
        let v: Value = serde_json::from_slice(json).ok()?;
        let u = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        let i = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut brokers: Vec<BrokerSnapshot> = v
            .get("brokers")
            .and_then(Value::as_object)
            .map(|m| {
                m.values()
                    .filter(|b| s(b, "source") != "internal")
                    .map(|b| {
                        let rtt = b.get("rtt").cloned().unwrap_or(Value::Null);
                        BrokerSnapshot {
                            name: s(b, "name"),
                            up: s(b, "state") == "UP",
                            state: s(b, "state"),
                            rtt_avg_us: i(&rtt, "avg"),
                            rtt_p99_us: i(&rtt, "p99"),
                            outbuf: i(b, "outbuf_cnt"),
                            waitresp: i(b, "waitresp_cnt"),
                            req_timeouts: u(b, "req_timeouts"),
                            tx_errors: u(b, "txerrs"),
                            disconnects: i(b, "disconnects"),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        brokers.sort_by(|a, b| a.name.cmp(&b.name));
        brokers.truncate(MAX_BROKER_LABELS);
        Some(ClientSnapshot {
            queue_records: u(&v, "msg_cnt"),
            queue_bytes: u(&v, "msg_size"),
            queue_max_records: u(&v, "msg_max"),
            queue_max_bytes: u(&v, "msg_size_max"),
            brokers,
        })
    }

    /// True when some broker is up.
    pub fn any_up(&self) -> bool {
        self.brokers.iter().any(|b| b.up)
    }
}

/// Everything about the Kafka output, for metrics and the end-of-run summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaStats {
    /// Records handed to librdkafka (first sends and replays from the spool).
    pub produced: u64,
    /// Records the broker acknowledged.
    pub delivered: u64,
    /// Their value bytes.
    pub delivered_bytes: u64,
    /// Records neither delivered nor kept, by [`DropReason`] (in [`DropReason::ALL`] order).
    pub dropped: [u64; 6],
    /// Records spooled, by [`SpoolReason`] (in [`SpoolReason::ALL`] order).
    pub spooled: [u64; 4],
    /// Failed deliveries by librdkafka error (snake_case of its code name).
    pub delivery_errors: Vec<(String, u64)>,
    /// Records that failed to encode, or that librdkafka refused for another reason.
    pub errors: u64,
    /// The spool, when configured.
    pub spool: Option<SpoolStats>,
    /// librdkafka's last statistics.
    pub client: ClientSnapshot,
    /// Records librdkafka holds now (queued or in flight), read live.
    pub in_flight: u64,
    /// True while some broker is reachable.
    pub reachable: bool,
    /// Milliseconds since no broker was reachable (0 while one is).
    pub unreachable_ms: u64,
}

impl KafkaStats {
    /// Records dropped for `reason`.
    pub fn dropped_by(&self, reason: DropReason) -> u64 {
        DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.dropped[i])
    }

    /// Records spooled for `reason`.
    pub fn spooled_by(&self, reason: SpoolReason) -> u64 {
        SpoolReason::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.spooled[i])
    }

    /// Every record dropped, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// `MessageTimedOut` -> `message_timed_out`: a bounded label from librdkafka's error code.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_json_becomes_a_snapshot() {
        // Trimmed from librdkafka's STATISTICS.md example, as the callback receives it.
        let json = r#"{"name":"vxtap#producer-1","client_id":"vxtap","type":"producer",
          "ts":1,"time":1,"age":1,"replyq":0,"msg_cnt":12,"msg_size":3400,"msg_max":100000,
          "msg_size_max":67108864,"simple_cnt":0,"metadata_cache_cnt":1,"tx":1,"tx_bytes":1,
          "rx":1,"rx_bytes":1,"txmsgs":1,"txmsg_bytes":1,"rxmsgs":0,"rxmsg_bytes":0,
          "brokers":{
            "b1:9092/1":{"name":"b1:9092/1","nodeid":1,"nodename":"b1:9092","source":"learned",
              "state":"UP","stateage":1,"outbuf_cnt":2,"outbuf_msg_cnt":0,"waitresp_cnt":1,
              "waitresp_msg_cnt":0,"tx":1,"txbytes":1,"txerrs":3,"txretries":0,"txidle":0,
              "req_timeouts":4,"rx":1,"rxbytes":1,"rxerrs":0,"rxcorriderrs":0,"rxpartial":0,
              "rxidle":0,"zbuf_grow":0,"buf_grow":0,"wakeups":1,"connects":1,"disconnects":5,
              "rtt":{"min":1,"max":9,"avg":500,"sum":1,"stddev":1,"p50":1,"p75":1,"p90":1,
                "p95":1,"p99":900,"p99_99":1,"outofrange":0,"hdrsize":1,"cnt":1},
              "req":{},"toppars":{}},
            ":0/internal":{"name":":0/internal","nodeid":-1,"nodename":"","source":"internal",
              "state":"UP","stateage":1,"outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,
              "waitresp_msg_cnt":0,"tx":0,"txbytes":0,"txerrs":0,"txretries":0,"txidle":0,
              "req_timeouts":0,"rx":0,"rxbytes":0,"rxerrs":0,"rxcorriderrs":0,"rxpartial":0,
              "rxidle":0,"zbuf_grow":0,"buf_grow":0,"req":{},"toppars":{}}},
          "topics":{}}"#;
        let s: Statistics = serde_json::from_str(json).unwrap();
        let c = ClientSnapshot::from_statistics(&s);
        assert_eq!(ClientSnapshot::from_json(json.as_bytes()), Some(c.clone()));
        // Lenient where the typed form is not.
        let partial = ClientSnapshot::from_json(
            br#"{"msg_cnt":3,"brokers":{"b":{"name":"b","state":"UP"}}}"#,
        )
        .unwrap();
        assert!(partial.any_up() && partial.queue_records == 3);
        assert_eq!(ClientSnapshot::from_json(b"not json"), None);
        assert_eq!((c.queue_records, c.queue_bytes), (12, 3400));
        assert_eq!(c.brokers.len(), 1, "the internal broker is left out");
        let b = &c.brokers[0];
        assert!(b.up && c.any_up());
        assert_eq!((b.rtt_avg_us, b.rtt_p99_us), (500, 900));
        assert_eq!((b.req_timeouts, b.tx_errors, b.disconnects), (4, 3, 5));
    }

    #[test]
    fn error_labels() {
        assert_eq!(snake_case("MessageTimedOut"), "message_timed_out");
        assert_eq!(snake_case("AllBrokersDown"), "all_brokers_down");
    }
}
