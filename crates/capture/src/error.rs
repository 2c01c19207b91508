//! The crate's one error type.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Everything that can go wrong while reading or writing a capture or using a socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The input could not be opened or mapped.
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        /// The input's name.
        path: Arc<Path>,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading (or gunzipping) failed; `offset` is in the decompressed capture stream.
    #[error("{}: read error at byte {offset}: {source}", path.display())]
    Read {
        /// The input's name.
        path: Arc<Path>,
        /// Bytes of capture data successfully read before the failure.
        offset: u64,
        /// The OS or decoder error.
        #[source]
        source: io::Error,
    },
    /// The first bytes are neither a pcap nor a pcapng magic number.
    #[error("{}: not a pcap or pcapng file (starts with {magic:02x?})", path.display())]
    UnknownFormat {
        /// The input's name.
        path: Arc<Path>,
        /// The first bytes of the input (fewer than 4 when it is that short).
        magic: Vec<u8>,
    },
    /// The input ends in the middle of a header, record or block.
    #[error(
        "{}: cut off at byte {offset}: {what} needs {needed} bytes, only {available} left",
        path.display()
    )]
    Truncated {
        /// The input's name.
        path: Arc<Path>,
        /// Where the incomplete structure starts.
        offset: u64,
        /// What was being read.
        what: &'static str,
        /// Bytes the structure needs.
        needed: u64,
        /// Bytes that were left.
        available: u64,
    },
    /// A structure has impossible contents; nothing after it can be trusted.
    #[error("{}: corrupt {what} at byte {offset}: {damage}", path.display())]
    Corrupt {
        /// The input's name.
        path: Arc<Path>,
        /// Where the damaged structure starts.
        offset: u64,
        /// What was being read.
        what: &'static str,
        /// What exactly is wrong.
        damage: Damage,
    },
    /// Writing a capture failed.
    #[error("writing capture: {0}")]
    Write(#[source] io::Error),
    /// A packet or option cannot be represented in the output format.
    #[error("cannot write: {0}")]
    Unwritable(&'static str),
    /// A socket call failed.
    #[error("udp {op}: {source}")]
    Socket {
        /// The call that failed (e.g. "bind", "recvmmsg").
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// What is wrong with a damaged structure in a capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// A record claims more captured bytes than any capture can hold.
    RecordTooLong {
        /// The claimed length.
        len: u32,
        /// The largest length accepted.
        max: u32,
    },
    /// A pcapng block length is below the minimum, unaligned or absurdly large.
    BadBlockLength {
        /// The claimed length.
        len: u32,
    },
    /// A pcapng block's trailing length differs from its leading length.
    LengthMismatch {
        /// Length at the start of the block.
        first: u32,
        /// Length at the end of the block.
        last: u32,
    },
    /// A packet's captured length runs past the end of its block.
    PacketOverrunsBlock {
        /// The captured length.
        caplen: u32,
        /// The block's total length.
        block_len: u32,
    },
    /// A packet refers to an interface that no Interface Description Block declared.
    UnknownInterface {
        /// The interface id.
        id: u32,
        /// How many interfaces the section declared.
        declared: usize,
    },
    /// More interfaces than the reader is willing to track.
    TooManyInterfaces,
    /// A section header has an unknown byte-order magic or version.
    BadSectionHeader,
    /// The file header's version is not 2.x (pcap) or 1.x (pcapng).
    UnsupportedVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// An Interface Description Block could not be parsed.
    BadInterfaceBlock,
    /// An `if_tsresol` value that cannot be represented.
    BadTimeResolution(u8),
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::RecordTooLong { len, max } => {
                write!(f, "record length {len} exceeds the maximum {max}")
            }
            Damage::BadBlockLength { len } => write!(f, "invalid block length {len}"),
            Damage::LengthMismatch { first, last } => {
                write!(f, "block length {first} but trailer says {last}")
            }
            Damage::PacketOverrunsBlock { caplen, block_len } => {
                write!(
                    f,
                    "captured length {caplen} does not fit a block of {block_len} bytes"
                )
            }
            Damage::UnknownInterface { id, declared } => {
                write!(f, "interface {id} used but only {declared} declared")
            }
            Damage::TooManyInterfaces => f.write_str("too many interfaces"),
            Damage::BadSectionHeader => f.write_str("bad byte-order magic or version"),
            Damage::UnsupportedVersion { major, minor } => {
                write!(f, "unsupported version {major}.{minor}")
            }
            Damage::BadInterfaceBlock => f.write_str("unparsable interface description"),
            Damage::BadTimeResolution(r) => write!(f, "unsupported if_tsresol {r:#04x}"),
        }
    }
}

impl CaptureError {
    /// The byte offset of the damage, for errors that have one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            CaptureError::Read { offset, .. }
            | CaptureError::Truncated { offset, .. }
            | CaptureError::Corrupt { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}
