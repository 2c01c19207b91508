//! Zero-copy packet views and decapsulation of mirrored traffic into inner TCP segments.
//!
//! Contract (smoltcp's rule): once a view's `new_checked` succeeds, none of its accessors
//! panics, whatever the bytes. Nothing here allocates per packet or does I/O.
//!
//! The entry point is [`Decapsulator::decode`]: one decapsulator per worker, fed every frame
//! with its capture link type and timestamp; its [`DecapStats`] hold every counter.
//!
//! ```
//! use vxtap_wire::{Decapsulator, Decoded, LinkType};
//!
//! let mut decap = Decapsulator::default();
//! let frame = [0u8; 10]; // too short for Ethernet
//! match decap.decode(LinkType::Ethernet, 0, &frame) {
//!     Decoded::Segment { segment, inner } => println!("{:?} via {:?}", segment, inner.tunnel),
//!     Decoded::Other { vni, proto, .. } => println!("{} in {vni:?}", proto.as_str()),
//!     Decoded::Rejected(reason) => assert_eq!(reason.as_str(), "short_ethernet"),
//!     Decoded::FragmentHeld => {}
//! }
//! assert_eq!(decap.stats().rejected_total(), 1);
//! ```

#![warn(missing_docs)]
// No unsafe here: capture is the one crate that needs it (mmap, syscalls).
#![forbid(unsafe_code)]

use std::net::IpAddr;

mod bytes;
mod labels;

pub mod checksum;
pub mod decap;
mod decoded;
pub mod encap;
pub mod error;
pub mod ethernet;
mod fastpath;
pub mod frag;
pub mod geneve;
pub mod gre;
pub mod hash;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod link;
pub mod tcp;
pub mod udp;
pub mod vxlan;

pub use decap::{
    Counter, DecapConfig, DecapStats, Decapsulator, Decoded, Inner, InnerProto, TunnelKind,
    GENEVE_PORT, GRE_UDP_PORT, VXLAN_GPE_PORT, VXLAN_PORT,
};
pub use encap::{wrap_vxlan, EncapError, OuterParams};
pub use error::Error;
pub use frag::{FragConfig, FragFailure, FragStats};
pub use hash::symmetric_hash;
pub use link::LinkType;

/// The byte range of a header field, smoltcp's convention: each header module has a `field`
/// module of these (single-byte fields are plain offsets), read by its view, by the fast path
/// and by `encap`, so an offset is written once.
pub type Field = std::ops::Range<usize>;

/// Why a frame was rejected: the crate error, one labelled variant per defect.
pub type RejectReason = Error;

/// TCP header flag bits as they appear in byte 13 of the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;

    /// True when FIN is set.
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    /// True when SYN is set.
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    /// True when RST is set.
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    /// True when ACK is set.
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// One decoded inner TCP segment, borrowing its payload from the captured frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The VNI-equivalent of the innermost tunnel, if the frame was encapsulated and the
    /// tunnel has one: VXLAN or Geneve VNI, ERSPAN session id, GRE key.
    pub vni: Option<u32>,
    /// The innermost tunnel (`TunnelKind::None` for a plain capture).
    pub tunnel: TunnelKind,
    /// Outer IP source of the innermost tunnel (the mirror source), if encapsulated.
    pub mirror_source: Option<IpAddr>,
    /// Inner IP source address.
    pub src_ip: IpAddr,
    /// Inner IP destination address.
    pub dst_ip: IpAddr,
    /// Inner TCP source port.
    pub src_port: u16,
    /// Inner TCP destination port.
    pub dst_port: u16,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP acknowledgment number (meaningful only when `flags.ack()`).
    pub ack: u32,
    /// TCP flags.
    pub flags: TcpFlags,
    /// TCP receive window (unscaled).
    pub window: u16,
    /// The TCP payload bytes that were captured.
    pub payload: &'a [u8],
    /// TCP payload length announced by the inner IP header. Larger than `payload.len()` when the
    /// mirror session (or the capture snaplen) cut the frame: the difference is missing bytes.
    pub wire_payload_len: u32,
}

