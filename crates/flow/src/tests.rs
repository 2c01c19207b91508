//! Unit tests of the flow table with a recording handler.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use vxtap_wire::{Segment, TcpFlags};

use crate::*;

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Open(ConnMeta),
    Data {
        id: u64,
        dir: Direction,
        ts: u64,
        data: Vec<u8>,
    },
    Gap {
        id: u64,
        dir: Direction,
        len: u64,
        reason: GapReason,
    },
    Fin {
        id: u64,
        dir: Direction,
    },
    Close {
        id: u64,
        reason: CloseReason,
    },
}

#[derive(Default)]
struct Rec {
    ev: Vec<Ev>,
    /// Addresses of the slices handed to `on_data` (to prove no copy).
    ptrs: Vec<usize>,
    /// Verdicts to return from the next `on_data` calls.
    verdicts: VecDeque<Verdict>,
    /// Every `on_ack` call.
    acks: Vec<(Direction, Option<u64>)>,
    /// The ack evidence in force for each `on_data` call.
    data_acks: Vec<(Direction, Option<u64>)>,
    /// Evidence in force per direction (client to server first).
    cur_ack: [Option<u64>; 2],
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl StreamHandler for Rec {
    type Conn = u64;
    fn on_open(&mut self, meta: &ConnMeta) -> u64 {
        self.ev.push(Ev::Open(*meta));
        meta.conn_id
    }
    fn on_data(&mut self, c: &mut u64, m: &ConnMeta, dir: Direction, ts: u64, d: &[u8]) -> Verdict {
        assert_eq!(*c, m.conn_id);
        self.ptrs.push(d.as_ptr() as usize);
        self.data_acks.push((dir, self.cur_ack[dir_index(dir)]));
        self.ev.push(Ev::Data {
            id: *c,
            dir,
            ts,
            data: d.to_vec(),
        });
        self.verdicts.pop_front().unwrap_or_default()
    }
    fn on_gap(
        &mut self,
        c: &mut u64,
        _m: &ConnMeta,
        dir: Direction,
        _ts: u64,
        len: u64,
        reason: GapReason,
    ) -> Verdict {
        self.ev.push(Ev::Gap {
            id: *c,
            dir,
            len,
            reason,
        });
        Verdict::Continue
    }
    fn on_fin(&mut self, c: &mut u64, _m: &ConnMeta, dir: Direction, _ts: u64) {
        self.ev.push(Ev::Fin { id: *c, dir });
    }
    fn on_ack(&mut self, _c: &mut u64, _m: &ConnMeta, dir: Direction, acked: Option<u64>) {
        self.acks.push((dir, acked));
        self.cur_ack[dir_index(dir)] = acked;
    }
    fn on_close(&mut self, c: u64, _m: &ConnMeta, _ts: u64, reason: CloseReason) {
        self.ev.push(Ev::Close { id: c, reason });
    }
}

impl Rec {
    /// Concatenated stream of one direction of one connection; gaps as '?' bytes.
    fn stream(&self, id: u64, dir: Direction) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.ev {
            match e {
                Ev::Data {
                    id: i,
                    dir: d,
                    data,
                    ..
                } if *i == id && *d == dir => out.extend_from_slice(data),
                Ev::Gap {
                    id: i, dir: d, len, ..
                } if *i == id && *d == dir => out.extend(std::iter::repeat_n(b'?', *len as usize)),
                _ => {}
            }
        }
        out
    }
    fn gaps(&self) -> Vec<(Direction, u64, GapReason)> {
        self.ev
            .iter()
            .filter_map(|e| match e {
                Ev::Gap {
                    dir, len, reason, ..
                } => Some((*dir, *len, *reason)),
                _ => None,
            })
            .collect()
    }
    fn closes(&self) -> Vec<(u64, CloseReason)> {
        self.ev
            .iter()
            .filter_map(|e| match e {
                Ev::Close { id, reason } => Some((*id, *reason)),
                _ => None,
            })
            .collect()
    }
    fn opens(&self) -> Vec<ConnMeta> {
        self.ev
            .iter()
            .filter_map(|e| match e {
                Ev::Open(m) => Some(*m),
                _ => None,
            })
            .collect()
    }
}

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;
const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN;
const RST: u8 = TcpFlags::RST;
const SEC: u64 = 1_000_000_000;

fn cip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
}
fn sip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))
}

/// A segment from the client (port 40000) or the server (port 80).
fn seg(from_client: bool, ts: u64, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Segment<'_> {
    let (src_ip, dst_ip, src_port, dst_port) = if from_client {
        (cip(), sip(), 40000, 80)
    } else {
        (sip(), cip(), 80, 40000)
    };
    Segment {
        ts_ns: ts,
        vni: Some(7),
        tunnel: vxtap_wire::TunnelKind::Vxlan,
        mirror_source: Some(IpAddr::V4(Ipv4Addr::new(172, 16, 0, 9))),
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        seq,
        ack,
        flags: TcpFlags(flags),
        window: 512,
        payload,
        wire_payload_len: payload.len() as u32,
    }
}

fn c(ts: u64, seq: u32, ack: u32, flags: u8, p: &[u8]) -> Segment<'_> {
    seg(true, ts, seq, ack, flags, p)
}
fn s(ts: u64, seq: u32, ack: u32, flags: u8, p: &[u8]) -> Segment<'_> {
    seg(false, ts, seq, ack, flags, p)
}

fn table() -> FlowTable<Rec> {
    FlowTable::new(FlowConfig::default()).unwrap()
}

