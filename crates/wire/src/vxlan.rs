//! VXLAN (RFC 7348) headers, with the VXLAN-GPE next-protocol extension.
//!
//! Only the I flag decides validity: RFC 7348 section 5 says the reserved fields "MUST be set
//! to zero on transmission and ignored on receipt", so a plain VXLAN header with reserved bits
//! set still carries an Ethernet frame (they are reported for counting, never rejected). The
//! GPE reading of the same bits (the P flag and a next-protocol byte) applies only on a
//! VXLAN-GPE port: on a plain VXLAN port those bits are reserved too.
//!
//! Hand-written: etherparse 0.16 has no VXLAN support.

use crate::bytes::{be16, be32, tail, u8_at};
use crate::Error;

/// Byte ranges (or offsets, for single bytes) of the VXLAN(-GPE) header's fields.
pub mod field {
    use crate::Field;
    /// Flags (I; P, B, O on VXLAN-GPE).
    pub const FLAGS: usize = 0;
    /// Reserved on VXLAN; reserved bytes 1-2 then the next protocol on VXLAN-GPE.
    pub const RESERVED1: Field = 1..4;
    /// VXLAN-GPE next protocol.
    pub const NEXT_PROTOCOL: usize = 3;
    /// 24-bit VXLAN network identifier.
    pub const VNI: Field = 4..7;
    /// Reserved last byte.
    pub const RESERVED2: usize = 7;
}

/// Zero-copy view of a VXLAN header and the frame it carries.
#[derive(Clone, Copy, Debug)]
pub struct VxlanHeader<'a> {
    data: &'a [u8],
}

/// What a VXLAN(-GPE) header says follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VxlanNext {
    /// An Ethernet frame (plain VXLAN, or GPE next protocol 3).
    Ethernet,
    /// An IPv4 packet (GPE next protocol 1).
    Ipv4,
    /// An IPv6 packet (GPE next protocol 2).
    Ipv6,
}

impl<'a> VxlanHeader<'a> {
    /// Header length.
    pub const LEN: usize = 8;
    /// The I flag: the VNI is valid. RFC 7348 requires it; AWS sends exactly this byte.
    pub const FLAG_I: u8 = 0x08;
    /// The VXLAN-GPE P flag: byte 3 is a next-protocol field.
    pub const FLAG_P: u8 = 0x04;

    /// Checks length and the I flag. Other bits are reserved and tolerated (receivers must
    /// ignore them per RFC 7348); `reserved_bits_set` reports them for counting.
    pub fn new_checked(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < Self::LEN {
            return Err(Error::ShortVxlan);
        }
        let h = Self { data };
        if h.flags() & Self::FLAG_I == 0 {
            return Err(Error::BadVxlanFlags);
        }
        Ok(h)
    }

    /// Flags byte.
    pub fn flags(&self) -> u8 {
        u8_at(self.data, field::FLAGS)
    }

    /// 24-bit VXLAN network identifier.
    pub fn vni(&self) -> u32 {
        be32(self.data, field::VNI.start) >> 8
    }

    /// Plain VXLAN (RFC 7348): true when any bit other than the I flag and the VNI is set.
    pub fn reserved_bits_set(&self) -> bool {
        self.flags() & !Self::FLAG_I != 0
            || be32(self.data, field::FLAGS) & 0x00ff_ffff != 0
            || u8_at(self.data, field::RESERVED2) != 0
    }

    /// VXLAN-GPE: true when a bit outside I, P, B, O, the next protocol and the VNI is set
    /// (the two R bits, the version, bytes 1-2 and the last byte).
    pub fn gpe_reserved_bits_set(&self) -> bool {
        self.flags() & 0xf0 != 0
            || be16(self.data, field::RESERVED1.start) != 0
            || u8_at(self.data, field::RESERVED2) != 0
    }

    /// VXLAN-GPE: what follows, Ethernet unless the P flag names another protocol. Only for
    /// a VXLAN-GPE port; plain VXLAN always carries Ethernet.
    pub fn gpe_next(&self) -> Result<VxlanNext, Error> {
        if self.flags() & Self::FLAG_P == 0 {
            return Ok(VxlanNext::Ethernet);
        }
        match u8_at(self.data, field::NEXT_PROTOCOL) {
            1 => Ok(VxlanNext::Ipv4),
            2 => Ok(VxlanNext::Ipv6),
            3 => Ok(VxlanNext::Ethernet),
            _ => Err(Error::UnknownGpeProtocol),
        }
    }

    /// The encapsulated bytes.
    pub fn payload(&self) -> &'a [u8] {
        tail(self.data, Self::LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_header() {
        // VNI 5569041 (0x54fa11) from the AWS mirror capture, followed by 2 frame bytes.
        let b = [0x08, 0, 0, 0, 0x54, 0xfa, 0x11, 0x00, 0x02, 0x29];
        let h = VxlanHeader::new_checked(&b).unwrap();
        assert_eq!(h.vni(), 5_569_041);
        assert!(!h.reserved_bits_set());
        assert_eq!(h.gpe_next(), Ok(VxlanNext::Ethernet));
        assert!(!h.gpe_reserved_bits_set());
        assert_eq!(h.payload(), &[0x02, 0x29]);
        for n in 0..8 {
            assert_eq!(
                VxlanHeader::new_checked(&b[..n]).unwrap_err(),
                Error::ShortVxlan
            );
        }
    }

    #[test]
    fn flags() {
        let no_i = [0x00, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(
            VxlanHeader::new_checked(&no_i).unwrap_err(),
            Error::BadVxlanFlags
        );
        // Group-policy style bits and a non-zero last byte: tolerated, reported.
        let gbp = [0x88, 0, 0x12, 0x34, 0, 0, 1, 0];
        let h = VxlanHeader::new_checked(&gbp).unwrap();
        assert!(h.reserved_bits_set());
        assert_eq!(h.vni(), 1);
        let last = [0x08, 0, 0, 0, 0, 0, 1, 7];
        assert!(VxlanHeader::new_checked(&last).unwrap().reserved_bits_set());
        let gpe_v6 = [0x0c, 0, 0, 2, 0, 0, 1, 0];
        let h = VxlanHeader::new_checked(&gpe_v6).unwrap();
        assert_eq!(h.gpe_next(), Ok(VxlanNext::Ipv6));
        // The GPE fields are defined on a GPE port, reserved on a plain VXLAN one.
        assert!(!h.gpe_reserved_bits_set());
        assert!(h.reserved_bits_set());
        let gpe_nsh = [0x0c, 0, 0, 4, 0, 0, 1, 0];
        assert_eq!(
            VxlanHeader::new_checked(&gpe_nsh).unwrap().gpe_next(),
            Err(Error::UnknownGpeProtocol)
        );
        let gpe_r = [0x4c, 0, 1, 3, 0, 0, 1, 0];
        assert!(VxlanHeader::new_checked(&gpe_r)
            .unwrap()
            .gpe_reserved_bits_set());
    }
}
