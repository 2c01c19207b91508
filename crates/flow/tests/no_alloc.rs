//! The in-order hot path allocates nothing once a connection exists (counting allocator).

#![deny(clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use vxtap_flow::*;
use vxtap_wire::{Segment, TcpFlags};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Only the test's own thread counts: the test harness allocates on its main thread while
    // the test runs (that made this test fail now and then under load).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // A const-initialized thread local without destructor: reading it never allocates.
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Sum(u64);

impl StreamHandler for Sum {
    type Conn = ();
    fn on_open(&mut self, _: &ConnMeta) {}
    fn on_data(&mut self, _: &mut (), _: &ConnMeta, _: Direction, _: u64, d: &[u8]) -> Verdict {
        self.0 += d.len() as u64;
        Verdict::Continue
    }
    fn on_gap(
        &mut self,
        _: &mut (),
        _: &ConnMeta,
        _: Direction,
        _: u64,
        l: u64,
        _: GapReason,
    ) -> Verdict {
        self.0 += l;
        Verdict::Continue
    }
    fn on_fin(&mut self, _: &mut (), _: &ConnMeta, _: Direction, _: u64) {}
    fn on_close(&mut self, _: (), _: &ConnMeta, _: u64, _: CloseReason) {}
}

#[test]
fn in_order_path_does_not_allocate() {
    let mut t = FlowTable::new(FlowConfig::default()).unwrap();
    let mut h = Sum(0);
    let payload = vec![7u8; 1448];
    let seg = |from_client: bool, ts: u64, seq: u32, ack: u32, flags: u8, len: usize| {
        let (a, b) = (
            (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000),
            (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80),
        );
        let (src, dst) = if from_client { (a, b) } else { (b, a) };
        Segment {
            ts_ns: ts,
            vni: Some(1),
            tunnel: vxtap_wire::TunnelKind::None,
            mirror_source: None,
            src_ip: src.0,
            dst_ip: dst.0,
            src_port: src.1,
            dst_port: dst.1,
            seq,
            ack,
            flags: TcpFlags(flags),
            window: 100,
            payload: &payload[..len.min(1448)],
            wire_payload_len: len as u32,
        }
    };
    let (ack, syn) = (TcpFlags::ACK, TcpFlags::SYN);
    t.process(&seg(true, 1, 100, 0, syn, 0), &mut h);
    t.process(&seg(false, 2, 900, 101, syn | ack, 0), &mut h);
    t.process(&seg(true, 3, 101, 901, ack, 0), &mut h);
    COUNTING.with(|c| c.set(true));
    let before = ALLOCS.load(Ordering::Relaxed);
    let (mut c, mut s) = (101u32, 901u32);
    for i in 0..10_000u64 {
        t.process(&seg(true, 10 + i, c, s, ack, 300), &mut h);
        c += 300;
        for _ in 0..3 {
            t.process(&seg(false, 10 + i, s, c, ack, 1448), &mut h);
            s += 1448;
        }
        // A truncated frame: captured part plus a gap, still no allocation.
        t.process(&seg(false, 10 + i, s, c, ack, 2000), &mut h);
        s += 2000;
        t.process(&seg(true, 10 + i, c, s, ack, 0), &mut h);
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(false));
    assert_eq!(after - before, 0, "allocations on the in-order path");
    assert_eq!(h.0, 10_000 * (300 + 3 * 1448 + 2000));
}
