//! Reading pcap and pcapng captures from files, stdin or memory.
//!
//! Plain files are memory-mapped and packets are slices of the map. Gzip input and pipes are
//! streamed through one bounded, reused buffer. Either way a packet borrows the reader, so the
//! API is a lending `next_packet` rather than `Iterator`, and nothing is allocated per packet.
//!
//! Classic pcap is parsed by hand: a record is a fixed 16-byte header, and walking it directly
//! over the map costs a few nanoseconds per packet where pcap-parser's generic nom path and its
//! buffered reader would add copies and error plumbing. pcapng uses pcap-parser for the rare,
//! option-heavy blocks (section and interface headers); packet blocks (EPB, SPB, PB) are
//! hand-parsed too because pcap-parser collects their options into a `Vec` (an allocation per
//! packet whenever a packet carries a comment, which our own writer does).
//!
//! Layout: `source` holds the inputs (map, in-memory buffer, gzip/pipe stream, page release,
//! prefetch), `pcap` and `pcapng` the parsers over the bytes a source exposes; this file holds
//! the reader itself, format detection and the dispatch between them.

use std::path::Path;
use std::sync::Arc;

use crate::error::{CaptureError, Damage};

mod pcap;
mod pcapng;
mod source;

use pcap::{rd16, rd32, PcapFmt};
use pcapng::{Iface, SHB};
pub use source::{prefetch_lines, prefetch_value, SharedMap};
use source::{Source, RELEASE_STEP};

/// libpcap's MAXIMUM_SNAPLEN: the largest record any ordinary capture holds.
pub const MAX_SNAPLEN: u32 = 262_144;

/// Largest pcapng block (and pcap record, whatever its header's snaplen says) accepted; bounds
/// the streaming buffer, so a garbage length is reported as damage instead of allocated.
pub const MAX_BLOCK: u32 = 16 << 20;

/// One captured packet, borrowed from the reader until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Capture time in nanoseconds since the Unix epoch (0 for pcapng Simple Packet Blocks).
    pub ts_ns: u64,
    /// The pcap `LINKTYPE_*` number of `data` (1 = Ethernet, 0 = BSD loopback, 113 = SLL ...).
    pub linktype: u32,
    /// The captured bytes, possibly shorter than `orig_len`.
    pub data: &'a [u8],
    /// The packet's length on the wire.
    pub orig_len: u32,
    /// pcapng interface id within its section (0 for classic pcap).
    pub interface: u32,
    /// The pcapng packet's first `opt_comment` (how `vxtap decap` keeps the VNI: `vni=123`).
    pub comment: Option<&'a [u8]>,
}

/// The container format detected from the magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Classic libpcap format.
    Pcap {
        /// Timestamps have nanosecond (not microsecond) fractions.
        nanos: bool,
        /// The file was written big-endian relative to its magic as read little-endian.
        big_endian: bool,
    },
    /// pcapng (sections may differ in byte order).
    Pcapng,
}

/// Bytes consumed so far and the total, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes consumed (compressed bytes for gzip input).
    pub done: u64,
    /// Input size when known (not for pipes).
    pub total: Option<u64>,
}

enum State {
    Pcap(PcapFmt),
    Pcapng { be: bool, ifaces: Vec<Iface> },
    Done,
}

/// Reads packets from a pcap or pcapng capture without allocating per packet.
///
/// After the end or after an error `next_packet` returns `Ok(None)` forever.
pub struct CaptureReader {
    path: Arc<Path>,
    src: Source,
    /// Window of unread bytes in `src.bytes()`.
    start: usize,
    end: usize,
    state: State,
    format: FileFormat,
    /// Bytes of a mapped file already handed back to the kernel (see `release_to`).
    released: usize,
    /// Pages are released only through `release_before`.
    manual_release: bool,
}

