//! From a captured frame to an inner TCP segment (or a counted reason why not).
//!
//! One `Decapsulator` per worker thread: it owns its configuration, counters and fragment
//! table, does no I/O and allocates only when an outer fragment must be stored.

use crate::checksum;
use crate::ethernet::{ethertype, strip_vlans, EthernetFrame};
use crate::frag::{FragKey, FragOutcome, FragTable, Fragment};
use crate::geneve::{GeneveHeader, GeneveNext};
use crate::gre::{ErspanHeader, ErspanNext, GreHeader, GreNext};
use crate::ip;
use crate::ipv4::Ipv4Packet;
use crate::ipv6::Ipv6Packet;
use crate::link::{strip_link, LinkType, NetStart};
use crate::tcp::TcpSegment;
use crate::udp::UdpDatagram;
use crate::vxlan::{VxlanHeader, VxlanNext};
use crate::{Error, Segment};
use std::net::IpAddr;

pub(crate) use crate::decoded::bump;
pub use crate::decoded::{
    Counter, DecapConfig, DecapStats, Decoded, Inner, InnerProto, TunnelKind, GENEVE_PORT,
    GRE_UDP_PORT, VXLAN_GPE_PORT, VXLAN_PORT,
};

/// The tunnels found in UDP, by destination port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UdpTunnel {
    Vxlan,
    VxlanGpe,
    Geneve,
    Gre,
}

impl DecapConfig {
    /// The tunnel a UDP destination port carries. A port in several lists goes to the first
    /// of VXLAN-GPE, VXLAN, Geneve, GRE-in-UDP.
    fn udp_tunnel(&self, port: u16) -> Option<UdpTunnel> {
        if self.vxlan_gpe_ports.contains(&port) {
            Some(UdpTunnel::VxlanGpe)
        } else if self.vxlan_ports.contains(&port) {
            Some(UdpTunnel::Vxlan)
        } else if self.geneve_ports.contains(&port) {
            Some(UdpTunnel::Geneve)
        } else if self.gre_udp_ports.contains(&port) {
            Some(UdpTunnel::Gre)
        } else {
            None
        }
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
        if let Some(r) = crate::fastpath::decode(cfg, stats, link, ts_ns, frame) {
            return r;
        }
        let r = walk_inner(cfg, stats, frags, link, ts_ns, frame).unwrap_or_else(Decoded::Rejected);
        count_result(stats, &r);
        r
    }

    /// Decodes the payload of a UDP datagram received on a tunnel socket (the live listener:
    /// the kernel already removed the outer Ethernet, IP and UDP headers). `dst_port` picks
    /// the tunnel as for a whole frame (VXLAN-GPE, Geneve or GRE-in-UDP when it is one of
    /// their ports), VXLAN otherwise; `outer_src` is the mirror source.
    pub fn decode_tunnel_payload<'a>(
        &'a mut self,
        ts_ns: u64,
        outer_src: IpAddr,
        dst_port: u16,
        payload: &'a [u8],
    ) -> Decoded<'a> {
        let Decapsulator { cfg, stats, .. } = self;
        stats.packets += 1;
        stats.bytes += payload.len() as u64;
        let tunnel = cfg.udp_tunnel(dst_port).unwrap_or(UdpTunnel::Vxlan);
        let r = peel_udp_tunnel(stats, tunnel, payload, outer_src, 0)
            .and_then(|(ctx, net)| walk_from(cfg, stats, None, ts_ns, ctx, net));
        let r = r.unwrap_or_else(Decoded::Rejected);
        count_result(stats, &r);
        r
    }
}

/// Counts what a decode produced.
fn count_result(stats: &mut DecapStats, r: &Decoded<'_>) {
    match r {
        Decoded::Rejected(e) => bump(&mut stats.rejected, e.index()),
        Decoded::Segment { inner, .. } => {
            bump(&mut stats.segments, inner.tunnel.index());
            bump(&mut stats.inner_protos, InnerProto::Tcp.index());
        }
        Decoded::Other { proto, .. } => bump(&mut stats.inner_protos, proto.index()),
        Decoded::FragmentHeld => {}
    }
}

fn net_start(s: NetStart<'_>) -> Net<'_> {
    match s {
        NetStart::Ethernet(b) => Net::Ethernet(b),
        NetStart::EtherType(t, b) => Net::EtherType(t, b),
        NetStart::Ip(b) => Net::Ip(b),
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
    let ctx = Ctx {
        vni: None,
        mirror_source: None,
        inner: Inner {
            tunnel: TunnelKind::None,
            depth: 0,
            link,
            frame,
        },
    };
    let net = net_start(strip_link(link, frame)?);
    walk_from(cfg, stats, Some(frags), ts_ns, ctx, net)
}

/// The context of a tunnel just peeled, with the layer inside it.
fn tunnel_ctx<'a>(
    kind: TunnelKind,
    vni: Option<u32>,
    outer_src: IpAddr,
    depth: u8,
    link: LinkType,
    net: Net<'a>,
) -> (Ctx<'a>, Net<'a>) {
    let frame = match net {
        Net::Ethernet(b) | Net::Ipv4(b) | Net::Ipv6(b) => b,
        Net::EtherType(_, b) | Net::Ip(b) => b,
    };
    let ctx = Ctx {
        vni,
        mirror_source: Some(outer_src),
        inner: Inner {
            tunnel: kind,
            depth: depth.saturating_add(1),
            link,
            frame,
        },
    };
    (ctx, net)
}

/// Peels one VXLAN(-GPE), Geneve or GRE-in-UDP header off a UDP payload: the context and
/// layer inside it.
fn peel_udp_tunnel<'a>(
    stats: &mut DecapStats,
    tunnel: UdpTunnel,
    udp_payload: &'a [u8],
    outer_src: IpAddr,
    depth: u8,
) -> Result<(Ctx<'a>, Net<'a>), Error> {
    let (kind, vni, (link, net)) = match tunnel {
        UdpTunnel::Vxlan => {
            // Only the I flag decides validity; the rest is reserved (RFC 7348 section 5),
            // including what VXLAN-GPE would read as its P flag and next protocol.
            let h = VxlanHeader::new_checked(udp_payload)?;
            if h.reserved_bits_set() {
                stats.vxlan_reserved_bits += 1;
            }
            let next = (LinkType::Ethernet, Net::Ethernet(h.payload()));
            (TunnelKind::Vxlan, h.vni(), next)
        }
        UdpTunnel::VxlanGpe => {
            let h = VxlanHeader::new_checked(udp_payload)?;
            if h.gpe_reserved_bits_set() {
                stats.vxlan_reserved_bits += 1;
            }
            let next = match h.gpe_next()? {
                VxlanNext::Ethernet => (LinkType::Ethernet, Net::Ethernet(h.payload())),
                VxlanNext::Ipv4 => (LinkType::Ipv4, Net::Ipv4(h.payload())),
                VxlanNext::Ipv6 => (LinkType::Ipv6, Net::Ipv6(h.payload())),
            };
            (TunnelKind::Vxlan, h.vni(), next)
        }
        UdpTunnel::Geneve => {
            let h = GeneveHeader::new_checked(udp_payload)?;
            let next = match h.next()? {
                GeneveNext::Ethernet => (LinkType::Ethernet, Net::Ethernet(h.payload())),
                GeneveNext::Ipv4 => (LinkType::Ipv4, Net::Ipv4(h.payload())),
                GeneveNext::Ipv6 => (LinkType::Ipv6, Net::Ipv6(h.payload())),
            };
            (TunnelKind::Geneve, h.vni(), next)
        }
        UdpTunnel::Gre => return peel_gre(udp_payload, outer_src, depth, true),
    };
    Ok(tunnel_ctx(kind, Some(vni), outer_src, depth, link, net))
}

