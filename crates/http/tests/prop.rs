//! Property and fuzz-style tests: segmentation never changes the exchanges; hostile bytes never
//! panic and never grow memory past the configured bounds.

mod common;
use common::*;
use proptest::prelude::*;
use vxtap_flow::{CloseReason, GapReason};
use vxtap_http::{Exchange, HttpConfig};

#[derive(Clone, Debug)]
enum Framing {
    None,
    Length,
    Chunked(Vec<usize>),
}

#[derive(Clone, Debug)]
struct Msg {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    framing: Framing,
}

impl Msg {
    fn bytes(&self) -> Vec<u8> {
        let mut out = self.start.clone().into_bytes();
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        match &self.framing {
            Framing::None => out.extend_from_slice(b"\r\n"),
            Framing::Length => {
                out.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes(),
                );
                out.extend_from_slice(&self.body);
            }
            Framing::Chunked(sizes) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                let mut rest = &self.body[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = sizes.get(i).copied().unwrap_or(7).clamp(1, rest.len());
                    i += 1;
                    let ext = if i % 2 == 0 { ";e=1" } else { "" };
                    out.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
                    out.extend_from_slice(&rest[..n]);
                    out.extend_from_slice(b"\r\n");
                    rest = &rest[n..];
                }
                out.extend_from_slice(b"0\r\n");
                if i % 2 == 1 {
                    out.extend_from_slice(b"X-Trailer: t\r\n");
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9-]{0,11}"
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (token(), "[ -~]{0,20}").prop_filter("not framing", |(n, _)| {
            let l = n.to_ascii_lowercase();
            l != "content-length" && l != "transfer-encoding" && l != "content-encoding"
        }),
        0..5,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(n, val)| (n, val.trim().to_string()))
            .collect()
    })
}

fn framing(allow_none: bool) -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(if allow_none {
            Framing::None
        } else {
            Framing::Length
        }),
        Just(Framing::Length),
        prop::collection::vec(1usize..40, 0..6).prop_map(Framing::Chunked),
    ]
}

fn request() -> impl Strategy<Value = Msg> {
    (
        prop_oneof![
            Just("GET"),
            Just("POST"),
            Just("PUT"),
            Just("DELETE"),
            Just("OPTIONS"),
            Just("PATCH"),
            Just("PURGE")
        ],
        "/[a-z0-9/._-]{0,30}",
        headers(),
        prop::collection::vec(any::<u8>(), 0..200),
        framing(true),
    )
        .prop_map(|(m, uri, headers, body, framing)| {
            let body = if matches!(framing, Framing::None) {
                Vec::new()
            } else {
                body
            };
            Msg {
                start: format!("{m} {uri} HTTP/1.1"),
                headers,
                body,
                framing,
            }
        })
}

fn response() -> impl Strategy<Value = Msg> {
    (
        prop_oneof![Just(200u16), Just(201), Just(301), Just(404), Just(500)],
        headers(),
        prop::collection::vec(any::<u8>(), 0..300),
        framing(false),
        any::<bool>(),
    )
        .prop_map(|(code, headers, body, framing, cont)| {
            let start = if cont {
                format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 {code} Whatever")
            } else {
                format!("HTTP/1.1 {code} Whatever")
            };
            Msg {
                start,
                headers,
                body,
                framing,
            }
        })
}

fn feed_split(t: &mut T, dir: vxtap_flow::Direction, ts: u64, bytes: &[u8], cuts: &[usize]) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut prev = 0;
    for p in points {
        t.data_at(dir, ts, &bytes[prev..p]);
        prev = p;
    }
    t.data_at(dir, ts, &bytes[prev..]);
}

