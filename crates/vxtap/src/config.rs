//! Settings: the TOML config file merged with command-line flags (a flag wins over the file,
//! the file over the built-in default), resolved into each stage's configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use vxtap_flow::{FlowConfig, FlowKeyMode};
use vxtap_http::HttpConfig;
use vxtap_sink::{ExchangeFilterConfig, RedactConfig};
use vxtap_wire::DecapConfig;

use crate::cli::{DecodeOpts, FlowKeyArg, ListenArgs, LogFormat, PipelineOpts, PrivacyOpts};
use crate::packet_filter::PacketFilterConfig;
use crate::size::{parse_duration, parse_size};

/// A size in the file: a number of bytes or a string such as "256MiB".
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// Plain bytes.
    Bytes(u64),
    /// Human-readable.
    Text(String),
}

impl SizeValue {
    fn bytes(&self) -> Result<u64> {
        match self {
            SizeValue::Bytes(b) => Ok(*b),
            SizeValue::Text(t) => parse_size(t).map_err(anyhow::Error::msg),
        }
    }
}

/// A duration in the file: seconds or a string such as "120s".
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    /// Seconds.
    Secs(u64),
    /// Human-readable.
    Text(String),
}

impl DurationValue {
    fn duration(&self) -> Result<Duration> {
        match self {
            DurationValue::Secs(s) => Ok(Duration::from_secs(*s)),
            DurationValue::Text(t) => parse_duration(t).map_err(anyhow::Error::msg),
        }
    }
}

/// The TOML config file: the same names as the flags, with underscores.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// UDP receive address.
    pub bind: Option<SocketAddr>,
    /// Admin HTTP address.
    pub admin_bind: Option<SocketAddr>,
    /// Output file or `kafka://` URL, or an `[output]` table (with `[output.kafka]`).
    pub output: Option<crate::output::OutputValue>,
    /// Spool directory for a Kafka output.
    pub spool: Option<PathBuf>,
    /// Rotate at this size.
    pub rotate_size: Option<SizeValue>,
    /// Rotate at this age.
    pub rotate_interval: Option<DurationValue>,
    /// Worker threads.
    pub threads: Option<usize>,
    /// Receive threads.
    pub recv_threads: Option<usize>,
    /// Requested SO_RCVBUF.
    pub recv_buffer: Option<SizeValue>,
    /// Connection idle timeout.
    pub idle_timeout: Option<DurationValue>,
    /// Shutdown: longest wait for queued records to be written.
    pub drain_timeout: Option<DurationValue>,
    /// Wait for a hole's data before skipping it.
    pub hole_timeout: Option<DurationValue>,
    /// Wait for an acknowledged hole's data before skipping it.
    pub ack_grace: Option<DurationValue>,
    /// Flow key mode.
    pub flow_key: Option<FlowKeyArg>,
    /// Memory budget.
    pub max_memory: Option<SizeValue>,
    /// Connection cap.
    pub max_flows: Option<usize>,
    /// Body capture cap.
    pub max_body_bytes: Option<SizeValue>,
    /// Pending request records per connection.
    pub max_pending_bytes: Option<SizeValue>,
    /// Pending request records across connections.
    pub max_pending_bytes_total: Option<SizeValue>,
    /// Inflate bodies.
    pub decode_content: Option<bool>,
    /// Dump gRPC messages as schemaless protobuf.
    pub grpc_decode: Option<bool>,
    /// Sampling rate.
    pub sample: Option<f64>,
    /// Sampling seed.
    pub sample_seed: Option<u64>,
    /// Allowed mirror sources.
    pub allow_source: Vec<String>,
    /// Inner CIDR filter.
    pub cidrs: Vec<String>,
    /// Inner port filter.
    pub ports: Vec<u16>,
    /// VNI allow list.
    pub vni_allow: Vec<u32>,
    /// VNI deny list.
    pub vni_deny: Vec<u32>,
    /// HTTP-level filters.
    pub hosts: Vec<String>,
    /// HTTP-level path prefixes.
    pub path_prefixes: Vec<String>,
    /// HTTP-level methods.
    pub methods: Vec<String>,
    /// HTTP-level statuses.
    pub statuses: Vec<String>,
    /// VXLAN ports.
    pub vxlan_ports: Option<Vec<u16>>,
    /// Geneve ports.
    pub geneve_ports: Option<Vec<u16>>,
    /// VXLAN-GPE ports.
    pub vxlan_gpe_ports: Option<Vec<u16>>,
    /// GRE-in-UDP ports.
    pub gre_udp_ports: Option<Vec<u16>>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// HMAC key environment variable for redaction.
    pub redact_key_env: Option<String>,
    /// Redaction off.
    pub no_redact: Option<bool>,
    /// Advanced redaction settings.
    pub redact: Option<RedactConfig>,
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config {}", path.display()))
    }
}