/// Peels a GRE header (and the ERSPAN header inside it, if any) off an IP payload or a
/// GRE-in-UDP datagram. The VNI-equivalent is the ERSPAN session id, or else the GRE key.
fn peel_gre<'a>(
    payload: &'a [u8],
    outer_src: IpAddr,
    depth: u8,
    over_udp: bool,
) -> Result<(Ctx<'a>, Net<'a>), Error> {
    let h = GreHeader::new_checked(payload)?;
    let plain = if over_udp {
        TunnelKind::GreUdp
    } else {
        TunnelKind::Gre
    };
    let ethernet = |b| (LinkType::Ethernet, Net::Ethernet(b));
    let (kind, vni, (link, net)) = match h.next()? {
        GreNext::Ethernet => (plain, h.key(), ethernet(h.payload())),
        GreNext::Ipv4 => (plain, h.key(), (LinkType::Ipv4, Net::Ipv4(h.payload()))),
        GreNext::Ipv6 => (plain, h.key(), (LinkType::Ipv6, Net::Ipv6(h.payload()))),
        // No ERSPAN header, so no session id: a key, if the GRE header has one.
        GreNext::Erspan1 => (TunnelKind::Erspan1, h.key(), ethernet(h.payload())),
        GreNext::Erspan2 => {
            let e = ErspanHeader::new_checked_ii(h.payload())?;
            let sid = Some(u32::from(e.session_id()));
            (TunnelKind::Erspan2, sid, ethernet(e.payload()))
        }
        GreNext::Erspan3 => {
            let e = ErspanHeader::new_checked_iii(h.payload())?;
            let sid = Some(u32::from(e.session_id()));
            let next = match e.next()? {
                ErspanNext::Ethernet => ethernet(e.payload()),
                ErspanNext::Ip => (LinkType::Raw, Net::Ip(e.payload())),
            };
            (TunnelKind::Erspan3, sid, next)
        }
    };
    Ok(tunnel_ctx(kind, vni, outer_src, depth, link, net))
}

