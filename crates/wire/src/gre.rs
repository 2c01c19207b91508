//! GRE (RFC 2784, with the key and sequence number options of RFC 2890) and the ERSPAN
//! headers switches and routers put inside it (draft-foschiano-erspan-03), as port mirrors
//! other than AWS's deliver them. GRE-in-UDP (RFC 8086) is the same GRE header as a UDP
//! payload.
//!
//! ```text
//!  GRE:  |C|R|K|S|s|Recur|  Flags  | Ver |        Protocol Type          |
//!        |    Checksum (if C or R)       |   Offset/Reserved1 (if C or R)|
//!        |                       Key (if K)                              |
//!        |                 Sequence Number (if S)                        |
//!
//!  ERSPAN type II (GRE 0x88BE with S):
//!        |  Ver=1|        VLAN           | COS | En|T|    Session ID     |
//!        |        Reserved       |                 Index                 |
//!  ERSPAN type III (GRE 0x22EB):
//!        |  Ver=2|        VLAN           | COS |BSO|T|    Session ID     |
//!        |                          Timestamp                            |
//!        |              SGT              |P|   FT    |   Hw ID   |D|Gra|O|
//!        |   8 bytes of platform-specific subheader (if O)               |
//! ```
//!
//! ERSPAN type I is GRE 0x88BE without the sequence number: no ERSPAN header, the mirrored
//! Ethernet frame follows the 4-byte GRE header (Wireshark and Zeek read it so too).
//!
//! What is rejected and why: a version other than 0 (version 1 is PPTP's enhanced GRE, which
//! carries PPP, not mirrored frames); the RFC 1701 routing bit and strict source route bit
//! (RFC 2784 deprecates routing, a receiver must discard such packets unless it implements
//! RFC 1701's source routes, which mirrors never use); a header or options cut off. The other
//! reserved flag bits "MUST be ignored on receipt" (RFC 2784 section 2.2) and are.
//!
//! Hand-written: etherparse 0.16 has no GRE or ERSPAN support.

use crate::bytes::{be16, be32, tail, u8_at};
use crate::ethernet::ethertype;
use crate::Error;

/// GRE protocol types this module gives a meaning to.
pub mod proto {
    /// ERSPAN type I and II.
    pub const ERSPAN: u16 = 0x88be;
    /// ERSPAN type III.
    pub const ERSPAN3: u16 = 0x22eb;
}

/// IANA UDP port for GRE-in-UDP (RFC 8086).
pub const GRE_UDP_PORT: u16 = 4754;

/// Zero-copy view of a GRE header and what follows it.
#[derive(Clone, Copy, Debug)]
pub struct GreHeader<'a> {
    data: &'a [u8],
}

/// What a GRE protocol type says follows the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GreNext {
    /// 0x6558 transparent Ethernet bridging: an Ethernet frame.
    Ethernet,
    /// 0x0800: an IPv4 packet.
    Ipv4,
    /// 0x86DD: an IPv6 packet.
    Ipv6,
    /// 0x88BE without a sequence number: ERSPAN type I, an Ethernet frame.
    Erspan1,
    /// 0x88BE with a sequence number: an ERSPAN type II header.
    Erspan2,
    /// 0x22EB: an ERSPAN type III header.
    Erspan3,
}

impl<'a> GreHeader<'a> {
    /// Length of the mandatory part.
    pub const MIN_LEN: usize = 4;
    /// Checksum present.
    pub const FLAG_C: u16 = 0x8000;
    /// Routing present (RFC 1701, deprecated).
    pub const FLAG_R: u16 = 0x4000;
    /// Key present (RFC 2890).
    pub const FLAG_K: u16 = 0x2000;
    /// Sequence number present (RFC 2890).
    pub const FLAG_S: u16 = 0x1000;
    /// Strict source route (RFC 1701, deprecated).
    pub const FLAG_SSR: u16 = 0x0800;