/// Everything the pipeline needs, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Decapsulation.
    pub decap: DecapConfig,
    /// Reassembly, for the whole process (split across workers by [`Settings::flow_for_worker`]).
    pub flow: FlowConfig,
    /// HTTP parsing.
    pub http: HttpConfig,
    /// Packet-level filters and sampling.
    pub packet_filter: PacketFilterConfig,
    /// HTTP-level filters.
    pub exchange_filter: ExchangeFilterConfig,
    /// Redaction.
    pub redact: RedactConfig,
    /// Worker threads.
    pub threads: usize,
}

/// Smallest share of `--max-memory` one worker's flow table may get: less is refused.
pub const MIN_WORKER_MEMORY: usize = 1 << 20;

impl Settings {
    /// The HTTP configuration of one of `threads` workers: the pending-record budget across
    /// connections is shared.
    pub fn http_for_worker(&self) -> HttpConfig {
        let n = self.threads.max(1);
        HttpConfig {
            max_pending_bytes_total: (self.http.max_pending_bytes_total / n).max(1 << 20),
            ..self.http.clone()
        }
    }

    /// The flow-table configuration of one of `threads` workers: the global caps are shared.
    /// The budget is split exactly (each worker owns its share; nothing is shared or locked),
    /// never raised: [`Settings::check_worker_memory`] refuses a budget too small to split.
    pub fn flow_for_worker(&self) -> FlowConfig {
        let n = self.threads.max(1);
        let max_memory = self.flow.max_memory / n;
        FlowConfig {
            max_memory,
            max_flows: (self.flow.max_flows / n).max(1024),
            ..self.flow
        }
    }

    /// Refuses a flow-table budget that leaves a worker less than [`MIN_WORKER_MEMORY`].
    pub fn check_worker_memory(&self) -> Result<()> {
        let n = self.threads.max(1);
        if self.flow.max_memory / n < MIN_WORKER_MEMORY {
            bail!(
                "--max-memory leaves {} bytes for the flow tables of {n} workers; each needs at \
                 least {MIN_WORKER_MEMORY} (raise --max-memory or lower --threads)",
                self.flow.max_memory
            );
        }
        Ok(())
    }

