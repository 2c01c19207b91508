//! The flow key: a connection's endpoints in a direction-independent order (plus, in
//! `Session` mode, the tunnel, VNI and mirror source), as plain words so lookups compare and
//! hash integers. The table files connections under `FlowKey::hash64`.

use crate::config::FlowKeyMode;
use crate::hash::FxHasher;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use vxtap_wire::{Segment, TunnelKind};

/// An address as two words: IPv4 mapped into IPv6 (`::ffff:a.b.c.d`), so keys compare and hash
/// as plain integers (std's `IpAddr` ordering and hashing go through the enum, slower).
pub(super) fn ip_words(ip: IpAddr) -> [u64; 2] {
    let v = match ip {
        IpAddr::V4(v4) => 0xffff_0000_0000u128 | u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    };
    [(v >> 64) as u64, v as u64]
}

/// Direction-independent flow key: the endpoint that sorts lower comes first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct FlowKey {
    pub(super) lo_ip: [u64; 2],
    pub(super) hi_ip: [u64; 2],
    /// Outer source in `Session` mode (zero otherwise).
    pub(super) mirror: [u64; 2],
    pub(super) lo_port: u16,
    pub(super) hi_port: u16,
    /// In `Session` mode (zero otherwise): bit 40 set, the tunnel kind in bits 32-39 and the
    /// VNI-equivalent below, so a 32-bit GRE key cannot collide with another tunnel's id.
    pub(super) vni: u64,
}

impl Hash for FlowKey {
    fn hash<S: Hasher>(&self, state: &mut S) {
        // Hand-written: a few words, no enum or slice encoding on the hot path.
        state.write_u64(self.lo_ip[1] ^ (self.lo_port as u64) << 48);
        state.write_u64(self.hi_ip[1] ^ (self.hi_port as u64) << 48);
        if self.lo_ip[0] != 0xffff || self.hi_ip[0] != 0xffff {
            state.write_u64(self.lo_ip[0] ^ self.hi_ip[0].rotate_left(17));
        }
        if self.vni != 0 {
            state.write_u64(self.vni ^ self.mirror[0] ^ self.mirror[1].rotate_left(23));
        }
    }
}

impl FlowKey {
    pub(super) fn build(
        a: (IpAddr, u16),
        b: (IpAddr, u16),
        vni: Option<u32>,
        tunnel: TunnelKind,
        mirror: Option<IpAddr>,
        mode: FlowKeyMode,
    ) -> (FlowKey, bool) {
        let (aw, bw) = ((ip_words(a.0), a.1), (ip_words(b.0), b.1));
        let (vni, mirror) = match mode {
            FlowKeyMode::FiveTuple => (0, [0, 0]),
            FlowKeyMode::Session => (
                1 << 40 | (tunnel.index() as u64) << 32 | u64::from(vni.unwrap_or(0)),
                mirror.map_or([0, 0], ip_words),
            ),
        };
        let a_is_lo = aw <= bw;
        let (lo, hi) = if a_is_lo { (aw, bw) } else { (bw, aw) };
        (
            FlowKey {
                lo_ip: lo.0,
                hi_ip: hi.0,
                mirror,
                lo_port: lo.1,
                hi_port: hi.1,
                vni,
            },
            a_is_lo,
        )
    }

    pub(super) fn hash64(&self) -> u64 {
        let mut h = FxHasher::default();
        self.hash(&mut h);
        h.finish()
    }

    /// The key of `seg` and whether its source is the `lo` endpoint.
    pub(super) fn of(seg: &Segment<'_>, mode: FlowKeyMode) -> (FlowKey, bool) {
        FlowKey::build(
            (seg.src_ip, seg.src_port),
            (seg.dst_ip, seg.dst_port),
            seg.vni,
            seg.tunnel,
            seg.mirror_source,
            mode,
        )
    }
}

#[cfg(test)]
mod hash_pins {
    use super::*;

    /// The flow table's bucket hash and the stable connection id must not change by accident
    /// (ids appear in the output): pinned before the hashes moved into one module.
    #[test]
    fn key_hash_is_pinned() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let (k4, _) = FlowKey::build(
            (a, 40000),
            ("10.0.0.2".parse().unwrap(), 80),
            None,
            TunnelKind::None,
            None,
            FlowKeyMode::FiveTuple,
        );
        let (k6, _) = FlowKey::build(
            (b, 443),
            ("2001:db8::1".parse().unwrap(), 51000),
            Some(7),
            TunnelKind::Vxlan,
            Some(a),
            FlowKeyMode::Session,
        );
        let (h4, h6) = (k4.hash64(), k6.hash64());
        assert_eq!((h4, h6), (PIN_KEY_V4, PIN_KEY_V6), "{h4:#x} {h6:#x}");
    }

    const PIN_KEY_V4: u64 = 0x61e4_48bc_0a03_c5ab;
    const PIN_KEY_V6: u64 = 0x5773_c11b_f5c1_57e5;
}