fn run(
    pairs: &[(Msg, Msg)],
    pipelined: bool,
    cuts: Option<&[usize]>,
    cfg: &HttpConfig,
) -> Vec<Exchange> {
    let mut t = T::new(cfg.clone());
    let none: &[usize] = &[];
    let cuts = cuts.unwrap_or(none);
    if pipelined {
        let req: Vec<u8> = pairs.iter().flat_map(|p| p.0.bytes()).collect();
        let resp: Vec<u8> = pairs.iter().flat_map(|p| p.1.bytes()).collect();
        feed_split(&mut t, C2S, 10, &req, cuts);
        feed_split(&mut t, S2C, 20, &resp, cuts);
    } else {
        for (i, (q, r)) in pairs.iter().enumerate() {
            let ts = 100 * i as u64;
            feed_split(&mut t, C2S, ts, &q.bytes(), cuts);
            feed_split(&mut t, S2C, ts + 50, &r.bytes(), cuts);
        }
    }
    t.close(CloseReason::Fin)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn splitting_never_changes_exchanges(
        pairs in prop::collection::vec((request(), response()), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        pipelined in any::<bool>(),
        cap in prop_oneof![Just(0usize), Just(16), Just(4096)],
    ) {
        let cfg = HttpConfig { max_body_bytes: cap, ..HttpConfig::default() };
        let whole = run(&pairs, pipelined, None, &cfg);
        let split = run(&pairs, pipelined, Some(&cuts), &cfg);
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(whole.len(), pairs.len());
        for (e, (q, r)) in whole.iter().zip(&pairs) {
            prop_assert!(e.flags.iter().all(|f| f == vxtap_http::Flag::BodyTruncated), "{:?}", e.flags);
            let rq = e.request.as_ref().unwrap();
            let rs = e.response.as_ref().unwrap();
            prop_assert_eq!(rq.body_len, q.body.len() as u64);
            prop_assert_eq!(rs.body_len, r.body.len() as u64);
            prop_assert_eq!(&rq.headers[..q.headers.len()], &q.headers[..]);
            let want_interim = usize::from(r.start.starts_with("HTTP/1.1 100"));
            prop_assert_eq!(e.interim.len(), want_interim);
        }
    }

    /// Shadow replay captures more body than the record keeps: the record must be exactly
    /// what `max_body_bytes` alone gives (decoding, caps and flags included), and the replay
    /// copy the whole body up to its own cap.
    #[test]
    fn replay_capture_never_changes_the_record(
        pairs in prop::collection::vec((request(), response()), 1..5),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        cap in prop_oneof![Just(0usize), Just(3), Just(16), Just(4096)],
        replay in prop_oneof![Just(1usize), Just(8), Just(1 << 20)],
        decode in any::<bool>(),
    ) {
        let cfg = HttpConfig { max_body_bytes: cap, decode_content: decode, max_decoded_bytes: 10, ..HttpConfig::default() };
        let plain = run(&pairs, false, Some(&cuts), &cfg);
        let with = run(&pairs, false, Some(&cuts), &HttpConfig { replay_body_bytes: replay, ..cfg.clone() });
        prop_assert_eq!(plain.len(), with.len());
        for (p, w) in plain.iter().zip(&with) {
            let mut w = w.clone();
            let rq = w.request.as_mut().unwrap();
            let body = rq.replay_body.take().unwrap();
            prop_assert_eq!(body.len() as u64, rq.body_len.min(replay as u64));
            for m in w.messages_mut() {
                m.replay_body = None;
            }
            prop_assert_eq!(p, &w);
        }
    }

    #[test]
    fn random_bytes_never_panic_and_stay_bounded(
        ops in prop::collection::vec(
            (0u8..8, prop::collection::vec(any::<u8>(), 0..300), 1u64..5000),
            0..60,
        ),
        midstream in any::<bool>(),
    ) {
        let cfg = HttpConfig {
            max_head_bytes: 1024,
            max_headers: 16,
            max_body_bytes: 64,
            max_pending_bytes: 16 * 1024,
            ..HttpConfig::default()
        };
        let mut t = if midstream { T::midstream(cfg) } else { T::new(cfg) };
        for (op, bytes, len) in ops {
            match op {
                0..=2 => { t.c(&bytes); }
                3..=5 => { t.s(&bytes); }
                6 => { t.gap(if len % 2 == 0 { C2S } else { S2C }, len, GapReason::Lost); }
                _ => t.fin(if len % 2 == 0 { C2S } else { S2C }),
            }
            prop_assert!(t.conn().buffered_bytes() < 64 * 1024, "{}", t.conn().buffered_bytes());
        }
        // Closing emits whatever is pending without panicking.
        let _ = t.close(CloseReason::EndOfInput);
    }
}

/// Deterministic xorshift so the fuzz loop needs no extra crate and replays identically.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    b"CONNECT a:443 HTTP/1.1\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00",
];