    /// Checks version 0, no routing, and that the header with its options is captured.
    pub fn new_checked(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < Self::MIN_LEN {
            return Err(Error::ShortGre);
        }
        let h = Self { data };
        if h.version() != 0 {
            return Err(Error::BadGreVersion);
        }
        if h.flags() & (Self::FLAG_R | Self::FLAG_SSR) != 0 {
            return Err(Error::GreRouting);
        }
        if h.header_len() > data.len() {
            return Err(Error::ShortGre);
        }
        Ok(h)
    }

    /// The 16 flag-and-version bits.
    pub fn flags(&self) -> u16 {
        be16(self.data, 0)
    }

    /// Version (3 bits).
    pub fn version(&self) -> u8 {
        (self.flags() & 0x0007) as u8
    }

    /// Protocol type (an ether type).
    pub fn protocol_type(&self) -> u16 {
        be16(self.data, 2)
    }

    fn has(&self, flag: u16) -> bool {
        self.flags() & flag != 0
    }

    /// Header length including the optional fields.
    pub fn header_len(&self) -> usize {
        let word = |present: bool| if present { 4 } else { 0 };
        Self::MIN_LEN
            + word(self.has(Self::FLAG_C) || self.has(Self::FLAG_R))
            + word(self.has(Self::FLAG_K))
            + word(self.has(Self::FLAG_S))
    }

    /// The checksum field, when present (not verified: mirrors rarely set it and the inner
    /// packets' own checksums are what `validate_checksums` looks at).
    pub fn checksum(&self) -> Option<u16> {
        self.has(Self::FLAG_C).then(|| be16(self.data, 4))
    }

    fn option_at(&self) -> usize {
        if self.has(Self::FLAG_C) || self.has(Self::FLAG_R) {
            8
        } else {
            4
        }
    }

    /// The key (RFC 2890), when present.
    pub fn key(&self) -> Option<u32> {
        self.has(Self::FLAG_K)
            .then(|| be32(self.data, self.option_at()))
    }

    /// The sequence number (RFC 2890), when present.
    pub fn sequence(&self) -> Option<u32> {
        let at = self.option_at() + if self.has(Self::FLAG_K) { 4 } else { 0 };
        self.has(Self::FLAG_S).then(|| be32(self.data, at))
    }

    /// What follows the header.
    pub fn next(&self) -> Result<GreNext, Error> {
        match self.protocol_type() {
            ethertype::TEB => Ok(GreNext::Ethernet),
            ethertype::IPV4 => Ok(GreNext::Ipv4),
            ethertype::IPV6 => Ok(GreNext::Ipv6),
            proto::ERSPAN if self.has(Self::FLAG_S) => Ok(GreNext::Erspan2),
            proto::ERSPAN => Ok(GreNext::Erspan1),
            proto::ERSPAN3 => Ok(GreNext::Erspan3),
            _ => Err(Error::UnknownGreProtocol),
        }
    }

    /// The bytes after the header and its options.
    pub fn payload(&self) -> &'a [u8] {
        tail(self.data, self.header_len())
    }
}

/// What an ERSPAN header says follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErspanNext {
    /// An Ethernet frame (type II always; type III frame type 0).
    Ethernet,
    /// An IP packet, version from its first nibble (type III frame type 2).
    Ip,
}

/// Zero-copy view of an ERSPAN type II or III header.
#[derive(Clone, Copy, Debug)]
pub struct ErspanHeader<'a> {
    data: &'a [u8],
}

impl<'a> ErspanHeader<'a> {
    /// Type II header length.
    pub const LEN_II: usize = 8;
    /// Type III header length without the platform-specific subheader.
    pub const LEN_III: usize = 12;
    /// Length of the type III platform-specific subheader.
    pub const PLATFORM_LEN: usize = 8;
    /// Version field of a type II header.
    pub const VERSION_II: u8 = 1;
    /// Version field of a type III header.
    pub const VERSION_III: u8 = 2;

    /// A type II header (after GRE 0x88BE with a sequence number): version 1, 8 bytes.
    pub fn new_checked_ii(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < Self::LEN_II {
            return Err(Error::ShortErspan);
        }
        let h = Self { data };
        if h.version() != Self::VERSION_II {
            return Err(Error::BadErspanVersion);
        }
        Ok(h)
    }

