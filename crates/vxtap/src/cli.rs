//! Command-line interface (clap derive). Every subcommand shares the same decode, pipeline and
//! privacy option groups so that `replay` and `listen` run exactly the same pipeline.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::size::{parse_duration, parse_size, parse_size_usize};

/// vxtap turns mirrored packets (AWS VPC Traffic Mirroring VXLAN, Geneve, or plain captures)
/// into HTTP exchanges: one JSON object per request/response pair.
#[derive(Debug, Parser)]
#[command(name = "vxtap", version, propagate_version = true)]
// Every example runs as written from a checkout (tests/cli.rs runs them), so a renamed
// fixture or flag breaks the build rather than a new user's first try.
#[command(after_help = "EXAMPLES:
  vxtap replay pcaps/vxlan/mixed-vni101.pcap                  exchanges as JSON lines on stdout
  vxtap replay --threads 2 -o out.jsonl pcaps/vxlan/mixed-vni101.pcap   two workers, to a file
  vxtap stats pcaps/vxlan/mixed-both-enis-vni201-202.pcap --json   counts per VNI and protocol
  vxtap encap pcaps/plain/http-keepalive.pcap mirrored.pcap --vni 101   wrap as AWS would
  vxtap decap mirrored.pcap inner.pcapng                      inner frames, VNI in comments
  vxtap listen --bind 0.0.0.0:4789 --admin-bind 0.0.0.0:9090 -o /var/lib/vxtap/x.jsonl
  vxtap send mirrored.pcap --to 127.0.0.1:4789 --pps 100000 --loop 10   load generator
  vxtap compare out.jsonl out.jsonl -o cmp.jsonl --summary cmp.json   production vs candidate")]
pub struct Cli {
    /// Log format for diagnostics on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay pcap/pcapng files (optionally .gz) and write exchanges as JSON lines.
    Replay(Box<ReplayArgs>),
    /// Receive mirrored VXLAN on UDP (the appliance) and write exchanges as JSON lines.
    Listen(Box<ListenArgs>),
    /// Send the requests of capture files to a candidate service (shadow replay): one JSON line
    /// per exchange with what was sent, skipped or failed and both sides' answers.
    Shadow(Box<ShadowArgs>),
    /// Wrap a plain capture in VXLAN exactly as AWS VPC Traffic Mirroring would.
    Encap(EncapArgs),
    /// Write the inner frames of a mirrored capture as a pcapng (VNI in comments) or pcap.
    Decap(DecapArgs),
    /// Count packets and bytes per VNI, tunnel kind and inner protocol; rejections by reason.
    Stats(StatsArgs),
    /// Send a capture's packets as VXLAN datagrams to a vxtap listener (load generator).
    Send(SendArgs),
    /// Compare two exchange files (production first, e.g. blue and green mirrors), pairing
    /// identical requests: one record per pair with its differences, and a per-endpoint summary.
    Compare(Box<crate::compare::CompareArgs>),
    /// One self-contained HTML report of the endpoints (captures or exchange files).
    Report(Box<ExportArgs>),
    /// Infer an OpenAPI 3.1 document, or compare two (`--diff OLD NEW`).
    Openapi(Box<OpenapiArgs>),
    /// Export exchanges as HAR 1.2 (streamed).
    Har(Box<ExportArgs>),
    /// Write a k6 script reproducing the observed endpoint mix and rate.
    K6(Box<K6Args>),
    /// Read exchange records back from Kafka as a consumer-group member and write them on.
    Consume(Box<ConsumeArgs>),
}

/// Inputs and pipeline of the offline exports (`report`, `openapi`, `har`, `k6`).
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Captures (pcap, pcapng, optionally .gz) or exchange files (JSON lines from `replay`).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output file [default: stdout].
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Configuration file (TOML), as for replay.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Endpoints kept (the rest are counted together).
    #[arg(long, default_value_t = vxtap_report::endpoint::DEFAULT_MAX_ENDPOINTS)]
    pub max_endpoints: usize,
    #[command(flatten)]
    pub decode: DecodeOpts,
    #[command(flatten)]
    pub pipeline: PipelineOpts,
    #[command(flatten)]
    pub privacy: PrivacyOpts,
}

/// `vxtap openapi`.
#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// Compare two documents (or captures, or exchange files: inferred first) given as the two
    /// inputs, old then new; exits 1 when a change breaks existing clients.
    #[arg(long)]
    pub diff: bool,
    #[command(flatten)]
    pub export: ExportArgs,
}