#[test]
fn mutated_messages_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let cfgs = [
        HttpConfig::default(),
        HttpConfig {
            max_head_bytes: 100,
            max_headers: 2,
            max_body_bytes: 3,
            decode_content: true,
            max_decoded_bytes: 10,
            max_pending_bytes: 0,
            max_pending_bytes_total: 0,
            grpc_decode: true,
            replay_body_bytes: 5,
        },
    ];
    for round in 0..3000 {
        let cfg = cfgs[round % 2].clone();
        let mut t = if round % 3 == 0 {
            T::midstream(cfg)
        } else {
            T::new(cfg)
        };
        for _ in 0..rng.below(8) + 1 {
            let mut m = SEEDS[rng.below(SEEDS.len())].to_vec();
            for _ in 0..rng.below(4) {
                let p = rng.below(m.len());
                match rng.below(5) {
                    0 => m[p] = rng.next() as u8,
                    1 => m.insert(p, b"\r\n:; 0fF"[rng.below(8)]),
                    2 => {
                        let e = (p + rng.below(8)).min(m.len());
                        m.drain(p..e);
                    }
                    3 => {
                        let e = (p + rng.below(16)).min(m.len());
                        let dup = m[p..e].to_vec();
                        m.splice(p..p, dup);
                    }
                    _ => m[p] ^= 0x20,
                }
            }
            let dir = if rng.below(2) == 0 { C2S } else { S2C };
            let mut pos = 0;
            while pos < m.len() {
                let n = rng.below(m.len() - pos) + 1;
                t.data(dir, &m[pos..pos + n]);
                pos += n;
                if rng.below(20) == 0 {
                    t.gap(dir, rng.below(50) as u64 + 1, GapReason::Lost);
                }
            }
        }
        let reasons = [
            CloseReason::Fin,
            CloseReason::EndOfInput,
            CloseReason::Evicted,
        ];
        // Closing emits whatever is pending without panicking (flags are a set: sorted and
        // unique by construction).
        let _ = t.close(reasons[round % 3]);
    }
}

fn labelled_stream(n: usize, bodies: &[usize]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut reqs = Vec::new();
    let mut resps = Vec::new();
    for i in 0..n {
        let blen = bodies.get(i).copied().unwrap_or(0);
        let body: String = (0..blen).map(|k| (b'a' + (k % 26) as u8) as char).collect();
        if blen % 3 == 0 {
            reqs.push(format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes());
        } else {
            reqs.push(
                format!("POST /{i} HTTP/1.1\r\nContent-Length: {blen}\r\n\r\n{body}").into_bytes(),
            );
        }
        if blen % 2 == 0 {
            resps.push(
                format!("HTTP/1.1 200 R{i}\r\nX-Id: {i}\r\nContent-Length: {blen}\r\n\r\n{body}")
                    .into_bytes(),
            );
        } else {
            resps.push(
                format!(
                    "HTTP/1.1 200 R{i}\r\nX-Id: {i}\r\nTransfer-Encoding: chunked\r\n\r\n{blen:x}\r\n{body}\r\n0\r\n\r\n"
                )
                .into_bytes(),
            );
        }
    }
    (reqs, resps)
}

/// Feeds `bytes` but replaces `[at, at+len)` (clamped) by a gap notification.
fn feed_with_gap(t: &mut T, dir: vxtap_flow::Direction, bytes: &[u8], gap: Option<(usize, usize)>) {
    match gap {
        Some((at, len)) if at < bytes.len() => {
            let end = (at + len.max(1)).min(bytes.len());
            if at > 0 {
                t.data(dir, &bytes[..at]);
            }
            t.gap(dir, (end - at) as u64, GapReason::Lost);
            if end < bytes.len() {
                t.data(dir, &bytes[end..]);
            }
        }
        _ => {
            t.data(dir, bytes);
        }
    }
}

fn late_resp_gap(t: &mut T, resp: &[u8], next_req: &[u8], at: usize, len: usize) {
    let end = (at + len.max(1)).min(resp.len());
    if at > 0 {
        t.data(S2C, &resp[..at]);
    }
    t.data(C2S, next_req);
    t.gap(S2C, (end - at) as u64, GapReason::Lost);
    if end < resp.len() {
        t.data(S2C, &resp[end..]);
    }
}

