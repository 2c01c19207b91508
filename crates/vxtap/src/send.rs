//! `vxtap send`: a load generator that plays a capture to a listener as VXLAN datagrams.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use vxtap_capture::{CaptureReader, UdpSender};
use vxtap_wire::checksum::finish;
use vxtap_wire::encap::to_ethernet;
use vxtap_wire::{wrap_vxlan, Decapsulator, Decoded, LinkType, OuterParams, TunnelKind};

/// How fast to send.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// As fast as the socket takes them.
    Flood,
    /// A fixed number of datagrams per second.
    Pps(u64),
    /// The capture's own timing, scaled (2.0 = twice as fast).
    Speed(f64),
}

/// What a send did.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendReport {
    /// Datagrams sent.
    pub sent: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Capture frames skipped (not wrappable).
    pub skipped: u64,
    /// Frames of loops after the first that could not be made new connections (not IP, or
    /// too short): sent as they were.
    pub unshifted: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// How far ahead of schedule a sender may run before it sleeps.
const PACE_SLACK: Duration = Duration::from_millis(1);

/// Bytes of the outer Ethernet + IPv4 + UDP headers `wrap_vxlan` writes for an IPv4 outer.
const OUTER_V4: usize = 14 + 20 + 8;

/// Sends `file` to `sender` `loops` times. VXLAN datagrams in the capture are sent as they are
/// (their UDP payload); any other frame is wrapped as AWS mirroring would, with `vni`. Each loop
/// after the first plays new connections ([`shift_frame`]), so that a listener sees `loops`
/// times the traffic rather than retransmissions of connections it already closed.
pub fn send(
    file: &Path,
    sender: &mut UdpSender,
    vni: u32,
    pace: Pace,
    loops: u64,
    batch: usize,
) -> Result<SendReport> {
    let batch = batch.clamp(1, vxtap_capture::MAX_BATCH);
    let mut report = SendReport::default();
    let outer = OuterParams::default();
    let mut decap = Decapsulator::default();
    let (mut eth, mut wrapped) = (Vec::with_capacity(9000), Vec::with_capacity(9100));
    // Datagrams are staged in one arena per batch so a batch costs no allocation once warm.
    let mut arena: Vec<u8> = Vec::with_capacity(batch * 1600);
    let mut bounds: Vec<(usize, usize)> = Vec::with_capacity(batch);
    let started = Instant::now();
    let mut first_ts: Option<u64> = None;
    let mut flush = |arena: &mut Vec<u8>,
                     bounds: &mut Vec<(usize, usize)>,
                     report: &mut SendReport|
     -> Result<()> {
        if bounds.is_empty() {
            return Ok(());
        }
        let slices: Vec<&[u8]> = bounds.iter().map(|&(a, b)| &arena[a..b]).collect();
        let n = sender.send_batch(&slices)?;
        report.sent += n as u64;
        report.bytes += slices.iter().take(n).map(|s| s.len() as u64).sum::<u64>();
        arena.clear();
        bounds.clear();
        Ok(())
    };
    for lap in 0..loops.max(1) {
        let lap_start = Instant::now();
        let mut reader = CaptureReader::open(file)?;
        while let Some(p) = reader.next_packet()? {
            let Some(link) = LinkType::from_pcap(p.linktype) else {
                report.skipped += 1;
                continue;
            };
            // Already mirrored? Then send its VXLAN header and inner frame unchanged.
            let base = p.data.as_ptr() as usize;
            let mut datagram: Option<&[u8]> = None;
            if let Decoded::Segment { inner, .. } | Decoded::Other { inner, .. } =
                decap.decode(link, p.ts_ns, p.data)
            {
                let off = (inner.frame.as_ptr() as usize).wrapping_sub(base);
                if inner.tunnel == TunnelKind::Vxlan && inner.depth == 1 && off >= 8 {
                    datagram = p.data.get(off - 8..);
                }
            }
            let bytes: &[u8] = match datagram {
                Some(d) => d,
                None => {
                    let frame = if link == LinkType::Ethernet {
                        p.data
                    } else if to_ethernet(link, p.data, &mut eth).is_ok() {
                        &eth[..]
                    } else {
                        report.skipped += 1;
                        continue;
                    };
                    if wrap_vxlan(frame, vni, &outer, None, &mut wrapped).is_err() {
                        report.skipped += 1;
                        continue;
                    }
                    &wrapped[OUTER_V4..]
                }
            };
            let start = arena.len();
            arena.extend_from_slice(bytes);
            // The datagram is the 8-byte VXLAN header, then the inner Ethernet frame.
            if lap > 0
                && !arena
                    .get_mut(start + 8..)
                    .is_some_and(|f| shift_frame(f, lap))
            {
                report.unshifted += 1;
            }
            bounds.push((start, arena.len()));
            // Pacing decides before each datagram would be due; batches are cut at that point.
            match pace {
                Pace::Flood => {}
                Pace::Pps(pps) if pps > 0 => {
                    let due = Duration::from_secs_f64(
                        (report.sent + bounds.len() as u64) as f64 / pps as f64,
                    );
                    let now = started.elapsed();
                    // Sleep only when more than a millisecond ahead, so batches stay full.
                    if due > now + PACE_SLACK {
                        flush(&mut arena, &mut bounds, &mut report)?;
                        std::thread::sleep(due - now);
                    }
                }
                Pace::Pps(_) => {}
                Pace::Speed(x) if x > 0.0 => {
                    let t0 = *first_ts.get_or_insert(p.ts_ns);
                    let due = Duration::from_secs_f64(p.ts_ns.saturating_sub(t0) as f64 / 1e9 / x);
                    let now = lap_start.elapsed();
                    if due > now + PACE_SLACK {
                        flush(&mut arena, &mut bounds, &mut report)?;
                        std::thread::sleep(due - now);
                    }
                }
                Pace::Speed(_) => {}
            }
            if bounds.len() >= batch {
                flush(&mut arena, &mut bounds, &mut report)?;
            }
        }
        flush(&mut arena, &mut bounds, &mut report)?;
        first_ts = None;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Sequence numbers move by this much per loop: far from the last loop's, so even a connection
/// whose addresses came out the same would not look like a retransmission (the golden ratio
/// spreads successive loops over the whole 32-bit space).
const ISN_STEP: u32 = 0x9E37_79B9;

/// RFC 1624 incremental update of checksum `ck` for 16-bit-aligned bytes `old` becoming `new`:
/// HC' = ~(~HC + ~m + m'). It keeps a wrong checksum (offloaded on the mirrored host) as wrong
/// as it was, which is what a faithful replay wants.
fn adjust(ck: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut acc = u64::from(!ck);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        acc += u64::from(!u16::from_be_bytes([o[0], o[1]]))
            + u64::from(u16::from_be_bytes([n[0], n[1]]));
    }
    finish(acc)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Rewrites an Ethernet frame of loop `lap` (> 0) into one of new connections, as tcpreplay's
/// unique-IP mode does: both inner addresses move by `lap` in a 16-bit group
/// (IPv4: 10.99.0.1 becomes 10.100.0.1 in loop 1, IPv6: the second group; both ends move, so every connection keeps its
/// peers apart), and TCP sequence and acknowledgement numbers move by `lap * ISN_STEP` (both
/// directions alike, so acks still match the data). IPv4, TCP and UDP checksums are updated
/// incrementally. False when the frame is not IPv4/IPv6 (after VLAN tags) or is too short; it
/// is then left unchanged.
pub fn shift_frame(frame: &mut [u8], lap: u64) -> bool {
    let mut off = 12;
    let mut ethertype = match be16(frame, off) {
        Some(t) => t,
        None => return false,
    };
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        off += 4;
        ethertype = match be16(frame, off) {
            Some(t) => t,
            None => return false,
        };
    }
    let ip = off + 2;
    // (address bytes, protocol, L4 offset, IPv4 header checksum offset, L4 header present)
    let (addrs, proto, l4, ip_ck, has_l4) = match ethertype {
        0x0800 => {
            let Some(&vihl) = frame.get(ip) else {
                return false;
            };
            let ihl = usize::from(vihl & 0x0f) * 4;
            if frame.len() < ip + 20 || ihl < 20 {
                return false;
            }
            let frag_off = be16(frame, ip + 6).unwrap_or(0) & 0x1fff;
            (
                ip + 12..ip + 20,
                frame[ip + 9],
                ip + ihl,
                Some(ip + 10),
                frag_off == 0,
            )
        }
        // Extension headers are left alone: the L4 header is found only right after the
        // fixed header, and the addresses move either way.
        0x86dd => {
            if frame.len() < ip + 40 {
                return false;
            }
            (ip + 8..ip + 40, frame[ip + 6], ip + 40, None, true)
        }
        _ => return false,
    };
    let step = (lap & 0xffff) as u16;
    let mut old_addrs = [0u8; 32];
    let n = addrs.len();
    old_addrs[..n].copy_from_slice(&frame[addrs.clone()]);
    // Each address is 4 or 16 bytes. IPv4 moves in its first 16 bits (the second octet, with
    // the carry into the first), IPv6 in its second group (the prefix's first group stays).
    let width = n / 2;
    let group = if width == 4 { 0 } else { 2 };
    for a in 0..2 {
        let at = addrs.start + a * width + group;
        let v = be16(frame, at).unwrap_or(0).wrapping_add(step);
        frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    let mut new_addrs = [0u8; 32];
    new_addrs[..n].copy_from_slice(&frame[addrs.clone()]);
    if let Some(ck) = ip_ck {
        let v = adjust(
            be16(frame, ck).unwrap_or(0),
            &old_addrs[..n],
            &new_addrs[..n],
        );
        frame[ck..ck + 2].copy_from_slice(&v.to_be_bytes());
    }
    if !has_l4 {
        return true;
    }
    match proto {
        6 if frame.len() >= l4 + 20 => {
            let delta = ISN_STEP.wrapping_mul(lap as u32);
            let mut old = [0u8; 8];
            old.copy_from_slice(&frame[l4 + 4..l4 + 12]);
            let seq = u32::from_be_bytes([old[0], old[1], old[2], old[3]]).wrapping_add(delta);
            frame[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
            if frame[l4 + 13] & 0x10 != 0 {
                let ack = u32::from_be_bytes([old[4], old[5], old[6], old[7]]).wrapping_add(delta);
                frame[l4 + 8..l4 + 12].copy_from_slice(&ack.to_be_bytes());
            }
            let mut new = [0u8; 8];
            new.copy_from_slice(&frame[l4 + 4..l4 + 12]);
            let ck = be16(frame, l4 + 16).unwrap_or(0);
            let ck = adjust(adjust(ck, &old_addrs[..n], &new_addrs[..n]), &old, &new);
            frame[l4 + 16..l4 + 18].copy_from_slice(&ck.to_be_bytes());
        }
        17 if frame.len() >= l4 + 8 => {
            let ck = be16(frame, l4 + 6).unwrap_or(0);
            // Zero means "no checksum" (IPv4 only) and must stay zero.
            if ck != 0 {
                let v = match adjust(ck, &old_addrs[..n], &new_addrs[..n]) {
                    0 => 0xffff,
                    v => v,
                };
                frame[l4 + 6..l4 + 8].copy_from_slice(&v.to_be_bytes());
            }
        }
        _ => {}
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use vxtap_wire::checksum::{checksum, sum};

    /// Ethernet + IPv4 + TCP (ACK set) + payload, with correct checksums.
    fn tcp4(seq: u32, ack: u32) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let payload = b"GET / HTTP/1.1\r\n\r\n";
        let total = (20 + 20 + payload.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0, 10, 99, 0, 1, 10, 99, 0, 2]);
        let ck = checksum(&ip);
        ip[10..12].copy_from_slice(&ck.to_be_bytes());
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&40000u16.to_be_bytes());
        tcp.extend_from_slice(&80u16.to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let ck = tcp_checksum(&ip, &tcp);
        tcp[16..18].copy_from_slice(&ck.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&tcp);
        f
    }

    fn tcp_checksum(ip: &[u8], tcp: &[u8]) -> u16 {
        let mut pseudo = ip[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        finish(sum(tcp, sum(&pseudo, 0)))
    }

    #[test]
    fn a_loop_moves_addresses_and_sequence_numbers_and_keeps_checksums() {
        let orig = tcp4(1000, 5000);
        for lap in [1u64, 2, 255, 70_000] {
            let mut f = orig.clone();
            assert!(shift_frame(&mut f, lap));
            let (ip, tcp) = (&f[14..34], &f[34..]);
            assert_eq!(checksum(ip), 0, "IPv4 header checksum, lap {lap}");
            assert_eq!(tcp_checksum(ip, tcp), 0, "TCP checksum, lap {lap}");
            let step = (lap & 0xffff) as u16;
            assert_eq!(
                u16::from_be_bytes([ip[12], ip[13]]),
                0x0a63u16.wrapping_add(step)
            );
            assert_eq!(
                u16::from_be_bytes([ip[16], ip[17]]),
                0x0a63u16.wrapping_add(step)
            );
            assert_eq!((ip[14], ip[15], ip[18], ip[19]), (0, 1, 0, 2));
            let d = ISN_STEP.wrapping_mul(lap as u32);
            let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
            let ack = u32::from_be_bytes(tcp[8..12].try_into().unwrap());
            assert_eq!(
                (seq, ack),
                (1000u32.wrapping_add(d), 5000u32.wrapping_add(d))
            );
            // Ports and payload are untouched.
            assert_eq!(tcp[..4], orig[34..38]);
            assert_eq!(tcp[20..], orig[54..]);
        }
        // Not IP: left alone and said so.
        let mut arp = orig.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let before = arp.clone();
        assert!(!shift_frame(&mut arp, 1));
        assert_eq!(arp, before);
        assert!(!shift_frame(&mut [0u8; 10], 1));
    }
}
