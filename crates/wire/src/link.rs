//! Capture link types (pcap LINKTYPE_* values) and stripping their headers.

use crate::bytes::{be16, be32, tail, u8_at};
use crate::ethernet::ethertype;
use crate::Error;

/// Link-layer header types vxtap decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// Ethernet II (LINKTYPE_ETHERNET, 1).
    Ethernet,
    /// Raw IP, version from the first nibble (101; DLT 12 and 14 on some systems).
    Raw,
    /// Raw IPv4 only (228).
    Ipv4,
    /// Raw IPv6 only (229).
    Ipv6,
    /// Linux cooked capture v1 (113).
    LinuxSll,
    /// Linux cooked capture v2 (276).
    LinuxSll2,
    /// BSD loopback with a host-order 4-byte address family (0).
    Null,
    /// OpenBSD loopback with a network-order 4-byte address family (108).
    Loop,
}

impl LinkType {
    /// Maps a pcap/pcapng link type number; `None` for types we do not decode.
    pub fn from_pcap(value: u32) -> Option<LinkType> {
        Some(match value {
            1 => LinkType::Ethernet,
            // 12 and 14 are DLT_RAW on various BSDs; libpcap maps them to 101 in files, but
            // files written elsewhere carry them verbatim.
            101 | 12 | 14 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            _ => return None,
        })
    }

    /// The canonical pcap LINKTYPE_* number, for writing files.
    pub fn to_pcap(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::Null => 0,
            LinkType::Loop => 108,
        }
    }
}

/// Where the network layer begins after the link header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetStart<'a> {
    /// An Ethernet frame (VLAN tags not yet peeled).
    Ethernet(&'a [u8]),
    /// Bytes after a link header that named this ether type (may be a VLAN tag).
    EtherType(u16, &'a [u8]),
    /// An IP packet whose version is read from its first nibble.
    Ip(&'a [u8]),
}

/// Linux SLL v1 header length.
pub const SLL_LEN: usize = 16;
/// Linux SLL v2 header length.
pub const SLL2_LEN: usize = 20;
/// BSD loopback header length.
pub const NULL_LEN: usize = 4;

/// Strips the link header of `frame` as captured with `link`.
pub fn strip_link(link: LinkType, frame: &[u8]) -> Result<NetStart<'_>, Error> {
    match link {
        LinkType::Ethernet => Ok(NetStart::Ethernet(frame)),
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => Ok(NetStart::Ip(frame)),
        LinkType::LinuxSll => {
            if frame.len() < SLL_LEN {
                return Err(Error::ShortLinkHeader);
            }
            Ok(NetStart::EtherType(be16(frame, 14), tail(frame, SLL_LEN)))
        }
        LinkType::LinuxSll2 => {
            if frame.len() < SLL2_LEN {
                return Err(Error::ShortLinkHeader);
            }
            Ok(NetStart::EtherType(be16(frame, 0), tail(frame, SLL2_LEN)))
        }
        LinkType::Null | LinkType::Loop => {
            if frame.len() < NULL_LEN {
                return Err(Error::ShortLinkHeader);
            }
            // The family is in the capturing host's byte order for NULL and network order for
            // LOOP, but files travel between hosts: accept either order for both.
            let be = be32(frame, 0);
            let family = if be <= 0xffff { be } else { be.swap_bytes() };
            match family {
                2 => Ok(NetStart::EtherType(ethertype::IPV4, tail(frame, NULL_LEN))),
                // AF_INET6 is 24 on NetBSD/OpenBSD, 28 on FreeBSD, 30 on macOS, 10 on Linux.
                10 | 24 | 28 | 30 => {
                    Ok(NetStart::EtherType(ethertype::IPV6, tail(frame, NULL_LEN)))
                }
                _ => Err(Error::UnknownLinkFamily),
            }
        }
    }
}

/// The source MAC of an SLL/SLL2 frame when its link address is 6 bytes long.
pub fn sll_source_mac(link: LinkType, frame: &[u8]) -> Option<[u8; 6]> {
    let (len_at, addr_at) = match link {
        LinkType::LinuxSll => (5, 6),
        LinkType::LinuxSll2 => (11, 12),
        _ => return None,
    };
    if u8_at(frame, len_at) != 6 {
        return None;
    }
    frame.get(addr_at..addr_at + 6)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_numbers() {
        for (n, l) in [
            (1, LinkType::Ethernet),
            (101, LinkType::Raw),
            (12, LinkType::Raw),
            (14, LinkType::Raw),
            (228, LinkType::Ipv4),
            (229, LinkType::Ipv6),
            (113, LinkType::LinuxSll),
            (276, LinkType::LinuxSll2),
            (0, LinkType::Null),
            (108, LinkType::Loop),
        ] {
            assert_eq!(LinkType::from_pcap(n), Some(l));
            assert_eq!(LinkType::from_pcap(l.to_pcap()), Some(l));
        }
        assert_eq!(LinkType::from_pcap(127), None);
    }

    #[test]
    fn null_both_orders() {
        let le = [2, 0, 0, 0, 0x45];
        let be = [0, 0, 0, 2, 0x45];
        let v6 = [30, 0, 0, 0, 0x60];
        let v6be = [0, 0, 0, 24, 0x60];
        for (f, t) in [
            (&le[..], ethertype::IPV4),
            (&be[..], ethertype::IPV4),
            (&v6[..], ethertype::IPV6),
            (&v6be[..], ethertype::IPV6),
        ] {
            assert_eq!(
                strip_link(LinkType::Null, f),
                Ok(NetStart::EtherType(t, &f[4..]))
            );
            assert_eq!(
                strip_link(LinkType::Loop, f),
                Ok(NetStart::EtherType(t, &f[4..]))
            );
        }
        assert_eq!(
            strip_link(LinkType::Null, &[7, 0, 0, 0]),
            Err(Error::UnknownLinkFamily)
        );
        assert_eq!(
            strip_link(LinkType::Null, &[2, 0, 0]),
            Err(Error::ShortLinkHeader)
        );
    }

    #[test]
    fn sll_and_sll2() {
        // SLL: outgoing, ARPHRD_ETHER, 6-byte address, IPv4.
        let sll = [0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00, 0x45];
        assert_eq!(
            strip_link(LinkType::LinuxSll, &sll),
            Ok(NetStart::EtherType(0x0800, &[0x45][..]))
        );
        assert_eq!(
            sll_source_mac(LinkType::LinuxSll, &sll),
            Some([1, 2, 3, 4, 5, 6])
        );
        let sll2 = [
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x60,
        ];
        assert_eq!(
            strip_link(LinkType::LinuxSll2, &sll2),
            Ok(NetStart::EtherType(0x86dd, &[0x60][..]))
        );
        assert_eq!(
            sll_source_mac(LinkType::LinuxSll2, &sll2),
            Some([1, 2, 3, 4, 5, 6])
        );
        for n in 0..16 {
            assert_eq!(
                strip_link(LinkType::LinuxSll, &sll[..n]),
                Err(Error::ShortLinkHeader)
            );
        }
        for n in 0..20 {
            assert_eq!(
                strip_link(LinkType::LinuxSll2, &sll2[..n]),
                Err(Error::ShortLinkHeader)
            );
        }
    }
}
