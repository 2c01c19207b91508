//! Building VXLAN frames exactly as AWS VPC Traffic Mirroring sends them (for `vxtap encap`,
//! `vxtap send` and tests). Pure bytes: no I/O.
//!
//! What AWS does, as seen in a real mirror capture: outer IPv4 with ID 0, no DF, TTL 255; UDP
//! to 4789 from a source port derived from the inner flow (the same for both directions of a
//! connection), checksum 0; VXLAN flags 0x08 and the session's VNI; the inner frame cut to the
//! session's packet length with the inner IP total length untouched.

use crate::bytes::be16;
use crate::ethernet::{ethertype, strip_vlans, EthernetFrame};
use crate::hash::underlay_hash;
use crate::ip;
use crate::ipv4::{self, Ipv4Packet};
use crate::ipv6::Ipv6Packet;
use crate::link::{sll_source_mac, strip_link, LinkType, NetStart};
use crate::udp::{self, UdpDatagram};
use crate::vxlan::VxlanHeader;
use crate::{checksum, Error};
use std::net::{IpAddr, Ipv4Addr};

/// Outer headers to put around a mirrored frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OuterParams {
    /// Outer Ethernet source (the mirror source ENI).
    pub src_mac: [u8; 6],
    /// Outer Ethernet destination (the mirror target).
    pub dst_mac: [u8; 6],
    /// Outer IP source (the mirror source); must be the same family as `dst_ip`.
    pub src_ip: IpAddr,
    /// Outer IP destination (the mirror target).
    pub dst_ip: IpAddr,
    /// Outer TTL / hop limit (AWS sends 255).
    pub ttl: u8,
    /// Outer UDP destination port (AWS: 4789).
    pub dst_port: u16,
}

impl Default for OuterParams {
    fn default() -> Self {
        Self {
            // Locally administered MACs of the shape AWS ENIs use.
            src_mac: [0x06, 0x1d, 0x3c, 0x34, 0xd0, 0x77],
            dst_mac: [0x06, 0xe2, 0x43, 0x9c, 0xff, 0x5e],
            src_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            ttl: 255,
            dst_port: crate::VXLAN_PORT,
        }
    }
}

/// Why a frame could not be wrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncapError {
    /// Outer source and destination are of different IP families.
    #[error("outer source and destination must both be IPv4 or both IPv6")]
    MixedFamilies,
    /// The outer datagram would not fit in an IP packet.
    #[error("frame of {0} bytes too large to encapsulate")]
    TooLarge(usize),
    /// The inner packet could not be turned into an Ethernet frame.
    #[error("cannot convert inner packet: {0}")]
    Inner(#[from] Error),
}

/// Outer header bytes before the inner frame (Ethernet + IPv4 + UDP + VXLAN).
pub const OVERHEAD_V4: usize = EthernetFrame::HEADER_LEN
    + Ipv4Packet::MIN_HEADER_LEN
    + UdpDatagram::HEADER_LEN
    + VxlanHeader::LEN;
/// Outer header bytes before the inner frame with an IPv6 underlay.
pub const OVERHEAD_V6: usize =
    EthernetFrame::HEADER_LEN + Ipv6Packet::HEADER_LEN + UdpDatagram::HEADER_LEN + VxlanHeader::LEN;

/// The outer UDP source port AWS-style: a symmetric hash of the inner 5-tuple mapped into the
/// IANA ephemeral range 49152-65535 (both AWS samples we have fall there), so both directions
/// of a connection share a port and the underlay keeps them on one path.
pub fn source_port(inner_frame: &[u8]) -> u16 {
    let h = inner_flow_hash(inner_frame);
    49152 + (h % 16384) as u16
}

/// [`underlay_hash`] of the inner Ethernet frame's 5-tuple (0 when it carries no IP): this
/// function only finds the tuple.
fn inner_flow_hash(frame: &[u8]) -> u64 {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return 0;
    };
    let Ok(l2) = strip_vlans(
        eth.ethertype(),
        eth.payload(),
        crate::ethernet::MAX_VLAN_TAGS,
    ) else {
        return 0;
    };
    let (src, dst, proto, l4) = match l2.ethertype {
        ethertype::IPV4 => match Ipv4Packet::new_checked(l2.payload) {
            Ok(p) if !p.is_fragment() => (
                IpAddr::V4(p.src()),
                IpAddr::V4(p.dst()),
                p.protocol(),
                p.payload(),
            ),
            Ok(p) => (
                IpAddr::V4(p.src()),
                IpAddr::V4(p.dst()),
                p.protocol(),
                &[][..],
            ),
            Err(_) => return 0,
        },
        ethertype::IPV6 => match Ipv6Packet::new_checked(l2.payload) {
            Ok(p) => match p.upper_layer(crate::ipv6::MAX_EXT_HEADERS) {
                Ok(u) if u.fragment.is_none() => (
                    IpAddr::V6(p.src()),
                    IpAddr::V6(p.dst()),
                    u.protocol,
                    u.payload,
                ),
                _ => (
                    IpAddr::V6(p.src()),
                    IpAddr::V6(p.dst()),
                    p.next_header(),
                    &[][..],
                ),
            },
            Err(_) => return 0,
        },
        _ => return u64::from(l2.ethertype),
    };
    let (sp, dp) = match proto {
        // TCP, UDP and SCTP all start with the two ports, at UDP's offsets.
        ip::TCP | ip::UDP | ip::SCTP if l4.len() >= 4 => (
            be16(l4, udp::field::SRC_PORT.start),
            be16(l4, udp::field::DST_PORT.start),
        ),
        _ => (0, 0),
    };
    underlay_hash(src, sp, dst, dp, proto)
}

