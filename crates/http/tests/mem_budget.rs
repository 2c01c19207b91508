//! `max_memory` bounds what really is allocated, whatever grows with traffic: partial heads,
//! pipelined requests, captured bodies, decoders, connections, out-of-order buffers. A counting
//! global allocator measures the live heap of the flow table and the HTTP handler while hostile
//! traffic runs through them; its peak must stay within the budget plus a small fixed bound.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

use vxtap_flow::{FlowConfig, FlowTable};
use vxtap_http::{Exchange, HttpConfig, HttpHandler};
use vxtap_wire::{Segment, TcpFlags};

struct Counting;

thread_local! {
    // Per test thread (the harness runs tests in parallel): const-initialized, no destructor,
    // so reading them never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn add(n: isize) {
    if COUNTING.with(Cell::get) {
        let live = LIVE.with(|l| {
            let v = l.get() + n;
            l.set(v);
            v
        });
        PEAK.with(|p| p.set(p.get().max(live)));
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
        // Counted as a fresh block beside the old one, then the old one freed: the transient
        // peak of a copying realloc is real.
        add(new as isize);
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new) };
        add(-(layout.size() as isize));
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Budget used by every case: small, so that the traffic below exceeds it many times over.
const BUDGET: usize = 4 << 20;
/// What may be live beyond the budget: the handler's exchanges between drains, the test's own
/// bookkeeping, allocator rounding not modelled.
const SLACK: isize = 256 << 10;

const SEC: u64 = 1_000_000_000;

struct Rig {
    t: FlowTable<HttpHandler>,
    h: HttpHandler,
    out: Vec<Exchange>,
    evicted_exchanges: usize,
    exchanges: usize,
    base: isize,
}

impl Rig {
    fn new(http: HttpConfig) -> Rig {
        let cfg = FlowConfig {
            max_memory: BUDGET,
            max_buffer_per_direction: 256 << 10,
            ..FlowConfig::default()
        };
        let t = FlowTable::new(cfg).unwrap();
        let h = HttpHandler::new(http);
        let mut r = Rig {
            t,
            h,
            out: Vec::with_capacity(64),
            evicted_exchanges: 0,
            exchanges: 0,
            base: 0,
        };
        COUNTING.with(|c| c.set(true));
        r.base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(r.base));
        r
    }

    fn seg(&mut self, s: &Segment<'_>) {
        self.t.process(s, &mut self.h);
        self.h.drain_into(&mut self.out);
        for e in self.out.drain(..) {
            self.exchanges += 1;
            self.evicted_exchanges += e.flags.contains(vxtap_http::Flag::Evicted) as usize;
        }
    }

    /// Peak live bytes above the empty table, and stop counting.
    fn peak(&mut self) -> isize {
        COUNTING.with(|c| c.set(false));
        PEAK.with(Cell::get) - self.base
    }

    fn check(&mut self, what: &str) {
        self.check_with(what, 0);
    }

    /// `extra`: what a case may hold beyond the fixed slack, by design (see the caller).
    fn check_with(&mut self, what: &str, extra: usize) {
        let peak = self.peak() - extra as isize;
        let st = *self.t.stats();
        eprintln!(
            "{what}: peak {peak} B live over budget {BUDGET}, evicted_memory {}, holes_skipped_memory {}, exchanges {} ({} evicted)",
            st.evicted_memory, st.holes_skipped_memory, self.exchanges, self.evicted_exchanges
        );
        assert!(
            peak <= BUDGET as isize + SLACK,
            "{what}: peak {peak} bytes over a budget of {BUDGET}"
        );
        assert!(self.t.memory_in_use() <= BUDGET);
    }
}

/// Client endpoint `n` (distinct 5-tuples), server 10.1.0.1:80.
fn seg<'a>(
    n: u32,
    from_client: bool,
    ts: u64,
    seq: u32,
    ack: u32,
    flags: u8,
    p: &'a [u8],
) -> Segment<'a> {
    let client = (
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n >> 14))),
        1024 + (n & 0x3fff) as u16,
    );
    let server = (IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)), 80);
    let (src, dst) = if from_client {
        (client, server)
    } else {
        (server, client)
    };
    Segment {
        ts_ns: ts,
        vni: Some(1),
        tunnel: vxtap_wire::TunnelKind::Vxlan,
        mirror_source: None,
        src_ip: src.0,
        dst_ip: dst.0,
        src_port: src.1,
        dst_port: dst.1,
        seq,
        ack,
        flags: TcpFlags(flags),
        window: 1000,
        payload: p,
        wire_payload_len: p.len() as u32,
    }
}

const CI: u32 = 1000;
const SI: u32 = 5000;
const ACK: u8 = TcpFlags::ACK;

/// Handshake of connection `n`; returns the client's and the server's next sequence numbers.
fn open(r: &mut Rig, n: u32, ts: u64) -> (u32, u32) {
    r.seg(&seg(n, true, ts, CI, 0, TcpFlags::SYN, b""));
    r.seg(&seg(n, false, ts, SI, CI + 1, TcpFlags::SYN | ACK, b""));
    r.seg(&seg(n, true, ts, CI + 1, SI + 1, ACK, b""));
    (CI + 1, SI + 1)
}

/// Sends `data` from the client in 1448-byte segments.
fn send(r: &mut Rig, n: u32, ts: u64, seq: &mut u32, data: &[u8]) {
    for piece in data.chunks(1448) {
        r.seg(&seg(n, true, ts, *seq, SI + 1, ACK, piece));
        *seq = seq.wrapping_add(piece.len() as u32);
    }
}