    /// Resolves the shared option groups over an optional config file.
    pub fn resolve(
        file: &FileConfig,
        decode: &DecodeOpts,
        pipeline: &PipelineOpts,
        privacy: &PrivacyOpts,
        default_threads: usize,
    ) -> Result<Settings> {
        let mut decap = DecapConfig {
            max_depth: decode.max_tunnel_depth,
            validate_checksums: decode.validate_checksums,
            ..DecapConfig::default()
        };
        // Clap always fills the port lists with defaults, so the file's lists apply only when the
        // flags still hold exactly the defaults.
        decap.vxlan_ports = match &file.vxlan_ports {
            Some(p) if decode.vxlan_ports == [vxtap_wire::VXLAN_PORT] => p.clone(),
            _ => decode.vxlan_ports.clone(),
        };
        decap.geneve_ports = match &file.geneve_ports {
            Some(p) if decode.geneve_ports == [vxtap_wire::GENEVE_PORT] => p.clone(),
            _ => decode.geneve_ports.clone(),
        };
        decap.vxlan_gpe_ports = match &file.vxlan_gpe_ports {
            Some(p) if decode.vxlan_gpe_ports == [vxtap_wire::VXLAN_GPE_PORT] => p.clone(),
            _ => decode.vxlan_gpe_ports.clone(),
        };
        decap.gre_udp_ports = match &file.gre_udp_ports {
            Some(p) if decode.gre_udp_ports == [vxtap_wire::GRE_UDP_PORT] => p.clone(),
            _ => decode.gre_udp_ports.clone(),
        };

        let mut flow = FlowConfig::default();
        let key = pipeline.flow_key.or(file.flow_key);
        if let Some(k) = key {
            flow.key_mode = match k {
                FlowKeyArg::FiveTuple => FlowKeyMode::FiveTuple,
                FlowKeyArg::Session => FlowKeyMode::Session,
            };
        }
        let max_memory = match (pipeline.max_memory, &file.max_memory) {
            (Some(m), _) => Some(m),
            (None, Some(v)) => Some(v.bytes()?),
            _ => None,
        };
        if let Some(m) = max_memory {
            flow.max_memory = usize::try_from(m).unwrap_or(usize::MAX);
        }
        if let Some(n) = pipeline.max_flows.or(file.max_flows) {
            flow.max_flows = n;
        }
        // A flag wins over the file; the file's value may fail to parse.
        let wait = |flag: Option<Duration>, file: &Option<DurationValue>| match (flag, file) {
            (Some(d), _) => Ok(Some(d)),
            (None, Some(v)) => v.duration().map(Some),
            _ => Ok(None),
        };
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if let Some(d) = wait(pipeline.idle_timeout, &file.idle_timeout)? {
            flow.idle_timeout_ns = nanos(d);
        }
        if let Some(d) = wait(pipeline.hole_timeout, &file.hole_timeout)? {
            flow.hole_timeout_ns = nanos(d);
        }
        if let Some(d) = wait(pipeline.ack_grace, &file.ack_grace)? {
            flow.ack_skip_grace_ns = nanos(d);
        }
        flow.validate()?;

        let mut http = HttpConfig::default();
        let max_body = match (pipeline.max_body_bytes, &file.max_body_bytes) {
            (Some(b), _) => Some(b),
            (None, Some(v)) => {
                let b = v.bytes()?;
                Some(
                    usize::try_from(b)
                        .map_err(|_| anyhow::anyhow!("max_body_bytes {b} is too large"))?,
                )
            }
            _ => None,
        };
        if let Some(b) = max_body {
            http.max_body_bytes = b;
        }
        http.decode_content = pipeline.decode_content || file.decode_content.unwrap_or(false);
        http.grpc_decode = pipeline.grpc_decode || file.grpc_decode.unwrap_or(false);
        let size = |flag: Option<u64>, file: &Option<SizeValue>| -> Result<Option<usize>> {
            let v = match (flag, file) {
                (Some(b), _) => Some(b),
                (None, Some(v)) => Some(v.bytes()?),
                _ => None,
            };
            Ok(v.map(|b| usize::try_from(b).unwrap_or(usize::MAX)))
        };
        if let Some(b) = size(pipeline.max_pending_bytes, &file.max_pending_bytes)? {
            http.max_pending_bytes = b;
        }
        if let Some(b) = size(
            pipeline.max_pending_bytes_total,
            &file.max_pending_bytes_total,
        )? {
            http.max_pending_bytes_total = b;
        }

        let pick = |cli: &Vec<String>, f: &Vec<String>| {
            if cli.is_empty() {
                f.clone()
            } else {
                cli.clone()
            }
        };
        let sample = privacy.sample.or(file.sample);
        if let Some(r) = sample {
            if !(r > 0.0 && r <= 1.0) {
                bail!("--sample must be in (0, 1], got {r}");
            }
        }
        let packet_filter = PacketFilterConfig {
            cidrs: pick(&privacy.cidrs, &file.cidrs),
            ports: if privacy.ports.is_empty() {
                file.ports.clone()
            } else {
                privacy.ports.clone()
            },
            vni_allow: if privacy.vni_allow.is_empty() {
                file.vni_allow.clone()
            } else {
                privacy.vni_allow.clone()
            },
            vni_deny: if privacy.vni_deny.is_empty() {
                file.vni_deny.clone()
            } else {
                privacy.vni_deny.clone()
            },
            allow_source: file.allow_source.clone(),
            sample: sample.filter(|r| *r < 1.0),
            sample_seed: privacy
                .sample_seed
                .or(file.sample_seed)
                .unwrap_or(PacketFilterConfig::default().sample_seed),
        };
        let exchange_filter = ExchangeFilterConfig {
            hosts: pick(&privacy.hosts, &file.hosts),
            path_prefixes: pick(&privacy.path_prefixes, &file.path_prefixes),
            methods: pick(&privacy.methods, &file.methods),
            statuses: pick(&privacy.statuses, &file.statuses),
        };
        let mut redact = file.redact.clone().unwrap_or_default();
        if privacy.no_redact || file.no_redact.unwrap_or(false) {
            redact.enabled = false;
        }
        if let Some(env) = privacy
            .redact_key_env
            .clone()
            .or(file.redact_key_env.clone())
        {
            redact.key_env = Some(env);
        }
        if let Some(policy) = privacy.uninspectable_bodies {
            redact.uninspectable_bodies = policy;
        }
        let threads = pipeline
            .threads
            .or(file.threads)
            .unwrap_or(default_threads)
            .max(1);
        let settings = Settings {
            decap,
            flow,
            http,
            packet_filter,
            exchange_filter,
            redact,
            threads,
        };
        settings.check_worker_memory()?;
        Ok(settings)
    }
}

