//! One direction of a connection: where its stream stands and what is held out of order.
//!
//! Sequence numbers are turned into 64-bit stream offsets once, at the edge (serial arithmetic
//! relative to the next expected byte), so wraparound past 2^32 never reaches the buffer logic.
//!
//! The out-of-order buffer is a sorted `Vec` of non-overlapping chunks, each an exact-size copy
//! of one segment's new bytes. Why not a ring: mirrored reordering (NLB targets) typically holds
//! back one to a few segments at a time, so the vec stays tiny and cache-friendly; a ring would
//! need its capacity (up to the per-direction cap) allocated per hole or a growth scheme, and
//! would lose the per-segment capture timestamps that delivery reports. Hostile patterns
//! (thousands of 1-byte chunks) are bounded because every chunk is charged `CHUNK_OVERHEAD`
//! against the caps.

/// Bytes charged per buffered chunk on top of its payload: its slot in the chunk vec, counted
/// twice because a vec's capacity runs up to twice its length, plus the payload allocation's
/// header and rounding (glibc: 8 bytes of header, 16-byte granules).
pub(crate) const CHUNK_OVERHEAD: usize = 2 * std::mem::size_of::<Chunk>() + 24;

/// A copied run of out-of-order bytes, followed by bytes the mirror announced but cut.
pub(crate) struct Chunk {
    /// Stream offset of the first byte.
    pub off: u64,
    /// Capture time of the segment that carried these bytes.
    pub ts_ns: u64,
    /// The captured bytes.
    pub data: Box<[u8]>,
    /// Bytes right after `data` that the frame announced but the capture cut.
    pub missing: u32,
    /// The segment's ack as a peer stream offset ([`NO_ACK`] when unusable), reported with the
    /// data when it is delivered.
    pub ack: u64,
}

impl Chunk {
    pub fn end(&self) -> u64 {
        self.off + self.data.len() as u64 + self.missing as u64
    }
    pub fn cost(&self) -> usize {
        self.data.len() + CHUNK_OVERHEAD
    }
}

/// What an insertion into the buffer did.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inserted {
    /// Bytes (captured or cut) that were new.
    pub new_bytes: u64,
    /// Captured bytes copied into new chunks.
    pub copied: u64,
    /// Bytes already present.
    pub dup_bytes: u64,
    /// Overlapping captured bytes that differed from what was there first.
    pub conflict_bytes: u64,
    /// Cost added to the buffer (see `Chunk::cost`).
    pub cost: usize,
}

const STARTED: u8 = 1;
const SYN_SEEN: u8 = 2;
const FIN_SEEN: u8 = 4;
const FIN_DONE: u8 = 8;
/// The consumer holds `ack_max` as the ack of this direction's data (see `StreamHandler::on_ack`).
const ACK_HELD: u8 = 16;

/// A segment's ack that cannot be used as evidence.
pub(crate) const NO_ACK: u64 = u64::MAX;

/// Reassembly state of one direction. `repr(C)` with the fields every packet touches in the
/// first cache line.
#[derive(Default)]
#[repr(C)]
pub(crate) struct Half {
    /// Sequence number of stream offset 0.
    pub base_seq: u32,
    /// Initial sequence number, when the SYN was seen.
    pub isn: u32,
    flags: u8,
    /// Offset of the next byte to deliver (everything before it was delivered or gapped).
    pub next_off: u64,
    /// Highest offset the peer acknowledged beyond `next_off` (meaningful while greater).
    pub acked_off: u64,
    /// Out-of-order chunks, sorted, non-overlapping, all beyond `next_off`.
    pub chunks: Vec<Chunk>,
    /// Offset of the FIN, when seen.
    pub fin_off: u64,
    /// Capture time since which a hole has been open (valid while `has_hole()`).
    pub hole_since_ns: u64,
    /// Sum of `cost()` over `chunks`.
    pub buffered: usize,
    /// Since when the stream has been stuck at `acked_at` with the peer acking beyond it.
    pub acked_since_ns: u64,
    /// The `next_off` that `acked_since_ns` refers to: progress restarts the clock.
    pub acked_at: u64,
    /// `acked_off` when `acked_since_ns` was set: what the running grace period applies to.
    pub acked_base: u64,
    /// Highest ack (peer stream offset) reported to the consumer for this direction's data.
    pub ack_max: u64,
}

