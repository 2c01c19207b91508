//! Packet-level filters (before reassembly) and exchange-level filters (after parsing).
//!
//! [`PacketFilter`] runs once per segment on the hot path: it does not allocate, and its lists
//! are scanned linearly because they are short. Its flow sampling is decided by a seeded hash of
//! the direction-independent inner 5-tuple, so both directions of a connection, every packet of
//! it and every instance of a fleet configured with the same seed agree: a kept connection is
//! always whole.

use crate::SinkError;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;
use vxtap_http::Exchange;
use vxtap_wire::Segment;

/// Packet filter options (the `[filter]` table of the configuration file and the matching
/// command-line flags). Every empty list means "no restriction".
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PacketFilterConfig {
    /// Inner CIDRs or bare IPs; a segment is kept when either endpoint is in one of them.
    pub cidrs: Vec<String>,
    /// Inner TCP ports; a segment is kept when either port is listed.
    pub ports: Vec<u16>,
    /// VNIs to keep; when non-empty, segments with another VNI or none are dropped.
    pub vni_allow: Vec<u32>,
    /// VNIs to drop.
    pub vni_deny: Vec<u32>,
    /// Allowed mirror sources (outer IP), CIDRs or bare IPs; when non-empty, segments from
    /// another source or without a tunnel are dropped.
    pub allow_source: Vec<String>,
    /// Share of connections to keep, in (0, 1]; `None` keeps all (`--sample`).
    pub sample: Option<f64>,
    /// Seed of the sampling hash; every instance of a fleet must use the same one.
    pub sample_seed: u64,
}

/// Why a segment was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterReason {
    /// The connection is not in the sample.
    SampledOut,
    /// Neither inner endpoint is in the CIDR list.
    Cidr,
    /// Neither inner port is in the port list.
    Port,
    /// The VNI is in the deny list.
    VniDenied,
    /// The VNI (or its absence) is not in the allow list.
    VniNotAllowed,
    /// The mirror source (or its absence) is not in the allowed sources.
    SourceNotAllowed,
}

impl FilterReason {
    /// Every reason, in the order of [`FilterStats::iter`].
    pub const ALL: [FilterReason; 6] = [
        FilterReason::SampledOut,
        FilterReason::Cidr,
        FilterReason::Port,
        FilterReason::VniDenied,
        FilterReason::VniNotAllowed,
        FilterReason::SourceNotAllowed,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterReason::SampledOut => "sampled_out",
            FilterReason::Cidr => "cidr",
            FilterReason::Port => "port",
            FilterReason::VniDenied => "vni_denied",
            FilterReason::VniNotAllowed => "vni_not_allowed",
            FilterReason::SourceNotAllowed => "source_not_allowed",
        }
    }
}

/// What the packet filter decided for a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Pass the segment on to reassembly.
    Keep,
    /// Drop it, for this reason.
    Drop(FilterReason),
}

impl Decision {
    /// True for [`Decision::Keep`].
    pub fn is_keep(self) -> bool {
        matches!(self, Decision::Keep)
    }
}

/// Packet counters by decision; one per worker, merged for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// Segments kept.
    pub kept: u64,
    /// Segments of connections outside the sample.
    pub sampled_out: u64,
    /// Segments dropped by the CIDR list.
    pub cidr: u64,
    /// Segments dropped by the port list.
    pub port: u64,
    /// Segments dropped by the VNI deny list.
    pub vni_denied: u64,
    /// Segments dropped by the VNI allow list.
    pub vni_not_allowed: u64,
    /// Segments dropped by the allowed mirror sources.
    pub source_not_allowed: u64,
}

impl FilterStats {
    /// Counts one decision.
    #[inline]
    pub fn record(&mut self, d: Decision) {
        match d {
            Decision::Keep => self.kept += 1,
            Decision::Drop(r) => *self.slot(r) += 1,
        }
    }

