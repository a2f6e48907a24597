//! Where a copy reads from or writes to: the local daemon's socket, or a host over SSH where each
//! store session is a `nix-daemon --stdio` channel on one shared connection.
//!
//! Layer: `copy`. Uses `ssh` for transport and `daemon` for the protocol; knows nothing of the
//! engine's scheduling.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::daemon::{ClientSettings, DaemonClient};
use crate::ssh::{ConnectOptions, SshSession, Target};

use super::{Error, Result};

/// The command each store session runs on an SSH host.
pub const REMOTE_DAEMON: &str = "nix-daemon --stdio";

/// Any bidirectional byte stream a daemon client can run over.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// A daemon client over a boxed stream: the same type for unix sockets and SSH channels.
pub type Client = DaemonClient<
    tokio::io::ReadHalf<Box<dyn ByteStream>>,
    tokio::io::WriteHalf<Box<dyn ByteStream>>,
>;

/// One end of a copy.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A daemon on a unix socket (`None`: the local daemon, see [`crate::daemon::socket_path`]).
    Local { socket: Option<PathBuf> },
    /// A host reached over SSH.
    Ssh {
        target: Target,
        opts: Box<ConnectOptions>,
    },
}

impl Endpoint {
    /// The name used in events, errors and summaries (`host0`, `root@10.0.0.1:22`, `local`).
    pub fn name(&self) -> String {
        match self {
            Endpoint::Local { socket: None } => "local".to_string(),
            Endpoint::Local { socket: Some(p) } => format!("unix:{}", p.display()),
            Endpoint::Ssh { target, .. } => target.to_string(),
        }
    }

    /// Establish the transport (the SSH connection; nothing for a unix socket).
    pub async fn connect(&self) -> Result<Connection> {
        let name = self.name();
        let session = match self {
            Endpoint::Local { .. } => None,
            Endpoint::Ssh { target, opts } => {
                Some(Arc::new(SshSession::connect(target, opts).await.map_err(
                    |source| Error::Ssh {
                        host: name.clone(),
                        source: Box::new(source),
                    },
                )?))
            }
        };
        Ok(Connection {
            endpoint: self.clone(),
            name,
            session,
            written: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// An established transport to an endpoint; opens store sessions on it.
pub struct Connection {
    endpoint: Endpoint,
    name: String,
    session: Option<Arc<SshSession>>,
    written: Arc<AtomicU64>,
}

impl Connection {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes written to all of this connection's store sessions so far (what went on the wire,
    /// before SSH's own framing and encryption).
    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Whether the transport is known to be gone.
    pub fn is_closed(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.is_closed())
    }

    /// Open one more store session (a daemon connection) on this transport and handshake.
    pub async fn open_client(&self) -> Result<Client> {
        let daemon_err = |source| Error::Daemon {
            host: self.name.clone(),
            source: Box::new(source),
        };
        let stream: Box<dyn ByteStream> = match (&self.endpoint, &self.session) {
            (Endpoint::Ssh { .. }, Some(session)) => {
                let s = session
                    .open_stream(REMOTE_DAEMON)
                    .await
                    .map_err(|source| Error::Ssh {
                        host: self.name.clone(),
                        source: Box::new(source),
                    })?;
                Box::new(s)
            }
            (Endpoint::Local { socket }, _) => {
                let path = socket.clone().unwrap_or_else(crate::daemon::socket_path);
                let s = tokio::net::UnixStream::connect(&path)
                    .await
                    .map_err(|source| daemon_err(crate::daemon::Error::Connect { path, source }))?;
                Box::new(s)
            }
            (Endpoint::Ssh { .. }, None) => {
                return Err(Error::Failed {
                    host: self.name.clone(),
                    message: "not connected".to_string(),
                });
            }
        };
        let counted: Box<dyn ByteStream> = Box::new(Counted {
            inner: stream,
            written: self.written.clone(),
        });
        DaemonClient::from_stream(counted, &ClientSettings::default())
            .await
            .map_err(daemon_err)
    }

    /// Close the SSH connection politely (a no-op for unix sockets or when sessions still use it).
    pub async fn close(self) {
        if let Some(s) = self.session
            && let Ok(s) = Arc::try_unwrap(s)
        {
            let _ = s.close().await;
        }
    }
}

/// A stream that counts the bytes written through it.
struct Counted {
    inner: Box<dyn ByteStream>,
    written: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