impl CaptureReader {
    /// The input's name, as used in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detected container format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    fn truncated(&mut self, what: &'static str, needed: usize) -> CaptureError {
        self.state = State::Done;
        CaptureError::Truncated {
            path: self.path.clone(),
            offset: self.position(),
            what,
            needed: needed as u64,
            available: (self.end - self.start) as u64,
        }
    }

    fn corrupt(&mut self, what: &'static str, damage: Damage) -> CaptureError {
        self.state = State::Done;
        CaptureError::Corrupt {
            path: self.path.clone(),
            offset: self.position(),
            what,
            damage,
        }
    }

    fn read_file_header(&mut self) -> Result<(), CaptureError> {
        if !self.fill(4)? {
            let magic = self.src.bytes()[self.start..self.end].to_vec();
            return Err(CaptureError::UnknownFormat {
                path: self.path.clone(),
                magic,
            });
        }
        let b = &self.src.bytes()[self.start..];
        let magic = rd32(b, 0, false);
        let (swapped, nanos, hdr_len) = match magic {
            0xA1B2_C3D4 => (false, false, 16),
            0xD4C3_B2A1 => (true, false, 16),
            0xA1B2_3C4D => (false, true, 16),
            0x4D3C_B2A1 => (true, true, 16),
            // Kuznetzov's patched libpcap: 8 extra bytes (ifindex, protocol, type) per record.
            0xA1B2_CD34 => (false, false, 24),
            0x34CD_B2A1 => (true, false, 24),
            SHB => {
                self.format = FileFormat::Pcapng;
                self.state = State::Pcapng {
                    be: false,
                    ifaces: Vec::new(),
                };
                if !self.fill(12)? {
                    return Err(self.truncated("pcapng section header", 12));
                }
                return Ok(());
            }
            _ => {
                let magic = b[..4].to_vec();
                return Err(CaptureError::UnknownFormat {
                    path: self.path.clone(),
                    magic,
                });
            }
        };
        if !self.fill(24)? {
            return Err(self.truncated("pcap file header", 24));
        }
        let b = &self.src.bytes()[self.start..];
        let (major, minor) = (rd16(b, 4, swapped), rd16(b, 6, swapped));
        let snaplen = rd32(b, 16, swapped);
        // libpcap keeps FCS-length flags in the top bits of the link type.
        let linktype = rd32(b, 20, swapped) & 0x03FF_FFFF;
        if major != 2 {
            return Err(self.corrupt(
                "pcap file header",
                Damage::UnsupportedVersion { major, minor },
            ));
        }
        self.format = FileFormat::Pcap {
            nanos,
            big_endian: swapped,
        };
        let max_len = MAX_SNAPLEN.max(snaplen.min(MAX_BLOCK));
        self.state = State::Pcap(PcapFmt {
            swapped,
            nanos,
            linktype,
            hdr_len,
            max_len,
        });
        self.start += 24;
        Ok(())
    }

    /// The next packet, `Ok(None)` at the clean end, or the damage that stops the file.
    #[inline]
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        if self.start >= self.released + RELEASE_STEP && !self.manual_release {
            self.release_to(self.start);
        }
        match self.state {
            State::Pcap(p) => self.next_pcap(p),
            State::Pcapng { .. } => self.next_pcapng(),
            State::Done => Ok(None),
        }
    }

    /// Calls `f` for every packet; returns the packet count, or the error that ended the file.
    pub fn for_each(&mut self, mut f: impl FnMut(&Packet<'_>)) -> Result<u64, CaptureError> {
        let mut n = 0;
        while let Some(p) = self.next_packet()? {
            f(&p);
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::pcapng::{BOM, EPB, IDB, SPB};
    use super::*;
    use proptest::prelude::*;
    use std::io::{self, Read};

    /// Hand-built pcapng blocks in either byte order.
    struct Ng {
        be: bool,
        out: Vec<u8>,
    }

    impl Ng {
        fn u16(&self, v: u16) -> [u8; 2] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn u32(&self, v: u32) -> [u8; 4] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn block(&mut self, btype: u32, body: &[u8]) {
            let len = 12 + body.len() as u32;
            let (t, l) = (self.u32(btype), self.u32(len));
            self.out.extend_from_slice(&t);
            self.out.extend_from_slice(&l);
            self.out.extend_from_slice(body);
            self.out.extend_from_slice(&l);
        }
        fn shb(&mut self, be: bool) {
            self.be = be;
            let mut b = self.u32(BOM).to_vec();
            b.extend_from_slice(&self.u16(1));
            b.extend_from_slice(&self.u16(0));
            b.extend_from_slice(&[0xFF; 8]);
            self.block(SHB, &b);
        }
        fn idb(&mut self, linktype: u16, tsresol: Option<u8>, tsoffset: Option<i64>) {
            let mut b = self.u16(linktype).to_vec();
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&self.u32(0));
            if let Some(r) = tsresol {
                b.extend_from_slice(&self.u16(9));
                b.extend_from_slice(&self.u16(1));
                b.extend_from_slice(&[r, 0, 0, 0]);
            }
            if let Some(o) = tsoffset {
                b.extend_from_slice(&self.u16(14));
                b.extend_from_slice(&self.u16(8));
                let v = if self.be {
                    o.to_be_bytes()
                } else {
                    o.to_le_bytes()
                };
                b.extend_from_slice(&v);
            }
            b.extend_from_slice(&[0; 4]);
            self.block(IDB, &b);
        }
        fn epb(&mut self, iface: u32, ts: u64, data: &[u8]) {
            let mut b = self.u32(iface).to_vec();
            b.extend_from_slice(&self.u32((ts >> 32) as u32));
            b.extend_from_slice(&self.u32(ts as u32));
            b.extend_from_slice(&self.u32(data.len() as u32));
            b.extend_from_slice(&self.u32(data.len() as u32));
            b.extend_from_slice(data);
            b.resize(b.len() + (4 - data.len() % 4) % 4, 0);
            self.block(EPB, &b);
        }
        fn spb(&mut self, data: &[u8]) {
            let mut b = self.u32(data.len() as u32).to_vec();
            b.extend_from_slice(data);
            b.resize(b.len() + (4 - data.len() % 4) % 4, 0);
            self.block(SPB, &b);
        }
    }

    type Got = (u64, u32, Vec<u8>, u32);

    fn collect(bytes: Vec<u8>) -> (Vec<Got>, Option<CaptureError>) {
        let mut r = CaptureReader::from_bytes("t.pcapng", bytes).expect("header");
        let mut v = Vec::new();
        loop {
            match r.next_packet() {
                Ok(Some(p)) => v.push((p.ts_ns, p.linktype, p.data.to_vec(), p.interface)),
                Ok(None) => return (v, None),
                Err(e) => return (v, Some(e)),
            }
        }
    }

    #[test]
    fn pcapng_sections_of_both_byte_orders_and_resolutions() {
        let mut ng = Ng {
            be: false,
            out: Vec::new(),
        };
        ng.shb(false);
        ng.idb(1, None, None); // default: microseconds
        ng.idb(228, Some(9), Some(10)); // nanoseconds, +10 s offset
        ng.block(0x0BAD, &[1, 2, 3, 4]); // unknown block: skipped
        ng.epb(0, 1_500_000, b"le-us");
        ng.epb(1, 7, b"le-ns");
        ng.shb(true);
        ng.idb(113, Some(0x80 | 10), None); // 2^-10 s units
        ng.idb(1, Some(3), None); // milliseconds
        ng.epb(0, 1024 * 3 + 512, b"be-pow2");
        ng.epb(1, 42, b"be-ms");
        ng.spb(b"simple");
        let (got, err) = collect(ng.out);
        assert!(err.is_none(), "{err:?}");
        let want: Vec<Got> = vec![
            (1_500_000_000, 1, b"le-us".to_vec(), 0),
            (10_000_000_007, 228, b"le-ns".to_vec(), 1),
            (3_500_000_000, 113, b"be-pow2".to_vec(), 0),
            (42_000_000, 1, b"be-ms".to_vec(), 1),
            (0, 113, b"simple".to_vec(), 0),
        ];
        assert_eq!(got, want);
    }

    /// Hands out at most `step` bytes per read, to exercise every refill boundary.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn streaming_in_tiny_reads_matches_memory() {
        let mut ng = Ng {
            be: false,
            out: Vec::new(),
        };
        ng.shb(true);
        ng.idb(1, Some(9), None);
        for i in 0..50u8 {
            ng.epb(0, i as u64, &vec![i; i as usize * 37]);
        }
        let mut pcap = crate::PcapWriter::new(Vec::new(), 1, crate::TsResolution::Nano).unwrap();
        for i in 0..50u8 {
            pcap.write_packet(i as u64, &vec![i; i as usize * 37], 5000)
                .unwrap();
        }
        for bytes in [ng.out, pcap.into_inner().unwrap()] {
            let want = collect(bytes.clone());
            assert!(want.1.is_none());
            assert_eq!(want.0.len(), 50);
            for step in [1, 3, 7, 4096] {
                let t = Trickle {
                    data: bytes.clone(),
                    at: 0,
                    step,
                };
                let mut r = CaptureReader::from_reader("trickle", t).unwrap();
                let mut got = Vec::new();
                while let Some(p) = r.next_packet().unwrap() {
                    got.push((p.ts_ns, p.linktype, p.data.to_vec(), p.interface));
                }
                assert_eq!(got, want.0, "step {step}");
                assert_eq!(r.position(), bytes.len() as u64);
            }
            // gzip detection must survive a pipe that hands out one byte at a time.
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            io::Write::write_all(&mut gz, &bytes).unwrap();
            let gz = gz.finish().unwrap();
            for step in [1, 4096] {
                let t = Trickle {
                    data: gz.clone(),
                    at: 0,
                    step,
                };
                let mut r = CaptureReader::from_reader("trickle.gz", t).unwrap();
                let mut n = 0;
                while r.next_packet().unwrap().is_some() {
                    n += 1;
                }
                assert_eq!(n, 50);
                assert_eq!(r.progress().done, gz.len() as u64);
            }
        }
    }

    #[test]
    fn pcapng_packet_for_undeclared_interface_is_damage() {
        let mut ng = Ng {
            be: false,
            out: Vec::new(),
        };
        ng.shb(false);
        ng.idb(1, None, None);
        ng.epb(0, 1, b"ok");
        let at = ng.out.len() as u64;
        ng.epb(3, 1, b"bad");
        let (got, err) = collect(ng.out);
        assert_eq!(got.len(), 1);
        match err {
            Some(CaptureError::Corrupt { offset, damage, .. }) => {
                assert_eq!(offset, at);
                assert_eq!(damage, Damage::UnknownInterface { id: 3, declared: 1 });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pcapng_truncated_block_reports_its_offset() {
        let mut ng = Ng {
            be: true,
            out: Vec::new(),
        };
        ng.shb(true);
        ng.idb(1, None, None);
        ng.epb(0, 1, b"ok");
        let at = ng.out.len();
        ng.epb(0, 2, &[7; 100]);
        for cut in [at + 1, at + 8, at + 50, ng.out.len() - 1] {
            let (got, err) = collect(ng.out[..cut].to_vec());
            assert_eq!(got.len(), 1);
            let err = err.expect("error");
            assert!(matches!(err, CaptureError::Truncated { .. }), "{err}");
            assert_eq!(err.offset(), Some(at as u64));
        }
    }

    fn drain(r: &mut CaptureReader) {
        // A bounded loop: every call consumes input or ends the reader.
        for _ in 0..100_000 {
            match r.next_packet() {
                Ok(Some(p)) => assert!(p.data.len() <= MAX_BLOCK as usize),
                Ok(None) | Err(_) => return,
            }
        }
        panic!("reader did not terminate");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(mut r) = CaptureReader::from_bytes("rand", bytes.clone()) {
                drain(&mut r);
            }
            if let Ok(mut r) = CaptureReader::from_reader("rand", io::Cursor::new(bytes)) {
                drain(&mut r);
            }
        }

        #[test]
        fn mutated_headers_never_panic(
            pcapng in any::<bool>(),
            tail in proptest::collection::vec(any::<u8>(), 0..1024),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        ) {
            // Start from a valid header so the fuzzing reaches the record/block parsers.
            let mut bytes = if pcapng {
                let mut ng = Ng { be: false, out: Vec::new() };
                ng.shb(false);
                ng.idb(1, Some(9), None);
                ng.epb(0, 5, b"hello");
                ng.out
            } else {
                let mut b = vec![0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0];
                b.extend_from_slice(&[0; 8]);
                b.extend_from_slice(&65535u32.to_le_bytes());
                b.extend_from_slice(&1u32.to_le_bytes());
                b
            };
            bytes.extend_from_slice(&tail);
            for (at, v) in flips {
                let n = bytes.len();
                bytes[at % n] = v;
            }
            if let Ok(mut r) = CaptureReader::from_bytes("mut", bytes.clone()) {
                drain(&mut r);
            }
            if let Ok(mut r) = CaptureReader::from_reader("mut", io::Cursor::new(bytes)) {
                drain(&mut r);
            }
        }
    }
}
