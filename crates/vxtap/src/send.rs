//! `vxtap send`: a load generator that plays a capture to a listener as VXLAN datagrams.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use vxtap_capture::{CaptureReader, UdpSender};
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
    /// Wall time.
    pub elapsed: Duration,
}

/// How far ahead of schedule a sender may run before it sleeps.
const PACE_SLACK: Duration = Duration::from_millis(1);

/// Bytes of the outer Ethernet + IPv4 + UDP headers `wrap_vxlan` writes for an IPv4 outer.
const OUTER_V4: usize = 14 + 20 + 8;

/// Sends `file` to `sender` `loops` times. VXLAN datagrams in the capture are sent as they are
/// (their UDP payload); any other frame is wrapped as AWS mirroring would, with `vni`.
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
        let _ = lap;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
