//! Throughput check: typical keep-alive exchanges cut into MSS-sized segments, fed through
//! the handler. `cargo run --release -p vxtap-http --example bench`
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;
use vxtap_flow::{CloseReason, ConnMeta, Direction, Endpoint, StreamHandler};
use vxtap_http::{HttpConfig, HttpHandler};

fn main() {
    let ep = |port| Endpoint {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
    };
    let req = b"GET /api/v1/items?page=2&sort=desc HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\r\nAccept: application/json\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\nConnection: keep-alive\r\n\r\n".to_vec();
    let body = "x".repeat(6000);
    let resp = format!("HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nServer: nginx\r\nConnection: keep-alive\r\n\r\n{body}", body.len()).into_bytes();
    let mut h = HttpHandler::new(HttpConfig::default());
    let conns = 2000;
    let per_conn = 30;
    let mut segments = 0u64;
    let mut bytes = 0u64;
    let mut exchanges = Vec::new();
    let start = Instant::now();
    let mut ts = 0;
    for id in 0..conns {
        let meta = ConnMeta {
            conn_id: id,
            stable_id: id,
            client: ep(1),
            server: ep(2),
            vni: None,
            tunnel: vxtap_wire::TunnelKind::None,
            mirror_source: None,
            midstream: false,
            first_ts_ns: 0,
        };
        let mut c = h.on_open(&meta);
        for _ in 0..per_conn {
            for (dir, msg) in [
                (Direction::ClientToServer, &req),
                (Direction::ServerToClient, &resp),
            ] {
                for seg in msg.chunks(1448) {
                    ts += 1000;
                    h.on_data(&mut c, &meta, dir, ts, seg);
                    segments += 1;
                    bytes += seg.len() as u64;
                }
            }
        }
        h.on_close(c, &meta, ts, CloseReason::Fin);
        h.drain_into(&mut exchanges);
        exchanges.clear();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} exchanges, {segments} segments, {:.1} MB in {secs:.3}s: {:.2} M segments/s, {:.0} MB/s, {:.0} k exchanges/s",
        h.stats().exchanges_total(),
        bytes as f64 / 1e6,
        segments as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6,
        h.stats().exchanges_total() as f64 / secs / 1e3
    );
}
