//! Parallel closure copy: ferry's hot path (`ferry copy`, and the deploy layer's push).
//!
//! Layer: `copy`, above `store`, `daemon` and `ssh`. Must not depend on `cli`, `deploy`, `network`
//! or `state`; never prints (progress goes out as typed [`Event`]s on a channel).
//!
//! How a copy runs ([`copy`]):
//! 1. **Plan once.** The closure of the roots is computed once on the source daemon; every target
//!    is asked, concurrently, which of those paths it holds (one QueryValidPaths each). The plan is
//!    the set of missing paths per target, in reference order.
//! 2. **Read once.** Each NAR needed by at least one target is read exactly once from the source
//!    daemon (NarFromPath, validated against its narHash as it streams), compressed once with zstd
//!    on rayon (1 MiB independent frames) and written to the content-addressed on-disk cache
//!    ([`cache::NarCache`], blake3-keyed by narHash). A later run finds it there and does not read
//!    the daemon again.
//! 3. **Fan out.** Every target has its own uploader tasks (several `nix-daemon --stdio` sessions
//!    over one SSH connection), which stream NARs from the cache as soon as they are ready. Targets
//!    never wait for each other: the cache on disk is the buffer, so a slow target neither stalls
//!    the fast ones nor makes memory grow. Memory is a few MiB per session, whatever the closure.
//! 4. **Order and safety.** A target receives a path only after all its references are registered
//!    there (or come earlier in the same AddMultipleToStore batch); only paths known to be missing
//!    are sent; a path is in at most one batch at a time per host (see [`schedule`]).
//! 5. **Faults.** A target that fails is reported and the others go on. A dropped connection is
//!    reconnected with backoff; the copy resumes with what is still missing (asked again). Nix
//!    registers a path only once its whole NAR arrived and checked, so a cancelled copy (Ctrl-C,
//!    see [`CopyOptions::cancel`]) leaves no half-registered path.

pub mod cache;
pub mod endpoint;
pub mod engine;
pub mod schedule;

pub use cache::NarCache;
pub use endpoint::Endpoint;
pub use engine::{CopyOptions, CopyReport, Event, Stats, TargetReport, copy};

use crate::store::StorePath;

/// Errors of the copy layer. Every variant names the host (as the user wrote it) or the path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{host}: {source}")]
    Ssh {
        host: String,
        #[source]
        source: Box<crate::ssh::Error>,
    },
    #[error("{host}: {source}")]
    Daemon {
        host: String,
        #[source]
        source: Box<crate::daemon::Error>,
    },
    #[error("{host}: cannot sign {path}: {source}")]
    Sign {
        host: String,
        path: StorePath,
        #[source]
        source: crate::store::Error,
    },
    #[error("NAR cache {op} {}", path.display())]
    Cache {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the cached NAR of {path} is corrupt (it does not match its narHash); it was removed")]
    CacheCorrupt { path: StorePath },
    #[error("{host}: the copy was cancelled")]
    Cancelled { host: String },
    #[error("{host}: {message}")]
    Failed { host: String, message: String },
}

impl Error {
    /// Whether reconnecting may help: connection-level trouble, not a refusal by the daemon.
    pub fn is_transient(&self) -> bool {
        use crate::daemon::Error as D;
        use crate::ssh::Error as S;
        match self {
            Error::Ssh { source, .. } => !matches!(
                **source,
                S::InvalidTarget { .. }
                    | S::Config { .. }
                    | S::KeyPermissions { .. }
                    | S::Key { .. }
                    | S::Resolve { .. }
                    | S::Io { .. }
                    | S::UnknownHostKey { .. }
                    | S::HostKeyChanged { .. }
                    | S::HostKeyRevoked { .. }
                    | S::AuthFailed { .. }
                    | S::Escalation { .. }
            ),
            Error::Daemon { source, .. } => matches!(
                **source,
                D::Connect { .. }
                    | D::Io { .. }
                    | D::Disconnected { .. }
                    | D::Poisoned
                    | D::Protocol { .. }
                    | D::Source { .. }
                    | D::Sink { .. }
            ),
            // A corrupt cache entry was removed: the retry reads the NAR from the daemon again.
            Error::CacheCorrupt { .. } => true,
            Error::Cache { .. } | Error::Sign { .. } | Error::Cancelled { .. } => false,
            Error::Failed { .. } => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
