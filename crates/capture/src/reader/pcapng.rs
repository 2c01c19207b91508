//! pcapng blocks over the input's bytes: interface descriptions (through pcap-parser, rare and
//! option-heavy) and packet blocks (EPB, SPB, PB, hand-parsed: pcap-parser would allocate their
//! options), with per-interface link types, snap lengths and timestamp resolutions.

use super::pcap::{rd16, rd32};
use super::{CaptureReader, Packet, State, MAX_BLOCK};
use crate::error::{CaptureError, Damage};
use pcap_parser::pcapng::{
    parse_interfacedescriptionblock_be, parse_interfacedescriptionblock_le,
    parse_sectionheaderblock, OptionCode,
};

/// Interfaces tracked per pcapng section; bounds memory against a flood of IDBs.
pub(super) const MAX_INTERFACES: usize = 1 << 16;

pub(super) const SHB: u32 = 0x0A0D_0D0A;

pub(super) const IDB: u32 = 1;

pub(super) const PB: u32 = 2;

pub(super) const SPB: u32 = 3;

pub(super) const EPB: u32 = 6;

pub(super) const BOM: u32 = 0x1A2B_3C4D;

/// Converts an interface's timestamp units to nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(super) enum TsConv {
    Mul(u64),
    Div(u64),
    /// Units per second that neither divide nor are divided by 10^9 (e.g. 2^-n resolutions).
    Ratio(u64),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Iface {
    pub(super) linktype: u32,
    pub(super) snaplen: u32,
    pub(super) conv: TsConv,
    pub(super) offset_ns: i128,
}

impl Iface {
    #[inline]
    pub(super) fn ts_ns(&self, ts: u64) -> u64 {
        let ns: i128 = match self.conv {
            TsConv::Mul(m) => ts as i128 * m as i128,
            TsConv::Div(d) => (ts / d) as i128,
            TsConv::Ratio(r) => (ts as i128 * 1_000_000_000) / r as i128,
        };
        (ns + self.offset_ns).clamp(0, u64::MAX as i128) as u64
    }
}

/// Range of the first `opt_comment` value within a packet block's options.
pub(super) fn find_comment(opts: &[u8], be: bool) -> Option<(usize, usize)> {
    let mut off = 0;
    while off + 4 <= opts.len() {
        let code = rd16(opts, off, be);
        let len = rd16(opts, off + 2, be) as usize;
        let start = off + 4;
        if code == 0 || start + len > opts.len() {
            return None;
        }
        if code == 1 {
            return Some((start, start + len));
        }
        off = start + len.div_ceil(4) * 4;
    }
    None
}

/// Decodes `if_tsresol` ourselves: pcap-parser 0.17 rejects every power-of-two resolution
/// because it range-checks the byte before masking off the 0x80 flag.
pub(super) fn units_per_second(tsresol: u8) -> Option<u64> {
    let exp = u32::from(tsresol & 0x7F);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(exp)
    } else {
        1u64.checked_shl(exp).filter(|_| exp < 64)
    }
}

pub(super) fn parse_idb(b: &[u8], be: bool) -> Result<Iface, Damage> {
    let parsed = if be {
        parse_interfacedescriptionblock_be(b)
    } else {
        parse_interfacedescriptionblock_le(b)
    };
    let Ok((_, idb)) = parsed else {
        return Err(Damage::BadInterfaceBlock);
    };
    let per_sec =
        units_per_second(idb.if_tsresol).ok_or(Damage::BadTimeResolution(idb.if_tsresol))?;
    let conv = if per_sec <= 1_000_000_000 && 1_000_000_000 % per_sec == 0 {
        TsConv::Mul(1_000_000_000 / per_sec)
    } else if per_sec % 1_000_000_000 == 0 {
        TsConv::Div(per_sec / 1_000_000_000)
    } else {
        TsConv::Ratio(per_sec)
    };
    // pcap-parser 0.17 decodes if_tsoffset little-endian whatever the section's byte order,
    // so read the option value here with the right one.
    let offset_s = idb
        .options
        .iter()
        .find(|o| o.code == OptionCode::IfTsoffset)
        .and_then(|o| o.value.get(..8))
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map(|a| {
            if be {
                i64::from_be_bytes(a)
            } else {
                i64::from_le_bytes(a)
            }
        })
        .unwrap_or(0);
    Ok(Iface {
        linktype: idb.linktype.0 as u32 & 0xFFFF,
        snaplen: idb.snaplen,
        conv,
        offset_ns: offset_s as i128 * 1_000_000_000,
    })
}

