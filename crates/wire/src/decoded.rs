//! What decoding produces and counts: the types shared by the general layer walk (`decap`)
//! and the straight-line fast path (`fastpath`). They live apart from both so that neither
//! decoder imports the other's internals: `decap` calls the fast path, the fast path only needs
//! these types.

use crate::frag::FragStats;
use crate::labeled_enum;
use crate::link::LinkType;
use crate::{Error, FragConfig, Segment};
/// IANA port for VXLAN (what AWS Traffic Mirroring sends to).
pub const VXLAN_PORT: u16 = 4789;
/// IANA port for VXLAN-GPE: the only port where the GPE next-protocol field is read.
pub const VXLAN_GPE_PORT: u16 = 4790;
/// IANA port for Geneve (what a Gateway Load Balancer sends to).
pub const GENEVE_PORT: u16 = 6081;
pub use crate::gre::GRE_UDP_PORT;

labeled_enum! {
    /// The tunnel a decoded packet arrived in (innermost one when nested).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum TunnelKind {
        /// Not encapsulated: a plain capture.
        None => "none",
        /// VXLAN or VXLAN-GPE.
        Vxlan => "vxlan",
        /// Geneve.
        Geneve => "geneve",
        /// GRE (IP protocol 47) carrying Ethernet (0x6558), IPv4 or IPv6.
        Gre => "gre",
        /// GRE-in-UDP (RFC 8086) carrying Ethernet, IPv4 or IPv6.
        GreUdp => "gre_udp",
        /// ERSPAN type I (GRE 0x88BE without a sequence number, no ERSPAN header).
        Erspan1 => "erspan1",
        /// ERSPAN type II (GRE 0x88BE with a sequence number).
        Erspan2 => "erspan2",
        /// ERSPAN type III (GRE 0x22EB).
        Erspan3 => "erspan3",
    }
}

labeled_enum! {
    /// Protocol of the innermost packet, for per-protocol counting.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum InnerProto {
        /// TCP (decoded into a segment).
        Tcp => "tcp",
        /// UDP not addressed to a tunnel port.
        Udp => "udp",
        /// ICMP.
        Icmp => "icmp",
        /// ICMPv6.
        Icmpv6 => "icmpv6",
        /// ARP.
        Arp => "arp",
        /// Any other IP protocol.
        Other => "other",
    }
}

/// Decapsulation settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecapConfig {
    /// UDP destination ports carrying VXLAN (8472, the Linux default, is common too). Bits
    /// other than the I flag are reserved and ignored there (RFC 7348 section 5).
    pub vxlan_ports: Vec<u16>,
    /// UDP destination ports carrying VXLAN-GPE, where the P flag and next-protocol byte
    /// are read. Takes precedence over `vxlan_ports` for a port in both.
    pub vxlan_gpe_ports: Vec<u16>,
    /// UDP destination ports carrying Geneve.
    pub geneve_ports: Vec<u16>,
    /// UDP destination ports carrying GRE-in-UDP (RFC 8086).
    pub gre_udp_ports: Vec<u16>,
    /// Tunnels peeled at most; one more is rejected as `tunnel_depth_exceeded`.
    pub max_depth: u8,
    /// VLAN tags peeled at most per Ethernet header.
    pub max_vlan_tags: u8,
    /// IPv6 extension headers walked at most.
    pub max_ipv6_ext_headers: u8,
    /// Count bad inner IPv4 header and TCP checksums (never drops). Off by default because
    /// checksum offload on the mirrored host makes them wrong.
    pub validate_checksums: bool,
    /// Outer IPv4 fragment reassembly limits.
    pub frag: FragConfig,
}

impl Default for DecapConfig {
    fn default() -> Self {
        Self {
            vxlan_ports: vec![VXLAN_PORT],
            vxlan_gpe_ports: vec![VXLAN_GPE_PORT],
            geneve_ports: vec![GENEVE_PORT],
            gre_udp_ports: vec![GRE_UDP_PORT],
            max_depth: 4,
            max_vlan_tags: crate::ethernet::MAX_VLAN_TAGS,
            max_ipv6_ext_headers: crate::ipv6::MAX_EXT_HEADERS,
            validate_checksums: false,
            frag: FragConfig::default(),
        }
    }
}

/// The innermost frame a decoded packet came from (what `vxtap decap` writes out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inner<'a> {
    /// Innermost tunnel kind (`None` for a plain capture).
    pub tunnel: TunnelKind,
    /// Number of tunnels peeled.
    pub depth: u8,
    /// Link type of `frame` (Ethernet inside VXLAN; the capture's own for a plain capture).
    pub link: LinkType,
    /// The innermost frame's bytes as captured (truncated frames stay truncated).
    pub frame: &'a [u8],
}

/// Result of decoding one captured frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// An inner TCP segment.
    Segment {
        /// The segment (VNI and mirror source filled when encapsulated).
        segment: Segment<'a>,
        /// Where it was found.
        inner: Inner<'a>,
    },
    /// An inner packet that is not TCP, counted by protocol and otherwise skipped.
    Other {
        /// VNI of the innermost tunnel, if encapsulated.
        vni: Option<u32>,
        /// Inner protocol.
        proto: InnerProto,
        /// Where it was found.
        inner: Inner<'a>,
    },
    /// The frame could not be decoded; the reason is counted in the stats.
    Rejected(Error),
    /// An outer IPv4 fragment was stored until the rest of its datagram arrives.
    FragmentHeld,
}

