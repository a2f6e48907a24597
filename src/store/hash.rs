//! Cryptographic hashes as Nix prints and parses them: base16, nix32, base64 and SRI, with or
//! without the `algo:` prefix (`hash.cc` in Nix 2.8).
//!
//! Layer: store (pure, sync). Uses the RustCrypto hashers; no other ferry module.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Digest as _;

use super::{Error, Result, excerpt, nixbase32};

/// A hash algorithm Nix knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgo {
    /// All algorithms, for iteration in tests and parsers.
    pub const ALL: [HashAlgo; 4] = [
        HashAlgo::Md5,
        HashAlgo::Sha1,
        HashAlgo::Sha256,
        HashAlgo::Sha512,
    ];

    /// Nix's name: `md5`, `sha1`, `sha256`, `sha512`.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }

    /// Digest size in bytes.
    pub fn size(self) -> usize {
        match self {
            HashAlgo::Md5 => 16,
            HashAlgo::Sha1 => 20,
            HashAlgo::Sha256 => 32,
            HashAlgo::Sha512 => 64,
        }
    }

    /// Parse Nix's name of an algorithm.
    pub fn from_name(s: &str) -> Result<HashAlgo> {
        HashAlgo::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::BadHash {
                input: excerpt(s),
                reason: "unknown hash algorithm".to_owned(),
            })
    }

    /// Hash `data` in one go.
    pub fn digest(self, data: &[u8]) -> Hash {
        let mut h = Hasher::new(self);
        h.update(data);
        h.finish()
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An incremental hasher for any [`HashAlgo`].
#[derive(Clone)]
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algo: HashAlgo) -> Hasher {
        match algo {
            HashAlgo::Md5 => Hasher::Md5(md5::Md5::new()),
            HashAlgo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlgo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The final hash.
    pub fn finish(self) -> Hash {
        // Lengths match the algorithm by construction.
        match self {
            Hasher::Md5(h) => Hash::from_exact(HashAlgo::Md5, &h.finalize()),
            Hasher::Sha1(h) => Hash::from_exact(HashAlgo::Sha1, &h.finalize()),
            Hasher::Sha256(h) => Hash::from_exact(HashAlgo::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Hash::from_exact(HashAlgo::Sha512, &h.finalize()),
        }
    }
}

/// A hash: an algorithm and its digest. `Debug` shows the typed nix32 form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash {
    algo: HashAlgo,
    // Fixed storage avoids an allocation per hash; bytes past `algo.size()` are always zero,
    // so the derived comparisons are correct.
    bytes: [u8; 64],
}

impl Hash {
    /// A hash from its digest; the length must match the algorithm.
    pub fn new(algo: HashAlgo, digest: &[u8]) -> Result<Hash> {
        if digest.len() != algo.size() {
            return Err(Error::BadHash {
                input: hex(digest),
                reason: format!(
                    "{} digest must be {} bytes, not {}",
                    algo,
                    algo.size(),
                    digest.len()
                ),
            });
        }
        Ok(Hash::from_exact(algo, digest))
    }

    /// Internal: the caller guarantees `digest.len() == algo.size()`.
    fn from_exact(algo: HashAlgo, digest: &[u8]) -> Hash {
        let mut bytes = [0u8; 64];
        let n = algo.size().min(digest.len());
        bytes[..n].copy_from_slice(&digest[..n]);
        Hash { algo, bytes }
    }

    /// A sha256 hash from its digest (infallible: the length is right by type).
    pub fn from_sha256(digest: [u8; 32]) -> Hash {
        Hash::from_exact(HashAlgo::Sha256, &digest)
    }

    /// sha256 of `data`.
    pub fn sha256_of(data: &[u8]) -> Hash {
        Hash::from_exact(HashAlgo::Sha256, &sha2::Sha256::digest(data))
    }

    /// The algorithm.
    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    /// The digest bytes.
    pub fn digest(&self) -> &[u8] {
        &self.bytes[..self.algo.size()]
    }

    /// Lowercase hex.
    pub fn to_base16(&self) -> String {
        hex(self.digest())
    }

    /// nix32.
    pub fn to_nix32(&self) -> String {
        nixbase32::encode(self.digest())
    }

    /// Standard base64 with padding.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.digest())
    }

    /// SRI form: `sha256-<base64>`.
    pub fn to_sri(&self) -> String {
        format!("{}-{}", self.algo, self.to_base64())
    }

    /// `sha256:<nix32>`, the form of narinfo, fingerprints and `nix path-info --json`.
    pub fn to_typed_nix32(&self) -> String {
        format!("{}:{}", self.algo, self.to_nix32())
    }

    /// `sha256:<hex>`.
    pub fn to_typed_base16(&self) -> String {
        format!("{}:{}", self.algo, self.to_base16())
    }

    /// Parse `algo:<base16|nix32|base64>` (the encoding is told apart by length) or SRI `algo-<base64>`.
    pub fn parse_typed(s: &str) -> Result<Hash> {
        if let Some((algo, rest)) = s.split_once(':') {
            return Hash::parse_untyped(HashAlgo::from_name(algo)?, rest);
        }
        if let Some((algo, rest)) = s.split_once('-') {
            let algo = HashAlgo::from_name(algo)?;
            if rest.len() != base64_len(algo.size()) {
                return Err(Error::BadHash {
                    input: excerpt(s),
                    reason: format!(
                        "SRI {algo} hash must be {} base64 characters",
                        base64_len(algo.size())
                    ),
                });
            }
            return Hash::parse_untyped(algo, rest);
        }
        Err(Error::BadHash {
            input: excerpt(s),
            reason: "expected 'algo:hash' or SRI 'algo-base64'".to_owned(),
        })
    }

    /// Parse a hash of a known algorithm in base16, nix32 or base64, told apart by length
    /// (as Nix's `Hash::parseAny` does; the daemon sends narHash as unprefixed base16).
    /// A matching `algo:` prefix is accepted too.
    pub fn parse_untyped(algo: HashAlgo, s: &str) -> Result<Hash> {
        let body = match s.split_once(':') {
            Some((prefix, body)) if prefix == algo.name() => body,
            Some(_) => {
                return Err(Error::BadHash {
                    input: excerpt(s),
                    reason: format!("expected a {algo} hash"),
                });
            }
            None => s,
        };
        let bad = |reason: String| Error::BadHash {
            input: excerpt(s),
            reason,
        };
        let size = algo.size();
        let digest = if body.len() == 2 * size {
            unhex(body).ok_or_else(|| bad("invalid base16".to_owned()))?
        } else if body.len() == nixbase32::encoded_len(size) {
            nixbase32::decode(body).map_err(|e| bad(format!("invalid nix32: {e}")))?
        } else if body.len() == base64_len(size) {
            BASE64
                .decode(body)
                .map_err(|e| bad(format!("invalid base64: {e}")))?
        } else {
            return Err(bad(format!(
                "wrong length {} for a {algo} hash (base16 {}, nix32 {}, base64 {})",
                body.len(),
                2 * size,
                nixbase32::encoded_len(size),
                base64_len(size)
            )));
        };
        Hash::new(algo, &digest)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_typed_nix32())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_typed_nix32())
    }
}

fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sha256_abc_all_forms() {
        let h = Hash::sha256_of(b"abc");
        assert_eq!(
            h.to_base16(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            h.to_nix32(),
            "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"
        );
        assert_eq!(
            h.to_sri(),
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        assert_eq!(
            h.to_string(),
            "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"
        );
        for s in [
            h.to_typed_base16(),
            h.to_typed_nix32(),
            h.to_sri(),
            format!("sha256:{}", h.to_base64()),
        ] {
            assert_eq!(Hash::parse_typed(&s).unwrap(), h, "{s}");
        }
        for s in [
            h.to_base16(),
            h.to_nix32(),
            h.to_base64(),
            h.to_typed_nix32(),
        ] {
            assert_eq!(Hash::parse_untyped(HashAlgo::Sha256, &s).unwrap(), h, "{s}");
        }
    }

    #[test]
    fn rejects() {
        assert!(Hash::new(HashAlgo::Sha256, &[0; 31]).is_err());
        assert!(Hash::parse_typed("sha256:abc").is_err());
        assert!(Hash::parse_typed("sha3:00").is_err());
        assert!(Hash::parse_typed("nothing").is_err());
        assert!(Hash::parse_untyped(HashAlgo::Sha1, &"g".repeat(40)).is_err());
        assert!(
            Hash::parse_untyped(HashAlgo::Sha256, &format!("sha1:{}", "0".repeat(64))).is_err()
        );
    }

    proptest! {
        #[test]
        fn roundtrip_all_forms(algo in prop::sample::select(HashAlgo::ALL.to_vec()), data in any::<Vec<u8>>()) {
            let h = algo.digest(&data);
            for s in [h.to_typed_base16(), h.to_typed_nix32(), h.to_sri()] {
                prop_assert_eq!(&Hash::parse_typed(&s).unwrap(), &h);
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,140}") {
            let _ = Hash::parse_typed(&s);
            let _ = Hash::parse_untyped(HashAlgo::Sha256, &s);
        }
    }
}