/// Listen-only settings.
#[derive(Clone, Debug)]
pub struct ListenSettings {
    /// Shared pipeline settings.
    pub common: Settings,
    /// UDP receive address.
    pub bind: SocketAddr,
    /// Admin HTTP address.
    pub admin_bind: SocketAddr,
    /// Output file (stdout when `None`).
    pub output: Option<PathBuf>,
    /// Rotate at this size.
    pub rotate_size: Option<u64>,
    /// Rotate at this age.
    pub rotate_interval: Option<Duration>,
    /// Receive threads.
    pub recv_threads: usize,
    /// Requested SO_RCVBUF.
    pub recv_buffer: usize,
    /// Shutdown: longest wait for queued records to be written.
    pub drain_timeout: Duration,
    /// The Kafka output, when the output is a `kafka://` URL (then `output` is `None`).
    pub kafka: Option<Box<vxtap_kafka::ProducerSettings>>,
    /// Shadow replay beside the output (`--shadow-target`).
    pub shadow: Option<ShadowSettings>,
}

/// `listen --shadow-target`: the stage's configuration and where its records go.
#[derive(Clone, Debug)]
pub struct ShadowSettings {
    /// The stage.
    pub cfg: vxtap_shadow::ShadowConfig,
    /// Records (stdout when `None`).
    pub output: Option<PathBuf>,
    /// Summary written at shutdown.
    pub summary: Option<PathBuf>,
}

