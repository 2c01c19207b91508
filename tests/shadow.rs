//! `vxtap shadow` end to end: capture fixtures replayed to a candidate on loopback (a small
//! HTTP/1.1 server on std threads that records what arrives). (A module of tests/e2e.rs.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use super::{comparable, fixture, replay, run, vxtap, Listener};

/// One request as the candidate saw it: method, target, header fields (lower-case names).
pub type Seen = (String, String, Vec<(String, String)>);

/// A keep-alive HTTP/1.1 server on 127.0.0.1 answering `200 ok` to everything.
pub struct Candidate {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Candidate {
    pub fn start() -> Candidate {
        Candidate::start_with(Duration::ZERO)
    }

    /// A candidate that waits `sleep` before each answer.
    pub fn start_with(sleep: Duration) -> Candidate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let s = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let s = s.clone();
                std::thread::spawn(move || serve(stream, &s, sleep));
            }
        });
        Candidate { addr, seen }
    }
}

fn serve(stream: std::net::TcpStream, seen: &Mutex<Vec<Seen>>, sleep: Duration) {
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let head = method == "HEAD";
        seen.lock().unwrap().push((method, target, headers));
        std::thread::sleep(sleep);
        let resp: &[u8] = if head {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        if w.write_all(resp).is_err() {
            return;
        }
    }
}

#[test]
fn shadow_sends_only_safe_methods_marked_and_without_credentials() {
    let cand = Candidate::start();
    let dir = std::env::temp_dir().join(format!("vxtap-shadow-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (records, summary) = (dir.join("r.jsonl"), dir.join("s.json"));
    let out = vxtap()
        .args([
            "shadow",
            "--target",
            &format!("http://{}", cand.addr),
            "-q",
            "-o",
        ])
        .arg(&records)
        .arg("--summary")
        .arg(&summary)
        .arg(fixture("plain/http-mixed.pcap"))
        .arg(fixture("vxlan/mixed-vni101.pcap"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs: Vec<serde_json::Value> = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One record per exchange considered, as many as replay finds.
    let replayed = vxtap()
        .args(["replay", "-q"])
        .arg(fixture("plain/http-mixed.pcap"))
        .arg(fixture("vxlan/mixed-vni101.pcap"))
        .output()
        .unwrap();
    let exchanges = String::from_utf8_lossy(&replayed.stdout).lines().count();
    assert_eq!(recs.len(), exchanges);
    let seen = cand.seen.lock().unwrap().clone();
    let sent = recs.iter().filter(|r| r["verdict"] == "sent").count();
    assert_eq!(seen.len(), sent);
    assert!(sent > 10, "{sent}");
    for (method, _, headers) in &seen {
        assert!(
            ["GET", "HEAD", "OPTIONS"].contains(&method.as_str()),
            "{method}"
        );
        assert!(headers
            .iter()
            .any(|(n, v)| n == "x-vxtap-shadow" && v == "1"));
        assert!(!headers
            .iter()
            .any(|(n, _)| n == "authorization" || n == "cookie" || n == "proxy-authorization"));
    }
    let unsafe_methods = recs
        .iter()
        .filter(|r| !["GET", "HEAD", "OPTIONS"].contains(&r["method"].as_str().unwrap_or("")))
        .count();
    assert!(unsafe_methods > 0, "the fixtures have writes");
    assert_eq!(
        recs.iter().filter(|r| r["reason"] == "method").count(),
        unsafe_methods
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["overall"]["sent"], sent);
    assert_eq!(s["overall"]["exchanges"], recs.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shadow_refuses_a_target_outside_the_allow_list() {
    let out = vxtap()
        .args([
            "shadow",
            "--target",
            "http://127.0.0.1:9",
            "--allow-target",
            "127.0.0.1:10",
        ])
        .arg(fixture("plain/http-mixed.pcap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-target"));
}

/// `listen --shadow-target` with a candidate that takes 10 s per request: the exchange output
/// is exactly what it is without shadow, every exchange has a shadow record, and the breaker
/// opened after the timeouts (counts, not timings).
#[test]
fn listen_with_a_dead_slow_candidate_keeps_its_output_and_opens_the_breaker() {
    let cand = Candidate::start_with(Duration::from_secs(10));
    let f = fixture("vxlan/mixed-vni101.pcap");
    let shadow_out =
        std::env::temp_dir().join(format!("vxtap-e2e-shadow-{}.jsonl", std::process::id()));
    let target = format!("http://{}", cand.addr);
    let l = Listener::start(&[
        "--shadow-target",
        &target,
        "--shadow-output",
        shadow_out.to_str().unwrap(),
        "--request-timeout",
        "200ms",
        "--breaker-failures",
        "2",
        "--breaker-cooldown",
        "60s",
    ]);
    l.send(&f);
    let packets = run(vxtap().args(["stats", "--json"]).arg(&f)).stdout;
    let sent: serde_json::Value = serde_json::from_slice(&packets).unwrap();
    let sent = sent["packets"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while l.metric("vxtap_recv_datagrams_total") < sent
        || l.metric("vxtap_shadow_breaker_opens_total") < 1
    {
        assert!(
            Instant::now() < deadline,
            "datagrams not received or breaker not open"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(l.metric("vxtap_shadow_breaker_state"), 1);
    let live = l.stop();
    // The JSON output is untouched by the dead candidate.
    let offline = replay(&[&f], &[]);
    let mut a: Vec<String> = live.iter().map(comparable).collect();
    let mut b: Vec<String> = offline.iter().map(comparable).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let recs: Vec<serde_json::Value> = std::fs::read_to_string(&shadow_out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let _ = std::fs::remove_file(&shadow_out);
    assert_eq!(recs.len(), live.len(), "one shadow record per exchange");
    let n = |f: &dyn Fn(&serde_json::Value) -> bool| recs.iter().filter(|r| f(r)).count();
    let timeouts = n(&|r| r["candidate"]["error"] == "timeout");
    let open = n(&|r| r["reason"] == "breaker_open");
    assert_eq!(n(&|r| r["verdict"] == "sent"), 0);
    assert!(timeouts >= 2, "{timeouts}");
    assert!(open >= 1, "{open}");
    assert_eq!(cand.seen.lock().unwrap().len(), timeouts);
}
