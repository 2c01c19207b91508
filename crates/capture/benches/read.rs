//! Read throughput: writes a temporary pcap of ~500k packets (~1 kB average, like the replay
//! workload's ~1M packets/GB) and reports packets per second for walking it, best of 5 passes.
//!
//! Run with `cargo bench -p vxtap-capture --bench read`.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::time::Instant;

use vxtap_capture::{CaptureReader, PcapWriter, TsResolution};

const PACKETS: usize = 500_000;

fn main() {
    let path = std::env::temp_dir().join(format!("vxtap-bench-read-{}.pcap", std::process::id()));
    let mut payload = vec![0u8; 1514];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = i as u8;
    }
    let file = std::fs::File::create(&path).expect("create temp pcap");
    let mut w = PcapWriter::new(file, 1, TsResolution::Nano).expect("pcap header");
    // A mix of ACK-sized, mid-sized and full-MTU frames averaging ~1 kB.
    let sizes = [66usize, 1514, 1514, 590, 1514, 66, 1514, 1200];
    let mut bytes = 0u64;
    for i in 0..PACKETS {
        let len = sizes[i % sizes.len()];
        w.write_packet(
            1_700_000_000_000_000_000 + i as u64 * 1000,
            &payload[..len],
            len as u32,
        )
        .expect("write");
        bytes += len as u64;
    }
    drop(w.into_inner().expect("flush"));
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("file: {PACKETS} packets, {:.0} MB", size as f64 / 1e6);

    let mut best = f64::MAX;
    for pass in 0..5 {
        let t = Instant::now();
        let mut r = CaptureReader::open(&path).expect("open");
        let (mut n, mut seen) = (0u64, 0u64);
        while let Some(p) = r.next_packet().expect("read") {
            n += 1;
            seen += p.data.len() as u64 + (p.ts_ns & 1);
        }
        let dt = t.elapsed().as_secs_f64();
        assert_eq!(n, PACKETS as u64);
        assert!(seen >= bytes);
        println!(
            "pass {pass}: {:.1} Mpps ({:.2} GB/s)",
            n as f64 / dt / 1e6,
            size as f64 / dt / 1e9
        );
        best = best.min(dt);
    }
    println!(
        "read pcap (mmap, open included): best {:.1} Mpps",
        PACKETS as f64 / best / 1e6
    );

    // Baseline in the same run: the bare record-header walk (what the C reference does) over a
    // fresh map, so the ratio shows our overhead separately from page-fault cost.
    let mut best_raw = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let f = std::fs::File::open(&path).expect("open");
        // SAFETY: the temp file is ours and nothing modifies it while mapped.
        let map = unsafe { memmap2::Mmap::map(&f) }.expect("map");
        let (mut off, mut n) = (24usize, 0u64);
        while off + 16 <= map.len() {
            let incl =
                u32::from_le_bytes([map[off + 8], map[off + 9], map[off + 10], map[off + 11]]);
            off += 16 + incl as usize;
            n += 1;
        }
        assert_eq!(n, PACKETS as u64);
        best_raw = best_raw.min(t.elapsed().as_secs_f64());
    }
    println!(
        "bare header walk over mmap (baseline): {:.1} Mpps",
        PACKETS as f64 / best_raw / 1e6
    );

    // The same bytes already in memory: the parser's own cost, without page faults.
    let bytes = std::fs::read(&path).expect("read file");
    let mut best = f64::MAX;
    for _ in 0..3 {
        let copy = bytes.clone();
        let t = Instant::now();
        let mut r = CaptureReader::from_bytes("mem", copy).expect("open");
        let n = r.for_each(|_| {}).expect("read");
        assert_eq!(n, PACKETS as u64);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "read pcap (in memory, no page faults): {:.1} Mpps",
        PACKETS as f64 / best / 1e6
    );
    let mut best = f64::MAX;
    let mut sum = 0u64;
    for _ in 0..3 {
        let copy = bytes.clone();
        let t = Instant::now();
        let mut r = CaptureReader::from_bytes("mem", copy).expect("open");
        r.for_each(|p| {
            sum += p.data.iter().take(80).map(|&b| b as u64).sum::<u64>();
        })
        .expect("read");
        best = best.min(t.elapsed().as_secs_f64());
    }
    drop(bytes);
    println!(
        "read pcap + touch 80 bytes (in memory): {:.1} Mpps ({sum})",
        PACKETS as f64 / best / 1e6
    );

    // Reading plus touching each frame's headers, as decapsulation will.
    let mut best = f64::MAX;
    let mut sum = 0u64;
    for _ in 0..3 {
        let t = Instant::now();
        let mut r = CaptureReader::open(&path).expect("open");
        r.for_each(|p| {
            sum += p.data.iter().take(80).map(|&b| b as u64).sum::<u64>();
        })
        .expect("read");
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "read pcap + touch 80 header bytes (mmap): {:.1} Mpps ({sum})",
        PACKETS as f64 / best / 1e6
    );

    let t = Instant::now();
    let mut r = CaptureReader::from_reader("pipe", std::fs::File::open(&path).expect("open"))
        .expect("stream");
    let n = r.for_each(|_| {}).expect("read");
    let dt = t.elapsed().as_secs_f64();
    println!(
        "read pcap (streamed through read(2)): {:.1} Mpps",
        n as f64 / dt / 1e6
    );
    let _ = std::fs::remove_file(&path);
}
