//! The NAR token encoding, `str(s) = u64 LE len ‖ s ‖ zero padding to 8`, shared by the encoder,
//! the decoder and tests that write hostile archives by hand.
//!
//! Layer: store (pure, sync).

/// Number of zero bytes after a token of `len` bytes.
pub(crate) fn padding(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

/// Append `str(s)`.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
    out.extend_from_slice(&[0u8; 8][..padding(s.len() as u64)]);
}
