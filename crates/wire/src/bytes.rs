//! Panic-free big-endian reads. Views validate lengths in `new_checked`, so the fallback value
//! is never observed in practice; it exists so that no accessor can panic even if a view's
//! validation were wrong.

#[inline(always)]
pub(crate) fn u8_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at.saturating_add(2)) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at.saturating_add(4)) {
        Some(&[a, c, d, e]) => u32::from_be_bytes([a, c, d, e]),
        _ => 0,
    }
}

#[inline(always)]
pub(crate) fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = b.get(at..at.saturating_add(N)) {
        out.copy_from_slice(s);
    }
    out
}

/// `b[from..]`, or empty when `from` is past the end.
#[inline(always)]
pub(crate) fn tail(b: &[u8], from: usize) -> &[u8] {
    b.get(from..).unwrap_or(&[])
}

/// `b[from..to]` clamped to what exists, so announced lengths larger than the capture give the
/// captured part, and padding beyond an announced length is cut off.
#[inline(always)]
pub(crate) fn clamp(b: &[u8], from: usize, to: usize) -> &[u8] {
    let end = to.min(b.len());
    b.get(from..end).unwrap_or(&[])
}

/// Indexing big-endian reads for code that has checked the lengths itself (the fast path):
/// a panic here would be a bug in that check, and plain indexing lets the compiler fold the
/// bounds checks into it, where the panic-free reads above keep a branch per read.
#[inline(always)]
pub(crate) fn be16_idx(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The 32-bit counterpart of [`be16_idx`].
#[inline(always)]
pub(crate) fn be32_idx(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
