//! Nix's "base32" (nix32): the alphabet `0123456789abcdfghijklmnpqrsvwxyz` and Nix's bit order,
//! where the *last* character carries the lowest bits of the first byte (`hash.cc:printHash32`).
//!
//! Layer: store (pure, sync). No dependencies beyond `std`.

use super::{Error, Result, excerpt};

const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Reverse lookup table: byte → digit value, 0xff for characters outside the alphabet.
const DECODE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 32 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Length of the nix32 encoding of `byte_len` bytes: `(8*n - 1)/5 + 1` (52 for sha256, 32 for 20 bytes).
pub fn encoded_len(byte_len: usize) -> usize {
    if byte_len == 0 {
        0
    } else {
        (byte_len * 8 - 1) / 5 + 1
    }
}

/// Encode bytes in nix32.
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let lo = bytes[i] >> j;
        let hi = if i + 1 < bytes.len() {
            // `j` is at most 7, so the shift count is at least 1; u16 avoids overflow.
            ((u16::from(bytes[i + 1]) << (8 - j)) & 0xff) as u8
        } else {
            0
        };
        out.push(ALPHABET[usize::from((lo | hi) & 0x1f)] as char);
    }
    out
}

/// Decode a nix32 string. The byte length is the largest `n` with `encoded_len(n) == s.len()`;
/// a string length no byte length encodes to, characters outside the alphabet, and set bits
/// beyond the last byte are all errors (Nix rejects the latter as "invalid base-32 hash").
pub fn decode(s: &str) -> Result<Vec<u8>> {
    let bad = |reason| Error::BadNixBase32 {
        input: excerpt(s),
        reason,
    };
    let chars = s.as_bytes();
    let byte_len = chars.len() * 5 / 8;
    if encoded_len(byte_len) != chars.len() {
        return Err(bad("length is not the length of any encoding"));
    }
    let mut out = vec![0u8; byte_len];
    for (pos, &c) in chars.iter().enumerate() {
        let digit = DECODE[usize::from(c)];
        if digit == 0xff {
            return Err(bad("character outside the nix32 alphabet"));
        }
        let n = chars.len() - 1 - pos;
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let wide = u16::from(digit) << j;
        out[i] |= (wide & 0xff) as u8;
        let carry = (wide >> 8) as u8;
        if i + 1 < byte_len {
            out[i + 1] |= carry;
        } else if carry != 0 {
            return Err(bad("non-zero bits beyond the last byte"));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lengths() {
        assert_eq!(encoded_len(0), 0);
        assert_eq!(encoded_len(16), 26);
        assert_eq!(encoded_len(20), 32);
        assert_eq!(encoded_len(32), 52);
        assert_eq!(encoded_len(64), 103);
    }

    #[test]
    fn known_vector_sha256_abc() {
        // tests/functional/hash-convert.sh in NixOS/nix; also checked against nix-hash in tests/store_hash.rs.
        let digest = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
            0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
            0xf2, 0x00, 0x15, 0xad,
        ];
        let s = encode(&digest);
        assert_eq!(s, "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
        assert_eq!(decode(&s).unwrap(), digest);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(decode("e").is_err());
        // 'e', 'o', 'u', 't' are not in the alphabet.
        assert!(decode("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5e").is_err());
        // Wrong length (51 is not an encoding length of any byte count? 51*5/8=31, enc(31)=50).
        assert!(decode(&"0".repeat(51)).is_err());
        // The first character of a 52-char string holds only 1 meaningful bit (256 = 51*5 + 1).
        assert!(decode(&format!("2{}", "0".repeat(51))).is_err());
        assert!(decode(&format!("1{}", "0".repeat(51))).is_ok());
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    proptest! {
        #[test]
        fn roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let s = encode(&bytes);
            prop_assert_eq!(s.len(), encoded_len(bytes.len()));
            prop_assert_eq!(decode(&s).unwrap(), bytes);
        }

        #[test]
        fn decode_never_panics(s in "[0-9a-z]{0,70}") {
            let _ = decode(&s);
        }
    }
}
