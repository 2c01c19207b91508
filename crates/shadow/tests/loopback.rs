//! The stage against real HTTP servers on loopback (hyper, in-process): what arrives, on which
//! connection, in which order, at which pace, and what a slow candidate does to the stage.

use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use vxtap_http::{Exchange, FlagSet, Message, Peer, Timing};
use vxtap_shadow::{
    NoCompare, PathEndpoints, ShadowConfig, ShadowReport, ShadowStage, ShadowStats, Target,
    WhenFull,
};
use vxtap_sink::Redactor;

/// One request as the candidate saw it.
#[derive(Clone, Debug)]
struct Seen {
    peer: SocketAddr,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: Instant,
}

#[derive(Clone, Default)]
struct Behaviour {
    sleep: Option<Duration>,
    redirect_to: Option<String>,
}

/// A hyper server on 127.0.0.1:0 on its own runtime; records every request.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _rt: tokio::runtime::Runtime,
}

impl Server {
    fn start(b: Behaviour) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let s2 = seen.clone();
        rt.spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let seen = s2.clone();
                let b = b.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        let b = b.clone();
                        async move {
                            let at = Instant::now();
                            let method = req.method().to_string();
                            let path = req.uri().to_string();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
                                .collect();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            seen.lock().unwrap().push(Seen {
                                peer,
                                method,
                                path,
                                headers,
                                body: body.to_vec(),
                                at,
                            });
                            if let Some(d) = b.sleep {
                                tokio::time::sleep(d).await;
                            }
                            let resp = match &b.redirect_to {
                                Some(loc) => Response::builder()
                                    .status(302)
                                    .header("location", loc.as_str())
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                                None => Response::new(Full::new(Bytes::from_static(b"candidate"))),
                            };
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Server {
            addr,
            seen,
            _rt: rt,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn records(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn cfg(server: &Server) -> ShadowConfig {
    let mut c = ShadowConfig::new(Target::parse(&format!("http://{}", server.addr)).unwrap());
    c.timeout = Duration::from_secs(5);
    c.when_full = WhenFull::Wait;
    c
}

fn start(c: ShadowConfig) -> (ShadowStage, Buf) {
    let buf = Buf::default();
    let redactor = Redactor::with_key(&vxtap_sink::RedactConfig::default(), b"k").unwrap();
    let stage = ShadowStage::start(
        c,
        Box::new(buf.clone()),
        redactor,
        Box::new(PathEndpoints),
        Box::new(NoCompare),
        Arc::new(ShadowStats::new()),
    )
    .unwrap();
    (stage, buf)
}

/// An exchange of client port `conn`, `n`th on it, first byte at `ts_ms`.
fn ex(
    conn: u16,
    n: u64,
    ts_ms: u64,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Exchange {
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let ts = 1_700_000_000_000_000_000 + ts_ms * 1_000_000;
    Exchange {
        ts_ns: ts,
        id: u64::from(conn) << 32 | n,
        vni: Some(7),
        tunnel: None,
        mirror_source: None,
        client: Peer { ip, port: conn },
        server: Peer { ip, port: 80 },
        request: Some(Message {
            method: Some(method.into()),
            uri: Some(uri.into()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body_len: body.len() as u64,
            replay_body: Some(body.to_vec()),
            ..Message::default()
        }),
        response: Some(Message {
            status: Some(200),
            body_len: 10,
            replay_body: Some(b"production".to_vec()),
            ..Message::default()
        }),
        interim: Vec::new(),
        timing: Timing {
            request_start_ns: Some(ts),
            request_end_ns: Some(ts),
            response_start_ns: Some(ts + 1_000_000),
            response_end_ns: Some(ts + 2_000_000),
        },
        flags: FlagSet::EMPTY,
        stream_id: None,
        rst_error: None,
        grpc: None,
    }
}

fn count(records: &[serde_json::Value], verdict: &str, reason: Option<&str>) -> usize {
    records
        .iter()
        .filter(|r| r["verdict"] == verdict)
        .filter(|r| reason.is_none_or(|x| r["reason"] == x || r["candidate"]["error"] == x))
        .count()
}

#[test]
fn only_safe_methods_with_the_marker_and_without_credentials() {
    let server = Server::start(Behaviour::default());
    let (stage, buf) = start(cfg(&server));
    let creds = [
        ("Authorization", "Bearer PROD-SECRET"),
        ("Cookie", "session=PROD-SECRET"),
        ("Proxy-Authorization", "Basic x"),
        ("Accept", "application/json"),
    ];
    for (i, m) in ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
        .iter()
        .enumerate()
    {
        stage.offer(&mut ex(
            1000 + i as u16,
            0,
            0,
            m,
            "/items/1?token=PROD-SECRET",
            &creds,
            b"",
        ));
    }
    // A request that is shadow traffic itself (a loop): never replayed.
    stage.offer(&mut ex(
        2000,
        0,
        0,
        "GET",
        "/loop",
        &[("X-Vxtap-Shadow", "1")],
        b"",
    ));
    let report = stage.finish();
    let seen = server.seen();
    let mut methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    methods.sort_unstable();
    assert_eq!(methods, ["GET", "HEAD", "OPTIONS"]);
    for s in &seen {
        assert!(s
            .headers
            .iter()
            .any(|(n, v)| n == "x-vxtap-shadow" && v == "1"));
        assert!(
            !s.headers
                .iter()
                .any(|(n, _)| n == "authorization" || n == "cookie" || n == "proxy-authorization"),
            "{:?}",
            s.headers
        );
        assert!(s.headers.iter().any(|(n, _)| n == "accept"));
        // Sent as captured (not redacted).
        assert_eq!(s.path, "/items/1?token=PROD-SECRET");
    }
    let records = buf.records();
    assert_eq!(records.len(), 8);
    assert_eq!(count(&records, "sent", None), 3);
    assert_eq!(count(&records, "skipped", Some("method")), 4);
    assert_eq!(count(&records, "skipped", Some("loop_guard")), 1);
    assert_eq!(report.stats.skipped("loop_guard"), 1);
    // Every record is redacted.
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("PROD-SECRET"), "{text}");
    let sent = records
        .iter()
        .find(|r| r["verdict"] == "sent" && r["method"] == "GET")
        .unwrap();
    assert_eq!(sent["candidate"]["status"], 200);
    assert_eq!(sent["candidate"]["body_len"], 9);
    assert_eq!(sent["production"]["status"], 200);
}

#[test]
fn widened_methods_send_bodies_as_captured_and_set_headers() {
    let server = Server::start(Behaviour::default());
    let mut c = cfg(&server);
    c.methods.push("POST".into());
    c.keep_headers.push("cookie".into());
    c.set_headers
        .push(("authorization".into(), "Bearer test-token".into()));
    c.set_headers
        .push(("host".into(), "candidate.internal".into()));
    let (stage, _buf) = start(c);
    stage.offer(&mut ex(
        1,
        0,
        0,
        "POST",
        "/orders",
        &[
            ("Content-Length", "7"),
            ("Authorization", "Bearer PROD"),
            ("Cookie", "a=b"),
        ],
        b"{\"a\":1}",
    ));
    stage.offer(&mut ex(
        2,
        0,
        0,
        "POST",
        "/chunked",
        &[("Transfer-Encoding", "chunked")],
        b"hello",
    ));
    stage.finish();
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let o = seen.iter().find(|s| s.path == "/orders").unwrap();
    assert_eq!(o.body, b"{\"a\":1}");
    let h = |s: &Seen, n: &str| {
        s.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(h(o, "authorization").as_deref(), Some("Bearer test-token"));
    assert_eq!(h(o, "cookie").as_deref(), Some("a=b"));
    assert_eq!(h(o, "host").as_deref(), Some("candidate.internal"));
    assert_eq!(h(o, "content-length").as_deref(), Some("7"));
    let ch = seen.iter().find(|s| s.path == "/chunked").unwrap();
    assert_eq!(ch.body, b"hello");
    assert_eq!(h(ch, "transfer-encoding").as_deref(), Some("chunked"));
}

#[test]
fn connection_order_is_kept_per_production_connection() {
    let server = Server::start(Behaviour::default());
    let (stage, buf) = start(cfg(&server));
    // Three production connections, interleaved as a mirror would emit them.
    for n in 0..20u64 {
        for conn in [10u16, 11, 12] {
            stage.offer(&mut ex(
                conn,
                n,
                0,
                "GET",
                &format!("/c{conn}/{n}"),
                &[],
                b"",
            ));
        }
    }
    stage.finish();
    assert_eq!(count(&buf.records(), "sent", None), 60);
    let seen = server.seen();
    for conn in [10u16, 11, 12] {
        let mine: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.path.starts_with(&format!("/c{conn}/")))
            .collect();
        let order: Vec<String> = mine.iter().map(|s| s.path.clone()).collect();
        let want: Vec<String> = (0..20).map(|n| format!("/c{conn}/{n}")).collect();
        assert_eq!(order, want, "order on connection {conn}");
        assert!(
            mine.iter().all(|s| s.peer == mine[0].peer),
            "one candidate connection per production connection"
        );
    }
}

#[test]
fn redirects_are_never_followed() {
    let elsewhere = Server::start(Behaviour::default());
    let server = Server::start(Behaviour {
        redirect_to: Some(format!("http://{}/stolen", elsewhere.addr)),
        ..Behaviour::default()
    });
    let (stage, buf) = start(cfg(&server));
    stage.offer(&mut ex(1, 0, 0, "GET", "/moved", &[], b""));
    stage.finish();
    assert_eq!(server.seen().len(), 1);
    assert!(elsewhere.seen().is_empty());
    let r = &buf.records()[0];
    assert_eq!(
        (r["verdict"].as_str(), r["candidate"]["status"].as_u64()),
        (Some("sent"), Some(302))
    );
}

#[test]
fn speed_one_keeps_production_inter_arrival_times() {
    let server = Server::start(Behaviour::default());
    let mut c = cfg(&server);
    c.speed = 1.0;
    let (stage, _buf) = start(c);
    let offsets_ms = [0u64, 40, 45, 130, 200, 260, 261, 400];
    for (n, t) in offsets_ms.iter().enumerate() {
        stage.offer(&mut ex(1, n as u64, *t, "GET", &format!("/{n}"), &[], b""));
    }
    stage.finish();
    let seen = server.seen();
    assert_eq!(seen.len(), offsets_ms.len());
    for (i, w) in seen.windows(2).enumerate() {
        let got = w[1].at.duration_since(w[0].at).as_secs_f64() * 1e3;
        let want = (offsets_ms[i + 1] - offsets_ms[i]) as f64;
        assert!(
            (got - want).abs() <= 5.0,
            "gap {i}: {got:.2} ms on the candidate against {want} ms in the capture"
        );
    }
}

#[test]
fn a_dead_slow_candidate_opens_the_breaker_and_never_blocks_the_caller() {
    let server = Server::start(Behaviour {
        sleep: Some(Duration::from_secs(10)),
        ..Behaviour::default()
    });
    let mut c = cfg(&server);
    c.when_full = WhenFull::Drop;
    c.timeout = Duration::from_millis(200);
    c.breaker_failures = 3;
    c.breaker_cooldown = Duration::from_secs(60);
    c.queue_len = 16;
    c.drain_timeout = Duration::from_secs(5);
    let (stage, buf) = start(c);
    // One production connection: requests queue behind each other on one lane. Offering
    // never waits for the candidate (Drop): the caller (capture) is never slowed.
    let mut offered = 0;
    for n in 0..200u64 {
        stage.offer(&mut ex(1, n, 0, "GET", &format!("/{n}"), &[], b""));
        offered += 1;
    }
    let report: ShadowReport = stage.finish();
    let records = buf.records();
    // Every exchange has a record: timeouts until the breaker opened, then skipped.
    assert_eq!(records.len(), offered);
    assert_eq!(count(&records, "error", Some("timeout")), 3);
    assert_eq!(count(&records, "sent", None), 0);
    let breaker = count(&records, "skipped", Some("breaker_open"));
    let full = count(&records, "skipped", Some("queue_full"));
    assert_eq!(breaker + full + 3, offered);
    assert!(full > 0 && breaker > 0, "breaker {breaker} full {full}");
    assert_eq!(report.stats.queue_dropped as usize, full);
    assert_eq!(report.stats.breaker_opens, 1);
    assert_eq!(report.stats.breaker_state, 1);
    // The candidate saw only the three requests that timed out.
    assert_eq!(server.seen().len(), 3);
}
