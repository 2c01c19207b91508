//! IPv4 packets, with options and fragments.
//!
//! Hand-written rather than etherparse's `Ipv4Slice`: mirrored frames are routinely cut short
//! (session packet length, snaplen) while the total length still announces the original size.
//! We must keep such packets and report the announced length; etherparse's strict slice
//! rejects them and its lax slice does not say which defect it found in our labels.

use crate::bytes::{array, be16, clamp, u8_at};
use crate::checksum;
use crate::Error;
use std::net::Ipv4Addr;

/// Byte ranges (or offsets, for single bytes) of the IPv4 header's fields.
pub mod field {
    use crate::Field;
    /// Version (high nibble) and header length in words (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP and ECN.
    pub const TOS: usize = 1;
    /// Total length.
    pub const LENGTH: Field = 2..4;
    /// Identification.
    pub const IDENT: Field = 4..6;
    /// Flags (high 3 bits) and fragment offset.
    pub const FLG_OFF: Field = 6..8;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol of the payload.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: Field = 10..12;
    /// Source address.
    pub const SRC_ADDR: Field = 12..16;
    /// Destination address.
    pub const DST_ADDR: Field = 16..20;
}

/// Zero-copy view of an IPv4 packet whose header is fully captured.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<'a> {
    data: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    /// Length of the header without options.
    pub const MIN_HEADER_LEN: usize = 20;

    /// Checks version 4, IHL >= 5, the whole header (options included) is present and the
    /// total length covers at least the header. The payload may be cut short.
    pub fn new_checked(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < Self::MIN_HEADER_LEN {
            return Err(Error::ShortIpv4);
        }
        let p = Self { data };
        if p.version() != 4 {
            return Err(Error::BadIpVersion);
        }
        let hl = p.header_len();
        if hl < Self::MIN_HEADER_LEN || hl > data.len() {
            return Err(Error::BadIpv4HeaderLen);
        }
        // A total length of 0 is what TSO/GSO captures show; treat it as "whatever was captured".
        let total = usize::from(p.total_len());
        if total != 0 && total < hl {
            return Err(Error::BadIpv4TotalLen);
        }
        Ok(p)
    }

    /// Version nibble (4 once checked).
    pub fn version(&self) -> u8 {
        u8_at(self.data, field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(u8_at(self.data, field::VER_IHL) & 0x0f) * 4
    }

    /// DSCP and ECN byte.
    pub fn tos(&self) -> u8 {
        u8_at(self.data, field::TOS)
    }

    /// Total length field as announced (header plus payload).
    pub fn total_len(&self) -> u16 {
        be16(self.data, field::LENGTH.start)
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        be16(self.data, field::IDENT.start)
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        u8_at(self.data, field::FLG_OFF.start) & 0x40 != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        u8_at(self.data, field::FLG_OFF.start) & 0x20 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(be16(self.data, field::FLG_OFF.start) & 0x1fff) * 8
    }

    /// True when this packet is a fragment (first, middle or last).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        u8_at(self.data, field::TTL)
    }

    /// Protocol number of the payload.
    pub fn protocol(&self) -> u8 {
        u8_at(self.data, field::PROTOCOL)
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.data, field::CHECKSUM.start)
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.data, field::SRC_ADDR.start))
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.data, field::DST_ADDR.start))
    }

    /// Options bytes (empty when IHL is 5).
    pub fn options(&self) -> &'a [u8] {
        clamp(self.data, Self::MIN_HEADER_LEN, self.header_len())
    }

    /// Payload length the header announces (total length minus header length).
    pub fn announced_payload_len(&self) -> usize {
        match usize::from(self.total_len()) {
            0 => self.data.len().saturating_sub(self.header_len()),
            t => t.saturating_sub(self.header_len()),
        }
    }

    /// Captured payload, never beyond the total length: Ethernet padding is not payload.
    pub fn payload(&self) -> &'a [u8] {
        let hl = self.header_len();
        clamp(
            self.data,
            hl,
            hl.saturating_add(self.announced_payload_len()),
        )
    }

    /// True when fewer payload bytes were captured than announced.
    pub fn is_truncated(&self) -> bool {
        self.payload().len() < self.announced_payload_len()
    }

    /// True when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(clamp(self.data, 0, self.header_len())) == 0
    }

    /// One's-complement sum of the TCP/UDP pseudo-header for a payload of `len` bytes.
    pub fn pseudo_header_sum(&self, len: usize) -> u64 {
        let mut acc = checksum::sum(clamp(self.data, 12, 20), 0);
        acc = acc.wrapping_add(u64::from(self.protocol()));
        acc.wrapping_add(len as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From the AWS mirror capture: inner IPv4/TCP SYN-ACK header, 172.31.0.238 -> 18.196.145.224.
    pub(crate) const AWS_IPV4: [u8; 20] = [
        0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0xff, 0x06, 0x2a, 0x0a, 0xac, 0x1f, 0x00,
        0xee, 0x12, 0xc4, 0x91, 0xe0,
    ];

    #[test]
    fn fields_match_etherparse() {
        let p = Ipv4Packet::new_checked(&AWS_IPV4).unwrap();
        let o = etherparse::Ipv4HeaderSlice::from_slice(&AWS_IPV4).unwrap();
        assert_eq!(p.header_len(), usize::from(o.ihl()) * 4);
        assert_eq!(p.total_len(), o.total_len());
        assert_eq!(p.ident(), o.identification());
        assert_eq!(p.dont_frag(), o.dont_fragment());
        assert_eq!(p.more_frags(), o.more_fragments());
        assert_eq!(
            p.frag_offset(),
            usize::from(o.fragments_offset().value()) * 8
        );
        assert_eq!(p.ttl(), o.ttl());
        assert_eq!(p.protocol(), o.protocol().0);
        assert_eq!(p.checksum(), o.header_checksum());
        assert_eq!(p.src(), o.source_addr());
        assert_eq!(p.dst(), o.destination_addr());
        assert!(p.verify_checksum());
        // Only the header was kept: 40 payload bytes announced, none captured.
        assert_eq!(p.announced_payload_len(), 40);
        assert!(p.payload().is_empty());
        assert!(p.is_truncated());
    }

    #[test]
    fn options_fragments_and_padding() {
        // IHL 6 (one NOP NOP NOP EOL option word), MF set, offset 185*8, total 28, 2 pad bytes.
        let mut b = vec![
            0x46, 0, 0, 28, 0x12, 0x34, 0x20, 185, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1,
            0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xee,
        ];
        let c = checksum::checksum(&b[..24]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        let p = Ipv4Packet::new_checked(&b).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert!(p.more_frags() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd], "padding excluded");
        assert!(!p.is_truncated());
        assert!(p.verify_checksum());
        let o = etherparse::Ipv4HeaderSlice::from_slice(&b).unwrap();
        assert_eq!(p.options(), o.options());
    }

    #[test]
    fn rejects() {
        assert_eq!(Ipv4Packet::new_checked(&[]).unwrap_err(), Error::ShortIpv4);
        let mut b = AWS_IPV4;
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b).unwrap_err(),
            Error::BadIpVersion
        );
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b).unwrap_err(),
            Error::BadIpv4HeaderLen
        );
        b[0] = 0x46;
        assert_eq!(
            Ipv4Packet::new_checked(&b).unwrap_err(),
            Error::BadIpv4HeaderLen
        );
        b[0] = 0x45;
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&b).unwrap_err(),
            Error::BadIpv4TotalLen
        );
    }

    #[test]
    fn every_truncation_rejected() {
        for n in 0..AWS_IPV4.len() {
            assert_eq!(
                Ipv4Packet::new_checked(&AWS_IPV4[..n]).unwrap_err(),
                Error::ShortIpv4
            );
        }
    }
}
