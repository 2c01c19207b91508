//! Helpers shared by the capture targets.

use std::io::Read;

use vxtap_capture::{CaptureError, CaptureReader};

/// Hands out at most `chunk` bytes per read, as a pipe may: the streaming reader must not care.
struct Dribble {
    bytes: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl Read for Dribble {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.bytes[self.at..];
        let n = buf.len().min(self.chunk).min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

/// One packet as owned values: (ts_ns, linktype, data, orig_len, interface, comment).
type Owned = (u64, u32, Vec<u8>, u32, u32, Option<Vec<u8>>);

/// Packets read until the end or the first damage, and whether the file ended on damage.
fn drain(r: Result<CaptureReader, CaptureError>) -> (Vec<Owned>, bool) {
    let mut r = match r {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return (Vec::new(), true);
        }
    };
    let mut out = Vec::new();
    loop {
        match r.next_packet() {
            Ok(Some(p)) => {
                // A packet never claims more bytes than the reader's bound.
                assert!(p.data.len() <= vxtap_capture::MAX_BLOCK as usize);
                out.push((
                    p.ts_ns,
                    p.linktype,
                    p.data.to_vec(),
                    p.orig_len,
                    p.interface,
                    p.comment.map(<[u8]>::to_vec),
                ));
            }
            Ok(None) => return (out, false),
            Err(e) => {
                // Every damage renders (it reaches the user's terminal).
                assert!(!e.to_string().is_empty());
                return (out, true);
            }
        }
    }
}

/// Reads `bytes` as a capture held in memory and as a stream dribbled `chunk` bytes at a time;
/// both paths must deliver the same packets and agree on whether the file was damaged.
///
/// Gzip is the one exception, found by this target: flate2 returns a corrupt deflate stream's
/// error without the bytes it inflated in the same call, so how many packets before the damage
/// survive depends on the read sizes. Both paths must still report the damage, and one's
/// packets must be a prefix of the other's.
pub fn read_both_ways(bytes: &[u8], chunk: usize) {
    let whole = drain(CaptureReader::from_bytes("fuzz", bytes.to_vec()));
    let streamed = drain(CaptureReader::from_reader(
        "fuzz",
        Dribble {
            bytes: bytes.to_vec(),
            at: 0,
            chunk: chunk.max(1),
        },
    ));
    let gzip = bytes.starts_with(&[0x1f, 0x8b]);
    if gzip && whole != streamed {
        assert!(
            whole.1 && streamed.1,
            "gzip: one path saw damage, the other did not"
        );
        let n = whole.0.len().min(streamed.0.len());
        assert_eq!(
            whole.0[..n],
            streamed.0[..n],
            "gzip: packets before the damage differ"
        );
        return;
    }
    assert_eq!(whole, streamed, "memory and stream readers disagree");
}

/// `v` in the byte order a capture file declares (`big`: big-endian).
pub fn u16_bytes(big: bool, v: u16) -> [u8; 2] {
    if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

/// `v` in the byte order a capture file declares (`big`: big-endian).
pub fn u32_bytes(big: bool, v: u32) -> [u8; 4] {
    if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}
