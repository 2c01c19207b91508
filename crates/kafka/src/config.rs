//! Where the records go (`kafka://BROKER[,BROKER...]/TOPIC`) and how the client behaves (the
//! `[output.kafka]` table of the config file), turned into librdkafka's settings.
//!
//! Defaults favour not losing records: an idempotent producer (`acks=all`, ordered retries),
//! zstd compression, a bounded queue. Secrets are never in the file: the SASL password and
//! the TLS key's password are read from environment variables the file names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::KafkaError;

/// A `kafka://` output or input: the bootstrap brokers and the topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaTarget {
    /// `host:port[,host:port...]`, as librdkafka's `bootstrap.servers`.
    pub brokers: String,
    /// The topic.
    pub topic: String,
}

/// The URL scheme of a Kafka output.
pub const SCHEME: &str = "kafka://";

impl KafkaTarget {
    /// True when `s` names a Kafka target rather than a file.
    pub fn is_kafka(s: &str) -> bool {
        s.starts_with(SCHEME)
    }

    /// Parses `kafka://BROKER[,BROKER...]/TOPIC`.
    pub fn parse(s: &str) -> Result<KafkaTarget, KafkaError> {
        let bad = |why: &str| KafkaError::Target(format!("{s:?}: {why}"));
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("expected kafka://BROKER[,BROKER...]/TOPIC"))?;
        let (brokers, topic) = rest
            .split_once('/')
            .ok_or_else(|| bad("no /TOPIC after the brokers"))?;
        if brokers.is_empty() || brokers.split(',').any(|b| b.trim().is_empty()) {
            return Err(bad("empty broker"));
        }
        for b in brokers.split(',') {
            let port = b.rsplit_once(':').map(|(_, p)| p);
            if port.is_none_or(|p| p.parse::<u16>().is_err()) {
                return Err(bad("each broker needs HOST:PORT"));
            }
        }
        // Kafka's own rule for topic names.
        if topic.is_empty()
            || topic.len() > 249
            || topic == "."
            || topic == ".."
            || !topic
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        {
            return Err(bad(
                "the topic must be 1-249 characters of [a-zA-Z0-9._-] (and not . or ..)",
            ));
        }
        Ok(KafkaTarget {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
        })
    }
}

impl std::fmt::Display for KafkaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.brokers, self.topic)
    }
}

/// Compression codec of produced batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// None.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard (the default: the best ratio per CPU second on JSON).
    #[default]
    Zstd,
}

impl Compression {
    fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Acknowledgements the producer waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    /// Every in-sync replica (required by the idempotent producer; the default).
    #[default]
    All,
    /// The leader only.
    Leader,
    /// None (fire and forget; turns idempotence off).
    None,
}

/// SASL mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// SCRAM with SHA-256 (Amazon MSK's SCRAM).
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// PLAIN (only over TLS).
    #[serde(rename = "PLAIN")]
    Plain,
}

impl SaslMechanism {
    fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

/// `[output.kafka.tls]`: TLS to the brokers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsOptions {
    /// Use TLS (also implied by any other field here).
    pub enabled: bool,
    /// CA bundle (PEM) to verify the brokers with; the system's by default.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the client key's password.
    pub key_password_env: Option<String>,
    /// Skip verifying the broker's host name (testing only).
    pub insecure_skip_hostname_check: bool,
}

/// `[output.kafka.sasl]`: SASL authentication.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslOptions {
    /// Mechanism: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN.
    pub mechanism: SaslMechanism,
    /// User name.
    pub username: String,
    /// Environment variable holding the password (never the password itself).
    pub password_env: String,
}

/// A duration in the file: milliseconds as a number, or text such as "250ms", "2s", "1m".
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Millis {
    /// Milliseconds.
    Ms(u64),
    /// Human-readable.
    Text(String),
}

impl Millis {
    /// The duration.
    pub fn duration(&self) -> Result<Duration, KafkaError> {
        match self {
            Millis::Ms(ms) => Ok(Duration::from_millis(*ms)),
            Millis::Text(t) => parse_duration(t)
                .ok_or_else(|| KafkaError::Config(format!("not a duration: {t:?}"))),
        }
    }
}

