//! HTTP/2 and gRPC end to end: every stream of the captures in pcaps/h2 (real nghttp2, curl
//! and grpcio traffic; clean, with loss, reordering, truncation, mid-stream starts, and in
//! VXLAN) against its ground truth (`*.truth.json`, an independent reading of the packets made
//! by pcaps/tools/h2truth.py). pcaps/h2/check.py does the same from Python with more detail.

use super::{fixture, replay};
use serde_json::Value;
use std::collections::BTreeMap;

/// (client, server, stream id) of a record.
fn key(r: &Value) -> (String, String, u64) {
    let ep = |v: &Value| format!("{}:{}", v["ip"].as_str().unwrap_or(""), v["port"]);
    (
        ep(&r["client"]),
        ep(&r["server"]),
        r["stream_id"].as_u64().unwrap_or(0),
    )
}

fn check_capture(rel: &str) -> (usize, usize) {
    let pcap = fixture(rel);
    let truth_path = pcap.with_extension("truth.json");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    let records = replay(&[&pcap], &["--no-redact"]);
    let mut by_key: BTreeMap<(String, String, u64), Vec<&Value>> = BTreeMap::new();
    for r in &records {
        if r.get("stream_id").is_some() {
            by_key.entry(key(r)).or_default().push(r);
        }
    }
    let (mut streams, mut exact) = (0, 0);
    let mut expected = 0;
    for c in truth["connections"].as_array().unwrap() {
        let (cl, sv) = (s(&c["client"]), s(&c["server"]));
        for t in c["streams"].as_array().unwrap() {
            streams += 1;
            let id = t["stream_id"].as_u64().unwrap();
            let got = by_key.get(&(cl.clone(), sv.clone(), id));
            let recoverable = ["method", "path", "status"]
                .iter()
                .any(|f| t["encoding"][f] == "recoverable");
            let Some(got) = got else {
                assert!(!recoverable, "{rel}: stream {id} has no record");
                continue;
            };
            expected += 1;
            assert_eq!(got.len(), 1, "{rel}: stream {id} has {} records", got.len());
            let r = got[0];
            // Never contradicted; exact where the truth says the field was static or literal.
            for (field, rec) in [
                ("method", &r["request"]["method"]),
                ("path", &r["request"]["uri"]),
                ("status", &r["response"]["status"]),
            ] {
                if t[field].is_null() {
                    continue;
                }
                let must = t["complete"] == true || t["encoding"][field] == "recoverable";
                if must || !rec.is_null() {
                    assert_eq!(rec, &t[field], "{rel}: stream {id} {field}: {r}");
                }
            }
            if t["complete"] != true {
                continue;
            }
            for (field, rec) in [
                ("request_body_len", &r["request"]["body_len"]),
                ("response_body_len", &r["response"]["body_len"]),
            ] {
                // A side never sent has no message in the record.
                if !(rec.is_null() && t[field] == 0) {
                    assert_eq!(rec, &t[field], "{rel}: stream {id} {field}");
                }
            }
            let flags: Vec<&str> = r["flags"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(
                flags.contains(&"pushed"),
                t["pushed"] == true,
                "{rel}: stream {id} pushed"
            );
            assert_eq!(
                flags.contains(&"rst_stream"),
                !t["rst_stream"].is_null(),
                "{rel}: stream {id} rst_stream"
            );
            if !t["rst_stream"].is_null() {
                assert_eq!(
                    r["rst_error"], t["rst_stream"]["code"],
                    "{rel}: stream {id}"
                );
            }
            let tg = &t["grpc"];
            if !tg.is_null() {
                let g = &r["grpc"];
                for f in ["service", "method", "status", "status_name", "message"] {
                    assert_eq!(g[f], tg[f], "{rel}: stream {id} grpc.{f}");
                }
                for (dir, tdir) in [
                    ("request", "request_messages"),
                    ("response", "response_messages"),
                ] {
                    assert_eq!(
                        g[dir]["count"], tg[tdir]["count"],
                        "{rel}: stream {id} {dir} count"
                    );
                    assert_eq!(
                        g[dir]["sizes"], tg[tdir]["sizes"],
                        "{rel}: stream {id} {dir} sizes"
                    );
                }
            }
            exact += 1;
        }
    }
    let h2_records = records
        .iter()
        .filter(|r| r.get("stream_id").is_some())
        .count();
    assert_eq!(h2_records, by_key.values().map(Vec::len).sum::<usize>());
    assert!(
        by_key.len() <= expected + (streams - expected),
        "{rel}: records for streams the truth does not have"
    );
    for k in by_key.keys() {
        let known = truth["connections"].as_array().unwrap().iter().any(|c| {
            s(&c["client"]) == k.0
                && s(&c["server"]) == k.1
                && c["streams"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["stream_id"].as_u64() == Some(k.2))
        });
        assert!(
            known,
            "{rel}: record for stream {k:?} the truth does not have"
        );
    }
    (streams, exact)
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Clean captures: every stream exact.
#[test]
fn h2_clean_captures_are_exact_per_stream() {
    for rel in [
        "h2/plain/h2-nghttp-prior.pcap",
        "h2/plain/h2-nghttp-post.pcap",
        "h2/plain/h2-nghttp-push.pcap",
        "h2/plain/h2-nghttp-upgrade.pcap",
        "h2/plain/h2-curl.pcap",
        "h2/plain/h2-loss-retransmit.pcap",
        "h2/plain/grpc-calls.pcap",
        "h2/plain/grpc-bigframes.pcap",
        "h2/vxlan/h2-curl-vni304.pcap",
        "h2/vxlan/h2-nghttp-push-vni302.pcap",
        "h2/vxlan/h2-nghttp-upgrade-vni303.pcap",
    ] {
        let (streams, exact) = check_capture(rel);
        assert!(streams > 0);
        assert_eq!(
            streams, exact,
            "{rel}: every stream of a clean capture is exact"
        );
    }
}

/// Damaged captures and mid-stream starts: recoverable fields exact, nothing contradicted, no
/// phantom or duplicate records, complete streams exact.
#[test]
fn h2_damaged_captures_recover_what_the_packets_allow() {
    for rel in [
        "h2/plain/grpc-midstream.pcap",
        "h2/vxlan/grpc-midstream-vni301.pcap",
        "h2/faults/grpc-calls-cut-start.pcap",
        "h2/faults/grpc-calls-lost-data.pcap",
        "h2/faults/grpc-calls-reorder.pcap",
        "h2/faults/h2-nghttp-prior-lost-data.pcap",
        "h2/faults/h2-nghttp-push-cut-start.pcap",
    ] {
        check_capture(rel);
    }
}

/// The public HTTP/2 and gRPC captures (../shared/pcaps/public, category c), when present.
/// Expectations read from the packets (tshark's HTTP/2 dissector agrees on streams, statuses
/// and content lengths).
#[test]
fn h2_public_captures() {
    let Some(dir) = super::shared_public() else {
        eprintln!("../shared/pcaps/public absent: skipped");
        return;
    };
    let ids = |recs: &[Value]| -> Vec<u64> {
        let mut v: Vec<u64> = recs
            .iter()
            .filter_map(|r| r["stream_id"].as_u64())
            .collect();
        v.sort_unstable();
        v
    };
    let by_id = |recs: &[Value], id: u64| -> Value {
        recs.iter()
            .find(|r| r["stream_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no stream {id}"))
    };
    // grpc-go unary call: one stream, one message each way, decoded without a schema.
    let recs = replay(
        &[&dir.join("grpc-go-for-professionals__Unary.pcapng")],
        &["--no-redact", "--grpc-decode"],
    );
    assert_eq!(ids(&recs), vec![1]);
    let r = &recs[0];
    assert_eq!(r["request"]["method"], "POST");
    assert_eq!(r["request"]["uri"], "/greet.GreetService/Greet");
    assert_eq!(r["response"]["status"], 200);
    let g = &r["grpc"];
    assert_eq!(
        (g["service"].as_str(), g["method"].as_str()),
        (Some("greet.GreetService"), Some("Greet"))
    );
    assert_eq!(
        (g["status"].as_u64(), g["status_name"].as_str()),
        (Some(0), Some("OK"))
    );
    assert_eq!(g["request"]["sizes"], serde_json::json!([9]));
    assert_eq!(g["response"]["sizes"], serde_json::json!([15]));
    assert_eq!(
        g["response"]["messages"][0]["dump"][0]["value"],
        "Hello Clement"
    );
    // nghttpd prior knowledge: six GETs, content lengths as the server announced them.
    let recs = replay(
        &[&dir.join("suricata-verify__http2-keywords_input.pcap")],
        &["--no-redact"],
    );
    assert_eq!(ids(&recs), vec![1, 3, 5, 7, 9, 11]);
    for (id, len) in [(1, 22617), (3, 85592), (5, 252879)] {
        let r = by_id(&recs, id);
        assert_eq!(r["response"]["status"], 200);
        assert_eq!(r["response"]["body_len"], len, "stream {id}");
        assert_eq!(r["request"]["version"], "HTTP/2");
    }
    // h2c upgrade: stream 1 is the HTTP/1.1 request answered over HTTP/2 after the 101.
    let recs = replay(
        &[&dir.join("suricata-verify__http2-keywords2_input.pcap")],
        &["--no-redact"],
    );
    assert_eq!(ids(&recs), vec![1, 3]);
    let r = by_id(&recs, 1);
    assert_eq!(r["request"]["version"], "HTTP/1.1");
    assert_eq!(r["request"]["uri"], "/robots.txt");
    assert_eq!(r["interim"][0]["status"], 101);
    assert_eq!(r["response"]["version"], "HTTP/2");
    assert_eq!(r["response"]["status"], 200);
    assert_eq!(by_id(&recs, 3)["response"]["status"], 404);
    // A browser's HTTP/2 session (HPACK with a busy dynamic table).
    let recs = replay(
        &[&dir.join("suricata-verify__http2-compression-bug_input.pcap")],
        &["--no-redact"],
    );
    assert_eq!(ids(&recs), vec![1, 3, 5, 7, 9]);
    for r in &recs {
        assert_eq!(r["response"]["status"], 200, "{r}");
        assert!(
            !r["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "headers_partial"),
            "{r}"
        );
    }
}