impl Half {
    pub fn started(&self) -> bool {
        self.flags & STARTED != 0
    }
    pub fn syn_seen(&self) -> bool {
        self.flags & SYN_SEEN != 0
    }
    pub fn fin_seen(&self) -> bool {
        self.flags & FIN_SEEN != 0
    }
    pub fn fin_done(&self) -> bool {
        self.flags & FIN_DONE != 0
    }
    pub fn set_fin_done(&mut self) {
        self.flags |= FIN_DONE;
    }

    /// What to report before delivering bytes that carried `ack` (a peer offset or
    /// [`NO_ACK`]): `None` when the consumer already holds the right evidence, else the new one.
    /// An ack behind one already reported is not evidence (a sender's acks only grow along its
    /// stream; a retransmission carrying a newer ack than the bytes after it would otherwise
    /// date those bytes too late).
    #[inline]
    pub fn ack_change(&mut self, ack: u64) -> Option<Option<u64>> {
        let held = self.flags & ACK_HELD != 0;
        if ack != NO_ACK && ack >= self.ack_max {
            if held && ack == self.ack_max {
                return None;
            }
            self.ack_max = ack;
            self.flags |= ACK_HELD;
            Some(Some(ack))
        } else if held {
            self.flags &= !ACK_HELD;
            Some(None)
        } else {
            None
        }
    }

    /// Starts the stream so that `seq` is offset 0.
    pub fn start(&mut self, seq: u32) {
        self.base_seq = seq;
        self.next_off = 0;
        self.flags |= STARTED;
    }

    /// Records the SYN's ISN.
    pub fn set_syn(&mut self, isn: u32) {
        self.isn = isn;
        self.flags |= SYN_SEEN;
    }

    /// Records the first FIN seen; later FINs (retransmissions) do not move it.
    pub fn set_fin(&mut self, off: u64) {
        if !self.fin_seen() {
            self.fin_off = off;
            self.flags |= FIN_SEEN;
        }
    }

    /// Sequence number of the next byte to deliver.
    pub fn next_seq(&self) -> u32 {
        self.base_seq.wrapping_add(self.next_off as u32)
    }

    /// Signed distance of `seq` from the next byte to deliver (serial arithmetic, RFC 1982).
    pub fn rel(&self, seq: u32) -> i64 {
        seq.wrapping_sub(self.next_seq()) as i32 as i64
    }

    /// Something is waiting for a hole to close: buffered chunks, a FIN beyond a hole, or the
    /// peer's ack of bytes not seen yet.
    pub fn pending(&self) -> bool {
        self.has_hole() || self.ack_limit() > self.next_off
    }

    /// How far the peer's acks allow skipping. With nothing seen beyond the hole, an ack exactly
    /// one past the stream is most likely the ack of a FIN we never saw (a FIN occupies one
    /// sequence number), so that single byte is held back until something beyond it shows up:
    /// a lost FIN must not become a phantom 1-byte gap. Longer tail holes are lost data and are
    /// skipped whole, so a response whose last segment was lost completes at once.
    pub fn ack_limit(&self) -> u64 {
        self.ack_limit_at(self.acked_off)
    }

    /// [`Half::ack_limit`] had the peer acknowledged only up to `acked`.
    pub fn ack_limit_at(&self, acked: u64) -> u64 {
        if acked <= self.next_off {
            return self.next_off;
        }
        if self.fin_seen() {
            acked.min(self.fin_off).max(self.next_off)
        } else if self.chunks.is_empty() && acked - self.next_off == 1 {
            self.next_off
        } else {
            acked
        }
    }

    /// Something seen lies beyond a hole: buffered chunks, or a FIN.
    pub fn has_hole(&self) -> bool {
        !self.chunks.is_empty()
            || (self.fin_seen() && !self.fin_done() && self.next_off < self.fin_off)
    }

    /// Where the first hole ends: the first chunk, else the FIN, else `u64::MAX`.
    pub fn hole_end(&self) -> u64 {
        match self.chunks.first() {
            Some(c) => c.off,
            None if self.fin_seen() && !self.fin_done() => self.fin_off,
            None => u64::MAX,
        }
    }

    /// The end of everything known (buffered chunks, FIN) beyond `next_off`.
    pub fn known_end(&self) -> u64 {
        let mut e = self.next_off;
        if let Some(c) = self.chunks.last() {
            e = e.max(c.end());
        }
        if self.fin_seen() && !self.fin_done() {
            e = e.max(self.fin_off);
        }
        e.max(self.ack_limit())
    }

    /// Oldest capture time among buffered chunks (the age of the current hole).
    pub fn oldest_chunk_ts(&self) -> Option<u64> {
        self.chunks.iter().map(|c| c.ts_ns).min()
    }

