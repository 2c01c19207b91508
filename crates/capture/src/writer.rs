//! Writing classic pcap and pcapng captures.

use std::io::{self, BufWriter, Write};

use crate::error::CaptureError;
use crate::reader::{Packet, MAX_SNAPLEN};

/// Timestamp resolution of a written capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsResolution {
    /// Microseconds (the classic pcap default; what every tool reads).
    Micro,
    /// Nanoseconds.
    Nano,
}

impl TsResolution {
    fn split(self, ts_ns: u64) -> (u64, u64) {
        let secs = ts_ns / 1_000_000_000;
        let frac = ts_ns % 1_000_000_000;
        match self {
            TsResolution::Micro => (secs, frac / 1000),
            TsResolution::Nano => (secs, frac),
        }
    }

    fn units(self, ts_ns: u64) -> u64 {
        match self {
            TsResolution::Micro => ts_ns / 1000,
            TsResolution::Nano => ts_ns,
        }
    }
}

const WRITE_BUF: usize = 256 * 1024;
const ZEROS: [u8; 4] = [0; 4];

fn werr(e: io::Error) -> CaptureError {
    CaptureError::Write(e)
}

/// Writes a little-endian classic pcap with one link type and snaplen 262144.
pub struct PcapWriter<W: Write> {
    out: BufWriter<W>,
    res: TsResolution,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header; `linktype` is a pcap `LINKTYPE_*` number.
    pub fn new(out: W, linktype: u32, res: TsResolution) -> Result<Self, CaptureError> {
        let mut out = BufWriter::with_capacity(WRITE_BUF, out);
        let magic: u32 = match res {
            TsResolution::Micro => 0xA1B2_C3D4,
            TsResolution::Nano => 0xA1B2_3C4D,
        };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&magic.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&MAX_SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&linktype.to_le_bytes());
        out.write_all(&h).map_err(werr)?;
        Ok(PcapWriter { out, res })
    }

    /// Writes one record; data beyond the snaplen is cut (the original length is kept).
    pub fn write_packet(
        &mut self,
        ts_ns: u64,
        data: &[u8],
        orig_len: u32,
    ) -> Result<(), CaptureError> {
        let caplen = data.len().min(MAX_SNAPLEN as usize);
        let (secs, frac) = self.res.split(ts_ns);
        let secs =
            u32::try_from(secs).map_err(|_| CaptureError::Unwritable("timestamp after 2106"))?;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&(frac as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(caplen as u32).to_le_bytes());
        self.out.write_all(&h).map_err(werr)?;
        self.out.write_all(&data[..caplen]).map_err(werr)
    }

    /// Writes a packet as read from another capture (its link type is not checked).
    pub fn write(&mut self, p: &Packet<'_>) -> Result<(), CaptureError> {
        self.write_packet(p.ts_ns, p.data, p.orig_len)
    }

    /// Flushes buffered records to the underlying writer.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        self.out.flush().map_err(werr)
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(self) -> Result<W, CaptureError> {
        self.out.into_inner().map_err(|e| werr(e.into_error()))
    }
}

struct NgIface {
    res: TsResolution,
    snaplen: u32,
}

/// Writes a little-endian pcapng with any number of interfaces and optional packet comments.
pub struct PcapngWriter<W: Write> {
    out: BufWriter<W>,
    ifaces: Vec<NgIface>,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the Section Header Block.
    pub fn new(out: W) -> Result<Self, CaptureError> {
        let mut out = BufWriter::with_capacity(WRITE_BUF, out);
        let app = b"vxtap";
        // SHB: type, len, BOM, version 1.0, section length -1, shb_userappl, end of options.
        let opt_len = 4 + app.len() + pad4(app.len()) + 4;
        let len = (28 + opt_len) as u32;
        let mut b = Vec::with_capacity(len as usize);
        b.extend_from_slice(&0x0A0D_0D0Au32.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&(-1i64).to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&(app.len() as u16).to_le_bytes());
        b.extend_from_slice(app);
        b.extend_from_slice(&ZEROS[..pad4(app.len())]);
        b.extend_from_slice(&ZEROS);
        b.extend_from_slice(&len.to_le_bytes());
        out.write_all(&b).map_err(werr)?;
        Ok(PcapngWriter {
            out,
            ifaces: Vec::new(),
        })
    }