/// The layer walk from a given point (a frame's link layer, or the inside of a tunnel).
fn walk_from<'a>(
    cfg: &DecapConfig,
    stats: &mut DecapStats,
    frags: Option<&'a mut FragTable>,
    ts_ns: u64,
    mut ctx: Ctx<'a>,
    mut net: Net<'a>,
) -> Result<Decoded<'a>, Error> {
    let mut frags = frags;
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
                // (or an ERSPAN/GRE packet) larger than the underlay MTU gets split. Inner fragments are the mirrored
                // host's business; we count and skip them.
                let table = match frags.take() {
                    Some(t)
                        if ctx.inner.depth == 0
                            && (proto == ip::UDP || proto == ip::GRE)
                            && t.enabled() =>
                    {
                        t
                    }
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
            ip::TCP => {
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
                        tunnel: ctx.inner.tunnel,
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
            ip::UDP => {
                let udp = UdpDatagram::new_checked(l4)?;
                let Some(tunnel) = cfg.udp_tunnel(udp.dst_port()) else {
                    if truncated_by > 0 {
                        stats.truncated += 1;
                        stats.truncated_bytes += truncated_by as u64;
                    }
                    return Ok(other(&ctx, InnerProto::Udp));
                };
                if ctx.inner.depth >= cfg.max_depth {
                    return Err(Error::TunnelDepthExceeded);
                }
                (ctx, net) = peel_udp_tunnel(stats, tunnel, udp.payload(), src, ctx.inner.depth)?;
            }
            ip::GRE => {
                // Truncation is accounted at the innermost packet, as for UDP tunnels.
                if ctx.inner.depth >= cfg.max_depth {
                    return Err(Error::TunnelDepthExceeded);
                }
                (ctx, net) = peel_gre(l4, src, ctx.inner.depth, false)?;
            }
            p => {
                if truncated_by > 0 {
                    stats.truncated += 1;
                    stats.truncated_bytes += truncated_by as u64;
                }
                let proto = match p {
                    ip::ICMP => InnerProto::Icmp,
                    ip::ICMPV6 => InnerProto::Icmpv6,
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
        IpView::V6(p) => p.pseudo_header_sum(ip::TCP, tcp.as_bytes().len()),
    };
    if complete && checksum::finish(checksum::sum(tcp.as_bytes(), pseudo)) != 0 {
        stats.bad_tcp_checksums += 1;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::encap::{to_ethernet, wrap_vxlan, OuterParams};
    use etherparse::PacketBuilder;
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        s.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    // Real AWS VPC Traffic Mirroring frames (suricata-verify vxlan-decoder-03), VNI 5569041.
    // #0: NTP request (inner UDP 123).
    const AWS_NTP: &str = "06e2439cff5e061d3c34d07708004500007e00000000ff115086ac1f00eeac1f11bcffa512b5006a00000800000054fa110002292374c77d028569c2ab0208004500004c09514000ff1119edac1f00ee4e2e5d27ecd7007b00380192230009200000000000000000000000000000000000000000000000000000000000000000000000006e7c1f1daa4d542f";
    // #5: SSH banner from 18.196.145.224:37180 to 172.31.0.238:22 (33 payload bytes).
    const AWS_SSH: &str = "06e2439cff5e061d3c34d07708004500008700000000ff11507dac1f00eeac1f11bcffc212b5007300000800000054fa1100028569c2ab0202292374c77d080045000055de1240003f060bdf12c491e0ac1f00ee913c0016e7d8ab466eafc496801801f6543200000101080ab341f4dc328705ac5353482d322e302d4f70656e5353485f372e397031205562756e74752d31300d0a";
    // tcpdump geneve.pcap #2: Geneve VNI 11, inner TCP SYN 30.0.0.2:51225 -> 30.0.0.1:22.
    const GENEVE_SYN: &str = "001b213cab64001b213cac3008004500006e8806400040118a761400000214000001a9b317c1005a00000000655800000b00b69ed2495148fe71d883724f08004500003c5a1140004006a4a81e0000021e000001c819001617b30caf00000000a0023908e4370000020405b40402080aab6d56be0000000001030307";
    // zeek geneve-vxlan-dns-truncated.pcap #0 (first 176 bytes of 182): Geneve(IPv4) -> VXLAN
    // VNI 4242 -> Ethernet -> IPv4 -> UDP 53.
    const GENEVE_VXLAN_DNS: &str = "0c552183136e0c552183136d0800450000a80000000020119c437f0000017f0000012e1b17c100941f5b0000080000109200450000840000000020119c677f0000017f000001670f12b500701f63080000000010920074acb93fd27d48f17fa3b6ff080045000052f30000004011cdbfac100bc90101010190080035003ec791fa480120000100000000000109636f72656c6967687403636f6d0000010001000029100000000000000c000a00088731";

    pub(crate) fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb])
            .ipv4([192, 168, 1, 10], [10, 1, 2, 3], 64)
            .tcp(51000, 80, 1000, 65535)
            .ack(77)
            .psh()
            .write(&mut v, payload)
            .unwrap();
        v
    }

    fn seg<'a>(d: &Decoded<'a>) -> (Segment<'a>, Inner<'a>) {
        match *d {
            Decoded::Segment { segment, inner } => (segment, inner),
            ref o => panic!("expected a segment, got {o:?}"),
        }
    }

    #[test]
    fn aws_mirror_frames() {
        let mut d = Decapsulator::default();
        let f = hex(AWS_SSH);
        let r = d.decode(LinkType::Ethernet, 7, &f);
        let (s, inner) = seg(&r);
        assert_eq!(s.vni, Some(5_569_041));
        assert_eq!(
            s.mirror_source,
            Some(IpAddr::V4(Ipv4Addr::new(172, 31, 0, 238)))
        );
        assert_eq!(s.src_ip, IpAddr::V4(Ipv4Addr::new(18, 196, 145, 224)));
        assert_eq!(s.dst_ip, IpAddr::V4(Ipv4Addr::new(172, 31, 0, 238)));
        assert_eq!((s.src_port, s.dst_port), (37180, 22));
        assert_eq!(s.payload, b"SSH-2.0-OpenSSH_7.9p1 Ubuntu-10\r\n");
        assert_eq!(s.wire_payload_len, 33);
        assert_eq!(s.ts_ns, 7);
        assert!(s.flags.ack() && !s.flags.syn());
        assert_eq!(inner.tunnel, TunnelKind::Vxlan);
        assert_eq!(inner.link, LinkType::Ethernet);
        assert_eq!(inner.frame, &f[50..]);

        let f = hex(AWS_NTP);
        match d.decode(LinkType::Ethernet, 8, &f) {
            Decoded::Other { vni, proto, inner } => {
                assert_eq!(
                    (vni, proto, inner.depth),
                    (Some(5_569_041), InnerProto::Udp, 1)
                );
            }
            o => panic!("{o:?}"),
        }
        let st = d.stats();
        assert_eq!(st.packets, 2);
        assert_eq!(st.segments[TunnelKind::Vxlan.index()], 1);
        assert_eq!(st.inner_protos[InnerProto::Udp.index()], 1);
        assert_eq!(st.inner_protos[InnerProto::Tcp.index()], 1);
        assert_eq!(st.rejected_total(), 0);
    }

    #[test]
    fn geneve_and_nested_geneve_vxlan() {
        let mut d = Decapsulator::default();
        let f = hex(GENEVE_SYN);
        let r = d.decode(LinkType::Ethernet, 0, &f);
        let (s, inner) = seg(&r);
        assert_eq!(
            (s.vni, inner.tunnel, inner.depth),
            (Some(11), TunnelKind::Geneve, 1)
        );
        assert!(s.flags.syn());
        assert_eq!((s.src_port, s.dst_port, s.wire_payload_len), (51225, 22, 0));
        assert_eq!(
            s.mirror_source,
            Some(IpAddr::V4(Ipv4Addr::new(20, 0, 0, 2)))
        );

        let f = hex(GENEVE_VXLAN_DNS);
        match d.decode(LinkType::Ethernet, 0, &f) {
            Decoded::Other { vni, proto, inner } => {
                assert_eq!((vni, proto), (Some(4242), InnerProto::Udp));
                assert_eq!((inner.tunnel, inner.depth), (TunnelKind::Vxlan, 2));
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(
            d.stats().truncated,
            1,
            "the capture cut 6 bytes of the DNS query"
        );
        assert_eq!(d.stats().truncated_bytes, 6);
    }

    #[test]
    fn plain_capture_and_padding() {
        let mut d = Decapsulator::default();
        let mut f = tcp_frame(b"GET");
        f.resize(60, 0xee);
        let r = d.decode(LinkType::Ethernet, 1, &f);
        let (s, inner) = seg(&r);
        assert_eq!(s.payload, b"GET", "padding must not become payload");
        assert_eq!(s.wire_payload_len, 3);
        assert_eq!((s.vni, s.mirror_source), (None, None));
        assert_eq!(
            (inner.tunnel, inner.depth, inner.frame.len()),
            (TunnelKind::None, 0, 60)
        );
        assert_eq!((s.seq, s.ack, s.window), (1000, 77, 65535));
        assert_eq!(d.stats().segments[TunnelKind::None.index()], 1);
    }

    #[test]
    fn encap_roundtrip_with_truncation() {
        let body = vec![b'x'; 1448];
        let inner = tcp_frame(&body);
        let outer = OuterParams::default();
        let mut d = Decapsulator::default();
        let mut buf = Vec::new();
        for cut in [None, Some(100), Some(54), Some(14 + 20 + 20 + 1)] {
            wrap_vxlan(&inner, 0xabcdef, &outer, cut, &mut buf).unwrap();
            let r = d.decode(LinkType::Ethernet, 5, &buf);
            let (s, i) = seg(&r);
            let plain = tcp_frame(&body);
            let mut d2 = Decapsulator::default();
            let r2 = d2.decode(LinkType::Ethernet, 5, &plain);
            let (p, _) = seg(&r2);
            assert_eq!(s.vni, Some(0xabcdef));
            assert_eq!(s.mirror_source, Some(outer.src_ip));
            assert_eq!(
                (s.src_ip, s.dst_ip, s.src_port, s.dst_port),
                (p.src_ip, p.dst_ip, p.src_port, p.dst_port)
            );
            assert_eq!(
                (s.seq, s.ack, s.flags, s.window),
                (p.seq, p.ack, p.flags, p.window)
            );
            assert_eq!(s.wire_payload_len, 1448);
            let kept = cut.map_or(1448, |c| c - 54);
            assert_eq!(s.payload, &body[..kept]);
            assert_eq!(s.missing_len() as usize, 1448 - kept);
            assert_eq!(i.frame.len(), cut.unwrap_or(inner.len()));
        }
        assert_eq!(d.stats().truncated, 3);
        assert_eq!(
            d.stats().truncated_bytes,
            (1448 - 46 + 1448 + 1448 - 1) as u64
        );
    }

    #[test]
    fn tunnel_payload_decodes_like_the_whole_frame() {
        let inner = tcp_frame(&[b'y'; 300]);
        let outer = OuterParams::default();
        let mut buf = Vec::new();
        wrap_vxlan(&inner, 4242, &outer, Some(200), &mut buf).unwrap();
        let mut whole = Decapsulator::default();
        let r = whole.decode(LinkType::Ethernet, 7, &buf);
        let (expected, _) = seg(&r);
        // What a UDP socket hands the listener: the outer Ethernet, IPv4 and UDP headers gone.
        let mut live = Decapsulator::default();
        let r2 = live.decode_tunnel_payload(7, outer.src_ip, 4789, &buf[14 + 20 + 8..]);
        let (got, inner_got) = seg(&r2);
        assert_eq!(got, expected);
        assert_eq!((inner_got.tunnel, inner_got.depth), (TunnelKind::Vxlan, 1));
        assert_eq!(live.stats().truncated, 1);
        // Garbage is a counted rejection, never a panic.
        let mut d = Decapsulator::default();
        for cut in 0..20 {
            let _ = d.decode_tunnel_payload(0, outer.src_ip, 4789, &buf[14 + 20 + 8..][..cut]);
        }
        assert_eq!(d.stats().rejected_total(), 20);
        assert!(d.stats().rejected_for(Error::ShortVxlan) > 0);
    }

    #[test]
    fn ipv6_inner_and_outer() {
        let mut inner = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6([0x20; 16], [0x30; 16], 64)
            .tcp(443, 50000, 9, 100)
            .write(&mut inner, b"hello")
            .unwrap();
        let outer = OuterParams {
            src_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            dst_ip: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ..OuterParams::default()
        };
        let mut buf = Vec::new();
        wrap_vxlan(&inner, 9, &outer, None, &mut buf).unwrap();
        let mut d = Decapsulator::default();
        let r = d.decode(LinkType::Ethernet, 0, &buf);
        let (s, _) = seg(&r);
        assert_eq!(s.payload, b"hello");
        assert_eq!(s.src_ip, IpAddr::V6(Ipv6Addr::from([0x20; 16])));
        assert_eq!(s.mirror_source, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }

    #[test]
    fn depth_limit() {
        let inner = tcp_frame(b"abc");
        let mut cur = inner.clone();
        let mut buf = Vec::new();
        let mut d = Decapsulator::default();
        for depth in 1..=5u32 {
            wrap_vxlan(&cur, depth, &OuterParams::default(), None, &mut buf).unwrap();
            cur = buf.clone();
            let r = d.decode(LinkType::Ethernet, 0, &cur);
            if depth <= 4 {
                let (s, i) = seg(&r);
                assert_eq!(
                    (s.vni, i.depth),
                    (Some(1), depth as u8),
                    "innermost VNI wins"
                );
                assert_eq!(s.payload, b"abc");
            } else {
                assert_eq!(r, Decoded::Rejected(Error::TunnelDepthExceeded));
            }
        }
        assert_eq!(d.stats().rejected_for(Error::TunnelDepthExceeded), 1);
    }

    #[test]
    fn vlan_outer_other_ports_and_rejections() {
        let inner = tcp_frame(b"q");
        let mut buf = Vec::new();
        wrap_vxlan(&inner, 5, &OuterParams::default(), None, &mut buf).unwrap();
        // Insert an 802.1ad + 802.1Q pair in the outer frame.
        let mut tagged = buf[..12].to_vec();
        tagged.extend_from_slice(&[0x88, 0xa8, 0, 100, 0x81, 0, 0, 5]);
        tagged.extend_from_slice(&buf[12..]);
        let mut d = Decapsulator::default();
        assert_eq!(
            seg(&d.decode(LinkType::Ethernet, 0, &tagged)).0.vni,
            Some(5)
        );

        // VXLAN on 8472 is plain UDP unless configured.
        let mut p8472 = buf.clone();
        p8472[36..38].copy_from_slice(&8472u16.to_be_bytes());
        assert!(matches!(
            d.decode(LinkType::Ethernet, 0, &p8472),
            Decoded::Other {
                proto: InnerProto::Udp,
                vni: None,
                ..
            }
        ));
        let mut d8472 = Decapsulator::new(DecapConfig {
            vxlan_ports: vec![4789, 8472],
            ..DecapConfig::default()
        });
        assert_eq!(
            seg(&d8472.decode(LinkType::Ethernet, 0, &p8472)).0.vni,
            Some(5)
        );

        let mut bad = buf.clone();
        bad[42] = 0x00;
        assert_eq!(
            d.decode(LinkType::Ethernet, 0, &bad),
            Decoded::Rejected(Error::BadVxlanFlags)
        );
        bad[42] = 0x88;
        assert!(matches!(
            d.decode(LinkType::Ethernet, 0, &bad),
            Decoded::Segment { .. }
        ));
        assert_eq!(d.stats().vxlan_reserved_bits, 1);

        let mut unknown = inner.clone();
        unknown[12..14].copy_from_slice(&[0x88, 0xcc]);
        assert_eq!(
            d.decode(LinkType::Ethernet, 0, &unknown),
            Decoded::Rejected(Error::UnknownEthertype)
        );
        unknown[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(matches!(
            d.decode(LinkType::Ethernet, 0, &unknown),
            Decoded::Other {
                proto: InnerProto::Arp,
                ..
            }
        ));
        let mut badver = inner.clone();
        badver[14] = 0x55;
        assert_eq!(
            d.decode(LinkType::Ethernet, 0, &badver),
            Decoded::Rejected(Error::BadIpVersion)
        );
        let mut badhl = inner.clone();
        badhl[14] = 0x43;
        assert_eq!(
            d.decode(LinkType::Ethernet, 0, &badhl),
            Decoded::Rejected(Error::BadIpv4HeaderLen)
        );
        let mut badoff = inner.clone();
        badoff[14 + 20 + 12] = 0x30;
        assert_eq!(
            d.decode(LinkType::Ethernet, 0, &badoff),
            Decoded::Rejected(Error::BadTcpOffset)
        );
        let mut icmp = inner.clone();
        icmp[14 + 9] = 1;
        assert!(matches!(
            d.decode(LinkType::Ethernet, 0, &icmp),
            Decoded::Other {
                proto: InnerProto::Icmp,
                ..
            }
        ));
        let st = d.stats();
        for e in [
            Error::BadVxlanFlags,
            Error::UnknownEthertype,
            Error::BadIpVersion,
            Error::BadIpv4HeaderLen,
            Error::BadTcpOffset,
        ] {
            assert_eq!(st.rejected_for(e), 1, "{}", e.as_str());
        }
    }

    /// A VXLAN frame on `port` whose 8-byte VXLAN header is `vx`.
    fn vxlan_with_header(port: u16, vx: [u8; 8], inner: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let outer = OuterParams {
            dst_port: port,
            ..OuterParams::default()
        };
        wrap_vxlan(inner, 5, &outer, None, &mut buf).unwrap();
        buf[42..50].copy_from_slice(&vx);
        buf
    }

    #[test]
    fn vxlan_reserved_bits_are_ignored_and_counted() {
        let inner = tcp_frame(b"GET / HTTP/1.1\r\n\r\n");
        let mut d = Decapsulator::default();
        // RFC 7348 section 5: every bit but I may be set, the VNI still decides.
        for vx in [
            [0x08, 0, 0, 0, 0, 0, 5, 0x01],
            [0x0c, 0, 0, 0, 0, 0, 5, 0],
            [0x0c, 0, 0, 0x7f, 0, 0, 5, 0],
            [0xff, 0xff, 0xff, 0xff, 0, 0, 5, 0xff],
        ] {
            let f = vxlan_with_header(VXLAN_PORT, vx, &inner);
            let r = d.decode(LinkType::Ethernet, 0, &f);
            let (s, i) = seg(&r);
            assert_eq!(
                (s.vni, i.tunnel, i.link),
                (Some(5), TunnelKind::Vxlan, LinkType::Ethernet)
            );
            assert_eq!(s.payload, b"GET / HTTP/1.1\r\n\r\n");
        }
        assert_eq!(d.stats().vxlan_reserved_bits, 4);
        assert_eq!(d.stats().rejected_total(), 0);
        // Without the I flag the header is invalid whatever else is set.
        let f = vxlan_with_header(VXLAN_PORT, [0xf7, 0xff, 0xff, 0xff, 0, 0, 5, 0xff], &inner);
        assert_eq!(
            d.decode(LinkType::Ethernet, 0, &f),
            Decoded::Rejected(Error::BadVxlanFlags)
        );

        // On the VXLAN-GPE port the P flag and next protocol mean what GPE says.
        let mut gpe = Decapsulator::default();
        let f = vxlan_with_header(VXLAN_GPE_PORT, [0x0c, 0, 0, 3, 0, 0, 5, 0], &inner);
        assert_eq!(seg(&gpe.decode(LinkType::Ethernet, 0, &f)).0.vni, Some(5));
        let mut ip_only = vxlan_with_header(VXLAN_GPE_PORT, [0x0c, 0, 0, 1, 0, 0, 6, 0], &inner);
        ip_only.drain(50..64);
        let fixed_len = (ip_only.len() - 14) as u16;
        ip_only[16..18].copy_from_slice(&fixed_len.to_be_bytes());
        ip_only[38..40].copy_from_slice(&(fixed_len - 20).to_be_bytes());
        let r = gpe.decode(LinkType::Ethernet, 0, &ip_only);
        let (s, i) = seg(&r);
        assert_eq!((s.vni, i.link), (Some(6), LinkType::Ipv4));
        let f = vxlan_with_header(VXLAN_GPE_PORT, [0x0c, 0, 0, 4, 0, 0, 5, 0], &inner);
        assert_eq!(
            gpe.decode(LinkType::Ethernet, 0, &f),
            Decoded::Rejected(Error::UnknownGpeProtocol)
        );
        // The same NSH-announcing header on the plain VXLAN port is reserved bits: decoded.
        let f = vxlan_with_header(VXLAN_PORT, [0x0c, 0, 0, 4, 0, 0, 5, 0], &inner);
        assert!(matches!(
            gpe.decode(LinkType::Ethernet, 0, &f),
            Decoded::Segment { .. }
        ));
        assert_eq!(gpe.stats().vxlan_reserved_bits, 1);
        // GPE configured on another port.
        let mut custom = Decapsulator::new(DecapConfig {
            vxlan_gpe_ports: vec![4789],
            ..DecapConfig::default()
        });
        let f = vxlan_with_header(VXLAN_PORT, [0x0c, 0, 0, 4, 0, 0, 5, 0], &inner);
        assert_eq!(
            custom.decode(LinkType::Ethernet, 0, &f),
            Decoded::Rejected(Error::UnknownGpeProtocol)
        );
    }

    /// Ethernet / IPv4 (protocol 47) from 10.9.0.1 / `gre` / `payload`: a GRE mirror frame.
    pub(crate) fn gre_frame(gre: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = (20 + gre.len() + payload.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 47, 0, 0, 10, 9, 0, 1, 10, 9, 0, 2]);
        let c = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(gre);
        f.extend_from_slice(payload);
        f
    }

    pub(crate) type GreVariant = (&'static str, Vec<u8>, bool, TunnelKind, Option<u32>);

    /// The GRE headers of every variant with what each must decode to: (name, GRE header
    /// with any ERSPAN header, whether the payload is the IP packet rather than the Ethernet
    /// frame, tunnel, VNI-equivalent).
    pub(crate) fn gre_variants() -> Vec<GreVariant> {
        vec![
            ("teb", vec![0, 0, 0x65, 0x58], false, TunnelKind::Gre, None),
            (
                "teb_key",
                vec![0x20, 0, 0x65, 0x58, 0, 1, 0xe2, 0x40],
                false,
                TunnelKind::Gre,
                Some(123_456),
            ),
            (
                "teb_csum_key_seq",
                vec![
                    0xb0, 0, 0x65, 0x58, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1,
                ],
                false,
                TunnelKind::Gre,
                Some(0xdead_beef),
            ),
            ("ipv4", vec![0, 0, 0x08, 0x00], true, TunnelKind::Gre, None),
            (
                "ipv4_key",
                vec![0x20, 0, 0x08, 0x00, 0, 0, 0, 9],
                true,
                TunnelKind::Gre,
                Some(9),
            ),
            (
                "erspan1",
                vec![0, 0, 0x88, 0xbe],
                false,
                TunnelKind::Erspan1,
                None,
            ),
            (
                "erspan2",
                vec![
                    0x10, 0, 0x88, 0xbe, 0, 0, 0, 7, 0x10, 0x64, 0x01, 0x2c, 0, 0, 0, 3,
                ],
                false,
                TunnelKind::Erspan2,
                Some(300),
            ),
            (
                "erspan3",
                vec![
                    0x10, 0, 0x22, 0xeb, 0, 0, 0, 7, 0x20, 0, 0x03, 0xff, 0, 0, 0, 1, 0, 0, 0, 0,
                ],
                false,
                TunnelKind::Erspan3,
                Some(1023),
            ),
            (
                "erspan3_platform",
                vec![
                    0, 0, 0x22, 0xeb, 0x20, 0, 0, 42, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7,
                    8,
                ],
                false,
                TunnelKind::Erspan3,
                Some(42),
            ),
            (
                "erspan3_ip",
                vec![0, 0, 0x22, 0xeb, 0x20, 0, 0, 5, 0, 0, 0, 1, 0, 0, 2 << 2, 0],
                true,
                TunnelKind::Erspan3,
                Some(5),
            ),
        ]
    }

    #[test]
    fn gre_and_erspan_variants_decode_like_the_plain_frame() {
        let inner = tcp_frame(b"GET /gre HTTP/1.1\r\n\r\n");
        let mut plain = Decapsulator::default();
        let r = plain.decode(LinkType::Ethernet, 3, &inner);
        let (want, _) = seg(&r);
        let mut d = Decapsulator::default();
        for (name, gre, ip_only, kind, vni) in gre_variants() {
            let payload = if ip_only { &inner[14..] } else { &inner[..] };
            let f = gre_frame(&gre, payload);
            let r = d.decode(LinkType::Ethernet, 3, &f);
            let (s, i) = seg(&r);
            assert_eq!((i.tunnel, s.vni, i.depth), (kind, vni, 1), "{name}");
            assert_eq!(s.tunnel, kind, "{name}");
            assert_eq!(i.frame, payload, "{name}");
            assert_eq!(
                s.mirror_source,
                Some(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1))),
                "{name}"
            );
            assert_eq!(
                Segment {
                    vni: None,
                    tunnel: TunnelKind::None,
                    mirror_source: None,
                    ..s
                },
                want,
                "{name}"
            );
            // GRE-in-UDP (RFC 8086): the same GRE header as a UDP payload on port 4754.
            if kind == TunnelKind::Gre {
                let mut udp = Vec::new();
                let outer = OuterParams {
                    dst_port: GRE_UDP_PORT,
                    ..OuterParams::default()
                };
                wrap_vxlan(&[], 0, &outer, None, &mut udp).unwrap();
                udp.truncate(42);
                let f = [&udp[..], &gre, payload].concat();
                let mut f = f;
                let ip_total = (f.len() - 14) as u16;
                f[16..18].copy_from_slice(&ip_total.to_be_bytes());
                f[38..40].copy_from_slice(&(ip_total - 20).to_be_bytes());
                let r = d.decode(LinkType::Ethernet, 3, &f);
                let (s, i) = seg(&r);
                assert_eq!(
                    (i.tunnel, s.vni),
                    (TunnelKind::GreUdp, vni),
                    "{name} over UDP"
                );
                assert_eq!(
                    Segment {
                        vni: None,
                        tunnel: TunnelKind::None,
                        mirror_source: None,
                        ..s
                    },
                    want,
                    "{name}"
                );
                // And as the live listener receives it.
                let mut live = Decapsulator::default();
                let r = live.decode_tunnel_payload(3, outer.src_ip, GRE_UDP_PORT, &f[42..]);
                assert_eq!(seg(&r).1.tunnel, TunnelKind::GreUdp, "{name} live");
            }
        }
        assert_eq!(d.stats().rejected_total(), 0);
        for k in [TunnelKind::Gre, TunnelKind::Erspan1, TunnelKind::Erspan2] {
            assert!(d.stats().segments[k.index()] > 0, "{}", k.as_str());
        }
        assert_eq!(d.stats().segments[TunnelKind::Erspan3.index()], 3);
        assert_eq!(d.stats().segments[TunnelKind::GreUdp.index()], 5);
    }

    #[test]
    fn malformed_gre_and_erspan_are_counted_rejections() {
        let inner = tcp_frame(b"x");
        let cases: Vec<(Vec<u8>, &[u8], Error)> = vec![
            (vec![0, 1, 0x65, 0x58], &inner, Error::BadGreVersion),
            (
                vec![0x30, 0x81, 0x88, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0],
                &inner,
                Error::BadGreVersion,
            ),
            (
                vec![0x40, 0, 0x65, 0x58, 0, 0, 0, 0],
                &inner,
                Error::GreRouting,
            ),
            (vec![0x08, 0, 0x65, 0x58], &inner, Error::GreRouting),
            (vec![0, 0, 0x88, 0x47], &inner, Error::UnknownGreProtocol),
            // Key and sequence announced, packet ends inside them.
            (vec![0x30, 0, 0x65, 0x58, 0, 0, 0], &[], Error::ShortGre),
            (vec![0, 0, 0x65], &[], Error::ShortGre),
            (
                vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0],
                &[],
                Error::ShortErspan,
            ),
            (
                vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x20, 0, 0, 1, 0, 0, 0, 0],
                &inner,
                Error::BadErspanVersion,
            ),
            (
                vec![0, 0, 0x22, 0xeb, 0x10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                &inner,
                Error::BadErspanVersion,
            ),
            (
                vec![0, 0, 0x22, 0xeb, 0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
                &[1, 2, 3],
                Error::ShortErspan,
            ),
            (
                vec![0, 0, 0x22, 0xeb, 0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3 << 2, 0],
                &inner,
                Error::UnknownErspanFrameType,
            ),
        ];
        let mut d = Decapsulator::default();
        for (gre, payload, want) in &cases {
            let f = gre_frame(gre, payload);
            assert_eq!(
                d.decode(LinkType::Ethernet, 0, &f),
                Decoded::Rejected(*want),
                "{}",
                want.as_str()
            );
        }
        for e in [
            Error::BadGreVersion,
            Error::GreRouting,
            Error::ShortGre,
            Error::ShortErspan,
            Error::BadErspanVersion,
        ] {
            assert_eq!(d.stats().rejected_for(e), 2, "{}", e.as_str());
        }
        assert_eq!(d.stats().rejected_for(Error::UnknownGreProtocol), 1);
        assert_eq!(d.stats().rejected_for(Error::UnknownErspanFrameType), 1);
        assert_eq!(d.stats().rejected_total(), cases.len() as u64);

        // Depth: GRE counts as a tunnel like the UDP ones.
        let mut none = Decapsulator::new(DecapConfig {
            max_depth: 0,
            ..DecapConfig::default()
        });
        let f = gre_frame(&[0, 0, 0x65, 0x58], &inner);
        assert_eq!(
            none.decode(LinkType::Ethernet, 0, &f),
            Decoded::Rejected(Error::TunnelDepthExceeded)
        );
    }

    #[test]
    fn gre_truncation_is_accounted_and_every_cut_is_clean() {
        let body = vec![b'g'; 300];
        let inner = tcp_frame(&body);
        for (name, gre, ip_only, _, _) in gre_variants() {
            let payload = if ip_only { &inner[14..] } else { &inner[..] };
            let f = gre_frame(&gre, payload);
            // Where the inner TCP payload starts in the GRE frame.
            let payload_at = f.len() - body.len();
            let mut d = Decapsulator::default();
            for n in 0..=f.len() {
                // A mirror that cuts the packet leaves the outer IP length saying so too.
                match d.decode(LinkType::Ethernet, 0, &f[..n]) {
                    Decoded::Segment { segment, .. } => {
                        assert!(n >= payload_at, "{name} len {n}");
                        assert_eq!(segment.payload, &body[..n - payload_at]);
                        assert_eq!(segment.wire_payload_len, 300);
                    }
                    Decoded::Rejected(_) => assert!(n < payload_at, "{name} len {n}"),
                    o => panic!("{name} len {n}: {o:?}"),
                }
            }
            // Every cut after the inner IP header (TCP header included) is counted with the
            // bytes it lost, at the innermost layer only.
            assert_eq!(d.stats().truncated, 320, "{name}");
            assert_eq!(d.stats().truncated_bytes, (1..=320).sum::<u64>(), "{name}");
        }
    }

    #[test]
    fn outer_gre_fragments_are_reassembled() {
        let body: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let inner = tcp_frame(&body);
        let f = gre_frame(
            &[0x10, 0, 0x88, 0xbe, 0, 0, 0, 7, 0x10, 0, 0, 9, 0, 0, 0, 0],
            &inner,
        );
        let frags = fragment(&f, 1480, 0x77);
        let mut d = Decapsulator::default();
        for p in &frags[..frags.len() - 1] {
            assert_eq!(d.decode(LinkType::Ethernet, 0, p), Decoded::FragmentHeld);
        }
        let r = d.decode(LinkType::Ethernet, 0, frags.last().unwrap());
        let (s, i) = seg(&r);
        assert_eq!(
            (s.vni, i.tunnel, s.payload),
            (Some(9), TunnelKind::Erspan2, &body[..])
        );
    }

    #[test]
    fn inner_fragment_rejected() {
        let mut inner = tcp_frame(b"0123456789abcdef");
        inner[14 + 6] = 0x20; // MF
        let mut buf = Vec::new();
        wrap_vxlan(&inner, 5, &OuterParams::default(), None, &mut buf).unwrap();
        let mut d = Decapsulator::default();
        assert_eq!(
            d.decode(LinkType::Ethernet, 0, &buf),
            Decoded::Rejected(Error::IpFragment)
        );
    }

    /// Splits the outer IPv4 packet of an Ethernet frame into fragments of `chunk` bytes.
    fn fragment(frame: &[u8], chunk: usize, ident: u16) -> Vec<Vec<u8>> {
        let ip = &frame[14..];
        let payload = &ip[20..];
        payload
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                let off = i * chunk;
                let more = off + part.len() < payload.len();
                let mut h = ip[..20].to_vec();
                h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
                h[4..6].copy_from_slice(&ident.to_be_bytes());
                let fo = (off / 8) as u16 | if more { 0x2000 } else { 0 };
                h[6..8].copy_from_slice(&fo.to_be_bytes());
                h[10..12].copy_from_slice(&[0, 0]);
                let c = checksum::checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                let mut f = frame[..14].to_vec();
                f.extend_from_slice(&h);
                f.extend_from_slice(part);
                f
            })
            .collect()
    }

    #[test]
    fn outer_fragments_reassembled() {
        let body: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let inner = tcp_frame(&body);
        let mut buf = Vec::new();
        wrap_vxlan(&inner, 77, &OuterParams::default(), None, &mut buf).unwrap();
        let mut frags = fragment(&buf, 1480, 0x4242);
        assert_eq!(frags.len(), 3);
        frags.reverse();
        let mut d = Decapsulator::default();
        for f in &frags[..2] {
            assert_eq!(d.decode(LinkType::Ethernet, 1, f), Decoded::FragmentHeld);
        }
        let r = d.decode(LinkType::Ethernet, 2, &frags[2]);
        let (s, _) = seg(&r);
        assert_eq!(
            (s.vni, s.payload, s.wire_payload_len),
            (Some(77), &body[..], 3000)
        );
        let st = d.stats().fragments.clone();
        assert_eq!((st.held, st.reassembled), (2, 1));

        // A lost middle fragment times out when later fragments arrive.
        let frags = fragment(&buf, 1480, 0x1111);
        let later = fragment(&buf, 1480, 0x2222);
        assert_eq!(
            d.decode(LinkType::Ethernet, 0, &frags[0]),
            Decoded::FragmentHeld
        );
        let t = DecapConfig::default().frag.timeout_ns + 1;
        assert_eq!(
            d.decode(LinkType::Ethernet, t, &later[0]),
            Decoded::FragmentHeld
        );
        assert_eq!(
            d.stats().fragments.failed[crate::FragFailure::Timeout.index()],
            1
        );

        // A truncated fragment can never complete.
        let cut = &later[1][..100];
        assert_eq!(
            d.decode(LinkType::Ethernet, t, cut),
            Decoded::Rejected(Error::FragmentDropped)
        );

        // Disabled reassembly rejects outer fragments.
        let mut off = Decapsulator::new(DecapConfig {
            frag: crate::FragConfig {
                max_datagrams: 0,
                ..Default::default()
            },
            ..DecapConfig::default()
        });
        assert_eq!(
            off.decode(LinkType::Ethernet, 0, &frags[1]),
            Decoded::Rejected(Error::IpFragment)
        );
    }

    #[test]
    fn checksums_counted_only_when_asked() {
        let f = tcp_frame(b"payload!");
        let mut bad = f.clone();
        bad[14 + 20 + 16] ^= 0xff; // TCP checksum
        bad[14 + 10] ^= 0xff; // IPv4 header checksum
        let mut off = Decapsulator::default();
        let mut on = Decapsulator::new(DecapConfig {
            validate_checksums: true,
            ..DecapConfig::default()
        });
        for d in [&mut off, &mut on] {
            assert!(matches!(
                d.decode(LinkType::Ethernet, 0, &f),
                Decoded::Segment { .. }
            ));
            assert!(matches!(
                d.decode(LinkType::Ethernet, 0, &bad),
                Decoded::Segment { .. }
            ));
        }
        assert_eq!(
            (
                off.stats().bad_ipv4_checksums,
                off.stats().bad_tcp_checksums
            ),
            (0, 0)
        );
        assert_eq!(
            (on.stats().bad_ipv4_checksums, on.stats().bad_tcp_checksums),
            (1, 1)
        );
        // Real AWS frame: its checksums are right.
        let aws = hex(AWS_SSH);
        on.decode(LinkType::Ethernet, 0, &aws);
        assert_eq!(
            (on.stats().bad_ipv4_checksums, on.stats().bad_tcp_checksums),
            (1, 1)
        );
    }

    #[test]
    fn other_link_types() {
        let eth = tcp_frame(b"hi");
        let ip = &eth[14..];
        let mut d = Decapsulator::default();
        let mut frames: Vec<(LinkType, Vec<u8>)> = vec![
            (LinkType::Raw, ip.to_vec()),
            (LinkType::Ipv4, ip.to_vec()),
            (LinkType::Null, [&[2, 0, 0, 0][..], ip].concat()),
            (LinkType::Loop, [&[0, 0, 0, 2][..], ip].concat()),
        ];
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(ip);
        frames.push((LinkType::LinuxSll, sll));
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend_from_slice(ip);
        frames.push((LinkType::LinuxSll2, sll2));
        let mut conv = Vec::new();
        for (link, f) in &frames {
            let r = d.decode(*link, 0, f);
            let (s, i) = seg(&r);
            assert_eq!(s.payload, b"hi", "{link:?}");
            assert_eq!(i.link, *link);
            to_ethernet(*link, f, &mut conv).unwrap();
            let mut fresh = Decapsulator::default();
            let r = fresh.decode(LinkType::Ethernet, 0, &conv);
            assert!(matches!(r, Decoded::Segment { .. }), "{link:?} -> ethernet");
            assert_eq!(&conv[14..], ip);
        }
        to_ethernet(LinkType::Ethernet, &eth, &mut conv).unwrap();
        assert_eq!(conv, eth);
        assert_eq!(
            d.decode(LinkType::Raw, 0, &[]),
            Decoded::Rejected(Error::ShortIp)
        );
        assert_eq!(
            d.decode(LinkType::Raw, 0, &[0x70]),
            Decoded::Rejected(Error::BadIpVersion)
        );
    }

    #[test]
    fn every_truncation_of_a_vxlan_frame_is_clean() {
        let inner = tcp_frame(b"GET / HTTP/1.1\r\n\r\n");
        let mut buf = Vec::new();
        wrap_vxlan(&inner, 3, &OuterParams::default(), None, &mut buf).unwrap();
        let mut d = Decapsulator::default();
        for n in 0..=buf.len() {
            match d.decode(LinkType::Ethernet, 0, &buf[..n]) {
                Decoded::Segment { segment, .. } => {
                    // Only cuts inside the TCP payload still give a segment, with exact
                    // accounting of what is missing.
                    assert!(n >= 50 + 54, "len {n}");
                    assert_eq!(segment.payload.len(), n - 50 - 54);
                    assert_eq!(segment.wire_payload_len, 18);
                }
                Decoded::Rejected(e) => assert!(n < 50 + 54, "len {n}: {e}"),
                o => panic!("len {n}: {o:?}"),
            }
        }
        let st = d.stats();
        assert_eq!(st.rejected_for(Error::ShortEthernet), 14 + 14);
        assert_eq!(st.rejected_for(Error::ShortIpv4), 20 + 20);
        assert_eq!(st.rejected_for(Error::ShortUdp), 8);
        assert_eq!(st.rejected_for(Error::ShortVxlan), 8);
        assert_eq!(st.rejected_for(Error::ShortTcp), 20);
    }

    #[test]
    fn stats_merge_and_labels() {
        let mut a = DecapStats::default();
        let mut b = DecapStats {
            packets: 3,
            ..DecapStats::default()
        };
        b.rejected[Error::ShortTcp.index()] = 2;
        b.fragments.failed[crate::FragFailure::Overlap.index()] = 1;
        a.merge(&b);
        a.merge(&b);
        assert_eq!(a.packets, 6);
        assert_eq!(a.rejected_for(Error::ShortTcp), 4);
        assert_eq!(a.fragments.failed[crate::FragFailure::Overlap.index()], 2);
        let counters = a.counters();
        assert!(counters.contains(&Counter {
            name: "vxtap_decap_rejected_total",
            label: Some(("reason", "short_tcp")),
            value: 4
        }));
        assert_eq!(
            counters.len(),
            9 + Error::COUNT + TunnelKind::COUNT + InnerProto::COUNT + crate::FragFailure::COUNT
        );
        fn assert_send<T: Send>() {}
        assert_send::<Decapsulator>();
        let labels: Vec<_> = TunnelKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            labels,
            ["none", "vxlan", "geneve", "gre", "gre_udp", "erspan1", "erspan2", "erspan3"]
        );
        assert_eq!(InnerProto::ALL.len(), InnerProto::COUNT);
    }
}

