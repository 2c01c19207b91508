//! The classic pcap reader over arbitrary bytes, in memory and streamed.
//!
//! Input: byte 0 selects the mode. Bit 2 set: the rest is the whole file (real captures and
//! gzip seed this way). Bit 2 clear: a valid global header is synthesized (bits 0-1: little or
//! big endian, micro- or nanosecond magic; byte 1: link type; snaplen 262144) and the rest is
//! the record stream, so mutations go to records instead of dying at the magic. Bits 3-7: how
//! many bytes each stream read returns (1-32), to exercise refills at every boundary.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(sel >> 3) + 1;
    if sel & 4 != 0 {
        common::read_both_ways(rest, chunk);
        return;
    }
    let Some((&link, records)) = rest.split_first() else {
        return;
    };
    let magic: u32 = if sel & 1 == 0 {
        0xa1b2_c3d4
    } else {
        0xa1b2_3c4d
    };
    let big = sel & 2 != 0;
    let (w16, w32) = (|v| common::u16_bytes(big, v), |v| common::u32_bytes(big, v));
    let mut file = Vec::with_capacity(24 + records.len());
    file.extend_from_slice(&w32(magic));
    file.extend_from_slice(&w16(2));
    file.extend_from_slice(&w16(4));
    file.extend_from_slice(&w32(0));
    file.extend_from_slice(&w32(0));
    file.extend_from_slice(&w32(262_144));
    file.extend_from_slice(&w32(u32::from(link)));
    file.extend_from_slice(records);
    common::read_both_ways(&file, chunk);
});
