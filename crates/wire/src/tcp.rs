//! TCP segments.
//!
//! Hand-written: only the fixed fields and the data offset matter here, and we need the data
//! offset checked against what was captured with our own labels.

use crate::bytes::{be16, be32, clamp, tail, u8_at};
use crate::{Error, TcpFlags};

/// Byte ranges (or offsets, for single bytes) of the TCP header's fields.
pub mod field {
    use crate::Field;
    /// Source port.
    pub const SRC_PORT: Field = 0..2;
    /// Destination port.
    pub const DST_PORT: Field = 2..4;
    /// Sequence number.
    pub const SEQ_NUM: Field = 4..8;
    /// Acknowledgment number.
    pub const ACK_NUM: Field = 8..12;
    /// Data offset (high nibble, in words).
    pub const DATA_OFF: usize = 12;
    /// Flags (FIN..CWR).
    pub const FLAGS: usize = 13;
    /// Receive window.
    pub const WIN_SIZE: Field = 14..16;
    /// Checksum.
    pub const CHECKSUM: Field = 16..18;
    /// Urgent pointer.
    pub const URGENT: Field = 18..20;
}

/// Zero-copy view of a TCP segment whose header (options included) is captured.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    data: &'a [u8],
}

impl<'a> TcpSegment<'a> {
    /// Header length without options.
    pub const MIN_HEADER_LEN: usize = 20;

    /// Checks the fixed header, a data offset of at least 5 words, and that the options are
    /// captured.
    pub fn new_checked(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < Self::MIN_HEADER_LEN {
            return Err(Error::ShortTcp);
        }
        let s = Self { data };
        let hl = s.header_len();
        if hl < Self::MIN_HEADER_LEN {
            return Err(Error::BadTcpOffset);
        }
        if hl > data.len() {
            return Err(Error::ShortTcp);
        }
        Ok(s)
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.data, field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.data, field::DST_PORT.start)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.data, field::SEQ_NUM.start)
    }

    /// Acknowledgment number.
    pub fn ack(&self) -> u32 {
        be32(self.data, field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(u8_at(self.data, field::DATA_OFF) >> 4) * 4
    }

    /// Flags byte (FIN..CWR).
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(u8_at(self.data, field::FLAGS))
    }

    /// Receive window (unscaled).
    pub fn window(&self) -> u16 {
        be16(self.data, field::WIN_SIZE.start)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.data, field::CHECKSUM.start)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        be16(self.data, field::URGENT.start)
    }

    /// Options bytes.
    pub fn options(&self) -> &'a [u8] {
        clamp(self.data, Self::MIN_HEADER_LEN, self.header_len())
    }

    /// Everything after the header that is in the view (callers bound the view by IP length).
    pub fn payload(&self) -> &'a [u8] {
        tail(self.data, self.header_len())
    }

    /// The whole segment as viewed (header and payload).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SYN-ACK from the AWS capture: 22 -> 37180, data offset 10 (MSS, SACK-perm, TS, WS).
    pub(crate) const AWS_TCP: [u8; 40] = [
        0x00, 0x16, 0x91, 0x3c, 0x6e, 0xaf, 0xc4, 0x95, 0xe7, 0xd8, 0xab, 0x46, 0xa0, 0x12, 0x68,
        0xdf, 0x55, 0x57, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x32, 0x87,
        0x05, 0xac, 0xb3, 0x41, 0xf4, 0xdb, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn fields_match_etherparse() {
        let s = TcpSegment::new_checked(&AWS_TCP).unwrap();
        let o = etherparse::TcpHeaderSlice::from_slice(&AWS_TCP).unwrap();
        assert_eq!(s.src_port(), o.source_port());
        assert_eq!(s.dst_port(), o.destination_port());
        assert_eq!(s.seq(), o.sequence_number());
        assert_eq!(s.ack(), o.acknowledgment_number());
        assert_eq!(s.header_len(), usize::from(o.data_offset()) * 4);
        assert_eq!(s.flags().syn(), o.syn());
        assert_eq!(s.flags().ack(), o.ack());
        assert_eq!(s.flags().fin(), o.fin());
        assert_eq!(s.flags().rst(), o.rst());
        assert_eq!(s.window(), o.window_size());
        assert_eq!(s.checksum(), o.checksum());
        assert_eq!(s.urgent(), o.urgent_pointer());
        assert_eq!(s.options(), o.options());
        assert!(s.payload().is_empty());
    }

    #[test]
    fn every_truncation_rejected() {
        for n in 0..AWS_TCP.len() {
            assert_eq!(
                TcpSegment::new_checked(&AWS_TCP[..n]).unwrap_err(),
                Error::ShortTcp
            );
        }
    }

    #[test]
    fn bad_offset() {
        let mut b = AWS_TCP;
        b[12] = 0x40;
        assert_eq!(
            TcpSegment::new_checked(&b).unwrap_err(),
            Error::BadTcpOffset
        );
    }
}
