//! Developer tool: replays classic pcap files through the wire decapsulator and a flow table
//! with a counting consumer, and prints the flow counters, peak memory and CPU per segment.
//!
//! Usage: `cargo run --release -p vxtap-flow --example replay -- [--session] FILE.pcap...`

use std::time::Instant;

use vxtap_flow::*;
use vxtap_wire::{DecapConfig, Decapsulator, Decoded, LinkType};

#[derive(Default)]
struct Count {
    opens: u64,
    data: u64,
    gaps: u64,
}

impl StreamHandler for Count {
    type Conn = ();
    fn on_open(&mut self, _: &ConnMeta) {
        self.opens += 1;
    }
    fn on_data(&mut self, _: &mut (), _: &ConnMeta, _: Direction, _: u64, d: &[u8]) -> Verdict {
        self.data += d.len() as u64;
        Verdict::Continue
    }
    fn on_gap(
        &mut self,
        _: &mut (),
        m: &ConnMeta,
        d: Direction,
        ts: u64,
        len: u64,
        r: GapReason,
    ) -> Verdict {
        if std::env::var_os("REPLAY_GAPS").is_some() {
            println!(
                "gap {}:{} {} ts {ts} len {len} {}",
                m.client.ip,
                m.client.port,
                d.as_str(),
                r.as_str()
            );
        }
        self.gaps += len;
        Verdict::Continue
    }
    fn on_fin(&mut self, _: &mut (), _: &ConnMeta, _: Direction, _: u64) {}
    fn on_close(&mut self, _: (), _: &ConnMeta, _: u64, _: CloseReason) {}
}

fn main() {
    let mut mode = FlowKeyMode::FiveTuple;
    for path in std::env::args().skip(1) {
        if path == "--session" {
            mode = FlowKeyMode::Session;
            continue;
        }
        let Ok(data) = std::fs::read(&path) else {
            println!("{path}: unreadable");
            continue;
        };
        let (le, nanos) = match data.get(..4) {
            Some([0xd4, 0xc3, 0xb2, 0xa1]) => (true, false),
            Some([0x4d, 0x3c, 0xb2, 0xa1]) => (true, true),
            Some([0xa1, 0xb2, 0xc3, 0xd4]) => (false, false),
            Some([0xa1, 0xb2, 0x3c, 0x4d]) => (false, true),
            _ => {
                println!("{path}: not a classic pcap, skipped");
                continue;
            }
        };
        let u32_at = |at: usize| -> Option<u32> {
            let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
            Some(if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            })
        };
        let Some(link) = u32_at(20).and_then(LinkType::from_pcap) else {
            println!("{path}: unsupported link type");
            continue;
        };
        let mut d = Decapsulator::new(DecapConfig::default());
        let cfg = FlowConfig {
            key_mode: mode,
            ..FlowConfig::default()
        };
        let Ok(mut t) = FlowTable::new(cfg) else {
            return;
        };
        let mut h = Count::default();
        let (mut off, mut peak, mut segs, mut tick) = (24, 0, 0u64, 0u64);
        let mut flow_ns = 0u128;
        while let (Some(sec), Some(frac), Some(caplen)) =
            (u32_at(off), u32_at(off + 4), u32_at(off + 8))
        {
            let start = off + 16;
            let Some(frame) = data.get(start..start + caplen as usize) else {
                break;
            };
            let ts =
                u64::from(sec) * 1_000_000_000 + u64::from(frac) * if nanos { 1 } else { 1000 };
            if let Decoded::Segment { segment, .. } = d.decode(link, ts, frame) {
                let t0 = Instant::now();
                t.process(&segment, &mut h);
                if ts >= tick {
                    t.advance_time(ts, &mut h);
                    tick = ts + 1_000_000_000;
                }
                flow_ns += t0.elapsed().as_nanos();
                segs += 1;
                if segs % 4096 == 0 {
                    peak = peak.max(t.memory_in_use());
                }
            }
            off = start + caplen as usize;
        }
        t.finish(&mut h);
        println!(
            "{path}: {segs} segments, {} connections, {:.1} ns/segment in the flow table \
             (wall, incl. timing overhead), peak memory {} KiB, delivered {} B, gapped {} B",
            h.opens,
            flow_ns as f64 / segs.max(1) as f64,
            peak / 1024,
            h.data,
            h.gaps
        );
        for (name, v) in t.stats().to_pairs() {
            if v > 0 {
                println!("  {name} {v}");
            }
        }
    }
}
