//! Capture inputs and outputs: pcap/pcapng files, the UDP listener and sender.
//!
//! This is the only crate of the workspace that touches files or sockets, and the only one
//! allowed `unsafe` (memory maps and syscalls, each with a `SAFETY` comment). Packet bytes are
//! delivered raw with their pcap link type; decoding them is `vxtap-wire`'s job.

mod error;
mod reader;
#[cfg(target_os = "linux")]
mod udp;
mod writer;

pub use error::{CaptureError, Damage};
pub use reader::{CaptureReader, FileFormat, Packet, Progress, MAX_BLOCK, MAX_SNAPLEN};
#[cfg(target_os = "linux")]
pub use udp::{
    Datagram, RecvBatch, RecvBufferInfo, RecvStats, SendStats, UdpConfig, UdpReceiver, UdpSender,
    DATAGRAM_BUF, MAX_BATCH, RMEM_SYSCTL,
};
pub use writer::{PcapWriter, PcapngWriter, TsResolution};
