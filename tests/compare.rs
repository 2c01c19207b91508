//! `vxtap compare` end to end: records replayed from the fixture captures, the candidate side
//! edited as a candidate service would answer differently.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn vxtap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vxtap"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vxtap-compare-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn replay(pcap: &str, extra: &[&str], out: &Path) {
    let st = vxtap()
        .args(["replay", "-q", "--no-progress", "--max-body-bytes", "1MiB"])
        .args(extra)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("pcaps/plain")
                .join(pcap),
        )
        .arg("-o")
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

fn lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write(p: &Path, recs: &[Value]) {
    let text: String = recs.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(p, text).unwrap();
}

/// Runs compare; returns (records, summary).
fn compare(a: &Path, b: &Path, extra: &[&str]) -> (Vec<Value>, Value) {
    // Per candidate file and flags: the tests run in parallel.
    let tag = format!(
        "{}-{}",
        b.file_name().unwrap().to_string_lossy(),
        extra.join("_")
    );
    let (out, sum) = (
        tmp(&format!("{tag}.out")),
        tmp(&format!("{tag}.summary.json")),
    );
    let o = vxtap()
        .arg("compare")
        .arg(a)
        .arg(b)
        .arg("-o")
        .arg(&out)
        .arg("--summary")
        .arg(&sum)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("compare: "));
    let s = serde_json::from_str(&std::fs::read_to_string(&sum).unwrap()).unwrap();
    (lines(&out), s)
}

fn set_header(rec: &mut Value, name: &str, value: &str) {
    for h in rec["response"]["headers"].as_array_mut().unwrap() {
        if h[0].as_str().unwrap().eq_ignore_ascii_case(name) {
            h[1] = Value::String(value.into());
        }
    }
}

#[test]
fn same_answers_with_other_date_server_and_compression_match() {
    let (a, b) = (tmp("gz-a.jsonl"), tmp("gz-b.jsonl"));
    replay("http-gzip.pcap", &[], &a);
    // The candidate answers uncompressed, from another server, a second later.
    replay("http-gzip.pcap", &["--decode-content"], &b);
    let mut recs = lines(&b);
    for r in &mut recs {
        set_header(r, "date", "Fri, 27 Nov 2026 04:24:27 GMT");
        set_header(r, "server", "hyper");
    }
    write(&b, &recs);
    let (out, s) = compare(&a, &b, &[]);
    assert_eq!(out.len(), 4);
    assert!(
        out.iter().all(|r| r["comparison"]["verdict"] == "match"),
        "{out:?}"
    );
    assert_eq!(s["total"]["mismatch"], 0);
    assert_eq!(s["total"]["match"], 4);
    assert_eq!(s["pairing"]["unpaired_production"], 0);
}

#[test]
fn one_changed_field_and_a_status_shift_are_reported_where_they_are() {
    let (a, b) = (tmp("ka-a.jsonl"), tmp("ka-b.jsonl"));
    replay("http-keepalive.pcap", &[], &a);
    let mut recs = lines(&a);
    for r in &mut recs {
        match r["request"]["uri"].as_str().unwrap() {
            "/medium.json" => {
                let body = r["response"]["body"].as_str().unwrap();
                let mut v: Value = serde_json::from_str(body).unwrap();
                v["items"][3]["ok"] = Value::Bool(false);
                r["response"]["body"] = Value::String(v.to_string());
            }
            "/small.txt" => r["response"]["status"] = 500.into(),
            _ => {}
        }
    }
    write(&b, &recs);
    let (out, s) = compare(&a, &b, &[]);
    for r in &out {
        let diffs: Vec<&str> = r["comparison"]["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["path"].as_str().unwrap())
            .collect();
        match r["uri"].as_str().unwrap() {
            "/medium.json" => assert_eq!(diffs, ["body.items[3].ok"]),
            "/small.txt" => assert_eq!(diffs, ["status"]),
            _ => assert_eq!(r["comparison"]["verdict"], "match", "{r}"),
        }
    }
    assert_eq!(s["total"]["status_shifts"], 1);
    let mut reported = Vec::new();
    for e in s["endpoints"].as_array().unwrap() {
        for p in e["paths"].as_array().unwrap() {
            if p["reported"] == true {
                reported.push(format!(
                    "{} {}",
                    e["endpoint"].as_str().unwrap(),
                    p["path"].as_str().unwrap()
                ));
            }
        }
        if e["endpoint"] == "GET /small.txt" {
            assert_eq!(e["status_shifts"][0]["from"], "2xx");
            assert_eq!(e["status_shifts"][0]["to"], "5xx");
        }
    }
    reported.sort();
    assert_eq!(
        reported,
        ["GET /medium.json body.items[*].ok", "GET /small.txt status"]
    );
    // The path pasted back as an ignore rule silences it.
    let (out, _) = compare(&a, &b, &["--ignore", "body.items[*].ok"]);
    let medium = out.iter().find(|r| r["uri"] == "/medium.json").unwrap();
    assert_eq!(medium["comparison"]["verdict"], "match");
}

#[test]
fn the_pairing_window_bounds_what_waits() {
    let (a, b) = (tmp("win-a.jsonl"), tmp("win-b.jsonl"));
    replay("http-keepalive.pcap", &[], &a);
    let mut recs = lines(&a);
    assert_eq!(recs.len(), 6);
    // The candidate saw the requests in the opposite order.
    recs.reverse();
    write(&b, &recs);
    let (out, s) = compare(&a, &b, &[]);
    assert_eq!(out.len(), 6);
    assert_eq!(s["pairing"]["unpaired_production"], 0);
    // A window of one production exchange: reaching the last request pushes the five before
    // it out; the candidate's later requests find nothing waiting.
    let (out, s) = compare(&a, &b, &["--window", "1"]);
    assert_eq!(out.len(), 1);
    assert_eq!(s["pairing"]["pairs"], 1);
    assert_eq!(s["pairing"]["unpaired_production"], 5);
    assert_eq!(s["pairing"]["unpaired_candidate"], 5);
}
