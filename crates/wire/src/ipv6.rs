//! IPv6 packets and their extension-header chain.
//!
//! Hand-written for the same reason as IPv4 (mirror truncation must be tolerated and reported);
//! the extension walk is a loop over a handful of header shapes and stays allocation-free.

use crate::bytes::{array, be16, be32, clamp, tail, u8_at};
use crate::checksum;
use crate::Error;
use std::net::Ipv6Addr;

/// IP protocol numbers of the IPv6 extension headers we walk.
pub mod ext {
    /// Hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Authentication header (length in 4-byte units).
    pub const AH: u8 = 51;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;
    /// Mobility header.
    pub const MOBILITY: u8 = 135;
    /// Host identity protocol.
    pub const HIP: u8 = 139;
    /// Shim6.
    pub const SHIM6: u8 = 140;
}

/// Default limit on chained extension headers, so a crafted chain cannot make us loop long.
pub const MAX_EXT_HEADERS: u8 = 8;

/// Zero-copy view of an IPv6 packet whose fixed header is fully captured.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<'a> {
    data: &'a [u8],
}

/// Fragment header contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Fragment {
    /// Fragment offset in bytes.
    pub offset: usize,
    /// More-fragments flag.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// Where the upper-layer protocol starts after the extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Upper<'a> {
    /// Upper-layer protocol number (e.g. 6 for TCP).
    pub protocol: u8,
    /// Captured upper-layer bytes.
    pub payload: &'a [u8],
    /// Upper-layer length the header announces (payload length minus extension headers).
    pub announced_len: usize,
    /// Fragment header, if one was present and not an atomic fragment.
    pub fragment: Option<Ipv6Fragment>,
    /// Number of extension headers walked.
    pub ext_headers: u8,
}

