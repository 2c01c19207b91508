//! From a captured frame to an inner TCP segment (or a counted reason why not).
//!
//! One `Decapsulator` per worker thread: it owns its configuration, counters and fragment
//! table, does no I/O and allocates only when an outer fragment must be stored.

use crate::checksum;
use crate::ethernet::{ethertype, strip_vlans, EthernetFrame};
use crate::frag::{FragConfig, FragKey, FragOutcome, FragStats, FragTable, Fragment};
use crate::geneve::{GeneveHeader, GeneveNext};
use crate::ipv4::Ipv4Packet;
use crate::ipv6::Ipv6Packet;
use crate::labels::labeled_enum;
use crate::link::{strip_link, LinkType, NetStart};
use crate::tcp::TcpSegment;
use crate::udp::UdpDatagram;
use crate::vxlan::{VxlanHeader, VxlanNext};
use crate::{Error, Segment};
use std::net::IpAddr;

/// IANA port for VXLAN (what AWS Traffic Mirroring sends to).
pub const VXLAN_PORT: u16 = 4789;
/// IANA port for Geneve (what a Gateway Load Balancer sends to).
pub const GENEVE_PORT: u16 = 6081;

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
    /// UDP destination ports carrying VXLAN (4790 VXLAN-GPE and 8472 Linux are common).
    pub vxlan_ports: Vec<u16>,
    /// UDP destination ports carrying Geneve.
    pub geneve_ports: Vec<u16>,
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
            geneve_ports: vec![GENEVE_PORT],
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
    /// VXLAN headers with reserved bits set (tolerated).
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
        *x += y;
    }
}

fn bump(a: &mut [u64], i: usize) {
    if let Some(c) = a.get_mut(i) {
        *c += 1;
    }
}

