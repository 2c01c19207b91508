//! The packet filter: CIDR, port, VNI and mirror-source lists and flow sampling, decided per
//! segment before reassembly (issue 14 moved it here from `vxtap-sink`).
//!
//! It lives in the binary's front stage because that is where it runs: right after
//! decapsulation, in [`crate::pipeline::Front`] (replay) and in the receive threads (listen),
//! so that dropped traffic never reaches a flow table. It is configuration policy (serde,
//! CIDR parsing, fleet-wide sampling), which neither `vxtap-wire` (packet views) nor
//! `vxtap-capture` (input sources) is about, and nothing after reassembly uses it; the sink
//! keeps the exchange filter, which runs on parsed exchanges.
//!
//! [`PacketFilter`] runs once per segment on the hot path: it does not allocate, and its lists
//! are scanned linearly because they are short. Its flow sampling is decided by a seeded hash of
//! the direction-independent inner 5-tuple, so both directions of a connection, every packet of
//! it and every instance of a fleet configured with the same seed agree: a kept connection is
//! always whole.
//!
//! # Configuration (`PacketFilterConfig`)
//!
//! Field names as deserialized (the `vxtap` binary reads them as top-level keys of its config
//! file and from flags such as `--sample`, `--allow-source`):
//!
//! ```toml
//! cidrs = ["10.0.0.0/8", "2001:db8::1"]   # inner endpoints; either side matches
//! ports = [80, 8080]                      # either side matches
//! vni_allow = [123]                       # non-empty: other VNIs and untunnelled traffic dropped
//! vni_deny = [456]
//! allow_source = ["192.0.2.0/24"]         # mirror source (outer IP); non-empty: others dropped
//! sample = 0.05                           # keep 5% of connections (--sample)
//! sample_seed = 0                         # same seed on every instance of a fleet
//! ```
//!
//! Empty lists do not restrict. Checks run in the order source → VNI deny → VNI allow → CIDR →
//! port → sampling, and each drop is counted under its reason (`FilterStats`; labels
//! `source_not_allowed`, `vni_denied`, `vni_not_allowed`, `cidr`, `port`, `sampled_out`). Sampling
//! is last, so `sampled_out` counts only traffic the other filters kept: that is the population the
//! rate scales.
//!
//! Sampling hashes the direction-independent inner 5-tuple with a fixed seeded function
//! (`flow_hash`; not `RandomState`): both directions, every packet of a connection, and every
//! instance with the same seed decide alike, so kept connections are whole. It ignores VNI and
//! outer addresses, so the two mirrored copies of a connection agree too. Changing `flow_hash`
//! changes which connections a fleet keeps; a test beside it in `vxtap_wire::hash` pins its output.

use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;
/// The sampling hash, a fleet-wide contract, lives with the other 5-tuple hashes.
pub use vxtap_wire::hash::flow_hash;
use vxtap_wire::hash::{flow_hash_bits, ip_bits};
use vxtap_wire::Segment;

/// A packet filter configuration that cannot be built (the messages are those the sink's
/// error gave before the move).
#[derive(Debug, thiserror::Error)]
pub enum PacketFilterError {
    /// A CIDR or address in the configuration does not parse.
    #[error("invalid CIDR or IP address {0:?}")]
    InvalidCidr(String),
    /// The sample rate is outside (0, 1].
    #[error("invalid sample rate {0} (expected 0 < rate <= 1)")]
    InvalidSampleRate(f64),
}

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

vxtap_wire::labeled_enum! {
    /// Why a segment was dropped.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum FilterReason {
        /// The connection is not in the sample.
        SampledOut => "sampled_out",
        /// Neither inner endpoint is in the CIDR list.
        Cidr => "cidr",
        /// Neither inner port is in the port list.
        Port => "port",
        /// The VNI is in the deny list.
        VniDenied => "vni_denied",
        /// The VNI (or its absence) is not in the allow list.
        VniNotAllowed => "vni_not_allowed",
        /// The mirror source (or its absence) is not in the allowed sources.
        SourceNotAllowed => "source_not_allowed",
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
pub fn parse_cidr(s: &str) -> Result<IpNet, PacketFilterError> {
    let t = s.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| PacketFilterError::InvalidCidr(s.to_string()))
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
    pub fn new(cfg: &PacketFilterConfig) -> Result<Self, PacketFilterError> {
        let threshold = match cfg.sample {
            None => None,
            Some(r) if !(r > 0.0 && r <= 1.0) => {
                return Err(PacketFilterError::InvalidSampleRate(r))
            }
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

#[cfg(test)]
mod tests {
    use super::*;
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
            assert!(matches!(r, Err(PacketFilterError::InvalidSampleRate(_))));
        }
        let all = filter(PacketFilterConfig {
            sample: Some(1.0),
            ..PacketFilterConfig::default()
        });
        assert!(all.is_pass_all());
        assert_eq!(all.sample_rate(), None);
    }

    // The sampling hash's pin test lives with the hash (`vxtap_wire::hash::flow_hash_is_fixed`).

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
            Err(PacketFilterError::InvalidCidr(_))
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

    /// Cost per segment; run with
    /// `cargo test --release -p vxtap --lib -- --ignored --nocapture packet_filter_cost`.
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
