//! Geneve (RFC 8926) headers, as a Gateway Load Balancer delivers them.
//!
//! Hand-written: etherparse 0.16 has no Geneve support.

use crate::bytes::{be16, be32, clamp, tail, u8_at};
use crate::ethernet::ethertype;
use crate::Error;

/// Zero-copy view of a Geneve header, its options and the payload.
#[derive(Clone, Copy, Debug)]
pub struct GeneveHeader<'a> {
    data: &'a [u8],
}

/// What a Geneve protocol type says follows the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeneveNext {
    /// 0x6558: an Ethernet frame.
    Ethernet,
    /// 0x0800: an IPv4 packet.
    Ipv4,
    /// 0x86DD: an IPv6 packet.
    Ipv6,
}

impl<'a> GeneveHeader<'a> {
    /// Fixed header length.
    pub const MIN_LEN: usize = 8;

    /// Checks version 0 and that the fixed header and all options are captured.
    pub fn new_checked(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < Self::MIN_LEN {
            return Err(Error::ShortGeneve);
        }
        let h = Self { data };
        if h.version() != 0 {
            return Err(Error::BadGeneveVersion);
        }
        if h.header_len() > data.len() {
            return Err(Error::ShortGeneve);
        }
        Ok(h)
    }

    /// Version (2 bits).
    pub fn version(&self) -> u8 {
        u8_at(self.data, 0) >> 6
    }

    /// Options length in bytes.
    pub fn options_len(&self) -> usize {
        usize::from(u8_at(self.data, 0) & 0x3f) * 4
    }

    /// Header length including options.
    pub fn header_len(&self) -> usize {
        Self::MIN_LEN + self.options_len()
    }

    /// OAM flag: control traffic, not user data.
    pub fn oam(&self) -> bool {
        u8_at(self.data, 1) & 0x80 != 0
    }

    /// Critical-options flag.
    pub fn critical(&self) -> bool {
        u8_at(self.data, 1) & 0x40 != 0
    }

    /// Protocol type (an ether type).
    pub fn protocol_type(&self) -> u16 {
        be16(self.data, 2)
    }

    /// 24-bit virtual network identifier.
    pub fn vni(&self) -> u32 {
        be32(self.data, 4) >> 8
    }

    /// Raw option TLVs (skipped by the decapsulator).
    pub fn options(&self) -> &'a [u8] {
        clamp(self.data, Self::MIN_LEN, self.header_len())
    }

    /// What follows the header.
    pub fn next(&self) -> Result<GeneveNext, Error> {
        match self.protocol_type() {
            ethertype::TEB => Ok(GeneveNext::Ethernet),
            ethertype::IPV4 => Ok(GeneveNext::Ipv4),
            ethertype::IPV6 => Ok(GeneveNext::Ipv6),
            _ => Err(Error::UnknownGeneveProtocol),
        }
    }

    /// The encapsulated bytes after the options.
    pub fn payload(&self) -> &'a [u8] {
        tail(self.data, self.header_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From tcpdump's geneve.pcap: 2 words of options (class 0, type 0x80, 1 data word), C flag,
    // VNI 10, Ethernet payload.
    const TCPDUMP: [u8; 18] = [
        0x02, 0x40, 0x65, 0x58, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00,
        0x0c, 0xfe, 0x71,
    ];

    #[test]
    fn fields() {
        let h = GeneveHeader::new_checked(&TCPDUMP).unwrap();
        assert_eq!(h.version(), 0);
        assert_eq!(h.options_len(), 8);
        assert!(!h.oam());
        assert!(h.critical());
        assert_eq!(h.vni(), 10);
        assert_eq!(h.next(), Ok(GeneveNext::Ethernet));
        assert_eq!(h.options().len(), 8);
        assert_eq!(h.payload(), &[0xfe, 0x71]);
    }

    #[test]
    fn rejects() {
        for n in 0..16 {
            assert_eq!(
                GeneveHeader::new_checked(&TCPDUMP[..n]).unwrap_err(),
                Error::ShortGeneve
            );
        }
        let mut b = TCPDUMP;
        b[0] |= 0x40;
        assert_eq!(
            GeneveHeader::new_checked(&b).unwrap_err(),
            Error::BadGeneveVersion
        );
        let mut b = TCPDUMP;
        b[2] = 0x12;
        let h = GeneveHeader::new_checked(&b).unwrap();
        assert_eq!(h.next(), Err(Error::UnknownGeneveProtocol));
    }
}