    fn slot(&mut self, r: FilterReason) -> &mut u64 {
        match r {
            FilterReason::SampledOut => &mut self.sampled_out,
            FilterReason::Cidr => &mut self.cidr,
            FilterReason::Port => &mut self.port,
            FilterReason::VniDenied => &mut self.vni_denied,
            FilterReason::VniNotAllowed => &mut self.vni_not_allowed,
            FilterReason::SourceNotAllowed => &mut self.source_not_allowed,
        }
    }

    /// The count of drops for one reason.
    pub fn dropped_for(&self, r: FilterReason) -> u64 {
        let mut copy = *self;
        *copy.slot(r)
    }

    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        FilterReason::ALL.iter().map(|&r| self.dropped_for(r)).sum()
    }

    /// Adds another worker's counters to these.
    pub fn merge(&mut self, other: &FilterStats) {
        self.kept += other.kept;
        for r in FilterReason::ALL {
            *self.slot(r) += other.dropped_for(r);
        }
    }

    /// `(reason label, drops)` for every reason, for the metrics exporter.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        FilterReason::ALL
            .into_iter()
            .map(|r| (r.as_str(), self.dropped_for(r)))
    }
}

/// Parses a CIDR, accepting a bare address as a single-host network.
pub fn parse_cidr(s: &str) -> Result<IpNet, SinkError> {
    let t = s.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| SinkError::InvalidCidr(s.to_string()))
}