fn assert_no_mispair(ex: &[Exchange]) -> Result<(), TestCaseError> {
    for e in ex {
        if let (Some(q), Some(r)) = (&e.request, &e.response) {
            let uri = q.uri.as_deref().unwrap_or("");
            let id = r
                .headers
                .iter()
                .find(|(n, _)| n == "X-Id")
                .map(|(_, v)| v.as_str())
                // A head cut by a gap keeps its start line: the reason phrase carries the id.
                .or_else(|| r.reason.as_deref().and_then(|x| x.strip_prefix('R')))
                .unwrap_or("?");
            prop_assert_eq!(&uri[1..], id, "mis-paired: {:?}", e);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn gaps_never_mispair(
        n in 2usize..8,
        bodies in prop::collection::vec(0usize..40, 8),
        gaps in prop::collection::vec((0usize..8, any::<bool>(), 0usize..120, 1usize..150), 0..3),
        pipelined in any::<bool>(),
        late_gap in any::<bool>(),
    ) {
        let (reqs, resps) = labelled_stream(n, &bodies);
        let mut t = T::new(HttpConfig::default());
        let gap_for = |i: usize, client: bool| {
            gaps.iter().find(|g| g.0 == i && g.1 == client).map(|g| (g.2, g.3))
        };
        if pipelined {
            for (i, q) in reqs.iter().enumerate() {
                feed_with_gap(&mut t, C2S, q, gap_for(i, true));
            }
            for (i, r) in resps.iter().enumerate() {
                feed_with_gap(&mut t, S2C, r, gap_for(i, false));
            }
        } else {
            let mut sent = vec![false; n + 1];
            for i in 0..n {
                if sent[i] {
                    // The request already went out (a late response-direction gap below).
                    match gap_for(i, false) {
                        Some((at, len)) if late_gap && at < resps[i].len() && i + 1 < n => {
                            late_resp_gap(&mut t, &resps[i], &reqs[i + 1], at, len);
                            sent[i + 1] = true;
                        }
                        g => feed_with_gap(&mut t, S2C, &resps[i], g),
                    }
                    continue;
                }
                if let (Some((at, len)), None, true) = (gap_for(i, false), gap_for(i, true), late_gap) {
                    if at < resps[i].len() && i + 1 < n {
                        // The next request is delivered before the hole in this response is
                        // given up.
                        t.data(C2S, &reqs[i]);
                        late_resp_gap(&mut t, &resps[i], &reqs[i + 1], at, len);
                        sent[i + 1] = true;
                        continue;
                    }
                }
                match gap_for(i, true) {
                    // Mirror loss as the reassembler reports it: the response comes through
                    // before the hole in the client direction is given up.
                    Some((at, len)) if late_gap && at < reqs[i].len() => {
                        let q = &reqs[i];
                        let end = (at + len.max(1)).min(q.len());
                        if at > 0 {
                            t.data(C2S, &q[..at]);
                        }
                        feed_with_gap(&mut t, S2C, &resps[i], gap_for(i, false));
                        t.gap(C2S, (end - at) as u64, GapReason::Lost);
                        if end < q.len() {
                            t.data(C2S, &q[end..]);
                        }
                    }
                    g => {
                        feed_with_gap(&mut t, C2S, &reqs[i], g);
                        feed_with_gap(&mut t, S2C, &resps[i], gap_for(i, false));
                    }
                }
            }
        }
        let ex = t.close(CloseReason::Fin);
        assert_no_mispair(&ex)?;
        // Exchanges not touched by a gap come out whole when requests are not pipelined.
        if !pipelined {
            let touched: Vec<usize> = gaps.iter().map(|g| g.0).collect();
            for i in 0..n {
                if touched.contains(&i) || (i > 0 && touched.contains(&(i - 1))) {
                    continue;
                }
                let found = ex.iter().any(|e| {
                    e.request.as_ref().and_then(|q| q.uri.clone()) == Some(format!("/{i}"))
                        && e.response.is_some()
                });
                prop_assert!(found, "exchange {} lost: {:#?}", i, ex);
            }
        }
    }
}
