//! Ethernet II frames and 802.1Q / 802.1ad (QinQ) tags.
//!
//! Hand-written rather than etherparse's `Ethernet2Slice`/`VlanSlice`: the views are a dozen
//! lines each, and walking tags ourselves lets us stack any depth up to a limit (etherparse
//! stops at two) with our own rejection labels. etherparse stays as the test oracle.

use crate::bytes::{array, be16, tail};
use crate::Error;

/// Ether type values this crate dispatches on.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag still emitted by some switches.
    pub const QINQ_LEGACY: u16 = 0x9100;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// Transparent Ethernet bridging (Geneve/GRE payload is an Ethernet frame).
    pub const TEB: u16 = 0x6558;

    /// True for the ether types that introduce a VLAN tag.
    pub const fn is_vlan(t: u16) -> bool {
        matches!(t, VLAN | QINQ | QINQ_LEGACY)
    }
}

/// Byte ranges of the Ethernet II header's fields.
pub mod field {
    use crate::Field;
    /// Destination MAC address.
    pub const DESTINATION: Field = 0..6;
    /// Source MAC address.
    pub const SOURCE: Field = 6..12;
    /// Ether type.
    pub const ETHERTYPE: Field = 12..14;
    /// What follows the header (VLAN tags included).
    pub const PAYLOAD: std::ops::RangeFrom<usize> = 14..;
}

/// Zero-copy view of an Ethernet II frame.
#[derive(Clone, Copy, Debug)]
pub struct EthernetFrame<'a> {
    data: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    /// Length of the Ethernet II header (no FCS: captures rarely include it).
    pub const HEADER_LEN: usize = 14;

    /// Checks there are at least 14 bytes.
    pub fn new_checked(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < Self::HEADER_LEN {
            return Err(Error::ShortEthernet);
        }
        Ok(Self { data })
    }

    /// Destination MAC address.
    pub fn dst(&self) -> [u8; 6] {
        array(self.data, field::DESTINATION.start)
    }

    /// Source MAC address.
    pub fn src(&self) -> [u8; 6] {
        array(self.data, field::SOURCE.start)
    }

    /// Ether type (or 802.3 length when below 0x0600).
    pub fn ethertype(&self) -> u16 {
        be16(self.data, field::ETHERTYPE.start)
    }

    /// Everything after the 14-byte header, VLAN tags included.
    pub fn payload(&self) -> &'a [u8] {
        tail(self.data, field::PAYLOAD.start)
    }
}

/// Zero-copy view of one 4-byte VLAN tag as it follows a VLAN ether type.
#[derive(Clone, Copy, Debug)]
pub struct VlanTag<'a> {
    data: &'a [u8],
}

impl<'a> VlanTag<'a> {
    /// Tag length after the ether type that announced it: TCI plus the next ether type.
    pub const LEN: usize = 4;

    /// Checks there are at least 4 bytes.
    pub fn new_checked(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < Self::LEN {
            return Err(Error::ShortVlan);
        }
        Ok(Self { data })
    }

    /// Priority code point.
    pub fn pcp(&self) -> u8 {
        (be16(self.data, 0) >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        be16(self.data, 0) & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    pub fn vid(&self) -> u16 {
        be16(self.data, 0) & 0x0fff
    }

    /// Ether type of what follows the tag.
    pub fn ethertype(&self) -> u16 {
        be16(self.data, 2)
    }

    /// Bytes after the tag.
    pub fn payload(&self) -> &'a [u8] {
        tail(self.data, Self::LEN)
    }
}

/// The network-layer start of a frame once all VLAN tags are peeled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2Payload<'a> {
    /// Ether type after the last tag.
    pub ethertype: u16,
    /// Bytes after the last tag.
    pub payload: &'a [u8],
    /// Number of VLAN tags peeled.
    pub vlan_tags: u8,
    /// VLAN id of the outermost tag, if any.
    pub outer_vid: Option<u16>,
}

