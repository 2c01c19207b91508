//! Straight-line decoding of the two frame shapes that make up nearly all real input:
//! an AWS mirror frame (Ethernet / IPv4 / UDP to a VXLAN port / VXLAN / Ethernet / IPv4 / TCP)
//! and a plain capture frame (Ethernet / IPv4 / TCP).
//!
//! Why a second decoder: the general layer walk in `decap` goes through an enum state machine
//! and builds `Result`s at every layer, which costs ~50 ns a frame; read + decap of a capture
//! must run at 10+ Mpps on one core. This path reads fixed offsets and gives up (`None`) at the
//! first byte that is not the common case - VLAN tags, IPv6, IP options are fine in the general
//! walk, fragments, zero total lengths, VXLAN reserved bits, anything malformed - so the general
//! walk stays the one place where every rule and every rejection lives. A differential
//! property test holds the two to identical results and identical counters.

use std::net::{IpAddr, Ipv4Addr};

use crate::bytes::{be16_idx as be16, be32_idx as be32};
use crate::decoded::{bump, DecapConfig, DecapStats, Decoded, Inner, InnerProto, TunnelKind};
use crate::ethernet::{self, ethertype, EthernetFrame};
use crate::ipv4::{self, Ipv4Packet};
use crate::tcp::{self, TcpSegment};
use crate::udp::{self, UdpDatagram};
use crate::vxlan::{self, VxlanHeader};
use crate::{ip, LinkType, Segment, TcpFlags};

const ETH_LEN: usize = EthernetFrame::HEADER_LEN;
const ETHERTYPE_IPV4: [u8; 2] = ethertype::IPV4.to_be_bytes();

/// An IPv4 header without surprises: the captured payload (never past the total length) and
/// the payload length the header announces.
struct Ipv4<'a> {
    header: &'a [u8],
    payload: &'a [u8],
    announced: usize,
}

/// The IPv4 packet after an untagged Ethernet header, when it is a plain unfragmented one.
#[inline(always)]
fn eth_ipv4(frame: &[u8]) -> Option<Ipv4<'_>> {
    if frame.len() < ETH_LEN + Ipv4Packet::MIN_HEADER_LEN
        || frame[ethernet::field::ETHERTYPE] != ETHERTYPE_IPV4
    {
        return None;
    }
    let b = &frame[ETH_LEN..];
    let ver_ihl = b[ipv4::field::VER_IHL];
    let hl = usize::from(ver_ihl & 0x0f) * 4;
    let total = usize::from(be16(b, ipv4::field::LENGTH.start));
    // Version 4, a header that fits, a total length that covers it (0 = TSO capture, left to
    // the general walk), and neither MF nor a fragment offset.
    if ver_ihl >> 4 != 4
        || hl < Ipv4Packet::MIN_HEADER_LEN
        || hl > b.len()
        || total < hl
        || be16(b, ipv4::field::FLG_OFF.start) & 0x3fff != 0
    {
        return None;
    }
    Some(Ipv4 {
        header: &b[..hl],
        payload: &b[hl..total.min(b.len())],
        announced: total - hl,
    })
}

#[inline(always)]
fn addr(header: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        header[at],
        header[at + 1],
        header[at + 2],
        header[at + 3],
    ))
}

/// The TCP segment inside `ip`, counted as the general walk counts it.
#[inline(always)]
fn tcp<'a>(
    stats: &mut DecapStats,
    ts_ns: u64,
    ip: &Ipv4<'a>,
    vni: Option<u32>,
    mirror_source: Option<IpAddr>,
    inner: Inner<'a>,
) -> Option<Decoded<'a>> {
    let l4 = ip.payload;
    if ip.header[ipv4::field::PROTOCOL] != ip::TCP || l4.len() < TcpSegment::MIN_HEADER_LEN {
        return None;
    }
    let hl = usize::from(l4[tcp::field::DATA_OFF] >> 4) * 4;
    if hl < TcpSegment::MIN_HEADER_LEN || hl > l4.len() || hl > ip.announced {
        return None;
    }
    let truncated_by = ip.announced - l4.len();
    if truncated_by > 0 {
        stats.truncated += 1;
        stats.truncated_bytes += truncated_by as u64;
    }
    bump(&mut stats.segments, inner.tunnel.index());
    bump(&mut stats.inner_protos, InnerProto::Tcp.index());
    Some(Decoded::Segment {
        segment: Segment {
            ts_ns,
            vni,
            tunnel: inner.tunnel,
            mirror_source,
            src_ip: addr(ip.header, ipv4::field::SRC_ADDR.start),
            dst_ip: addr(ip.header, ipv4::field::DST_ADDR.start),
            src_port: be16(l4, tcp::field::SRC_PORT.start),
            dst_port: be16(l4, tcp::field::DST_PORT.start),
            seq: be32(l4, tcp::field::SEQ_NUM.start),
            ack: be32(l4, tcp::field::ACK_NUM.start),
            flags: TcpFlags(l4[tcp::field::FLAGS]),
            window: be16(l4, tcp::field::WIN_SIZE.start),
            payload: &l4[hl..],
            wire_payload_len: u32::try_from(ip.announced - hl).unwrap_or(u32::MAX),
        },
        inner,
    })
}

/// Decodes `frame` when it has one of the common shapes, updating exactly the counters the
/// general walk would; `None` (with no counter touched) means "take the general walk".
#[inline(always)]
pub(crate) fn decode<'a>(
    cfg: &DecapConfig,
    stats: &mut DecapStats,
    link: LinkType,
    ts_ns: u64,
    frame: &'a [u8],
) -> Option<Decoded<'a>> {
    if link != LinkType::Ethernet || cfg.validate_checksums {
        return None;
    }
    let outer = eth_ipv4(frame)?;
    match outer.header[ipv4::field::PROTOCOL] {
        ip::TCP => {
            let inner = Inner {
                tunnel: TunnelKind::None,
                depth: 0,
                link,
                frame,
            };
            tcp(stats, ts_ns, &outer, None, None, inner)
        }
        ip::UDP => {
            let udp = outer.payload;
            if udp.len() < UdpDatagram::HEADER_LEN || cfg.max_depth == 0 {
                return None;
            }
            if !cfg
                .vxlan_ports
                .contains(&be16(udp, udp::field::DST_PORT.start))
            {
                return None;
            }
            let udp_len = usize::from(be16(udp, udp::field::LENGTH.start));
            if udp_len < UdpDatagram::HEADER_LEN {
                return None;
            }
            let vx = &udp[UdpDatagram::HEADER_LEN..udp_len.min(udp.len())];
            // Exactly the I flag and nothing reserved: anything else (GPE, reserved bits to
            // count) is the general walk's to judge.
            if vx.len() < VxlanHeader::LEN
                || be32(vx, vxlan::field::FLAGS) != u32::from(VxlanHeader::FLAG_I) << 24
                || vx[vxlan::field::RESERVED2] != 0
            {
                return None;
            }
            let vni = be32(vx, vxlan::field::VNI.start) >> 8;
            let inner_frame = &vx[VxlanHeader::LEN..];
            let ip = eth_ipv4(inner_frame)?;
            let inner = Inner {
                tunnel: TunnelKind::Vxlan,
                depth: 1,
                link: LinkType::Ethernet,
                frame: inner_frame,
            };
            tcp(
                stats,
                ts_ns,
                &ip,
                Some(vni),
                Some(addr(outer.header, ipv4::field::SRC_ADDR.start)),
                inner,
            )
        }
        _ => None,
    }
}