/// A table whose acked holes are skipped after `grace_ns` (the mechanism, at test-sized times).
fn table_with_ack_grace(grace_ns: u64) -> FlowTable<Rec> {
    FlowTable::new(FlowConfig {
        ack_skip_grace_ns: grace_ns,
        ..FlowConfig::default()
    })
    .unwrap()
}

const CI: u32 = 1000; // client ISN
const SI: u32 = 5000; // server ISN

/// Runs the three-way handshake.
fn handshake(t: &mut FlowTable<Rec>, r: &mut Rec) {
    t.process(&c(1, CI, 0, SYN, b""), r);
    t.process(&s(2, SI, CI + 1, SYN | ACK, b""), r);
    t.process(&c(3, CI + 1, SI + 1, ACK, b""), r);
}

#[test]
fn conn_state_is_small() {
    const { assert!(CONN_CORE_SIZE <= 512) };
    // The table's charge per connection with a tiny consumer state stays well under 1 KiB.
    let t = table();
    eprintln!(
        "ConnCore {CONN_CORE_SIZE} B, per flow {} B",
        t.per_flow_cost()
    );
    assert!(t.per_flow_cost() <= 512 + 128, "{}", t.per_flow_cost());
}

#[test]
fn handshake_data_fin() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(
        &c(4, CI + 1, SI + 1, ACK, b"GET / HTTP/1.1\r\n\r\n"),
        &mut r,
    );
    t.process(
        &s(5, SI + 1, CI + 19, ACK, b"HTTP/1.1 200 OK\r\n\r\n"),
        &mut r,
    );
    t.process(&c(6, CI + 19, SI + 20, ACK | FIN, b""), &mut r);
    t.process(&s(7, SI + 20, CI + 20, ACK | FIN, b""), &mut r);
    let m = r.opens()[0];
    assert!(!m.midstream);
    assert_eq!(m.client.port, 40000);
    assert_eq!(m.server.port, 80);
    assert_eq!(
        r.ev[1..],
        [
            Ev::Data {
                id: 0,
                dir: C2S,
                ts: 4,
                data: b"GET / HTTP/1.1\r\n\r\n".to_vec()
            },
            Ev::Data {
                id: 0,
                dir: S2C,
                ts: 5,
                data: b"HTTP/1.1 200 OK\r\n\r\n".to_vec()
            },
            Ev::Fin { id: 0, dir: C2S },
            Ev::Fin { id: 0, dir: S2C },
            Ev::Close {
                id: 0,
                reason: CloseReason::Fin
            },
        ]
    );
    assert_eq!(t.stats().closed_fin, 1);
    assert_eq!(t.active_flows(), 0);
    assert_eq!(t.tracked_flows(), 1, "lingers to absorb late packets");
    // A late retransmission is absorbed, not a new connection.
    t.process(
        &c(8, CI + 1, SI + 1, ACK, b"GET / HTTP/1.1\r\n\r\n"),
        &mut r,
    );
    assert_eq!(t.stats().late_after_close, 1);
    assert_eq!(r.opens().len(), 1);
    t.advance_time(8 + 11 * SEC, &mut r);
    assert_eq!(t.tracked_flows(), 0);
    assert_eq!(t.memory_in_use(), 0);
}

#[test]
fn in_order_data_is_not_copied() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    let base = t.memory_in_use();
    let bufs: Vec<Vec<u8>> = (0..5).map(|i| vec![b'a' + i; 100]).collect();
    let mut seq = CI + 1;
    for (i, b) in bufs.iter().enumerate() {
        t.process(&c(10 + i as u64, seq, SI + 1, ACK, b), &mut r);
        seq += b.len() as u32;
    }
    let want: Vec<usize> = bufs.iter().map(|b| b.as_ptr() as usize).collect();
    assert_eq!(r.ptrs, want, "on_data must get the segment's own slice");
    assert_eq!(t.stats().ooo_segments, 0);
    assert_eq!(t.memory_in_use(), base);
}

#[test]
fn reorder_is_buffered_and_delivered_in_order() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    let base = t.memory_in_use();
    t.process(&c(10, CI + 6, SI + 1, ACK, b"world"), &mut r);
    t.process(&c(11, CI + 11, SI + 1, ACK, b"!"), &mut r);
    assert!(t.memory_in_use() > base);
    t.process(&c(12, CI + 1, SI + 1, ACK, b"hello"), &mut r);
    assert_eq!(r.stream(0, C2S), b"helloworld!");
    // Timestamp is the one of the segment that carried the first byte of each chunk.
    let ts: Vec<u64> =
        r.ev.iter()
            .filter_map(|e| match e {
                Ev::Data { ts, .. } => Some(*ts),
                _ => None,
            })
            .collect();
    assert_eq!(ts, vec![12, 10, 11]);
    assert_eq!(t.stats().ooo_segments, 2);
    assert_eq!(t.memory_in_use(), base);
    assert!(r.gaps().is_empty());
}

#[test]
fn retransmits_delivered_once() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(10, CI + 1, SI + 1, ACK, b"abcdef"), &mut r);
    t.process(&c(11, CI + 1, SI + 1, ACK, b"abcdef"), &mut r);
    t.process(&c(12, CI + 4, SI + 1, ACK, b"defghi"), &mut r); // partial overlap
    t.process(&c(13, CI, 0, SYN, b""), &mut r); // retransmitted SYN
    assert_eq!(r.stream(0, C2S), b"abcdefghi");
    assert_eq!(t.stats().retransmitted_segments, 1);
    assert_eq!(t.stats().retransmitted_bytes, 6 + 3);
    assert_eq!(r.opens().len(), 1);
}

