//! Property tests: segmentation, reordering, duplication and loss never misplace a byte.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use vxtap_flow::*;
use vxtap_wire::{Segment, TcpFlags};

/// Reconstructs each direction position by position: `Some(byte)` delivered, `None` gapped.
#[derive(Default)]
struct Streams {
    out: [Vec<Option<u8>>; 2],
    fins: [u32; 2],
    opens: u32,
    closes: u32,
}

fn di(d: Direction) -> usize {
    match d {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl StreamHandler for Streams {
    type Conn = ();
    fn on_open(&mut self, _m: &ConnMeta) {
        self.opens += 1;
    }
    fn on_data(
        &mut self,
        _c: &mut (),
        _m: &ConnMeta,
        d: Direction,
        _t: u64,
        data: &[u8],
    ) -> Verdict {
        self.out[di(d)].extend(data.iter().map(|b| Some(*b)));
        Verdict::Continue
    }
    fn on_gap(
        &mut self,
        _c: &mut (),
        _m: &ConnMeta,
        d: Direction,
        _t: u64,
        len: u64,
        _r: GapReason,
    ) -> Verdict {
        self.out[di(d)].extend(std::iter::repeat_n(None, len as usize));
        Verdict::Continue
    }
    fn on_fin(&mut self, _c: &mut (), _m: &ConnMeta, d: Direction, _t: u64) {
        self.fins[di(d)] += 1;
    }
    fn on_close(&mut self, _c: (), _m: &ConnMeta, _t: u64, _r: CloseReason) {
        self.closes += 1;
    }
}

/// A packet to send: direction, sequence offset in its stream, byte range, flags.
#[derive(Clone, Debug)]
struct Pkt {
    from_client: bool,
    start: usize,
    end: usize,
    flags: u8,
    ack_to: usize,
    vni: u32,
}

const CPORT: u16 = 51000;

fn mk<'a>(p: &Pkt, ts: u64, isn: [u32; 2], data: &'a [Vec<u8>; 2], pl: usize) -> Segment<'a> {
    let (si, dii) = if p.from_client { (0, 1) } else { (1, 0) };
    let cip = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1));
    let sip = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2));
    let (src_ip, dst_ip, src_port, dst_port) = if p.from_client {
        (cip, sip, CPORT, 80)
    } else {
        (sip, cip, 80, CPORT)
    };
    let syn = p.flags & TcpFlags::SYN != 0;
    let seq = if syn {
        isn[si]
    } else {
        isn[si].wrapping_add(1).wrapping_add(p.start as u32)
    };
    let payload = &data[si][p.start..p.end];
    let cut = payload.len().min(pl);
    Segment {
        ts_ns: ts,
        vni: Some(p.vni),
        tunnel: vxtap_wire::TunnelKind::None,
        mirror_source: None,
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        seq,
        ack: isn[dii].wrapping_add(1).wrapping_add(p.ack_to as u32),
        flags: TcpFlags(p.flags),
        window: 1000,
        payload: &payload[..cut],
        wire_payload_len: payload.len() as u32,
    }
}

/// Cuts `len` bytes into segments at the given relative cut points.
fn cut(len: usize, cuts: &[u16]) -> Vec<(usize, usize)> {
    let mut pts: Vec<usize> = cuts.iter().map(|c| *c as usize % (len + 1)).collect();
    pts.push(0);
    pts.push(len);
    pts.sort_unstable();
    pts.dedup();
    pts.windows(2).map(|w| (w[0], w[1])).collect()
}

struct Case {
    data: [Vec<u8>; 2],
    isn: [u32; 2],
    pkts: Vec<Pkt>,
}