    /// Declares an interface (Interface Description Block); returns its id for `write_packet`.
    pub fn add_interface(&mut self, linktype: u32, res: TsResolution) -> Result<u32, CaptureError> {
        let linktype = u16::try_from(linktype)
            .map_err(|_| CaptureError::Unwritable("pcapng link type > 65535"))?;
        let tsresol: u8 = match res {
            TsResolution::Micro => 6,
            TsResolution::Nano => 9,
        };
        // IDB with if_tsresol (code 9, 1 byte + 3 padding) and end of options: 32 bytes.
        let len = 32u32;
        let mut b = [0u8; 32];
        b[0..4].copy_from_slice(&1u32.to_le_bytes());
        b[4..8].copy_from_slice(&len.to_le_bytes());
        b[8..10].copy_from_slice(&linktype.to_le_bytes());
        b[12..16].copy_from_slice(&MAX_SNAPLEN.to_le_bytes());
        b[16..18].copy_from_slice(&9u16.to_le_bytes());
        b[18..20].copy_from_slice(&1u16.to_le_bytes());
        b[20] = tsresol;
        b[28..32].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&b).map_err(werr)?;
        self.ifaces.push(NgIface {
            res,
            snaplen: MAX_SNAPLEN,
        });
        Ok(self.ifaces.len() as u32 - 1)
    }

    /// Writes an Enhanced Packet Block, with `comment` as an `opt_comment` (e.g. `vni=123`).
    pub fn write_packet(
        &mut self,
        interface: u32,
        ts_ns: u64,
        data: &[u8],
        orig_len: u32,
        comment: Option<&str>,
    ) -> Result<(), CaptureError> {
        let iface = self
            .ifaces
            .get(interface as usize)
            .ok_or(CaptureError::Unwritable(
                "packet for an undeclared interface",
            ))?;
        let caplen = data.len().min(iface.snaplen as usize);
        let comment = comment.map(str::as_bytes).filter(|c| !c.is_empty());
        let opts_len = match comment {
            Some(c) => {
                if c.len() > u16::MAX as usize {
                    return Err(CaptureError::Unwritable("comment longer than 65535 bytes"));
                }
                4 + c.len() + pad4(c.len()) + 4
            }
            None => 0,
        };
        let len = 32 + caplen + pad4(caplen) + opts_len;
        let len = len as u32;
        let ts = iface.res.units(ts_ns);
        let mut h = [0u8; 28];
        h[0..4].copy_from_slice(&6u32.to_le_bytes());
        h[4..8].copy_from_slice(&len.to_le_bytes());
        h[8..12].copy_from_slice(&interface.to_le_bytes());
        h[12..16].copy_from_slice(&((ts >> 32) as u32).to_le_bytes());
        h[16..20].copy_from_slice(&(ts as u32).to_le_bytes());
        h[20..24].copy_from_slice(&(caplen as u32).to_le_bytes());
        h[24..28].copy_from_slice(&orig_len.max(caplen as u32).to_le_bytes());
        let o = &mut self.out;
        o.write_all(&h).map_err(werr)?;
        o.write_all(&data[..caplen]).map_err(werr)?;
        o.write_all(&ZEROS[..pad4(caplen)]).map_err(werr)?;
        if let Some(c) = comment {
            o.write_all(&1u16.to_le_bytes()).map_err(werr)?;
            o.write_all(&(c.len() as u16).to_le_bytes()).map_err(werr)?;
            o.write_all(c).map_err(werr)?;
            o.write_all(&ZEROS[..pad4(c.len())]).map_err(werr)?;
            o.write_all(&ZEROS).map_err(werr)?;
        }
        o.write_all(&len.to_le_bytes()).map_err(werr)
    }

    /// Flushes buffered blocks to the underlying writer.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        self.out.flush().map_err(werr)
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(self) -> Result<W, CaptureError> {
        self.out.into_inner().map_err(|e| werr(e.into_error()))
    }
}
