//! SSH transport: one russh connection per host, many channels on it.
//!
//! Layer: `ssh` (tokio). It gives higher layers remote commands ([`RemoteProcess`], streamed stdout/stderr,
//! exit status or signal), interactive PTY channels, and byte streams ([`SshStream`], `AsyncRead + AsyncWrite`)
//! over which the daemon client speaks `nix-daemon --stdio`. ferry never spawns `ssh`.
//!
//! What lives here:
//! - [`config`]: a small `~/.ssh/config` parser plus NixOps-style `sshOptions` (`-o K=V`, `-p`, `-i`, `-l`, `-J`);
//! - [`known_hosts`]: OpenSSH `known_hosts` (hashed entries, `[host]:port`, wildcards), ferry's own file + the user's;
//! - [`keys`]: generating and loading ed25519 keys in OpenSSH format (0600);
//! - [`quote`]: quoting words for the remote POSIX shell, and privilege escalation (`sudo -S`);
//! - [`session`]: [`SshSession`] (connect, authenticate, ProxyJump, channels);
//! - [`stream`]: the byte-stream adapter over a channel.
//!
//! Must not depend on: `daemon`, `copy`, `deploy`, `cli`, `state`. Never prints; never reads a terminal (the CLI
//! asks for a sudo password and hands it in).

pub mod config;
pub mod error;
pub mod keys;
pub mod known_hosts;
pub mod quote;
pub mod session;
pub mod stream;

pub use config::{HostConfig, SshConfig, StrictHostKeyChecking};
pub use error::{Error, Result};
pub use keys::{generate_ed25519_keypair, load_private_key};
pub use quote::{Escalation, quote_command, quote_word};
pub use session::{
    ConnectOptions, ExecEvent, ExitStatus, Output, PtyRequest, RemoteProcess, SessionInfo,
    SshSession, Target,
};
pub use stream::SshStream;
