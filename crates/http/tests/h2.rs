//! HTTP/2 through the HTTP handler: detection (prior knowledge, h2c upgrade, mid-stream), the
//! record's HTTP/2 and gRPC fields, and that HTTP/1 is left alone.

mod common;
use common::*;
use std::io::Write;
use vxtap_flow::{CloseReason, GapReason, Verdict};
use vxtap_http::{Flag, HttpConfig, Version};

const HEADERS: u8 = 1;
const DATA: u8 = 0;
const SETTINGS: u8 = 4;
const RST: u8 = 3;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

fn frame(k: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let l = (payload.len() as u32).to_be_bytes();
    let mut v = vec![l[1], l[2], l[3], k, flags];
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Literal with incremental indexing, new name.
fn lit(n: &str, v: &str) -> Vec<u8> {
    let mut b = vec![0x40, n.len() as u8];
    b.extend_from_slice(n.as_bytes());
    b.push(v.len() as u8);
    b.extend_from_slice(v.as_bytes());
    b
}

fn settings() -> Vec<u8> {
    frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[test]
fn prior_knowledge_get_and_post() {
    let mut t = T::new(HttpConfig::default());
    let mut c = PREFACE.to_vec();
    c.extend(settings());
    let mut blk = vec![0x82, 0x86, 0x84];
    blk.extend(lit(":authority", "svc"));
    c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &blk));
    // POST /index.html with a body, on stream 3; the second block reuses :authority (index 62).
    let mut blk = vec![0x83, 0x86, 0x85, 0xbe];
    blk.extend(lit("content-type", "text/plain"));
    c.extend(frame(HEADERS, END_HEADERS, 3, &blk));
    c.extend(frame(DATA, END_STREAM, 3, b"payload"));
    t.c(&c);
    let mut s = settings();
    s.extend(frame(HEADERS, END_HEADERS, 3, &[0x89]));
    s.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
    s.extend(frame(DATA, END_STREAM, 1, b"hello"));
    s.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &lit("x-t", "1"),
    ));
    t.s(&s);
    let ex = t.drain();
    assert_eq!(ex.len(), 2);
    let e1 = &ex[0];
    assert_eq!(e1.stream_id, Some(1));
    let rq = e1.request.as_ref().unwrap();
    assert_eq!(rq.version, Version::Http2);
    assert_eq!(
        (rq.method.as_deref(), rq.uri.as_deref()),
        (Some("GET"), Some("/"))
    );
    assert_eq!(rq.authority.as_deref(), Some("svc"));
    assert_eq!(rq.scheme.as_deref(), Some("http"));
    let rs = e1.response.as_ref().unwrap();
    assert_eq!((rs.status, rs.body_len), (Some(200), 5));
    assert_eq!(rs.body.as_ref().unwrap().bytes, b"hello");
    assert!(e1.flags.is_empty(), "{:?}", e1.flags.labels());
    let e3 = &ex[1];
    assert_eq!(e3.stream_id, Some(3));
    let rq = e3.request.as_ref().unwrap();
    assert_eq!(rq.method.as_deref(), Some("POST"));
    assert_eq!(rq.authority.as_deref(), Some("svc"));
    assert_eq!(rq.body_len, 7);
    let rs = e3.response.as_ref().unwrap();
    assert_eq!(rs.status, Some(204));
    assert_eq!(rs.trailers, vec![("x-t".to_string(), "1".to_string())]);
    assert!(e3.timing.request_start_ns.is_some() && e3.timing.response_end_ns.is_some());
    assert_eq!(t.h.stats().exchanges_h2, 2);
    assert_eq!(t.h.stats().h2.conns, 1);
}

