//! Batches of decoded segments handed from a reading/receiving thread to a worker.
//!
//! A batch owns one byte arena for all payloads and a vector of fixed-size headers, so moving a
//! batch across a channel is two pointers and filling it allocates nothing once its vectors have
//! grown to their working size; emptied batches travel back to the producer to be reused.
//! Payloads that lie in a memory-mapped capture file are not copied at all: the batch keeps
//! their offsets and a handle on the mapping.

use std::net::IpAddr;
use vxtap_capture::{prefetch_lines, prefetch_value, SharedMap};
use vxtap_wire::{Segment, TcpFlags, TunnelKind};

/// Copied payload bytes a batch's arena grows to at most, past the point where its producer
/// hands it over (replay: 1 MiB), plus one largest payload: amortized doubling would otherwise
/// take it to twice that, beyond what the memory budget reserved for the queues.
pub const ARENA_MAX: usize = (1 << 20) + 64 * 1024;

/// Segment fields without the borrowed payload; the payload lives in the batch arena.
#[derive(Clone, Copy, Debug)]
struct SegmentHeader {
    ts_ns: u64,
    vni: Option<u32>,
    tunnel: TunnelKind,
    mirror_source: Option<IpAddr>,
    src_ip: IpAddr,
    dst_ip: IpAddr,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    /// Offset in the arena, or in the mapped file when `mapped`.
    payload_start: u64,
    payload_len: u32,
    mapped: bool,
    wire_payload_len: u32,
    /// Index of the input frame the segment came from (replay's output order key).
    frame: u64,
}

/// A reusable batch of owned segments.
#[derive(Debug, Default)]
pub struct SegmentBatch {
    headers: Vec<SegmentHeader>,
    arena: Vec<u8>,
    /// The file that mapped payloads lie in.
    map: Option<SharedMap>,
    /// Replay: the reader had read this many frames when it handed the batch over; no later
    /// batch holds a segment from those frames.
    pub upto: u64,
    /// Replay: the worker the batch was handed to.
    pub owner: usize,
    /// File offset of the first payload lent from the mapping (the lowest). `clear` keeps it:
    /// the reading thread takes it when the batch comes back, to know the loan has ended.
    pub lent_from: Option<u64>,
}

impl SegmentBatch {
    /// An empty batch with room for `segments` segments and `bytes` payload bytes.
    pub fn with_capacity(segments: usize, bytes: usize) -> Self {
        SegmentBatch {
            headers: Vec::with_capacity(segments),
            arena: Vec::with_capacity(bytes),
            map: None,
            upto: 0,
            owner: 0,
            lent_from: None,
        }
    }

    /// Bytes a batch allocated with [`SegmentBatch::with_capacity`]`(segments, bytes)` holds,
    /// as long as it is never filled past those capacities.
    pub fn footprint(segments: usize, bytes: usize) -> usize {
        segments * std::mem::size_of::<SegmentHeader>() + bytes
    }

    /// Copies `seg` into the batch.
    pub fn push(&mut self, seg: &Segment<'_>) {
        self.push_framed(seg, 0, None);
    }

    /// Adds `seg`, which came from input frame `frame`. A payload inside `map` is kept as an
    /// offset (one batch refers to one file); any other is copied.
    pub fn push_framed(&mut self, seg: &Segment<'_>, frame: u64, map: Option<&SharedMap>) {
        // A recycled batch's header slots were last read on the worker's core: fetching them
        // a few pushes early took 8 % off a 2-worker replay of the reference workload.
        if let Some(slot) = self.headers.spare_capacity_mut().get(4) {
            prefetch_value(slot, 2);
        }
        let in_map = map.and_then(|m| {
            if self.map.as_ref().is_some_and(|mine| !mine.same(m)) {
                return None;
            }
            let at = m.offset_of(seg.payload)?;
            if self.map.is_none() {
                self.map = Some(m.clone());
            }
            self.lent_from.get_or_insert(at as u64);
            Some(at as u64)
        });
        let (payload_start, mapped) = match in_map {
            Some(at) => (at, true),
            None => {
                let at = self.arena.len() as u64;
                let need = self.arena.len() + seg.payload.len();
                if need > self.arena.capacity() {
                    let target = (self.arena.capacity() * 2)
                        .max(need)
                        .min(ARENA_MAX.max(need));
                    self.arena.reserve_exact(target - self.arena.len());
                }
                self.arena.extend_from_slice(seg.payload);
                (at, false)
            }
        };
        self.headers.push(SegmentHeader {
            ts_ns: seg.ts_ns,
            vni: seg.vni,
            tunnel: seg.tunnel,
            mirror_source: seg.mirror_source,
            src_ip: seg.src_ip,
            dst_ip: seg.dst_ip,
            src_port: seg.src_port,
            dst_port: seg.dst_port,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags.0,
            window: seg.window,
            payload_start,
            payload_len: seg.payload.len() as u32,
            mapped,
            wire_payload_len: seg.wire_payload_len,
            frame,
        });
    }

    /// Number of segments in the batch.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// True when the batch holds no segment.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Payload bytes held.
    pub fn payload_bytes(&self) -> usize {
        self.arena.len()
    }

