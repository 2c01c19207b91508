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
/// The sampling hash, a fleet-wide contract, lives with the other 5-tuple hashes.
pub use vxtap_wire::hash::flow_hash;
use vxtap_wire::hash::{flow_hash_bits, ip_bits};
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

/// A CIDR as a mask and a masked network over [`ip_bits`]: membership is one AND and one
/// compare, with no branch on the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cidr {
    net: u128,
    mask: u128,
}

impl From<IpNet> for Cidr {
    fn from(n: IpNet) -> Self {
        let prefix = match n {
            IpNet::V4(v4) => u32::from(v4.prefix_len()) + 96,
            IpNet::V6(v6) => u32::from(v6.prefix_len()),
        };
        let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
        Cidr {
            net: ip_bits(n.network()) & mask,
            mask,
        }
    }
}

#[inline]
fn in_any(nets: &[Cidr], bits: u128) -> bool {
    nets.iter().any(|c| bits & c.mask == c.net)
}

/// The cheap per-segment filter. Immutable after construction; counters live in a
/// [`FilterStats`] owned by the caller so each worker counts without sharing.
#[derive(Clone, Debug, Default)]
pub struct PacketFilter {
    cidrs: Vec<Cidr>,
    ports: Vec<u16>,
    vni_allow: Vec<u32>,
    vni_deny: Vec<u32>,
    allow_source: Vec<Cidr>,
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
                .map(|s| parse_cidr(s).map(Cidr::from))
                .collect::<Result<_, _>>()?,
            ports: cfg.ports.clone(),
            vni_allow: cfg.vni_allow.clone(),
            vni_deny: cfg.vni_deny.clone(),
            allow_source: cfg
                .allow_source
                .iter()
                .map(|s| parse_cidr(s).map(Cidr::from))
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
        self.allow_source.is_empty() || in_any(&self.allow_source, ip_bits(ip))
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
                .is_some_and(|ip| in_any(&self.allow_source, ip_bits(ip)))
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
        let (src, dst) = (ip_bits(seg.src_ip), ip_bits(seg.dst_ip));
        if !self.cidrs.is_empty() && !in_any(&self.cidrs, src) && !in_any(&self.cidrs, dst) {
            return Decision::Drop(FilterReason::Cidr);
        }
        if !self.ports.is_empty()
            && !self.ports.contains(&seg.src_port)
            && !self.ports.contains(&seg.dst_port)
        {
            return Decision::Drop(FilterReason::Port);
        }
        if let Some(t) = self.threshold {
            if flow_hash_bits(self.seed, src, seg.src_port, dst, seg.dst_port) >= t {
                return Decision::Drop(FilterReason::SampledOut);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{exchange, request, response};
    use std::net::{Ipv4Addr, Ipv6Addr};
    use vxtap_wire::TcpFlags;

    fn seg(src: &str, sport: u16, dst: &str, dport: u16) -> Segment<'static> {
        Segment {
            ts_ns: 0,
            vni: Some(100),
            tunnel: vxtap_wire::TunnelKind::Vxlan,
            mirror_source: Some("192.0.2.10".parse().unwrap()),
            src_ip: src.parse().unwrap(),
            dst_ip: dst.parse().unwrap(),
            src_port: sport,
            dst_port: dport,
            seq: 1,
            ack: 0,
            flags: TcpFlags(TcpFlags::ACK),
            window: 0,
            payload: b"",
            wire_payload_len: 0,
        }
    }

    fn filter(cfg: PacketFilterConfig) -> PacketFilter {
        PacketFilter::new(&cfg).unwrap()
    }

    /// xorshift64*: a fixed, dependency-free source of test tuples.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn tuple(&mut self) -> (IpAddr, u16, IpAddr, u16) {
            let r = self.next();
            let (a, b) = if r & 7 == 0 {
                let x = u128::from(self.next()) << 64 | u128::from(self.next());
                (
                    IpAddr::V6(Ipv6Addr::from(x)),
                    IpAddr::V6(Ipv6Addr::from(x ^ u128::from(self.next()))),
                )
            } else {
                // Realistic: a private client range talking to a handful of servers.
                (
                    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (r >> 8) as u32 & 0xffff)),
                    IpAddr::V4(Ipv4Addr::from(0x0a01_0000 | (r >> 40) as u32 & 0xf)),
                )
            };
            let sport = 1024 + (self.next() % 60000) as u16;
            let dport = [80, 443, 8080][(self.next() % 3) as usize];
            (a, sport, b, dport)
        }
    }

    #[test]
    fn sampling_rate_symmetry_and_seed() {
        let cfg = |seed| PacketFilterConfig {
            sample: Some(0.05),
            sample_seed: seed,
            ..PacketFilterConfig::default()
        };
        let f = filter(cfg(42));
        let same = filter(cfg(42));
        let other = filter(cfg(43));
        assert_eq!(f.sample_rate(), Some(0.05));
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let n = 200_000;
        let (mut kept, mut disagree) = (0u32, 0u32);
        for _ in 0..n {
            let (a, ap, b, bp) = rng.tuple();
            let k = f.sampled(a, ap, b, bp);
            assert_eq!(k, f.sampled(b, bp, a, ap), "directions disagree");
            assert_eq!(k, same.sampled(a, ap, b, bp), "same seed disagrees");
            kept += u32::from(k);
            disagree += u32::from(k != other.sampled(a, ap, b, bp));
        }
        let share = f64::from(kept) / f64::from(n);
        assert!((share - 0.05).abs() < 0.005, "kept share {share}");
        // Independent 5% samples disagree on about 2 * 0.05 * 0.95 = 9.5% of tuples.
        let d = f64::from(disagree) / f64::from(n);
        assert!(d > 0.07, "seeds barely differ: {d}");
    }

    #[test]
    fn sampling_rate_on_sequential_tuples() {
        // Structured input (consecutive clients and ports to one server) is where weak hashes
        // show bias.
        let server: IpAddr = "10.1.0.1".parse().unwrap();
        for rate in [0.01, 0.05, 0.5] {
            let f = filter(PacketFilterConfig {
                sample: Some(rate),
                sample_seed: 1,
                ..PacketFilterConfig::default()
            });
            let mut kept = 0u32;
            let n = 200_000u32;
            for i in 0..n {
                let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i / 1000));
                kept += u32::from(f.sampled(client, 32768 + (i % 1000) as u16, server, 443));
            }
            let share = f64::from(kept) / f64::from(n);
            assert!(
                (share - rate).abs() < rate * 0.1,
                "rate {rate}: kept {share}"
            );
        }
    }

    #[test]
    fn sampling_is_per_connection_through_decide() {
        let f = filter(PacketFilterConfig {
            sample: Some(0.5),
            ..PacketFilterConfig::default()
        });
        let mut stats = FilterStats::default();
        for port in 1000..3000u16 {
            let fwd = seg("10.0.0.1", port, "10.0.0.2", 80);
            let mut rev = seg("10.0.0.2", 80, "10.0.0.1", port);
            // Neither the tunnel nor the VNI may influence the decision.
            rev.vni = Some(999);
            rev.mirror_source = Some("192.0.2.99".parse().unwrap());
            let d = f.check(&fwd, &mut stats);
            assert_eq!(d, f.check(&rev, &mut stats));
            assert!(matches!(
                d,
                Decision::Keep | Decision::Drop(FilterReason::SampledOut)
            ));
        }
        assert_eq!(stats.kept + stats.sampled_out, 4000);
        assert!(stats.kept > 1600 && stats.kept < 2400, "{stats:?}");
        assert_eq!(stats.dropped(), stats.sampled_out);
    }

    #[test]
    fn sample_rate_bounds() {
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            let r = PacketFilter::new(&PacketFilterConfig {
                sample: Some(bad),
                ..PacketFilterConfig::default()
            });
            assert!(matches!(r, Err(SinkError::InvalidSampleRate(_))));
        }
        let all = filter(PacketFilterConfig {
            sample: Some(1.0),
            ..PacketFilterConfig::default()
        });
        assert!(all.is_pass_all());
        assert_eq!(all.sample_rate(), None);
    }

    #[test]
    fn cidr_port_vni_source() {
        let mut stats = FilterStats::default();
        let f = filter(PacketFilterConfig {
            cidrs: vec!["10.1.0.0/16".into(), "2001:db8::1".into()],
            ..PacketFilterConfig::default()
        });
        assert!(f
            .check(&seg("10.1.2.3", 5, "8.8.8.8", 80), &mut stats)
            .is_keep());
        assert!(f
            .check(&seg("8.8.8.8", 80, "10.1.2.3", 5), &mut stats)
            .is_keep());
        assert!(f
            .check(&seg("2001:db8::1", 80, "2001:db8::2", 5), &mut stats)
            .is_keep());
        assert_eq!(
            f.check(&seg("10.2.0.1", 5, "8.8.8.8", 80), &mut stats),
            Decision::Drop(FilterReason::Cidr)
        );

        let f = filter(PacketFilterConfig {
            ports: vec![80, 8080],
            ..PacketFilterConfig::default()
        });
        assert!(f
            .check(&seg("1.1.1.1", 80, "2.2.2.2", 5000), &mut stats)
            .is_keep());
        assert!(f
            .check(&seg("1.1.1.1", 5000, "2.2.2.2", 8080), &mut stats)
            .is_keep());
        assert_eq!(
            f.check(&seg("1.1.1.1", 5000, "2.2.2.2", 443), &mut stats),
            Decision::Drop(FilterReason::Port)
        );

        let f = filter(PacketFilterConfig {
            vni_allow: vec![100, 101],
            vni_deny: vec![101],
            ..PacketFilterConfig::default()
        });
        let mut s = seg("1.1.1.1", 1, "2.2.2.2", 2);
        assert!(f.check(&s, &mut stats).is_keep());
        s.vni = Some(101);
        assert_eq!(
            f.check(&s, &mut stats),
            Decision::Drop(FilterReason::VniDenied)
        );
        s.vni = Some(102);
        assert_eq!(
            f.check(&s, &mut stats),
            Decision::Drop(FilterReason::VniNotAllowed)
        );
        s.vni = None;
        assert_eq!(
            f.check(&s, &mut stats),
            Decision::Drop(FilterReason::VniNotAllowed)
        );

        let f = filter(PacketFilterConfig {
            allow_source: vec!["192.0.2.0/28".into()],
            ..PacketFilterConfig::default()
        });
        let mut s = seg("1.1.1.1", 1, "2.2.2.2", 2);
        assert!(f.check(&s, &mut stats).is_keep());
        assert!(f.allows_source("192.0.2.1".parse().unwrap()));
        assert!(!f.allows_source("192.0.2.16".parse().unwrap()));
        s.mirror_source = Some("192.0.2.16".parse().unwrap());
        assert_eq!(
            f.check(&s, &mut stats),
            Decision::Drop(FilterReason::SourceNotAllowed)
        );
        s.mirror_source = None;
        assert_eq!(
            f.check(&s, &mut stats),
            Decision::Drop(FilterReason::SourceNotAllowed)
        );

        assert_eq!(
            stats,
            FilterStats {
                kept: 7,
                sampled_out: 0,
                cidr: 1,
                port: 1,
                vni_denied: 1,
                vni_not_allowed: 2,
                source_not_allowed: 2,
            }
        );
        let mut total = stats;
        total.merge(&stats);
        assert_eq!(total.kept, 14);
        assert_eq!(total.dropped(), 14);
        let labels: Vec<_> = total.iter().collect();
        assert_eq!(
            labels,
            vec![
                ("sampled_out", 0),
                ("cidr", 2),
                ("port", 2),
                ("vni_denied", 2),
                ("vni_not_allowed", 4),
                ("source_not_allowed", 4),
            ]
        );
    }

    #[test]
    fn kinds_combine_with_and() {
        let f = filter(PacketFilterConfig {
            cidrs: vec!["10.0.0.0/8".into()],
            ports: vec![80],
            vni_allow: vec![100],
            ..PacketFilterConfig::default()
        });
        assert!(f.decide(&seg("10.0.0.1", 5, "1.1.1.1", 80)).is_keep());
        assert_eq!(
            f.decide(&seg("10.0.0.1", 5, "1.1.1.1", 81)),
            Decision::Drop(FilterReason::Port)
        );
        assert_eq!(
            f.decide(&seg("11.0.0.1", 5, "1.1.1.1", 80)),
            Decision::Drop(FilterReason::Cidr)
        );
    }

    #[test]
    fn bad_cidr() {
        assert!(matches!(
            PacketFilter::new(&PacketFilterConfig {
                cidrs: vec!["10.0.0.0/33".into()],
                ..PacketFilterConfig::default()
            }),
            Err(SinkError::InvalidCidr(_))
        ));
        assert!(parse_cidr(" 10.0.0.1 ").is_ok());
    }

    #[test]
    fn packet_filter_toml_shape() {
        #[derive(Deserialize)]
        struct File {
            filter: PacketFilterConfig,
        }
        let f: File = toml::from_str(
            r#"
            [filter]
            cidrs = ["10.0.0.0/8"]
            ports = [80, 443]
            vni_allow = [1]
            vni_deny = [2]
            allow_source = ["192.0.2.0/24"]
            sample = 0.05
            sample_seed = 7
            "#,
        )
        .unwrap();
        assert_eq!(f.filter.sample, Some(0.05));
        assert!(PacketFilter::new(&f.filter).is_ok());
    }

    fn ex(method: &str, uri: &str, host: Option<&str>, status: Option<u16>) -> Exchange {
        let headers: Vec<(&str, &str)> = host.map(|h| ("Host", h)).into_iter().collect();
        exchange(
            Some(request(method, uri, &headers, None)),
            status.map(|s| response(s, &[], None)),
        )
    }

    #[test]
    fn exchange_filter_each_kind() {
        use ExchangeFilterReason as R;
        let f = |cfg: ExchangeFilterConfig| ExchangeFilter::new(&cfg).unwrap();
        let hosts = f(ExchangeFilterConfig {
            hosts: vec!["api.example.com".into(), "*.internal".into()],
            ..Default::default()
        });
        let d = |f: &ExchangeFilter, e: &Exchange| f.decide(e);
        assert_eq!(
            d(&hosts, &ex("GET", "/", Some("API.example.com:8080"), None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&hosts, &ex("GET", "/", Some("a.b.internal"), None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&hosts, &ex("GET", "http://x.internal/p", None, None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&hosts, &ex("GET", "/", Some("internal"), None)),
            ExchangeDecision::Drop(R::Host)
        );
        assert_eq!(
            d(&hosts, &ex("GET", "/", Some("example.com"), None)),
            ExchangeDecision::Drop(R::Host)
        );
        assert_eq!(
            d(&hosts, &ex("GET", "/", None, None)),
            ExchangeDecision::Drop(R::Host)
        );
        assert_eq!(
            d(&hosts, &exchange(None, Some(response(200, &[], None)))),
            ExchangeDecision::Drop(R::Host)
        );

        let paths = f(ExchangeFilterConfig {
            path_prefixes: vec!["/api/".into()],
            ..Default::default()
        });
        assert_eq!(
            d(&paths, &ex("GET", "/api/v1?x=1", None, None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&paths, &ex("GET", "http://h/api/v1", None, None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&paths, &ex("GET", "/apix", None, None)),
            ExchangeDecision::Drop(R::Path)
        );
        assert_eq!(
            d(&paths, &ex("GET", "/x?/api/", None, None)),
            ExchangeDecision::Drop(R::Path)
        );

        let methods = f(ExchangeFilterConfig {
            methods: vec!["post".into(), "PUT".into()],
            ..Default::default()
        });
        assert_eq!(
            d(&methods, &ex("POST", "/", None, None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&methods, &ex("PUT", "/", None, None)),
            ExchangeDecision::Keep
        );
        assert_eq!(
            d(&methods, &ex("GET", "/", None, None)),
            ExchangeDecision::Drop(R::Method)
        );

        let statuses = f(ExchangeFilterConfig {
            statuses: vec!["5xx".into(), "404".into(), "301-302".into()],
            ..Default::default()
        });
        for s in [500, 503, 599, 404, 301, 302] {
            assert_eq!(
                d(&statuses, &ex("GET", "/", None, Some(s))),
                ExchangeDecision::Keep,
                "{s}"
            );
        }
        for s in [200, 303, 403, 600] {
            assert_eq!(
                d(&statuses, &ex("GET", "/", None, Some(s))),
                ExchangeDecision::Drop(R::Status),
                "{s}"
            );
        }
        assert_eq!(
            d(&statuses, &ex("GET", "/", None, None)),
            ExchangeDecision::Drop(R::Status)
        );
    }

    #[test]
    fn exchange_filter_combined_and_counted() {
        let f = ExchangeFilter::new(&ExchangeFilterConfig {
            hosts: vec!["*.example.com".into()],
            methods: vec!["GET".into()],
            statuses: vec!["2xx".into()],
            ..Default::default()
        })
        .unwrap();
        let mut stats = ExchangeFilterStats::default();
        let cases = [
            (ex("GET", "/", Some("a.example.com"), Some(200)), true),
            (ex("POST", "/", Some("a.example.com"), Some(200)), false),
            (ex("GET", "/", Some("a.example.org"), Some(200)), false),
            (ex("GET", "/", Some("a.example.com"), Some(500)), false),
        ];
        for (e, keep) in &cases {
            assert_eq!(f.check(e, &mut stats) == ExchangeDecision::Keep, *keep);
        }
        assert_eq!(
            stats,
            ExchangeFilterStats {
                kept: 1,
                host: 1,
                path: 0,
                method: 1,
                status: 1
            }
        );
        assert_eq!(stats.dropped(), 3);
        assert!(ExchangeFilter::default().is_pass_all());
        for bad in ["5x", "abc", "600-500", "0xx"] {
            assert!(
                matches!(
                    ExchangeFilter::new(&ExchangeFilterConfig {
                        statuses: vec![bad.into()],
                        ..Default::default()
                    }),
                    Err(SinkError::InvalidStatus(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            ExchangeFilter::new(&ExchangeFilterConfig {
                hosts: vec!["a.*.com".into()],
                ..Default::default()
            }),
            Err(SinkError::InvalidHost(_))
        ));
    }

    /// Cost per segment; run with
    /// `cargo test --release -p vxtap-sink -- --ignored --nocapture packet_filter_cost`.
    #[test]
    #[ignore = "timing; meaningful only in release builds"]
    fn packet_filter_cost() {
        let f = filter(PacketFilterConfig {
            cidrs: vec!["10.0.0.0/8".into(), "172.16.0.0/12".into()],
            ports: vec![80, 8080],
            vni_deny: vec![5],
            allow_source: vec!["192.0.2.0/24".into()],
            sample: Some(0.05),
            sample_seed: 9,
            ..PacketFilterConfig::default()
        });
        let mut rng = Rng(7);
        let segs: Vec<Segment<'static>> = (0..4096)
            .map(|_| {
                let (a, ap, b, _) = rng.tuple();
                let mut s = seg("0.0.0.0", ap, "0.0.0.0", 80);
                s.src_ip = a;
                s.dst_ip = b;
                s
            })
            .collect();
        let mut stats = FilterStats::default();
        let rounds = 2_000;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for s in &segs {
                std::hint::black_box(f.check(std::hint::black_box(s), &mut stats));
            }
        }
        let per =
            |t: std::time::Instant| t.elapsed().as_nanos() as f64 / (rounds * segs.len()) as f64;
        let ns = per(start);
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for s in &segs {
                std::hint::black_box(std::hint::black_box(s).src_port);
            }
        }
        let base = per(start);
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for s in &segs {
                let s = std::hint::black_box(s);
                std::hint::black_box(flow_hash(9, s.src_ip, s.src_port, s.dst_ip, s.dst_port));
            }
        }
        let hash = per(start);
        println!("packet filter: {ns:.2} ns/segment, hash alone {hash:.2}, loop alone {base:.2} ({stats:?})");
    }
}