#[test]
fn overlap_conflict_first_wins() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(10, CI + 4, SI + 1, ACK, b"DEF"), &mut r);
    t.process(&c(11, CI + 4, SI + 1, ACK, b"xyzGHI"), &mut r);
    t.process(&c(12, CI + 1, SI + 1, ACK, b"abcdZZ"), &mut r);
    assert_eq!(r.stream(0, C2S), b"abcDEFGHI");
    assert_eq!(t.stats().overlap_conflict_bytes, 3 + 3);
    assert_eq!(t.stats().overlap_conflict_segments, 2);
}

#[test]
fn endless_overlapping_retransmits_stay_bounded() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    let p = vec![7u8; 1000];
    t.process(&c(10, CI + 2001, SI + 1, ACK, &p), &mut r);
    let m = t.memory_in_use();
    for i in 0..10_000u32 {
        t.process(
            &c(11, CI + 2001 + (i % 900), SI + 1, ACK, &p[..100]),
            &mut r,
        );
    }
    assert_eq!(t.memory_in_use(), m);
    assert_eq!(t.stats().retransmitted_segments, 10_000);
}

#[test]
fn sequence_wraparound() {
    let (mut t, mut r) = (table(), Rec::default());
    let isn = u32::MAX - 5;
    t.process(&c(1, isn, 0, SYN, b""), &mut r);
    t.process(&s(2, SI, isn.wrapping_add(1), SYN | ACK, b""), &mut r);
    // Bytes at u32::MAX-4 .. wrap to 5: send the post-wrap part first (reordered).
    t.process(&c(3, 1, SI + 1, ACK, b"6789"), &mut r);
    t.process(&c(4, isn.wrapping_add(1), SI + 1, ACK, b"012345"), &mut r);
    t.process(&c(5, u32::MAX, SI + 1, ACK, b"45"), &mut r); // retransmit across the wrap
    t.process(&c(6, 5, SI + 1, ACK, b"X"), &mut r);
    assert_eq!(r.stream(0, C2S), b"0123456789X");
    assert_eq!(t.stats().retransmitted_segments, 1);
}

#[test]
fn truncated_capture_gap_lengths() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    let mut a = c(10, CI + 1, SI + 1, ACK, b"GET ");
    a.wire_payload_len = 10;
    t.process(&a, &mut r);
    // Out of order and truncated: buffered with its missing tail.
    let mut b2 = c(11, CI + 21, SI + 1, ACK, b"xy");
    b2.wire_payload_len = 5;
    t.process(&b2, &mut r);
    let mut b1 = c(12, CI + 11, SI + 1, ACK, b"0123");
    b1.wire_payload_len = 10;
    t.process(&b1, &mut r);
    t.process(&c(13, CI + 26, SI + 1, ACK, b"end"), &mut r);
    assert_eq!(r.stream(0, C2S), b"GET ??????0123??????xy???end");
    assert!(r
        .gaps()
        .iter()
        .all(|g| g.2 == GapReason::TruncatedCapture && g.0 == C2S));
    assert_eq!(
        r.gaps().iter().map(|g| g.1).collect::<Vec<_>>(),
        vec![6, 6, 3]
    );
    assert_eq!(t.stats().gap_bytes_truncated_capture, 15);
}

const MS: u64 = 1_000_000;

#[test]
fn hole_skipped_when_peer_acks_beyond_it() {
    let (mut t, mut r) = (table_with_ack_grace(5 * MS), Rec::default());
    handshake(&mut t, &mut r);
    // Request segment 1 (5 bytes) lost by the mirror; segment 2 buffered.
    t.process(&c(10 * MS, CI + 6, SI + 1, ACK, b"world"), &mut r);
    assert!(r.gaps().is_empty());
    // The server acknowledges both: it got them, we never will.
    t.process(&s(16 * MS, SI + 1, CI + 11, ACK, b""), &mut r);
    // Not at once: an ack can overtake its data on the mirror path. After the grace period
    // (5 ms of packet time, here at the connection's next packet) the hole is skipped.
    assert!(r.gaps().is_empty());
    t.process(&s(22 * MS, SI + 1, CI + 11, ACK, b""), &mut r);
    assert_eq!(r.gaps(), vec![(C2S, 5, GapReason::Lost)]);
    assert_eq!(r.stream(0, C2S), b"?????world");
    assert_eq!(t.stats().holes_skipped_peer_ack, 1);
    // Tail loss: nothing buffered, but the peer acks bytes we never saw; skipped once the
    // grace period has passed (here on the next packet of the connection).
    t.process(&s(20 * MS, SI + 1, CI + 15, ACK, b""), &mut r);
    assert_eq!(r.stream(0, C2S), b"?????world");
    t.process(&s(30 * MS, SI + 1, CI + 15, ACK, b"x"), &mut r);
    assert_eq!(r.stream(0, C2S), b"?????world????");
    t.process(&c(31 * MS, CI + 15, SI + 2, ACK, b"!"), &mut r);
    assert_eq!(r.stream(0, C2S), b"?????world????!");
    // The lost segment finally shows up: counted, not delivered twice.
    t.process(&c(41 * MS, CI + 1, SI + 1, ACK, b"hello"), &mut r);
    assert_eq!(r.stream(0, C2S), b"?????world????!");
    assert_eq!(t.stats().retransmitted_segments, 1);
}

