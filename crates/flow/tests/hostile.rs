//! Hostile input: memory and flow count stay bounded, every limit that bites is counted.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use vxtap_flow::*;
use vxtap_wire::{Segment, TcpFlags};

struct Nop;

impl StreamHandler for Nop {
    type Conn = ();
    fn on_open(&mut self, _m: &ConnMeta) {}
    fn on_data(&mut self, _: &mut (), _: &ConnMeta, _: Direction, _: u64, _: &[u8]) -> Verdict {
        Verdict::Continue
    }
    fn on_gap(
        &mut self,
        _: &mut (),
        _: &ConnMeta,
        _: Direction,
        _: u64,
        _: u64,
        _: GapReason,
    ) -> Verdict {
        Verdict::Continue
    }
    fn on_fin(&mut self, _: &mut (), _: &ConnMeta, _: Direction, _: u64) {}
    fn on_close(&mut self, _: (), _: &ConnMeta, _: u64, _: CloseReason) {}
}

fn seg(i: u32, ts: u64, seq: u32, flags: u8, payload: &[u8]) -> Segment<'_> {
    Segment {
        ts_ns: ts,
        vni: None,
        tunnel: vxtap_wire::TunnelKind::None,
        mirror_source: None,
        src_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i / 60_000))),
        dst_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)),
        src_port: 1024 + (i % 60_000) as u16,
        dst_port: 80,
        seq,
        ack: 0,
        flags: TcpFlags(flags),
        window: 0,
        payload,
        wire_payload_len: payload.len() as u32,
    }
}

#[test]
fn syn_flood_is_bounded_by_max_flows() {
    let cfg = FlowConfig {
        max_flows: 10_000,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(cfg).unwrap();
    let mut h = Nop;
    let n: u32 = if cfg!(debug_assertions) {
        300_000
    } else {
        1_000_000
    };
    let start = Instant::now();
    let mut peak = 0;
    for i in 0..n {
        t.process(
            &seg(i, i as u64 * 1000, i.wrapping_mul(7919), TcpFlags::SYN, b""),
            &mut h,
        );
        if i % 1024 == 0 {
            t.advance_time(i as u64 * 1000, &mut h);
            peak = peak.max(t.memory_in_use());
        }
    }
    let el = start.elapsed();
    let st = *t.stats();
    assert_eq!(st.flows_created, n as u64);
    assert!(t.tracked_flows() <= 10_000);
    assert_eq!(st.evicted_max_flows, n as u64 - 10_000);
    assert!(peak <= 10_000 * t.per_flow_cost());
    assert!(peak <= cfg.max_memory);
    eprintln!(
        "{n} SYNs in {el:?}, peak {peak} bytes, {} evicted",
        st.evicted_max_flows
    );
    t.finish(&mut h);
    assert_eq!(t.memory_in_use(), 0);
}

#[test]
fn syn_flood_is_bounded_by_memory_budget() {
    let cfg = FlowConfig {
        max_memory: 1 << 20,
        max_buffer_per_direction: 64 * 1024,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(cfg).unwrap();
    let mut h = Nop;
    for i in 0..50_000u32 {
        t.process(&seg(i, i as u64, 1, TcpFlags::SYN, b""), &mut h);
        assert!(t.memory_in_use() <= 1 << 20);
    }
    assert!(t.stats().evicted_memory > 0);
}

#[test]
fn out_of_order_flood_is_bounded_by_memory_budget() {
    let cfg = FlowConfig {
        max_memory: 4 << 20,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(cfg).unwrap();
    let mut h = Nop;
    let p = vec![0x41u8; 1400];
    // Every flow: one byte to start the stream, then segments beyond a hole that never fills.
    for f in 0..2_000u32 {
        t.process(&seg(f, 1, 100, TcpFlags::ACK, &p[..1]), &mut h);
        for k in 0..20u32 {
            t.process(&seg(f, 2, 10_000 + k * 1400, TcpFlags::ACK, &p), &mut h);
            assert!(t.memory_in_use() <= 4 << 20);
        }
    }
    let st = t.stats();
    assert!(st.holes_skipped_memory > 0);
    assert!(st.gap_bytes_memory_cap > 0);
}

#[test]
fn far_beyond_window_and_tiny_fragments_stay_bounded() {
    let cfg = FlowConfig {
        max_buffer_per_direction: 32 * 1024,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(cfg).unwrap();
    let mut h = Nop;
    t.process(&seg(1, 1, 0, TcpFlags::ACK, b"x"), &mut h);
    let base = t.memory_in_use();
    for k in 0..10_000u32 {
        t.process(
            &seg(1, 2, (1 << 30) + 10 + k * 100, TcpFlags::ACK, b"y"),
            &mut h,
        );
    }
    assert_eq!(t.memory_in_use(), base);
    assert_eq!(t.stats().out_of_window, 10_000);
    // One-byte chunks every other byte: charged with their overhead, capped per direction.
    for k in 0..100_000u32 {
        t.process(&seg(1, 3, 10 + 2 * k, TcpFlags::ACK, b"z"), &mut h);
        assert!(t.memory_in_use() <= base + 32 * 1024 + 2048);
    }
    assert!(t.stats().holes_skipped_flow_cap > 0);
}

#[test]
fn random_garbage_never_panics() {
    // A tiny deterministic PRNG: no dependency, same sequence every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let cfg = FlowConfig {
        max_flows: 64,
        max_memory: 1 << 20,
        max_buffer_per_direction: 16 * 1024,
        hole_timeout_ns: 1000,
        idle_timeout_ns: 5000,
        linger_ns: 500,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(cfg).unwrap();
    let mut h = Nop;
    let buf = vec![0x5au8; 3000];
    for i in 0..200_000u64 {
        let r = next();
        let len = (r >> 8) as usize % 1600;
        let mut s = seg(
            (r % 40) as u32,
            i,
            (next() % 20_000) as u32,
            (r >> 40) as u8,
            &buf[..len],
        );
        s.ack = (next() % 20_000) as u32;
        s.wire_payload_len = len as u32 + ((r >> 50) % 3 == 0) as u32 * ((r >> 20) as u32 % 500);
        if r % 7 == 0 {
            s.src_ip = s.dst_ip;
            s.dst_ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, (r >> 33) as u8 % 4));
            std::mem::swap(&mut s.src_port, &mut s.dst_port);
        }
        t.process(&s, &mut h);
        if i % 97 == 0 {
            t.advance_time(i, &mut h);
        }
        assert!(t.memory_in_use() <= 1 << 20);
    }
    t.finish(&mut h);
    assert_eq!(t.memory_in_use(), 0);
    assert_eq!(t.tracked_flows(), 0);
}
