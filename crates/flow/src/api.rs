//! The contract between the reassembler and whatever consumes the streams (the HTTP layer).

use std::net::IpAddr;
use vxtap_wire::labeled_enum;

labeled_enum! {
    /// Which way bytes travel on a connection.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Direction {
        /// From the client (the SYN sender, or the side guessed/learnt to be the client).
        ClientToServer => "client_to_server",
        /// From the server.
        ServerToClient => "server_to_client",
    }
}

impl Direction {
    /// The other direction.
    pub fn flip(self) -> Self {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }
}

/// One side of a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// IP address.
    pub ip: IpAddr,
    /// TCP port.
    pub port: u16,
}

/// Connection facts handed to the stream consumer with every callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnMeta {
    /// Unique id of this connection within one flow table (monotonic; stable across replays of
    /// the same input).
    pub conn_id: u64,
    /// Stable hash of (client, server, client ISN or first seen seq): the same connection seen
    /// twice (both ENIs mirrored) or replayed again gets the same value.
    pub stable_id: u64,
    /// The client side.
    pub client: Endpoint,
    /// The server side.
    pub server: Endpoint,
    /// VNI (or GRE key, ERSPAN session id) of the first segment seen, if encapsulated.
    pub vni: Option<u32>,
    /// Innermost tunnel of the first segment seen (`TunnelKind::None` when plain).
    pub tunnel: vxtap_wire::TunnelKind,
    /// Mirror source (outer IP) of the first segment seen, if encapsulated.
    pub mirror_source: Option<IpAddr>,
    /// No SYN was seen: the capture picked the connection up mid-stream.
    pub midstream: bool,
    /// Timestamp (ns) of the first segment of the connection.
    pub first_ts_ns: u64,
}

labeled_enum! {
    /// Why a connection's streams ended.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum CloseReason {
        /// Both directions sent FIN (or one FIN and the connection then went idle).
        Fin => "fin",
        /// A RST was seen.
        Rst => "rst",
        /// No packet within the idle timeout.
        IdleTimeout => "idle_timeout",
        /// Evicted to stay under the flow-count cap or the memory budget.
        Evicted => "evicted",
        /// End of input (file replay finished, or shutdown drained the table).
        EndOfInput => "end_of_input",
        /// A new SYN reused the 5-tuple of a closed-but-not-forgotten connection.
        PortReuse => "port_reuse",
    }
}

labeled_enum! {
    /// Why bytes were skipped rather than delivered.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum GapReason {
        /// The mirror (or snaplen) cut the frame: bytes announced by the IP header never arrived.
        TruncatedCapture => "truncated_capture",
        /// A hole that was never filled (lost segment), skipped once a bound was hit.
        Lost => "lost",
        /// Buffered data dropped because a memory cap bit.
        MemoryCap => "memory_cap",
    }
}

/// What the consumer wants the reassembler to do after a callback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    /// Keep delivering.
    #[default]
    Continue,
    /// The consumer learnt that client and server are the other way round (e.g. it saw a request
    /// line in what was thought to be the server's stream). The reassembler swaps the roles in
    /// `ConnMeta` for every later callback; data already delivered is not re-delivered.
    SwapRoles,
    /// Stop delivering payload for this connection (e.g. after a protocol upgrade); the
    /// reassembler still tracks the connection and counts the bytes, and still reports the close.
    StopDelivery,
}

/// The consumer of reassembled streams. One value per flow table (per worker); it keeps per-
/// connection state in `Conn`, which the flow table stores beside its own state so that no
/// second lookup is needed.
pub trait StreamHandler {
    /// Per-connection state of the consumer.
    type Conn;

    /// A new connection was created (first segment seen).
    fn on_open(&mut self, meta: &ConnMeta) -> Self::Conn;

    /// In-order bytes in `dir`; `ts_ns` is the capture time of the segment that carried the
    /// first of these bytes.
    fn on_data(
        &mut self,
        conn: &mut Self::Conn,
        meta: &ConnMeta,
        dir: Direction,
        ts_ns: u64,
        data: &[u8],
    ) -> Verdict;

    /// TCP acknowledgement evidence for the bytes `on_data` delivers next in `dir`, until the
    /// next call: the segments carrying them acknowledged `acked` bytes of the opposite
    /// direction's stream, in the offset space the consumer sees for that direction (bytes
    /// delivered plus gaps since its start). `None`: those bytes carry no usable ack (no ACK
    /// flag, the peer's stream not started, an ack outside what the peer can have sent, or one
    /// behind an ack already reported for this direction).
    ///
    /// Called only when the evidence changes, before the `on_data` it applies to; reported
    /// values never decrease per direction. A request/response consumer can tell from it which
    /// requests the server had received when it sent a response.
    fn on_ack(
        &mut self,
        conn: &mut Self::Conn,
        meta: &ConnMeta,
        dir: Direction,
        acked: Option<u64>,
    ) {
        let _ = (conn, meta, dir, acked);
    }

    /// `len` bytes in `dir` will never be delivered; the stream continues after them.
    fn on_gap(
        &mut self,
        conn: &mut Self::Conn,
        meta: &ConnMeta,
        dir: Direction,
        ts_ns: u64,
        len: u64,
        reason: GapReason,
    ) -> Verdict;

    /// The peer in `dir` sent FIN (all its bytes before it have been delivered or gapped).
    fn on_fin(&mut self, conn: &mut Self::Conn, meta: &ConnMeta, dir: Direction, ts_ns: u64);

    /// Heap bytes `conn` holds beyond its own `size_of` (which the table charges with its slot):
    /// buffered heads, queued messages, captured bodies, decoders. The table asks after every
    /// callback on a connection and charges the answer against [`crate::FlowConfig::max_memory`],
    /// so that eviction (least recently used first) frees whatever holds the bytes. Must be
    /// cheap (it runs once per segment) and count capacity, not length.
    fn mem_bytes(&self, conn: &Self::Conn) -> usize {
        let _ = conn;
        0
    }

    /// The connection is gone; the consumer must finish it (emit pending exchanges).
    fn on_close(&mut self, conn: Self::Conn, meta: &ConnMeta, ts_ns: u64, reason: CloseReason);
}