/// Default limit on stacked VLAN tags: QinQ is 2, a few providers stack 3; 8 is generous.
pub const MAX_VLAN_TAGS: u8 = 8;

/// Peels VLAN tags starting from `ethertype`/`payload` (the fields after the MAC addresses).
pub fn strip_vlans(
    mut ethertype: u16,
    mut payload: &[u8],
    max_tags: u8,
) -> Result<L2Payload<'_>, Error> {
    let mut tags = 0u8;
    let mut outer_vid = None;
    while ethertype::is_vlan(ethertype) {
        if tags >= max_tags {
            return Err(Error::VlanDepthExceeded);
        }
        let tag = VlanTag::new_checked(payload)?;
        outer_vid.get_or_insert(tag.vid());
        ethertype = tag.ethertype();
        payload = tag.payload();
        tags += 1;
    }
    Ok(L2Payload {
        ethertype,
        payload,
        vlan_tags: tags,
        outer_vid,
    })
}

impl<'a> EthernetFrame<'a> {
    /// Peels VLAN tags (up to `max_tags`) and returns the network-layer start.
    pub fn l2_payload(&self, max_tags: u8) -> Result<L2Payload<'a>, Error> {
        strip_vlans(self.ethertype(), self.payload(), max_tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // dst 00:11:22:33:44:55 src 66:77:88:99:aa:bb, 802.1ad vid 100, 802.1Q vid 5, IPv4.
    const QINQ: [u8; 24] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x88, 0xa8, 0x20,
        0x64, 0x81, 0x00, 0x00, 0x05, 0x08, 0x00, 0x45, 0x00,
    ];

    #[test]
    fn ethernet_fields() {
        let f = EthernetFrame::new_checked(&QINQ).unwrap();
        assert_eq!(f.dst(), [0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(f.src(), [0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]);
        assert_eq!(f.ethertype(), ethertype::QINQ);
        let oracle = etherparse::Ethernet2HeaderSlice::from_slice(&QINQ).unwrap();
        assert_eq!(f.dst(), oracle.destination());
        assert_eq!(f.src(), oracle.source());
        assert_eq!(f.ethertype(), oracle.ether_type().0);
    }

    #[test]
    fn qinq_walk() {
        let f = EthernetFrame::new_checked(&QINQ).unwrap();
        let l2 = f.l2_payload(MAX_VLAN_TAGS).unwrap();
        assert_eq!(l2.ethertype, ethertype::IPV4);
        assert_eq!(l2.vlan_tags, 2);
        assert_eq!(l2.outer_vid, Some(100));
        assert_eq!(l2.payload, &[0x45, 0x00]);
        let tag = VlanTag::new_checked(f.payload()).unwrap();
        assert_eq!((tag.pcp(), tag.dei(), tag.vid()), (1, false, 100));
        let oracle = etherparse::SingleVlanHeaderSlice::from_slice(f.payload()).unwrap();
        assert_eq!(tag.vid(), oracle.vlan_identifier().value());
        assert_eq!(tag.pcp(), oracle.priority_code_point().value());
        assert_eq!(tag.ethertype(), oracle.ether_type().0);
        assert_eq!(
            f.l2_payload(1).unwrap_err(),
            Error::VlanDepthExceeded,
            "limit applies"
        );
    }

    #[test]
    fn every_truncation_rejected_or_consistent() {
        for n in 0..QINQ.len() {
            let r = EthernetFrame::new_checked(&QINQ[..n]).and_then(|f| f.l2_payload(8));
            match n {
                0..=13 => assert_eq!(r.unwrap_err(), Error::ShortEthernet, "len {n}"),
                14..=21 => assert_eq!(r.unwrap_err(), Error::ShortVlan, "len {n}"),
                _ => assert_eq!(r.unwrap().payload.len(), n - 22),
            }
        }
    }
}
