//! Capture inputs and outputs: pcap/pcapng files, the UDP listener and sender.
//!
//! This is the only crate of the workspace that touches files or sockets, and the only one
//! allowed `unsafe` (memory maps and syscalls, each with a `SAFETY` comment). Packet bytes are
//! delivered raw with their pcap link type; decoding them is `vxtap-wire`'s job.
//!
//! Reading a capture (a packet borrows the reader until the next call):
//! ```no_run
//! # fn main() -> Result<(), vxtap_capture::CaptureError> {
//! let mut reader = vxtap_capture::CaptureReader::open("trace.pcap.gz")?;
//! while let Some(p) = reader.next_packet()? {
//!     println!("{} {} {}", p.ts_ns, p.linktype, p.data.len());
//! }
//! # Ok(()) }
//! ```
//!
//! A receive thread:
//! ```no_run
//! # fn main() -> Result<(), vxtap_capture::CaptureError> {
//! use vxtap_capture::{RecvBatch, UdpConfig, UdpReceiver, DATAGRAM_BUF};
//! let stop = std::sync::atomic::AtomicBool::new(false);
//! let mut rx = UdpReceiver::bind(&UdpConfig::new("0.0.0.0:4789".parse().unwrap()))?;
//! if let Some(w) = rx.recv_buffer().warning() {
//!     eprintln!("{w}");
//! }
//! let mut batch = RecvBatch::new(64, DATAGRAM_BUF);
//! while !stop.load(std::sync::atomic::Ordering::Relaxed) {
//!     rx.recv(&mut batch)?; // returns within the read timeout even when idle
//!     for d in batch.iter() {
//!         let _ = (d.source, d.data, d.truncated);
//!     }
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
// The workspace's only unsafe lives here: every block must say why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

mod error;
mod reader;
#[cfg(target_os = "linux")]
mod udp;
mod writer;

pub use error::{CaptureError, Damage};
pub use reader::{
    prefetch_lines, prefetch_value, CaptureReader, FileFormat, Packet, Progress, SharedMap,
    MAX_BLOCK, MAX_SNAPLEN,
};
#[cfg(target_os = "linux")]
pub use udp::{
    Datagram, RecvBatch, RecvBufferInfo, RecvStats, SendStats, UdpConfig, UdpReceiver, UdpSender,
    DATAGRAM_BUF, MAX_BATCH, RMEM_SYSCTL,
};
pub use writer::{PcapWriter, PcapngWriter, TsResolution};