#[allow(clippy::too_many_arguments)]
fn build(
    c: Vec<u8>,
    s: Vec<u8>,
    isn: [u32; 2],
    cuts: [Vec<u16>; 2],
    retx: Vec<(bool, u16, u16)>,
    realistic_acks: bool,
    vnis: bool,
) -> Case {
    let data = [c, s];
    let mut pkts = vec![
        Pkt {
            from_client: true,
            start: 0,
            end: 0,
            flags: TcpFlags::SYN,
            ack_to: 0,
            vni: 1,
        },
        Pkt {
            from_client: false,
            start: 0,
            end: 0,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            ack_to: 0,
            vni: 1,
        },
    ];
    // Data of both directions, interleaved in original send order.
    let segs: [Vec<(usize, usize)>; 2] =
        [cut(data[0].len(), &cuts[0]), cut(data[1].len(), &cuts[1])];
    let mut sent = [0usize; 2];
    let (mut i0, mut i1) = (0, 0);
    let mut n = 0u32;
    while i0 < segs[0].len() || i1 < segs[1].len() {
        let pick_client = i1 >= segs[1].len() || (i0 < segs[0].len() && n % 3 != 2);
        n += 1;
        let (d, (a, b)) = if pick_client {
            i0 += 1;
            (0, segs[0][i0 - 1])
        } else {
            i1 += 1;
            (1, segs[1][i1 - 1])
        };
        let other = 1 - d;
        pkts.push(Pkt {
            from_client: d == 0,
            start: a,
            end: b,
            flags: if realistic_acks { TcpFlags::ACK } else { 0 },
            ack_to: sent[other],
            vni: if vnis { 1 + n % 2 } else { 1 },
        });
        sent[d] = b;
    }
    for (fc, a, b) in retx {
        let d = if fc { 0 } else { 1 };
        let len = data[d].len();
        let (a, b) = (a as usize % (len + 1), b as usize % (len + 1));
        let (a, b) = (a.min(b), a.max(b));
        pkts.push(Pkt {
            from_client: fc,
            start: a,
            end: b,
            flags: 0,
            ack_to: 0,
            vni: 2,
        });
    }
    Case { data, isn, pkts }
}

/// Moves each packet by fewer than `k` places (bounded reordering, as a mirror path does):
/// sort by index plus a random jitter below `k`. The first `fixed` packets (the handshake) stay
/// in place: a stream that starts before its SYN shows up is a mid-stream pickup, whose earlier
/// bytes are not promised (unit-tested).
fn shuffle_bounded(pkts: &mut Vec<Pkt>, seed: u64, k: usize, fixed: usize) {
    let mut x = seed | 1;
    let mut keyed: Vec<(usize, Pkt)> = pkts
        .drain(..)
        .enumerate()
        .map(|(i, p)| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let jitter = if i < fixed { 0 } else { x as usize % k };
            (i + jitter, p)
        })
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    for (i, (_, p)) in keyed.into_iter().enumerate() {
        // Sorting cannot move the handshake: its keys are the smallest.
        let _ = i;
        pkts.push(p);
    }
}

fn fin_pkts(case: &Case) -> [Pkt; 2] {
    [
        Pkt {
            from_client: true,
            start: case.data[0].len(),
            end: case.data[0].len(),
            flags: TcpFlags::FIN | TcpFlags::ACK,
            ack_to: case.data[1].len(),
            vni: 1,
        },
        Pkt {
            from_client: false,
            start: case.data[1].len(),
            end: case.data[1].len(),
            flags: TcpFlags::FIN | TcpFlags::ACK,
            ack_to: case.data[0].len() + 1,
            vni: 1,
        },
    ]
}

/// Packets are `step_ns` apart in capture time.
fn run(case: &Case, pkts: &[Pkt], step_ns: u64, snap: usize) -> (Streams, FlowStats) {
    let mut t = FlowTable::new(FlowConfig::default()).unwrap();
    let mut h = Streams::default();
    for (i, p) in pkts.iter().enumerate() {
        let ts = 1_000_000 + i as u64 * step_ns;
        t.process(&mk(p, ts, case.isn, &case.data, snap), &mut h);
    }
    t.finish(&mut h);
    assert_eq!(t.memory_in_use(), 0);
    (h, *t.stats())
}

