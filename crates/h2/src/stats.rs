//! Counters of the HTTP/2 reader: plain integers, merged across workers by the caller.

use crate::hpack::HpackError;
use vxtap_wire::labeled_enum;

labeled_enum! {
    /// A frame-level problem (each counted; none stops the connection).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[repr(u8)]
    pub enum FrameError {
        /// The client preface did not match.
        BadPreface => "bad_preface",
        /// A frame larger than the receiver's SETTINGS_MAX_FRAME_SIZE (or than vxtap buffers).
        FrameTooLarge => "frame_too_large",
        /// The reserved bit of the stream identifier was set.
        Reserved => "reserved_bit",
        /// A frame type vxtap does not know (extension frames); skipped.
        UnknownType => "unknown_type",
        /// A stream frame on stream 0 (or the reverse).
        BadStream => "bad_stream",
        /// Padding longer than the payload.
        BadPadding => "bad_padding",
        /// A payload of the wrong length for its type.
        BadLength => "bad_length",
        /// A SETTINGS value out of range.
        BadSetting => "bad_setting",
        /// A header block interrupted by another frame before its END_HEADERS.
        InterruptedBlock => "interrupted_block",
        /// A CONTINUATION without the block it continues (lost to a gap).
        OrphanContinuation => "orphan_continuation",
        /// A header block over the assembly cap; dropped.
        HeaderBlockTooLarge => "header_block_too_large",
        /// DATA for a stream not open (finished, or opened before the capture).
        UnknownStream => "unknown_stream",
        /// A header block for a stream already finished.
        ClosedStream => "closed_stream",
    }
}

labeled_enum! {
    /// Why an HPACK field did not decode (see [`HpackError`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[repr(u8)]
    pub enum HpackFailure {
        /// Index past the known entries of a table that lost its history.
        UnknownIndex => "unknown_index",
        /// Index past the entries of a table with its whole history.
        BadIndex => "bad_index",
        /// An integer or string cut short or overflowing.
        Truncated => "truncated",
        /// Invalid Huffman code.
        Huffman => "huffman",
        /// A table size update above the hard cap.
        SizeUpdate => "size_update",
    }
}

/// The counter index of an HPACK error.
pub fn hpack_index(e: HpackError) -> usize {
    match e {
        HpackError::UnknownIndex => HpackFailure::UnknownIndex,
        HpackError::BadIndex => HpackFailure::BadIndex,
        HpackError::Truncated => HpackFailure::Truncated,
        HpackError::Huffman => HpackFailure::Huffman,
        HpackError::SizeUpdate => HpackFailure::SizeUpdate,
    }
    .index()
}

/// Counters of the HTTP/2 reader; `merge` adds another worker's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct H2Stats {
    /// Connections read as HTTP/2.
    pub conns: u64,
    /// Frames read.
    pub frames: u64,
    /// Frame errors by kind (`FrameError::index`).
    pub frame_errors: [u64; FrameError::COUNT],
    /// HPACK failures by kind (`HpackFailure::index`).
    pub hpack_errors: [u64; HpackFailure::COUNT],
    /// Header blocks decoded.
    pub header_blocks: u64,
    /// Streams opened.
    pub streams: u64,
    /// Streams finished early because a connection had too many in flight.
    pub streams_evicted: u64,
    /// RST_STREAM frames.
    pub rst_streams: u64,
    /// GOAWAY frames.
    pub goaways: u64,
    /// PUSH_PROMISE frames.
    pub pushes: u64,
    /// 1xx responses (not kept).
    pub informational: u64,
    /// DATA payload bytes.
    pub data_bytes: u64,
    /// Bytes lost to gaps on HTTP/2 connections.
    pub gap_bytes: u64,
    /// Times a direction lost its framing and looked for frame headers again.
    pub resyncs: u64,
    /// Bytes skipped while doing so.
    pub resync_skipped_bytes: u64,
    /// SETTINGS_HEADER_TABLE_SIZE values above the hard cap (the table stays capped).
    pub hpack_table_capped: u64,
}

impl H2Stats {
    /// Adds every counter of `o`.
    pub fn merge(&mut self, o: &H2Stats) {
        for (a, b) in self.frame_errors.iter_mut().zip(&o.frame_errors) {
            *a += b;
        }
        for (a, b) in self.hpack_errors.iter_mut().zip(&o.hpack_errors) {
            *a += b;
        }
        self.conns += o.conns;
        self.frames += o.frames;
        self.header_blocks += o.header_blocks;
        self.streams += o.streams;
        self.streams_evicted += o.streams_evicted;
        self.rst_streams += o.rst_streams;
        self.goaways += o.goaways;
        self.pushes += o.pushes;
        self.informational += o.informational;
        self.data_bytes += o.data_bytes;
        self.gap_bytes += o.gap_bytes;
        self.resyncs += o.resyncs;
        self.resync_skipped_bytes += o.resync_skipped_bytes;
        self.hpack_table_capped += o.hpack_table_capped;
    }
}
