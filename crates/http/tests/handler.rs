//! Scenario tests driving HttpHandler through the StreamHandler methods.

mod common;
use common::*;
use std::io::Write;
use vxtap_flow::{CloseReason, GapReason, Verdict};
use vxtap_http::{Flag, HttpConfig, Outcome};

fn cfg() -> HttpConfig {
    HttpConfig::default()
}

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const OK5: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn simple_get_200() {
    let mut t = T::new(cfg());
    t.c(GET);
    assert!(t.drain().is_empty());
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    let rq = e.request.as_ref().unwrap();
    let rs = e.response.as_ref().unwrap();
    assert_eq!(rq.method.as_deref(), Some("GET"));
    assert_eq!(rq.uri.as_deref(), Some("/a"));
    assert_eq!(rq.version, vxtap_http::Version::Http11);
    assert_eq!(rq.headers, vec![("Host".to_string(), "x".to_string())]);
    assert_eq!(rs.status, Some(200));
    assert_eq!(rs.reason.as_deref(), Some("OK"));
    assert_eq!(body(rs), "hello");
    assert_eq!(rs.body_len, 5);
    assert!(e.flags.is_empty(), "{:?}", e.flags);
    assert_eq!(e.id, vxtap_http::exchange_id(0xdead_beef, 0));
    // 2024-01-02T03:04:05.001Z: the first request byte.
    assert_eq!(e.ts_ns, 1_704_164_645_001_000_000);
    assert_eq!(e.timing.ttfb_us(), Some(1000));
    assert_eq!(e.timing.duration_us(), Some(1000));
    assert_eq!(e.vni, Some(42));
    assert_eq!(e.client.port, 40000);
    assert_eq!(
        rs.body.as_ref().unwrap().content,
        vxtap_http::Content::Plain
    );
    assert_eq!(rs.body.as_ref().unwrap().cut, None);
    assert_eq!(rq.status, None);
    assert!(t.close(CloseReason::Fin).is_empty());
    assert_eq!(t.h.stats().exchanges_by(Outcome::Complete), 1);
}