/// Clears `out` and writes `inner_frame` (an Ethernet frame) wrapped in outer Ethernet / IP /
/// UDP / VXLAN as AWS would. With `truncate`, the inner frame is cut to that many bytes and its
/// IP total length is left as it was, like a mirror session's packet length.
pub fn wrap_vxlan(
    inner_frame: &[u8],
    vni: u32,
    outer: &OuterParams,
    truncate: Option<usize>,
    out: &mut Vec<u8>,
) -> Result<(), EncapError> {
    let sport = source_port(inner_frame);
    let inner = match truncate {
        Some(n) if n < inner_frame.len() => inner_frame.get(..n).unwrap_or(inner_frame),
        _ => inner_frame,
    };
    let udp_len = UdpDatagram::HEADER_LEN + VxlanHeader::LEN + inner.len();
    out.clear();
    out.extend_from_slice(&outer.dst_mac);
    out.extend_from_slice(&outer.src_mac);
    match (outer.src_ip, outer.dst_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = Ipv4Packet::MIN_HEADER_LEN + udp_len;
            let total16 = u16::try_from(total).map_err(|_| EncapError::TooLarge(inner.len()))?;
            out.extend_from_slice(&ethertype::IPV4.to_be_bytes());
            let start = out.len();
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total16.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, outer.ttl, ip::UDP, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let sum = checksum::checksum(out.get(start..).unwrap_or(&[]));
            let sum_at = ipv4::field::CHECKSUM;
            if let Some(c) = out.get_mut(start + sum_at.start..start + sum_at.end) {
                c.copy_from_slice(&sum.to_be_bytes());
            }
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let plen = u16::try_from(udp_len).map_err(|_| EncapError::TooLarge(inner.len()))?;
            out.extend_from_slice(&ethertype::IPV6.to_be_bytes());
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&plen.to_be_bytes());
            out.extend_from_slice(&[ip::UDP, outer.ttl]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        _ => return Err(EncapError::MixedFamilies),
    }
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&outer.dst_port.to_be_bytes());
    // udp_len fits: it is at most the IP length checked above.
    out.extend_from_slice(&(udp_len as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&[VxlanHeader::FLAG_I, 0, 0, 0]);
    out.extend_from_slice(&((vni & 0x00ff_ffff) << 8).to_be_bytes());
    out.extend_from_slice(inner);
    Ok(())
}

