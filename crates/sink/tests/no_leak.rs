//! Redaction must not leak (issue 12 §3): whatever the encoding (identity, chunked, gzip,
//! deflate, br, zstd, and gzip as a transfer coding) and wherever the capture cuts the body, no secret that the default
//! redaction rules name reaches the output.
//!
//! Bytes go through the real HTTP handler, fed as the reassembler feeds it (in segments,
//! possibly cut short by the end of the connection), then through the real redaction and the
//! real JSON encoder. The check decodes every emitted body as a reader would (base64, then the
//! content coding it declares, as far as the bytes go) and looks for the secret.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use vxtap_flow::{CloseReason, ConnMeta, Direction, Endpoint, StreamHandler};
use vxtap_http::{HttpConfig, HttpHandler};
use vxtap_sink::{LineEncoder, RedactConfig, Redactor};

fn meta() -> ConnMeta {
    ConnMeta {
        conn_id: 1,
        stable_id: 42,
        client: Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port: 40000,
        },
        server: Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            port: 80,
        },
        vni: None,
        tunnel: vxtap_wire::TunnelKind::None,
        mirror_source: None,
        midstream: false,
        first_ts_ns: 1_700_000_000_000_000_000,
    }
}

#[derive(Clone, Copy, Debug)]
enum Coding {
    Identity,
    Chunked,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
    GzipChunked,
    /// `Transfer-Encoding: gzip, chunked`: gzip as a transfer coding, no Content-Encoding.
    TransferGzip,
}

fn compress(c: Coding, data: &[u8]) -> Vec<u8> {
    match c {
        Coding::Identity | Coding::Chunked => data.to_vec(),
        Coding::Gzip | Coding::GzipChunked | Coding::TransferGzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Coding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Coding::Brotli => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data).unwrap();
            }
            out
        }
        Coding::Zstd => zstd::bulk::compress(data, 3).unwrap(),
    }
}

fn content_encoding(c: Coding) -> Option<&'static str> {
    match c {
        Coding::Identity | Coding::Chunked | Coding::TransferGzip => None,
        Coding::Gzip | Coding::GzipChunked => Some("gzip"),
        Coding::Deflate => Some("deflate"),
        Coding::Brotli => Some("br"),
        Coding::Zstd => Some("zstd"),
    }
}

/// A message head and its framed body.
fn message(start: &str, ct: &str, c: Coding, body: &[u8]) -> Vec<u8> {
    let payload = compress(c, body);
    let mut m = format!("{start}\r\nHost: x\r\nContent-Type: {ct}\r\n").into_bytes();
    if let Some(ce) = content_encoding(c) {
        m.extend_from_slice(format!("Content-Encoding: {ce}\r\n").as_bytes());
    }
    if matches!(
        c,
        Coding::Chunked | Coding::GzipChunked | Coding::TransferGzip
    ) {
        let te = if matches!(c, Coding::TransferGzip) {
            "gzip, chunked"
        } else {
            "chunked"
        };
        m.extend_from_slice(format!("Transfer-Encoding: {te}\r\n\r\n").as_bytes());
        for piece in payload.chunks(1000) {
            m.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            m.extend_from_slice(piece);
            m.extend_from_slice(b"\r\n");
        }
        m.extend_from_slice(b"0\r\n\r\n");
    } else {
        m.extend_from_slice(format!("Content-Length: {}\r\n\r\n", payload.len()).as_bytes());
        m.extend_from_slice(&payload);
    }
    m
}