impl Segment<'_> {
    /// A hash of the inner 5-tuple that is the same for both directions of a connection and
    /// stable across versions (what `encap` derives the outer source port from).
    pub fn symmetric_hash(&self) -> u64 {
        hash::symmetric_hash(self.src_ip, self.src_port, self.dst_ip, self.dst_port)
    }

    /// A cheap direction-independent hash of the 5-tuple for picking a worker shard (see
    /// [`hash::shard_hash`]).
    #[inline]
    pub fn shard_hash(&self) -> u64 {
        hash::shard_hash(self.src_ip, self.src_port, self.dst_ip, self.dst_port)
    }

    /// Bytes of payload the mirror did not deliver.
    pub fn missing_len(&self) -> u32 {
        self.wire_payload_len
            .saturating_sub(self.payload.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(src: &str, sp: u16, dst: &str, dp: u16) -> Segment<'static> {
        Segment {
            ts_ns: 0,
            vni: None,
            tunnel: TunnelKind::None,
            mirror_source: None,
            src_ip: src.parse().unwrap(),
            dst_ip: dst.parse().unwrap(),
            src_port: sp,
            dst_port: dp,
            seq: 0,
            ack: 0,
            flags: TcpFlags(0),
            window: 0,
            payload: &[],
            wire_payload_len: 0,
        }
    }

    #[test]
    fn shard_hash_is_symmetric_and_spreads_connections() {
        let (mut two, mut four) = ([0u32; 2], [0u32; 4]);
        for i in 0..4000u32 {
            let client = format!("10.0.{}.{}", i % 7, i % 250);
            let (a, b) = (
                seg(&client, 30_000 + i as u16, "10.1.0.2", 80),
                seg("10.1.0.2", 80, &client, 30_000 + i as u16),
            );
            assert_eq!(a.shard_hash(), b.shard_hash());
            assert_eq!(a.symmetric_hash(), b.symmetric_hash());
            two[(a.shard_hash() % 2) as usize] += 1;
            four[(a.shard_hash() % 4) as usize] += 1;
        }
        let v6 = seg("2001:db8::1", 443, "2001:db8::2", 51000);
        let v6r = seg("2001:db8::2", 51000, "2001:db8::1", 443);
        assert_eq!(v6.shard_hash(), v6r.shard_hash());
        // Within 10 % of an even split.
        assert!(two.iter().all(|&n| n > 1800), "{two:?}");
        assert!(four.iter().all(|&n| n > 900), "{four:?}");
    }

    /// Sharding (`shard_hash`) and the encapsulated source port (`symmetric_hash`) must not
    /// change by accident: these values were taken before the hashes moved into one module.
    #[test]
    fn hash_values_are_pinned() {
        let v4 = seg("10.0.0.1", 40000, "10.0.0.2", 80);
        let v6 = seg("2001:db8::1", 443, "2001:db8::2", 51000);
        assert_eq!(
            v4.symmetric_hash(),
            PIN_SYM_V4,
            "{:#x}",
            v4.symmetric_hash()
        );
        assert_eq!(
            v6.symmetric_hash(),
            PIN_SYM_V6,
            "{:#x}",
            v6.symmetric_hash()
        );
        assert_eq!(v4.shard_hash(), PIN_SHARD_V4, "{:#x}", v4.shard_hash());
        assert_eq!(v6.shard_hash(), PIN_SHARD_V6, "{:#x}", v6.shard_hash());
    }

    const PIN_SYM_V4: u64 = 0x5311_fd22_ab35_b4c6;
    const PIN_SYM_V6: u64 = 0xee1c_3939_39e8_8eff;
    const PIN_SHARD_V4: u64 = 0x3134_36cf_c25c_658f;
    const PIN_SHARD_V6: u64 = 0x15b8_29e2_eb07_5e7a;
}
