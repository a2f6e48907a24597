//! The Nix daemon worker protocol: a pure, version-gated core and a tokio client over any
//! `AsyncRead + AsyncWrite`.
//!
//! Layer: above `store`. Must not know about ssh or any higher layer.