#[test]
fn ack_overtaking_its_data_is_not_a_loss() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(10 * MS, CI + 6, SI + 1, ACK, b"world"), &mut r);
    // The mirror delivers the server's ack before the first segment (reordering).
    t.process(&s(10 * MS + 50_000, SI + 1, CI + 11, ACK, b""), &mut r);
    t.process(&c(10 * MS + 90_000, CI + 1, SI + 1, ACK, b"hello"), &mut r);
    assert!(r.gaps().is_empty());
    assert_eq!(r.stream(0, C2S), b"helloworld");
    // Tail case too: ack before the data, then the data.
    t.process(&s(11 * MS, SI + 1, CI + 14, ACK, b""), &mut r);
    t.process(&c(11 * MS + 10, CI + 11, SI + 1, ACK, b"abc"), &mut r);
    t.advance_time(20 * SEC, &mut r);
    assert!(r.gaps().is_empty());
    assert_eq!(r.stream(0, C2S), b"helloworldabc");
}

#[test]
fn acked_tail_is_skipped_by_advance_time() {
    let (mut t, mut r) = (table_with_ack_grace(5 * MS), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(10 * MS, CI + 1, SI + 1, ACK, b"ab"), &mut r);
    t.process(&s(11 * MS, SI + 1, CI + 9, ACK, b""), &mut r);
    t.advance_time(12 * MS, &mut r);
    assert!(r.gaps().is_empty());
    t.advance_time(17 * MS, &mut r);
    assert_eq!(r.gaps(), vec![(C2S, 6, GapReason::Lost)]);
}

#[test]
fn one_byte_beyond_is_held_until_data_shows_it_was_data() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(10 * MS, CI + 1, SI + 1, ACK, b"ab"), &mut r);
    // Acked one past "ab": a FIN we did not see, or one byte of lost data.
    t.process(&s(11 * MS, SI + 1, CI + 4, ACK, b""), &mut r);
    t.advance_time(SEC, &mut r);
    assert!(r.gaps().is_empty());
    // Data beyond it: it was data after all.
    t.process(&c(2 * SEC, CI + 4, SI + 1, ACK, b"d"), &mut r);
    t.process(&s(2 * SEC + 10 * MS, SI + 1, CI + 5, ACK, b""), &mut r);
    assert_eq!(r.stream(0, C2S), b"ab?d");
}

#[test]
fn ack_of_unseen_fin_is_not_a_gap() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(10 * MS, CI + 1, SI + 1, ACK, b"ab"), &mut r);
    // The client's FIN (seq CI+3) is lost by the mirror; the server acks it and closes.
    t.process(&s(11 * MS, SI + 1, CI + 4, ACK | FIN, b""), &mut r);
    t.advance_time(SEC, &mut r);
    t.finish(&mut r);
    assert!(r.gaps().is_empty(), "{:?}", r.gaps());
    assert_eq!(r.stream(0, C2S), b"ab");
}

#[test]
fn fin_overtaken_by_peer_ack_is_not_a_gap() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(10 * MS, CI + 1, SI + 1, ACK, b"ab"), &mut r);
    t.process(&s(11 * MS, SI + 1, CI + 4, ACK | FIN, b""), &mut r);
    t.process(&c(11 * MS + 10, CI + 3, SI + 1, ACK | FIN, b""), &mut r);
    t.process(&c(11 * MS + 20, CI + 4, SI + 2, ACK, b""), &mut r);
    assert!(r.gaps().is_empty(), "{:?}", r.gaps());
    assert_eq!(r.closes(), vec![(0, CloseReason::Fin)]);
}

#[test]
fn ack_of_fin_does_not_gap_the_fin() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(10, CI + 1, SI + 1, ACK | FIN, b"abc"), &mut r);
    t.process(&s(11, SI + 1, CI + 5, ACK, b""), &mut r);
    assert!(r.gaps().is_empty());
    assert!(r.ev.contains(&Ev::Fin { id: 0, dir: C2S }));
}

#[test]
fn hole_timeout_skips_on_packet_time() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(10, CI + 6, SI + 1, ACK, b"world"), &mut r);
    t.advance_time(10 + SEC, &mut r);
    assert!(r.gaps().is_empty());
    t.advance_time(10 + 3 * SEC, &mut r);
    assert_eq!(r.gaps(), vec![(C2S, 5, GapReason::Lost)]);
    assert_eq!(r.stream(0, C2S), b"?????world");
    assert_eq!(t.stats().holes_skipped_hole_timeout, 1);
    // Also on a later packet of the same connection, without advance_time.
    t.process(&s(20 * SEC, SI + 11, CI + 11, ACK, b"later"), &mut r);
    t.process(&s(24 * SEC, SI + 16, CI + 11, ACK, b"!"), &mut r);
    assert_eq!(r.stream(0, S2C), b"??????????later!");
    assert_eq!(t.stats().holes_skipped_hole_timeout, 2);
}

#[test]
fn per_flow_cap_skips_hole() {
    let cfg = FlowConfig {
        max_buffer_per_direction: 4096,
        ..FlowConfig::default()
    };
    let (mut t, mut r) = (FlowTable::new(cfg).unwrap(), Rec::default());
    handshake(&mut t, &mut r);
    let p = vec![b'x'; 1000];
    for i in 0..5u32 {
        t.process(&c(10, CI + 101 + i * 1000, SI + 1, ACK, &p), &mut r);
    }
    assert_eq!(r.gaps(), vec![(C2S, 100, GapReason::Lost)]);
    assert_eq!(r.stream(0, C2S).len(), 5100);
    assert_eq!(t.stats().holes_skipped_flow_cap, 1);
    assert_eq!(t.buffered_bytes(), 0);
}

