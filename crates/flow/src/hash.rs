//! A small, fast, deterministic hasher for the flow table and for stable connection ids.
//!
//! FxHash-style (rotate, xor, multiply per word) with a final avalanche: the table's bucket index
//! comes from the low bits and hashbrown's tag from the top 7, so the mix must reach both. No
//! random state: ids must be identical across runs and machines.

use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// FxHash-style hasher with a splitmix finaliser; deterministic across runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct FxHasher {
    h: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.h = (self.h.rotate_left(5) ^ w).wrapping_mul(K);
    }

    /// Feeds an IP address in a fixed, family-tagged form (independent of std's `Hash` layout).
    #[inline]
    pub fn write_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.add(u32::from(v4) as u64 | (4 << 32)),
            IpAddr::V6(v6) => {
                let b = u128::from(v6);
                self.add(b as u64);
                self.add((b >> 64) as u64 ^ 6);
            }
        }
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let mut z = self.h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// `BuildHasher` for maps keyed by flows.
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_spread() {
        let mut a = FxHasher::default();
        a.write_u64(1);
        let mut b = FxHasher::default();
        b.write_u64(1);
        assert_eq!(a.finish(), b.finish());
        let mut c = FxHasher::default();
        c.write_u64(2);
        assert_ne!(a.finish(), c.finish());
        // Top 7 bits must vary with small inputs (hashbrown tags).
        let tops: std::collections::HashSet<u64> = (0..64u64)
            .map(|i| {
                let mut h = FxHasher::default();
                h.write_u64(i);
                h.finish() >> 57
            })
            .collect();
        assert!(tops.len() > 20);
    }
}
