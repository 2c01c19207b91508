//! Comparison cost per exchange pair on ~2 KB JSON bodies, against serde_json's own parse of
//! both bodies in the same run, and the heap of the noise statistics under 1 million distinct
//! paths (a counting allocator measures it; the caps must hold it flat).
//!
//! `cargo bench -p vxtap-compare --bench compare` (release profile), or bench/compare_diff.sh.
//! Cases: the same document re-serialised (key order and number spelling differ, so the
//! byte-equality shortcut does not apply and the whole tree is walked), one field changed,
//! byte-identical bodies (the shortcut), and the whole stage (`Engine::process`: routing,
//! production-repeat noise learning, aggregation) on the changed-field pair.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{json, Value};
use vxtap_compare::*;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn doc(i: u64, change: bool) -> Value {
    let items: Vec<Value> = (0..24)
        .map(|k| {
            json!({"id": k, "sku": format!("SKU-{k:05}"), "qty": (k * 7 + i) % 5,
                   "price": 19.99 + k as f64, "tags": ["a", "b"]})
        })
        .collect();
    let mut v = json!({
        "order_id": i, "status": "paid", "customer": {"id": 4242, "name": "Ann Example", "tier": "gold"},
        "items": items, "total": 1234.5, "currency": "EUR",
        "created_at": "2025-12-03T21:13:20Z"
    });
    if change {
        v["items"][5]["qty"] = json!(99);
    }
    v
}

/// Re-serialised with integers spelled as floats (and keys in reverse order if `reverse`):
/// equal as JSON, different as bytes.
fn respell(v: &Value, reverse: bool) -> Value {
    match v {
        Value::Object(o) if reverse => Value::Object(
            o.iter()
                .rev()
                .map(|(k, v)| (k.clone(), respell(v, reverse)))
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), respell(v, reverse)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|e| respell(e, reverse)).collect()),
        Value::Number(n) if n.is_u64() => json!(n.as_f64().unwrap()),
        v => v.clone(),
    }
}

