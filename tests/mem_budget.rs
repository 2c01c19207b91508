//! `--max-memory` bounds a whole replay, worker queues included: a counting global allocator
//! (every thread) measures the live heap while a sharded replay reads hostile traffic from a
//! gzip capture (so payloads are copied into the worker batches, the queue growth path).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use clap::Parser;
use vxtap::config::{FileConfig, Settings};
use vxtap_capture::{PcapWriter, TsResolution};
use vxtap_sink::JsonLinesConfig;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn add(n: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        add(new as isize);
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new) };
        add(-(layout.size() as isize));
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Ethernet + IPv4 + TCP frame (checksums are not validated by default).
fn frame(client: u32, from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let c_ip = 0x0a00_0000u32 | (client >> 14);
    let c_port = 1024 + (client & 0x3fff) as u16;
    let s_ip = 0x0a01_0001u32;
    let (src, dst, sp, dp) = if from_client {
        (c_ip, s_ip, c_port, 80)
    } else {
        (s_ip, c_ip, 80, c_port)
    };
    let mut f = Vec::with_capacity(54 + payload.len());
    f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (40 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.to_be_bytes());
    ip[16..20].copy_from_slice(&dst.to_be_bytes());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sp.to_be_bytes());
    tcp[2..4].copy_from_slice(&dp.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    f.extend_from_slice(&tcp);
    f.extend_from_slice(payload);
    f
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// A gzip capture: `conns` connections, each sending a 60 KB request head that never ends.
fn partial_heads(path: &Path, conns: u32) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut w = PcapWriter::new(gz, 1, TsResolution::Micro).unwrap();
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    while head.len() < 60_000 {
        head.extend_from_slice(b"X-Pad: ");
        head.extend_from_slice(&[b'a'; 1000]);
        head.extend_from_slice(b"\r\n");
    }
    let mut ts = 1_700_000_000_000_000_000u64;
    for n in 0..conns {
        let (ci, si) = (1000u32, 5000u32);
        let mut put = |f: Vec<u8>| {
            ts += 1000;
            w.write_packet(ts, &f, f.len() as u32).unwrap();
        };
        put(frame(n, true, ci, 0, SYN, b""));
        put(frame(n, false, si, ci + 1, SYN | ACK, b""));
        put(frame(n, true, ci + 1, si + 1, ACK, b""));
        let mut seq = ci + 1;
        for piece in head.chunks(1448) {
            put(frame(n, true, seq, si + 1, ACK, piece));
            seq += piece.len() as u32;
        }
    }
    let gz = w.into_inner().unwrap();
    gz.finish().unwrap().flush().unwrap();
}

fn settings(argv: &[&str]) -> Settings {
    let cli = vxtap::cli::Cli::try_parse_from(argv).unwrap();
    let vxtap::cli::Command::Replay(args) = cli.command else {
        panic!("a replay command line")
    };
    Settings::resolve(
        &FileConfig::default(),
        &args.decode,
        &args.pipeline,
        &args.privacy,
        1,
    )
    .unwrap()
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vxtap-mem-{}-{name}", std::process::id()))
}

/// Heap the replay may use beyond the budget: reader and gzip buffers, output encoder and
/// merge queues, decapsulation state, thread stacks' bookkeeping.
const OVERHEAD: isize = 8 << 20;

#[test]
fn sharded_replay_with_queues_stays_within_budget() {
    let input = tmp("heads.pcap.gz");
    let output = tmp("heads.jsonl");
    // 1,500 connections x 60 KB: 90 MB of partial heads, far past the 24 MiB budget.
    partial_heads(&input, 1_500);
    let budget: isize = 24 << 20;
    let s = settings(&[
        "vxtap",
        "replay",
        "--threads",
        "2",
        "--max-memory",
        "24MiB",
        "x",
    ]);
    let sink = JsonLinesConfig {
        path: Some(output.clone()),
        ..JsonLinesConfig::default()
    };
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let report = vxtap::replay::replay(
        std::slice::from_ref(&input),
        &s,
        vxtap::output::OutputConfig::Lines(sink),
        false,
    )
    .unwrap();
    COUNTING.store(false, Ordering::Relaxed);
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let evicted = report.totals.workers.flow.evicted_memory;
    eprintln!("peak live heap {peak} B for a budget of {budget} B, {evicted} evicted");
    assert!(evicted > 0);
    assert!(
        peak <= budget + OVERHEAD,
        "peak live heap {peak} bytes, budget {budget} + overhead {OVERHEAD}"
    );
}
