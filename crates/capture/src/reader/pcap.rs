//! Classic pcap records over the input's bytes: a fixed 16-byte header per record, parsed by
//! hand (a few nanoseconds per packet over the map).

use super::source::prefetch_ahead;
use super::{CaptureReader, Packet, State};
use crate::error::{CaptureError, Damage};

#[derive(Debug, Clone, Copy)]
pub(super) struct PcapFmt {
    pub(super) swapped: bool,
    pub(super) nanos: bool,
    pub(super) linktype: u32,
    pub(super) hdr_len: usize,
    pub(super) max_len: u32,
}

#[inline(always)]
pub(super) fn rd16(b: &[u8], at: usize, be: bool) -> u16 {
    match b.get(at..at + 2).and_then(|s| <[u8; 2]>::try_from(s).ok()) {
        Some(a) if be => u16::from_be_bytes(a),
        Some(a) => u16::from_le_bytes(a),
        None => 0,
    }
}

#[inline(always)]
pub(super) fn rd32(b: &[u8], at: usize, be: bool) -> u32 {
    match b.get(at..at + 4).and_then(|s| <[u8; 4]>::try_from(s).ok()) {
        Some(a) if be => u32::from_be_bytes(a),
        Some(a) => u32::from_le_bytes(a),
        None => 0,
    }
}

impl CaptureReader {
    #[inline(always)]
    pub(super) fn next_pcap(&mut self, p: PcapFmt) -> Result<Option<Packet<'_>>, CaptureError> {
        let hl = p.hdr_len;
        if !self.fill(hl)? {
            if self.start == self.end {
                self.state = State::Done;
                return Ok(None);
            }
            return Err(self.truncated("pcap record header", hl));
        }
        let b = &self.src.bytes()[self.start..self.end];
        let sec = rd32(b, 0, p.swapped) as u64;
        let frac = rd32(b, 4, p.swapped) as u64;
        let incl = rd32(b, 8, p.swapped);
        let orig = rd32(b, 12, p.swapped);
        if incl > p.max_len {
            let damage = Damage::RecordTooLong {
                len: incl,
                max: p.max_len,
            };
            return Err(self.corrupt("pcap record header", damage));
        }
        let total = hl + incl as usize;
        if !self.fill(total)? {
            return Err(self.truncated("pcap record", total));
        }
        let at = self.start + hl;
        self.start += total;
        let bytes = self.src.bytes();
        prefetch_ahead(bytes, self.start);
        let ts_ns = sec * 1_000_000_000 + if p.nanos { frac } else { frac * 1000 };
        let data = bytes.get(at..at + incl as usize).unwrap_or_default();
        Ok(Some(Packet {
            ts_ns,
            linktype: p.linktype,
            data,
            orig_len: orig,
            interface: 0,
            comment: None,
        }))
    }
}
