//! Why a frame could not be decoded. One variant per distinct defect, each with a stable label.

use crate::labeled_enum;

labeled_enum! {
    /// What was wrong with the input; also the rejection reason counted per label.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
    #[non_exhaustive]
    pub enum Error {
        /// Fewer bytes than a link-layer (SLL, SLL2, NULL) header needs.
        #[error("frame shorter than its link-layer header")]
        ShortLinkHeader => "short_link_header",
        /// A BSD loopback address family that is neither IPv4 nor IPv6.
        #[error("unknown loopback address family")]
        UnknownLinkFamily => "unknown_link_family",
        /// Fewer than 14 bytes for an Ethernet header.
        #[error("frame shorter than an Ethernet header")]
        ShortEthernet => "short_ethernet",
        /// An 802.1Q/802.1ad tag is cut off.
        #[error("VLAN tag cut off")]
        ShortVlan => "short_vlan",
        /// More stacked VLAN tags than the limit.
        #[error("too many stacked VLAN tags")]
        VlanDepthExceeded => "vlan_depth_exceeded",
        /// An ether type that is neither IP nor ARP nor a VLAN tag.
        #[error("unknown ether type")]
        UnknownEthertype => "unknown_ethertype",
        /// Empty network-layer packet: not even a version nibble.
        #[error("empty IP packet")]
        ShortIp => "short_ip",
        /// Fewer than 20 bytes for an IPv4 header.
        #[error("packet shorter than an IPv4 header")]
        ShortIpv4 => "short_ipv4",
        /// Fewer than 40 bytes for an IPv6 header.
        #[error("packet shorter than an IPv6 header")]
        ShortIpv6 => "short_ipv6",
        /// IP version nibble is not what the layer below announced.
        #[error("bad IP version")]
        BadIpVersion => "bad_ip_version",
        /// IPv4 IHL below 5 or beyond the captured bytes.
        #[error("bad IPv4 header length")]
        BadIpv4HeaderLen => "bad_ipv4_header_len",
        /// IPv4 total length smaller than its own header.
        #[error("bad IPv4 total length")]
        BadIpv4TotalLen => "bad_ipv4_total_len",
        /// An IPv6 extension header is cut off.
        #[error("IPv6 extension header cut off")]
        ShortIpv6ExtHeader => "short_ipv6_ext_header",
        /// More IPv6 extension headers than the limit.
        #[error("too many IPv6 extension headers")]
        Ipv6ExtDepthExceeded => "ipv6_ext_depth_exceeded",
        /// An IP fragment that is not reassembled (inner, IPv6, or non-UDP outer).
        #[error("IP fragment not reassembled")]
        IpFragment => "ip_fragment",
        /// An outer IPv4 fragment that reassembly gave up on (see fragment failure counters).
        #[error("outer IPv4 fragment dropped by reassembly")]
        FragmentDropped => "fragment_dropped",
        /// Fewer than 8 bytes for a UDP header.
        #[error("datagram shorter than a UDP header")]
        ShortUdp => "short_udp",
        /// UDP length field below 8.
        #[error("bad UDP length")]
        BadUdpLen => "bad_udp_len",
        /// Fewer than 8 bytes for a VXLAN header.
        #[error("datagram shorter than a VXLAN header")]
        ShortVxlan => "short_vxlan",
        /// VXLAN I flag (0x08) not set.
        #[error("VXLAN I flag not set")]
        BadVxlanFlags => "bad_vxlan_flags",
        /// VXLAN-GPE next protocol (on a VXLAN-GPE port) that is not Ethernet/IPv4/IPv6.
        #[error("unknown VXLAN-GPE next protocol")]
        UnknownGpeProtocol => "unknown_gpe_protocol",
        /// Geneve header or its options cut off.
        #[error("datagram shorter than its Geneve header and options")]
        ShortGeneve => "short_geneve",
        /// Geneve version other than 0.
        #[error("bad Geneve version")]
        BadGeneveVersion => "bad_geneve_version",
        /// Geneve protocol type that is not Ethernet/IPv4/IPv6.
        #[error("unknown Geneve protocol type")]
        UnknownGeneveProtocol => "unknown_geneve_protocol",
        /// GRE header or its checksum/key/sequence options cut off.
        #[error("packet shorter than its GRE header and options")]
        ShortGre => "short_gre",
        /// GRE version other than 0 (version 1 is PPTP's enhanced GRE).
        #[error("bad GRE version")]
        BadGreVersion => "bad_gre_version",
        /// GRE routing or strict source route bit set (RFC 1701 routing, deprecated).
        #[error("GRE routing present")]
        GreRouting => "gre_routing",
        /// GRE protocol type that is not Ethernet/IPv4/IPv6/ERSPAN.
        #[error("unknown GRE protocol type")]
        UnknownGreProtocol => "unknown_gre_protocol",
        /// ERSPAN header (or its platform-specific subheader) cut off.
        #[error("packet shorter than its ERSPAN header")]
        ShortErspan => "short_erspan",
        /// ERSPAN version field not the one its GRE protocol type announces (1 for type II,
        /// 2 for type III).
        #[error("bad ERSPAN version")]
        BadErspanVersion => "bad_erspan_version",
        /// ERSPAN type III frame type that is neither Ethernet (0) nor IP (2).
        #[error("unknown ERSPAN frame type")]
        UnknownErspanFrameType => "unknown_erspan_frame_type",
        /// More nested tunnels than the configured depth.
        #[error("tunnel nesting deeper than the limit")]
        TunnelDepthExceeded => "tunnel_depth_exceeded",
        /// TCP header cut off (fixed part or options).
        #[error("segment shorter than its TCP header")]
        ShortTcp => "short_tcp",
        /// TCP data offset below 5 or beyond the announced IP payload.
        #[error("bad TCP data offset")]
        BadTcpOffset => "bad_tcp_offset",
        /// A link type this crate does not decode.
        #[error("unsupported link type")]
        UnsupportedLinkType => "unsupported_link_type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_unique_snake_case_and_indexed() {
        let mut seen = std::collections::HashSet::new();
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            let s = e.as_str();
            assert!(seen.insert(s), "duplicate label {s}");
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()));
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(Error::COUNT, Error::ALL.len());
    }
}
