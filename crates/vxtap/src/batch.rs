//! Batches of decoded segments handed from a reading/receiving thread to a worker.
//!
//! A batch owns one byte arena for all payloads and a vector of fixed-size headers, so moving a
//! batch across a channel is two pointers and filling it allocates nothing once its vectors have
//! grown to their working size; emptied batches travel back to the producer to be reused.

use std::net::IpAddr;
use vxtap_wire::{Segment, TcpFlags};

/// Segment fields without the borrowed payload; the payload lives in the batch arena.
#[derive(Clone, Copy, Debug)]
struct SegmentHeader {
    ts_ns: u64,
    vni: Option<u32>,
    mirror_source: Option<IpAddr>,
    src_ip: IpAddr,
    dst_ip: IpAddr,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload_start: u32,
    payload_len: u32,
    wire_payload_len: u32,
    /// Index of the input frame the segment came from (replay's output order key).
    frame: u64,
}

/// A reusable batch of owned segments.
#[derive(Debug, Default)]
pub struct SegmentBatch {
    headers: Vec<SegmentHeader>,
    arena: Vec<u8>,
    /// Replay: the reader had read this many frames when it handed the batch over; no later
    /// batch holds a segment from those frames.
    pub upto: u64,
}

impl SegmentBatch {
    /// An empty batch with room for `segments` segments and `bytes` payload bytes.
    pub fn with_capacity(segments: usize, bytes: usize) -> Self {
        SegmentBatch {
            headers: Vec::with_capacity(segments),
            arena: Vec::with_capacity(bytes),
            upto: 0,
        }
    }

    /// Copies `seg` into the batch.
    pub fn push(&mut self, seg: &Segment<'_>) {
        self.push_framed(seg, 0);
    }

    /// Copies `seg`, which came from input frame `frame`, into the batch.
    pub fn push_framed(&mut self, seg: &Segment<'_>, frame: u64) {
        let payload_start = self.arena.len() as u32;
        self.arena.extend_from_slice(seg.payload);
        self.headers.push(SegmentHeader {
            ts_ns: seg.ts_ns,
            vni: seg.vni,
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
        self.upto = 0;
    }

    /// The segments, borrowing their payloads from the arena.
    pub fn iter(&self) -> impl Iterator<Item = Segment<'_>> {
        self.iter_framed().map(|(_, seg)| seg)
    }

    /// The segments with the index of the frame each came from.
    pub fn iter_framed(&self) -> impl Iterator<Item = (u64, Segment<'_>)> {
        self.headers.iter().map(move |h| {
            let start = h.payload_start as usize;
            let end = start + h.payload_len as usize;
            let seg = Segment {
                ts_ns: h.ts_ns,
                vni: h.vni,
                mirror_source: h.mirror_source,
                src_ip: h.src_ip,
                dst_ip: h.dst_ip,
                src_port: h.src_port,
                dst_port: h.dst_port,
                seq: h.seq,
                ack: h.ack,
                flags: TcpFlags(h.flags),
                window: h.window,
                payload: self.arena.get(start..end).unwrap_or(&[]),
                wire_payload_len: h.wire_payload_len,
            };
            (h.frame, seg)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let seg = Segment {
            ts_ns: 42,
            vni: Some(7),
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
}
