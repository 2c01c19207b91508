//! The issue's proof cases at the library level (the CLI's are in tests/e2e.rs).

use crate::*;
use flate2::{write::GzEncoder, Compression};
use std::io::Write;

const TS: u64 = 1_764_800_000_000_000_000;

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn run(
    engine: &mut Engine,
    uri: &str,
    prod: (u16, &[(String, String)], &[u8]),
    cand: (u16, &[(String, String)], &[u8]),
) -> Comparison {
    let pair = Pair {
        id: Some("x"),
        method: "GET",
        uri,
        request_body: b"",
        ts_ns: TS,
        production: Response::received(prod.0, prod.1, prod.2),
        candidate: Ok(Response::received(cand.0, cand.1, cand.2)),
        latency_us: (Some(1000), Some(1500)),
    };
    engine.process(&pair).1
}

#[test]
fn identical_but_date_server_and_compression_is_a_match() {
    let body = br#"{"id": 7, "name": "ann", "tags": ["a", "b"], "price": 1.0}"#;
    let ph = h(&[
        ("Date", "Wed, 03 Dec 2025 21:13:20 GMT"),
        ("Server", "nginx"),
        ("Content-Encoding", "gzip"),
        ("Content-Type", "application/json"),
    ]);
    let ch = h(&[
        ("date", "Wed, 03 Dec 2025 21:13:21 GMT"),
        ("server", "hyper"),
        ("content-type", "application/json"),
    ]);
    let gz = gzip(body);
    let cand = br#"{"price": 1, "name": "ann", "id": 7, "tags": ["a", "b"]}"#;
    let mut e = Engine::new(CompareConfig::default());
    for i in 0..50 {
        let c = run(
            &mut e,
            &format!("/users/{i}"),
            (200, &ph, &gz),
            (200, &ch, cand),
        );
        assert_eq!(c.verdict, Verdict::Match, "{c:?}");
    }
    let s = e.summary(10);
    assert_eq!(
        (s.total.requests, s.total.mismatch, s.total.r#match),
        (50, 0, 50)
    );
    assert_eq!(s.endpoints[0].endpoint, "GET /users/{id}");
    assert_eq!(s.endpoints[0].latency_us.ratio.p50, Some(1.5));
}

#[test]
fn one_changed_field_on_one_endpoint_is_reported_there_alone() {
    let mut e = Engine::new(CompareConfig::default());
    let none = h(&[]);
    for i in 0..200 {
        let p = format!(
            r#"{{"id": {i}, "items": [{{"sku": "a", "qty": 1}}, {{"sku": "b", "qty": 2}}]}}"#
        );
        let c = format!(
            r#"{{"id": {i}, "items": [{{"sku": "a", "qty": 1}}, {{"sku": "b", "qty": 3}}]}}"#
        );
        let r = run(
            &mut e,
            &format!("/orders/{i}"),
            (200, &none, p.as_bytes()),
            (200, &none, c.as_bytes()),
        );
        assert_eq!(r.verdict, Verdict::Mismatch);
        assert_eq!(r.differences.len(), 1);
        assert_eq!(r.differences[0].path, "body.items[1].qty");
        let ok = format!(r#"{{"user": {i}}}"#);
        let r = run(
            &mut e,
            &format!("/users/{i}"),
            (200, &none, ok.as_bytes()),
            (200, &none, ok.as_bytes()),
        );
        assert_eq!(r.verdict, Verdict::Match);
    }
    let s = e.summary(10);
    let reported: Vec<_> = s
        .endpoints
        .iter()
        .flat_map(|ep| {
            ep.paths
                .iter()
                .filter(|p| p.reported)
                .map(move |p| (ep.endpoint.as_str(), p.path.as_str()))
        })
        .collect();
    assert_eq!(reported, [("GET /orders/{id}", "body.items[*].qty")]);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["total"]["reported_paths"], 1);
}

#[test]
fn a_random_request_id_is_noise_without_config() {
    let mut e = Engine::new(CompareConfig::default());
    let none = h(&[]);
    for i in 0..100u64 {
        let rid = |salt: u64| {
            format!(
                "{:032x}",
                (i * 7919 + salt).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
            )
        };
        let p = format!(
            r#"{{"ok": true, "request_id": "{}", "at": "2025-12-03T21:13:{:02}Z"}}"#,
            rid(1),
            i % 60
        );
        let c = format!(
            r#"{{"ok": true, "request_id": "{}", "at": "2025-12-03T21:14:{:02}Z"}}"#,
            rid(2),
            i % 60
        );
        let r = run(
            &mut e,
            "/ping",
            (200, &none, p.as_bytes()),
            (200, &none, c.as_bytes()),
        );
        assert_eq!(r.verdict, Verdict::Noise, "{r:?}");
    }
    let s = e.summary(10);
    assert_eq!(s.total.noise, 100);
    assert_eq!(s.total.reported_paths, 0);
}

#[test]
fn production_repeats_teach_noise() {
    let mut e = Engine::new(CompareConfig::default());
    let none = h(&[]);
    // The same request twice in production with a different `rank` (a non-deterministic
    // field no shape gives away), and the candidate differing there about as often.
    for i in 0..40 {
        let p = format!(r#"{{"rank": {}}}"#, i % 3);
        let c = format!(r#"{{"rank": {}}}"#, (i * 2) % 3);
        run(
            &mut e,
            "/feed",
            (200, &none, p.as_bytes()),
            (200, &none, c.as_bytes()),
        );
    }
    let s = e.summary(10);
    let ep = &s.endpoints[0];
    assert!(ep.noise_pairs.production_repeats >= 39);
    assert!(ep.noise > 20, "{ep:?}");
    assert!(!ep.paths[0].reported);
}

#[test]
fn float_tolerance_in_and_out() {
    let mut cfg = CompareConfig::default();
    cfg.add_tolerance("body.scores[*]=0.001").unwrap();
    let c = Comparer::new(cfg);
    let none = h(&[]);
    let cmp = |p: &str, q: &str| {
        c.compare(
            "GET /x",
            &Response::received(200, &none, p.as_bytes()),
            &Response::received(200, &none, q.as_bytes()),
            0,
        )
    };
    assert_eq!(
        cmp(
            r#"{"scores": [0.5, 0.25]}"#,
            r#"{"scores": [0.5004, 0.2509]}"#
        )
        .verdict,
        Verdict::Match
    );
    let out = cmp(r#"{"scores": [0.5, 0.25]}"#, r#"{"scores": [0.502, 0.25]}"#);
    assert_eq!(out.verdict, Verdict::Mismatch);
    assert_eq!(out.differences[0].path, "body.scores[0]");
    // No tolerance elsewhere; integers compare exactly, 1 equals 1.0.
    assert_eq!(
        cmp(r#"{"other": 0.5}"#, r#"{"other": 0.5004}"#).verdict,
        Verdict::Mismatch
    );
    assert_eq!(cmp(r#"{"n": 1}"#, r#"{"n": 1.0}"#).verdict, Verdict::Match);
    assert_eq!(
        cmp(r#"{"n": 9007199254740993}"#, r#"{"n": 9007199254740992}"#).verdict,
        Verdict::Mismatch
    );
}

#[test]
fn status_class_shift() {
    let mut e = Engine::new(CompareConfig::default());
    let none = h(&[]);
    let r = run(&mut e, "/a", (200, &none, b"ok"), (500, &none, b"oops"));
    assert_eq!(r.verdict, Verdict::Mismatch);
    assert_eq!(r.differences[0].path, "status");
    let s = e.summary(10);
    assert_eq!(s.total.status_shifts, 1);
    let sh = &s.endpoints[0].status_shifts[0];
    assert_eq!((sh.from, sh.to, sh.count), ("2xx", "5xx", 1));
}

#[test]
fn kinds_arrays_and_headers() {
    let mut cfg = CompareConfig::default();
    cfg.add_unordered("body.tags").unwrap();
    cfg.add_array_key("body.items=id").unwrap();
    cfg.add_ignore("body.meta").unwrap();
    let c = Comparer::new(cfg);
    let cmp = |ph: &[(String, String)], p: &str, ch: &[(String, String)], q: &str| {
        c.compare(
            "GET /x",
            &Response::received(200, ph, p.as_bytes()),
            &Response::received(200, ch, q.as_bytes()),
            0,
        )
    };
    let none = h(&[]);
    let paths = |c: Comparison| {
        c.differences
            .iter()
            .map(|d| format!("{} {}", d.path, d.kind.as_str()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        paths(cmp(
            &none,
            r#"{"tags": [1, 2, 3], "meta": {"t": 1}}"#,
            &none,
            r#"{"tags": [3, 1, 2], "meta": {"t": 2}}"#
        )),
        Vec::<String>::new()
    );
    assert_eq!(
        paths(cmp(
            &none,
            r#"{"items": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]}"#,
            &none,
            r#"{"items": [{"id": 2, "v": "c"}, {"id": 1, "v": "a"}, {"id": 3}]}"#
        )),
        ["body.items[1].v value", "body.items[2] extra"]
    );
    assert_eq!(
        paths(cmp(
            &none,
            r#"{"l": [1, 2, 3]}"#,
            &none,
            r#"{"l": [3, 2, 1]}"#
        )),
        ["body.l array_order"]
    );
    assert_eq!(
        paths(cmp(&none, r#"{"l": [1, 2]}"#, &none, r#"{"l": [1, 2, 5]}"#)),
        ["body.l array_length", "body.l[2] extra"]
    );
    assert_eq!(
        paths(cmp(
            &none,
            r#"{"a": 1, "b": "x"}"#,
            &none,
            r#"{"a": "1", "c": 2}"#
        )),
        ["body.a type", "body.b missing", "body.c extra"]
    );
    let d = cmp(
        &none,
        r#"{"by_id": {"17": {"n": 1}}}"#,
        &none,
        r#"{"by_id": {"17": {"n": 2}}}"#,
    );
    assert_eq!(d.differences[0].path, "body.by_id[\"17\"].n");
    assert_eq!(d.differences[0].count_path, "body.by_id[*].n");
    assert_eq!(paths(cmp(&none, "hello", &none, "hullo")), ["body value"]);
    assert_eq!(paths(cmp(&none, "{}", &none, "<html>")), ["body type"]);
    let ph = h(&[
        ("X-Version", "1"),
        ("X-Envoy-Upstream-Service-Time", "3"),
        ("Vary", "a"),
    ]);
    let ch = h(&[("x-version", "2"), ("x-new", "y"), ("Vary", "a")]);
    assert_eq!(
        paths(cmp(&ph, "", &ch, "")),
        ["header.x-new extra", "header.x-version value"]
    );
}

#[test]
fn incomplete_or_undecodable_bodies_are_skipped() {
    let c = Comparer::new(CompareConfig::default());
    let none = h(&[]);
    let gz = h(&[("content-encoding", "gzip")]);
    let r = c.compare(
        "GET /x",
        &Response::received(200, &gz, b"not gzip"),
        &Response::received(200, &none, b"x"),
        0,
    );
    assert_eq!(
        (r.verdict, r.reason.as_deref()),
        (Verdict::Skipped, Some("production_body_undecodable"))
    );
    let mut p = Response::received(200, &none, b"{}");
    p.complete = false;
    let r = c.compare("GET /x", &p, &Response::received(500, &none, b"{}"), 0);
    assert_eq!(r.verdict, Verdict::Skipped);
    assert_eq!(r.differences[0].path, "status");
}

#[test]
fn a_million_distinct_paths_stay_bounded() {
    let limits = Limits::default();
    let mut a = Aggregator::new(limits, ReportRule::default());
    let mut router = vxtap_routes::Router::new(Default::default());
    let eps: Vec<_> = (0..50)
        .map(|i| router.endpoint("GET", &format!("/r{i}")))
        .collect();
    for i in 0..1_000_000u32 {
        let path = format!("body.f{i}");
        let d = Difference {
            path: path.clone(),
            count_path: path,
            kind: Kind::Value,
            production: Some(serde_json::json!(i)),
            candidate: Some(serde_json::json!(i + 1)),
            noise: false,
            shape_noise: false,
        };
        let c = Comparison {
            verdict: Verdict::Mismatch,
            reason: None,
            differences: vec![d],
            differences_dropped: 0,
        };
        a.record(
            eps[i as usize % 50],
            None,
            &c,
            (Some(200), Some(200)),
            (Some(10), Some(20)),
        );
    }
    assert_eq!(
        a.paths(),
        limits.max_paths.min(50 * limits.max_paths_per_endpoint)
    );
    assert_eq!(a.paths_overflow(), 1_000_000 - a.paths() as u64);
    assert!(a.heap_bytes() < 64 << 20, "{}", a.heap_bytes());
    let s = a.summary(&router, 5);
    assert_eq!(s.total.requests, 1_000_000);
    assert_eq!(
        s.paths_overflow,
        1_000_000 - (limits.max_paths.min(50 * limits.max_paths_per_endpoint)) as u64
    );
}

mod props {
    use crate::*;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z0-9 .\"\\\\-]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("[a-z0-9 _\"\\[\\].-]{0,6}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn reverse_keys(v: &Value) -> Value {
        match v {
            Value::Object(o) => Value::Object(
                o.iter()
                    .rev()
                    .map(|(k, v)| (k.clone(), reverse_keys(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(reverse_keys).collect()),
            v => v.clone(),
        }
    }

    fn cmp(c: &Comparer, a: &Value, b: &Value) -> Comparison {
        let (a, b) = (a.to_string(), b.to_string());
        c.compare(
            "GET /x",
            &Response::received(200, &[], a.as_bytes()),
            &Response::received(200, &[], b.as_bytes()),
            0,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A document equals itself however its objects' keys are ordered.
        #[test]
        fn equal_documents_match(v in json()) {
            let c = Comparer::new(CompareConfig::default());
            prop_assert_eq!(cmp(&c, &v, &v).verdict, Verdict::Match);
            prop_assert_eq!(cmp(&c, &v, &reverse_keys(&v)).verdict, Verdict::Match);
        }

        /// Any two documents: bounded output, and every path (both forms) is accepted verbatim
        /// by the config grammar and canonical already; pasting it as an ignore rule silences it.
        #[test]
        fn paths_parse_and_output_is_bounded(a in json(), b in json()) {
            let mut cfg = CompareConfig::default();
            cfg.limits.max_differences = 8;
            let c = Comparer::new(cfg);
            let out = cmp(&c, &a, &b);
            prop_assert!(out.differences.len() <= 8);
            prop_assert_eq!(out.verdict == Verdict::Match, out.differences.is_empty() && out.differences_dropped == 0);
            for d in &out.differences {
                for p in [&d.path, &d.count_path] {
                    let parsed = Pattern::parse(p);
                    prop_assert!(parsed.is_ok(), "{p}: {parsed:?}");
                    let canonical = parsed.unwrap().as_str().to_string();
                    prop_assert_eq!(&canonical, p);
                }
            }
            let mut cfg = CompareConfig::default();
            for d in &out.differences {
                cfg.add_ignore(&d.count_path).unwrap();
            }
            if out.differences_dropped == 0 {
                let again = cmp(&Comparer::new(cfg), &a, &b);
                prop_assert!(again.differences.is_empty(), "{:?}", again.differences);
            }
        }
    }
}