/// `vxtap k6`.
#[derive(Debug, Args)]
pub struct K6Args {
    /// Rate multiplier over the observed rate.
    #[arg(long, default_value_t = 1.0)]
    pub multiplier: f64,
    /// Methods replayed (repeatable) [default: GET, HEAD, OPTIONS].
    #[arg(long = "replay-method", value_name = "METHOD")]
    pub replay_methods: Vec<String>,
    #[command(flatten)]
    pub export: ExportArgs,
}

/// Arguments of `vxtap consume`.
#[derive(Debug, Args)]
#[command(after_help = "SIGNALS:
  SIGTERM, SIGINT  stop reading, flush the output, commit what was written, exit")]
pub struct ConsumeArgs {
    /// The topic: kafka://BROKER[,BROKER...]/TOPIC.
    pub source: String,
    /// Consumer group: the members of a group share the topic's partitions.
    #[arg(long)]
    pub group: String,
    /// Write the records here (JSON lines, or another kafka:// topic) instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// TOML config file: [output.kafka] holds the client options (TLS, SASL) for both sides,
    /// and the HTTP-level filters and redaction apply as in `replay`.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Exit once no record arrived for this long (default: run until a signal).
    #[arg(long, value_parser = parse_duration)]
    pub idle_exit: Option<std::time::Duration>,
    /// Exit after this many records.
    #[arg(long)]
    pub max_records: Option<u64>,
    /// Print no summary on stderr at the end.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub privacy: PrivacyOpts,
}

/// How packets are decapsulated.
#[derive(Debug, Clone, Args)]
pub struct DecodeOpts {
    /// UDP destination ports carrying VXLAN (repeatable).
    #[arg(long = "vxlan-port", value_name = "PORT", default_values_t = [4789u16])]
    pub vxlan_ports: Vec<u16>,
    /// UDP destination ports carrying VXLAN-GPE, where the P flag and next protocol are read
    /// (repeatable). On plain VXLAN ports those bits are reserved and ignored (RFC 7348).
    #[arg(long = "vxlan-gpe-port", value_name = "PORT", default_values_t = [4790u16])]
    pub vxlan_gpe_ports: Vec<u16>,
    /// UDP destination ports carrying Geneve (repeatable).
    #[arg(long = "geneve-port", value_name = "PORT", default_values_t = [6081u16])]
    pub geneve_ports: Vec<u16>,
    /// UDP destination ports carrying GRE-in-UDP, RFC 8086 (repeatable).
    #[arg(long = "gre-udp-port", value_name = "PORT", default_values_t = [4754u16])]
    pub gre_udp_ports: Vec<u16>,
    /// Maximum number of nested tunnels to peel.
    #[arg(long, default_value_t = 4)]
    pub max_tunnel_depth: u8,
    /// Count inner IPv4/TCP checksum errors (off by default: AWS offload makes them wrong).
    #[arg(long)]
    pub validate_checksums: bool,
}

/// Flow-table key: the inner 5-tuple only, or with the mirror session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKeyArg {
    /// Inner 5-tuple: a connection mirrored from both ENIs is seen once.
    FiveTuple,
    /// Inner 5-tuple plus (VNI, outer source): for overlapping VPC address spaces.
    Session,
}