#[cfg(test)]
mod fuzz {
    use super::tests::{gre_frame, gre_variants, tcp_frame};
    use super::*;
    use crate::encap::{wrap_vxlan, OuterParams};
    use proptest::prelude::*;

    const LINKS: [LinkType; 8] = [
        LinkType::Ethernet,
        LinkType::Raw,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::Null,
        LinkType::Loop,
    ];

    /// GRE variant `which` (see `gre_variants`) around a TCP frame of `payload_len` bytes.
    fn gre_variant_frame(which: usize, payload_len: usize) -> Vec<u8> {
        let inner = tcp_frame(&vec![b'g'; payload_len]);
        let variants = gre_variants();
        let (_, gre, ip_only, _, _) = &variants[which % variants.len()];
        gre_frame(gre, if *ip_only { &inner[14..] } else { &inner[..] })
    }

    fn vxlan_frame(payload_len: usize, cut: Option<usize>) -> Vec<u8> {
        let inner = tcp_frame(&vec![b'z'; payload_len]);
        let mut out = Vec::new();
        wrap_vxlan(&inner, 42, &OuterParams::default(), cut, &mut out).unwrap();
        out
    }

    /// Decodes with the general walk only: the reference the fast path must match.
    fn decode_general<'a>(d: &'a mut Decapsulator, link: LinkType, frame: &'a [u8]) -> Decoded<'a> {
        let Decapsulator { cfg, stats, frags } = d;
        stats.packets += 1;
        stats.bytes += frame.len() as u64;
        let r = walk_inner(cfg, stats, frags, link, 7, frame).unwrap_or_else(Decoded::Rejected);
        count_result(stats, &r);
        r
    }

