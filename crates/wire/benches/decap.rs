//! Decapsulation throughput on a realistic AWS-style mix; prints Mpps.
//!
//! Run: `cargo bench -p vxtap-wire --bench decap` (optionally `-- SECONDS`).
//! Plain std::time rather than criterion: one number per run is what we compare, and the
//! workspace avoids criterion's dependency weight.

use etherparse::PacketBuilder;
use std::hint::black_box;
use std::time::{Duration, Instant};
use vxtap_wire::encap::wrap_vxlan;
use vxtap_wire::{Decapsulator, Decoded, LinkType, OuterParams};

/// Builds ~1k frames: bulk 1448-byte segments, small requests and ACKs, some cut by a mirror
/// packet length, a few on 802.1Q outer VLANs, from several flows.
fn workload() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let outer = OuterParams::default();
    let body = vec![b'b'; 1448];
    for i in 0..1024u32 {
        let (payload_len, truncate) = match i % 10 {
            0..=4 => (1448, None),
            5 => (1448, Some(128)),
            6 => (300, None),
            7 => (120, None),
            _ => (0, None),
        };
        let mut inner = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, (i % 7) as u8, 1], [10, 1, 0, 2], 64)
            .tcp(40_000 + (i % 13) as u16, 80, i.wrapping_mul(1448), 65535)
            .ack(1)
            .write(&mut inner, &body[..payload_len])
            .expect("build inner frame");
        let mut out = Vec::new();
        wrap_vxlan(&inner, 5_569_041, &outer, truncate, &mut out).expect("wrap");
        if i % 16 == 3 {
            out.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        }
        frames.push(out);
    }
    frames
}

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    let frames = workload();
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let mut d = Decapsulator::default();
    let mut payload = 0u64;
    let mut packets = 0u64;
    // Warm-up so caches and branch predictors see the mix.
    for f in &frames {
        black_box(d.decode(LinkType::Ethernet, 0, f));
    }
    let start = Instant::now();
    let budget = Duration::from_secs_f64(secs);
    while start.elapsed() < budget {
        for _ in 0..64 {
            for f in &frames {
                if let Decoded::Segment { segment, .. } =
                    d.decode(LinkType::Ethernet, packets, black_box(f))
                {
                    payload += segment.payload.len() as u64 + u64::from(segment.wire_payload_len);
                }
                packets += 1;
            }
        }
    }
    let el = start.elapsed().as_secs_f64();
    let stats = d.stats();
    assert_eq!(stats.rejected_total(), 0, "workload must decode cleanly");
    black_box(payload);
    println!(
        "decap: {packets} packets in {el:.2}s = {:.2} Mpps, {:.2} Gbit/s of frames (mix of {} frames, avg {} B)",
        packets as f64 / el / 1e6,
        (bytes as f64 / frames.len() as f64) * 8.0 * packets as f64 / el / 1e9,
        frames.len(),
        bytes / frames.len(),
    );
}