    /// Copies the not-yet-held parts of `[off, off + total)` into the buffer (first data wins).
    /// `captured` holds the first bytes of that range; the rest was cut by the capture.
    pub fn insert(
        &mut self,
        off: u64,
        ts_ns: u64,
        ack: u64,
        captured: &[u8],
        total: u64,
    ) -> Inserted {
        let mut out = Inserted::default();
        let end = off + total;
        let cap_end = off + captured.len() as u64;
        let mut pos = off.max(self.next_off);
        out.dup_bytes += pos - off;
        let mut i = self.chunks.partition_point(|c| c.end() <= pos);
        while pos < end {
            match self.chunks.get(i) {
                Some(c) if c.off <= pos => {
                    let ov_end = end.min(c.end());
                    // Compare only where both copies carry captured bytes.
                    let c_data_end = c.off + c.data.len() as u64;
                    let cmp_end = ov_end.min(c_data_end).min(cap_end);
                    if cmp_end > pos {
                        let a = &c.data[(pos - c.off) as usize..(cmp_end - c.off) as usize];
                        let b = &captured[(pos - off) as usize..(cmp_end - off) as usize];
                        if a != b {
                            out.conflict_bytes +=
                                a.iter().zip(b).filter(|(x, y)| x != y).count() as u64;
                        }
                    }
                    out.dup_bytes += ov_end - pos;
                    pos = ov_end;
                    i += 1;
                }
                next => {
                    let piece_end = next.map_or(end, |c| c.off.min(end));
                    let d0 = pos.min(cap_end);
                    let d1 = piece_end.min(cap_end);
                    let data: Box<[u8]> = captured[(d0 - off) as usize..(d1 - off) as usize].into();
                    let missing = (piece_end - d1.max(pos)) as u32;
                    let chunk = Chunk {
                        off: pos,
                        ts_ns,
                        data,
                        missing,
                        ack,
                    };
                    out.new_bytes += piece_end - pos;
                    out.copied += chunk.data.len() as u64;
                    out.cost += chunk.cost();
                    self.buffered += chunk.cost();
                    self.chunks.insert(i, chunk);
                    i += 1;
                    pos = piece_end;
                }
            }
        }
        out
    }

    /// Frees every chunk; returns the cost released.
    pub fn clear(&mut self) -> usize {
        let freed = self.buffered;
        self.chunks = Vec::new();
        self.buffered = 0;
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(h: &Half) -> Vec<(u64, Vec<u8>, u32)> {
        h.chunks
            .iter()
            .map(|c| (c.off, c.data.to_vec(), c.missing))
            .collect()
    }

    #[test]
    fn insert_first_wins_and_fills_around() {
        let mut h = Half::default();
        h.start(0);
        let r = h.insert(10, 1, NO_ACK, b"klmno", 5);
        assert_eq!(r.new_bytes, 5);
        let r = h.insert(5, 2, NO_ACK, b"fghijXXXXXpqr", 13);
        assert_eq!(r.new_bytes, 8);
        assert_eq!(r.dup_bytes, 5);
        assert_eq!(r.conflict_bytes, 5);
        assert_eq!(
            ranges(&h),
            vec![
                (5, b"fghij".to_vec(), 0),
                (10, b"klmno".to_vec(), 0),
                (15, b"pqr".to_vec(), 0)
            ]
        );
        assert_eq!(h.buffered, 13 + 3 * CHUNK_OVERHEAD);
    }

    #[test]
    fn insert_truncated_keeps_missing_tail() {
        let mut h = Half::default();
        h.start(0);
        h.insert(100, 1, NO_ACK, b"ab", 10);
        assert_eq!(ranges(&h), vec![(100, b"ab".to_vec(), 8)]);
        // A later copy of the cut range is a duplicate: the first version wins.
        let r = h.insert(102, 2, NO_ACK, b"cdefgh", 6);
        assert_eq!(r.new_bytes, 0);
        assert_eq!(r.dup_bytes, 6);
        // A piece starting inside a cut region of the new segment.
        let r = h.insert(108, 3, NO_ACK, b"", 6);
        assert_eq!(r.new_bytes, 4);
        assert_eq!(h.chunks[1].off, 110);
        assert_eq!(h.chunks[1].missing, 4);
    }

    #[test]
    fn serial_distance_wraps() {
        let mut h = Half::default();
        h.start(u32::MAX - 1);
        assert_eq!(h.rel(u32::MAX - 1), 0);
        assert_eq!(h.rel(3), 5);
        h.next_off = 10;
        assert_eq!(h.next_seq(), 8);
        assert_eq!(h.rel(u32::MAX), -9);
    }
}