/// Everything a reader could decode from `data` in `coding`, as far as the bytes go (a cut
/// or damaged stream yields what came before the damage).
fn reader_decode(coding: &str, data: &[u8]) -> Vec<u8> {
    fn drain(mut r: impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1];
        // Byte by byte, so that an error at the end does not discard what came before it.
        while let Ok(1) = r.read(&mut buf) {
            out.push(buf[0]);
            if out.len() > 1 << 22 {
                break;
            }
        }
        out
    }
    match coding.trim().to_ascii_lowercase().as_str() {
        "gzip" | "x-gzip" => drain(flate2::read::GzDecoder::new(data)),
        "deflate" => {
            let mut a = drain(flate2::read::ZlibDecoder::new(data));
            a.extend_from_slice(&drain(flate2::read::DeflateDecoder::new(data)));
            a
        }
        "br" => drain(brotli_decompressor::Decompressor::new(data, 4096)),
        "zstd" => match zstd::stream::read::Decoder::new(data) {
            Ok(d) => drain(d),
            Err(_) => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every body of one JSON record as a reader gets it: base64 undone, and its declared
/// content coding undone too unless the record says the body is already decoded.
fn emitted_bodies(line: &[u8]) -> Vec<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(line).unwrap();
    let decoded_flag = v["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "body_decoded");
    let mut out = Vec::new();
    for key in ["request", "response"] {
        let m = &v[key];
        let Some(body) = m["body"].as_str() else {
            continue;
        };
        let raw = if m["body_encoding"] == "base64" {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        } else {
            body.as_bytes().to_vec()
        };
        // Content codings, and transfer codings other than chunked (which the record has
        // already undone), both leave coded bytes.
        let codings: Vec<String> = m["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| {
                let n = h[0].as_str().unwrap();
                n.eq_ignore_ascii_case("content-encoding")
                    || n.eq_ignore_ascii_case("transfer-encoding")
            })
            .flat_map(|h| {
                h[1].as_str()
                    .unwrap()
                    .split(',')
                    .map(|t| t.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|t| !t.eq_ignore_ascii_case("chunked"))
            .collect();
        if !decoded_flag {
            for c in codings {
                out.push(reader_decode(&c, &raw));
            }
        }
        out.push(raw);
    }
    out
}

const NAMES: [&str; 6] = [
    "password",
    "token",
    "api_key",
    "secret",
    "access_token",
    "pwd",
];
/// One-, two-, three- and four-byte characters, so that cuts land inside characters.
const FILLER: [&str; 5] = ["a", "\u{e9}", "\u{20ac}", "\u{1f600}", " "];

fn coding_strategy() -> impl Strategy<Value = Coding> {
    prop_oneof![
        Just(Coding::Identity),
        Just(Coding::Chunked),
        Just(Coding::Gzip),
        Just(Coding::Deflate),
        Just(Coding::Brotli),
        Just(Coding::Zstd),
        Just(Coding::GzipChunked),
        Just(Coding::TransferGzip),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn no_secret_reaches_the_output(
        fill in proptest::collection::vec(0..FILLER.len(), 0..6000),
        split in 0usize..6000,
        name in 0..NAMES.len(),
        json in any::<bool>(),
        secret in "[A-Za-z0-9]{10,20}",
        coding in coding_strategy(),
        in_request in any::<bool>(),
        cap in prop_oneof![Just(4096usize), 1usize..9000],
        cut in proptest::option::of(0usize..8000),
        seg in 1usize..3000,
        decode_content in any::<bool>(),
    ) {
        // The secret sits at a random offset inside filler full of multi-byte characters, so
        // the capture cap falls inside a character as often as not.
        let filler: String = fill.iter().map(|i| FILLER[*i]).collect();
        let at = filler.char_indices().map(|(i, _)| i).nth(split).unwrap_or(filler.len());
        let (before, after) = filler.split_at(at);
        let secret = format!("Zk{secret}");
        let name = NAMES[name];
        let (ct, body) = if json {
            (
                "application/json",
                format!(r#"{{"note":"{before}","{name}":"{secret}","more":"{after}"}}"#),
            )
        } else {
            (
                "application/x-www-form-urlencoded",
                format!("note={before}&{name}={secret}&more={after}"),
            )
        };
        let (mut req, mut resp) = if in_request {
            (
                message("POST /submit HTTP/1.1", ct, coding, body.as_bytes()),
                b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            )
        } else {
            (
                b"GET /data HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                message("HTTP/1.1 200 OK", ct, coding, body.as_bytes()),
            )
        };
        // The message with the body may be cut short by the end of the connection.
        let target = if in_request { &mut req } else { &mut resp };
        if let Some(c) = cut {
            target.truncate(c.min(target.len()));
        }
        let cfg = HttpConfig {
            max_body_bytes: cap,
            decode_content,
            ..HttpConfig::default()
        };
        let mut h = HttpHandler::new(cfg.clone());
        let m = meta();
        let mut conn = h.on_open(&m);
        let mut ts = m.first_ts_ns;
        for piece in req.chunks(seg) {
            ts += 1000;
            h.on_data(&mut conn, &m, Direction::ClientToServer, ts, piece);
        }
        if !in_request || cut.is_none() {
            for piece in resp.chunks(seg) {
                ts += 1000;
                h.on_data(&mut conn, &m, Direction::ServerToClient, ts, piece);
            }
        }
        h.on_close(conn, &m, ts + 1000, CloseReason::EndOfInput);
        let mut exchanges = Vec::new();
        h.drain_into(&mut exchanges);
        let redactor = Redactor::with_key(&RedactConfig::default(), b"test key")
            .unwrap()
            .with_decode_bound(cfg.max_decoded_bytes);
        let encoder = LineEncoder::new(None).unwrap();
        for mut ex in exchanges {
            redactor.redact_report(&mut ex);
            let mut line = Vec::new();
            encoder.encode_exchange(&ex, &mut line).unwrap();
            prop_assert!(!contains(&line, secret.as_bytes()), "secret in the line");
            for b in emitted_bodies(&line) {
                prop_assert!(
                    !contains(&b, secret.as_bytes()),
                    "secret in an emitted body ({:?}, cap {}, cut {:?}): {}",
                    coding, cap, cut, String::from_utf8_lossy(&b)
                );
            }
        }
    }
}