/// Reassembly, HTTP and resource limits shared by `replay` and `listen`.
#[derive(Debug, Clone, Args)]
pub struct PipelineOpts {
    /// Flow-sharded worker threads [default: replay 1, which runs inline on the reading
    /// thread; listen one per CPU].
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// What identifies a connection.
    #[arg(long, value_enum)]
    pub flow_key: Option<FlowKeyArg>,
    /// Memory budget for everything that grows with traffic [default: 64MiB]: connections,
    /// reassembly buffers, partial heads, pending requests, captured bodies, decoders and the
    /// worker queues, charged as allocated. Split evenly across workers; when it binds, the
    /// least recently used connections are evicted (flag `evicted`). The worker queues take
    /// their share first (listen: up to a quarter, fewer queued batches with a smaller budget);
    /// a budget too small for the workers is refused, never raised. Peak RSS stays within it
    /// plus a fixed overhead (see README).
    #[arg(long, value_parser = parse_size)]
    pub max_memory: Option<u64>,
    /// Maximum concurrent connections tracked, across all workers [default: 1000000].
    #[arg(long)]
    pub max_flows: Option<usize>,
    /// Idle time after which a connection is closed (flag `timeout`) [default: 120s].
    #[arg(long, value_parser = parse_duration)]
    pub idle_timeout: Option<std::time::Duration>,
    /// How long a hole in a stream waits for its data before it is skipped as a gap (packet
    /// time) [default: 3s].
    #[arg(long, value_parser = parse_duration)]
    pub hole_timeout: Option<std::time::Duration>,
    /// How long a hole the peer has already acknowledged still waits for its data: on a
    /// reordering mirror path acks overtake the data they cover (packet time) [default: 100ms].
    #[arg(long, value_parser = parse_duration)]
    pub ack_grace: Option<std::time::Duration>,
    /// Bytes of each body kept in the record (0 = none; units as for --max-memory)
    /// [default: 4KiB].
    #[arg(long, value_parser = parse_size_usize)]
    pub max_body_bytes: Option<usize>,
    /// Bytes of pending request records (requests awaiting responses) kept per connection;
    /// beyond it requests keep only a compact placeholder (default 4MiB).
    #[arg(long, value_parser = parse_size)]
    pub max_pending_bytes: Option<u64>,
    /// Bytes of pending request records kept across all connections, split across workers
    /// (default 64MiB).
    #[arg(long, value_parser = parse_size)]
    pub max_pending_bytes_total: Option<u64>,
    /// Inflate gzip/deflate/br/zstd bodies into the record (bounded).
    #[arg(long)]
    pub decode_content: bool,
    /// Add a schemaless protobuf dump (field number, wire type, value) to each captured gRPC
    /// message.
    #[arg(long)]
    pub grpc_decode: bool,
}

/// Privacy and cost controls (redaction, sampling, filters).
#[derive(Debug, Clone, Args)]
pub struct PrivacyOpts {
    /// Turn redaction of secrets off (it is on by default).
    #[arg(long)]
    pub no_redact: bool,
    /// Environment variable holding the HMAC key for redacted values.
    #[arg(long, value_name = "VAR")]
    pub redact_key_env: Option<String>,
    /// What to do with a text-like body redaction cannot inspect (a content coding it cannot
    /// decode, or content past the decode bound): drop it (body null, flagged body_dropped) or
    /// keep it as captured; both flag uninspectable [default: drop].
    #[arg(long, value_name = "drop|keep")]
    pub uninspectable_bodies: Option<vxtap_sink::UninspectablePolicy>,
    /// Keep this share of connections (0 < rate <= 1), decided per connection.
    #[arg(long, value_name = "RATE")]
    pub sample: Option<f64>,
    /// Seed of the sampling hash: the same on every instance of a fleet.
    #[arg(long)]
    pub sample_seed: Option<u64>,
    /// Keep only packets with an inner address in this CIDR (repeatable).
    #[arg(long = "cidr", value_name = "CIDR")]
    pub cidrs: Vec<String>,
    /// Keep only packets with this inner TCP port on either side (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Keep only these VNIs (repeatable).
    #[arg(long = "vni-allow", value_name = "VNI")]
    pub vni_allow: Vec<u32>,
    /// Drop these VNIs (repeatable).
    #[arg(long = "vni-deny", value_name = "VNI")]
    pub vni_deny: Vec<u32>,
    /// Keep only exchanges for this Host (exact, or `*.example.com`; repeatable).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Keep only exchanges whose path starts with this prefix (repeatable).
    #[arg(long = "path-prefix", value_name = "PREFIX")]
    pub path_prefixes: Vec<String>,
    /// Keep only exchanges with this method (repeatable).
    #[arg(long = "method", value_name = "METHOD")]
    pub methods: Vec<String>,
    /// Keep only exchanges with this status (`404`, `5xx`; repeatable).
    #[arg(long = "status", value_name = "STATUS")]
    pub statuses: Vec<String>,
}

/// Arguments of `vxtap replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture files (pcap, pcapng, optionally gzip-compressed; `-` for stdin).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Write JSON lines here instead of stdout, or to Kafka: kafka://BROKER[,BROKER...]/TOPIC.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Kafka output: spool what the broker cannot take to this directory (see `listen`).
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Optional TOML config file (same keys as `listen`).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Print no summary on stderr at the end.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub decode: DecodeOpts,
    #[command(flatten)]
    pub pipeline: PipelineOpts,
    #[command(flatten)]
    pub privacy: PrivacyOpts,
}

/// Arguments of `vxtap listen`.
#[derive(Debug, Args)]
#[command(
    after_help = "Defaults apply when neither a flag nor the config file (-c) sets a value; \
a flag overrides the file.

