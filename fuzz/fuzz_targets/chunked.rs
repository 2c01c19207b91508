//! The chunked-transfer decoder, fed in fuzz-chosen pieces.
//!
//! Input: byte 0 = mode, byte 1 = split count (low 3 bits), then two bytes per split offset,
//! then the payload. Oracles:
//! - raw mode (mode bit 0 clear): the payload is a chunked body; decoding it split anywhere
//!   gives exactly what decoding it whole gives (same body, end, leftover, or same error);
//! - round trip (bit 0 set): the payload is a list of chunks (length byte + data), encoded here
//!   with hex case, leading zeros, extensions and trailers chosen by the mode bits; decoding
//!   must give back their concatenation, end, and leave exactly the bytes after the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxtap_http::fuzzing::decode_chunked;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mode = data[0];
    let n = usize::from(data[1] & 7);
    let Some(split_bytes) = data.get(2..2 + 2 * n) else {
        return;
    };
    let splits: Vec<usize> = split_bytes
        .chunks_exact(2)
        .map(|p| usize::from(u16::from_be_bytes([p[0], p[1]])))
        .collect();
    let payload = &data[2 + 2 * n..];

    if mode & 1 == 0 {
        let whole = decode_chunked(payload, &[]);
        let split = decode_chunked(payload, &splits);
        assert_eq!(whole, split, "split decoding differs from whole decoding");
        return;
    }

    let mut encoded = Vec::new();
    let mut expect = Vec::new();
    let mut rest = payload;
    while let Some((&len, tail)) = rest.split_first() {
        // A zero length would end the body early: chunk sizes here are 1..=256.
        let len = (usize::from(len) + 1).min(tail.len());
        if len == 0 {
            break;
        }
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        if mode & 2 != 0 {
            encoded.extend_from_slice(b"000");
        }
        let size = if mode & 4 != 0 {
            format!("{len:X}")
        } else {
            format!("{len:x}")
        };
        encoded.extend_from_slice(size.as_bytes());
        if mode & 8 != 0 {
            encoded.extend_from_slice(b" ;name=\"v;x\"");
        }
        encoded.extend_from_slice(b"\r\n");
        encoded.extend_from_slice(chunk);
        encoded.extend_from_slice(b"\r\n");
        expect.extend_from_slice(chunk);
    }
    encoded.extend_from_slice(b"0\r\n");
    if mode & 16 != 0 {
        encoded.extend_from_slice(b"X-Trailer: 1\r\nY: 2\r\n");
    }
    encoded.extend_from_slice(b"\r\nNEXT");
    let got = decode_chunked(&encoded, &splits).expect("well-formed chunked body rejected");
    assert_eq!(got.body, expect);
    assert!(got.done);
    assert_eq!(got.leftover, 4);
    assert!(!got.bare_lf);
});