#[test]
fn partial_heads_stay_within_budget() {
    let mut r = Rig::new(HttpConfig::default());
    // 60 KB of request head without its blank line, on 1,000 connections (60 MB in all).
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    while head.len() < 60_000 {
        head.extend_from_slice(
            b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    for n in 0..1_000u32 {
        let ts = n as u64 * 1000;
        let (mut c, _) = open(&mut r, n, ts);
        send(&mut r, n, ts, &mut c, &head);
    }
    assert!(r.t.stats().evicted_memory > 0);
    r.check("partial heads");
}

#[test]
fn pipelined_requests_stay_within_budget() {
    let mut r = Rig::new(HttpConfig::default());
    // 100 connections x 64 pipelined requests with 30 KB heads, never answered (190 MB).
    let mut req = b"GET /x HTTP/1.1\r\nHost: a\r\n".to_vec();
    while req.len() < 30_000 {
        req.extend_from_slice(b"X-Pad: ");
        req.extend_from_slice(&[b'a'; 1000]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    for n in 0..100u32 {
        let ts = n as u64 * SEC;
        let (mut c, _) = open(&mut r, n, ts);
        for _ in 0..64 {
            send(&mut r, n, ts, &mut c, &req);
        }
    }
    assert!(r.t.stats().evicted_memory > 0);
    assert!(
        r.evicted_exchanges > 0,
        "evicted requests are emitted, flagged"
    );
    r.check("pipelines");
}

#[test]
fn captured_bodies_stay_within_budget() {
    let http = HttpConfig {
        max_body_bytes: 1 << 20,
        ..HttpConfig::default()
    };
    let mut r = Rig::new(http);
    // 200 uploads of 10 MB cut after 600 KB: 600 KB of captured body each (120 MB).
    let body = vec![b'b'; 600_000];
    for n in 0..200u32 {
        let ts = n as u64 * SEC;
        let (mut c, _) = open(&mut r, n, ts);
        send(
            &mut r,
            n,
            ts,
            &mut c,
            b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n",
        );
        send(&mut r, n, ts, &mut c, &body);
    }
    assert!(r.t.stats().evicted_memory > 0);
    // An evicted connection's exchange, with its captured body, leaves the budget for the
    // output as it is emitted; and a body buffer's last growth step (a realloc) briefly holds
    // the old block beside the new one.
    r.check_with("bodies", 2 << 20);
}

#[test]
fn chunked_bodies_stay_within_budget() {
    // No length to size the buffer by: growth by doubling must stop at the cap.
    let http = HttpConfig {
        max_body_bytes: 600 << 10,
        ..HttpConfig::default()
    };
    let mut r = Rig::new(http);
    let mut body = Vec::new();
    while body.len() < 700_000 {
        body.extend_from_slice(b"1000\r\n");
        body.extend_from_slice(&[b'c'; 0x1000]);
        body.extend_from_slice(b"\r\n");
    }
    for n in 0..100u32 {
        let ts = n as u64 * SEC;
        let (mut c, _) = open(&mut r, n, ts);
        send(
            &mut r,
            n,
            ts,
            &mut c,
            b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        send(&mut r, n, ts, &mut c, &body);
    }
    // As above: one exchange in flight to the output, one realloc.
    r.check_with("chunked bodies", 2 * (600 << 10));
}

#[test]
fn decoders_stay_within_budget() {
    let http = HttpConfig {
        decode_content: true,
        max_body_bytes: 64 << 10,
        ..HttpConfig::default()
    };
    let mut r = Rig::new(http);
    // Gzip responses cut mid-body on 500 connections: each holds an inflater.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut x: u32 = 1;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        e.write_all(&[b'a' + (x % 4) as u8]).unwrap();
    }
    let gz = e.finish().unwrap();
    let part = &gz[..gz.len().min(20_000)];
    let resp_head = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        gz.len()
    );
    for n in 0..500u32 {
        let ts = n as u64 * SEC;
        let (mut c, mut s) = open(&mut r, n, ts);
        send(&mut r, n, ts, &mut c, b"GET /z HTTP/1.1\r\nHost: a\r\n\r\n");
        for piece in [resp_head.as_bytes(), part] {
            for p in piece.chunks(1448) {
                r.seg(&seg(n, false, ts, s, c, ACK, p));
                s = s.wrapping_add(p.len() as u32);
            }
        }
    }
    assert!(r.t.stats().evicted_memory > 0);
    r.check("decoders");
}

#[test]
fn syn_flood_stays_within_budget() {
    let mut r = Rig::new(HttpConfig::default());
    for n in 0..200_000u32 {
        r.seg(&seg(n, true, n as u64 * 1000, CI, 0, TcpFlags::SYN, b""));
    }
    assert!(r.t.stats().evicted_memory > 0);
    r.check("SYN flood");
}

#[test]
fn one_segment_connections_stay_within_budget() {
    let mut r = Rig::new(HttpConfig::default());
    // Mid-stream pickups: one data segment each, a whole request (then pending) or a part of
    // one (a partial head).
    for n in 0..200_000u32 {
        let p: &[u8] = if n % 2 == 0 {
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        } else {
            b"GET / HTTP/1.1\r\nHost: a"
        };
        r.seg(&seg(n, true, n as u64 * 1000, CI, SI, ACK, p));
    }
    r.check("one-segment connections");
}

#[test]
fn out_of_order_buffers_stay_within_budget() {
    let mut r = Rig::new(HttpConfig::default());
    // Each connection: a hole, then 200 KB held behind it.
    let p = vec![b'o'; 1448];
    for n in 0..200u32 {
        let ts = n as u64 * 1000;
        let (c, _) = open(&mut r, n, ts);
        for k in 0..140u32 {
            r.seg(&seg(n, true, ts, c + 1448 + k * 1448, SI + 1, ACK, &p));
        }
    }
    r.check("out-of-order buffers");
}
