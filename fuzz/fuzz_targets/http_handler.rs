//! The HTTP layer driven through `StreamHandler` exactly as the reassembler drives it: data cut
//! at fuzz-chosen points in both directions, gaps of every reason, ack evidence, FINs, role
//! swaps and delivery stops honoured, then a close.
//!
//! Input: byte 0 picks the configuration (small or default limits, content decoding, whether
//! the connection was picked up mid-stream), byte 1 the close reason; then operations, each
//! one byte (low 3 bits: kind, bit 3: side) and its arguments. The contract kept here is the
//! reassembler's: acks never decrease per side, nothing follows a side's FIN, nothing is
//! delivered after `StopDelivery`, and directions follow `SwapRoles`.
//! Oracles: no panic; pending requests stay bounded by the pipelining limit; every captured
//! body respects `max_body_bytes`.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use vxtap_flow::{CloseReason, ConnMeta, Direction, Endpoint, GapReason, StreamHandler, Verdict};
use vxtap_http::{BodyEncoding, Exchange, HttpConfig, HttpHandler, Message};

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

fn check_body(m: &Message, cap: usize) {
    let Some(body) = &m.body else { return };
    let len = match m.body_encoding {
        Some(BodyEncoding::Base64) => base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("a base64 body decodes")
            .len(),
        _ => body.len(),
    };
    assert!(
        len <= cap,
        "captured body of {len} bytes over the {cap}-byte cap"
    );
}

fn check(exchanges: &mut Vec<Exchange>, cap: usize) {
    for ex in exchanges.drain(..) {
        for m in ex
            .request
            .iter()
            .chain(ex.response.iter())
            .chain(ex.interim.iter())
        {
            check_body(m, cap);
        }
        let mut sorted = ex.flags.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, ex.flags, "flags must be sorted and unique");
    }
}

const REASONS: [CloseReason; 6] = CloseReason::ALL;
const GAPS: [GapReason; 3] = GapReason::ALL;

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let (Some(cfg_sel), Some(close_sel)) = (inp.byte(), inp.byte()) else {
        return;
    };
    let small = cfg_sel & 1 != 0;
    let cfg = HttpConfig {
        max_head_bytes: if small { 256 } else { 64 * 1024 },
        max_headers: if small { 8 } else { 128 },
        max_body_bytes: if small { 16 } else { 4096 },
        decode_content: cfg_sel & 2 != 0,
        max_decoded_bytes: if small { 64 } else { 64 * 1024 },
        max_pipelined: if small { 2 } else { 64 },
    };
    let cap = cfg.max_body_bytes;
    let max_pipelined = cfg.max_pipelined;
    let mut h = HttpHandler::new(cfg);
    let mut meta = ConnMeta {
        conn_id: 1,
        stable_id: 0x5eed,
        client: Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port: 40000,
        },
        server: Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            port: 80,
        },
        vni: Some(7),
        mirror_source: None,
        midstream: cfg_sel & 4 != 0,
        first_ts_ns: 1_000_000_000,
    };
    let mut conn = h.on_open(&meta);
    // Side 0 starts as the client.
    let mut client_is_0 = true;
    let mut fin = [false; 2];
    let mut ack = [0u64; 2];
    let mut stopped = false;
    let mut ts = meta.first_ts_ns;
    let mut out = Vec::new();
    let dir_of = |client_is_0: bool, side: usize| {
        if (side == 0) == client_is_0 {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        }
    };

    while let Some(op) = inp.byte() {
        let side = usize::from(op >> 3 & 1);
        let dir = dir_of(client_is_0, side);
        ts += 1_000;
        let verdict = match op & 7 {
            0..=2 => {
                let Some(n) = inp.u16() else { break };
                let bytes = inp.take(usize::from(n % 2048) + 1);
                if fin[side] || stopped || bytes.is_empty() {
                    continue;
                }
                h.on_data(&mut conn, &meta, dir, ts, bytes)
            }
            3 => {
                let (Some(len), Some(why)) = (inp.u16(), inp.byte()) else {
                    break;
                };
                if fin[side] || stopped || len == 0 {
                    continue;
                }
                let reason = GAPS[usize::from(why) % GAPS.len()];
                h.on_gap(&mut conn, &meta, dir, ts, u64::from(len), reason)
            }
            4 => {
                let Some(delta) = inp.u16() else { break };
                // Evidence never goes back; `None` is always allowed.
                let acked = if delta == u16::MAX {
                    None
                } else {
                    ack[side] += u64::from(delta);
                    Some(ack[side])
                };
                h.on_ack(&mut conn, &meta, dir, acked);
                Verdict::Continue
            }
            5 => {
                if !fin[side] {
                    fin[side] = true;
                    h.on_fin(&mut conn, &meta, dir, ts);
                }
                Verdict::Continue
            }
            _ => {
                h.drain_into(&mut out);
                check(&mut out, cap);
                Verdict::Continue
            }
        };
        match verdict {
            Verdict::Continue => {}
            Verdict::SwapRoles => {
                client_is_0 = !client_is_0;
                std::mem::swap(&mut meta.client, &mut meta.server);
            }
            Verdict::StopDelivery => stopped = true,
        }
        assert!(
            conn.pending() <= 2 * max_pipelined + 4,
            "{} requests pending with a pipelining limit of {max_pipelined}",
            conn.pending()
        );
    }
    let reason = REASONS[usize::from(close_sel) % REASONS.len()];
    h.on_close(conn, &meta, ts + 1, reason);
    h.drain_into(&mut out);
    check(&mut out, cap);
});