#[test]
fn midstream_pickup_guesses_roles_and_ignores_earlier_bytes() {
    let (mut t, mut r) = (table(), Rec::default());
    // First seen: a response from port 80.
    t.process(&s(1, 7000, 3000, ACK, b"HTTP/1.1 200 OK\r\n"), &mut r);
    let m = r.opens()[0];
    assert!(m.midstream);
    assert_eq!(m.server.port, 80);
    assert_eq!(m.client.port, 40000);
    assert_eq!(t.stats().flows_midstream, 1);
    // A segment from before our start: counted, not delivered.
    t.process(&s(2, 6990, 3000, ACK, b"0123456789"), &mut r);
    assert_eq!(t.stats().pre_start_segments, 1);
    t.process(&c(3, 3000, 7017, ACK, b"GET /"), &mut r);
    assert_eq!(r.stream(0, S2C), b"HTTP/1.1 200 OK\r\n");
    assert_eq!(r.stream(0, C2S), b"GET /");
}

#[test]
fn heuristic_prefers_known_ports_then_lower() {
    let (mut t, mut r) = (table(), Rec::default());
    let mut a = c(1, 1, 1, ACK, b"x");
    a.src_port = 8080;
    a.dst_port = 52000;
    t.process(&a, &mut r);
    let mut b = c(1, 1, 1, ACK, b"x");
    b.src_port = 6000;
    b.dst_port = 5999;
    t.process(&b, &mut r);
    let o = r.opens();
    assert_eq!(o[0].server.port, 8080);
    assert_eq!(o[1].server.port, 5999);
}

#[test]
fn swap_roles_flips_later_callbacks() {
    let (mut t, mut r) = (table(), Rec::default());
    // Guessed wrong: the request comes from port 80 (e.g. a proxy with odd ports).
    r.verdicts.push_back(Verdict::SwapRoles);
    t.process(&s(1, 100, 900, ACK, b"GET / HTTP/1.1\r\n"), &mut r);
    t.process(&c(2, 900, 116, ACK, b"HTTP/1.1 200 OK\r\n"), &mut r);
    t.process(&s(3, 116, 917, ACK, b"GET /2"), &mut r);
    let dirs: Vec<Direction> =
        r.ev.iter()
            .filter_map(|e| match e {
                Ev::Data { dir, .. } => Some(*dir),
                _ => None,
            })
            .collect();
    // First callback was before the swap (S2C as guessed); after it, port 80 is the client.
    assert_eq!(dirs, vec![S2C, S2C, C2S]);
    assert_eq!(t.stats().role_swaps, 1);
    t.finish(&mut r);
}

#[test]
fn stop_delivery_still_counts_and_closes() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    r.verdicts.push_back(Verdict::StopDelivery);
    t.process(&c(10, CI + 1, SI + 1, ACK, b"upgrade"), &mut r);
    t.process(&c(11, CI + 8, SI + 1, ACK, b"more"), &mut r);
    assert_eq!(r.stream(0, C2S), b"upgrade");
    assert_eq!(t.stats().bytes_after_stop, 4);
    t.finish(&mut r);
    assert_eq!(r.closes(), vec![(0, CloseReason::EndOfInput)]);
}

#[test]
fn port_reuse_after_close_is_new_connection() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(4, CI + 1, SI + 1, ACK | FIN, b"a"), &mut r);
    t.process(&s(5, SI + 1, CI + 3, ACK | FIN, b"b"), &mut r);
    assert_eq!(r.closes(), vec![(0, CloseReason::Fin)]);
    t.process(&c(6, 90_000, 0, SYN, b""), &mut r);
    t.process(&c(7, 90_001, 0, ACK, b"again"), &mut r);
    assert_eq!(r.opens().len(), 2);
    assert_eq!(r.stream(1, C2S), b"again");
    assert_eq!(t.stats().port_reuse, 1);
}

#[test]
fn port_reuse_on_open_connection_closes_it() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(4, CI + 1, SI + 1, ACK, b"a"), &mut r);
    t.process(&c(5, CI + 3, SI + 1, ACK, b"c"), &mut r); // hole at CI+2
    t.process(&c(6, 90_000, 0, SYN, b""), &mut r);
    assert_eq!(r.closes(), vec![(0, CloseReason::PortReuse)]);
    assert_eq!(r.stream(0, C2S), b"a?c");
    assert_eq!(r.opens().len(), 2);
    assert_ne!(r.opens()[0].stable_id, r.opens()[1].stable_id);
}

#[test]
fn rst_closes_and_flushes() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(4, CI + 3, SI + 1, ACK, b"cd"), &mut r);
    t.process(&s(5, SI + 1, CI + 1, RST | ACK, b"ignored"), &mut r);
    assert_eq!(r.stream(0, C2S), b"??cd");
    assert_eq!(r.stream(0, S2C), b"");
    assert_eq!(r.closes(), vec![(0, CloseReason::Rst)]);
    assert_eq!(t.stats().rst_payload_bytes, 7);
    assert_eq!(t.stats().holes_skipped_close, 1);
    // RST for an unknown flow opens nothing.
    let mut x = c(6, 1, 1, RST, b"");
    x.src_port = 1234;
    t.process(&x, &mut r);
    assert_eq!(t.stats().segments_without_flow, 1);
}

#[test]
fn odd_stacks_data_on_syn_and_fin() {
    let (mut t, mut r) = (table(), Rec::default());
    t.process(&c(1, CI, 0, SYN, b"early"), &mut r);
    t.process(&s(2, SI, CI + 6, SYN | ACK, b""), &mut r);
    t.process(&c(3, CI + 6, SI + 1, ACK | FIN, b"late"), &mut r);
    t.process(&s(4, SI + 1, CI + 11, ACK | FIN, b"resp"), &mut r);
    assert_eq!(r.stream(0, C2S), b"earlylate");
    assert_eq!(r.stream(0, S2C), b"resp");
    assert_eq!(r.closes(), vec![(0, CloseReason::Fin)]);
}

