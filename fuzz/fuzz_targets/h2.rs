//! The HTTP/2 reader (frames, HPACK, streams, gRPC framing) on hostile bytes.
//!
//! Input: byte 0 = how the connection starts (preface line, upgrade, mid-stream) and whether a
//! gap is injected, bytes 1-2 = where the client bytes are split, bytes 3-4 = how many of the
//! rest are the client's; the rest = client bytes then server bytes. Oracles:
//! - nothing panics, streams in flight stay within the cap, and memory stays bounded;
//! - without a gap, feeding a direction in two pieces gives exactly the streams feeding it
//!   whole gives (the frame reader keeps its state across segment boundaries).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxtap_h2::{H2Config, H2Conn, H2Stats, Start, StreamOut};

fn run(start: Start, c: &[&[u8]], s: &[u8], gap: Option<u64>, cfg: &H2Config) -> Vec<StreamOut> {
    let mut st = H2Stats::default();
    let mut h = H2Conn::new(cfg, start, 1);
    for piece in c {
        h.feed(0, 5, piece, &mut st);
        assert!(h.open_streams() <= cfg.max_streams);
    }
    if let Some(g) = gap {
        h.gap(1, 6, g, &mut st);
    }
    h.feed(1, 7, s, &mut st);
    assert!(h.open_streams() <= cfg.max_streams);
    // Buffers, tables and streams: bounded by the caps, whatever the input.
    assert!(h.heap_bytes() < 64 << 20, "{}", h.heap_bytes());
    h.close(&mut st);
    let mut out = Vec::new();
    h.drain_into(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let start = match data[0] % 3 {
        0 => Start::PrefaceLine,
        1 => Start::Upgrade,
        _ => Start::Midstream,
    };
    let gap = (data[0] & 0x80 != 0).then_some(u64::from(data[0] & 0x3f));
    let split = usize::from(u16::from_be_bytes([data[1], data[2]]));
    let clen = usize::from(u16::from_be_bytes([data[3], data[4]]));
    let rest = &data[5..];
    let (c, s) = rest.split_at(clen.min(rest.len()));
    let cfg = H2Config {
        max_streams: 8,
        max_header_block: 4096,
        hpack_cap: 4096,
        max_body_bytes: 64,
        ..H2Config::default()
    };
    let whole = run(start, &[c], s, gap, &cfg);
    if gap.is_none() {
        let (a, b) = c.split_at(split.min(c.len()));
        let split_out = run(start, &[a, b], s, None, &cfg);
        assert_eq!(whole, split_out);
    }
});