fn parse_duration(t: &str) -> Option<Duration> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// `[output.kafka]`: everything about the producer except where it sends (the `kafka://` URL).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaOptions {
    /// `client.id` [default: vxtap].
    pub client_id: Option<String>,
    /// Compression [default: zstd].
    pub compression: Option<Compression>,
    /// Acknowledgements [default: all, with the idempotent producer].
    pub acks: Option<Acks>,
    /// `linger.ms`: how long a batch may wait to fill [default: 20ms].
    pub linger: Option<Millis>,
    /// `batch.size`: bytes per partition batch [default: 1MiB].
    pub batch_bytes: Option<u64>,
    /// `message.timeout.ms`: a record not acknowledged by then fails (and is spooled when
    /// a spool is configured) [default: 120s; 0 = never].
    pub message_timeout: Option<Millis>,
    /// Records the producer may hold (queued and in flight) [default: 20000].
    pub queue_records: Option<u64>,
    /// Bytes of records the producer may hold [default: 16MiB]; charged to --max-memory.
    pub queue_bytes: Option<u64>,
    /// How often librdkafka reports its statistics (metrics, reachability) [default: 1s].
    pub statistics_interval: Option<Millis>,
    /// `/readyz` reports not ready once no broker was reachable for this long [default: 30s].
    pub unreachable_after: Option<Millis>,
    /// Longest wait at the end of `replay` or `consume` for records to be acknowledged
    /// [default: 30s]; `listen` uses `--drain-timeout`.
    pub flush_timeout: Option<Millis>,
    /// Largest the spool may grow (with `--spool DIR`) [default: 1GiB].
    pub spool_max_bytes: Option<u64>,
    /// Size of one spool segment file [default: 16MiB].
    pub spool_segment_bytes: Option<u64>,
    /// TLS.
    pub tls: Option<TlsOptions>,
    /// SASL.
    pub sasl: Option<SaslOptions>,
    /// Any other librdkafka property, passed as is (applied last: it wins).
    pub librdkafka: BTreeMap<String, String>,
}

/// [`KafkaOptions`] with every default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ProducerSettings {
    /// Where to send.
    pub target: KafkaTarget,
    /// The options as given.
    pub options: KafkaOptions,
    /// Records the producer may hold.
    pub queue_records: u64,
    /// Bytes of records the producer may hold.
    pub queue_bytes: u64,
    /// Statistics interval.
    pub statistics_interval: Duration,
    /// Readiness threshold.
    pub unreachable_after: Duration,
    /// End-of-run wait (replay, consume).
    pub flush_timeout: Duration,
    /// Message timeout (`None`: never).
    pub message_timeout: Option<Duration>,
    /// The spool, when `--spool DIR` is given.
    pub spool: Option<crate::spool::SpoolConfig>,
}

/// librdkafka's own bookkeeping per queued record, beyond its payload (its `rd_kafka_msg_t`,
/// headers and key), for charging the queue to the memory budget.
pub const PER_RECORD_OVERHEAD: u64 = 256;

impl ProducerSettings {
    /// Applies the defaults; `spool_dir` is `--spool`.
    pub fn new(
        target: KafkaTarget,
        options: KafkaOptions,
        spool_dir: Option<PathBuf>,
    ) -> Result<ProducerSettings, KafkaError> {
        let dur = |v: &Option<Millis>, d: Duration| v.as_ref().map_or(Ok(d), Millis::duration);
        let message_timeout = dur(&options.message_timeout, Duration::from_secs(120))?;
        let queue_bytes = options.queue_bytes.unwrap_or(16 << 20);
        if queue_bytes < 1024 {
            return Err(KafkaError::Config(
                "queue_bytes must be at least 1KiB".into(),
            ));
        }
        let spool = spool_dir.map(|dir| crate::spool::SpoolConfig {
            dir,
            max_bytes: options.spool_max_bytes.unwrap_or(1 << 30),
            segment_bytes: options.spool_segment_bytes.unwrap_or(16 << 20).max(4096),
        });
        Ok(ProducerSettings {
            queue_records: options.queue_records.unwrap_or(20_000).clamp(1, 10_000_000),
            queue_bytes,
            statistics_interval: dur(&options.statistics_interval, Duration::from_secs(1))?
                .max(Duration::from_millis(10)),
            unreachable_after: dur(&options.unreachable_after, Duration::from_secs(30))?,
            flush_timeout: dur(&options.flush_timeout, Duration::from_secs(30))?,
            message_timeout: (!message_timeout.is_zero()).then_some(message_timeout),
            target,
            options,
            spool,
        })
    }

    /// Bytes the producer's queue may take at most, for `--max-memory`.
    pub fn memory_reservation(&self) -> u64 {
        self.queue_bytes + self.queue_records * PER_RECORD_OVERHEAD
    }