#[test]
fn missing_syn_ack_starts_server_from_client_ack() {
    let (mut t, mut r) = (table(), Rec::default());
    t.process(&c(1, CI, 0, SYN, b""), &mut r);
    t.process(&c(3, CI + 1, SI + 1, ACK, b""), &mut r);
    t.process(&s(5, SI + 4, CI + 1, ACK, b"def"), &mut r);
    t.process(&s(6, SI + 1, CI + 1, ACK, b"abc"), &mut r);
    assert_eq!(r.stream(0, S2C), b"abcdef");
    assert!(!r.opens()[0].midstream);
}

#[test]
fn syn_ack_first_sets_roles() {
    let (mut t, mut r) = (table(), Rec::default());
    t.process(&s(2, SI, CI + 1, SYN | ACK, b""), &mut r);
    t.process(&c(3, CI + 1, SI + 1, ACK, b"hi"), &mut r);
    let m = r.opens()[0];
    assert!(!m.midstream);
    assert_eq!(m.client.port, 40000);
    assert_eq!(r.stream(0, C2S), b"hi");
}

#[test]
fn late_syn_after_reordered_data_is_absorbed() {
    let (mut t, mut r) = (table(), Rec::default());
    t.process(&c(1, CI + 1, SI + 1, ACK, b"GET"), &mut r);
    t.process(&c(0, CI, 0, SYN, b""), &mut r);
    t.process(&c(2, CI + 4, SI + 1, ACK, b" /"), &mut r);
    assert_eq!(r.opens().len(), 1);
    assert_eq!(r.stream(0, C2S), b"GET /");
    assert_eq!(t.stats().port_reuse, 0);
}

fn dup_under_second_vni(mode: FlowKeyMode) -> (Rec, FlowStats) {
    let cfg = FlowConfig {
        key_mode: mode,
        ..FlowConfig::default()
    };
    let (mut t, mut r) = (FlowTable::new(cfg).unwrap(), Rec::default());
    let req = b"GET / HTTP/1.1\r\n\r\n";
    let resp = b"HTTP/1.1 204 No Content\r\n\r\n";
    let e = SI + 1 + resp.len() as u32;
    let pkts = [
        c(1, CI, 0, SYN, b""),
        s(2, SI, CI + 1, SYN | ACK, b""),
        c(3, CI + 1, SI + 1, ACK, b""),
        c(4, CI + 1, SI + 1, ACK, req),
        s(5, SI + 1, CI + 19, ACK, resp),
        c(6, CI + 19, e, ACK | FIN, b""),
        s(7, e, CI + 20, ACK | FIN, b""),
        c(8, CI + 20, e + 1, ACK, b""),
    ];
    for p in pkts {
        t.process(&p, &mut r);
        // The same packet, mirrored from the other ENI: another VNI and outer source.
        let mut q = p;
        q.vni = Some(8);
        q.mirror_source = Some(IpAddr::V4(Ipv4Addr::new(172, 16, 0, 10)));
        q.ts_ns += 1;
        t.process(&q, &mut r);
    }
    t.finish(&mut r);
    (r, *t.stats())
}

#[test]
fn mirrored_twice_absorbed_in_five_tuple_mode() {
    let (r, st) = dup_under_second_vni(FlowKeyMode::FiveTuple);
    assert_eq!(r.opens().len(), 1);
    assert_eq!(r.stream(0, C2S), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(r.stream(0, S2C), b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(r.closes(), vec![(0, CloseReason::Fin)]);
    assert!(st.retransmitted_segments >= 2);
}

#[test]
fn mirrored_twice_two_connections_in_session_mode() {
    let (r, _) = dup_under_second_vni(FlowKeyMode::Session);
    let o = r.opens();
    assert_eq!(o.len(), 2);
    assert_eq!(
        o[0].stable_id, o[1].stable_id,
        "same connection, same stable id"
    );
    assert_ne!(o[0].vni, o[1].vni);
    for id in [0, 1] {
        assert_eq!(r.stream(id, C2S), b"GET / HTTP/1.1\r\n\r\n");
    }
    assert_eq!(r.closes().len(), 2);
}

/// Session mode: the same id under two tunnel kinds from one mirror source is two sessions,
/// and a 32-bit GRE key with its top bit set stays distinct from a small VNI.
#[test]
fn session_key_includes_the_tunnel_kind_and_all_32_key_bits() {
    let cfg = FlowConfig {
        key_mode: FlowKeyMode::Session,
        ..FlowConfig::default()
    };
    let (mut t, mut r) = (FlowTable::new(cfg).unwrap(), Rec::default());
    let variants = [
        (vxtap_wire::TunnelKind::Vxlan, Some(7)),
        (vxtap_wire::TunnelKind::Gre, Some(7)),
        (vxtap_wire::TunnelKind::Gre, Some(0x8000_0007)),
        (vxtap_wire::TunnelKind::Erspan2, Some(7)),
    ];
    for (i, (tunnel, vni)) in variants.into_iter().enumerate() {
        let mut p = c(i as u64, CI, 0, SYN, b"");
        (p.tunnel, p.vni) = (tunnel, vni);
        t.process(&p, &mut r);
    }
    let o = r.opens();
    assert_eq!(o.len(), 4);
    let got: Vec<_> = o.iter().map(|m| (m.tunnel, m.vni)).collect();
    assert_eq!(got, variants);
}

#[test]
fn stable_id_is_deterministic() {
    let run = || {
        let (mut t, mut r) = (table(), Rec::default());
        handshake(&mut t, &mut r);
        t.process(&s(1, 77, 88, ACK, b"x"), &mut r); // same 5-tuple, already open
        let mut m = s(1, 77, 88, ACK, b"x");
        m.src_port = 8080;
        t.process(&m, &mut r);
        r.opens().iter().map(|m| m.stable_id).collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run());
    assert_ne!(a[0], a[1]);
}

#[test]
fn far_beyond_window_is_ignored() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    let p = vec![1u8; 1400];
    let before = t.memory_in_use();
    for i in 0..100u32 {
        t.process(
            &c(10, CI + 1 + (1 << 30) + 1 + i * 1400, SI + 1, ACK, &p),
            &mut r,
        );
    }
    assert_eq!(t.memory_in_use(), before);
    assert_eq!(t.stats().out_of_window, 100);
    t.process(&c(11, CI + 1, SI + 1, ACK, b"ok"), &mut r);
    assert_eq!(r.stream(0, C2S), b"ok");
}

#[test]
fn idle_timeout_closes_and_forgets() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(SEC, CI + 1, SI + 1, ACK, b"a"), &mut r);
    t.advance_time(100 * SEC, &mut r);
    assert!(r.closes().is_empty());
    t.advance_time(122 * SEC, &mut r);
    assert_eq!(r.closes(), vec![(0, CloseReason::IdleTimeout)]);
    assert_eq!(t.tracked_flows(), 0);
    assert_eq!(t.stats().closed_idle_timeout, 1);
}