fn in_any(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

/// The cheap per-segment filter. Immutable after construction; counters live in a
/// [`FilterStats`] owned by the caller so each worker counts without sharing.
#[derive(Clone, Debug, Default)]
pub struct PacketFilter {
    cidrs: Vec<IpNet>,
    ports: Vec<u16>,
    vni_allow: Vec<u32>,
    vni_deny: Vec<u32>,
    allow_source: Vec<IpNet>,
    /// Keep a connection when its hash is below this; `None` keeps all.
    threshold: Option<u64>,
    sample: Option<f64>,
    seed: u64,
}

impl PacketFilter {
    /// Builds a filter; fails on a bad CIDR or a sample rate outside (0, 1].
    pub fn new(cfg: &PacketFilterConfig) -> Result<Self, SinkError> {
        let threshold = match cfg.sample {
            None => None,
            Some(r) if !(r > 0.0 && r <= 1.0) => return Err(SinkError::InvalidSampleRate(r)),
            Some(r) if r >= 1.0 => None,
            // 2^64 * r, computed in f64: the rounding error (< 2^-52 relative) is far below
            // any rate anyone would configure.
            Some(r) => Some((r * 18_446_744_073_709_551_616.0) as u64),
        };
        Ok(PacketFilter {
            cidrs: cfg
                .cidrs
                .iter()
                .map(|s| parse_cidr(s))
                .collect::<Result<_, _>>()?,
            ports: cfg.ports.clone(),
            vni_allow: cfg.vni_allow.clone(),
            vni_deny: cfg.vni_deny.clone(),
            allow_source: cfg
                .allow_source
                .iter()
                .map(|s| parse_cidr(s))
                .collect::<Result<_, _>>()?,
            threshold,
            sample: cfg.sample.filter(|&r| r < 1.0),
            seed: cfg.sample_seed,
        })
    }

    /// The effective sample rate, `None` when every connection is kept; put it on records and
    /// in metrics so counts can be scaled back up.
    pub fn sample_rate(&self) -> Option<f64> {
        self.sample
    }

    /// True when the filter can drop nothing (the caller may skip it).
    pub fn is_pass_all(&self) -> bool {
        self.cidrs.is_empty()
            && self.ports.is_empty()
            && self.vni_allow.is_empty()
            && self.vni_deny.is_empty()
            && self.allow_source.is_empty()
            && self.threshold.is_none()
    }

    /// True when a tunnel from this outer source is allowed (for the receive thread, which can
    /// check before decapsulating).
    #[inline]
    pub fn allows_source(&self, ip: IpAddr) -> bool {
        self.allow_source.is_empty() || in_any(&self.allow_source, ip)
    }

    /// True when the connection between these endpoints is in the sample (either order).
    #[inline]
    pub fn sampled(&self, a_ip: IpAddr, a_port: u16, b_ip: IpAddr, b_port: u16) -> bool {
        match self.threshold {
            None => true,
            Some(t) => flow_hash(self.seed, a_ip, a_port, b_ip, b_port) < t,
        }
    }

    /// Decides for one segment. Sampling is checked last so `sampled_out` counts only traffic
    /// that the other filters would have kept (that is what the rate scales).
    #[inline]
    pub fn decide(&self, seg: &Segment<'_>) -> Decision {
        if !self.allow_source.is_empty()
            && !seg
                .mirror_source
                .is_some_and(|ip| in_any(&self.allow_source, ip))
        {
            return Decision::Drop(FilterReason::SourceNotAllowed);
        }
        if let Some(vni) = seg.vni {
            if self.vni_deny.contains(&vni) {
                return Decision::Drop(FilterReason::VniDenied);
            }
        }
        if !self.vni_allow.is_empty() && !seg.vni.is_some_and(|v| self.vni_allow.contains(&v)) {
            return Decision::Drop(FilterReason::VniNotAllowed);
        }
        if !self.cidrs.is_empty()
            && !in_any(&self.cidrs, seg.src_ip)
            && !in_any(&self.cidrs, seg.dst_ip)
        {
            return Decision::Drop(FilterReason::Cidr);
        }
        if !self.ports.is_empty()
            && !self.ports.contains(&seg.src_port)
            && !self.ports.contains(&seg.dst_port)
        {
            return Decision::Drop(FilterReason::Port);
        }
        if !self.sampled(seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port) {
            return Decision::Drop(FilterReason::SampledOut);
        }
        Decision::Keep
    }

    /// Decides for one segment and counts the decision.
    #[inline]
    pub fn check(&self, seg: &Segment<'_>, stats: &mut FilterStats) -> Decision {
        let d = self.decide(seg);
        stats.record(d);
        d
    }
}

/// Folded 64x64→128 multiply (wyhash's mixer): fast and well distributed.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

/// Splits an address into two words plus a family tag, so v4 and v6 never collide.
#[inline]
fn ip_words(ip: IpAddr) -> (u64, u64, u64) {
    match ip {
        IpAddr::V4(v4) => (0, u64::from(u32::from(v4)), 4),
        IpAddr::V6(v6) => {
            let x = u128::from(v6);
            ((x >> 64) as u64, x as u64, 6)
        }
    }
}

/// The seeded, direction-independent flow hash used for sampling.
///
/// This function is a fleet-wide contract: instances running different versions must compute
/// the same value, so it is fixed here (not `RandomState`, not `std::hash`, which may change
/// between Rust releases) and must not change without a note in the changelog.
pub fn flow_hash(seed: u64, a_ip: IpAddr, a_port: u16, b_ip: IpAddr, b_port: u16) -> u64 {
    const P0: u64 = 0xa076_1d64_78bd_642f;
    const P1: u64 = 0xe703_7ed1_a0b4_28db;
    const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
    const P3: u64 = 0x5899_65cc_7537_4cc3;
    let (a, b) = (ip_words(a_ip), ip_words(b_ip));
    // Order the endpoints so both directions hash the same tuple.
    let ((lo, lo_port), (hi, hi_port)) = if (a, a_port) <= (b, b_port) {
        ((a, a_port), (b, b_port))
    } else {
        ((b, b_port), (a, a_port))
    };
    let ports = (u64::from(lo_port) << 32) | (u64::from(hi_port) << 16) | (lo.2 << 8) | 6;
    let mut h = seed ^ P0;
    h = fold_mul(h ^ lo.0 ^ P1, lo.1 ^ P2);
    h = fold_mul(h ^ hi.0 ^ P3, hi.1 ^ P1);
    h = fold_mul(h ^ ports ^ P2, P3 ^ hi.2);
    // A final avalanche so the high bits, which the threshold compares, depend on all input.
    fold_mul(h ^ P0, P1)
}

/// HTTP-level filter options (the `[filter.http]` table / matching flags). Kinds combine with
/// AND; entries within a kind combine with OR; an empty list does not restrict.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangeFilterConfig {
    /// Hosts (from the Host header or an absolute URI), exact or `*.suffix` (any subdomain,
    /// not the bare suffix itself); case-insensitive, port ignored.
    pub hosts: Vec<String>,
    /// Path prefixes of the request target (query excluded), e.g. `/api/`.
    pub path_prefixes: Vec<String>,
    /// Methods, case-insensitive.
    pub methods: Vec<String>,
    /// Statuses: `404`, a class `5xx`, or a range `500-504`.
    pub statuses: Vec<String>,
}

