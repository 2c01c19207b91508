//! IP protocol numbers (the IPv4 `protocol` byte, the IPv6 `next header`): one list for the
//! general walk, the fast path and `encap`, which used to keep their own copies.

/// Internet Control Message Protocol.
pub const ICMP: u8 = 1;
/// Transmission Control Protocol.
pub const TCP: u8 = 6;
/// User Datagram Protocol.
pub const UDP: u8 = 17;
/// Generic Routing Encapsulation.
pub const GRE: u8 = 47;
/// ICMP for IPv6.
pub const ICMPV6: u8 = 58;
/// Stream Control Transmission Protocol (has ports where TCP and UDP have them).
pub const SCTP: u8 = 132;