#[test]
fn finish_turns_holes_into_gaps() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(10, CI + 1, SI + 1, ACK, b"ab"), &mut r);
    t.process(&c(11, CI + 5, SI + 1, ACK | FIN, b"ef"), &mut r);
    t.finish(&mut r);
    assert_eq!(r.stream(0, C2S), b"ab??ef");
    assert!(r.ev.contains(&Ev::Fin { id: 0, dir: C2S }));
    assert_eq!(r.closes(), vec![(0, CloseReason::EndOfInput)]);
    assert_eq!(t.memory_in_use(), 0);
}

#[test]
fn max_flows_evicts_oldest_idle() {
    let cfg = FlowConfig {
        max_flows: 3,
        ..FlowConfig::default()
    };
    let (mut t, mut r) = (FlowTable::new(cfg).unwrap(), Rec::default());
    for i in 0..5u16 {
        let mut p = c(i as u64 * 2 * SEC, 1, 0, SYN, b"");
        p.src_port = 1000 + i;
        t.process(&p, &mut r);
    }
    assert_eq!(t.tracked_flows(), 3);
    assert_eq!(
        r.closes(),
        vec![(0, CloseReason::Evicted), (1, CloseReason::Evicted)]
    );
    assert_eq!(t.stats().evicted_max_flows, 2);
}

#[test]
fn memory_budget_flushes_buffers_as_memory_gaps() {
    let cfg = FlowConfig {
        max_memory: 64 * 1024,
        max_buffer_per_direction: 32 * 1024,
        ..FlowConfig::default()
    };
    let (mut t, mut r) = (FlowTable::new(cfg).unwrap(), Rec::default());
    let p = vec![b'z'; 1000];
    for conn in 0..20u16 {
        let mut x = c(1, 10, 1, ACK, &p);
        x.src_port = 2000 + conn;
        t.process(&x, &mut r);
        // A hole of 1000, then ten buffered segments.
        for i in 0..10u32 {
            let mut x = c(1, 2010 + i * 1000, 1, ACK, &p);
            x.src_port = 2000 + conn;
            t.process(&x, &mut r);
            assert!(t.memory_in_use() <= 64 * 1024);
        }
    }
    assert!(t.stats().holes_skipped_memory > 0);
    assert!(t.stats().gap_bytes_memory_cap > 0);
    assert!(r.gaps().iter().any(|g| g.2 == GapReason::MemoryCap));
}

#[test]
fn config_is_validated_and_modes_parse() {
    assert!(FlowTable::<Rec>::new(FlowConfig {
        max_flows: 0,
        ..FlowConfig::default()
    })
    .is_err());
    assert_eq!("session".parse::<FlowKeyMode>(), Ok(FlowKeyMode::Session));
    assert!("bogus".parse::<FlowKeyMode>().is_err());
    for m in FlowKeyMode::ALL {
        assert_eq!(m.as_str().parse::<FlowKeyMode>(), Ok(m));
    }
    let labels: Vec<&str> = CloseReason::ALL.iter().map(|r| r.as_str()).collect();
    assert!(labels.contains(&"port_reuse"));
    assert_eq!(GapReason::ALL.len(), 3);
    assert_eq!(EvictReason::ALL.len(), 2);
}

#[test]
fn ipv6_flows_work() {
    let (mut t, mut r) = (table(), Rec::default());
    let mut a = c(1, 10, 0, ACK, b"v6");
    a.src_ip = "2001:db8::1".parse().unwrap();
    a.dst_ip = "2001:db8::2".parse().unwrap();
    t.process(&a, &mut r);
    assert_eq!(r.stream(0, C2S), b"v6");
}

