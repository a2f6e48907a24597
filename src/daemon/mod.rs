//! The Nix daemon worker protocol: a pure, version-gated core and a tokio client over any
//! `AsyncRead + AsyncWrite`.
//!
//! Layer: above `store`. Must not know about ssh or any higher layer: the ssh layer hands the
//! client a byte stream (a russh channel running `nix-daemon --stdio`), exactly like the local
//! unix socket.
//!
//! - Pure core, no I/O: [`wire`] (primitives, framing), [`version`] (the Nix release → protocol
//!   table and one constant per version-gated feature), [`op`] (op codes), [`stderr`] (the
//!   stderr channel: logs, activities, results, errors), [`handshake`], [`proto`] (request
//!   encodings and reply decodings of every op). It can be fuzzed and unit-tested without a daemon.
//! - Tokio shell: [`client::DaemonClient`] (one connection; read the cancellation contract in
//!   [`client`]), [`framed::FramedWriter`] for uploads, and [`closure`] (requisites in
//!   dependency order, with pipelined QueryPathInfo).
//!
//! ```no_run
//! # async fn demo() -> ferry::daemon::Result<()> {
//! use ferry::daemon::{self, LocalClient};
//! let mut c = LocalClient::connect_local().await?; // NIX_DAEMON_SOCKET_PATH or the default socket
//! let root = ferry::store::StorePath::from_absolute_path(
//!     "/nix/store/dcgxgfrhy8mb76rg8f1djpw23cl3fzmx-a",
//! ).expect("valid path");
//! let infos = daemon::closure(&mut c, &[root]).await?; // references first
//! let mut nar = Vec::new();
//! c.nar_from_path_with_info(&infos[0], &mut nar).await?; // streamed, validated, hash-checked
//! # Ok(()) }
//! ```
//!
//! ferry advertises protocol 1.35 and works with 1.21 (Nix 2.3) and newer; it is tested against
//! Debian's Nix 2.8.0 (1.34). Daemon errors come back as [`DaemonError`] `{ op, message }` with
//! the ANSI colours stripped; logs go to `tracing` (target `ferry::daemon`); activities and
//! results become [`Progress`] events on the channel given to
//! [`DaemonClient::set_progress`].

pub mod client;
pub mod closure;
pub mod framed;
pub mod handshake;
pub mod op;
pub mod proto;
pub mod stderr;
pub mod version;
pub mod wire;

pub use client::{DaemonClient, LocalClient, NarReader, socket_path};
pub use closure::closure;
pub use handshake::{ServerInfo, Trust};
pub use op::Op;
pub use proto::{
    BasicDerivation, BuildMode, BuildResult, BuildStatus, ClientSettings, ContentAddressMethod,
    DerivationOutput, DerivedPath, KeyedBuildResult, Missing, OutputsSpec,
};
pub use stderr::{ActivityType, Field, Progress, ResultType, Verbosity};
pub use version::ProtocolVersion;

use std::path::PathBuf;

use crate::store::StorePath;

/// An error the daemon reported for an operation (`STDERR_ERROR`).
///
/// `message` has the daemon's ANSI colour codes stripped; `raw` keeps them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {message}")]
pub struct DaemonError {
    pub op: Op,
    pub message: String,
    pub raw: String,
    /// Trace hints the daemon attached (≥1.26), ANSI stripped.
    pub traces: Vec<String>,
    /// Exit status (only daemons before 1.26 send it; 100 is a build failure).
    pub exit_status: Option<u64>,
}

impl DaemonError {
    pub(crate) fn from_remote(op: Op, e: stderr::RemoteError) -> Self {
        DaemonError {
            op,
            message: stderr::strip_ansi(e.raw.trim_end()),
            traces: e.traces.iter().map(|t| stderr::strip_ansi(t)).collect(),
            raw: e.raw,
            exit_status: e.exit_status,
        }
    }
}

/// Errors of the daemon layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the Nix daemon at {}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: I/O error talking to the Nix daemon")]
    Io {
        op: Op,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: the Nix daemon closed the connection")]
    Disconnected { op: Op },
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("{op}: protocol error: {message}")]
    Protocol { op: Op, message: String },
    #[error("{op} needs worker protocol {needed}, but the daemon negotiated {negotiated}")]
    Unsupported {
        op: Op,
        needed: ProtocolVersion,
        negotiated: ProtocolVersion,
    },
    #[error(
        "the daemon connection was poisoned by an earlier cancelled or failed operation; open a new one"
    )]
    Poisoned,
    #[error("{op}: {message}")]
    Invalid { op: Op, message: String },
    #[error("{op}: cannot write the NAR to its destination")]
    Sink {
        op: Op,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: path '{path}' is not valid")]
    InvalidPath { op: Op, path: StorePath },
    #[error("{op}: the NAR of {path} is invalid")]
    Nar {
        op: Op,
        path: StorePath,
        #[source]
        source: crate::store::NarError,
    },
    #[error("{op}: the NAR of {path} does not match its narHash")]
    NarMismatch { op: Op, path: StorePath },
    #[error("{op}: cannot read the data to upload")]
    Source {
        op: Op,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
