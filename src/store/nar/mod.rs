//! NAR (Nix ARchive): a streaming encoder byte-identical to `nix-store --dump`, a validating
//! streaming decoder (push and pull), and unpacking that never leaves the target directory.
//!
//! Layer: store (pure, sync). No tokio, no other ferry module; the daemon client feeds the
//! push-style [`NarValidator`] from its async reads.
//!
//! # Grammar
//!
//! `str(s)` is `u64 LE len ‖ s ‖ zero padding to a multiple of 8`.
//!
//! ```text
//! nar        = str("nix-archive-1") node
//! node       = str("(") str("type") ( regular | symlink | directory ) str(")")
//! regular    = str("regular") [ str("executable") str("") ] str("contents") str(<bytes>)
//! symlink    = str("symlink") str("target") str(<target>)
//! directory  = str("directory") { str("entry") str("(") str("name") str(<name>) str("node") node str(")") }
//! ```
//!
//! The decoder is stricter than Nix 2.8 and follows current Nix: entry names are 1–255 bytes,
//! not `.`/`..`, without `/` or NUL, strictly increasing bytewise; symlink targets are 1–4095
//! bytes without NUL; fields come in the order above; padding is zero; directories nest at most
//! [`MAX_DEPTH`] deep; the archive is complete and (for whole-archive readers) followed by nothing.
//! Lengths are checked before anything is buffered.

mod decode;
mod encode;
mod unpack;
pub(crate) mod wire;

use std::path::PathBuf;

pub use decode::{Event, NarReader, NarValidator, ValidatingReader, validate};
pub use encode::{NarEncoder, dump_path};
pub use unpack::{unpack, unpack_reader};

use super::Hash;

/// Longest entry name accepted (bytes), as in current Nix.
pub const MAX_NAME_LEN: usize = 255;
/// Longest symlink target accepted (bytes), as in current Nix (`PATH_MAX - 1`).
pub const MAX_TARGET_LEN: usize = 4095;
/// Most directories open at once: the root directory and 63 levels below it.
pub const MAX_DEPTH: usize = 64;

/// Size and sha256 of a whole NAR, computed while it streamed past.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NarSummary {
    /// Number of bytes (the `narSize`).
    pub size: u64,
    /// sha256 over all the bytes (the `narHash`).
    pub nar_hash: Hash,
}

/// Errors from reading, validating, writing or unpacking a NAR. Offsets are byte positions in the NAR.
#[derive(Debug, thiserror::Error)]
pub enum NarError {
    #[error("not a NAR: bad magic at offset 0")]
    BadMagic,
    #[error("malformed NAR at offset {offset}: expected {expected}, found {found}")]
    UnexpectedToken {
        offset: u64,
        expected: &'static str,
        found: String,
    },
    #[error("malformed NAR at offset {offset}: non-zero padding")]
    NonZeroPadding { offset: u64 },
    #[error(
        "malformed NAR at offset {offset}: entry name of {len} bytes is longer than {MAX_NAME_LEN}"
    )]
    NameTooLong { offset: u64, len: u64 },
    #[error("malformed NAR at offset {offset}: invalid entry name {name:?}: {reason}")]
    BadName {
        offset: u64,
        name: String,
        reason: &'static str,
    },
    #[error(
        "malformed NAR at offset {offset}: entry {name:?} does not sort after {prev:?} (unsorted or duplicate)"
    )]
    NotSorted {
        offset: u64,
        prev: String,
        name: String,
    },
    #[error(
        "malformed NAR at offset {offset}: symlink target of {len} bytes is longer than {MAX_TARGET_LEN}"
    )]
    TargetTooLong { offset: u64, len: u64 },
    #[error("malformed NAR at offset {offset}: invalid symlink target: {reason}")]
    BadTarget { offset: u64, reason: &'static str },
    #[error("malformed NAR at offset {offset}: directories nested deeper than {MAX_DEPTH}")]
    TooDeep { offset: u64 },
    #[error("truncated NAR: input ended at offset {offset} before the archive was complete")]
    Truncated { offset: u64 },
    #[error("trailing data after the end of the NAR at offset {offset}")]
    TrailingData { offset: u64 },
    #[error("reading the NAR stream")]
    Read(#[source] std::io::Error),
    #[error("writing the NAR stream")]
    Write(#[source] std::io::Error),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot archive {path}: unsupported file type (only regular files, directories and symlinks)"
    )]
    UnsupportedFileType { path: PathBuf },
    #[error("cannot archive {path}: the file changed size while it was read")]
    FileChanged { path: PathBuf },
    #[error("refusing to unpack onto {path}: it already exists")]
    Exists { path: PathBuf },
}

impl NarError {
    fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> NarError {
        NarError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests;