    /// The settings common to producer and consumer: brokers, client id, TLS, SASL.
    pub fn client_config(
        target: &KafkaTarget,
        o: &KafkaOptions,
    ) -> Result<ClientConfig, KafkaError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &target.brokers);
        c.set("client.id", o.client_id.as_deref().unwrap_or("vxtap"));
        let tls = o.tls.as_ref().is_some_and(|t| {
            t.enabled || t.ca_file.is_some() || t.cert_file.is_some() || t.key_file.is_some()
        });
        let protocol = match (tls, o.sasl.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some(t) = o.tls.as_ref().filter(|_| tls) {
            let path = |p: &PathBuf| p.to_string_lossy().into_owned();
            if let Some(p) = &t.ca_file {
                c.set("ssl.ca.location", path(p));
            }
            if let Some(p) = &t.cert_file {
                c.set("ssl.certificate.location", path(p));
            }
            if let Some(p) = &t.key_file {
                c.set("ssl.key.location", path(p));
            }
            if let Some(var) = &t.key_password_env {
                c.set("ssl.key.password", env_secret(var)?);
            }
            if t.insecure_skip_hostname_check {
                c.set("ssl.endpoint.identification.algorithm", "none");
            }
        }
        if let Some(s) = &o.sasl {
            c.set("sasl.mechanism", s.mechanism.as_str());
            c.set("sasl.username", &s.username);
            c.set("sasl.password", env_secret(&s.password_env)?);
        }
        Ok(c)
    }

    /// The producer's librdkafka configuration.
    pub fn producer_config(&self) -> Result<ClientConfig, KafkaError> {
        let o = &self.options;
        let mut c = Self::client_config(&self.target, o)?;
        let acks = o.acks.unwrap_or_default();
        // Idempotence keeps order and drops duplicates across retries; it needs acks=all.
        c.set(
            "enable.idempotence",
            if acks == Acks::All { "true" } else { "false" },
        );
        c.set(
            "acks",
            match acks {
                Acks::All => "all",
                Acks::Leader => "1",
                Acks::None => "0",
            },
        );
        c.set(
            "compression.codec",
            o.compression.unwrap_or_default().as_str(),
        );
        let linger = o
            .linger
            .as_ref()
            .map_or(Ok(Duration::from_millis(20)), Millis::duration)?;
        c.set("linger.ms", linger.as_millis().to_string());
        c.set("batch.size", o.batch_bytes.unwrap_or(1 << 20).to_string());
        c.set(
            "message.timeout.ms",
            self.message_timeout
                .map_or(0, |d| d.as_millis().max(1))
                .to_string(),
        );
        c.set(
            "queue.buffering.max.messages",
            self.queue_records.to_string(),
        );
        c.set(
            "queue.buffering.max.kbytes",
            (self.queue_bytes / 1024).max(1).to_string(),
        );
        c.set(
            "statistics.interval.ms",
            self.statistics_interval.as_millis().to_string(),
        );
        // Delivery reports carry the record back (key, value, headers) so that a record that
        // failed can be spooled.
        c.set("delivery.report.only.error", "false");
        for (k, v) in &o.librdkafka {
            c.set(k, v);
        }
        Ok(c)
    }
}

fn env_secret(var: &str) -> Result<String, KafkaError> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(KafkaError::Config(format!(
            "environment variable {var} (a Kafka secret) is unset or empty"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_say_why() {
        let t = KafkaTarget::parse("kafka://b1:9092,b2:9093/vxtap.exchanges").unwrap();
        assert_eq!(t.brokers, "b1:9092,b2:9093");
        assert_eq!(t.topic, "vxtap.exchanges");
        assert_eq!(t.to_string(), "kafka://b1:9092,b2:9093/vxtap.exchanges");
        let t6 = KafkaTarget::parse("kafka://[::1]:9092/t").unwrap();
        assert_eq!(t6.brokers, "[::1]:9092");
        for bad in [
            "b:9092/t",
            "kafka://b:9092",
            "kafka:///t",
            "kafka://b:9092,/t",
            "kafka://b/t",
            "kafka://b:99999/t",
            "kafka://b:9092/",
            "kafka://b:9092/a b",
            "kafka://b:9092/..",
        ] {
            assert!(KafkaTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_from_toml_and_the_defaults() {
        let o: KafkaOptions = toml::from_str(
            r#"
            client_id = "edge-1"
            compression = "lz4"
            acks = "leader"
            linger = "5ms"
            message_timeout = 0
            queue_bytes = 1048576
            [sasl]
            mechanism = "SCRAM-SHA-512"
            username = "vxtap"
            password_env = "VXTAP_TEST_KAFKA_PASSWORD"
            [tls]
            ca_file = "/etc/ssl/msk.pem"
            [librdkafka]
            "socket.keepalive.enable" = "true"
            "#,
        )
        .unwrap();
        let t = KafkaTarget::parse("kafka://b:9096/t").unwrap();
        let s = ProducerSettings::new(t.clone(), o.clone(), None).unwrap();
        assert_eq!(s.message_timeout, None);
        assert_eq!(
            s.memory_reservation(),
            (1 << 20) + 20_000 * PER_RECORD_OVERHEAD
        );
        // The password comes from the environment, or the configuration is refused.
        assert!(s.producer_config().is_err());
        std::env::set_var("VXTAP_TEST_KAFKA_PASSWORD", "pw");
        let c = s.producer_config().unwrap();
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.password"), Some("pw"));
        assert_eq!(c.get("ssl.ca.location"), Some("/etc/ssl/msk.pem"));
        assert_eq!(c.get("compression.codec"), Some("lz4"));
        assert_eq!(c.get("enable.idempotence"), Some("false"));
        assert_eq!(c.get("acks"), Some("1"));
        assert_eq!(c.get("linger.ms"), Some("5"));
        assert_eq!(c.get("message.timeout.ms"), Some("0"));
        assert_eq!(c.get("socket.keepalive.enable"), Some("true"));
        let d = ProducerSettings::new(t, KafkaOptions::default(), None).unwrap();
        let c = d.producer_config().unwrap();
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        assert_eq!(c.get("compression.codec"), Some("zstd"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("message.timeout.ms"), Some("120000"));
        assert!(toml::from_str::<KafkaOptions>("compresion = \"zstd\"").is_err());
    }
}