    /// Empties the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.headers.clear();
        self.arena.clear();
        self.map = None;
        self.upto = 0;
    }

    /// The segments, borrowing their payloads from the arena.
    pub fn iter(&self) -> impl Iterator<Item = Segment<'_>> {
        self.iter_framed().map(|(_, seg)| seg)
    }

    /// The segments with the index of the frame each came from.
    pub fn iter_framed(&self) -> impl Iterator<Item = (u64, Segment<'_>)> {
        self.headers.iter().enumerate().map(move |(i, h)| {
            // The payloads were decoded on the reading thread's core: nothing of them is in
            // this core's cache, and each starts a new stream for the hardware prefetcher.
            // Asking for a later segment's first lines now hid that (a 2-worker replay of the
            // reference workload went from 652 to 611 ms).
            if let Some(ahead) = self.headers.get(i + PREFETCH_AHEAD) {
                let at = ahead.payload_start as usize;
                prefetch_lines(self.payload_source(ahead), at, PREFETCH_LINES);
            }
            let start = h.payload_start as usize;
            let end = start + h.payload_len as usize;
            let seg = Segment {
                ts_ns: h.ts_ns,
                vni: h.vni,
                tunnel: h.tunnel,
                mirror_source: h.mirror_source,
                src_ip: h.src_ip,
                dst_ip: h.dst_ip,
                src_port: h.src_port,
                dst_port: h.dst_port,
                seq: h.seq,
                ack: h.ack,
                flags: TcpFlags(h.flags),
                window: h.window,
                payload: self.payload_source(h).get(start..end).unwrap_or(&[]),
                wire_payload_len: h.wire_payload_len,
            };
            (h.frame, seg)
        })
    }

    /// The bytes a header's payload offset points into.
    fn payload_source(&self, h: &SegmentHeader) -> &[u8] {
        match (&self.map, h.mapped) {
            (Some(m), true) => m.bytes(),
            (None, true) => &[],
            (_, false) => &self.arena,
        }
    }
}

/// How many segments ahead `iter_framed` prefetches payloads, and how many lines of each.
const PREFETCH_AHEAD: usize = 3;
const PREFETCH_LINES: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let seg = Segment {
            ts_ns: 42,
            vni: Some(7),
            tunnel: TunnelKind::Vxlan,
            mirror_source: Some("10.0.0.1".parse().unwrap()),
            src_ip: "192.0.2.1".parse().unwrap(),
            dst_ip: "2001:db8::1".parse().unwrap(),
            src_port: 40000,
            dst_port: 80,
            seq: 1,
            ack: 2,
            flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
            window: 512,
            payload: b"GET / HTTP/1.1\r\n",
            wire_payload_len: 100,
        };
        let mut b = SegmentBatch::with_capacity(4, 64);
        b.push(&seg);
        b.push(&Segment {
            payload: b"",
            ..seg
        });
        let got: Vec<_> = b.iter().collect();
        assert_eq!(got[0], seg);
        assert_eq!(got[1].payload, b"");
        assert_eq!(b.len(), 2);
        b.clear();
        assert!(b.is_empty());
    }

    /// A one-packet pcap file holding `payload`, opened: the reader and its mapping.
    fn mapped(payload: &[u8], tag: &str) -> (vxtap_capture::CaptureReader, SharedMap) {
        let path =
            std::env::temp_dir().join(format!("vxtap-batch-{}-{tag}.pcap", std::process::id()));
        let mut w = vxtap_capture::PcapWriter::new(
            std::fs::File::create(&path).unwrap(),
            1,
            vxtap_capture::TsResolution::Micro,
        )
        .unwrap();
        w.write_packet(0, payload, payload.len() as u32).unwrap();
        drop(w.into_inner().unwrap());
        let r = vxtap_capture::CaptureReader::open(&path).unwrap();
        std::fs::remove_file(&path).ok();
        let map = r.shared_map().expect("a plain file is mapped");
        (r, map)
    }

    #[test]
    fn payloads_in_a_mapped_file_are_referenced_not_copied() {
        let (mut ra, a) = mapped(b"payload in file a", "a");
        let (mut rb, b_map) = mapped(b"payload in file b", "b");
        let pa = ra.next_packet().unwrap().unwrap().data.to_vec();
        let in_a = &a.bytes()[a.bytes().len() - pa.len()..];
        assert_eq!(in_a, pa.as_slice());
        let in_b = {
            let pb = rb.next_packet().unwrap().unwrap().data.len();
            &b_map.bytes()[b_map.bytes().len() - pb..]
        };
        let seg = |payload| Segment {
            ts_ns: 1,
            vni: None,
            tunnel: TunnelKind::None,
            mirror_source: None,
            src_ip: "192.0.2.1".parse().unwrap(),
            dst_ip: "192.0.2.2".parse().unwrap(),
            src_port: 1,
            dst_port: 2,
            seq: 3,
            ack: 4,
            flags: TcpFlags(0),
            window: 5,
            payload,
            wire_payload_len: 17,
        };
        let outside = b"a payload on the heap".to_vec();
        let mut batch = SegmentBatch::with_capacity(4, 64);
        batch.push_framed(&seg(in_a), 7, Some(&a));
        // Not in the map: copied. In another file's map: copied too (one map per batch).
        batch.push_framed(&seg(&outside), 8, Some(&a));
        batch.push_framed(&seg(in_b), 9, Some(&b_map));
        assert_eq!(batch.payload_bytes(), outside.len() + in_b.len());
        drop((ra, rb));
        let got: Vec<(u64, Vec<u8>)> = batch
            .iter_framed()
            .map(|(f, s)| (f, s.payload.to_vec()))
            .collect();
        assert_eq!(
            got,
            [
                (7, b"payload in file a".to_vec()),
                (8, outside.clone()),
                (9, b"payload in file b".to_vec())
            ]
        );
        batch.clear();
        assert!(batch.map.is_none());
    }
}