impl CaptureReader {
    pub(super) fn next_pcapng(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        loop {
            if !self.fill(8)? {
                if self.start == self.end {
                    self.state = State::Done;
                    return Ok(None);
                }
                return Err(self.truncated("pcapng block header", 8));
            }
            let State::Pcapng { be, .. } = self.state else {
                return Ok(None);
            };
            let b = &self.src.bytes()[self.start..self.end];
            let btype = rd32(b, 0, be);
            let be = if btype == SHB {
                if !self.fill(12)? {
                    return Err(self.truncated("pcapng section header", 12));
                }
                let b = &self.src.bytes()[self.start..self.end];
                match rd32(b, 8, false) {
                    BOM => false,
                    0x4D3C_2B1A => true,
                    _ => {
                        return Err(self.corrupt("pcapng section header", Damage::BadSectionHeader))
                    }
                }
            } else {
                be
            };
            let b = &self.src.bytes()[self.start..self.end];
            let blen = rd32(b, 4, be);
            if blen < 12 || blen & 3 != 0 || blen > MAX_BLOCK {
                return Err(self.corrupt("pcapng block", Damage::BadBlockLength { len: blen }));
            }
            let len = blen as usize;
            if !self.fill(len)? {
                return Err(self.truncated("pcapng block", len));
            }
            let b = &self.src.bytes()[self.start..self.start + len];
            let last = rd32(b, len - 4, be);
            if last != blen {
                let damage = Damage::LengthMismatch { first: blen, last };
                return Err(self.corrupt("pcapng block", damage));
            }
            match btype {
                EPB | PB => {
                    if blen < 32 {
                        let d = Damage::BadBlockLength { len: blen };
                        return Err(self.corrupt("pcapng packet block", d));
                    }
                    let (if_id, ts_hi, ts_lo, caplen, orig) = if btype == EPB {
                        (
                            rd32(b, 8, be),
                            rd32(b, 12, be),
                            rd32(b, 16, be),
                            rd32(b, 20, be),
                            rd32(b, 24, be),
                        )
                    } else {
                        // Obsolete Packet Block: 16-bit interface id, then a drops count.
                        let id = rd16(b, 8, be) as u32;
                        (
                            id,
                            rd32(b, 12, be),
                            rd32(b, 16, be),
                            rd32(b, 20, be),
                            rd32(b, 24, be),
                        )
                    };
                    if caplen > blen - 32 {
                        let d = Damage::PacketOverrunsBlock {
                            caplen,
                            block_len: blen,
                        };
                        return Err(self.corrupt("pcapng packet block", d));
                    }
                    let iface = match self.iface(if_id) {
                        Ok(i) => i,
                        Err(d) => return Err(self.corrupt("pcapng packet block", d)),
                    };
                    let at = self.start + 28;
                    // Options follow the padded data; only blocks that have any pay for the walk.
                    let opts_at = 28 + (caplen as usize).div_ceil(4) * 4;
                    let comment = match b.get(opts_at..len - 4) {
                        Some(opts) if !opts.is_empty() => find_comment(opts, be)
                            .map(|(s, e)| (self.start + opts_at + s, self.start + opts_at + e)),
                        _ => None,
                    };
                    self.start += len;
                    let ts = ((ts_hi as u64) << 32) | ts_lo as u64;
                    let bytes = self.src.bytes();
                    let data = bytes.get(at..at + caplen as usize).unwrap_or_default();
                    return Ok(Some(Packet {
                        ts_ns: iface.ts_ns(ts),
                        linktype: iface.linktype,
                        data,
                        orig_len: orig,
                        interface: if_id,
                        comment: comment.and_then(|(s, e)| bytes.get(s..e)),
                    }));
                }
                SPB => {
                    if blen < 16 {
                        let d = Damage::BadBlockLength { len: blen };
                        return Err(self.corrupt("pcapng simple packet block", d));
                    }
                    let orig = rd32(b, 8, be);
                    let iface = match self.iface(0) {
                        Ok(i) => i,
                        Err(d) => return Err(self.corrupt("pcapng simple packet block", d)),
                    };
                    // The SPB has no caplen: the data is min(original length, snaplen), padded.
                    let mut caplen = orig.min(blen - 16);
                    if iface.snaplen != 0 {
                        caplen = caplen.min(iface.snaplen);
                    }
                    let at = self.start + 12;
                    self.start += len;
                    let data = self
                        .src
                        .bytes()
                        .get(at..at + caplen as usize)
                        .unwrap_or_default();
                    return Ok(Some(Packet {
                        ts_ns: 0,
                        linktype: iface.linktype,
                        data,
                        orig_len: orig,
                        interface: 0,
                        comment: None,
                    }));
                }
                SHB => {
                    let ok = matches!(parse_sectionheaderblock(b),
                        Ok((_, shb)) if shb.major_version == 1);
                    if !ok {
                        return Err(self.corrupt("pcapng section header", Damage::BadSectionHeader));
                    }
                    if let State::Pcapng { be: e, ifaces } = &mut self.state {
                        *e = be;
                        ifaces.clear();
                    }
                }
                IDB => {
                    let iface = match parse_idb(b, be) {
                        Ok(i) => i,
                        Err(d) => return Err(self.corrupt("pcapng interface description", d)),
                    };
                    if let State::Pcapng { ifaces, .. } = &mut self.state {
                        if ifaces.len() >= MAX_INTERFACES {
                            let d = Damage::TooManyInterfaces;
                            return Err(self.corrupt("pcapng interface description", d));
                        }
                        ifaces.push(iface);
                    }
                }
                _ => {} // statistics, name resolution, custom, ...: not needed for packets
            }
            self.start += len;
        }
    }

    #[inline(always)]
    pub(super) fn iface(&self, id: u32) -> Result<Iface, Damage> {
        match &self.state {
            State::Pcapng { ifaces, .. } => {
                ifaces
                    .get(id as usize)
                    .copied()
                    .ok_or(Damage::UnknownInterface {
                        id,
                        declared: ifaces.len(),
                    })
            }
            _ => Err(Damage::UnknownInterface { id, declared: 0 }),
        }
    }
}
