//! The NixOps network model: machine discovery, typed deployment options and lint rules.
//!
//! Layer: `network` (pure, sync). It uses the embedded evaluator ([`crate::eval`]) and the syntax helpers
//! ([`crate::syntax`]); it must not depend on tokio, the store daemon, ssh, deploy or the CLI, and it never
//! prints: findings are [`crate::syntax::Diagnostic`]s.
//!
//! Discovery runs an embedded Nix driver (`nix/driver.nix`, registered as a virtual file) that merges the
//! network files, finds the machines, evaluates their modules with lazily-throwing stand-ins for what
//! discovery cannot provide, and resolves module priorities. The Rust side ([`discover`]) walks the result
//! lazily, one option at a time, so one broken option is one diagnostic, not a failed run.

pub mod ast;
pub mod discover;
pub mod lint;
pub mod options;

pub use discover::{DiscoverOptions, Discovery, discover};
pub use options::{Deployment, Key, KeySource, Machine, Network, SecretText, UploadAt};

use std::path::PathBuf;

/// The driver expression, as registered with the evaluator.
pub const DRIVER_NIX: &str = include_str!("nix/driver.nix");
/// ferry's minimal `lib`, used when `<nixpkgs/lib>` does not resolve.
pub const LIB_NIX: &str = include_str!("nix/lib.nix");
/// A wrapper that runs the driver under `nix-instantiate` (tests and benchmarks).
pub const CLI_NIX: &str = include_str!("nix/cli.nix");

/// Where the embedded files live in the evaluator's virtual file system.
pub const VIRTUAL_DIR: &str = "/ferry-internal/network";

/// Errors that stop discovery as a whole (per-option problems are diagnostics instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no network file given")]
    NoFiles,
    #[error("cannot read network file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The embedded driver itself failed (a bug in ferry or the evaluator, not in the network).
    #[error("the network driver failed: {0}")]
    Driver(#[source] Box<crate::eval::EvalError>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