impl DecapStats {
    /// Adds another worker's counters into these.
    pub fn merge(&mut self, other: &DecapStats) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        add_all(&mut self.rejected, &other.rejected);
        add_all(&mut self.segments, &other.segments);
        add_all(&mut self.inner_protos, &other.inner_protos);
        self.truncated += other.truncated;
        self.truncated_bytes += other.truncated_bytes;
        self.fragments.merge(&other.fragments);
        self.bad_ipv4_checksums += other.bad_ipv4_checksums;
        self.bad_tcp_checksums += other.bad_tcp_checksums;
        self.vxlan_reserved_bits += other.vxlan_reserved_bits;
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

/// Decodes captured frames into inner segments; one per worker.
#[derive(Debug)]
pub struct Decapsulator {
    cfg: DecapConfig,
    stats: DecapStats,
    frags: FragTable,
}

impl Default for Decapsulator {
    fn default() -> Self {
        Self::new(DecapConfig::default())
    }
}

/// Where the walk is between layers.
#[derive(Clone, Copy)]
enum Net<'a> {
    Ethernet(&'a [u8]),
    EtherType(u16, &'a [u8]),
    Ip(&'a [u8]),
    Ipv4(&'a [u8]),
    Ipv6(&'a [u8]),
}

#[derive(Clone, Copy)]
enum IpView<'a> {
    V4(Ipv4Packet<'a>),
    V6(Ipv6Packet<'a>),
}

/// The tunnel context accumulated while peeling.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    vni: Option<u32>,
    mirror_source: Option<IpAddr>,
    inner: Inner<'a>,
}

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

impl Decapsulator {
    /// A decapsulator with the given settings and zeroed counters.
    pub fn new(cfg: DecapConfig) -> Self {
        let frags = FragTable::new(cfg.frag.clone());
        Self {
            cfg,
            stats: DecapStats::default(),
            frags,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &DecapConfig {
        &self.cfg
    }

    /// Counters since creation or the last `take_stats`.
    pub fn stats(&self) -> &DecapStats {
        &self.stats
    }

    /// Returns the counters and zeroes them (for periodic merging into a global registry).
    pub fn take_stats(&mut self) -> DecapStats {
        std::mem::take(&mut self.stats)
    }

    /// Decodes one captured frame. The result borrows from `frame`, or from the internal
    /// reassembly buffer when the frame completed a fragmented outer datagram.
    pub fn decode<'a>(&'a mut self, link: LinkType, ts_ns: u64, frame: &'a [u8]) -> Decoded<'a> {
        let Decapsulator { cfg, stats, frags } = self;
        stats.packets += 1;
        stats.bytes += frame.len() as u64;
        let r = walk(cfg, stats, frags, link, ts_ns, frame);
        match &r {
            Decoded::Rejected(e) => bump(&mut stats.rejected, e.index()),
            Decoded::Segment { inner, .. } => {
                bump(&mut stats.segments, inner.tunnel.index());
                bump(&mut stats.inner_protos, InnerProto::Tcp.index());
            }
            Decoded::Other { proto, .. } => bump(&mut stats.inner_protos, proto.index()),
            Decoded::FragmentHeld => {}
        }
        r
    }
}

fn net_start(s: NetStart<'_>) -> Net<'_> {
    match s {
        NetStart::Ethernet(b) => Net::Ethernet(b),
        NetStart::EtherType(t, b) => Net::EtherType(t, b),
        NetStart::Ip(b) => Net::Ip(b),
    }
}

fn walk<'a>(
    cfg: &DecapConfig,
    stats: &mut DecapStats,
    frags: &'a mut FragTable,
    link: LinkType,
    ts_ns: u64,
    frame: &'a [u8],
) -> Decoded<'a> {
    match walk_inner(cfg, stats, frags, link, ts_ns, frame) {
        Ok(d) => d,
        Err(e) => Decoded::Rejected(e),
    }
}

fn walk_inner<'a>(
    cfg: &DecapConfig,
    stats: &mut DecapStats,
    frags: &'a mut FragTable,
    link: LinkType,
    ts_ns: u64,
    frame: &'a [u8],
) -> Result<Decoded<'a>, Error> {
    let mut frags = Some(frags);
    let mut ctx = Ctx {
        vni: None,
        mirror_source: None,
        inner: Inner {
            tunnel: TunnelKind::None,
            depth: 0,
            link,
            frame,
        },
    };
    let mut net = net_start(strip_link(link, frame)?);
    loop {
        // Link layer down to an IP packet.
        let ip = loop {
            match net {
                Net::Ethernet(b) => {
                    let eth = EthernetFrame::new_checked(b)?;
                    net = Net::EtherType(eth.ethertype(), eth.payload());
                }
                Net::EtherType(t, b) => {
                    let l2 = strip_vlans(t, b, cfg.max_vlan_tags)?;
                    net = match l2.ethertype {
                        ethertype::IPV4 => Net::Ipv4(l2.payload),
                        ethertype::IPV6 => Net::Ipv6(l2.payload),
                        ethertype::ARP => {
                            return Ok(Decoded::Other {
                                vni: ctx.vni,
                                proto: InnerProto::Arp,
                                inner: ctx.inner,
                            })
                        }
                        _ => return Err(Error::UnknownEthertype),
                    };
                }
                Net::Ip(b) => {
                    net = match b.first().map(|v| v >> 4) {
                        None => return Err(Error::ShortIp),
                        Some(4) => Net::Ipv4(b),
                        Some(6) => Net::Ipv6(b),
                        Some(_) => return Err(Error::BadIpVersion),
                    };
                }
                Net::Ipv4(b) => break IpView::V4(Ipv4Packet::new_checked(b)?),
                Net::Ipv6(b) => break IpView::V6(Ipv6Packet::new_checked(b)?),
            }
        };

        // Network layer down to the transport payload.
        let (src, dst, proto, mut l4, mut announced) = match ip {
            IpView::V4(p) => (
                IpAddr::V4(p.src()),
                IpAddr::V4(p.dst()),
                p.protocol(),
                p.payload(),
                p.announced_payload_len(),
            ),
            IpView::V6(p) => {
                let u = p.upper_layer(cfg.max_ipv6_ext_headers)?;
                if u.fragment.is_some() {
                    return Err(Error::IpFragment);
                }
                (
                    IpAddr::V6(p.src()),
                    IpAddr::V6(p.dst()),
                    u.protocol,
                    u.payload,
                    u.announced_len,
                )
            }
        };
        let mut reassembled = false;
        if let IpView::V4(p) = ip {
            if p.is_fragment() {
                // Only the outermost layer is reassembled: that is where a VXLAN datagram
                // larger than the underlay MTU gets split. Inner fragments are the mirrored
                // host's business; we count and skip them.
                let table = match frags.take() {
                    Some(t) if ctx.inner.depth == 0 && proto == IPPROTO_UDP && t.enabled() => t,
                    _ => return Err(Error::IpFragment),
                };
                let f = Fragment {
                    key: FragKey {
                        src: p.src(),
                        dst: p.dst(),
                        ident: p.ident(),
                        proto,
                    },
                    offset: p.frag_offset(),
                    more: p.more_frags(),
                    data: l4,
                    truncated: p.is_truncated(),
                };
                match table.insert(ts_ns, f, &mut stats.fragments) {
                    FragOutcome::Held => return Ok(Decoded::FragmentHeld),
                    FragOutcome::Failed => return Err(Error::FragmentDropped),
                    FragOutcome::Complete(whole) => {
                        l4 = whole;
                        announced = whole.len();
                        reassembled = true;
                    }
                }
            }
        }
        let truncated_by = announced.saturating_sub(l4.len());

        match proto {
            IPPROTO_TCP => {
                if truncated_by > 0 {
                    stats.truncated += 1;
                    stats.truncated_bytes += truncated_by as u64;
                }
                let tcp = TcpSegment::new_checked(l4)?;
                let hl = tcp.header_len();
                if hl > announced {
                    return Err(Error::BadTcpOffset);
                }
                if cfg.validate_checksums {
                    check_sums(stats, ip, &tcp, truncated_by == 0, reassembled);
                }
                return Ok(Decoded::Segment {
                    segment: Segment {
                        ts_ns,
                        vni: ctx.vni,
                        mirror_source: ctx.mirror_source,
                        src_ip: src,
                        dst_ip: dst,
                        src_port: tcp.src_port(),
                        dst_port: tcp.dst_port(),
                        seq: tcp.seq(),
                        ack: tcp.ack(),
                        flags: tcp.flags(),
                        window: tcp.window(),
                        payload: tcp.payload(),
                        wire_payload_len: u32::try_from(announced - hl).unwrap_or(u32::MAX),
                    },
                    inner: ctx.inner,
                });
            }
            IPPROTO_UDP => {
                let udp = UdpDatagram::new_checked(l4)?;
                let port = udp.dst_port();
                let is_vxlan = cfg.vxlan_ports.contains(&port);
                let is_geneve = !is_vxlan && cfg.geneve_ports.contains(&port);
                if !is_vxlan && !is_geneve {
                    if truncated_by > 0 {
                        stats.truncated += 1;
                        stats.truncated_bytes += truncated_by as u64;
                    }
                    return Ok(other(&ctx, InnerProto::Udp));
                }
                if ctx.inner.depth >= cfg.max_depth {
                    return Err(Error::TunnelDepthExceeded);
                }
                let (kind, vni, next) = if is_vxlan {
                    let h = VxlanHeader::new_checked(udp.payload())?;
                    if h.reserved_bits_set() {
                        stats.vxlan_reserved_bits += 1;
                    }
                    let next = match h.next()? {
                        VxlanNext::Ethernet => (LinkType::Ethernet, Net::Ethernet(h.payload())),
                        VxlanNext::Ipv4 => (LinkType::Ipv4, Net::Ipv4(h.payload())),
                        VxlanNext::Ipv6 => (LinkType::Ipv6, Net::Ipv6(h.payload())),
                    };
                    (TunnelKind::Vxlan, h.vni(), next)
                } else {
                    let h = GeneveHeader::new_checked(udp.payload())?;
                    let next = match h.next()? {
                        GeneveNext::Ethernet => (LinkType::Ethernet, Net::Ethernet(h.payload())),
                        GeneveNext::Ipv4 => (LinkType::Ipv4, Net::Ipv4(h.payload())),
                        GeneveNext::Ipv6 => (LinkType::Ipv6, Net::Ipv6(h.payload())),
                    };
                    (TunnelKind::Geneve, h.vni(), next)
                };
                let (inner_link, inner_net) = next;
                let inner_frame = match inner_net {
                    Net::Ethernet(b) | Net::Ipv4(b) | Net::Ipv6(b) => b,
                    Net::EtherType(_, b) | Net::Ip(b) => b,
                };
                ctx = Ctx {
                    vni: Some(vni),
                    mirror_source: Some(src),
                    inner: Inner {
                        tunnel: kind,
                        depth: ctx.inner.depth + 1,
                        link: inner_link,
                        frame: inner_frame,
                    },
                };
                net = inner_net;
            }
            p => {
                if truncated_by > 0 {
                    stats.truncated += 1;
                    stats.truncated_bytes += truncated_by as u64;
                }
                let proto = match p {
                    IPPROTO_ICMP => InnerProto::Icmp,
                    IPPROTO_ICMPV6 => InnerProto::Icmpv6,
                    _ => InnerProto::Other,
                };
                return Ok(other(&ctx, proto));
            }
        }
    }
}

fn other<'a>(ctx: &Ctx<'a>, proto: InnerProto) -> Decoded<'a> {
    Decoded::Other {
        vni: ctx.vni,
        proto,
        inner: ctx.inner,
    }
}

/// Counts bad checksums of the innermost IPv4 header and of a fully captured TCP segment.
fn check_sums(
    stats: &mut DecapStats,
    ip: IpView<'_>,
    tcp: &TcpSegment<'_>,
    complete: bool,
    reassembled: bool,
) {
    let pseudo = match ip {
        IpView::V4(p) => {
            // A reassembled packet's header is the first fragment's, its checksum says nothing
            // about the whole; only check headers of packets decoded as they came.
            if !reassembled && !p.verify_checksum() {
                stats.bad_ipv4_checksums += 1;
            }
            p.pseudo_header_sum(tcp.as_bytes().len())
        }
        IpView::V6(p) => p.pseudo_header_sum(IPPROTO_TCP, tcp.as_bytes().len()),
    };
    if complete && checksum::finish(checksum::sum(tcp.as_bytes(), pseudo)) != 0 {
        stats.bad_tcp_checksums += 1;
    }
}