/// Why an exchange was dropped by the HTTP-level filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExchangeFilterReason {
    /// The host did not match (or there was no request).
    Host,
    /// The path did not match (or there was no request).
    Path,
    /// The method did not match (or there was no request).
    Method,
    /// The status did not match (or there was no response).
    Status,
}

impl ExchangeFilterReason {
    /// Every reason, in the order of [`ExchangeFilterStats::iter`].
    pub const ALL: [ExchangeFilterReason; 4] = [
        ExchangeFilterReason::Host,
        ExchangeFilterReason::Path,
        ExchangeFilterReason::Method,
        ExchangeFilterReason::Status,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeFilterReason::Host => "host",
            ExchangeFilterReason::Path => "path",
            ExchangeFilterReason::Method => "method",
            ExchangeFilterReason::Status => "status",
        }
    }
}

/// What the HTTP-level filter decided for an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeDecision {
    /// Pass it on.
    Keep,
    /// Drop it, for this reason.
    Drop(ExchangeFilterReason),
}

/// Exchange counters by decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeFilterStats {
    /// Exchanges kept.
    pub kept: u64,
    /// Dropped by the host filter.
    pub host: u64,
    /// Dropped by the path filter.
    pub path: u64,
    /// Dropped by the method filter.
    pub method: u64,
    /// Dropped by the status filter.
    pub status: u64,
}

impl ExchangeFilterStats {
    /// Counts one decision.
    pub fn record(&mut self, d: ExchangeDecision) {
        match d {
            ExchangeDecision::Keep => self.kept += 1,
            ExchangeDecision::Drop(ExchangeFilterReason::Host) => self.host += 1,
            ExchangeDecision::Drop(ExchangeFilterReason::Path) => self.path += 1,
            ExchangeDecision::Drop(ExchangeFilterReason::Method) => self.method += 1,
            ExchangeDecision::Drop(ExchangeFilterReason::Status) => self.status += 1,
        }
    }

    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.host + self.path + self.method + self.status
    }

    /// Adds another instance's counters to these.
    pub fn merge(&mut self, o: &ExchangeFilterStats) {
        self.kept += o.kept;
        self.host += o.host;
        self.path += o.path;
        self.method += o.method;
        self.status += o.status;
    }

    /// `(reason label, drops)` for every reason, for the metrics exporter.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("host", self.host),
            ("path", self.path),
            ("method", self.method),
            ("status", self.status),
        ]
        .into_iter()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// Stored with its leading dot: `.example.com`.
    Suffix(String),
}

/// The HTTP-level filter, applied after parsing.
#[derive(Clone, Debug, Default)]
pub struct ExchangeFilter {
    hosts: Vec<HostPattern>,
    path_prefixes: Vec<String>,
    methods: Vec<String>,
    statuses: Vec<(u16, u16)>,
}

