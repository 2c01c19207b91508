//! Reassembly cost per segment on a synthetic keep-alive HTTP mix, no-op consumer.
//!
//! `cargo bench -p vxtap-flow --bench reassembly` (release profile). Prints ns/segment for an
//! in-order mix and for the same mix with 1% of data segments reordered and 1% duplicated (a
//! mirror's typical damage). Target: <= 100 ns per segment on one core.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use vxtap_flow::*;
use vxtap_wire::{Segment, TcpFlags};

struct Nop(u64);

impl StreamHandler for Nop {
    type Conn = u64;
    fn on_open(&mut self, m: &ConnMeta) -> u64 {
        m.conn_id
    }
    fn on_data(&mut self, c: &mut u64, _: &ConnMeta, _: Direction, _: u64, d: &[u8]) -> Verdict {
        *c += d.len() as u64;
        self.0 += d.len() as u64;
        Verdict::Continue
    }
    fn on_gap(
        &mut self,
        _: &mut u64,
        _: &ConnMeta,
        _: Direction,
        _: u64,
        l: u64,
        _: GapReason,
    ) -> Verdict {
        self.0 += l;
        Verdict::Continue
    }
    fn on_fin(&mut self, _: &mut u64, _: &ConnMeta, _: Direction, _: u64) {}
    fn on_close(&mut self, c: u64, _: &ConnMeta, _: u64, _: CloseReason) {
        black_box(c);
    }
}

/// A tiny deterministic PRNG (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Conn {
    c_ip: IpAddr,
    c_port: u16,
    s_ip: IpAddr,
    cseq: u32,
    sseq: u32,
    left: u32,
    step: u8,
}

/// Builds ~`target` segments: 2,000 concurrent keep-alive connections, each a handshake, 5-30
/// request/response pairs (request 200-900 B; response 1-6 segments of up to 1448 B with the
/// client's ACKs) and a FIN exchange; new connections replace finished ones.
fn workload(target: usize, payload: &'static [u8]) -> Vec<Segment<'static>> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut out = Vec::with_capacity(target + 64);
    let mut next_id: u32 = 0;
    let mk = |id: u32, rng: &mut Rng| Conn {
        c_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (id / 50_000))),
        c_port: 1024 + (id % 50_000) as u16,
        s_ip: IpAddr::V4(Ipv4Addr::new(10, 9, 0, (id % 8) as u8 + 1)),
        cseq: rng.next() as u32,
        sseq: rng.next() as u32,
        left: 5 + (rng.next() % 26) as u32,
        step: 0,
    };
    let mut conns: Vec<Conn> = (0..2000)
        .map(|_| {
            next_id += 1;
            mk(next_id, &mut rng)
        })
        .collect();
    let mut ts: u64 = 1_700_000_000_000_000_000;
    while out.len() < target {
        let k = (rng.next() % conns.len() as u64) as usize;
        let c = &mut conns[k];
        ts += 2_000;
        let base = |from_client: bool, c: &Conn| Segment {
            ts_ns: ts,
            vni: Some(42),
            tunnel: vxtap_wire::TunnelKind::None,
            mirror_source: None,
            src_ip: if from_client { c.c_ip } else { c.s_ip },
            dst_ip: if from_client { c.s_ip } else { c.c_ip },
            src_port: if from_client { c.c_port } else { 80 },
            dst_port: if from_client { 80 } else { c.c_port },
            seq: if from_client { c.cseq } else { c.sseq },
            ack: if from_client { c.sseq } else { c.cseq },
            flags: TcpFlags(TcpFlags::ACK),
            window: 500,
            payload: &payload[..0],
            wire_payload_len: 0,
        };
        match c.step {
            0 => {
                let mut s = base(true, c);
                s.flags = TcpFlags(TcpFlags::SYN);
                out.push(s);
                let mut s = base(false, c);
                s.flags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
                s.ack = c.cseq.wrapping_add(1);
                out.push(s);
                c.cseq = c.cseq.wrapping_add(1);
                c.sseq = c.sseq.wrapping_add(1);
                out.push(base(true, c));
                c.step = 1;
            }
            1 if c.left > 0 => {
                let rl = 200 + (rng.next() % 700) as usize;
                let mut s = base(true, c);
                s.payload = &payload[..rl];
                s.wire_payload_len = rl as u32;
                s.flags = TcpFlags(TcpFlags::ACK | TcpFlags::PSH);
                out.push(s);
                c.cseq = c.cseq.wrapping_add(rl as u32);
                let nseg = 1 + rng.next() % 6;
                for i in 0..nseg {
                    let l = if i + 1 == nseg {
                        100 + (rng.next() % 1348) as usize
                    } else {
                        1448
                    };
                    let mut s = base(false, c);
                    s.payload = &payload[..l];
                    s.wire_payload_len = l as u32;
                    out.push(s);
                    c.sseq = c.sseq.wrapping_add(l as u32);
                    if i % 2 == 1 || i + 1 == nseg {
                        out.push(base(true, c));
                    }
                }
                c.left -= 1;
            }
            _ => {
                let mut s = base(true, c);
                s.flags = TcpFlags(TcpFlags::FIN | TcpFlags::ACK);
                out.push(s);
                c.cseq = c.cseq.wrapping_add(1);
                let mut s = base(false, c);
                s.flags = TcpFlags(TcpFlags::FIN | TcpFlags::ACK);
                out.push(s);
                c.sseq = c.sseq.wrapping_add(1);
                out.push(base(true, c));
                next_id += 1;
                *c = mk(next_id, &mut rng);
            }
        }
    }
    out
}

