//! Store formats: store paths, hashes, nixbase32, NAR and signatures.
//!
//! Layer: lowest. Pure and synchronous; must not depend on tokio or on any other ferry module.
//! Everything here is checked byte for byte against real Nix (see `vendor/` and `tests/store_*.rs`).

pub mod hash;
pub mod nar;
pub mod nixbase32;
pub mod path;
pub mod path_info;
pub mod signature;

pub use hash::{Hash, HashAlgo};
pub use nar::NarError;
pub use path::{STORE_DIR, StorePath};
pub use path_info::ValidPathInfo;
pub use signature::{PublicKey, SecretKey};

/// Errors of the store-format layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A string that should be nixbase32 is not.
    #[error("invalid nixbase32 string {input:?}: {reason}")]
    BadNixBase32 { input: String, reason: &'static str },
    /// A hash string or digest that cannot be parsed or has the wrong length.
    #[error("invalid hash {input:?}: {reason}")]
    BadHash { input: String, reason: String },
    /// A store path that does not follow Nix's rules.
    #[error("invalid store path {path:?}: {reason}")]
    BadStorePath { path: String, reason: String },
    /// A store path name (the part after the hash) that does not follow Nix's rules.
    #[error("invalid store path name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    /// A fingerprint cannot be computed for this path info.
    #[error("cannot compute the fingerprint of {path}: {reason}")]
    Fingerprint { path: String, reason: &'static str },
    /// A key file or key string that is malformed.
    #[error("invalid {kind} key: {reason}")]
    BadKey { kind: &'static str, reason: String },
    /// A signature string that is malformed.
    #[error("invalid signature {sig:?}: {reason}")]
    BadSignature { sig: String, reason: String },
    /// An I/O error on a file, with the operation and the path.
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A NAR that is malformed, hostile, or that could not be written or read.
    #[error(transparent)]
    Nar(#[from] NarError),
}

/// Result type of the store layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorten user input kept in error messages so that a hostile megabyte string doesn't end up in logs.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
