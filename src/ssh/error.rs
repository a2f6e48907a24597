//! Errors of the ssh layer. Every variant names the host (as the user wrote it) and the operation.

use std::path::PathBuf;
use std::time::Duration;

/// Result of the ssh layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reaching a host or running something on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target string (`[user@]host[:port]`) or an option is malformed.
    #[error("invalid target {target:?}: {reason}")]
    InvalidTarget { target: String, reason: String },

    /// An `sshOptions` entry or a `~/.ssh/config` line could not be understood.
    #[error("{origin}: {reason}")]
    Config { origin: String, reason: String },

    /// Reading or writing a local file (key, config, known_hosts) failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A private key file is readable by others; OpenSSH refuses those too.
    #[error("private key {} has mode {mode:o}; it must be 0600 (run: chmod 600 {})", path.display(), path.display())]
    KeyPermissions { path: PathBuf, mode: u32 },

    /// A key file could not be parsed or a key could not be generated.
    #[error("key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },

    /// The host name does not resolve.
    #[error("{host}: cannot resolve {hostname}: {source}")]
    Resolve {
        host: String,
        hostname: String,
        #[source]
        source: std::io::Error,
    },

    /// Nothing listens on the port (TCP RST).
    #[error("{host}: connection refused by {addr}")]
    ConnectionRefused { host: String, addr: String },

    /// The network says the host cannot be reached.
    #[error("{host}: {addr} is unreachable: {source}")]
    Unreachable {
        host: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// TCP connect, SSH handshake or authentication did not finish in time (a stalled host).
    #[error("{host}: {stage} did not finish within {}s (host down or stalled)", timeout.as_secs_f64())]
    Timeout {
        host: String,
        stage: &'static str,
        timeout: Duration,
    },

    /// The host presented a key that is in no known_hosts file.
    #[error(
        "{host}: host key is not known ({fingerprint}); refusing to connect.\n  \
         verify it, then re-run with --accept-new-host-keys to record it in {}",
        ferry_file.display()
    )]
    UnknownHostKey {
        host: String,
        fingerprint: String,
        ferry_file: PathBuf,
    },

    /// The host presented a key different from the recorded one: always refused.
    #[error(
        "{host}: HOST KEY CHANGED. known_hosts has {known_fingerprint} at {}:{line}, \
         but the host presented {presented_fingerprint}. This may be an attack (or a reinstalled host): \
         refusing. If the change is expected, remove line {line} of {}",
        file.display(), file.display()
    )]
    HostKeyChanged {
        host: String,
        presented_fingerprint: String,
        known_fingerprint: String,
        file: PathBuf,
        line: usize,
    },

    /// The host key is marked `@revoked` in a known_hosts file.
    #[error("{host}: host key {fingerprint} is revoked at {}:{line}", file.display())]
    HostKeyRevoked {
        host: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },

    /// No authentication method worked; `tried` lists every attempt and why it failed.
    #[error("{host}: authentication as {user} failed; tried:\n  - {}", tried.join("\n  - "))]
    AuthFailed {
        host: String,
        user: String,
        tried: Vec<String>,
    },

    /// The SSH protocol itself failed (handshake, key exchange, bad packet).
    #[error("{host}: ssh {op}: {source}")]
    Protocol {
        host: String,
        op: &'static str,
        #[source]
        source: russh::Error,
    },

    /// The connection died after it was established (killed, reset, or keepalives unanswered).
    #[error("{host}: connection lost during {op}: {reason}")]
    ConnectionLost {
        host: String,
        op: &'static str,
        reason: String,
    },

    /// The server refused to open a channel or run a request on it.
    #[error("{host}: server refused {op}")]
    ChannelRefused { host: String, op: &'static str },

    /// A remote command that needed a sudo password did not get a usable one.
    #[error("{host}: privilege escalation failed: {reason}")]
    Escalation { host: String, reason: String },
}

impl Error {
    /// True for errors that mean "this host could not be reached or dropped us", as opposed to a refusal.
    pub fn is_connectivity(&self) -> bool {
        matches!(
            self,
            Error::Resolve { .. }
                | Error::ConnectionRefused { .. }
                | Error::Unreachable { .. }
                | Error::Timeout { .. }
                | Error::ConnectionLost { .. }
        )
    }
}
