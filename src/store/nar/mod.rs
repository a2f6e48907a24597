//! NAR (Nix ARchive): grammar, streaming encoder, validating streaming decoder, and unpacking.
//!
//! Layer: store (pure, sync). No tokio, no other ferry module.

/// Errors from reading, validating, writing or unpacking a NAR.
#[derive(Debug, thiserror::Error)]
pub enum NarError {
    /// Placeholder until the decoder lands.
    #[error("NAR I/O error")]
    Io(#[source] std::io::Error),
}