#[test]
fn keep_alive_sequence_and_stable_ids() {
    let mut t = T::new(cfg());
    for i in 0..3 {
        t.c(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
        t.s(OK5);
    }
    let ex = t.drain();
    assert_eq!(ex.len(), 3);
    let ids: Vec<_> = ex.iter().map(|e| e.id).collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);
    // The same connection seen again (mirrored twice) yields the same ids.
    let mut t2 = T::new(cfg());
    for i in 0..3 {
        t2.c(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
        t2.s(OK5);
    }
    let ids2: Vec<_> = t2.drain().iter().map(|e| e.id).collect();
    assert_eq!(ids, ids2);
}

#[test]
fn pipelining_of_five() {
    let mut t = T::new(cfg());
    let mut reqs = Vec::new();
    let mut resps = Vec::new();
    for i in 0..5 {
        reqs.extend_from_slice(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
        let b = format!("body{i}");
        resps.extend_from_slice(
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len()).as_bytes(),
        );
    }
    t.c(&reqs);
    t.s(&resps);
    let ex = t.drain();
    assert_eq!(ex.len(), 5);
    for (i, e) in ex.iter().enumerate() {
        assert_eq!(
            e.request.as_ref().unwrap().uri.as_deref(),
            Some(&*format!("/{i}"))
        );
        assert_eq!(body(e.response.as_ref().unwrap()), format!("body{i}"));
        assert!(e.flags.is_empty());
    }
}

#[test]
fn head_response_has_no_body() {
    let mut t = T::new(cfg());
    t.c(b"HEAD / HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].response.as_ref().unwrap().body_len, 0);
    assert_eq!(body(ex[1].response.as_ref().unwrap()), "hello");
}

#[test]
fn no_body_for_204_and_304() {
    let mut t = T::new(cfg());
    t.c(b"DELETE /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\nGET /z HTTP/1.1\r\n\r\n");
    t.s(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n");
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[0].response.as_ref().unwrap().status, Some(204));
    assert_eq!(ex[1].response.as_ref().unwrap().status, Some(304));
    assert_eq!(body(ex[2].response.as_ref().unwrap()), "hello");
}

#[test]
fn continue_100_is_interim() {
    let mut t = T::new(cfg());
    t.c(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    t.s(b"HTTP/1.1 100 Continue\r\n\r\n");
    t.c(b"data");
    t.s(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    let ex = t.drain();
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    assert_eq!(e.interim.len(), 2);
    assert_eq!(e.interim[0].status, Some(100));
    assert_eq!(e.interim[1].status, Some(103));
    assert_eq!(e.response.as_ref().unwrap().status, Some(201));
    assert_eq!(body(e.request.as_ref().unwrap()), "data");
}

#[test]
fn websocket_upgrade_stops_delivery() {
    let mut t = T::new(cfg());
    t.c(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    let v = t.s(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
    assert_eq!(v, Verdict::StopDelivery);
    let ex = t.drain();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].flags.labels(), vec!["upgrade"]);
    assert_eq!(t.c(b"\x81\x85maskmask"), Verdict::StopDelivery);
    assert_eq!(t.h.stats().upgrade_skipped_bytes, 7 + 10);
    assert!(t.close(CloseReason::Fin).is_empty());
    assert_eq!(t.h.stats().upgrades, 1);
}

#[test]
fn connect_tunnel() {
    let mut t = T::new(cfg());
    t.c(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    let v = t.s(b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01");
    assert_eq!(v, Verdict::StopDelivery);
    let ex = t.drain();
    assert_eq!(ex.len(), 1);
    assert_eq!(
        ex[0].request.as_ref().unwrap().method.as_deref(),
        Some("CONNECT")
    );
    assert!(ex[0].flags.labels().contains(&"upgrade"));
    // A refused CONNECT leaves the connection in HTTP.
    let mut t = T::new(cfg());
    t.c(b"CONNECT a:443 HTTP/1.1\r\n\r\n");
    assert_eq!(
        t.s(b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 0\r\n\r\n"),
        Verdict::Continue
    );
    t.c(GET);
    t.s(OK5);
    assert_eq!(t.drain().len(), 2);
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let mut t = T::new(cfg());
    t.c(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Sum: 1\r\n\r\n");
    t.s(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    let ex = t.drain();
    assert_eq!(ex.len(), 1);
    let rq = ex[0].request.as_ref().unwrap();
    assert_eq!(body(rq), "Wikipedia");
    assert_eq!(rq.body_len, 9);
    assert_eq!(body(ex[0].response.as_ref().unwrap()), "abc");
    assert!(ex[0].flags.is_empty());
}

#[test]
fn chunked_split_at_every_byte() {
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: v\r\n\r\n";
    let mut reference = None;
    for i in 1..resp.len() {
        let mut t = T::new(cfg());
        t.data_at(C2S, 1, GET);
        t.data_at(S2C, 2, &resp[..i]);
        assert!(t.drain().is_empty(), "emitted early at split {i}");
        t.data_at(S2C, 2, &resp[i..]);
        let ex = t.drain();
        assert_eq!(ex.len(), 1, "split {i}");
        assert_eq!(body(ex[0].response.as_ref().unwrap()), "hello!");
        match &reference {
            None => reference = Some(ex),
            Some(r) => assert_eq!(r, &ex),
        }
    }
    // Every byte on its own, the last segment holding only the final LF.
    let mut t = T::new(cfg());
    t.data_at(C2S, 1, GET);
    for b in resp {
        t.data_at(S2C, 2, std::slice::from_ref(b));
    }
    assert_eq!(Some(t.drain()), reference);
}

#[test]
fn chunk_size_overflow_is_flagged() {
    // 17 digits overflow 64 bits; 16 digits fit but would swallow the next request.
    for size in ["10000000000000000", "ffffffffffffffff", "7fffffffffffffff"] {
        chunk_size_overflow_case(size);
    }
}

fn chunk_size_overflow_case(size: &str) {
    let mut t = T::new(cfg());
    t.c(format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nxx").as_bytes());
    t.s(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    t.c(b"\r\nGET /smuggled HTTP/1.1\r\n\r\n");
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 2, "{size}: {ex:#?}");
    assert!(ex[0].flags.labels().contains(&"smuggling_suspect"));
    assert!(ex[0].flags.labels().contains(&"incomplete"));
    // The request found inside the rejected body inherits the suspicion.
    assert_eq!(
        ex[1].request.as_ref().unwrap().uri.as_deref(),
        Some("/smuggled")
    );
    assert!(ex[1].flags.labels().contains(&"smuggling_suspect"));
    assert_eq!(ex[0].response.as_ref().unwrap().status, Some(400));
    assert_eq!(
        t.h.stats()
            .parse_error_count(vxtap_http::ParseError::ChunkSizeOverflow),
        1
    );
}

#[test]
fn cl_te_conflict_chunked_wins() {
    let mut t = T::new(cfg());
    t.c(b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    t.c(GET);
    t.s(OK5);
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex.len(), 2);
    assert_eq!(body(ex[0].request.as_ref().unwrap()), "abc");
    assert_eq!(ex[0].flags.labels(), vec!["smuggling_suspect"]);
    assert!(ex[1].flags.is_empty());
}

#[test]
fn differing_content_lengths_resync() {
    let mut t = T::new(cfg());
    t.c(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
    t.s(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 1, "{ex:#?}");
    assert_eq!(ex[0].response.as_ref().unwrap().status, Some(400));
    assert!(ex[0].flags.labels().contains(&"smuggling_suspect"));
    assert!(ex[0].flags.labels().contains(&"parse_error"));
}

#[test]
fn obfuscated_transfer_encoding() {
    for te in [
        "xchunked",
        "chunked, identity",
        "chunked, chunked",
        "identity",
    ] {
        let mut t = T::new(cfg());
        t.c(
            format!("POST / HTTP/1.1\r\nTransfer-Encoding: {te}\r\nContent-Length: 3\r\n\r\nabc")
                .as_bytes(),
        );
        t.s(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n");
        let ex = t.close(CloseReason::Fin);
        assert_eq!(ex.len(), 1, "{te}: {ex:#?}");
        assert!(ex[0].flags.labels().contains(&"smuggling_suspect"), "{te}");
        assert!(ex[0].response.is_some());
    }
    // Whitespace before the colon: httparse rejects it; we flag it.
    let mut t = T::new(cfg());
    t.c(b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n");
    t.s(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n");
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 1);
    assert!(ex[0].request.is_none());
    assert!(ex[0].flags.labels().contains(&"smuggling_suspect"));
    // Bare LF line endings parse but are flagged.
    let mut t = T::new(cfg());
    t.c(b"GET / HTTP/1.1\nHost: x\n\n");
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex[0].flags.labels(), vec!["smuggling_suspect"]);
}

#[test]
fn smuggled_request_in_body_stays_body() {
    // Like zeek's smuggle-http-request.pcap: the body of a POST holds a second request.
    let inner = "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut t = T::new(cfg());
    t.c(format!(
        "POST /p HTTP/1.1\r\nContent-Length: {}\r\n\r\n{inner}",
        inner.len()
    )
    .as_bytes());
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex.len(), 1);
    assert_eq!(body(ex[0].request.as_ref().unwrap()), inner);
}

#[test]
fn close_delimited_response() {
    let mut t = T::new(cfg());
    t.c(b"GET / HTTP/1.0\r\n\r\n");
    t.s(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nsome ");
    t.s(b"text");
    assert!(t.drain().is_empty());
    t.fin(S2C);
    let ex = t.drain();
    assert_eq!(ex.len(), 1);
    assert_eq!(body(ex[0].response.as_ref().unwrap()), "some text");
    assert!(ex[0].flags.is_empty());
    // Cut by the end of input instead: flagged incomplete.
    let mut t = T::new(cfg());
    t.c(b"GET / HTTP/1.0\r\n\r\n");
    t.s(b"HTTP/1.0 200 OK\r\n\r\nabc");
    let ex = t.close(CloseReason::EndOfInput);
    assert!(ex[0].flags.labels().contains(&"incomplete"));
}

#[test]
fn http10_request_and_response() {
    let mut t = T::new(cfg());
    t.c(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    t.s(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi");
    t.c(b"GET /old2 HTTP/1.0\r\n\r\n");
    t.s(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 2);
    assert_eq!(
        ex[0].request.as_ref().unwrap().version,
        vxtap_http::Version::Http10
    );
    assert_eq!(ex[1].response.as_ref().unwrap().status, Some(404));
}

#[test]
fn gap_inside_content_length_body() {
    let mut t = T::new(cfg());
    t.c(GET);
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    t.gap(S2C, 4, GapReason::Lost);
    t.s(b"xyz");
    t.c(b"GET /next HTTP/1.1\r\n\r\n");
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex.len(), 2);
    let r = ex[0].response.as_ref().unwrap();
    assert_eq!(r.body_len, 10);
    assert_eq!(r.gap_bytes, 4);
    assert_eq!(body(r), "abcxyz");
    assert!(r.body_truncated);
    assert_eq!(ex[0].flags.labels(), vec!["body_truncated", "gap"]);
    assert_eq!(
        ex[1].request.as_ref().unwrap().uri.as_deref(),
        Some("/next")
    );
    assert!(ex[1].flags.is_empty());
    // A truncated capture is named as such.
    let mut t = T::new(cfg());
    t.c(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345");
    t.gap(C2S, 5, GapReason::TruncatedCapture);
    t.s(OK5);
    let ex = t.drain();
    assert!(ex[0].flags.labels().contains(&"truncated_capture"));
}

#[test]
fn gap_inside_head_resyncs_without_mispairing() {
    let mut t = T::new(cfg());
    t.c(b"GET /lost HTTP/1.1\r\nHo");
    t.gap(C2S, 20, GapReason::Lost);
    t.c(b"ost\r\n\r\n");
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlost");
    t.c(b"GET /found HTTP/1.1\r\n\r\n");
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfound");
    let ex = t.drain();
    assert_eq!(ex.len(), 2, "{ex:#?}");
    // The complete lines of the cut head are kept; a non-pipelining client cannot have hidden
    // another request in 20 bytes, so the pairing stays certain.
    assert_eq!(
        ex[0].request.as_ref().unwrap().uri.as_deref(),
        Some("/lost")
    );
    assert_eq!(body(ex[0].response.as_ref().unwrap()), "lost");
    assert!(ex[0].flags.labels().contains(&"incomplete") && ex[0].flags.labels().contains(&"gap"));
    assert_eq!(
        ex[1].request.as_ref().unwrap().uri.as_deref(),
        Some("/found")
    );
    assert_eq!(body(ex[1].response.as_ref().unwrap()), "found");
    assert!(ex[1].flags.is_empty());
}

#[test]
fn pipelined_gap_never_mispairs() {
    let mut t = T::new(cfg());
    t.c(b"GET /0 HTTP/1.1\r\n\r\nGET /1 HTTP/1.1\r\n\r\n");
    t.c(b"GET /2 HT");
    t.gap(C2S, 30, GapReason::Lost);
    t.c(b"GET /5 HTTP/1.1\r\n\r\nGET /6 HTTP/1.1\r\n\r\n");
    for i in 0..7 {
        t.s(format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr{i}").as_bytes());
    }
    let ex = t.close(CloseReason::Fin);
    for e in &ex {
        if let (Some(q), Some(r)) = (&e.request, &e.response) {
            let uri = q.uri.as_deref().unwrap();
            assert_eq!(&uri[1..], &body(r)[1..], "mis-paired: {e:#?}");
        }
    }
    assert!(
        ex.iter()
            .filter(|e| e.request.is_some() && e.response.is_some())
            .count()
            >= 2
    );
}

#[test]
fn midstream_response_first() {
    let mut t = T::midstream(cfg());
    t.s(b"ody of something\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    t.c(GET);
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex.len(), 2, "{ex:#?}");
    assert!(ex[0].request.is_none());
    assert_eq!(ex[0].flags.labels(), vec!["midstream", "no_request"]);
    assert!(ex[1].request.is_some() && ex[1].response.is_some());
    assert!(ex[1].flags.is_empty());
}

#[test]
fn request_without_response_at_close() {
    let mut t = T::new(cfg());
    t.c(GET);
    let ex = t.close(CloseReason::IdleTimeout);
    assert_eq!(ex.len(), 1);
    assert!(ex[0].response.is_none());
    assert_eq!(ex[0].flags.labels(), vec!["no_response", "timeout"]);
    let mut t = T::new(cfg());
    t.c(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial");
    let ex = t.close(CloseReason::Evicted);
    // Every byte that arrived was captured: incomplete, not truncated (issue 12 §5).
    assert_eq!(
        ex[0].flags.labels(),
        vec!["evicted", "incomplete", "no_response"]
    );
    assert_eq!(t.h.stats().exchanges_by(Outcome::NoResponse), 1);
}

#[test]
fn giant_header_is_capped() {
    let c = HttpConfig {
        max_head_bytes: 1024,
        ..cfg()
    };
    let mut t = T::new(c);
    let big = format!("GET /big HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(5000));
    for ch in big.as_bytes().chunks(700) {
        t.c(ch);
        assert!(t.conn().buffered_bytes() < 8 * 1024);
    }
    t.s(b"HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\n");
    t.c(GET);
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex.len(), 2, "{ex:#?}");
    assert!(ex[0].request.is_none());
    assert!(ex[0].flags.labels().contains(&"head_too_large"));
    assert_eq!(ex[1].request.as_ref().unwrap().uri.as_deref(), Some("/a"));
    assert_eq!(t.h.stats().flag_count(Flag::HeadTooLarge), 1);
    // Too many header fields.
    let c = HttpConfig {
        max_headers: 4,
        ..cfg()
    };
    let mut t = T::new(c);
    t.c(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
    t.s(OK5);
    let ex = t.drain();
    assert!(ex[0].flags.labels().contains(&"too_many_headers"));
}

#[test]
fn endless_chunked_body_is_bounded() {
    let mut t = T::new(cfg());
    t.c(GET);
    t.s(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("1000\r\n{}\r\n", "z".repeat(4096));
    for _ in 0..2000 {
        t.s(chunk.as_bytes());
    }
    assert!(
        t.conn().buffered_bytes() < 16 * 1024,
        "{}",
        t.conn().buffered_bytes()
    );
    let ex = t.close(CloseReason::EndOfInput);
    let r = ex[0].response.as_ref().unwrap();
    assert_eq!(r.body_len, 4096 * 2000);
    assert_eq!(body(r).len(), 4096);
    assert!(r.body_truncated);
    assert!(ex[0].flags.labels().contains(&"incomplete"));
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_decoding_and_bomb_bound() {
    let c = HttpConfig {
        decode_content: true,
        max_decoded_bytes: 1 << 16,
        max_body_bytes: 1 << 20,
        ..cfg()
    };
    let mut t = T::new(c.clone());
    let z = gz(b"{\"hello\":\"world\"}");
    t.c(GET);
    t.s(format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        z.len()
    )
    .as_bytes());
    for ch in z.chunks(5) {
        t.s(ch);
    }
    let ex = t.drain();
    let r = ex[0].response.as_ref().unwrap();
    assert_eq!(body(r), "{\"hello\":\"world\"}");
    assert_eq!(r.body_len, z.len() as u64);
    assert!(ex[0].flags.is_empty());
    // A bomb: 50 MiB of zeros stops at the bound.
    let bomb = gz(&vec![0u8; 50 << 20]);
    let mut t = T::new(c.clone());
    t.c(GET);
    t.s(format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    )
    .as_bytes());
    t.s(&bomb);
    let ex = t.drain();
    assert!(
        ex[0].flags.labels().contains(&"decode_truncated"),
        "{:?}",
        ex[0].flags
    );
    let r = ex[0].response.as_ref().unwrap();
    let b = r.body.as_ref().unwrap();
    assert_eq!(b.content, vxtap_http::Content::Plain);
    assert_eq!(b.cut, Some(vxtap_http::Cut::DecodeBound));
    assert_eq!(body(r).len(), 1 << 16);
    // Garbage: decode_error, the raw capture is emitted instead.
    let mut t = T::new(c);
    t.c(GET);
    t.s(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\n\xff\xfe\x00\x01\x02");
    let ex = t.drain();
    assert!(ex[0].flags.labels().contains(&"decode_error"));
    let b = ex[0].response.as_ref().unwrap().body.as_ref().unwrap();
    // Still gzip as far as anyone can tell: redaction will know it cannot look inside.
    assert_eq!(
        b.content,
        vxtap_http::Content::Encoded(vxtap_http::ContentCoding::Gzip)
    );
    assert_eq!(b.bytes, b"\xff\xfe\x00\x01\x02");
}

#[test]
fn swap_roles_on_reversed_midstream() {
    let mut t = T::midstream(cfg());
    // The reassembler guessed wrong: the "server" direction carries requests.
    let v = t.s(GET);
    assert_eq!(v, Verdict::SwapRoles);
    // From now on the reassembler labels the true client's bytes ClientToServer.
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex.len(), 1, "{ex:#?}");
    assert_eq!(ex[0].request.as_ref().unwrap().uri.as_deref(), Some("/a"));
    assert_eq!(ex[0].client.port, 80);
    assert_eq!(ex[0].server.port, 40000);
    assert_eq!(t.h.stats().role_swaps, 1);
}

#[test]
fn body_capture_cap_and_base64() {
    let c = HttpConfig {
        max_body_bytes: 4,
        ..cfg()
    };
    let mut t = T::new(c);
    t.c(b"POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\n\xff\x01\x02\x03\x04\x05");
    t.s(OK5);
    let ex = t.drain();
    let q = ex[0].request.as_ref().unwrap();
    let b = q.body.as_ref().unwrap();
    assert_eq!(b.bytes, b"\xff\x01\x02\x03");
    assert_eq!(b.cut, Some(vxtap_http::Cut::Cap));
    assert!(q.body_truncated);
    assert_eq!(body(ex[0].response.as_ref().unwrap()), "hell");
    assert_eq!(ex[0].flags.labels(), vec!["body_truncated"]);
    let c = HttpConfig {
        max_body_bytes: 0,
        ..cfg()
    };
    let mut t = T::new(c);
    t.c(GET);
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex[0].response.as_ref().unwrap().body, None);
}

/// Beyond the pending budget, requests keep a compact placeholder: every response still finds
/// its request (the record keeps the method, flagged `pipeline_overflow`), none mis-paired.
/// Beyond the budget for placeholders too, the oldest are given up, still without mis-pairing.
#[test]
fn pending_budget_keeps_placeholders_then_gives_up_oldest() {
    let run = |n: u32, budget: usize, method: &str| {
        let c = HttpConfig {
            max_pending_bytes: budget,
            ..cfg()
        };
        let mut t = T::new(c);
        for i in 0..n {
            t.c(format!("{method} /{i} HTTP/1.1\r\n\r\n").as_bytes());
        }
        let most = t.conn().placeholders();
        let before = t.conn().buffered_bytes();
        for i in 0..n {
            // HEAD responses declare a length but carry no body: only the placeholder's
            // method can frame them.
            let body = if method == "HEAD" { "" } else { "x" };
            t.s(
                format!("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Id: {i}\r\n\r\n{body}")
                    .as_bytes(),
            );
        }
        (t.close(CloseReason::Fin), most, before)
    };
    let id = |e: &vxtap_http::Exchange| {
        e.response
            .as_ref()
            .map(|r| r.headers.iter().find(|h| h.0 == "X-Id").unwrap().1.clone())
    };
    // Which request a record holds, from its time (request i is fed at tick i + 1; a
    // placeholder keeps the time but not the target).
    let req_index = |e: &vxtap_http::Exchange| {
        // Seconds within the minute, as the record's RFC 3339 time shows them.
        let secs = (e.timing.request_start_ns? % 60_000_000_000) as f64 / 1e9;
        Some((((secs - 5.0) * 1000.0).round() as i64 - 1).to_string())
    };
    // 2,000 requests, room for a few dozen full records: all paired.
    let (ex, most, before) = run(2000, 128 * 1024, "HEAD");
    assert!(most > 1800, "{most}");
    assert!(
        // The placeholder ring is charged at capacity (a power of two), as allocated.
        before
            < 128 * 1024 + 2000usize.next_power_of_two() * vxtap_http::PLACEHOLDER_BYTES + 8 * 1024,
        "{before}"
    );
    assert_eq!(ex.len(), 2000);
    for (i, e) in ex.iter().enumerate() {
        assert_eq!(id(e), Some(i.to_string()), "{e:#?}");
        assert_eq!(req_index(e), Some(i.to_string()), "{e:#?}");
        let rq = e.request.as_ref().unwrap();
        assert_eq!(rq.method.as_deref(), Some("HEAD"));
        if rq.uri.is_none() {
            assert_eq!(flags(e), ["pipeline_overflow"], "{e:#?}");
        } else {
            assert!(flags(e).is_empty(), "{e:#?}");
            assert_eq!(rq.uri.as_deref(), Some(&*format!("/{i}")));
        }
    }
    assert!(
        ex.iter()
            .filter(|e| e.request.as_ref().unwrap().uri.is_none())
            .count()
            > 1800
    );
    // 3,000 requests where placeholders fit 400 or so: the oldest are given up, and the
    // responses paired are paired right. (A given-up request's method is not kept, so this
    // uses GET: the response to a given-up HEAD would be framed as if it had a body.)
    let (ex, _, _) = run(3000, 16 * 1024, "GET");
    let mut paired = 0;
    for e in &ex {
        if let (Some(q), Some(_)) = (&e.request, &e.response) {
            paired += 1;
            assert_eq!(req_index(e), id(e), "{e:#?}");
            if let Some(u) = &q.uri {
                assert_eq!(Some(u[1..].to_string()), id(e));
            }
        }
    }
    let summary: std::collections::BTreeMap<String, usize> =
        ex.iter().fold(Default::default(), |mut m, e| {
            *m.entry(format!(
                "{}{} {:?}",
                e.request.is_some() as u8,
                e.response.is_some() as u8,
                e.flags
            ))
            .or_default() += 1;
            m
        });
    assert!(paired > 300, "{paired} {summary:?}");
    assert!(ex
        .iter()
        .any(|e| e.response.is_none() && flags(e).contains(&"pipeline_overflow")));
}

#[test]
fn decoded_body_is_capped_by_max_body_bytes() {
    let c = HttpConfig {
        decode_content: true,
        max_body_bytes: 10,
        ..cfg()
    };
    let mut t = T::new(c);
    let z = gz(b"0123456789abcdefghij");
    t.c(GET);
    t.s(format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        z.len()
    )
    .as_bytes());
    t.s(&z);
    t.s(b"\r\n0\r\n\r\n");
    let ex = t.drain();
    let r = ex[0].response.as_ref().unwrap();
    assert_eq!(body(r), "0123456789");
    assert_eq!(
        ex[0].flags.labels(),
        vec!["body_truncated", "decode_truncated"]
    );
}

#[test]
fn gap_in_chunk_framing_resyncs() {
    let mut t = T::new(cfg());
    t.c(GET);
    t.s(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r");
    t.gap(S2C, 12, GapReason::Lost);
    t.s(b"\r\n0\r\n\r\n");
    t.c(b"GET /b HTTP/1.1\r\n\r\n");
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(ex.len(), 2, "{ex:#?}");
    assert_eq!(body(ex[0].response.as_ref().unwrap()), "abc");
    assert!(ex[0].flags.labels().contains(&"gap") && ex[0].flags.labels().contains(&"incomplete"));
    assert_eq!(ex[1].request.as_ref().unwrap().uri.as_deref(), Some("/b"));
    assert_eq!(body(ex[1].response.as_ref().unwrap()), "hello");
    assert!(ex[1].flags.is_empty(), "{:?}", ex[1].flags);
}

#[test]
fn gap_swallowing_a_response_head_never_mispairs() {
    let mut t = T::new(cfg());
    t.c(b"GET /1 HTTP/1.1\r\n\r\n");
    t.s(b"HTTP/1.1 200 OK\r\nContent-");
    t.gap(S2C, 30, GapReason::Lost);
    t.s(b"tail of body 1");
    t.c(b"GET /2 HTTP/1.1\r\n\r\n");
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr2");
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 2, "{ex:#?}");
    // The cut head still names the status; with one request outstanding it is that one's.
    assert_eq!(ex[0].response.as_ref().unwrap().status, Some(200));
    assert!(ex[0].flags.labels().contains(&"incomplete") && ex[0].flags.labels().contains(&"gap"));
    assert!(ex[1].response.is_some(), "{ex:#?}");
    assert_eq!(ex[1].request.as_ref().unwrap().uri.as_deref(), Some("/2"));
    assert_eq!(body(ex[1].response.as_ref().unwrap()), "r2");
}

#[test]
fn h2c_upgrade_and_midstream_request_first() {
    let mut t = T::new(cfg());
    t.c(b"GET / HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n");
    let v = t.s(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n\x00\x00\x12\x04");
    // The connection is HTTP/2 now (tests/h2.rs): the upgrade's exchange waits for stream 1's
    // response, which never comes here.
    assert_eq!(v, Verdict::Continue);
    assert!(t.drain().is_empty());
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].stream_id, Some(1));
    assert_eq!(ex[0].interim[0].status, Some(101));
    assert_eq!(
        ex[0].flags.labels(),
        vec!["incomplete", "no_response", "upgrade"]
    );
    let mut t = T::midstream(cfg());
    t.c(b"dy of an earlier post\r\nPOST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
    t.s(b"ing of an earlier response\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let ex = t.drain();
    assert_eq!(ex.len(), 1, "{ex:#?}");
    assert_eq!(ex[0].request.as_ref().unwrap().uri.as_deref(), Some("/x"));
    assert!(ex[0].flags.is_empty(), "{:?}", ex[0].flags);
}

#[test]
fn response_delivered_before_the_request_gap_is_declared() {
    // Mirror loss: the request's first segment never arrives; the reassembler delivers the
    // response before it gives up on the hole in the client direction.
    let mut t = T::new(cfg());
    t.c(GET);
    t.s(OK5);
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlost");
    t.gap(C2S, 40, GapReason::Lost);
    for i in 2..6 {
        t.c(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
        t.s(format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr{i}").as_bytes());
    }
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 6, "{ex:#?}");
    assert!(ex[1].request.is_none());
    for (k, e) in ex[2..].iter().enumerate() {
        let i = k + 2;
        assert_eq!(
            e.request.as_ref().unwrap().uri.as_deref(),
            Some(&*format!("/{i}"))
        );
        assert_eq!(
            body(e.response.as_ref().unwrap()),
            format!("r{i}"),
            "{ex:#?}"
        );
    }
}

#[test]
fn late_response_gap_does_not_leave_the_connection_unpaired() {
    // Mirror loss in a response head: the next request is delivered before the reassembler
    // gives up the hole, which looks like pipelining until the gap is reported.
    let mut t = T::new(cfg());
    t.c(b"GET /1 HTTP/1.1\r\n\r\n");
    t.s(b"HTTP/1.1 20");
    t.c(b"GET /2 HTTP/1.1\r\n\r\n");
    t.gap(S2C, 20, GapReason::Lost);
    t.s(b"body1");
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr2");
    for i in 3..6 {
        t.c(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
        t.s(format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr{i}").as_bytes());
    }
    let ex = t.close(CloseReason::Fin);
    for e in &ex {
        if let (Some(q), Some(r)) = (&e.request, &e.response) {
            assert_eq!(&q.uri.as_deref().unwrap()[1..], &body(r)[1..], "{ex:#?}");
        }
    }
    let paired: Vec<_> = ex
        .iter()
        .filter(|e| e.request.is_some() && e.response.is_some())
        .map(|e| e.request.as_ref().unwrap().uri.clone().unwrap())
        .collect();
    for i in 3..6 {
        assert!(paired.contains(&format!("/{i}")), "{ex:#?}");
    }
}

/// A mirror can deliver a response before the request it answers (an NLB target reorders, a
/// request segment is retransmitted late). On a connection in sync the response waits for the
/// next request instead of shifting every later pairing.
#[test]
fn response_delivered_before_its_request_still_pairs() {
    let mut t = T::new(cfg());
    t.c(GET);
    t.s(OK5);
    t.s(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno");
    assert_eq!(t.drain().len(), 1);
    t.c(b"GET /b HTTP/1.1\r\n\r\n");
    t.c(b"GET /c HTTP/1.1\r\n\r\n");
    t.s(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    let ex = t.drain();
    let pairs: Vec<_> = ex
        .iter()
        .map(|e| {
            (
                e.request.as_ref().and_then(|r| r.uri.clone()),
                e.response.as_ref().and_then(|r| r.status),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            (Some("/b".into()), Some(404)),
            (Some("/c".into()), Some(201))
        ]
    );
    assert!(ex.iter().all(|e| !e.flags.labels().contains(&"no_request")));
    // One that never finds its request is emitted unpaired at close.
    t.s(OK5);
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 1);
    assert!(ex[0].request.is_none());
    assert!(ex[0].flags.labels().contains(&"no_request"));
}

/// The early response may still be streaming its body when its request arrives.
#[test]
fn response_streaming_before_its_request_still_pairs() {
    let mut t = T::new(cfg());
    t.c(GET);
    t.s(OK5);
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
    t.c(b"GET /b HTTP/1.1\r\n\r\n");
    t.s(b"world");
    t.c(b"GET /c HTTP/1.1\r\n\r\n");
    t.s(b"HTTP/1.1 204 No Content\r\n\r\n");
    let ex = t.drain();
    let pairs: Vec<_> = ex
        .iter()
        .map(|e| {
            (
                e.request.as_ref().and_then(|r| r.uri.clone()),
                e.response.as_ref().and_then(|r| r.status),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            (Some("/a".into()), Some(200)),
            (Some("/b".into()), Some(200)),
            (Some("/c".into()), Some(204))
        ]
    );
    assert_eq!(body(ex[1].response.as_ref().unwrap()), "helloworld");
}

/// With two requests outstanding, a gap that cuts a response head may hide a whole response.
/// The cut response answers the first request (it starts where that one's response must); the
/// next one is paired only once the end of the connection shows every request answered by
/// exactly one response (a hidden response would leave one unanswered). When the count does
/// not come out, nothing after the cut one is paired.
#[test]
fn cut_response_head_with_pipelined_requests_pairs_only_by_count() {
    let run = |requests: u32, close: bool| {
        let mut t = T::new(cfg());
        for i in 1..=requests {
            t.c(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
        }
        t.s(b"HTTP/1.1 200 OK\r\nContent-Le");
        t.gap(S2C, 300, GapReason::TruncatedCapture);
        t.s(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        // Nothing is emitted before the count.
        assert!(t.drain().is_empty());
        if close {
            t.close(CloseReason::Fin)
        } else {
            // Another loss before the end: the count cannot prove anything.
            t.gap(C2S, 10, GapReason::Lost);
            t.close(CloseReason::Fin)
        }
    };
    let uri = |e: &vxtap_http::Exchange| e.request.as_ref().and_then(|r| r.uri.clone());
    let status = |e: &vxtap_http::Exchange| e.response.as_ref().and_then(|r| r.status);
    let ex = run(2, true);
    assert_eq!(ex.len(), 2, "{ex:#?}");
    assert_eq!(
        (uri(&ex[0]).as_deref(), status(&ex[0])),
        (Some("/1"), Some(200))
    );
    assert_eq!(flags(&ex[0]), ["gap", "incomplete", "truncated_capture"]);
    // The gap held nothing but the rest of the cut response.
    assert_eq!(ex[0].response.as_ref().unwrap().gap_bytes, 300);
    assert_eq!(
        (uri(&ex[1]).as_deref(), status(&ex[1])),
        (Some("/2"), Some(404))
    );
    assert!(flags(&ex[1]).is_empty(), "{:?}", ex[1].flags);
    assert_eq!(t_count_pairings(), 1);
    // Three requests, two responses: the 404 may answer /2 or /3.
    for (requests, close) in [(3, true), (2, false)] {
        let ex = run(requests, close);
        for e in &ex {
            if e.request.is_some() && e.response.is_some() {
                assert_eq!(uri(e).as_deref(), Some("/1"), "paired on a guess: {ex:#?}");
            }
        }
        assert!(ex
            .iter()
            .any(|e| status(e) == Some(404) && e.request.is_none()));
        assert!(ex
            .iter()
            .any(|e| uri(e).as_deref() == Some("/2") && e.response.is_none()));
    }
}

fn t_count_pairings() -> u64 {
    let mut t = T::new(cfg());
    t.c(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    t.s(b"HTTP/1.1 200 OK\r\nContent-Le");
    t.gap(S2C, 300, GapReason::TruncatedCapture);
    t.s(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    t.close(CloseReason::Fin);
    t.h.stats().count_pairings
}

// ---- acknowledgement evidence -----------------------------------------------------------

fn req(i: u32) -> Vec<u8> {
    format!("GET /{i} HTTP/1.1\r\n\r\n").into_bytes()
}

fn resp(i: u32) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr{i}").into_bytes()
}

/// (request number, response number) per exchange: "/3" and "r3" both give "3".
fn pairs(ex: &[vxtap_http::Exchange]) -> Vec<(Option<String>, Option<String>)> {
    ex.iter()
        .map(|e| {
            (
                e.request
                    .as_ref()
                    .and_then(|r| r.uri.as_deref())
                    .map(|u| u[1..].to_string()),
                e.response.as_ref().map(|r| body(r)[1..].to_string()),
            )
        })
        .collect()
}

fn p(q: Option<&str>, r: Option<&str>) -> (Option<String>, Option<String>) {
    (q.map(String::from), r.map(String::from))
}

/// The tail of a response is lost after the client, which had it all, sent its next request:
/// by order alone the next response might answer either request; its ack says the server had
/// only the first two, and the first was answered.
#[test]
fn ack_pairs_the_response_after_a_lost_response_tail() {
    let run = |acks: bool| {
        let mut t = T::new(cfg());
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nr1\r\n";
        let r1_len = (head.len() + 5) as u64;
        let q1 = req(1);
        let q2 = req(2);
        let e2 = (q1.len() + q2.len()) as u64;
        if acks {
            t.ca(0, &q1);
            t.sa(q1.len() as u64, head);
            t.ca(r1_len, &q2);
        } else {
            t.c(&q1);
            t.s(head);
            t.c(&q2);
        }
        t.gap(S2C, 5, GapReason::Lost); // "0\r\n\r\n"
        if acks {
            t.sa(e2, &resp(2));
        } else {
            t.s(&resp(2));
        }
        t.close(CloseReason::Fin)
    };
    let ex = run(true);
    assert_eq!(
        pairs(&ex),
        [p(Some("1"), Some("1")), p(Some("2"), Some("2"))],
        "{ex:#?}"
    );
    assert!(flags(&ex[1]).is_empty(), "{:?}", ex[1].flags);
    // Without acks, the count at the end proves it: two requests, two responses seen, so the
    // gap hid none (see `cut_response_head_with_pipelined_requests_pairs_only_by_count` for
    // a count that does not come out).
    let ex = run(false);
    assert_eq!(
        pairs(&ex),
        [p(Some("1"), Some("1")), p(Some("2"), Some("2"))],
        "{ex:#?}"
    );
}

/// A request's first segment is lost while the reassembler holds the client direction at the
/// hole, so the server's answers to it and to the next request arrive before either request:
/// by their acks, the first answers the lost request and the second the request after it.
#[test]
fn ack_places_responses_that_ran_ahead_of_a_lost_request() {
    let mut t = T::new(cfg());
    let (q1, q2, q3) = (req(1), req(2), req(3));
    let (r1, r2, r3) = (resp(1), resp(2), resp(3));
    let e1 = q1.len() as u64;
    let e2 = e1 + q2.len() as u64;
    let e3 = e2 + q3.len() as u64;
    t.ca(0, &q1);
    t.sa(e1, &r1);
    t.sa(e2, &r2);
    t.sa(e3, &r3);
    // "GET /" of request 2 never arrives.
    t.gap(C2S, 5, GapReason::Lost);
    t.ca(r1.len() as u64, &q2[5..]);
    t.ca((r1.len() + r2.len()) as u64, &q3);
    let ex = t.close(CloseReason::Fin);
    assert_eq!(
        pairs(&ex),
        [
            p(Some("1"), Some("1")),
            p(None, Some("2")),
            p(Some("3"), Some("3"))
        ],
        "{ex:#?}"
    );
    assert!(flags(&ex[1]).contains(&"no_request"));
    assert!(flags(&ex[2]).is_empty(), "{:?}", ex[2].flags);
    assert_eq!(t.h.stats().ack_pairings, 1);
}

/// A lost request, the head of its response lost too, the next response lost whole: the
/// response after them ran ahead of the requests the reassembler held at the client hole, and
/// its ack names the request it answers. The lost request's missing response proves no
/// pipelining (the response direction lost its place after the client could have sent it), so
/// the ack still places the response. Found on the generator's harsher fault mix
/// (`--retransmit 3 --reorder 3 --drop 1`, seed 13), where it came out as two halves.
#[test]
fn ack_places_a_response_after_a_lost_request_and_lost_responses() {
    let mut t = T::new(cfg());
    let (q1, q2, q3, q4) = (req(1), req(2), req(3), req(4));
    let r2 = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nr2-body-of-20-bytes!".to_vec();
    let (r1, r3, r4) = (resp(1), resp(3), resp(4));
    let e1 = q1.len() as u64;
    let (e2, e3) = (e1 + q2.len() as u64, e1 + (q2.len() + q3.len()) as u64);
    let e4 = e3 + q4.len() as u64;
    let s2 = (r1.len() + r2.len()) as u64;
    let s3 = s2 + r3.len() as u64;
    t.ca(0, &q1);
    t.sa(e1, &r1);
    assert_eq!(pairs(&t.drain()), [p(Some("1"), Some("1"))]);
    // The server stream first: the head of response 2 is lost (its body comes, with no status
    // line to resync on), response 3 is lost whole, response 4 acks all four requests.
    t.gap(S2C, 38, GapReason::Lost);
    t.sa(e2, &r2[38..]);
    t.gap(S2C, r3.len() as u64, GapReason::Lost);
    t.sa(e4, &r4);
    // Then the client stream, released past its hole: request 2 lost, 3 and 4 with the acks
    // they were sent with.
    t.gap(C2S, q2.len() as u64, GapReason::Lost);
    t.ca(s2, &q3);
    t.ca(s3, &q4);
    let ex = t.close(CloseReason::Fin);
    assert_has_pairs(&ex, &[p(Some("4"), Some("4")), p(Some("3"), None)]);
}

/// `ex` holds every pair of `expected`, and no request has another request's response.
fn assert_has_pairs(ex: &[vxtap_http::Exchange], expected: &[(Option<String>, Option<String>)]) {
    let got = pairs(ex);
    for want in expected {
        assert!(got.contains(want), "{want:?} missing: {ex:#?}");
    }
    assert!(
        !got.iter()
            .any(|(q, r)| q.is_some() && r.is_some() && q != r),
        "never mis-paired: {ex:#?}"
    );
}

/// The same at the start of a connection: the first request lost, the head of its response
/// lost, so no request has been queued with an ack yet. The next response's ack still places
/// it. (Generator, `--retransmit 10 --reorder 10 --drop 5`, seed 41: 5 intact exchanges of one
/// connection came out as halves.)
#[test]
fn ack_places_responses_after_a_lost_first_request_and_response_head() {
    let mut t = T::new(cfg());
    let (q1, q2, q3) = (req(1), req(2), req(3));
    let r1 = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nr1-body-of-20-bytes!".to_vec();
    let (r2, r3) = (resp(2), resp(3));
    let e2 = (q1.len() + q2.len()) as u64;
    let e3 = e2 + q3.len() as u64;
    let s1 = r1.len() as u64;
    let s2 = s1 + r2.len() as u64;
    // The server stream first: the head of response 1 lost, then responses 2 and 3.
    t.gap(S2C, 38, GapReason::Lost);
    t.s(&r1[38..]);
    t.sa(e2, &r2);
    t.sa(e3, &r3);
    // Then the client stream past its hole: request 1 lost, 2 and 3 with their acks.
    t.gap(C2S, q1.len() as u64, GapReason::Lost);
    t.ca(s1, &q2);
    t.ca(s2, &q3);
    let ex = t.close(CloseReason::Fin);
    assert_has_pairs(&ex, &[p(Some("2"), Some("2")), p(Some("3"), Some("3"))]);
}

/// A response sent before the server had a request (its ack says so) does not answer it, even
/// when order alone would pair them.
#[test]
fn response_sent_before_the_request_does_not_answer_it() {
    let mut t = T::new(cfg());
    let (q1, q2) = (req(1), req(2));
    let e1 = q1.len() as u64;
    t.ca(0, &q1);
    t.sa(e1, &resp(1));
    t.sa(e1, &resp(9));
    t.ca((2 * resp(1).len()) as u64, &q2);
    t.sa(e1 + q2.len() as u64, &resp(2));
    let ex = t.close(CloseReason::Fin);
    assert_eq!(
        pairs(&ex),
        [
            p(Some("1"), Some("1")),
            p(None, Some("9")),
            p(Some("2"), Some("2"))
        ],
        "{ex:#?}"
    );
}

/// A response that arrives before the request it answers waits until the request's body has
/// come (the server answered after receiving all of it).
#[test]
fn early_response_waits_for_the_request_body() {
    let mut t = T::new(cfg());
    let q1 = req(1);
    let e1 = q1.len() as u64;
    t.ca(0, &q1);
    t.sa(e1, &resp(1));
    let head = b"POST /2 HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
    let e2 = e1 + head.len() as u64 + 10;
    t.sa(e2, &resp(2));
    t.ca(resp(1).len() as u64, head);
    t.c(b"01234");
    assert_eq!(t.drain().len(), 1);
    t.c(b"56789");
    let ex = t.drain();
    assert_eq!(pairs(&ex), [p(Some("2"), Some("2"))], "{ex:#?}");
    assert!(flags(&ex[0]).is_empty(), "{:?}", ex[0].flags);
}

/// Acks that prove nothing are not used: one beyond anything the client sent, one inside a
/// request's head. The uncertain connection then stays unpaired rather than guessing.
#[test]
fn hostile_acks_never_pair() {
    for bad in [1_000_000u64, 3] {
        let mut t = T::new(cfg());
        let (q1, q2) = (req(1), req(2));
        let e1 = q1.len() as u64;
        t.ca(0, &q1);
        t.sa(
            e1,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nr1\r\n",
        );
        t.gap(S2C, 5, GapReason::Lost);
        t.ca(1000, &q2);
        t.sa(e1 + bad, &resp(2));
        let ex = t.close(CloseReason::Fin);
        for e in &ex {
            if let (Some(q), Some(_)) = (&e.request, &e.response) {
                assert_eq!(q.uri.as_deref(), Some("/1"), "ack {bad}: {ex:#?}");
            }
        }
        assert!(ex.iter().any(|e| e.request.is_none()), "ack {bad}: {ex:#?}");
    }
}

/// Pipelined requests are answered in order whatever the acks say (the server had them all),
/// and after a loss a pipelining client's responses are not placed by acks.
#[test]
fn pipelined_requests_stay_fifo_with_acks() {
    let mut t = T::new(cfg());
    let all: Vec<u8> = [req(1), req(2), req(3)].concat();
    let end = all.len() as u64;
    t.ca(0, &all);
    for i in 1..=3 {
        t.sa(end, &resp(i));
    }
    let ex = t.drain();
    assert_eq!(
        pairs(&ex),
        [
            p(Some("1"), Some("1")),
            p(Some("2"), Some("2")),
            p(Some("3"), Some("3"))
        ]
    );
    let mut t = T::new(cfg());
    t.ca(0, &all);
    t.sa(end, b"HTTP/1.1 200 OK\r\nContent-Le");
    t.gap(S2C, 100, GapReason::Lost);
    t.sa(end, &resp(3));
    let ex = t.close(CloseReason::Fin);
    // The cut response starts where the first one must: it is the first request's. Three
    // requests and two responses: the one after the gap is not placed.
    let paired: Vec<_> = ex
        .iter()
        .filter(|e| e.request.is_some() && e.response.is_some())
        .collect();
    assert_eq!(paired.len(), 1, "{ex:#?}");
    assert_eq!(
        paired[0].request.as_ref().unwrap().uri.as_deref(),
        Some("/1")
    );
    assert!(ex
        .iter()
        .any(|e| e.request.is_none() && e.response.as_ref().is_some_and(|r| body(r) == "r3")));
}

// ---- malformed request lines (issue 13, section 4) --------------------------------------

/// A framed request head whose start line does not parse is kept, paired with its response and
/// flagged `parse_error`: the raw line, the best-effort method and target, the fields.
#[test]
fn malformed_request_lines_are_emitted_and_paired() {
    let cases: &[(&[u8], Option<&str>, Option<&str>)] = &[
        (b"OPTIONS HTTP/1.1", Some("OPTIONS"), None),
        (b"OPTIONSHTTP/1.1", Some("OPTIONS"), None),
        (b"OPTIONS", Some("OPTIONS"), None),
        (b"GET / HTTP/1.", Some("GET"), Some("/")),
        (b"GET /HTTP/1.1", Some("GET"), Some("/")),
        (b"GET/ HTTP/1.1", Some("GET"), Some("/")),
        (b"GET/HTTP/1.1", Some("GET"), Some("/")),
        (b"GET /x HTTP/2.0", Some("GET"), Some("/x")),
        (b"GET /a b HTTP/1.1", Some("GET"), Some("/a")),
        ("\u{c3}\u{c2}\u{c3} / HTTP/1.".as_bytes(), None, Some("/")),
        ("\u{c3}\u{c2}\u{c3}/HTTP/1.1".as_bytes(), None, None),
        (b"CCM_POST /HTTP/1.1", Some("CCM_POST"), Some("/")),
    ];
    for (line, method, target) in cases {
        for end in ["\r\n", "\n"] {
            let mut t = T::new(cfg());
            let mut head = line.to_vec();
            head.extend_from_slice(format!("{end}Host: x{end}{end}").as_bytes());
            t.c(&head);
            t.s(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad");
            t.c(GET);
            t.s(OK5);
            let ex = t.close(CloseReason::Fin);
            let name = String::from_utf8_lossy(line);
            assert_eq!(ex.len(), 2, "{name}: {ex:#?}");
            let rq = ex[0].request.as_ref().expect("request kept");
            assert_eq!(rq.start_line.as_deref(), Some(&*name), "{name}");
            assert_eq!(rq.method.as_deref(), *method, "{name}");
            assert_eq!(rq.uri.as_deref(), *target, "{name}");
            assert_eq!(rq.headers, vec![("Host".to_string(), "x".to_string())]);
            assert_eq!(ex[0].response.as_ref().unwrap().status, Some(400));
            assert!(flags(&ex[0]).contains(&"parse_error"), "{:?}", ex[0].flags);
            assert!(!flags(&ex[0]).contains(&"no_request"));
            // Bare LF line ends are still what the smuggling rules flag.
            assert_eq!(
                flags(&ex[0]).contains(&"smuggling_suspect"),
                end == "\n",
                "{name}: {:?}",
                ex[0].flags
            );
            // The connection stays in step.
            assert_eq!(ex[1].request.as_ref().unwrap().uri.as_deref(), Some("/a"));
            assert_eq!(body(ex[1].response.as_ref().unwrap()), "hello");
            assert!(flags(&ex[1]).is_empty(), "{name}: {:?}", ex[1].flags);
        }
    }
    // Extension methods (any token) are methods, not errors.
    let mut t = T::new(cfg());
    t.c(b"CCM_POST / HTTP/1.1\r\n\r\n");
    t.s(OK5);
    let ex = t.drain();
    assert_eq!(
        ex[0].request.as_ref().unwrap().method.as_deref(),
        Some("CCM_POST")
    );
    assert!(ex[0].request.as_ref().unwrap().start_line.is_none());
    assert!(flags(&ex[0]).is_empty(), "{:?}", ex[0].flags);
}

/// HEAD and CONNECT read out of a malformed line shape the response framing only when the
/// method is cleanly delimited; a body declared by the malformed request is still delimited.
#[test]
fn malformed_request_framing() {
    // "HEAD /HTTP/1.1": a HEAD, so its response has no body.
    let mut t = T::new(cfg());
    t.c(b"HEAD /HTTP/1.1\r\n\r\n");
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 925\r\n\r\n");
    t.c(GET);
    t.s(OK5);
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 2, "{ex:#?}");
    assert_eq!(ex[0].response.as_ref().unwrap().body_len, 0);
    assert_eq!(body(ex[1].response.as_ref().unwrap()), "hello");
    // "HEAD/ HTTP/1.1": no method a server would act on; the response's body is read.
    let mut t = T::new(cfg());
    t.c(b"HEAD/ HTTP/1.1\r\n\r\n");
    t.s(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad");
    t.c(GET);
    t.s(OK5);
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 2, "{ex:#?}");
    assert_eq!(body(ex[0].response.as_ref().unwrap()), "bad");
    assert!(flags(&ex[1]).is_empty(), "{:?}", ex[1].flags);
    // A body of known length after a malformed line is skipped as its body.
    let mut t = T::new(cfg());
    t.c(b"POST/ HTTP/1.1\r\nContent-Length: 9\r\n\r\nGET /x HT");
    t.s(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad");
    t.c(GET);
    t.s(OK5);
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 2, "{ex:#?}");
    assert_eq!(ex[0].request.as_ref().unwrap().body_len, 9);
    assert_eq!(ex[1].request.as_ref().unwrap().uri.as_deref(), Some("/a"));
}

/// What cannot be framed is still resynchronised: a malformed line whose fields do not parse,
/// whose framing is ambiguous, or which holds control bytes.
#[test]
fn unframable_malformed_requests_still_resync() {
    for head in [
        &b"GET/ HTTP/1.1\r\nBad Header\r\n\r\n"[..],
        b"GET/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"GET/ HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n",
        b"\x16\x03\x01\x00 HTTP/1.1\r\n\r\n",
        // (The HTTP/2 preface is no longer malformed: tests/h2.rs.)
    ] {
        let mut t = T::new(cfg());
        t.c(head);
        t.s(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad");
        let ex = t.close(CloseReason::Fin);
        let name = String::from_utf8_lossy(head);
        assert!(ex.iter().all(|e| e.request.is_none()), "{name}: {ex:#?}");
        assert!(
            ex.iter().any(|e| flags(e).contains(&"parse_error")),
            "{name}"
        );
    }
}

/// Issue 13, case (b): 100,000 pipelined requests whose responses all come after the last
/// one. Within the default budget every one is paired with its own response (each response
/// names its request); the connection's pending state stays bounded.
#[test]
fn hundred_thousand_pipelined_requests_all_pair() {
    const N: u32 = 100_000;
    let mut t = T::new(cfg());
    for i in 0..N {
        t.c(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    let held = t.conn().buffered_bytes();
    // Full records within the budget, placeholders within as much again; charged at
    // capacity, so the placeholder ring's power-of-two rounding counts too.
    let budget = HttpConfig::default().max_pending_bytes;
    let ring = (budget / vxtap_http::PLACEHOLDER_BYTES).next_power_of_two();
    assert!(
        held <= budget + ring * vxtap_http::PLACEHOLDER_BYTES + 64 * 1024,
        "{held}"
    );
    assert!(t.drain().is_empty());
    let mut ex = Vec::new();
    for i in 0..N {
        t.s(format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Id: {i}\r\n\r\nok").as_bytes());
        ex.append(&mut t.drain());
    }
    ex.append(&mut t.close(CloseReason::Fin));
    assert_eq!(ex.len(), N as usize);
    let mut full = 0;
    for (i, e) in ex.iter().enumerate() {
        let r = e.response.as_ref().expect("paired");
        let id = &r.headers.iter().find(|h| h.0 == "X-Id").unwrap().1;
        assert_eq!(*id, i.to_string());
        let q = e.request.as_ref().expect("paired");
        assert_eq!(q.method.as_deref(), Some("GET"));
        match &q.uri {
            Some(u) => {
                full += 1;
                assert_eq!(u[1..], *id);
                assert!(flags(e).is_empty(), "{:?}", e.flags);
            }
            None => assert_eq!(flags(e), ["pipeline_overflow"]),
        }
    }
    assert!(full > 1000, "{full}");
    eprintln!("held {held} bytes with {N} requests pending; {full} full records");
}

/// A response cut inside its chunked body while more requests wait: it stays its request's,
/// and the count at the end pairs the rest (or, one response short, pairs none of them).
#[test]
fn cut_chunked_body_with_pipelined_requests_pairs_by_count() {
    let run = |answered: u32| {
        let mut t = T::new(cfg());
        t.c(&[req(1), req(2), req(3)].concat());
        t.s(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nr1\r\n");
        t.gap(S2C, 40, GapReason::Lost);
        for i in 2..=answered {
            t.s(&resp(i));
        }
        t.close(CloseReason::Fin)
    };
    let ex = run(3);
    assert_eq!(
        pairs(&ex),
        [
            p(Some("1"), Some("1")),
            p(Some("2"), Some("2")),
            p(Some("3"), Some("3"))
        ],
        "{ex:#?}"
    );
    assert!(flags(&ex[0]).contains(&"incomplete") && flags(&ex[0]).contains(&"gap"));
    assert_eq!(ex[0].response.as_ref().unwrap().gap_bytes, 40);
    assert!(flags(&ex[2]).is_empty(), "{:?}", ex[2].flags);
    let ex = run(2);
    let paired: Vec<_> = ex
        .iter()
        .filter(|e| e.request.is_some() && e.response.is_some())
        .collect();
    assert_eq!(paired.len(), 1, "{ex:#?}");
    assert_eq!(
        paired[0].request.as_ref().unwrap().uri.as_deref(),
        Some("/1")
    );
}

/// A 408 may come unasked before a server closes: it would make up for a response hidden in
/// the gap, so a count that includes one proves nothing.
#[test]
fn unsolicited_408_spoils_the_count() {
    let mut t = T::new(cfg());
    t.c(&[req(1), req(2)].concat());
    t.s(b"HTTP/1.1 200 OK\r\nContent-Le");
    t.gap(S2C, 300, GapReason::Lost);
    t.s(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let ex = t.close(CloseReason::Fin);
    for e in &ex {
        if let (Some(q), Some(_)) = (&e.request, &e.response) {
            assert_eq!(q.uri.as_deref(), Some("/1"), "paired on a guess: {ex:#?}");
        }
    }
    assert!(ex
        .iter()
        .any(|e| e.request.is_none() && e.response.as_ref().unwrap().status == Some(408)));
}

/// A gap where a response was due, with several requests waiting: the oldest waiting request's
/// response began in it. The count at the end proves it was the only one there; a gap that
/// held no response at all (the count comes out one response over) pairs nothing on a guess.
#[test]
fn gap_where_a_response_was_due_is_counted() {
    let run = |gap: u64, from: u32| {
        let mut t = T::new(cfg());
        t.c(&[req(1), req(2), req(3)].concat());
        t.gap(S2C, gap, GapReason::Lost);
        for i in from..=3 {
            t.s(&resp(i));
        }
        t.close(CloseReason::Fin)
    };
    // The whole first response lost.
    let ex = run(resp(1).len() as u64, 2);
    assert_eq!(
        pairs(&ex[1..]),
        [p(Some("2"), Some("2")), p(Some("3"), Some("3"))],
        "{ex:#?}"
    );
    assert_eq!(ex[0].request.as_ref().unwrap().uri.as_deref(), Some("/1"));
    assert_eq!(flags(&ex[0]), ["gap", "no_response"]);
    // The gap held only stray line ends: every response is seen, one too many for the
    // assumption, so none after the gap is paired.
    let ex = run(2, 1);
    for e in &ex {
        assert!(
            e.request.is_none() || e.response.is_none(),
            "paired on a guess: {ex:#?}"
        );
    }
    assert_eq!(ex.iter().filter(|e| e.response.is_some()).count(), 3);
}

/// README: `body_truncated` means the captured body is shorter than `body_len`. A response
/// cut by the end of the connection after every byte that arrived was captured is
/// `incomplete`, not truncated (issue 12 §5); one cut by the capture cap is both.
#[test]
fn body_truncated_means_shorter_than_body_len() {
    let mut t = T::new(cfg());
    t.c(GET);
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b");
    let ex = t.close(CloseReason::Fin);
    assert_eq!(ex.len(), 1);
    let r = ex[0].response.as_ref().unwrap();
    assert_eq!(r.body_len, 10);
    assert_eq!(body(r), "only ten b");
    assert!(!r.body_truncated);
    assert_eq!(
        r.body.as_ref().unwrap().cut,
        Some(vxtap_http::Cut::Incomplete)
    );
    assert_eq!(flags(&ex[0]), vec!["incomplete"]);
    let mut t = T::new(HttpConfig {
        max_body_bytes: 4,
        ..cfg()
    });
    t.c(GET);
    t.s(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b");
    let ex = t.close(CloseReason::Fin);
    let r = ex[0].response.as_ref().unwrap();
    assert!(r.body_truncated);
    assert_eq!(flags(&ex[0]), vec!["body_truncated", "incomplete"]);
}
