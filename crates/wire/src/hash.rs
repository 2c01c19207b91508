//! Every hash of a connection's 5-tuple, in one place, because each one is a contract with
//! something outside the function and none may change by accident (the pinned values in the
//! tests below say when one does).
//!
//! Why there are several and not one:
//! - [`symmetric_hash`]: FNV-1a over the ordered endpoints. Stable across versions and
//!   platforms; the basis of the encapsulated outer source port.
//! - [`underlay_hash`]: [`symmetric_hash`] plus the IP protocol, for any inner packet (UDP,
//!   SCTP, ...): `encap` maps it to the outer UDP source port, which the underlay's ECMP sees, so
//!   both directions of a connection take one path.
//! - [`shard_hash`]: a multiply instead of a byte loop, for picking a worker for every segment of
//!   the input (the byte loop cost a twentieth of a worker's time). Direction-independent.
//! - [`flow_hash`] / [`flow_hash_bits`]: seeded, for sampling a fraction of connections; a
//!   fleet-wide contract (instances of different versions must keep the same connections), so
//!   fixed here and not `std::hash`/`RandomState`, whose output may change between Rust releases.
//! - [`FxHasher`]: the flow table's bucket hash (fed by `FlowKey`'s `Hash` in `vxtap-flow`, whose
//!   fields it knows) and the stable connection id: fast, deterministic, with a final avalanche
//!   because the table uses both the low and the high bits.
//!
//! [`FxHasher`] is FxHash-style (rotate, xor, multiply per word) with a final avalanche: the table's bucket index
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

/// Direction-independent hash of a TCP 5-tuple (FNV-1a over the ordered endpoints).
pub fn symmetric_hash(a_ip: IpAddr, a_port: u16, b_ip: IpAddr, b_port: u16) -> u64 {
    let (lo, hi) = if (a_ip, a_port) <= (b_ip, b_port) {
        ((a_ip, a_port), (b_ip, b_port))
    } else {
        ((b_ip, b_port), (a_ip, a_port))
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (ip, port) in [lo, hi] {
        match ip {
            IpAddr::V4(v4) => eat(&v4.octets()),
            IpAddr::V6(v6) => eat(&v6.octets()),
        }
        eat(&port.to_be_bytes());
    }
    eat(&[6]);
    h
}

/// [`symmetric_hash`] with the IP protocol mixed in (ports 0 for protocols without them), so
/// a UDP and a TCP flow between the same ports differ.
pub fn underlay_hash(a_ip: IpAddr, a_port: u16, b_ip: IpAddr, b_port: u16, proto: u8) -> u64 {
    symmetric_hash(a_ip, a_port, b_ip, b_port)
        ^ u64::from(proto).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A cheap direction-independent hash of the 5-tuple for picking a worker shard. Replay
/// workers compute it for every segment of the input, so it is a multiply, not the byte
/// loop of [`symmetric_hash`] (~25 ns, a twentieth of a worker's time per segment).
#[inline]
pub fn shard_hash(a_ip: IpAddr, a_port: u16, b_ip: IpAddr, b_port: u16) -> u64 {
    let a = endpoint_key(a_ip, a_port);
    let b = endpoint_key(b_ip, b_port);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let h = (lo ^ hi.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 32)
}

/// An endpoint folded into 64 bits (exact for IPv4).
#[inline(always)]
fn endpoint_key(ip: IpAddr, port: u16) -> u64 {
    let ip = match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let x = u128::from(v6);
            (x as u64) ^ ((x >> 64) as u64).rotate_left(17)
        }
    };
    (ip << 16) ^ u64::from(port)
}

/// Folded 64x64→128 multiply (wyhash's mixer): fast and well distributed.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

/// The seeded, direction-independent flow hash used for sampling.
///
/// This function is a fleet-wide contract: instances running different versions must compute
/// the same value, so it is fixed here (not `RandomState`, not `std::hash`, which may change
/// between Rust releases) and must not change without a note in the changelog.
pub fn flow_hash(seed: u64, a_ip: IpAddr, a_port: u16, b_ip: IpAddr, b_port: u16) -> u64 {
    flow_hash_bits(seed, ip_bits(a_ip), a_port, ip_bits(b_ip), b_port)
}

/// An address as 128 bits, IPv4 mapped into `::ffff:0:0/96` (the form [`flow_hash_bits`]
/// takes, so a caller that already has it for CIDR matching does not convert twice).
#[inline]
pub fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// [`flow_hash`] over addresses already in [`ip_bits`] form (the packet filter's hot path).
#[inline]
pub fn flow_hash_bits(seed: u64, a: u128, a_port: u16, b: u128, b_port: u16) -> u64 {
    const P0: u64 = 0xa076_1d64_78bd_642f;
    const P1: u64 = 0xe703_7ed1_a0b4_28db;
    const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
    const P3: u64 = 0x5899_65cc_7537_4cc3;
    // Order the endpoints so both directions hash the same tuple.
    let (lo, lo_port, hi, hi_port) = if (a, a_port) <= (b, b_port) {
        (a, a_port, b, b_port)
    } else {
        (b, b_port, a, a_port)
    };
    let ports = (u64::from(lo_port) << 16) | u64::from(hi_port);
    let mut h = fold_mul(seed ^ P0 ^ (lo >> 64) as u64, P1 ^ lo as u64);
    h = fold_mul(h ^ P2 ^ (hi >> 64) as u64, P3 ^ hi as u64);
    h = fold_mul(h ^ P1 ^ ports, P2);
    // A final avalanche so the high bits, which the threshold compares, depend on all input.
    fold_mul(h ^ P3, P0)
}

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

    #[test]
    fn flow_hash_is_fixed() {
        // A fleet-wide contract: changing these values changes which connections every
        // instance keeps, so a change here must be deliberate.
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let h = flow_hash(1, a, 1234, b, 80);
        assert_eq!(h, flow_hash(1, b, 80, a, 1234));
        assert_ne!(h, flow_hash(2, a, 1234, b, 80));
        assert_ne!(h, flow_hash(1, a, 1235, b, 80));
        assert_eq!(h, FLOW_HASH_GOLDEN, "flow_hash changed: {h:#x}");
    }

    const FLOW_HASH_GOLDEN: u64 = 0x94da_ee9a_f647_be70;
}
