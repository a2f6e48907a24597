//! ed25519 signatures over narinfo fingerprints, and key files in Nix's format (`crypto.cc`):
//! a secret key file is `<name>:<base64 of the 64-byte libsodium secret key = seed ‖ public>`, a
//! public key file `<name>:<base64 of the 32-byte public key>`, a signature `<name>:<base64 of 64 bytes>`.
//!
//! Layer: store (pure, sync). Uses ed25519-dalek; no other ferry module.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use super::{Error, Result, ValidPathInfo, excerpt};

/// Split `name:base64` and decode the base64 into exactly `N` bytes.
fn split_named<const N: usize>(s: &str, kind: &'static str) -> Result<(String, [u8; N])> {
    let bad = |reason: String| Error::BadKey { kind, reason };
    let s = s.trim();
    let (name, b64) = s
        .split_once(':')
        .ok_or_else(|| bad("expected '<name>:<base64>'".to_owned()))?;
    if name.is_empty() {
        return Err(bad("the key name is empty".to_owned()));
    }
    let bytes = BASE64
        .decode(b64)
        .map_err(|e| bad(format!("key {name:?}: invalid base64: {e}")))?;
    let n = bytes.len();
    let arr: [u8; N] = bytes
        .try_into()
        .map_err(|_| bad(format!("key {name:?}: {n} bytes, expected {N}")))?;
    Ok((name.to_owned(), arr))
}

fn read_key_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        op: "reading key file",
        path: path.to_owned(),
        source,
    })
}

