//! Wire primitives of the worker protocol: an [`Encoder`] that appends to a byte buffer and a
//! [`Decoder`] that reads from a byte slice. Pure: no I/O, no tokio.
//!
//! Layer: `daemon` (pure core). Must not depend on tokio or on any layer above `store`.
//!
//! Grammar (all Nix versions, `src/libutil/serialise.cc`):
//!
//! ```text
//! u64     = 8 bytes little-endian          (every integer and bool; bool is 0 or 1)
//! bytes   = u64 len ‖ len bytes ‖ zero padding to a multiple of 8
//! list<T> = u64 count ‖ count × T          (sets are sent sorted)
//! map<K,V>= u64 count ‖ count × (K ‖ V)
//! framed  = { u64 len ‖ len raw bytes }* ‖ u64 0      (no padding; used for uploads)
//! ```
//!
//! The decoder is incremental in the simplest way: when the slice ends early it returns
//! [`DecodeError::Incomplete`] and the caller retries once more bytes have arrived. Lengths are
//! checked against caps *before* anything is allocated, so a hostile peer cannot make us reserve
//! memory it has not sent.

use std::fmt;

/// Largest string (message, path, JSON) we accept in a reply. Nix's own messages are far smaller;
/// build logs arrive line by line.
pub const MAX_STRING_LEN: u64 = 16 << 20;

/// Largest element count we accept for a list, set or map. Each element costs at least 8 bytes on
/// the wire, so this only bounds the work done on an incomplete buffer.
pub const MAX_COLLECTION_LEN: u64 = 1 << 24;

/// Size of the frames we send in framed uploads. Nix's own client uses 32 KiB; the daemon allocates
/// one buffer per frame, so we stay well below its 4 GiB-1 limit.
pub const FRAME_SIZE: usize = 64 * 1024;

/// Why a decode did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ended before the value did; read more and retry from the same start.
    Incomplete,
    /// The bytes can never form a valid value.
    Invalid(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete => f.write_str("truncated reply"),
            DecodeError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Shorthand for decoder results.
pub type DResult<T> = std::result::Result<T, DecodeError>;

/// Build an [`DecodeError::Invalid`].
pub fn invalid<T>(msg: impl Into<String>) -> DResult<T> {
    Err(DecodeError::Invalid(msg.into()))
}

/// Number of zero bytes that follow a string of `len` bytes.
pub fn padding(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

/// Appends protocol values to a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u64(u64::from(v))
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u64(b.len() as u64);
        self.buf.extend_from_slice(b);
        self.buf
            .extend_from_slice(&[0u8; 8][..padding(b.len() as u64)]);
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// A list of strings (`Strings`, `StringSet`, and sets of paths rendered as strings).
    pub fn strs<I, S>(&mut self, items: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        I::IntoIter: ExactSizeIterator,
        S: AsRef<str>,
    {
        let it = items.into_iter();
        self.u64(it.len() as u64);
        for s in it {
            self.str(s.as_ref());
        }
        self
    }

    /// Raw bytes with no length or padding (frame payloads, NAR data).
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// Reads protocol values from a byte slice.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize) -> DResult<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Incomplete)?;
        if end > self.buf.len() {
            return Err(DecodeError::Incomplete);
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn u64(&mut self) -> DResult<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A bool is any u64; Nix reads `!= 0`.
    pub fn bool(&mut self) -> DResult<bool> {
        Ok(self.u64()? != 0)
    }

    /// A length-prefixed, zero-padded byte string of at most `max` bytes.
    pub fn bytes_max(&mut self, max: u64) -> DResult<&'a [u8]> {
        let len = self.u64()?;
        if len > max {
            return invalid(format!("string of {len} bytes exceeds the limit of {max}"));
        }
        let data = self.take(len as usize)?;
        let pad = self.take(padding(len))?;
        if pad.iter().any(|&b| b != 0) {
            return invalid("non-zero padding");
        }
        Ok(data)
    }

    pub fn bytes(&mut self) -> DResult<&'a [u8]> {
        self.bytes_max(MAX_STRING_LEN)
    }

    /// A string that must be UTF-8 (paths, hashes, names). Log messages use [`Self::lossy_string`].
    pub fn string(&mut self) -> DResult<String> {
        let b = self.bytes()?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => invalid("string is not valid UTF-8"),
        }
    }

    /// A string where invalid UTF-8 is replaced rather than rejected (log lines, error messages).
    pub fn lossy_string(&mut self) -> DResult<String> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }

    /// A collection count, capped.
    pub fn count(&mut self) -> DResult<usize> {
        let n = self.u64()?;
        if n > MAX_COLLECTION_LEN {
            return invalid(format!("collection of {n} elements exceeds the limit"));
        }
        // Each element takes at least 8 bytes: if they cannot all be there yet, say so now
        // instead of decoding element by element.
        if (self.buf.len() - self.pos) as u64 / 8 < n {
            return Err(DecodeError::Incomplete);
        }
        Ok(n as usize)
    }

    pub fn strings(&mut self) -> DResult<Vec<String>> {
        let n = self.count()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.string()?);
        }
        Ok(v)
    }

    /// Fail unless every byte was consumed (replies are exact).
    pub fn finish(&self) -> DResult<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            invalid(format!(
                "{} unexpected trailing bytes",
                self.buf.len() - self.pos
            ))
        }
    }
}

/// Encode one frame header (the payload follows raw, without padding).
pub fn frame_header(len: usize) -> [u8; 8] {
    (len as u64).to_le_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn string_round_trip_and_padding() {
        for s in ["", "a", "abcdefgh", "abcdefghi", "2.8.0"] {
            let mut e = Encoder::new();
            e.str(s);
            assert_eq!(e.len() % 8, 0);
            let b = e.into_bytes();
            let mut d = Decoder::new(&b);
            assert_eq!(d.string().unwrap(), s);
            d.finish().unwrap();
        }
    }

    #[test]
    fn nix_version_bytes_match_the_daemon() {
        // From the verified 2.8 handshake in the protocol notes.
        let mut e = Encoder::new();
        e.str("2.8.0");
        assert_eq!(
            e.as_slice(),
            &[
                5, 0, 0, 0, 0, 0, 0, 0, b'2', b'.', b'8', b'.', b'0', 0, 0, 0
            ]
        );
    }

    #[test]
    fn truncation_is_incomplete() {
        let mut e = Encoder::new();
        e.str("hello world");
        let b = e.into_bytes();
        for cut in 0..b.len() {
            let mut d = Decoder::new(&b[..cut]);
            assert_eq!(d.string(), Err(DecodeError::Incomplete), "cut at {cut}");
        }
    }

    #[test]
    fn non_zero_padding_is_rejected() {
        let mut b = Encoder::new();
        b.str("abc");
        let mut b = b.into_bytes();
        let last = b.len() - 1;
        b[last] = 1;
        assert!(matches!(
            Decoder::new(&b).string(),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn huge_lengths_are_rejected_before_allocating() {
        let mut e = Encoder::new();
        e.u64(u64::MAX);
        let b = e.into_bytes();
        assert!(matches!(
            Decoder::new(&b).string(),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            Decoder::new(&b).strings(),
            Err(DecodeError::Invalid(_))
        ));
    }
}
