//! Bounded reassembly of outer IPv4 fragments (a VXLAN datagram larger than the path MTU
//! between the mirror source and the target arrives in pieces).
//!
//! Memory is bounded by `max_datagrams` slots and a byte budget; time by `timeout_ns` on packet
//! timestamps. Buffers are allocated when a fragment first needs them and then reused, so the
//! normal (unfragmented) path never allocates.

use crate::labeled_enum;
use std::net::Ipv4Addr;

labeled_enum! {
    /// Why reassembly gave up on a datagram or a fragment.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum FragFailure {
        /// The datagram did not complete within the timeout.
        Timeout => "timeout",
        /// A fragment overlapped another with different extent (a classic evasion).
        Overlap => "overlap",
        /// The datagram would exceed the IPv4 maximum or the per-datagram limit.
        TooBig => "too_big",
        /// No free slot or the byte budget is used up.
        TableFull => "table_full",
        /// A fragment was cut by the capture, so the datagram can never be whole.
        Truncated => "truncated",
        /// Inconsistent lengths (non-final fragment not a multiple of 8, two different ends).
        Malformed => "malformed",
        /// More fragments for one datagram than the limit.
        TooManyFragments => "too_many_fragments",
    }
}

/// Limits of the fragment table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragConfig {
    /// Datagrams in flight at once; 0 disables reassembly (fragments are rejected).
    pub max_datagrams: usize,
    /// Bytes buffered across all in-flight datagrams.
    pub max_bytes: usize,
    /// A datagram older than this (by packet timestamp) is dropped.
    pub timeout_ns: u64,
    /// Fragments accepted per datagram.
    pub max_fragments: usize,
}

impl Default for FragConfig {
    fn default() -> Self {
        Self {
            max_datagrams: 64,
            max_bytes: 1 << 20,
            // Linux's ipfrag_time.
            timeout_ns: 30_000_000_000,
            max_fragments: 64,
        }
    }
}

/// Reassembly counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FragStats {
    /// Fragments stored while waiting for the rest.
    pub held: u64,
    /// Datagrams completed and decoded.
    pub reassembled: u64,
    /// Datagrams or fragments given up, by reason (indexed by `FragFailure::index`).
    pub failed: [u64; FragFailure::COUNT],
}

impl FragStats {
    /// Adds another worker's counters.
    pub fn merge(&mut self, other: &FragStats) {
        self.held = self.held.wrapping_add(other.held);
        self.reassembled = self.reassembled.wrapping_add(other.reassembled);
        for (a, b) in self.failed.iter_mut().zip(other.failed.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    fn fail(&mut self, why: FragFailure) {
        if let Some(c) = self.failed.get_mut(why.index()) {
            *c += 1;
        }
    }
}

/// Identity of a datagram per RFC 791.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FragKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ident: u16,
    pub proto: u8,
}

/// One fragment as seen on the wire.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fragment<'a> {
    pub key: FragKey,
    pub offset: usize,
    pub more: bool,
    pub data: &'a [u8],
    /// The capture cut this fragment's payload.
    pub truncated: bool,
}

pub(crate) enum FragOutcome<'a> {
    Held,
    Complete(&'a [u8]),
    Failed,
}

#[derive(Debug)]
struct Slot {
    used: bool,
    key: FragKey,
    first_ts: u64,
    buf: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    total: Option<usize>,
}

/// Largest IPv4 payload: 65535 minus a minimal header.
const MAX_PAYLOAD: usize = 65_535 - 20;

#[derive(Debug)]
pub(crate) struct FragTable {
    cfg: FragConfig,
    slots: Vec<Slot>,
    bytes: usize,
}

