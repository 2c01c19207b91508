//! Developer tool: decodes classic pcap files with the decapsulator and prints what it saw
//! (VNIs, tunnel kinds, inner protocols, rejections). The real readers live in the capture
//! crate; this minimal reader exists so the wire crate can be checked on real captures alone.
//!
//! Usage: `cargo run -p vxtap-wire --example pcap_decap -- FILE.pcap...`

use std::collections::BTreeMap;
use vxtap_wire::{DecapConfig, Decapsulator, Decoded, Error, InnerProto, LinkType, TunnelKind};

fn main() {
    for path in std::env::args().skip(1) {
        let Ok(data) = std::fs::read(&path) else {
            println!("{path}: unreadable");
            continue;
        };
        let Some(magic) = data.get(..4) else { continue };
        let (le, nanos) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
            [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
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
        let mut d = Decapsulator::new(DecapConfig {
            vxlan_ports: vec![4789, 4790, 8472],
            ..DecapConfig::default()
        });
        let mut vnis: BTreeMap<u32, u64> = BTreeMap::new();
        let mut off = 24;
        while let (Some(sec), Some(frac), Some(caplen)) =
            (u32_at(off), u32_at(off + 4), u32_at(off + 8))
        {
            let start = off + 16;
            let Some(frame) = data.get(start..start + caplen as usize) else {
                break;
            };
            let ts =
                u64::from(sec) * 1_000_000_000 + u64::from(frac) * if nanos { 1 } else { 1000 };
            match d.decode(link, ts, frame) {
                Decoded::Segment { segment: s, .. } => {
                    if let Some(v) = s.vni {
                        *vnis.entry(v).or_default() += 1;
                    }
                }
                Decoded::Other { vni: Some(v), .. } => *vnis.entry(v).or_default() += 1,
                _ => {}
            }
            off = start + caplen as usize;
        }
        let s = d.stats();
        let seg: Vec<String> = TunnelKind::ALL
            .iter()
            .filter(|k| s.segments[k.index()] > 0)
            .map(|k| format!("{}={}", k.as_str(), s.segments[k.index()]))
            .collect();
        let protos: Vec<String> = InnerProto::ALL
            .iter()
            .filter(|p| s.inner_protos[p.index()] > 0)
            .map(|p| format!("{}={}", p.as_str(), s.inner_protos[p.index()]))
            .collect();
        let rej: Vec<String> = Error::ALL
            .iter()
            .filter(|e| s.rejected_for(**e) > 0)
            .map(|e| format!("{}={}", e.as_str(), s.rejected_for(*e)))
            .collect();
        println!(
            "{path}: packets={} segments[{}] inner[{}] vnis{:?} rejected[{}] truncated={} frag(held={} reasm={})",
            s.packets,
            seg.join(" "),
            protos.join(" "),
            vnis,
            rej.join(" "),
            s.truncated,
            s.fragments.held,
            s.fragments.reassembled,
        );
    }
}