/// A labelled benchmark case.
type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Runs the cases round-robin (every case in every round, so a busy moment of the shared
/// machine hits all of them) and keeps each case's best round: ns per pair.
fn interleaved(cases: &mut [Case<'_>], iters: u32, rounds: u32) -> Vec<f64> {
    let mut best = vec![f64::MAX; cases.len()];
    for (_, f) in cases.iter_mut() {
        for _ in 0..iters / 4 {
            f();
        }
    }
    for _ in 0..rounds {
        for (i, (_, f)) in cases.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            best[i] = best[i].min(t.elapsed().as_nanos() as f64 / iters as f64);
        }
    }
    for ((label, _), ns) in cases.iter().zip(&best) {
        println!("{label:<56} {ns:>9.0} ns/pair");
    }
    best
}

fn main() {
    let prod = serde_json::to_vec(&doc(1, false)).unwrap();
    let same = serde_json::to_vec(&respell(&doc(1, false), false)).unwrap();
    let reversed = serde_json::to_vec(&respell(&doc(1, false), true)).unwrap();
    let changed = serde_json::to_vec(&doc(1, true)).unwrap();
    println!(
        "body sizes: production {} B, respelled {} B, changed {} B",
        prod.len(),
        same.len(),
        changed.len()
    );
    let none: Vec<(String, String)> = vec![("content-type".into(), "application/json".into())];
    let comparer = Comparer::new(CompareConfig::default());
    let iters = 2_000;

    let mut engine = Engine::new(CompareConfig::default());
    let mut n = 0u64;
    let mut cases: Vec<Case<'_>> = Vec::new();
    cases.push((
        "serde_json parse of production + respelled (baseline)",
        Box::new(|| {
            let a: Value = serde_json::from_slice(black_box(&prod)).unwrap();
            let b: Value = serde_json::from_slice(black_box(&same)).unwrap();
            black_box((a, b));
        }),
    ));
    cases.push((
        "serde_json parse of production + changed (baseline)",
        Box::new(|| {
            let a: Value = serde_json::from_slice(black_box(&prod)).unwrap();
            let b: Value = serde_json::from_slice(black_box(&changed)).unwrap();
            black_box((a, b));
        }),
    ));
    cases.push((
        "compare: equal JSON, numbers respelled (full walk)",
        Box::new(|| {
            let c = comparer.compare(
                "GET /orders/{id}",
                &Response::received(200, &none, black_box(&prod)),
                &Response::received(200, &none, black_box(&same)),
                0,
            );
            assert_eq!(c.verdict, Verdict::Match);
        }),
    ));
    cases.push((
        "compare: equal JSON, every object's keys reversed",
        Box::new(|| {
            let c = comparer.compare(
                "GET /orders/{id}",
                &Response::received(200, &none, black_box(&prod)),
                &Response::received(200, &none, black_box(&reversed)),
                0,
            );
            assert_eq!(c.verdict, Verdict::Match);
        }),
    ));
    cases.push((
        "compare: one field changed",
        Box::new(|| {
            let c = comparer.compare(
                "GET /orders/{id}",
                &Response::received(200, &none, black_box(&prod)),
                &Response::received(200, &none, black_box(&changed)),
                0,
            );
            assert_eq!(c.differences.len(), 1);
        }),
    ));
    cases.push((
        "compare: byte-identical bodies (shortcut)",
        Box::new(|| {
            let c = comparer.compare(
                "GET /orders/{id}",
                &Response::received(200, &none, black_box(&prod)),
                &Response::received(200, &none, black_box(&prod)),
                0,
            );
            assert_eq!(c.verdict, Verdict::Match);
        }),
    ));
    cases.push((
        "Engine::process (route, noise learning, aggregate)",
        Box::new(|| {
            n += 1;
            let uri = format!("/orders/{}", n % 1000);
            let pair = Pair {
                id: None,
                method: "GET",
                uri: &uri,
                request_body: b"",
                ts_ns: 0,
                production: Response::received(200, &none, &prod),
                candidate: Ok(Response::received(200, &none, &changed)),
                latency_us: (Some(900 + n % 200), Some(1000 + n % 300)),
            };
            black_box(engine.process(&pair));
        }),
    ));
    let r = interleaved(&mut cases, iters, 15);
    drop(cases);
    let (parse_same, parse_changed, equal, rev, diff, stage) = (r[0], r[1], r[2], r[3], r[4], r[6]);
    println!(
        "added over parsing the same two bodies: equal {:+.0}%, keys reordered {:+.0}%, changed {:+.0}%, whole stage (changed) {:+.0}%",
        (equal / parse_same - 1.0) * 100.0,
        (rev / parse_same - 1.0) * 100.0,
        (diff / parse_changed - 1.0) * 100.0,
        (stage / parse_changed - 1.0) * 100.0
    );

    // Noise statistics under 1 million distinct paths over 100 endpoints.
    let before = LIVE.load(Ordering::Relaxed);
    let limits = Limits::default();
    let mut agg = Aggregator::new(limits, ReportRule::default());
    let mut router = vxtap_routes::Router::new(vxtap_routes::RouterConfig {
        cardinality: 1000,
        ..Default::default()
    });
    let eps: Vec<_> = (0..100)
        .map(|i| router.endpoint("GET", &format!("/r{i}")))
        .collect();
    let t = Instant::now();
    for i in 0..1_000_000u64 {
        let path = format!("body.field_{i}.value");
        let d = Difference {
            path: path.clone(),
            count_path: path,
            kind: Kind::Value,
            production: Some(json!(i)),
            candidate: Some(json!("x".repeat(40))),
            noise: false,
            shape_noise: false,
        };
        let c = Comparison {
            verdict: Verdict::Mismatch,
            reason: None,
            differences: vec![d],
            differences_dropped: 0,
        };
        agg.record(
            eps[(i % 100) as usize],
            Some("0123456789abcdef"),
            &c,
            (Some(200), Some(200)),
            (Some(i % 5000 + 1), Some(i % 7000 + 1)),
        );
        if i % 2 == 0 {
            agg.record_noise(
                eps[(i % 100) as usize],
                NoiseSource::SelfRepeat,
                &c.differences,
            );
        }
    }
    let live = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "1,000,000 distinct paths over 100 endpoints in {:.2}s: {} paths held (cap {}), {} differences counted as overflow, heap {:.1} MiB (estimate {:.1} MiB)",
        t.elapsed().as_secs_f64(),
        agg.paths(),
        limits.max_paths,
        agg.paths_overflow(),
        live as f64 / (1 << 20) as f64,
        agg.heap_bytes() as f64 / (1 << 20) as f64
    );
}