    /// Both decoders on one frame: identical result and identical counters.
    fn assert_paths_agree(cfg: &DecapConfig, frame: &[u8]) {
        let (mut fast, mut general) = (
            Decapsulator::new(cfg.clone()),
            Decapsulator::new(cfg.clone()),
        );
        let a = fast.decode(LinkType::Ethernet, 7, frame);
        let b = decode_general(&mut general, LinkType::Ethernet, frame);
        assert_eq!(a, b, "{}", to_hex(frame));
        assert_eq!(fast.stats(), general.stats());
    }

    fn to_hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn fast_path_takes_the_common_shapes() {
        let cfg = DecapConfig::default();
        let mut stats = DecapStats::default();
        for frame in [
            vxlan_frame(1000, None),
            vxlan_frame(1000, Some(200)),
            vxlan_frame(0, None),
            tcp_frame(b"GET / HTTP/1.1\r\n\r\n"),
        ] {
            let r = crate::fastpath::decode(&cfg, &mut stats, LinkType::Ethernet, 0, &frame);
            assert!(
                matches!(r, Some(Decoded::Segment { .. })),
                "{}",
                to_hex(&frame)
            );
            assert_paths_agree(&cfg, &frame);
        }
        // Shapes it leaves to the general walk.
        let mut tagged = vxlan_frame(100, None);
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        let mut reserved = vxlan_frame(100, None);
        reserved[14 + 20 + 8 + 1] = 1;
        let checksums = DecapConfig {
            validate_checksums: true,
            ..DecapConfig::default()
        };
        for (cfg, frame) in [
            (&cfg, tagged),
            (&cfg, reserved),
            (&checksums, vxlan_frame(10, None)),
        ] {
            let before = stats.clone();
            assert!(
                crate::fastpath::decode(cfg, &mut stats, LinkType::Ethernet, 0, &frame).is_none()
            );
            assert_eq!(stats, before, "a declined frame touches no counter");
            assert_paths_agree(cfg, &frame);
        }
    }

