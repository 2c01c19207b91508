//! UDP datagrams.
//!
//! Hand-written (8 bytes, four fields): etherparse's `UdpSlice` insists that the length field
//! fits in the captured bytes, which mirror truncation violates on purpose.

use crate::bytes::{be16, clamp};
use crate::Error;

/// Byte ranges of the UDP header's fields.
pub mod field {
    use crate::Field;
    /// Source port.
    pub const SRC_PORT: Field = 0..2;
    /// Destination port.
    pub const DST_PORT: Field = 2..4;
    /// Length (header plus payload).
    pub const LENGTH: Field = 4..6;
    /// Checksum.
    pub const CHECKSUM: Field = 6..8;
}

/// Zero-copy view of a UDP datagram whose 8-byte header is captured.
#[derive(Clone, Copy, Debug)]
pub struct UdpDatagram<'a> {
    data: &'a [u8],
}

impl<'a> UdpDatagram<'a> {
    /// Header length.
    pub const HEADER_LEN: usize = 8;

    /// Checks the header is present and the length field is at least 8 (0 is accepted: it is
    /// what IPv6 jumbograms and some GSO captures carry, and then the IP length rules).
    pub fn new_checked(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < Self::HEADER_LEN {
            return Err(Error::ShortUdp);
        }
        let d = Self { data };
        let len = d.length();
        if len != 0 && usize::from(len) < Self::HEADER_LEN {
            return Err(Error::BadUdpLen);
        }
        Ok(d)
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.data, field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.data, field::DST_PORT.start)
    }

    /// Length field (header plus payload).
    pub fn length(&self) -> u16 {
        be16(self.data, field::LENGTH.start)
    }

    /// Checksum field (0 = not computed, as AWS mirroring sends).
    pub fn checksum(&self) -> u16 {
        be16(self.data, field::CHECKSUM.start)
    }

    /// Captured payload, never beyond what the length field announces.
    pub fn payload(&self) -> &'a [u8] {
        let end = match self.length() {
            0 => self.data.len(),
            n => usize::from(n),
        };
        clamp(self.data, Self::HEADER_LEN, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Outer UDP of the AWS capture: 65474 -> 4789, length 90, checksum 0.
    const AWS_UDP: [u8; 10] = [0xff, 0xc2, 0x12, 0xb5, 0x00, 0x5a, 0x00, 0x00, 0x08, 0x00];

    #[test]
    fn fields_match_etherparse() {
        let u = UdpDatagram::new_checked(&AWS_UDP).unwrap();
        let o = etherparse::UdpHeaderSlice::from_slice(&AWS_UDP).unwrap();
        assert_eq!(u.src_port(), o.source_port());
        assert_eq!(u.dst_port(), o.destination_port());
        assert_eq!(u.length(), o.length());
        assert_eq!(u.checksum(), o.checksum());
        assert_eq!((u.src_port(), u.dst_port(), u.checksum()), (65474, 4789, 0));
        assert_eq!(
            u.payload(),
            &[0x08, 0x00],
            "captured part of a cut datagram"
        );
    }

    #[test]
    fn rejects() {
        for n in 0..8 {
            assert_eq!(
                UdpDatagram::new_checked(&AWS_UDP[..n]).unwrap_err(),
                Error::ShortUdp
            );
        }
        let mut b = AWS_UDP;
        b[5] = 7;
        assert_eq!(UdpDatagram::new_checked(&b).unwrap_err(), Error::BadUdpLen);
        b[5] = 9;
        assert_eq!(
            UdpDatagram::new_checked(&b).unwrap().payload(),
            &[0x08],
            "length bounds"
        );
    }
}