/// Per-worker decapsulation counters: plain integers, merged by the owner for export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecapStats {
    /// Frames handed to `decode`.
    pub packets: u64,
    /// Bytes of those frames as captured.
    pub bytes: u64,
    /// Rejections by reason (indexed by `Error::index`).
    pub rejected: [u64; Error::COUNT],
    /// TCP segments by innermost tunnel kind (indexed by `TunnelKind::index`).
    pub segments: [u64; TunnelKind::COUNT],
    /// Decoded inner packets by protocol (indexed by `InnerProto::index`).
    pub inner_protos: [u64; InnerProto::COUNT],
    /// Inner packets whose captured payload is shorter than the IP header announces.
    pub truncated: u64,
    /// Sum of the missing bytes of those packets.
    pub truncated_bytes: u64,
    /// Outer fragment reassembly.
    pub fragments: FragStats,
    /// Inner IPv4 headers with a wrong checksum (only with `validate_checksums`).
    pub bad_ipv4_checksums: u64,
    /// Complete inner TCP segments with a wrong checksum (only with `validate_checksums`).
    pub bad_tcp_checksums: u64,
    /// VXLAN(-GPE) headers with reserved bits set: decoded all the same (RFC 7348 section 5
    /// says receivers ignore them), counted for information.
    pub vxlan_reserved_bits: u64,
}

impl Default for DecapStats {
    fn default() -> Self {
        Self {
            packets: 0,
            bytes: 0,
            rejected: [0; Error::COUNT],
            segments: [0; TunnelKind::COUNT],
            inner_protos: [0; InnerProto::COUNT],
            truncated: 0,
            truncated_bytes: 0,
            fragments: FragStats::default(),
            bad_ipv4_checksums: 0,
            bad_tcp_checksums: 0,
            vxlan_reserved_bits: 0,
        }
    }
}

fn add_all(a: &mut [u64], b: &[u64]) {
    for (x, y) in a.iter_mut().zip(b) {
        // Wrapping like the Prometheus counters they feed; merging never panics.
        *x = x.wrapping_add(*y);
    }
}

pub(crate) fn bump(a: &mut [u64], i: usize) {
    if let Some(c) = a.get_mut(i) {
        *c += 1;
    }
}

impl DecapStats {
    /// Adds another worker's counters into these.
    pub fn merge(&mut self, other: &DecapStats) {
        let scalars = |s: &DecapStats| {
            [
                s.packets,
                s.bytes,
                s.truncated,
                s.truncated_bytes,
                s.bad_ipv4_checksums,
                s.bad_tcp_checksums,
                s.vxlan_reserved_bits,
            ]
        };
        let mut mine = scalars(self);
        add_all(&mut mine, &scalars(other));
        [
            self.packets,
            self.bytes,
            self.truncated,
            self.truncated_bytes,
            self.bad_ipv4_checksums,
            self.bad_tcp_checksums,
            self.vxlan_reserved_bits,
        ] = mine;
        add_all(&mut self.rejected, &other.rejected);
        add_all(&mut self.segments, &other.segments);
        add_all(&mut self.inner_protos, &other.inner_protos);
        self.fragments.merge(&other.fragments);
    }

    /// Rejections counted for one reason.
    pub fn rejected_for(&self, e: Error) -> u64 {
        self.rejected.get(e.index()).copied().unwrap_or(0)
    }

    /// Total rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }
}

/// One exported counter: Prometheus-style metric name, optional label, value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Metric name, `vxtap_decap_<what>_total`.
    pub name: &'static str,
    /// Label key and value from a fixed set (never addresses or ports).
    pub label: Option<(&'static str, &'static str)>,
    /// Counter value.
    pub value: u64,
}

impl DecapStats {
    /// Every counter with its metric name and label, zeros included so that every series
    /// exists from the start. Allocates: meant for the export path, not per packet.
    pub fn counters(&self) -> Vec<Counter> {
        let c = |name, label, value| Counter { name, label, value };
        let mut v = vec![
            c("vxtap_decap_packets_total", None, self.packets),
            c("vxtap_decap_bytes_total", None, self.bytes),
            c("vxtap_decap_truncated_total", None, self.truncated),
            c(
                "vxtap_decap_truncated_bytes_total",
                None,
                self.truncated_bytes,
            ),
            c(
                "vxtap_decap_fragments_held_total",
                None,
                self.fragments.held,
            ),
            c(
                "vxtap_decap_fragments_reassembled_total",
                None,
                self.fragments.reassembled,
            ),
            c(
                "vxtap_decap_bad_checksums_total",
                Some(("kind", "ipv4")),
                self.bad_ipv4_checksums,
            ),
            c(
                "vxtap_decap_bad_checksums_total",
                Some(("kind", "tcp")),
                self.bad_tcp_checksums,
            ),
            c(
                "vxtap_decap_vxlan_reserved_bits_total",
                None,
                self.vxlan_reserved_bits,
            ),
        ];
        for (e, n) in Error::ALL.iter().zip(self.rejected.iter()) {
            v.push(c(
                "vxtap_decap_rejected_total",
                Some(("reason", e.as_str())),
                *n,
            ));
        }
        for (k, n) in TunnelKind::ALL.iter().zip(self.segments.iter()) {
            v.push(c(
                "vxtap_decap_segments_total",
                Some(("tunnel", k.as_str())),
                *n,
            ));
        }
        for (p, n) in InnerProto::ALL.iter().zip(self.inner_protos.iter()) {
            v.push(c(
                "vxtap_decap_inner_packets_total",
                Some(("proto", p.as_str())),
                *n,
            ));
        }
        for (f, n) in crate::FragFailure::ALL
            .iter()
            .zip(self.fragments.failed.iter())
        {
            v.push(c(
                "vxtap_decap_fragments_failed_total",
                Some(("reason", f.as_str())),
                *n,
            ));
        }
        v
    }
}
