//! Decapsulation of arbitrary frames: several frames per input (so outer IPv4 fragments can meet
//! in the reassembly table), under every link type, with and without checksum validation.
//!
//! Input: byte 0 picks the link type (low 3 bits) and checksum validation (bit 3); then frames,
//! each a big-endian u16 length and that many bytes (the last frame takes what is left).
//! Oracle: no panic, and the rejection counters add up to the rejected frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxtap_wire::{DecapConfig, Decapsulator, Decoded, LinkType};

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Null,
    LinkType::Loop,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(sel & 7)];
    let mut decap = Decapsulator::new(DecapConfig {
        validate_checksums: sel & 8 != 0,
        ..DecapConfig::default()
    });
    let mut rejected = 0u64;
    let mut ts = 0u64;
    while !rest.is_empty() {
        let frame = if rest.len() >= 2 {
            let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            let body = &rest[2..];
            let n = n.min(body.len());
            let (f, r) = body.split_at(n);
            rest = r;
            f
        } else {
            std::mem::take(&mut rest)
        };
        ts += 1_000_000;
        if let Decoded::Rejected(reason) = decap.decode(link, ts, frame) {
            rejected += 1;
            // Every reason has a stable label (metrics and logs rely on it).
            assert!(!reason.as_str().is_empty());
        }
    }
    assert_eq!(decap.stats().rejected_total(), rejected);
});