/// Each delivered byte comes with what its segment acknowledged, as an offset of the other
/// direction's stream; an unchanged ack is not reported again.
#[test]
fn acks_are_reported_as_peer_offsets() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(
        &c(4, CI + 1, SI + 1, ACK, b"GET /a HTTP/1.1\r\n\r\n"),
        &mut r,
    );
    t.process(&s(5, SI + 1, CI + 20, ACK, b"HTTP/1.1 200 OK\r\n"), &mut r);
    t.process(
        &s(6, SI + 18, CI + 20, ACK, b"Content-Length: 0\r\n\r\n"),
        &mut r,
    );
    t.process(
        &c(7, CI + 20, SI + 39, ACK, b"GET /b HTTP/1.1\r\n\r\n"),
        &mut r,
    );
    assert_eq!(
        r.data_acks,
        [
            (C2S, Some(0)),
            (S2C, Some(19)),
            (S2C, Some(19)),
            (C2S, Some(38))
        ]
    );
    assert_eq!(r.acks.len(), 3, "{:?}", r.acks);
}

/// Out-of-order bytes are delivered with the ack of the segment that carried them, not with
/// the ack of the segment that closed the hole.
#[test]
fn buffered_segments_keep_their_own_acks() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(4, CI + 1, SI + 1, ACK, b"aaaa"), &mut r);
    t.process(&c(5, CI + 5, SI + 1, ACK, b"bbbb"), &mut r);
    t.process(&s(6, SI + 4, CI + 9, ACK, b"yyy"), &mut r);
    t.process(&s(7, SI + 1, CI + 5, ACK, b"xxx"), &mut r);
    assert_eq!(r.stream(0, S2C), b"xxxyyy");
    let server: Vec<_> = r.data_acks.iter().filter(|(d, _)| *d == S2C).collect();
    assert_eq!(server, [&(S2C, Some(4)), &(S2C, Some(8))]);
}

/// Acks that cannot be evidence are reported as none: going backwards, before the peer's
/// stream, far beyond it, past its FIN, or without the ACK flag.
#[test]
fn unusable_acks_are_not_evidence() {
    let (mut t, mut r) = (table(), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(4, CI + 1, SI + 1, ACK, b"hello"), &mut r);
    let sends: [(u32, u8); 6] = [
        (CI + 6, ACK),
        (CI + 3, ACK), // backwards
        (CI + 6, ACK),
        (CI + 6 + (1 << 30) + 100, ACK), // beyond any window
        (CI.wrapping_sub(50), ACK),      // before the client's first byte
        (CI + 6, 0),                     // no ACK flag
    ];
    for (i, (ack, fl)) in sends.into_iter().enumerate() {
        t.process(&s(5 + i as u64, SI + 1 + i as u32, ack, fl, b"x"), &mut r);
    }
    t.process(&c(11, CI + 6, SI + 7, ACK | FIN, b""), &mut r);
    // The FIN's ack (one past the last byte), then one past the FIN.
    t.process(&s(12, SI + 7, CI + 7, ACK, b"x"), &mut r);
    t.process(&s(13, SI + 8, CI + 9, ACK, b"x"), &mut r);
    let server: Vec<Option<u64>> = r
        .data_acks
        .iter()
        .filter(|(d, _)| *d == S2C)
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(
        server,
        [Some(5), None, Some(5), None, None, None, Some(5), None]
    );
    assert!(r.gaps().is_empty());
}

/// Without a handshake the peer's stream has no known start until its first byte shows up.
#[test]
fn midstream_acks_count_from_the_first_byte_seen() {
    let (mut t, mut r) = (table(), Rec::default());
    t.process(&s(1, 7000, 3000, ACK, b"HTTP/1.1 200 OK\r\n"), &mut r);
    t.process(&c(2, 3000, 7017, ACK, b"GET"), &mut r);
    t.process(&s(3, 7017, 3003, ACK, b"x"), &mut r);
    assert_eq!(r.data_acks, [(S2C, None), (C2S, Some(17)), (S2C, Some(3))]);
}

/// When the grace of an acked hole runs out, a hole acked only later is not skipped with it:
/// its segment may merely be held back (the next request behind a lost one).
#[test]
fn each_acked_hole_gets_its_own_grace() {
    let (mut t, mut r) = (table_with_ack_grace(10), Rec::default());
    handshake(&mut t, &mut r);
    t.process(&c(10, CI + 1, SI + 1, ACK, b"aaaa"), &mut r);
    t.process(&c(20, CI + 9, SI + 1, ACK, b"cccc"), &mut r); // "bbbb" lost
    t.process(&s(21, SI + 1, CI + 13, ACK, b""), &mut r);
    t.process(&c(22, CI + 17, SI + 1, ACK, b"eeee"), &mut r); // "dddd" held back
    t.process(&s(28, SI + 1, CI + 21, ACK, b""), &mut r);
    t.process(&s(31, SI + 1, CI + 21, ACK, b""), &mut r);
    assert_eq!(r.gaps(), [(C2S, 4, GapReason::Lost)]);
    t.process(&c(35, CI + 13, SI + 1, ACK, b"dddd"), &mut r);
    assert_eq!(r.stream(0, C2S), b"aaaa????ccccddddeeee");
    assert_eq!(r.gaps().len(), 1);
}

#[test]
fn finish_some_closes_in_steps() {
    let (mut t, mut r) = (table(), Rec::default());
    for i in 0..3u16 {
        let mut p = c(1, 1, 0, SYN, b"");
        p.src_port = 1000 + i;
        t.process(&p, &mut r);
    }
    assert!(!t.finish_some(2, &mut r));
    assert_eq!(r.closes().len(), 2);
    assert!(t.finish_some(2, &mut r));
    assert_eq!(r.closes().len(), 3);
    assert_eq!(t.tracked_flows(), 0);
    assert_eq!(t.memory_in_use(), 0);
}