/// Source MAC given to frames synthesized from link types without one.
pub const SYNTH_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC given to frames synthesized from link types without one.
pub const SYNTH_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Clears `out` and writes `packet` (captured with `link`) as an Ethernet frame, so captures
/// of any link type can be wrapped. Ethernet frames are copied unchanged.
pub fn to_ethernet(link: LinkType, packet: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    out.clear();
    let (t, body) = match strip_link(link, packet)? {
        NetStart::Ethernet(b) => {
            out.extend_from_slice(b);
            return Ok(());
        }
        NetStart::EtherType(t, b) => (t, b),
        NetStart::Ip(b) => match b.first().map(|v| v >> 4) {
            None => return Err(Error::ShortIp),
            Some(4) => (ethertype::IPV4, b),
            Some(6) => (ethertype::IPV6, b),
            Some(_) => return Err(Error::BadIpVersion),
        },
    };
    out.extend_from_slice(&SYNTH_DST_MAC);
    out.extend_from_slice(&sll_source_mac(link, packet).unwrap_or(SYNTH_SRC_MAC));
    out.extend_from_slice(&t.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decap::tests::{hex, tcp_frame};
    use std::net::Ipv6Addr;

    const AWS_SSH: &str = "06e2439cff5e061d3c34d07708004500008700000000ff11507dac1f00eeac1f11bcffc212b5007300000800000054fa1100028569c2ab0202292374c77d080045000055de1240003f060bdf12c491e0ac1f00ee913c0016e7d8ab466eafc496801801f6543200000101080ab341f4dc328705ac5353482d322e302d4f70656e5353485f372e397031205562756e74752d31300d0a";

    #[test]
    fn reproduces_aws_outer_headers() {
        let aws = hex(AWS_SSH);
        let outer = OuterParams {
            src_mac: aws[6..12].try_into().unwrap(),
            dst_mac: aws[0..6].try_into().unwrap(),
            src_ip: IpAddr::V4(Ipv4Addr::new(172, 31, 0, 238)),
            dst_ip: IpAddr::V4(Ipv4Addr::new(172, 31, 17, 188)),
            ..OuterParams::default()
        };
        let mut out = Vec::new();
        wrap_vxlan(&aws[50..], 5_569_041, &outer, None, &mut out).unwrap();
        // Byte for byte what AWS sent, IPv4 checksum included, except the source port, whose
        // hash function AWS does not publish.
        assert_eq!(out.len(), aws.len());
        assert_eq!(out[..34], aws[..34]);
        assert_eq!(out[36..], aws[36..]);
        let port = u16::from_be_bytes([out[34], out[35]]);
        assert!(port >= 49152);
    }

    #[test]
    fn outer_fields_per_etherparse() {
        let inner = tcp_frame(b"abc");
        let mut out = Vec::new();
        wrap_vxlan(&inner, 0x123456, &OuterParams::default(), None, &mut out).unwrap();
        let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!()
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(
            (h.time_to_live, h.identification, h.dont_fragment),
            (255, 0, false)
        );
        assert_eq!(usize::from(h.total_len), out.len() - 14);
        let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else {
            panic!()
        };
        assert_eq!((udp.destination_port(), udp.checksum()), (4789, 0));
        assert_eq!(usize::from(udp.length()), out.len() - 34);
        assert_eq!(udp.payload()[..8], [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        assert_eq!(&udp.payload()[8..], &inner[..]);
    }

    #[test]
    fn source_port_is_symmetric_and_flow_dependent() {
        let mut a = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1, 1)
            .write(&mut a, b"x")
            .unwrap();
        let mut b = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [1; 6])
            .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
            .tcp(80, 40000, 1, 1)
            .write(&mut b, b"")
            .unwrap();
        let mut c = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40001, 80, 1, 1)
            .write(&mut c, b"x")
            .unwrap();
        assert_eq!(source_port(&a), source_port(&b));
        assert_ne!(source_port(&a), source_port(&c));
        // Truncation does not change the port: it is hashed from the whole inner frame.
        let mut x = Vec::new();
        let mut y = Vec::new();
        wrap_vxlan(&a, 1, &OuterParams::default(), None, &mut x).unwrap();
        wrap_vxlan(&a, 1, &OuterParams::default(), Some(20), &mut y).unwrap();
        assert_eq!(x[34..36], y[34..36]);
        assert_eq!(y.len(), OVERHEAD_V4 + 20);
        assert!(source_port(&[]) >= 49152);
    }

    #[test]
    fn ipv6_outer_and_errors() {
        let inner = tcp_frame(b"abc");
        let mut out = Vec::new();
        let v6 = OuterParams {
            src_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            dst_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            ..OuterParams::default()
        };
        wrap_vxlan(&inner, 1, &v6, None, &mut out).unwrap();
        assert_eq!(out.len(), OVERHEAD_V6 + inner.len());
        let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
        assert!(matches!(
            p.transport,
            Some(etherparse::TransportSlice::Udp(_))
        ));
        let mixed = OuterParams {
            src_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            ..OuterParams::default()
        };
        assert_eq!(
            wrap_vxlan(&inner, 1, &mixed, None, &mut out),
            Err(EncapError::MixedFamilies)
        );
        let huge = vec![0u8; 70_000];
        assert!(matches!(
            wrap_vxlan(&huge, 1, &OuterParams::default(), None, &mut out),
            Err(EncapError::TooLarge(_))
        ));
        // Truncating makes it fit, like a mirror session with a packet length.
        wrap_vxlan(&huge, 1, &OuterParams::default(), Some(8500), &mut out).unwrap();
        assert_eq!(out.len(), OVERHEAD_V4 + 8500);
    }

    /// The outer source port is seen by the underlay (ECMP paths): pinned before the hashes
    /// moved into one module.
    #[test]
    fn inner_flow_hash_is_pinned() {
        let mut a = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1, 1)
            .write(&mut a, b"x")
            .unwrap();
        let mut u = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([0x20; 16], [0x30; 16], 64)
            .udp(5353, 53)
            .write(&mut u, b"q")
            .unwrap();
        let (ha, hu) = (inner_flow_hash(&a), inner_flow_hash(&u));
        assert_eq!((ha, hu), (PIN_TCP_V4, PIN_UDP_V6), "{ha:#x} {hu:#x}");
        assert_eq!(inner_flow_hash(&[0u8; 14]), 0);
    }

    const PIN_TCP_V4: u64 = 0xe65d_277a_508b_5cb8;
    const PIN_UDP_V6: u64 = 0xa8c0_46e8_ec30_dea4;
}