fn parse_status(s: &str) -> Result<(u16, u16), SinkError> {
    let t = s.trim();
    let bad = || SinkError::InvalidStatus(s.to_string());
    let lower = t.to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        let c: u16 = class.parse().map_err(|_| bad())?;
        if !(1..=9).contains(&c) {
            return Err(bad());
        }
        return Ok((c * 100, c * 100 + 99));
    }
    let (lo, hi) = match t.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (t, t),
    };
    let lo: u16 = lo.parse().map_err(|_| bad())?;
    let hi: u16 = hi.parse().map_err(|_| bad())?;
    if lo > hi || hi > 999 {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// The host of a request: the Host header, else the authority of an absolute-form target;
/// lowercased, port and trailing dot removed.
fn request_host(ex: &Exchange) -> Option<String> {
    let req = ex.request.as_ref()?;
    let raw = req
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim())
        .or_else(|| {
            let uri = req.uri.as_deref()?;
            let rest = uri.split_once("://")?.1;
            Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
        })?;
    let host = if let Some(v6) = raw.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// The path of a request target, for origin-form and absolute-form alike.
fn request_path(uri: &str) -> &str {
    let after_authority = match uri.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => uri,
    };
    after_authority
        .split(['?', '#'])
        .next()
        .unwrap_or(after_authority)
}

impl ExchangeFilter {
    /// Builds a filter; fails on a malformed host pattern or status selector.
    pub fn new(cfg: &ExchangeFilterConfig) -> Result<Self, SinkError> {
        let hosts = cfg
            .hosts
            .iter()
            .map(|h| {
                let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
                if let Some(suffix) = h.strip_prefix("*.") {
                    if suffix.is_empty() || suffix.contains('*') {
                        return Err(SinkError::InvalidHost(h.clone()));
                    }
                    Ok(HostPattern::Suffix(format!(".{suffix}")))
                } else if h.is_empty() || h.contains('*') {
                    Err(SinkError::InvalidHost(h))
                } else {
                    Ok(HostPattern::Exact(h))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(ExchangeFilter {
            hosts,
            path_prefixes: cfg.path_prefixes.clone(),
            methods: cfg.methods.iter().map(|m| m.trim().to_string()).collect(),
            statuses: cfg
                .statuses
                .iter()
                .map(|s| parse_status(s))
                .collect::<Result<_, _>>()?,
        })
    }

    /// True when the filter can drop nothing.
    pub fn is_pass_all(&self) -> bool {
        self.hosts.is_empty()
            && self.path_prefixes.is_empty()
            && self.methods.is_empty()
            && self.statuses.is_empty()
    }

    /// Decides for one exchange.
    pub fn decide(&self, ex: &Exchange) -> ExchangeDecision {
        use ExchangeFilterReason as R;
        if !self.hosts.is_empty() {
            let ok = request_host(ex).is_some_and(|h| {
                self.hosts.iter().any(|p| match p {
                    HostPattern::Exact(e) => *e == h,
                    HostPattern::Suffix(s) => h.len() > s.len() && h.ends_with(s.as_str()),
                })
            });
            if !ok {
                return ExchangeDecision::Drop(R::Host);
            }
        }
        let req = ex.request.as_ref();
        if !self.methods.is_empty() {
            let ok = req
                .and_then(|r| r.method.as_deref())
                .is_some_and(|m| self.methods.iter().any(|x| x.eq_ignore_ascii_case(m)));
            if !ok {
                return ExchangeDecision::Drop(R::Method);
            }
        }
        if !self.path_prefixes.is_empty() {
            let ok = req.and_then(|r| r.uri.as_deref()).is_some_and(|u| {
                let p = request_path(u);
                self.path_prefixes.iter().any(|x| p.starts_with(x.as_str()))
            });
            if !ok {
                return ExchangeDecision::Drop(R::Path);
            }
        }
        if !self.statuses.is_empty() {
            let ok = ex
                .response
                .as_ref()
                .and_then(|r| r.status)
                .is_some_and(|s| self.statuses.iter().any(|&(lo, hi)| (lo..=hi).contains(&s)));
            if !ok {
                return ExchangeDecision::Drop(R::Status);
            }
        }
        ExchangeDecision::Keep
    }

    /// Decides for one exchange and counts the decision.
    pub fn check(&self, ex: &Exchange, stats: &mut ExchangeFilterStats) -> ExchangeDecision {
        let d = self.decide(ex);
        stats.record(d);
        d
    }
}
