//! The documented schema (`schema/exchange.schema.json`) holds for what vxtap writes: every
//! golden record validates against it, and its flag enum is exactly the code's `Flag::ALL`
//! (issue 14 §4).

use std::path::{Path, PathBuf};

use vxtap_http::Flag;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("schema/exchange.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn golden_records_validate_against_the_schema() {
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "golden files missing: {files:?}");
    let mut records = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}:{}: {errors:?}", f.display(), n + 1);
            records += 1;
        }
    }
    assert!(records > 100, "only {records} golden records");
}

#[test]
fn schema_flags_are_the_code_flags() {
    let s = schema();
    let listed: Vec<&str> = s["properties"]["flags"]["items"]["enum"]
        .as_array()
        .expect("flags enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let code: Vec<&str> = Flag::ALL.iter().map(|f| f.as_str()).collect();
    assert_eq!(listed, code);
}

#[test]
fn every_flag_is_documented_in_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for f in Flag::ALL {
        assert!(
            readme.contains(&format!("| `{}` |", f.as_str())),
            "README.md has no row for flag {}",
            f.as_str()
        );
    }
}

/// A record carrying every flag, written by the real encoder, validates too (the goldens do not
/// exercise the flags only redaction sets).
#[test]
fn a_record_with_every_flag_validates() {
    use vxtap_http::exchange::{Body, Message, Peer, Timing};
    use vxtap_http::{Exchange, FlagSet};
    let mut flags = FlagSet::EMPTY;
    for f in Flag::ALL {
        flags.insert(f);
    }
    let msg = |status: Option<u16>| Message {
        method: status.is_none().then(|| "POST".to_string()),
        uri: status.is_none().then(|| "/x".to_string()),
        status,
        reason: status.map(|_| "OK".to_string()),
        body_len: 3,
        body: Some(Body {
            bytes: vec![0xff, 0, 1],
            ..Body::default()
        }),
        ..Message::default()
    };
    let ex = Exchange {
        ts_ns: 1_700_000_000_123_456_789,
        id: 7,
        vni: Some(3),
        tunnel: Some("vxlan"),
        mirror_source: None,
        client: Peer {
            ip: "10.0.0.1".parse().unwrap(),
            port: 1,
        },
        server: Peer {
            ip: "::1".parse().unwrap(),
            port: 80,
        },
        request: Some(msg(None)),
        response: Some(msg(Some(200))),
        interim: vec![msg(Some(100))],
        timing: Timing {
            request_start_ns: Some(1),
            request_end_ns: Some(2),
            response_start_ns: Some(3_000),
            response_end_ns: Some(4_000),
        },
        flags,
        stream_id: None,
        rst_error: None,
        grpc: None,
    };
    let mut line = Vec::new();
    vxtap_sink::LineEncoder::new(Some(0.5))
        .unwrap()
        .encode_exchange(&ex, &mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .unwrap();
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// An HTTP/2 gRPC record (stream id, trailers, authority, rst_error, the grpc object with a
/// protobuf dump) and a partial one (no :method or :status resolved) validate too.
#[test]
fn http2_grpc_records_validate() {
    use vxtap_http::exchange::{Grpc, GrpcBody, GrpcMessages, Message, Peer, Timing, Version};
    use vxtap_http::vxtap_h2::grpc::{PbField, PbValue};
    use vxtap_http::{Exchange, FlagSet};
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .unwrap();
    let dump = vec![
        PbField {
            number: 1,
            wire_type: 2,
            value: PbValue::String("x".into()),
        },
        PbField {
            number: 2,
            wire_type: 2,
            value: PbValue::Message(vec![PbField {
                number: 1,
                wire_type: 0,
                value: PbValue::Varint(5),
            }]),
        },
        PbField {
            number: 3,
            wire_type: 2,
            value: PbValue::Bytes(vec![0xff]),
        },
        PbField {
            number: 4,
            wire_type: 5,
            value: PbValue::Fixed32(1),
        },
    ];
    let mut flags = FlagSet::EMPTY;
    flags.insert(Flag::RstStream);
    flags.insert(Flag::HeadersPartial);
    let ex = |request: Message, response: Message| Exchange {
        ts_ns: 1_700_000_000_000_000_000,
        id: 1,
        vni: None,
        tunnel: None,
        mirror_source: None,
        client: Peer {
            ip: "10.0.0.1".parse().unwrap(),
            port: 1,
        },
        server: Peer {
            ip: "10.0.0.2".parse().unwrap(),
            port: 50051,
        },
        request: Some(request),
        response: Some(response),
        interim: Vec::new(),
        timing: Timing::default(),
        flags,
        stream_id: Some(3),
        rst_error: Some(8),
        grpc: Some(Box::new(Grpc {
            service: Some("p.S".into()),
            method: Some("M".into()),
            status: Some(1),
            status_name: Some("CANCELLED"),
            message: None,
            encoding: Some("gzip".into()),
            request: GrpcMessages {
                count: 1,
                sizes: vec![9],
                first: vec![GrpcBody {
                    bytes: vec![1, 2],
                    compressed: true,
                    truncated: false,
                    dump: Some(dump.clone()),
                }],
                framing_lost: false,
            },
            response: GrpcMessages::default(),
        })),
    };
    let full = ex(
        Message {
            method: Some("POST".into()),
            uri: Some("/p.S/M".into()),
            authority: Some("svc".into()),
            scheme: Some("http".into()),
            version: Version::Http2,
            ..Message::default()
        },
        Message {
            status: Some(200),
            version: Version::Http2,
            trailers: vec![("grpc-status".into(), "1".into())],
            ..Message::default()
        },
    );
    let partial = ex(
        Message {
            version: Version::Http2,
            ..Message::default()
        },
        Message {
            version: Version::Http2,
            ..Message::default()
        },
    );
    for e in [full, partial] {
        let mut line = Vec::new();
        vxtap_sink::LineEncoder::new(None)
            .unwrap()
            .encode_exchange(&e, &mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{v}");
        assert_eq!(v["stream_id"], 3);
    }
}
