//! ferry: a native NixOS fleet deployer.
//!
//! The crate is layered; each module owns one layer and lower layers never import higher ones
//! (see `docs/architecture.md`):
//!
//! - [`store`]: store paths, hashes, nixbase32, NAR, signatures (pure, sync);
//! - [`daemon`]: the Nix worker protocol, a pure core plus a tokio client over any byte stream;
//! - [`syntax`], [`eval`], [`network`]: parsing, the embedded evaluator and the NixOps network model (pure, sync);
//! - [`ssh`]: russh sessions exposed as byte streams;
//! - [`copy`]: closure planning and the parallel NAR fan-out;
//! - [`state`]: SQLite deployments;
//! - [`deploy`]: the deploy pipeline;
//! - [`cli`]: argument parsing and rendering, the only layer that prints.

pub mod cli;
pub mod copy;
pub mod daemon;
pub mod deploy;
pub mod eval;
pub mod network;
pub mod ssh;
pub mod state;
pub mod store;
pub mod syntax;