/// A named ed25519 secret key, as `nix-store --generate-binary-cache-key` writes it.
#[derive(Clone)]
pub struct SecretKey {
    name: String,
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate(name: &str) -> Result<SecretKey> {
        use rand::TryRng as _;
        check_key_name(name, "secret")?;
        let mut seed = [0u8; 32];
        rand::rngs::SysRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| Error::BadKey {
                kind: "secret",
                reason: format!("cannot get randomness from the OS: {e}"),
            })?;
        Ok(SecretKey {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parse `name:base64(seed ‖ public)`; the public half must match the seed.
    pub fn parse(s: &str) -> Result<SecretKey> {
        let (name, bytes) = split_named::<64>(s, "secret")?;
        let key = SigningKey::from_keypair_bytes(&bytes).map_err(|_| Error::BadKey {
            kind: "secret",
            reason: format!("key {name:?}: the public half does not match the secret seed"),
        })?;
        Ok(SecretKey { name, key })
    }

    /// Read a secret key file.
    pub fn from_file(path: &Path) -> Result<SecretKey> {
        SecretKey::parse(&read_key_file(path)?)
    }

    /// The key's name (the part before the colon).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file contents Nix writes: `name:base64(64 bytes)`, no trailing newline.
    pub fn to_nix_string(&self) -> String {
        format!(
            "{}:{}",
            self.name,
            BASE64.encode(self.key.to_keypair_bytes())
        )
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Sign arbitrary bytes; returns `name:base64sig`.
    pub fn sign(&self, data: &[u8]) -> String {
        format!(
            "{}:{}",
            self.name,
            BASE64.encode(self.key.sign(data).to_bytes())
        )
    }

    /// Sign a path's fingerprint, giving the string that goes into `sigs` (and narinfo `Sig:`).
    pub fn sign_path_info(&self, info: &ValidPathInfo) -> Result<String> {
        Ok(self.sign(info.fingerprint()?.as_bytes()))
    }
}

/// A named ed25519 public key, as in `trusted-public-keys`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    key: VerifyingKey,
}

impl PublicKey {
    /// Parse `name:base64(32 bytes)`.
    pub fn parse(s: &str) -> Result<PublicKey> {
        let (name, bytes) = split_named::<32>(s, "public")?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| Error::BadKey {
            kind: "public",
            reason: format!("key {name:?} is not a valid ed25519 point"),
        })?;
        Ok(PublicKey { name, key })
    }

    /// Read a public key file.
    pub fn from_file(path: &Path) -> Result<PublicKey> {
        PublicKey::parse(&read_key_file(path)?)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `name:base64(32 bytes)`.
    pub fn to_nix_string(&self) -> String {
        format!("{}:{}", self.name, BASE64.encode(self.key.as_bytes()))
    }

    /// Check `sig` (`name:base64sig`) over `data`. `Ok(false)` when the signature is by another key
    /// or does not verify; an error when it is malformed (Nix: wrong length is an error).
    pub fn verify(&self, data: &[u8], sig: &str) -> Result<bool> {
        let (name, sig_b64) = sig.split_once(':').ok_or_else(|| Error::BadSignature {
            sig: excerpt(sig),
            reason: "expected '<keyname>:<base64>'".to_owned(),
        })?;
        if name != self.name {
            return Ok(false);
        }
        let bytes = BASE64.decode(sig_b64).map_err(|e| Error::BadSignature {
            sig: excerpt(sig),
            reason: format!("invalid base64: {e}"),
        })?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| Error::BadSignature {
            sig: excerpt(sig),
            reason: "an ed25519 signature is 64 bytes".to_owned(),
        })?;
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        // libsodium's crypto_sign_verify_detached (what Nix uses) rejects non-canonical and
        // small-order encodings; verify_strict is dalek's equivalent.
        Ok(self.key.verify_strict(data, &sig).is_ok())
    }

    /// Whether any of the path's signatures is a valid signature by this key.
    pub fn verify_path_info(&self, info: &ValidPathInfo) -> Result<bool> {
        let fp = info.fingerprint()?;
        for sig in &info.sigs {
            if self.verify(fp.as_bytes(), sig)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

fn check_key_name(name: &str, kind: &'static str) -> Result<()> {
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
        return Err(Error::BadKey {
            kind,
            reason: format!(
                "key name {:?} must be non-empty, without ':' or spaces",
                excerpt(name)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cache_nixos_org_signature_verifies() {
        let key =
            PublicKey::parse("cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=")
                .unwrap();
        let mut info = crate::store::path_info::tests::curl();
        let sig = "cache.nixos.org-1:TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1hkeKZBQ==";
        assert!(
            key.verify(info.fingerprint().unwrap().as_bytes(), sig)
                .unwrap()
        );
        info.sigs.insert(sig.to_owned());
        assert!(key.verify_path_info(&info).unwrap());
        info.nar_size += 1;
        assert!(!key.verify_path_info(&info).unwrap());
    }

    #[test]
    fn generate_sign_verify_roundtrip() {
        let sk = SecretKey::generate("ferry-test-1").unwrap();
        let sk2 = SecretKey::parse(&sk.to_nix_string()).unwrap();
        assert_eq!(sk2.public_key(), sk.public_key());
        let pk = PublicKey::parse(&sk.public_key().to_nix_string()).unwrap();
        let mut info = crate::store::path_info::tests::curl();
        let sig = sk.sign_path_info(&info).unwrap();
        assert!(sig.starts_with("ferry-test-1:"));
        assert_eq!(sig.len(), "ferry-test-1:".len() + 88);
        info.sigs.insert(sig);
        assert!(pk.verify_path_info(&info).unwrap());
        let other = SecretKey::generate("ferry-test-1").unwrap().public_key();
        assert!(!other.verify_path_info(&info).unwrap());
    }

    #[test]
    fn malformed() {
        assert!(PublicKey::parse("nocolon").is_err());
        assert!(PublicKey::parse(":AAAA").is_err());
        assert!(PublicKey::parse("k:AAAA").is_err());
        assert!(SecretKey::parse("k:!!!").is_err());
        let sk = SecretKey::generate("k").unwrap();
        // A secret key whose public half was tampered with is refused.
        let mut bytes = sk.key.to_keypair_bytes();
        bytes[40] ^= 1;
        assert!(SecretKey::parse(&format!("k:{}", BASE64.encode(bytes))).is_err());
        let pk = sk.public_key();
        assert!(pk.verify(b"x", "k:AAAA").is_err());
        assert!(pk.verify(b"x", "nocolon").is_err());
        assert!(!pk.verify(b"x", "other:AAAA").unwrap());
        assert!(SecretKey::generate("bad:name").is_err());
    }
}