/// Default of `--drain-timeout`: within the 30 s a container runtime usually allows between
/// SIGTERM and SIGKILL, so that vxtap reports what it lost instead of being killed silently.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl ListenSettings {
    /// Resolves `vxtap listen` arguments over the config file.
    pub fn resolve(args: &ListenArgs, file: &FileConfig) -> Result<Self> {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut common =
            Settings::resolve(file, &args.decode, &args.pipeline, &args.privacy, cpus)?;
        if !args.allow_source.is_empty() {
            common.packet_filter.allow_source = args.allow_source.clone();
        }
        let rotate_size = match (args.rotate_size, &file.rotate_size) {
            (Some(s), _) => Some(s),
            (None, Some(v)) => Some(v.bytes()?),
            _ => None,
        };
        let rotate_interval = match (args.rotate_interval, &file.rotate_interval) {
            (Some(d), _) => Some(d),
            (None, Some(v)) => Some(v.duration()?),
            _ => None,
        };
        let drain_timeout = match (args.drain_timeout, &file.drain_timeout) {
            (Some(d), _) => d,
            (None, Some(v)) => v.duration()?,
            _ => DEFAULT_DRAIN_TIMEOUT,
        };
        // Shadow replay: the HTTP layer keeps bodies for it, and its queue is charged to
        // --max-memory (taken off the flow tables' budget before the queues are planned).
        let shadow = match &args.shadow_target {
            Some(target) => {
                let q = crate::shadow::prepare_settings(&mut common, &args.shadow)?;
                Some(ShadowSettings {
                    cfg: crate::shadow::config(
                        target,
                        &args.shadow,
                        q,
                        vxtap_shadow::WhenFull::Drop,
                        drain_timeout,
                    )?,
                    output: args.shadow_output.clone(),
                    summary: args.shadow_summary.clone(),
                })
            }
            None => None,
        };
        let recv_buffer = match (args.recv_buffer, &file.recv_buffer) {
            (Some(s), _) => s,
            (None, Some(v)) => v.bytes()?,
            _ => 256 << 20,
        };
        let (output, kafka) = match crate::output::OutputConfig::resolve(
            args.output.as_ref(),
            file.output.as_ref(),
            args.spool.clone().or(file.spool.clone()),
            vxtap_sink::JsonLinesConfig::default(),
        )? {
            crate::output::OutputConfig::Lines(l) => (l.path, None),
            crate::output::OutputConfig::Kafka(k) => (None, Some(k)),
        };
        Ok(ListenSettings {
            common,
            bind: args
                .bind
                .or(file.bind)
                .unwrap_or_else(|| "0.0.0.0:4789".parse().expect("static address")),
            admin_bind: args
                .admin_bind
                .or(file.admin_bind)
                .unwrap_or_else(|| "127.0.0.1:9090".parse().expect("static address")),
            output,
            kafka,
            rotate_size,
            rotate_interval,
            recv_threads: args.recv_threads.or(file.recv_threads).unwrap_or(1).max(1),
            recv_buffer: usize::try_from(recv_buffer).unwrap_or(usize::MAX),
            drain_timeout,
            shadow,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deploy_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/vxtap.toml");
        let cfg = FileConfig::load(&path).unwrap();
        assert_eq!(cfg.bind, Some("0.0.0.0:4789".parse().unwrap()));
        assert_eq!(cfg.rotate_size.unwrap().bytes().unwrap(), 256 << 20);
        assert_eq!(
            cfg.idle_timeout.unwrap().duration().unwrap(),
            Duration::from_secs(180)
        );
    }

    fn replay_settings(argv: &[&str], toml_text: &str) -> Result<Settings> {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(argv)?;
        let crate::cli::Command::Replay(args) = cli.command else {
            panic!("a replay command line")
        };
        let file: FileConfig = toml::from_str(toml_text)?;
        Settings::resolve(&file, &args.decode, &args.pipeline, &args.privacy, 1)
    }

    #[test]
    fn the_budget_is_split_exactly_and_small_ones_are_refused() {
        let s = replay_settings(
            &[
                "vxtap",
                "replay",
                "--threads",
                "2",
                "--max-memory",
                "16MiB",
                "x",
            ],
            "",
        )
        .unwrap();
        assert_eq!(s.flow_for_worker().max_memory, 8 << 20);
        // Before: each worker's share was raised to 1 MiB without a word.
        let e = replay_settings(
            &[
                "vxtap",
                "replay",
                "--threads",
                "4",
                "--max-memory",
                "2MiB",
                "x",
            ],
            "",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--max-memory"), "{e}");
    }

    #[test]
    fn hole_waits_come_from_the_file_and_the_flags_win() {
        let defaults = replay_settings(&["vxtap", "replay", "x.pcap"], "").unwrap();
        assert_eq!(defaults.flow.hole_timeout_ns, 3_000_000_000);
        assert_eq!(defaults.flow.ack_skip_grace_ns, 100_000_000);
        let file = "hole_timeout = \"5s\"\nack_grace = \"250ms\"";
        let from_file = replay_settings(&["vxtap", "replay", "x.pcap"], file).unwrap();
        assert_eq!(from_file.flow.hole_timeout_ns, 5_000_000_000);
        assert_eq!(from_file.flow.ack_skip_grace_ns, 250_000_000);
        let argv = [
            "vxtap",
            "replay",
            "--ack-grace",
            "20ms",
            "--hole-timeout",
            "1s",
            "x.pcap",
        ];
        let flags = replay_settings(&argv, file).unwrap();
        assert_eq!(flags.flow.hole_timeout_ns, 1_000_000_000);
        assert_eq!(flags.flow.ack_skip_grace_ns, 20_000_000);
        // Every reordered segment would open a gap.
        let zero = ["vxtap", "replay", "--hole-timeout", "0s", "x.pcap"];
        assert!(replay_settings(&zero, "").is_err());
        // Skipping acknowledged holes at once is allowed (a mirror that never reorders).
        let at_once = ["vxtap", "replay", "--ack-grace", "0s", "x.pcap"];
        assert_eq!(
            replay_settings(&at_once, "")
                .unwrap()
                .flow
                .ack_skip_grace_ns,
            0
        );
    }

    fn listen_settings(argv: &[&str]) -> ListenSettings {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Listen(args) = cli.command else {
            panic!("a listen command line")
        };
        ListenSettings::resolve(&args, &FileConfig::default()).unwrap()
    }

    #[test]
    fn every_size_option_takes_the_same_units() {
        let argv = [
            "vxtap",
            "listen",
            "--max-memory",
            "32MiB",
            "--max-body-bytes",
            "4KiB",
            "--rotate-size",
            "1.5GB",
            "--recv-buffer",
            "8 MiB",
        ];
        let l = listen_settings(&argv);
        assert_eq!(l.common.flow.max_memory, 32 << 20);
        assert_eq!(l.common.http.max_body_bytes, 4096);
        assert_eq!(l.rotate_size, Some(1_500_000_000));
        assert_eq!(l.recv_buffer, 8 << 20);
        let r = replay_settings(&["vxtap", "replay", "--max-body-bytes", "1k", "x"], "").unwrap();
        assert_eq!(r.http.max_body_bytes, 1000);
        // The config file too, as text or as a number.
        let file = "max_body_bytes = \"16KiB\"\nmax_memory = \"1GiB\"";
        let r = replay_settings(&["vxtap", "replay", "x"], file).unwrap();
        assert_eq!(r.http.max_body_bytes, 16 << 10);
        assert_eq!(r.flow.max_memory, 1 << 30);
        let r = replay_settings(&["vxtap", "replay", "x"], "max_body_bytes = 100").unwrap();
        assert_eq!(r.http.max_body_bytes, 100);
        assert!(
            replay_settings(&["vxtap", "replay", "--max-body-bytes", "4 KiBs", "x"], "").is_err()
        );
    }

    /// `listen --help` states the defaults (the options are optional so that the config file
    /// can supply them, so clap cannot show them itself): each stated default must be the one
    /// that applies.
    #[test]
    fn listen_help_states_the_real_defaults() {
        use clap::CommandFactory;
        let cmd = crate::cli::Cli::command();
        let listen = cmd.find_subcommand("listen").expect("listen");
        let stated = |id: &str| -> String {
            let arg = listen
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("no --{id}"));
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
            let at = help
                .find("[default: ")
                .unwrap_or_else(|| panic!("--{id} states no default: {help}"));
            let rest = &help[at + "[default: ".len()..];
            rest[..rest.find(']').expect("closing bracket")].to_string()
        };
        let d = listen_settings(&["vxtap", "listen"]);
        let size = |id: &str| parse_size(&stated(id)).unwrap();
        let dur =
            |id: &str| u64::try_from(parse_duration(&stated(id)).unwrap().as_nanos()).unwrap();
        assert_eq!(stated("bind").parse::<SocketAddr>().unwrap(), d.bind);
        assert_eq!(
            stated("admin_bind").parse::<SocketAddr>().unwrap(),
            d.admin_bind
        );
        assert_eq!(size("max_memory"), d.common.flow.max_memory as u64);
        assert_eq!(size("max_body_bytes"), d.common.http.max_body_bytes as u64);
        assert_eq!(size("recv_buffer"), d.recv_buffer as u64);
        assert_eq!(
            stated("max_flows").parse::<usize>().unwrap(),
            d.common.flow.max_flows
        );
        assert_eq!(
            stated("recv_threads").parse::<usize>().unwrap(),
            d.recv_threads
        );
        assert_eq!(dur("idle_timeout"), d.common.flow.idle_timeout_ns);
        assert_eq!(dur("hole_timeout"), d.common.flow.hole_timeout_ns);
        assert_eq!(dur("ack_grace"), d.common.flow.ack_skip_grace_ns);
        assert!(stated("threads").contains("listen one per CPU"));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(d.common.threads, cpus);
        let help = listen.clone().render_long_help().to_string();
        assert!(
            help.contains("SIGHUP") && help.contains("SIGTERM"),
            "{help}"
        );
    }

    #[test]
    fn tunnel_ports_from_the_file_and_the_flags() {
        let d = replay_settings(&["vxtap", "replay", "x.pcap"], "")
            .unwrap()
            .decap;
        assert_eq!(
            (d.vxlan_gpe_ports, d.gre_udp_ports),
            (vec![4790], vec![4754])
        );
        let file = "vxlan_gpe_ports = [4791]\ngre_udp_ports = [4754, 5000]";
        let d = replay_settings(&["vxtap", "replay", "x.pcap"], file)
            .unwrap()
            .decap;
        assert_eq!(
            (d.vxlan_gpe_ports, d.gre_udp_ports),
            (vec![4791], vec![4754, 5000])
        );
        let argv = [
            "vxtap",
            "replay",
            "--vxlan-gpe-port",
            "4792",
            "--gre-udp-port",
            "6000",
            "x.pcap",
        ];
        let d = replay_settings(&argv, file).unwrap().decap;
        assert_eq!(
            (d.vxlan_gpe_ports, d.gre_udp_ports),
            (vec![4792], vec![6000])
        );
    }

    #[test]
    fn drain_timeout_defaults_comes_from_the_file_and_the_flag_wins() {
        use clap::Parser;
        let resolve = |argv: &[&str], toml_text: &str| {
            let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
            let crate::cli::Command::Listen(args) = cli.command else {
                panic!("a listen command line")
            };
            let file: FileConfig = toml::from_str(toml_text).unwrap();
            ListenSettings::resolve(&args, &file).unwrap().drain_timeout
        };
        assert_eq!(resolve(&["vxtap", "listen"], ""), DEFAULT_DRAIN_TIMEOUT);
        let file = "drain_timeout = \"3s\"";
        assert_eq!(resolve(&["vxtap", "listen"], file), Duration::from_secs(3));
        let flag = ["vxtap", "listen", "--drain-timeout", "500ms"];
        assert_eq!(resolve(&flag, file), Duration::from_millis(500));
    }

    #[test]
    fn pending_budgets_come_from_the_file_and_the_flags_win() {
        let d = replay_settings(&["vxtap", "replay", "-t", "2", "x.pcap"], "").unwrap();
        assert_eq!(d.http.max_pending_bytes, 4 << 20);
        assert_eq!(d.http.max_pending_bytes_total, 64 << 20);
        // The total is shared by the workers.
        assert_eq!(d.http_for_worker().max_pending_bytes_total, 32 << 20);
        let file = "max_pending_bytes = \"1MiB\"\nmax_pending_bytes_total = 33554432";
        let f = replay_settings(&["vxtap", "replay", "x.pcap"], file).unwrap();
        assert_eq!(f.http.max_pending_bytes, 1 << 20);
        assert_eq!(f.http.max_pending_bytes_total, 32 << 20);
        let argv = ["vxtap", "replay", "--max-pending-bytes", "8MiB", "x.pcap"];
        let g = replay_settings(&argv, file).unwrap();
        assert_eq!(g.http.max_pending_bytes, 8 << 20);
        assert_eq!(g.http.max_pending_bytes_total, 32 << 20);
    }

    #[test]
    fn uninspectable_policy_from_the_file_and_the_flag() {
        use vxtap_sink::UninspectablePolicy;
        let argv = ["vxtap", "replay", "x.pcap"];
        let default = replay_settings(&argv, "").unwrap();
        assert_eq!(
            default.redact.uninspectable_bodies,
            UninspectablePolicy::Drop
        );
        let file = "[redact]\nuninspectable_bodies = \"keep\"";
        let from_file = replay_settings(&argv, file).unwrap();
        assert_eq!(
            from_file.redact.uninspectable_bodies,
            UninspectablePolicy::Keep
        );
        let flag = [
            "vxtap",
            "replay",
            "--uninspectable-bodies",
            "drop",
            "x.pcap",
        ];
        let flags = replay_settings(&flag, file).unwrap();
        assert_eq!(flags.redact.uninspectable_bodies, UninspectablePolicy::Drop);
        let bad = [
            "vxtap",
            "replay",
            "--uninspectable-bodies",
            "maybe",
            "x.pcap",
        ];
        assert!(replay_settings(&bad, "").is_err());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("bnid = \"x\"").is_err());
    }
}
