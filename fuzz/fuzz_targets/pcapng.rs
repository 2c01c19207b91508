//! The pcapng reader over arbitrary bytes, in memory and streamed.
//!
//! Input: byte 0 selects the mode. Bit 2 set: the rest is the whole file. Bit 2 clear: a valid
//! Section Header Block is synthesized (bit 0: big endian) and the rest is the block stream
//! (interface descriptions, packets, options, further sections). Bits 3-7: how many bytes each
//! stream read returns (1-32).
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
    let big = sel & 1 != 0;
    let (w16, w32) = (|v| common::u16_bytes(big, v), |v| common::u32_bytes(big, v));
    let mut file = Vec::with_capacity(28 + rest.len());
    file.extend_from_slice(&w32(0x0A0D_0D0A));
    file.extend_from_slice(&w32(28));
    file.extend_from_slice(&w32(0x1A2B_3C4D));
    file.extend_from_slice(&w16(1));
    file.extend_from_slice(&w16(0));
    file.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
    file.extend_from_slice(&w32(28));
    file.extend_from_slice(rest);
    common::read_both_ways(&file, chunk);
});