    fn check_invariants(frame: &[u8], d: Decoded<'_>) {
        if let Decoded::Segment { segment, inner } = d {
            // Payload and inner frame are sub-slices of the input (no reassembly here).
            let range = frame.as_ptr_range();
            assert!(range.contains(&segment.payload.as_ptr()) || segment.payload.is_empty());
            assert!(inner.frame.len() <= frame.len());
            let _ = segment.missing_len();
        }
    }

    /// Exercises every accessor of every view on arbitrary bytes.
    fn poke_views(b: &[u8]) {
        if let Ok(v) = crate::ethernet::EthernetFrame::new_checked(b) {
            let _ = (
                v.dst(),
                v.src(),
                v.ethertype(),
                v.payload(),
                v.l2_payload(8),
            );
        }
        if let Ok(v) = crate::ipv4::Ipv4Packet::new_checked(b) {
            let _ = (
                v.tos(),
                v.total_len(),
                v.ident(),
                v.frag_offset(),
                v.ttl(),
                v.checksum(),
            );
            let _ = (v.src(), v.dst(), v.options(), v.payload(), v.is_truncated());
            let _ = (v.verify_checksum(), v.pseudo_header_sum(usize::MAX));
        }
        if let Ok(v) = crate::ipv6::Ipv6Packet::new_checked(b) {
            let _ = (
                v.traffic_class(),
                v.flow_label(),
                v.hop_limit(),
                v.src(),
                v.dst(),
            );
            let _ = (v.payload(), v.is_truncated(), v.upper_layer(u8::MAX));
            let _ = v.pseudo_header_sum(6, usize::MAX);
        }
        if let Ok(v) = crate::udp::UdpDatagram::new_checked(b) {
            let _ = (
                v.src_port(),
                v.dst_port(),
                v.length(),
                v.checksum(),
                v.payload(),
            );
        }
        if let Ok(v) = crate::tcp::TcpSegment::new_checked(b) {
            let _ = (
                v.seq(),
                v.ack(),
                v.flags(),
                v.window(),
                v.urgent(),
                v.options(),
                v.payload(),
            );
        }
        if let Ok(v) = crate::vxlan::VxlanHeader::new_checked(b) {
            let _ = (
                v.vni(),
                v.reserved_bits_set(),
                v.gpe_reserved_bits_set(),
                v.gpe_next(),
                v.payload(),
            );
        }
        if let Ok(v) = crate::gre::GreHeader::new_checked(b) {
            let _ = (v.checksum(), v.key(), v.sequence(), v.next(), v.payload());
        }
        for v in [
            crate::gre::ErspanHeader::new_checked_ii(b),
            crate::gre::ErspanHeader::new_checked_iii(b),
        ]
        .into_iter()
        .flatten()
        {
            let _ = (
                v.vlan(),
                v.cos(),
                v.truncated(),
                v.session_id(),
                v.frame_type(),
            );
            let _ = (v.has_platform_subheader(), v.next(), v.payload());
        }
        if let Ok(v) = crate::geneve::GeneveHeader::new_checked(b) {
            let _ = (
                v.oam(),
                v.critical(),
                v.vni(),
                v.next(),
                v.options(),
                v.payload(),
            );
        }
    }

