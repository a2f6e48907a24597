//! [`SshStream`]: a channel as a byte stream (`AsyncRead + AsyncWrite + Unpin + Send`).
//!
//! Layer: `ssh` (tokio). The daemon client drives `nix-daemon --stdio` through this without knowing about SSH.
//! Unlike russh's own `ChannelStream`, this adapter keeps what the remote command writes to stderr (the last
//! 64 KiB, for error messages), records the exit status, and turns a connection that dies mid-stream into an
//! `io::Error` (`ConnectionAborted`) instead of a clean-looking EOF, so a truncated reply is never mistaken for
//! a complete one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use russh::client::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::session::{ExitStatus, Shared, sig_name};

/// How much of the remote stderr is kept.
const STDERR_TAIL: usize = 64 * 1024;

type WaitFuture = Pin<Box<dyn Future<Output = (ChannelReadHalf, Option<ChannelMsg>)> + Send>>;

enum ReadState {
    Idle(ChannelReadHalf),
    Waiting(WaitFuture),
    /// End of stdout; the read half is kept for `wait_exit`.
    Eof(Option<ChannelReadHalf>),
    Lost,
}

#[derive(Debug, Default)]
struct Side {
    stderr: Vec<u8>,
    status: Option<ExitStatus>,
}

/// A remote command's stdin/stdout as one bidirectional byte stream.
pub struct SshStream {
    host: String,
    shared: Arc<Shared>,
    read: ReadState,
    pending: Option<(Bytes, usize)>,
    writer: Pin<Box<dyn AsyncWrite + Send + Sync>>,
    write_half: Option<ChannelWriteHalf<Msg>>,
    side: Arc<Mutex<Side>>,
}

impl std::fmt::Debug for SshStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshStream")
            .field("host", &self.host)
            .finish()
    }
}

fn lock(m: &Mutex<Side>) -> std::sync::MutexGuard<'_, Side> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SshStream {
    pub(crate) fn new(channel: Channel<Msg>, host: String, shared: Arc<Shared>) -> Self {
        let (read_half, write_half) = channel.split();
        let writer = Box::pin(write_half.make_writer());
        SshStream {
            host,
            shared,
            read: ReadState::Idle(read_half),
            pending: None,
            writer,
            write_half: Some(write_half),
            side: Arc::new(Mutex::new(Side::default())),
        }
    }

    /// The last 64 KiB the remote command wrote to stderr (lossily decoded).
    pub fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&lock(&self.side).stderr).into_owned()
    }

    /// The exit status, once the remote command has exited and it has been read.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        lock(&self.side).status.clone()
    }

    /// Drains the channel after EOF and returns how the command ended (or `None` if the connection dropped).
    pub async fn wait_exit(&mut self) -> Option<ExitStatus> {
        let read_half = match std::mem::replace(&mut self.read, ReadState::Eof(None)) {
            ReadState::Idle(r) => r,
            ReadState::Waiting(fut) => {
                let (r, msg) = fut.await;
                if let Some(msg) = msg {
                    self.record(msg);
                }
                r
            }
            ReadState::Eof(Some(r)) => r,
            ReadState::Eof(None) | ReadState::Lost => return self.exit_status(),
        };
        let mut read_half = read_half;
        while let Some(msg) = read_half.wait().await {
            let close = matches!(msg, ChannelMsg::Close);
            self.record(msg);
            if close {
                break;
            }
        }
        self.exit_status()
    }

    /// Bookkeeping for non-data messages. Returns the data of a `Data` message.
    fn record(&self, msg: ChannelMsg) -> Option<Bytes> {
        match msg {
            ChannelMsg::Data { data } => return Some(data),
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                let mut side = lock(&self.side);
                side.stderr.extend_from_slice(&data);
                let excess = side.stderr.len().saturating_sub(STDERR_TAIL);
                side.stderr.drain(..excess);
            }
            ChannelMsg::ExitStatus { exit_status } => {
                lock(&self.side)
                    .status
                    .get_or_insert(ExitStatus::Code(exit_status));
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                ..
            } => {
                lock(&self.side).status.get_or_insert(ExitStatus::Signal {
                    name: sig_name(&signal_name),
                    core_dumped,
                    message: error_message,
                });
            }
            _ => {}
        }
        None
    }

    fn lost_error(&self) -> io::Error {
        let reason = self
            .shared
            .disconnect_reason()
            .unwrap_or_else(|| "connection closed".to_string());
        let tail = self.stderr_tail();
        let tail = tail.trim();
        let msg = if tail.is_empty() {
            format!("{}: ssh connection lost mid-stream: {reason}", self.host)
        } else {
            format!(
                "{}: ssh connection lost mid-stream: {reason}; remote stderr: {tail}",
                self.host
            )
        };
        io::Error::new(io::ErrorKind::ConnectionAborted, msg)
    }
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if let Some((data, off)) = this.pending.take() {
                let n = buf.remaining().min(data.len() - off);
                buf.put_slice(&data[off..off + n]);
                if off + n < data.len() {
                    this.pending = Some((data, off + n));
                }
                return Poll::Ready(Ok(()));
            }
            match std::mem::replace(&mut this.read, ReadState::Eof(None)) {
                ReadState::Eof(r) => {
                    this.read = ReadState::Eof(r);
                    return Poll::Ready(Ok(()));
                }
                ReadState::Lost => {
                    this.read = ReadState::Lost;
                    return Poll::Ready(Err(this.lost_error()));
                }
                ReadState::Idle(mut read_half) => {
                    this.read = ReadState::Waiting(Box::pin(async move {
                        let msg = read_half.wait().await;
                        (read_half, msg)
                    }));
                }
                ReadState::Waiting(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.read = ReadState::Waiting(fut);
                        return Poll::Pending;
                    }
                    Poll::Ready((read_half, msg)) => match msg {
                        Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) => {
                            // Keep the read half so `wait_exit` can still collect the exit status.
                            this.read = ReadState::Eof(Some(read_half));
                            return Poll::Ready(Ok(()));
                        }
                        None => {
                            this.read = ReadState::Lost;
                            return Poll::Ready(Err(this.lost_error()));
                        }
                        Some(other) => {
                            this.read = ReadState::Idle(read_half);
                            if let Some(data) = this.record(other) {
                                if !data.is_empty() {
                                    this.pending = Some((data, 0));
                                }
                            }
                        }
                    },
                },
            }
        }
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        match this.writer.as_mut().poll_write(cx, buf) {
            Poll::Ready(Err(_)) => Poll::Ready(Err(this.lost_error())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.as_mut().poll_flush(cx)
    }

    /// Sends EOF: the remote command sees end of stdin; reading continues.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.writer.as_mut().poll_shutdown(cx) {
            Poll::Ready(Err(_)) => Poll::Ready(Err(this.lost_error())),
            other => other,
        }
    }
}

impl Drop for SshStream {
    fn drop(&mut self) {
        // Close the channel so the remote command gets SIGPIPE/EOF and the server frees it.
        if let (Some(w), Ok(rt)) = (
            self.write_half.take(),
            tokio::runtime::Handle::try_current(),
        ) {
            rt.spawn(async move {
                let _ = w.close().await;
            });
        }
    }
}
