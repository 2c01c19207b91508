//! The redactor over arbitrary messages: URIs, header fields and bodies of every content type,
//! as valid UTF-8 or as raw bytes (the typed exchange carries bytes; text cut inside a character
//! or with stray bytes must still be redacted), under masking and HMAC modes with JSON paths
//! configured.
//!
//! Input: byte 0 picks the mode and content type, then the URI, one header value and the body,
//! separated by 0xFF bytes (absent parts are empty). Oracles: no panic; redaction is
//! idempotent (a redacted message redacts to itself), so a second pass cannot reveal or mangle
//! what the first produced.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vxtap_http::exchange::{Body, Version};
use vxtap_http::Message;
use vxtap_sink::redact::{RedactConfig, RedactMode, Redactor};

const TYPES: [&str; 8] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "text/html; charset=utf-8",
    "application/xml",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "application/vnd.api+json",
];

fn redactor(mode: RedactMode) -> Redactor {
    let cfg = RedactConfig {
        mode,
        json_paths: vec![
            "$.user.ssn".into(),
            "$.items[*].card".into(),
            "$.*.pin".into(),
        ],
        params: vec!["session".into()],
        ..RedactConfig::default()
    };
    Redactor::with_key(&cfg, b"fuzz-key").expect("valid configuration")
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == 0xFF);
    let uri = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let header = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();

    let mask = sel & 1 != 0;
    // Building a redactor compiles its regexes (milliseconds): once per mode, not per input.
    static REDACTORS: OnceLock<[Redactor; 2]> = OnceLock::new();
    let redactors =
        REDACTORS.get_or_init(|| [redactor(RedactMode::Hmac), redactor(RedactMode::Mask)]);
    let redactor = &redactors[usize::from(mask)];
    let raw = sel & 2 != 0;
    let mut msg = Message {
        method: Some("POST".into()),
        uri: Some(uri),
        version: Version::Http11,
        headers: vec![
            (
                "Content-Type".into(),
                TYPES[usize::from(sel >> 2 & 7)].into(),
            ),
            (
                if sel & 32 != 0 {
                    "Authorization"
                } else {
                    "X-Note"
                }
                .into(),
                header,
            ),
        ],
        body_len: body.len() as u64,
        body: Some(Body {
            bytes: if raw {
                body.to_vec()
            } else {
                String::from_utf8_lossy(body).into_owned().into_bytes()
            },
            ..Body::default()
        }),
        ..Message::default()
    };
    redactor.redact_message(&mut msg);
    if mask {
        // A mask is a fixed point: whatever the first pass left must be left by a second one
        // (HMAC tags are not: a tag in a secret header is itself masked again).
        // Whitespace aside: a body the first pass turned into valid JSON is re-serialized
        // compactly by the second (known, harmless; no value changes).
        let squash = |m: &Message| {
            let mut m = m.clone();
            if let Some(b) = &mut m.body {
                b.bytes.retain(|c| !c.is_ascii_whitespace());
            }
            m
        };
        let once = squash(&msg);
        redactor.redact_message(&mut msg);
        assert_eq!(once, squash(&msg), "redaction is not idempotent");
    }
});
