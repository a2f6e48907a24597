//! Key material a deployment owns: its ed25519 SSH keypair (OpenSSH formats) and its Nix signing keypair
//! (`name:base64`, as `nix-store --generate-binary-cache-key` writes). Part of the state layer; pure apart from
//! reading the OS random source. It uses the store layer's signing-key type, never the ssh layer.
//!
//! The OpenSSH private key container (`PROTOCOL.key` in OpenSSH), unencrypted:
//!
//! ```text
//! "-----BEGIN OPENSSH PRIVATE KEY-----"
//! base64, 70 columns, of:
//!   "openssh-key-v1" 0x00
//!   string "none"            cipher
//!   string "none"            kdf
//!   string ""                kdf options
//!   uint32 1                 number of keys
//!   string public key blob   (string "ssh-ed25519", string pk[32])
//!   string private section, padded with 1, 2, 3, … to a multiple of 8:
//!     uint32 check, uint32 check (the same random value twice)
//!     string "ssh-ed25519", string pk[32], string seed[32] ‖ pk[32], string comment
//! "-----END OPENSSH PRIVATE KEY-----"
//! ```
//! where `string` is a big-endian uint32 length followed by the bytes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;

use super::error::{Error, Result};

/// A secret string (a private key). Its `Debug` never shows the value, so secrets cannot leak through logs or
/// error messages that format a struct holding one.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; callers decide where it may go (a 0600 file, a channel's stdin, never argv).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The deployment's SSH keypair in OpenSSH formats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshKeyPair {
    /// `ssh-ed25519 AAAA… comment`, one line, as in `authorized_keys`.
    pub public: String,
    /// The `-----BEGIN OPENSSH PRIVATE KEY-----` document.
    pub private: Secret,
}

/// A Nix binary-cache signing keypair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyPair {
    /// `name:base64(public key, 32 bytes)`.
    pub public: String,
    /// `name:base64(seed ‖ public key, 64 bytes)`.
    pub secret: Secret,
}

fn random_bytes<const N: usize>(what: &'static str) -> Result<[u8; N]> {
    use rand::TryRng as _;
    let mut buf = [0u8; N];
    rand::rngs::SysRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| Error::KeyGen {
            what,
            reason: e.to_string(),
        })?;
    Ok(buf)
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // Key blobs are tiny; a length over u32 cannot occur here.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn public_blob(pk: &[u8; 32]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(51);
    put_string(&mut blob, b"ssh-ed25519");
    put_string(&mut blob, pk);
    blob
}

/// Generate a fresh ed25519 SSH keypair; `comment` ends the public line and is stored in the private key.
pub fn generate_ssh_keypair(comment: &str) -> Result<SshKeyPair> {
    let seed: [u8; 32] = random_bytes("an SSH key")?;
    let check: [u8; 4] = random_bytes("an SSH key")?;
    Ok(ssh_keypair_from_seed(&seed, check, comment))
}

/// The OpenSSH encoding of the keypair with this seed (deterministic; `check` is the private section's check word).
pub fn ssh_keypair_from_seed(seed: &[u8; 32], check: [u8; 4], comment: &str) -> SshKeyPair {
    let signing = SigningKey::from_bytes(seed);
    let pk = signing.verifying_key().to_bytes();
    let blob = public_blob(&pk);

    let mut private = Vec::with_capacity(160);
    private.extend_from_slice(&check);
    private.extend_from_slice(&check);
    put_string(&mut private, b"ssh-ed25519");
    put_string(&mut private, &pk);
    put_string(&mut private, &signing.to_keypair_bytes());
    put_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }

    let mut container = Vec::with_capacity(300);
    container.extend_from_slice(b"openssh-key-v1\0");
    put_string(&mut container, b"none");
    put_string(&mut container, b"none");
    put_string(&mut container, b"");
    container.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut container, &blob);
    put_string(&mut container, &private);

    let body = STANDARD.encode(&container);
    let mut pem = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(70) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");

    let mut public = format!("ssh-ed25519 {}", STANDARD.encode(&blob));
    if !comment.is_empty() {
        public.push(' ');
        public.push_str(comment);
    }
    SshKeyPair {
        public,
        private: Secret::new(pem),
    }
}

/// Generate a fresh Nix signing keypair named `name` (for example `ferry-prod-1`), through the store layer's
/// key type so that the format is the one the copy layer later parses to sign paths.
pub fn generate_signing_keypair(name: &str) -> Result<SigningKeyPair> {
    let key = crate::store::SecretKey::generate(name).map_err(|e| Error::KeyGen {
        what: "a Nix signing key",
        reason: e.to_string(),
    })?;
    Ok(SigningKeyPair {
        public: key.public_key().to_nix_string(),
        secret: Secret::new(key.to_nix_string()),
    })
}

/// The `name:base64` encoding of the signing keypair with this seed.
pub fn signing_keypair_from_seed(name: &str, seed: &[u8; 32]) -> SigningKeyPair {
    let signing = SigningKey::from_bytes(seed);
    SigningKeyPair {
        public: format!(
            "{name}:{}",
            STANDARD.encode(signing.verifying_key().to_bytes())
        ),
        secret: Secret::new(format!(
            "{name}:{}",
            STANDARD.encode(signing.to_keypair_bytes())
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ssh_private_key_is_padded_and_wrapped() {
        let pair = ssh_keypair_from_seed(&[7; 32], [1, 2, 3, 4], "ferry test");
        let pem = pair.private.expose();
        assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END OPENSSH PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 70));
        assert!(
            pair.public
                .starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI")
        );
        assert!(pair.public.ends_with(" ferry test"));
    }

    #[test]
    fn secret_debug_is_redacted() {
        let pair = ssh_keypair_from_seed(&[7; 32], [1, 2, 3, 4], "c");
        let shown = format!("{pair:?}");
        assert!(!shown.contains("BEGIN OPENSSH"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn signing_key_halves_match() {
        let pair = signing_keypair_from_seed("ferry-x-1", &[9; 32]);
        let (name, secret) = pair.secret.expose().split_once(':').unwrap();
        let (pname, public) = pair.public.split_once(':').unwrap();
        assert_eq!((name, pname), ("ferry-x-1", "ferry-x-1"));
        let secret = STANDARD.decode(secret).unwrap();
        let public = STANDARD.decode(public).unwrap();
        assert_eq!(secret.len(), 64);
        assert_eq!(&secret[32..], &public[..]);
    }

    #[test]
    fn generated_signing_key_parses_as_a_nix_secret_key() {
        let pair = generate_signing_keypair("ferry-t-1").unwrap();
        let key = crate::store::SecretKey::parse(pair.secret.expose()).unwrap();
        assert_eq!(key.public_key().to_nix_string(), pair.public);
        assert_eq!(key.name(), "ferry-t-1");
    }
}