#[test]
fn h2c_upgrade_makes_stream_one_the_upgrade_request() {
    let mut t = T::new(HttpConfig::default());
    t.c(b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
    let mut s =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    s.extend(settings());
    s.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
    t.s(&s);
    let mut c = PREFACE.to_vec();
    c.extend(settings());
    t.c(&c);
    t.s(&frame(DATA, END_STREAM, 1, b"up!"));
    let ex = t.drain();
    assert_eq!(ex.len(), 1, "{ex:#?}");
    let e = &ex[0];
    assert_eq!(e.stream_id, Some(1));
    let rq = e.request.as_ref().unwrap();
    assert_eq!(rq.version, Version::Http11);
    assert_eq!(rq.uri.as_deref(), Some("/up"));
    let rs = e.response.as_ref().unwrap();
    assert_eq!(
        (rs.version, rs.status, rs.body_len),
        (Version::Http2, Some(200), 3)
    );
    assert_eq!(e.interim.len(), 1);
    assert_eq!(e.interim[0].status, Some(101));
    assert!(e.flags.contains(Flag::Upgrade));
    assert!(!e.flags.contains(Flag::NoRequest));
    // One exchange, counted once.
    assert_eq!(t.h.stats().exchanges.iter().sum::<u64>(), 1);
    assert_eq!(t.h.stats().flags[Flag::Upgrade as usize], 1);
}

#[test]
fn websocket_upgrade_is_not_h2() {
    let mut t = T::new(HttpConfig::default());
    t.c(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    let v = t.s(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
    assert_eq!(v, Verdict::StopDelivery);
    assert_eq!(t.drain().len(), 1);
    assert_eq!(t.h.stats().h2.conns, 0);
}

#[test]
fn midstream_pickup_recovers_method_path_status() {
    let mut t = T::midstream(HttpConfig::default());
    // Joined late: the request reuses dynamic entries never seen (index 62: unknown).
    let mut blk = vec![0x82, 0x86, 0xbe];
    blk.extend(lit(":path", "/late"));
    let mut c = frame(HEADERS, END_HEADERS | END_STREAM, 21, &blk);
    c.extend(frame(8, 0, 0, &[0, 0, 1, 0]));
    t.c(&c);
    let mut s = frame(HEADERS, END_HEADERS, 21, &[0x88, 0xbf]);
    s.extend(frame(DATA, END_STREAM, 21, b"ok"));
    t.s(&s);
    let ex = t.drain();
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    assert!(e.flags.contains(Flag::HeadersPartial));
    assert_eq!(e.request.as_ref().unwrap().uri.as_deref(), Some("/late"));
    assert_eq!(e.request.as_ref().unwrap().method.as_deref(), Some("GET"));
    assert_eq!(e.response.as_ref().unwrap().status, Some(200));
}

#[test]
fn midstream_http1_is_never_h2() {
    let mut t = T::midstream(HttpConfig::default());
    t.c(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let ex = t.drain();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].request.as_ref().unwrap().version, Version::Http11);
    assert_eq!(t.h.stats().h2.conns, 0);
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn grpc_msg(compressed: bool, b: &[u8]) -> Vec<u8> {
    let mut v = vec![compressed as u8];
    v.extend_from_slice(&(b.len() as u32).to_be_bytes());
    v.extend_from_slice(b);
    v
}

#[test]
fn grpc_unary_compressed_and_reset_and_goaway() {
    let cfg = HttpConfig {
        grpc_decode: true,
        ..HttpConfig::default()
    };
    let mut t = T::new(cfg);
    let mut c = PREFACE.to_vec();
    let mut blk = vec![0x83, 0x86];
    blk.extend(lit(":path", "/helloworld.Greeter/SayHello"));
    blk.extend(lit("content-type", "application/grpc"));
    blk.extend(lit("grpc-encoding", "gzip"));
    c.extend(frame(HEADERS, END_HEADERS, 1, &blk));
    // Message: field 1 = "world", gzip-compressed; split over two DATA frames.
    let m = grpc_msg(true, &gz(b"\x0a\x05world"));
    c.extend(frame(DATA, 0, 1, &m[..4]));
    c.extend(frame(DATA, END_STREAM, 1, &m[4..]));
    // Stream 3: same call, cancelled by the client.
    c.extend(frame(
        HEADERS,
        END_HEADERS,
        3,
        &[0x83, 0x86, 0xbf, 0xbe, 0xbd],
    ));
    c.extend(frame(RST, 0, 3, &[0, 0, 0, 8]));
    t.c(&c);
    let mut s = Vec::new();
    let mut rb = vec![0x88];
    rb.extend(lit("content-type", "application/grpc"));
    s.extend(frame(HEADERS, END_HEADERS, 1, &rb));
    s.extend(frame(DATA, 0, 1, &grpc_msg(false, b"\x0a\x0bHello world")));
    let mut tb = lit("grpc-status", "0");
    tb.extend(lit("grpc-message", "fine%21"));
    s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &tb));
    // Stream 5 opened, then the server goes away before processing it.
    t.s(&s);
    t.c(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        5,
        &[0x83, 0x86, 0xbf, 0xbe],
    ));
    t.s(&frame(GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0]));
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 3, "{ex:#?}");
    let g = ex.iter().find(|e| e.stream_id == Some(1)).unwrap();
    let grpc = g.grpc.as_ref().unwrap();
    assert_eq!(grpc.service.as_deref(), Some("helloworld.Greeter"));
    assert_eq!(grpc.method.as_deref(), Some("SayHello"));
    assert_eq!((grpc.status, grpc.status_name), (Some(0), Some("OK")));
    assert_eq!(grpc.message.as_deref(), Some("fine!"));
    assert_eq!(grpc.encoding.as_deref(), Some("gzip"));
    assert_eq!(grpc.request.count, 1);
    assert_eq!(grpc.request.first[0].bytes, b"\x0a\x05world");
    assert!(grpc.request.first[0].compressed);
    assert!(grpc.request.first[0].dump.is_some());
    assert_eq!(grpc.response.sizes, vec![13]);
    let r = ex.iter().find(|e| e.stream_id == Some(3)).unwrap();
    assert!(r.flags.contains(Flag::RstStream));
    assert_eq!(r.rst_error, Some(8));
    assert_eq!(r.grpc.as_ref().unwrap().status_name, Some("CANCELLED"));
    let ga = ex.iter().find(|e| e.stream_id == Some(5)).unwrap();
    assert!(ga.flags.contains(Flag::Goaway) && ga.flags.contains(Flag::Incomplete));
    assert_eq!(t.h.stats().grpc_status[0], 1);
    assert_eq!(t.h.stats().grpc_status[1], 1);
}

#[test]
fn gap_in_h2_flags_and_recovers() {
    let mut t = T::new(HttpConfig::default());
    let mut c = PREFACE.to_vec();
    c.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &[0x82, 0x86, 0x84],
    ));
    t.c(&c);
    t.s(&frame(HEADERS, END_HEADERS, 1, &[0x88]));
    let d = frame(DATA, END_STREAM, 1, &[b'x'; 50]);
    t.s(&d[..20]);
    t.gap(S2C, 10, GapReason::Lost);
    t.s(&d[30..]);
    let ex = t.drain();
    assert_eq!(ex.len(), 1);
    let rs = ex[0].response.as_ref().unwrap();
    assert_eq!((rs.body_len, rs.gap_bytes), (50, 10));
    assert!(ex[0].flags.contains(Flag::Gap));
    assert!(vxtap_flow::StreamHandler::mem_bytes(&t.h, t.conn()) > 0);
}
