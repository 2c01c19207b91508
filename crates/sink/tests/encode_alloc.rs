//! The writer turns a typed exchange into its JSON line without allocating for the values it
//! formats (RFC 3339 times, the hex id, flag labels, UTF-8 bodies): issue 14 §1 moved that
//! formatting out of the HTTP layer, where it cost seven allocations per exchange, and it must
//! not come back as per-exchange allocations in the writer (counting allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use vxtap_http::exchange::{Body, Message, Peer, Timing};
use vxtap_http::{Exchange, Flag, FlagSet};
use vxtap_sink::LineEncoder;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Only the test's own thread counts (the harness allocates on its main thread).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
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
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn exchange() -> Exchange {
    let msg = |status: Option<u16>, body: &str| Message {
        method: status.is_none().then(|| "POST".to_string()),
        uri: status.is_none().then(|| "/api/v1/items?id=7".to_string()),
        status,
        reason: status.map(|_| "OK".to_string()),
        headers: vec![
            ("Host".into(), "svc.example.internal".into()),
            ("Content-Type".into(), "application/json".into()),
        ],
        body_len: body.len() as u64,
        body: Some(Body {
            bytes: body.as_bytes().to_vec(),
            ..Body::default()
        }),
        ..Message::default()
    };
    let mut flags = FlagSet::EMPTY;
    flags.insert(Flag::Redacted);
    flags.insert(Flag::Gap);
    Exchange {
        ts_ns: 1_764_217_476_101_525_000,
        id: 0xe099_84e6_d882_fb66,
        vni: Some(101),
        tunnel: Some("vxlan"),
        mirror_source: Some("10.99.1.12".parse().unwrap()),
        client: Peer {
            ip: "10.99.0.1".parse().unwrap(),
            port: 42001,
        },
        server: Peer {
            ip: "10.99.0.2".parse().unwrap(),
            port: 80,
        },
        request: Some(msg(None, r#"{"name":"widget","qty":3}"#)),
        response: Some(msg(Some(200), r#"{"id":7,"name":"widget \u00e9"}"#)),
        interim: Vec::new(),
        timing: Timing {
            request_start_ns: Some(1_764_217_476_101_525_000),
            request_end_ns: Some(1_764_217_476_101_600_000),
            response_start_ns: Some(1_764_217_476_102_000_000),
            response_end_ns: Some(1_764_217_476_102_100_000),
        },
        flags,
        stream_id: None,
        rst_error: None,
        grpc: None,
    }
}

#[test]
fn encoding_a_text_record_allocates_nothing() {
    let ex = exchange();
    let encoder = LineEncoder::new(Some(0.5)).unwrap();
    let mut line = Vec::with_capacity(64 * 1024);
    // Warm-up: anything lazily initialised once per process is not per exchange.
    encoder.encode_exchange(&ex, &mut line).unwrap();
    line.clear();
    COUNTING.with(|c| c.set(true));
    for _ in 0..100 {
        encoder.encode_exchange(&ex, &mut line).unwrap();
        line.clear();
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0);
    encoder.encode_exchange(&ex, &mut line).unwrap();
    let text = String::from_utf8(line).unwrap();
    assert!(text.starts_with(r#"{"ts":"2025-11-27T04:24:36.101525Z","id":"e09984e6d882fb66""#));
    assert!(
        text.contains(r#""ttfb_us":400,"duration_us":575}"#),
        "{text}"
    );
    assert!(
        text.ends_with("\"flags\":[\"gap\",\"redacted\"],\"sample_rate\":0.5}\n"),
        "{text}"
    );
}