    /// A type III header (after GRE 0x22EB): version 2, 12 bytes, 8 more with the O flag.
    pub fn new_checked_iii(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < Self::LEN_III {
            return Err(Error::ShortErspan);
        }
        let h = Self { data };
        if h.version() != Self::VERSION_III {
            return Err(Error::BadErspanVersion);
        }
        if h.header_len() > data.len() {
            return Err(Error::ShortErspan);
        }
        Ok(h)
    }

    /// Version (4 bits): 1 for type II, 2 for type III.
    pub fn version(&self) -> u8 {
        u8_at(self.data, 0) >> 4
    }

    /// VLAN of the mirrored frame (12 bits).
    pub fn vlan(&self) -> u16 {
        be16(self.data, 0) & 0x0fff
    }

    /// Class of service (3 bits).
    pub fn cos(&self) -> u8 {
        u8_at(self.data, 2) >> 5
    }

    /// The T bit: the switch cut the mirrored frame to fit the MTU.
    pub fn truncated(&self) -> bool {
        u8_at(self.data, 2) & 0x04 != 0
    }

    /// Session id (10 bits): the mirror session, ERSPAN's VNI.
    pub fn session_id(&self) -> u16 {
        be16(self.data, 2) & 0x03ff
    }

    fn is_iii(&self) -> bool {
        self.version() == Self::VERSION_III
    }

    /// Type III frame type (5 bits): 0 Ethernet, 2 IP. 0 for type II.
    pub fn frame_type(&self) -> u8 {
        if self.is_iii() {
            (u8_at(self.data, 10) >> 2) & 0x1f
        } else {
            0
        }
    }

    /// Type III O flag: the platform-specific subheader follows.
    pub fn has_platform_subheader(&self) -> bool {
        self.is_iii() && u8_at(self.data, 11) & 0x01 != 0
    }

    /// Header length, subheader included.
    pub fn header_len(&self) -> usize {
        if !self.is_iii() {
            Self::LEN_II
        } else if self.has_platform_subheader() {
            Self::LEN_III + Self::PLATFORM_LEN
        } else {
            Self::LEN_III
        }
    }

    /// What follows the header.
    pub fn next(&self) -> Result<ErspanNext, Error> {
        match self.frame_type() {
            0 => Ok(ErspanNext::Ethernet),
            2 => Ok(ErspanNext::Ip),
            _ => Err(Error::UnknownErspanFrameType),
        }
    }