impl FragTable {
    pub fn new(cfg: FragConfig) -> Self {
        Self {
            cfg,
            slots: Vec::new(),
            bytes: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.max_datagrams > 0
    }

    fn free(bytes: &mut usize, slot: &mut Slot) {
        *bytes = bytes.saturating_sub(slot.buf.len());
        slot.used = false;
        slot.buf.clear();
        slot.ranges.clear();
        slot.total = None;
    }

    /// Drops datagrams older than the timeout.
    fn expire(&mut self, ts_ns: u64, stats: &mut FragStats) {
        let timeout = self.cfg.timeout_ns;
        for slot in self.slots.iter_mut().filter(|s| s.used) {
            if ts_ns.saturating_sub(slot.first_ts) > timeout {
                Self::free(&mut self.bytes, slot);
                stats.fail(FragFailure::Timeout);
            }
        }
    }

    pub fn insert(
        &mut self,
        ts_ns: u64,
        f: Fragment<'_>,
        stats: &mut FragStats,
    ) -> FragOutcome<'_> {
        self.expire(ts_ns, stats);
        let existing = self.slots.iter().position(|s| s.used && s.key == f.key);
        let end = f.offset.saturating_add(f.data.len());
        let reason = if f.truncated {
            Some(FragFailure::Truncated)
        } else if f.more && f.data.len() & 7 != 0 {
            Some(FragFailure::Malformed)
        } else if end > MAX_PAYLOAD {
            Some(FragFailure::TooBig)
        } else {
            None
        };
        if let Some(why) = reason {
            if let Some(slot) = existing.and_then(|i| self.slots.get_mut(i)) {
                Self::free(&mut self.bytes, slot);
            }
            stats.fail(why);
            return FragOutcome::Failed;
        }
        let idx = match existing {
            Some(i) => i,
            None => {
                let free = self.slots.iter().position(|s| !s.used);
                let i = match free {
                    Some(i) => i,
                    None if self.slots.len() < self.cfg.max_datagrams => {
                        self.slots.push(Slot {
                            used: false,
                            key: f.key,
                            first_ts: ts_ns,
                            buf: Vec::new(),
                            ranges: Vec::new(),
                            total: None,
                        });
                        self.slots.len() - 1
                    }
                    None => {
                        stats.fail(FragFailure::TableFull);
                        return FragOutcome::Failed;
                    }
                };
                if let Some(s) = self.slots.get_mut(i) {
                    s.used = true;
                    s.key = f.key;
                    s.first_ts = ts_ns;
                }
                i
            }
        };
        let Some(slot) = self.slots.get_mut(idx) else {
            return FragOutcome::Failed;
        };
        let mut why = None;
        for &(s, e) in &slot.ranges {
            if f.offset < e && s < end {
                if (s, e) != (f.offset, end) || slot.buf.get(s..e) != Some(f.data) {
                    why = Some(FragFailure::Overlap);
                    break;
                }
                // An identical retransmission adds nothing.
                stats.held += 1;
                return FragOutcome::Held;
            }
        }
        if why.is_none() {
            let max_end = slot.ranges.iter().map(|r| r.1).max().unwrap_or(0);
            why = match (f.more, slot.total) {
                (false, Some(t)) if t != end => Some(FragFailure::Malformed),
                (false, None) if max_end > end => Some(FragFailure::Malformed),
                (true, Some(t)) if end > t => Some(FragFailure::Malformed),
                _ if slot.ranges.len() >= self.cfg.max_fragments => {
                    Some(FragFailure::TooManyFragments)
                }
                _ => None,
            };
        }
        let growth = end.saturating_sub(slot.buf.len());
        if why.is_none() && self.bytes.saturating_add(growth) > self.cfg.max_bytes {
            why = Some(FragFailure::TableFull);
        }
        if let Some(why) = why {
            Self::free(&mut self.bytes, slot);
            stats.fail(why);
            return FragOutcome::Failed;
        }
        if growth > 0 {
            slot.buf.resize(end, 0);
            self.bytes += growth;
        }
        if let Some(dst) = slot.buf.get_mut(f.offset..end) {
            dst.copy_from_slice(f.data);
        }
        slot.ranges.push((f.offset, end));
        if !f.more {
            slot.total = Some(end);
        }
        let have: usize = slot.ranges.iter().map(|(s, e)| e - s).sum();
        match slot.total {
            // Ranges never overlap, so covering `total` bytes means the datagram is whole.
            Some(total) if have == total => {
                self.bytes = self.bytes.saturating_sub(slot.buf.len());
                slot.used = false;
                slot.ranges.clear();
                slot.total = None;
                stats.reassembled += 1;
                FragOutcome::Complete(slot.buf.get(..total).unwrap_or(&[]))
            }
            _ => {
                stats.held += 1;
                FragOutcome::Held
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ident: u16) -> FragKey {
        FragKey {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            ident,
            proto: 17,
        }
    }

    fn frag(ident: u16, offset: usize, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment {
            key: key(ident),
            offset,
            more,
            data,
            truncated: false,
        }
    }

    fn complete(o: FragOutcome<'_>) -> Option<Vec<u8>> {
        match o {
            FragOutcome::Complete(b) => Some(b.to_vec()),
            _ => None,
        }
    }

    #[test]
    fn out_of_order_and_duplicate() {
        let mut t = FragTable::new(FragConfig::default());
        let mut st = FragStats::default();
        let data: Vec<u8> = (0..40u8).collect();
        assert!(matches!(
            t.insert(0, frag(1, 32, false, &data[32..]), &mut st),
            FragOutcome::Held
        ));
        assert!(matches!(
            t.insert(1, frag(1, 0, true, &data[..16]), &mut st),
            FragOutcome::Held
        ));
        assert!(matches!(
            t.insert(1, frag(1, 0, true, &data[..16]), &mut st),
            FragOutcome::Held
        ));
        let got = complete(t.insert(2, frag(1, 16, true, &data[16..32]), &mut st));
        assert_eq!(got.as_deref(), Some(&data[..]));
        assert_eq!((st.held, st.reassembled), (3, 1));
        assert_eq!(t.bytes, 0);
    }

    #[test]
    fn failures_counted() {
        let cfg = FragConfig {
            max_datagrams: 1,
            timeout_ns: 10,
            ..FragConfig::default()
        };
        let mut t = FragTable::new(cfg);
        let mut st = FragStats::default();
        let d = [0u8; 16];
        assert!(matches!(
            t.insert(0, frag(1, 0, true, &d), &mut st),
            FragOutcome::Held
        ));
        assert!(matches!(
            t.insert(1, frag(2, 0, true, &d), &mut st),
            FragOutcome::Failed
        ));
        assert_eq!(st.failed[FragFailure::TableFull.index()], 1);
        assert!(matches!(
            t.insert(2, frag(1, 8, true, &d), &mut st),
            FragOutcome::Failed
        ));
        assert_eq!(st.failed[FragFailure::Overlap.index()], 1);
        assert!(matches!(
            t.insert(3, frag(3, 0, true, &d), &mut st),
            FragOutcome::Held
        ));
        assert!(matches!(
            t.insert(100, frag(4, 0, true, &d), &mut st),
            FragOutcome::Held
        ));
        assert_eq!(st.failed[FragFailure::Timeout.index()], 1);
        assert!(matches!(
            t.insert(100, frag(5, 0, true, &d[..5]), &mut st),
            FragOutcome::Failed
        ));
        assert_eq!(st.failed[FragFailure::Malformed.index()], 1);
        assert!(matches!(
            t.insert(100, frag(4, 65_528, false, &d), &mut st),
            FragOutcome::Failed
        ));
        assert_eq!(st.failed[FragFailure::TooBig.index()], 1);
        let mut cut = frag(6, 0, true, &d);
        cut.truncated = true;
        assert!(matches!(t.insert(100, cut, &mut st), FragOutcome::Failed));
        assert_eq!(st.failed[FragFailure::Truncated.index()], 1);
    }
}