impl<'a> Ipv6Packet<'a> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = 40;

    /// Checks version 6 and a complete fixed header. The payload may be cut short.
    pub fn new_checked(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < Self::HEADER_LEN {
            return Err(Error::ShortIpv6);
        }
        let p = Self { data };
        if p.version() != 6 {
            return Err(Error::BadIpVersion);
        }
        Ok(p)
    }

    /// Version nibble (6 once checked).
    pub fn version(&self) -> u8 {
        u8_at(self.data, 0) >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (be16(self.data, 0) >> 4) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        be32(self.data, 0) & 0x000f_ffff
    }

    /// Payload length field (extension headers included).
    pub fn payload_len(&self) -> u16 {
        be16(self.data, 4)
    }

    /// Next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        u8_at(self.data, 6)
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        u8_at(self.data, 7)
    }

    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.data, 8))
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.data, 24))
    }

    /// Payload length announced; 0 (jumbogram or TSO capture) means "what was captured".
    pub fn announced_payload_len(&self) -> usize {
        match self.payload_len() {
            0 => self.data.len().saturating_sub(Self::HEADER_LEN),
            n => usize::from(n),
        }
    }

    /// Captured payload (extension headers included), never beyond the announced length.
    pub fn payload(&self) -> &'a [u8] {
        clamp(
            self.data,
            Self::HEADER_LEN,
            Self::HEADER_LEN.saturating_add(self.announced_payload_len()),
        )
    }

    /// True when fewer payload bytes were captured than announced.
    pub fn is_truncated(&self) -> bool {
        self.payload().len() < self.announced_payload_len()
    }

    /// Walks extension headers (at most `max_ext`) to the upper-layer protocol.
    pub fn upper_layer(&self, max_ext: u8) -> Result<Ipv6Upper<'a>, Error> {
        let mut next = self.next_header();
        let mut rest = self.payload();
        let mut consumed = 0usize;
        let mut count = 0u8;
        let mut fragment = None;
        loop {
            let len = match next {
                ext::HOP_BY_HOP
                | ext::ROUTING
                | ext::DEST_OPTS
                | ext::MOBILITY
                | ext::HIP
                | ext::SHIM6 => {
                    if rest.len() < 8 {
                        return Err(Error::ShortIpv6ExtHeader);
                    }
                    (usize::from(u8_at(rest, 1)) + 1) * 8
                }
                ext::AH => {
                    if rest.len() < 8 {
                        return Err(Error::ShortIpv6ExtHeader);
                    }
                    (usize::from(u8_at(rest, 1)) + 2) * 4
                }
                ext::FRAGMENT => {
                    if rest.len() < 8 {
                        return Err(Error::ShortIpv6ExtHeader);
                    }
                    let off_flags = be16(rest, 2);
                    let f = Ipv6Fragment {
                        offset: usize::from(off_flags >> 3) * 8,
                        more: off_flags & 1 != 0,
                        ident: be32(rest, 4),
                    };
                    // An atomic fragment (offset 0, no MF) is a whole packet (RFC 6946).
                    if f.offset != 0 || f.more {
                        fragment = Some(f);
                    }
                    8
                }
                _ => break,
            };
            if count >= max_ext {
                return Err(Error::Ipv6ExtDepthExceeded);
            }
            if rest.len() < len {
                return Err(Error::ShortIpv6ExtHeader);
            }
            next = u8_at(rest, 0);
            rest = tail(rest, len);
            consumed += len;
            count += 1;
            // Past a non-first fragment the bytes are the middle of the upper layer, not headers.
            if fragment.is_some_and(|f| f.offset != 0) {
                break;
            }
        }
        Ok(Ipv6Upper {
            protocol: next,
            payload: rest,
            announced_len: self.announced_payload_len().saturating_sub(consumed),
            fragment,
            ext_headers: count,
        })
    }

    /// One's-complement sum of the TCP/UDP pseudo-header for `proto` and `len` bytes.
    pub fn pseudo_header_sum(&self, proto: u8, len: usize) -> u64 {
        let acc = checksum::sum(clamp(self.data, 8, 40), 0);
        acc.wrapping_add(u64::from(proto)).wrapping_add(len as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(next: u8, exts: &[u8], upper: &[u8]) -> Vec<u8> {
        let mut b = vec![0x60, 0x01, 0x23, 0x45];
        b.extend_from_slice(&((exts.len() + upper.len()) as u16).to_be_bytes());
        b.extend_from_slice(&[next, 64]);
        b.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        b.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        b.extend_from_slice(exts);
        b.extend_from_slice(upper);
        b
    }

    // Hop-by-hop (8, PadN), routing (type 0 segleft 0, 24 bytes), dest opts (8), AH (12 bytes).
    fn chain() -> Vec<u8> {
        let mut e = vec![ext::ROUTING, 0, 1, 4, 0, 0, 0, 0];
        e.extend_from_slice(&[ext::DEST_OPTS, 2, 0, 0, 0, 0, 0, 0]);
        e.extend_from_slice(&[0; 16]);
        e.extend_from_slice(&[ext::AH, 0, 1, 4, 0, 0, 0, 0]);
        e.extend_from_slice(&[6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
        e
    }

    #[test]
    fn fixed_header_matches_etherparse() {
        let b = packet(6, &[], &[1, 2, 3]);
        let p = Ipv6Packet::new_checked(&b).unwrap();
        let o = etherparse::Ipv6HeaderSlice::from_slice(&b).unwrap();
        assert_eq!(p.traffic_class(), o.traffic_class());
        assert_eq!(p.flow_label(), o.flow_label().value());
        assert_eq!(p.payload_len(), o.payload_length());
        assert_eq!(p.next_header(), o.next_header().0);
        assert_eq!(p.hop_limit(), o.hop_limit());
        assert_eq!(p.src(), o.source_addr());
        assert_eq!(p.dst(), o.destination_addr());
        assert_eq!(p.payload(), &[1, 2, 3]);
    }

    #[test]
    fn walks_extension_chain() {
        let b = packet(ext::HOP_BY_HOP, &chain(), &[9; 20]);
        let p = Ipv6Packet::new_checked(&b).unwrap();
        let u = p.upper_layer(MAX_EXT_HEADERS).unwrap();
        assert_eq!(u.protocol, 6);
        assert_eq!(u.ext_headers, 4);
        assert_eq!(u.payload, &[9; 20]);
        assert_eq!(u.announced_len, 20);
        assert_eq!(u.fragment, None);
        assert_eq!(p.upper_layer(3).unwrap_err(), Error::Ipv6ExtDepthExceeded);
        // etherparse agrees on where the upper layer starts.
        let o = etherparse::Ipv6Slice::from_slice(&b).unwrap();
        assert_eq!(o.payload().ip_number.0, 6);
        assert_eq!(o.payload().payload, u.payload);
    }

    #[test]
    fn fragment_header() {
        // Offset 1448 bytes (181 << 3), MF set, ident 0xdeadbeef.
        let frag = [17, 0, 0x05, 0xa9, 0xde, 0xad, 0xbe, 0xef];
        let b = packet(ext::FRAGMENT, &frag, &[0; 8]);
        let u = Ipv6Packet::new_checked(&b)
            .unwrap()
            .upper_layer(MAX_EXT_HEADERS)
            .unwrap();
        assert_eq!(
            u.fragment,
            Some(Ipv6Fragment {
                offset: 1448,
                more: true,
                ident: 0xdead_beef
            })
        );
        // Atomic fragment: not a fragment.
        let atomic = [17, 0, 0, 0, 0, 0, 0, 1];
        let b = packet(ext::FRAGMENT, &atomic, &[0; 8]);
        let u = Ipv6Packet::new_checked(&b).unwrap().upper_layer(8).unwrap();
        assert_eq!((u.protocol, u.fragment), (17, None));
    }

    #[test]
    fn every_truncation_rejected_cleanly() {
        let b = packet(ext::HOP_BY_HOP, &chain(), &[]);
        for n in 0..b.len() {
            match Ipv6Packet::new_checked(&b[..n]) {
                Err(e) => assert!(n < 40 && e == Error::ShortIpv6),
                Ok(p) => assert_eq!(p.upper_layer(8).unwrap_err(), Error::ShortIpv6ExtHeader),
            }
        }
    }

    #[test]
    fn bad_version() {
        let mut b = packet(6, &[], &[]);
        b[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&b).unwrap_err(),
            Error::BadIpVersion
        );
    }
}