    /// The mirrored frame.
    pub fn payload(&self) -> &'a [u8] {
        tail(self.data, self.header_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_gre_and_options() {
        let b = [0x00, 0x00, 0x08, 0x00, 0x45];
        let h = GreHeader::new_checked(&b).unwrap();
        assert_eq!((h.header_len(), h.key(), h.sequence()), (4, None, None));
        assert_eq!(h.next(), Ok(GreNext::Ipv4));
        assert_eq!(h.payload(), &[0x45]);
        // C, K and S: checksum word, key, sequence, in that order (RFC 2890 section 2).
        let b = [
            0xb0, 0x00, 0x65, 0x58, 0xab, 0xcd, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 9, 0xee,
        ];
        let h = GreHeader::new_checked(&b).unwrap();
        assert_eq!(h.header_len(), 16);
        assert_eq!(h.checksum(), Some(0xabcd));
        assert_eq!(h.key(), Some(0x1234));
        assert_eq!(h.sequence(), Some(9));
        assert_eq!(h.next(), Ok(GreNext::Ethernet));
        assert_eq!(h.payload(), &[0xee]);
        for n in 0..16 {
            assert_eq!(
                GreHeader::new_checked(&b[..n]).unwrap_err(),
                Error::ShortGre,
                "{n}"
            );
        }
        // Reserved flag bits and recursion control are ignored on receipt (RFC 2784 2.2).
        let b = [0x07, 0xf8, 0x86, 0xdd];
        assert_eq!(
            GreHeader::new_checked(&b).unwrap().next(),
            Ok(GreNext::Ipv6)
        );
    }

    #[test]
    fn gre_rejections() {
        let pptp = [0x30, 0x81, 0x88, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            GreHeader::new_checked(&pptp).unwrap_err(),
            Error::BadGreVersion
        );
        for routing in [[0x40, 0, 8, 0, 0, 0, 0, 0], [0x08, 0, 8, 0, 0, 0, 0, 0]] {
            assert_eq!(
                GreHeader::new_checked(&routing).unwrap_err(),
                Error::GreRouting
            );
        }
        let unknown = [0, 0, 0x88, 0x0b];
        assert_eq!(
            GreHeader::new_checked(&unknown).unwrap().next(),
            Err(Error::UnknownGreProtocol)
        );
    }

    #[test]
    fn erspan_types() {
        let one = [0, 0, 0x88, 0xbe];
        assert_eq!(
            GreHeader::new_checked(&one).unwrap().next(),
            Ok(GreNext::Erspan1)
        );
        let two = [0x10, 0, 0x88, 0xbe, 0, 0, 0, 1];
        assert_eq!(
            GreHeader::new_checked(&two).unwrap().next(),
            Ok(GreNext::Erspan2)
        );
        let three = [0, 0, 0x22, 0xeb];
        assert_eq!(
            GreHeader::new_checked(&three).unwrap().next(),
            Ok(GreNext::Erspan3)
        );

        // Type II: version 1, VLAN 100, COS 5, T, session 0x2a5.
        let ii = [0x10, 0x64, 0xa6, 0xa5, 0, 0, 0, 7, 0xff];
        let h = ErspanHeader::new_checked_ii(&ii).unwrap();
        assert_eq!((h.vlan(), h.cos(), h.truncated()), (100, 5, true));
        assert_eq!((h.session_id(), h.header_len()), (0x2a5, 8));
        assert_eq!(
            (h.next(), h.payload()),
            (Ok(ErspanNext::Ethernet), &[0xff][..])
        );
        for n in 0..8 {
            assert_eq!(
                ErspanHeader::new_checked_ii(&ii[..n]).unwrap_err(),
                Error::ShortErspan
            );
        }
        let mut bad = ii;
        bad[0] = 0x20;
        assert_eq!(
            ErspanHeader::new_checked_ii(&bad).unwrap_err(),
            Error::BadErspanVersion
        );

        // Type III: version 2, session 7, frame type 0, no subheader.
        let mut iii = [0u8; 13];
        iii[0] = 0x20;
        iii[3] = 7;
        iii[12] = 0xee;
        let h = ErspanHeader::new_checked_iii(&iii).unwrap();
        assert_eq!((h.session_id(), h.header_len()), (7, 12));
        assert_eq!(
            (h.next(), h.payload()),
            (Ok(ErspanNext::Ethernet), &[0xee][..])
        );
        // The O flag adds the 8-byte platform subheader: now cut off.
        let mut o = iii;
        o[11] = 0x01;
        assert_eq!(
            ErspanHeader::new_checked_iii(&o).unwrap_err(),
            Error::ShortErspan
        );
        let mut with_o = [0u8; 21];
        with_o[..13].copy_from_slice(&o);
        with_o[20] = 0xdd;
        let h = ErspanHeader::new_checked_iii(&with_o).unwrap();
        assert_eq!((h.header_len(), h.payload()), (20, &[0xdd][..]));
        // Frame type 2 is IP; others are not defined.
        let mut ip = iii;
        ip[10] = 2 << 2;
        let h = ErspanHeader::new_checked_iii(&ip).unwrap();
        assert_eq!(h.next(), Ok(ErspanNext::Ip));
        ip[10] = 5 << 2;
        let h = ErspanHeader::new_checked_iii(&ip).unwrap();
        assert_eq!(h.next(), Err(Error::UnknownErspanFrameType));
        let mut v1 = iii;
        v1[0] = 0x10;
        assert_eq!(
            ErspanHeader::new_checked_iii(&v1).unwrap_err(),
            Error::BadErspanVersion
        );
        for n in 0..12 {
            assert_eq!(
                ErspanHeader::new_checked_iii(&iii[..n]).unwrap_err(),
                Error::ShortErspan
            );
        }
    }
}