    /// Overwrites bytes (positions wrap around the frame), then cuts the frame.
    fn mutate(f: &mut Vec<u8>, edits: &[(usize, u8)], truncate_to: Option<usize>) {
        for &(at, v) in edits {
            let len = f.len();
            if len > 0 {
                f[at % len] = v;
            }
        }
        if let Some(n) = truncate_to {
            f.truncate(n);
        }
    }

    /// Byte values that flip header decisions (versions, IHLs, fragment bits, protocols, ether
    /// types, VXLAN flags) more often than uniform random bytes would.
    fn header_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            any::<u8>(),
            proptest::sample::select(vec![
                0x00, 0x01, 0x06, 0x08, 0x11, 0x12, 0x20, 0x3f, 0x40, 0x44, 0x45, 0x46, 0x4f, 0x50,
                0x60, 0x81, 0x86, 0xb5, 0xdd, 0xf0, 0xff, 0x2f, 0x88, 0xbe, 0x22, 0xeb, 0x65, 0x58,
                0x10, 0x30, 0xb0, 0x04, 0x0c, 0x12,
            ]),
        ]
    }

    proptest! {
        // Cheap cases, and a disagreement may hide behind one specific byte: many of them.
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        #[test]
        fn fast_path_agrees_with_the_general_walk(
            payload_len in 0usize..1500,
            // 0: plain, 1: VXLAN, 2..: a GRE/ERSPAN variant (the fast path must decline them).
            shape in 0usize..12,
            cut in proptest::option::of(0usize..1600),
            truncate_to in proptest::option::of(0usize..1700),
            // Edits aimed at the header bytes, where the two decoders could disagree.
            edits in proptest::collection::vec((0usize..120, header_byte()), 0..4),
            ports in proptest::collection::vec(any::<u16>(), 0..2),
            // Sometimes the VXLAN port is a VXLAN-GPE port too (GPE wins).
            gpe_on_vxlan in any::<bool>(),
            max_depth in 0u8..3,
        ) {
            let mut f = match shape {
                0 => tcp_frame(&vec![b'p'; payload_len]),
                1 => vxlan_frame(payload_len, cut),
                n => gre_variant_frame(n - 2, payload_len),
            };
            mutate(&mut f, &edits, truncate_to);
            let mut cfg = DecapConfig { max_depth, ..DecapConfig::default() };
            cfg.vxlan_ports.extend(ports);
            if gpe_on_vxlan {
                cfg.vxlan_gpe_ports.push(VXLAN_PORT);
            }
            assert_paths_agree(&cfg, &f);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut d = Decapsulator::new(DecapConfig { validate_checksums: true, ..DecapConfig::default() });
            for link in LINKS {
                let r = d.decode(link, 0, &bytes);
                check_invariants(&bytes, r);
            }
            poke_views(&bytes);
            let mut out = Vec::new();
            for link in LINKS {
                let _ = crate::encap::to_ethernet(link, &bytes, &mut out);
            }
            let _ = wrap_vxlan(&bytes, 1, &OuterParams::default(), None, &mut out);
        }

        #[test]
        fn mutated_vxlan_never_panics(
            payload_len in 0usize..1500,
            cut in proptest::option::of(0usize..1600),
            truncate_to in proptest::option::of(0usize..1700),
            edits in proptest::collection::vec((0usize..1700, any::<u8>()), 0..6),
        ) {
            let mut f = vxlan_frame(payload_len, cut);
            mutate(&mut f, &edits, truncate_to);
            let mut d = Decapsulator::new(DecapConfig { validate_checksums: true, ..DecapConfig::default() });
            let r = d.decode(LinkType::Ethernet, 0, &f);
            check_invariants(&f, r);
            prop_assert_eq!(d.stats().packets, 1);
            poke_views(&f);
        }

        #[test]
        fn mutated_gre_never_panics(
            which in 0usize..10,
            payload_len in 0usize..1500,
            truncate_to in proptest::option::of(0usize..1600),
            edits in proptest::collection::vec((0usize..80, header_byte()), 0..6),
        ) {
            let mut f = gre_variant_frame(which, payload_len);
            mutate(&mut f, &edits, truncate_to);
            let mut d = Decapsulator::new(DecapConfig { validate_checksums: true, ..DecapConfig::default() });
            let r = d.decode(LinkType::Ethernet, 0, &f);
            check_invariants(&f, r);
            prop_assert_eq!(d.stats().packets, 1);
            let counted = d.stats().rejected_total()
                + d.stats().inner_protos.iter().sum::<u64>()
                + d.stats().fragments.held;
            prop_assert_eq!(counted, 1, "every frame is counted once");
            poke_views(&f[f.len().min(34)..]);
        }

        #[test]
        fn unmutated_truncations_account_exactly(payload_len in 0usize..1500, cut in 0usize..1600) {
            let f = vxlan_frame(payload_len, Some(cut));
            let mut d = Decapsulator::default();
            match d.decode(LinkType::Ethernet, 0, &f) {
                Decoded::Segment { segment, .. } => {
                    prop_assert_eq!(segment.wire_payload_len as usize, payload_len);
                    prop_assert_eq!(segment.payload.len(), payload_len.min(cut - 54));
                }
                Decoded::Rejected(_) => prop_assert!(cut < 54),
                o => prop_assert!(false, "{:?}", o),
            }
        }

        #[test]
        fn fragment_soup_never_panics(
            pieces in proptest::collection::vec(
                (0u16..4, 0u16..200, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)),
                0..40,
            ),
        ) {
            let mut d = Decapsulator::new(DecapConfig {
                frag: crate::FragConfig { max_datagrams: 2, max_bytes: 4096, timeout_ns: 5, max_fragments: 4 },
                ..DecapConfig::default()
            });
            for (i, (ident, off, more, data)) in pieces.into_iter().enumerate() {
                let mut f = vec![0u8; 14];
                f[12] = 0x08;
                let total = (20 + data.len()) as u16;
                let fo = off | if more { 0x2000 } else { 0 };
                f.extend_from_slice(&[0x45, 0]);
                f.extend_from_slice(&total.to_be_bytes());
                f.extend_from_slice(&ident.to_be_bytes());
                f.extend_from_slice(&fo.to_be_bytes());
                f.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
                f.extend_from_slice(&data);
                let r = d.decode(LinkType::Ethernet, i as u64, &f);
                if let Decoded::Segment { segment, .. } = r {
                    prop_assert!(segment.payload.len() <= 65_535);
                }
            }
        }
    }
}