fn isn_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), (0u32..4000).prop_map(|d| u32::MAX - d)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any segmentation, bounded reordering and duplication delivers exactly the streams.
    #[test]
    fn reorder_and_duplicates_deliver_exact_streams(
        c in proptest::collection::vec(any::<u8>(), 0..3000),
        s in proptest::collection::vec(any::<u8>(), 0..3000),
        isn in [isn_strategy(), isn_strategy()],
        cuts in [proptest::collection::vec(any::<u16>(), 0..40), proptest::collection::vec(any::<u16>(), 0..40)],
        retx in proptest::collection::vec((any::<bool>(), any::<u16>(), any::<u16>()), 0..20),
        seed in any::<u64>(),
        dup_all in any::<bool>(),
        vnis in any::<bool>(),
    ) {
        // Real acks, with reordering spanning less than the ack grace period (8 x 100 us).
        let case = build(c, s, isn, cuts, retx, true, vnis);
        let mut pkts = case.pkts.clone();
        if dup_all {
            // Every packet twice (both ENIs mirrored).
            pkts = pkts.into_iter().flat_map(|p| [p.clone(), Pkt { vni: 9, ..p }]).collect();
        }
        shuffle_bounded(&mut pkts, seed, 8, if dup_all { 4 } else { 2 });
        pkts.extend(fin_pkts(&case));
        let (h, st) = run(&case, &pkts, 100_000, usize::MAX);
        prop_assert_eq!(h.opens, 1);
        for d in 0..2 {
            let want: Vec<Option<u8>> = case.data[d].iter().map(|b| Some(*b)).collect();
            let first_diff = h.out[d].iter().zip(&want).position(|(a, b)| a != b);
            prop_assert_eq!(first_diff, None, "direction {} differs; {:?}", d, st);
            prop_assert_eq!(h.out[d].len(), want.len(), "direction {} length", d);
            prop_assert_eq!(h.fins[d], 1);
        }
        prop_assert_eq!(st.gap_bytes_total(), 0);
        prop_assert_eq!(st.overlap_conflict_bytes, 0);
        prop_assert_eq!(st.bytes_delivered as usize, case.data[0].len() + case.data[1].len());
    }

    /// With drops (and truncation), every byte is delivered at its place or covered by a gap.
    #[test]
    fn drops_are_gaps_of_exact_length(
        c in proptest::collection::vec(any::<u8>(), 0..3000),
        s in proptest::collection::vec(any::<u8>(), 0..3000),
        isn in [isn_strategy(), isn_strategy()],
        cuts in [proptest::collection::vec(any::<u16>(), 0..40), proptest::collection::vec(any::<u16>(), 0..40)],
        retx in proptest::collection::vec((any::<bool>(), any::<u16>(), any::<u16>()), 0..10),
        seed in any::<u64>(),
        drops in proptest::collection::vec(any::<u16>(), 0..10),
        snap in prop_oneof![Just(usize::MAX), 1usize..200],
    ) {
        let case = build(c, s, isn, cuts, retx, true, false);
        let mut pkts = case.pkts.clone();
        shuffle_bounded(&mut pkts, seed, 6, 2);
        let n = pkts.len();
        let mut keep = vec![true; n];
        for d in drops {
            if n > 2 {
                keep[2 + d as usize % (n - 2)] = false;
            }
        }
        let mut pkts: Vec<Pkt> = pkts.into_iter().zip(keep).filter(|(_, k)| *k).map(|(p, _)| p).collect();
        pkts.extend(fin_pkts(&case));
        // 1 ms apart: acks of lost data skip holes quickly, and sometimes overtake their data.
        let (h, st) = run(&case, &pkts, 1_000_000, snap);
        for d in 0..2 {
            prop_assert_eq!(h.out[d].len(), case.data[d].len(), "direction {} length", d);
            for (i, got) in h.out[d].iter().enumerate() {
                if let Some(b) = got {
                    prop_assert_eq!(*b, case.data[d][i], "direction {} byte {}", d, i);
                }
            }
        }
        let total = (case.data[0].len() + case.data[1].len()) as u64;
        prop_assert_eq!(st.bytes_delivered + st.gap_bytes_total(), total);
    }
}