SIGNALS:
  SIGTERM, SIGINT  stop receiving, drain the workers and the output, print the totals, exit
  SIGHUP           reopen the output file (after logrotate moved it)"
)]
pub struct ListenArgs {
    /// TOML config file; flags given on the command line override it.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// UDP address to receive mirrored VXLAN on [default: 0.0.0.0:4789].
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Admin HTTP address (/metrics, /healthz, /readyz) [default: 127.0.0.1:9090].
    #[arg(long)]
    pub admin_bind: Option<SocketAddr>,
    /// Write JSON lines here instead of stdout, or to Kafka: kafka://BROKER[,BROKER...]/TOPIC
    /// (client options in the config file's [output.kafka]).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Kafka output: records the broker cannot take now (queue full, broker unreachable,
    /// undelivered at shutdown) go to a bounded spool in this directory, replayed in order.
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Rotate the output file when it reaches this size.
    #[arg(long, value_parser = parse_size)]
    pub rotate_size: Option<u64>,
    /// Rotate the output file at this interval.
    #[arg(long, value_parser = parse_duration)]
    pub rotate_interval: Option<std::time::Duration>,
    /// Receive threads (each with its own SO_REUSEPORT socket) [default: 1].
    #[arg(long)]
    pub recv_threads: Option<usize>,
    /// Requested socket receive buffer [default: 256MiB].
    #[arg(long, value_parser = parse_size)]
    pub recv_buffer: Option<u64>,
    /// Accept datagrams only from these source CIDRs (repeatable; default: any).
    #[arg(long = "allow-source", value_name = "CIDR")]
    pub allow_source: Vec<String>,
    /// On SIGTERM/SIGINT, how long to wait for the queued records to be written before
    /// giving up (exit status 1, reporting how many were not written) [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub drain_timeout: Option<std::time::Duration>,
    /// Shadow replay beside the JSON output: send the mirrored requests to this candidate
    /// (see `vxtap shadow --help`).
    #[arg(long, value_name = "URL")]
    pub shadow_target: Option<String>,
    /// Shadow records (JSON lines); required with --shadow-target.
    #[arg(long, requires = "shadow_target")]
    pub shadow_output: Option<PathBuf>,
    /// Shadow summary (JSON), written at shutdown.
    #[arg(long, requires = "shadow_target")]
    pub shadow_summary: Option<PathBuf>,
    #[command(flatten)]
    pub shadow: ShadowOpts,
    /// Exit after this long (for tests and benchmarks).
    #[arg(long, value_parser = parse_duration, hide = true)]
    pub run_for: Option<std::time::Duration>,
    /// Worker 0 stops working after this long (tests `/readyz`).
    #[arg(long, value_parser = parse_duration, hide = true)]
    pub test_stall_worker_after: Option<std::time::Duration>,
    #[command(flatten)]
    pub decode: DecodeOpts,
    #[command(flatten)]
    pub pipeline: PipelineOpts,
    #[command(flatten)]
    pub privacy: PrivacyOpts,
}

/// How shadow requests are made and paced (`vxtap shadow`, `vxtap listen --shadow-target`).
#[derive(Debug, Clone, Args)]
pub struct ShadowOpts {
    /// `host:port` (or URL) the target must be one of; refused otherwise. Without it only the
    /// explicit target is ever sent to (redirects are never followed).
    #[arg(long = "allow-target", value_name = "HOST:PORT")]
    pub allow_targets: Vec<String>,
    /// Set a header on every shadow request, e.g. `--target-header 'Host: candidate.internal'`
    /// (the captured Host is kept otherwise).
    #[arg(long = "target-header", value_name = "'NAME: VALUE'")]
    pub target_headers: Vec<String>,
    /// Set a header on every shadow request (e.g. a test token); replaces a captured one.
    #[arg(long = "set-header", value_name = "'NAME: VALUE'")]
    pub set_headers: Vec<String>,
    /// Keep a credential header (Authorization, Cookie, Proxy-Authorization are dropped).
    #[arg(long = "keep-header", value_name = "NAME")]
    pub keep_headers: Vec<String>,
    /// Methods replayed (comma-separated); default GET,HEAD,OPTIONS. Widening it replays
    /// writes: only against a candidate whose writes go nowhere real.
    #[arg(long = "methods", value_delimiter = ',', value_name = "METHODS")]
    pub replay_methods: Vec<String>,
    /// Keep production's inter-arrival times scaled by X (packet timestamps); 0 = as fast as
    /// the other limits allow.
    #[arg(long, default_value_t = 0.0, value_name = "X")]
    pub speed: f64,
    /// At most N requests per second (0 = no cap).
    #[arg(long, default_value_t = 0.0, value_name = "N")]
    pub rate: f64,
    /// At most N requests in flight.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub concurrency: usize,
    /// Per-request timeout (connect included).
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub request_timeout: std::time::Duration,
    /// Consecutive failures (errors, timeouts) that open the circuit breaker.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe request.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub breaker_cooldown: std::time::Duration,
    /// Request (and response) body bytes kept for replay and comparison, independent of
    /// --max-body-bytes; a longer request body is skipped (`body_too_large`).
    #[arg(long, value_parser = parse_size_usize, default_value = "1MiB")]
    pub shadow_max_body: usize,
    /// Exchanges queued or in flight at most (their bytes are charged to --max-memory).
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub shadow_queue: usize,
    /// Threads of the shadow sender.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub shadow_threads: usize,
}