fn damage(segs: &mut Vec<Segment<'static>>) {
    let mut rng = Rng(99);
    let n = segs.len();
    for i in 0..n.saturating_sub(3) {
        let r = rng.next() % 100;
        if r == 0 && !segs[i].payload.is_empty() {
            segs.swap(i, i + 2);
        }
    }
    let mut dups = Vec::with_capacity(segs.len() / 100 + 1);
    for s in segs.iter() {
        dups.push(*s);
        if rng.next() % 100 < 1 && !s.payload.is_empty() {
            dups.push(*s);
        }
    }
    *segs = dups;
}

/// CPU time of this thread in ns, so other processes on a shared machine do not inflate the
/// figure (wall time if the clock is unavailable).
fn cpu_ns(wall: Instant) -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; no other memory is touched.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
    } else {
        wall.elapsed().as_nanos()
    }
}

fn run(name: &str, segs: &[Segment<'static>]) {
    let mut best = f64::MAX;
    let mut stats = FlowStats::default();
    for _ in 0..5 {
        let mut t = FlowTable::new(FlowConfig::default()).expect("default config is valid");
        let mut h = Nop(0);
        let wall = Instant::now();
        let start = cpu_ns(wall);
        let mut last = 0u64;
        for s in segs {
            t.process(s, &mut h);
            if s.ts_ns > last + 1_000_000_000 {
                last = s.ts_ns;
                t.advance_time(last, &mut h);
            }
        }
        t.finish(&mut h);
        let el = (cpu_ns(wall) - start) as f64;
        best = best.min(el / segs.len() as f64);
        stats = *t.stats();
        black_box(h.0);
    }
    println!(
        "{name}: {} segments, best of 5: {best:.1} ns/segment of CPU time ({:.2} Mpps); delivered {} B, ooo {}, retransmitted {}, gaps {} (skips: ack {} timeout {} close {})",
        segs.len(),
        1000.0 / best,
        stats.bytes_delivered,
        stats.ooo_segments,
        stats.retransmitted_segments,
        stats.gaps_lost + stats.gaps_truncated_capture + stats.gaps_memory_cap,
        stats.holes_skipped_peer_ack,
        stats.holes_skipped_hole_timeout,
        stats.holes_skipped_close,
    );
}

/// The cost of merely walking the segments and touching their payload (what any consumer pays
/// without reassembly), reported so the table's own share can be read off.
fn baseline(segs: &[Segment<'static>]) {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let wall = Instant::now();
        let start = cpu_ns(wall);
        let mut acc = 0u64;
        for s in segs {
            let s = black_box(s);
            acc = acc.wrapping_add(s.payload.len() as u64 ^ s.seq as u64 ^ s.ts_ns);
        }
        black_box(acc);
        best = best.min((cpu_ns(wall) - start) as f64 / segs.len() as f64);
    }
    println!("baseline (walk segments only): {best:.1} ns/segment");
}

fn main() {
    let payload: &'static [u8] = Box::leak(vec![b'x'; 2048].into_boxed_slice());
    let segs = workload(1_000_000, payload);
    baseline(&segs);
    run("in_order", &segs);
    let mut damaged = segs.clone();
    damage(&mut damaged);
    run("reorder_1pct_dup_1pct", &damaged);
}