/// Arguments of `vxtap shadow`.
#[derive(Debug, Args)]
#[command(
    after_help = "Only GET, HEAD and OPTIONS are sent unless --methods widens it; every \
request carries `x-vxtap-shadow: 1` and mirrored requests carrying it are never replayed; \
Authorization, Cookie and Proxy-Authorization are dropped unless --keep-header; redirects are \
never followed; request bodies not captured whole are never sent.

EXAMPLES:
  vxtap shadow --target http://127.0.0.1:8080 pcaps/plain/http-keepalive.pcap
  vxtap shadow --target http://127.0.0.1:8080 --speed 1 --summary s.json -o r.jsonl pcaps/plain/http-mixed.pcap
  vxtap shadow --target http://127.0.0.1:8080 --target-header 'Host: candidate' --methods GET,POST --rate 100 pcaps/plain/http-post-large.pcap"
)]
pub struct ShadowArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The candidate: http://host[:port] or https://host[:port].
    #[arg(long)]
    pub target: String,
    /// Records (JSON lines); stdout by default.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Per-endpoint and overall summary (JSON) at the end; the table goes to stderr anyway.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Longest wait at the end for queued and in-flight requests.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub drain_timeout: std::time::Duration,
    #[command(flatten)]
    pub shadow: ShadowOpts,
    #[command(flatten)]
    pub decode: DecodeOpts,
    #[command(flatten)]
    pub pipeline: PipelineOpts,
    #[command(flatten)]
    pub privacy: PrivacyOpts,
}

/// Arguments of `vxtap encap`.
#[derive(Debug, Args)]
pub struct EncapArgs {
    /// Plain capture to wrap.
    pub input: PathBuf,
    /// Output pcap of VXLAN datagrams.
    pub output: PathBuf,
    /// The mirror session's virtual network id (24 bits).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..(1 << 24)))]
    pub vni: u32,
    /// Cut each inner frame to this many bytes, as a mirror session's packet length does.
    #[arg(long, value_name = "BYTES")]
    pub truncate: Option<usize>,
    /// Outer IP source (the mirror source ENI).
    #[arg(long, default_value = "10.0.1.10")]
    pub outer_src: IpAddr,
    /// Outer IP destination (the mirror target).
    #[arg(long, default_value = "10.0.2.20")]
    pub outer_dst: IpAddr,
}

/// Arguments of `vxtap decap`.
#[derive(Debug, Args)]
pub struct DecapArgs {
    /// Mirrored capture.
    pub input: PathBuf,
    /// Output file: pcapng with the VNI in each packet's comment, or with --per-vni a
    /// directory-less prefix for one plain pcap per VNI (`OUT.vni-N.pcap`).
    pub output: PathBuf,
    /// Write one plain pcap per VNI instead of one pcapng.
    #[arg(long)]
    pub per_vni: bool,
    #[command(flatten)]
    pub decode: DecodeOpts,
}

/// Arguments of `vxtap stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Capture files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub decode: DecodeOpts,
}

/// Arguments of `vxtap send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Capture to send: VXLAN datagrams are sent as they are, other frames wrapped AWS-style.
    pub file: PathBuf,
    /// Destination (a vxtap listener or the NLB).
    #[arg(long)]
    pub to: SocketAddr,
    /// Packets per second (default: as fast as possible).
    #[arg(long, conflicts_with = "speed")]
    pub pps: Option<u64>,
    /// Replay at this multiple of the capture's own timing (1 = real time).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Send the file this many times.
    #[arg(long = "loop", default_value_t = 1)]
    pub loops: u64,
    /// VNI for frames that are wrapped.
    #[arg(long, default_value_t = 1)]
    pub vni: u32,
    /// Datagrams per sendmmsg call.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
}
