//! A writer that turns a byte stream into the protocol's framed encoding (`u64 len ‖ bytes`…,
//! then `u64 0`), for uploads. It buffers one frame at a time, so memory stays at one frame
//! whatever the upload size.
//!
//! Layer: `daemon` (tokio shell). Must not know about ssh.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::wire::FRAME_SIZE;

const HEADER: usize = 8;

/// Frames everything written to it into `inner`. Call [`FramedWriter::finish`] to send the
/// terminating empty frame; dropping it without that leaves the stream unterminated (and the
/// connection must then be treated as poisoned).
pub struct FramedWriter<'a, W: ?Sized> {
    inner: &'a mut W,
    /// Header space followed by the frame payload.
    buf: Vec<u8>,
    /// While draining, how much of `buf` has been written.
    pos: usize,
    draining: bool,
    written: u64,
}

impl<'a, W: AsyncWrite + Unpin + ?Sized> FramedWriter<'a, W> {
    pub fn new(inner: &'a mut W) -> Self {
        let mut buf = Vec::with_capacity(HEADER + FRAME_SIZE);
        buf.resize(HEADER, 0);
        FramedWriter {
            inner,
            buf,
            pos: 0,
            draining: false,
            written: 0,
        }
    }

    /// Payload bytes accepted so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.draining {
            let len = self.buf.len() - HEADER;
            if len == 0 {
                return Poll::Ready(Ok(()));
            }
            self.buf[..HEADER].copy_from_slice(&(len as u64).to_le_bytes());
            self.draining = true;
            self.pos = 0;
        }
        while self.pos < self.buf.len() {
            let n = ready!(Pin::new(&mut *self.inner).poll_write(cx, &self.buf[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.buf.truncate(HEADER);
        self.draining = false;
        Poll::Ready(Ok(()))
    }

    /// Send the buffered frame, the terminator, and flush.
    pub async fn finish(mut self) -> io::Result<u64> {
        std::future::poll_fn(|cx| self.poll_drain(cx)).await?;
        self.inner.write_all(&0u64.to_le_bytes()).await?;
        self.inner.flush().await?;
        Ok(self.written)
    }
}

impl<W: AsyncWrite + Unpin + ?Sized> AsyncWrite for FramedWriter<'_, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.draining || this.buf.len() >= HEADER + FRAME_SIZE {
            ready!(this.poll_drain(cx))?;
        }
        let n = data.len().min(HEADER + FRAME_SIZE - this.buf.len());
        this.buf.extend_from_slice(&data[..n]);
        this.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut *this.inner).poll_flush(cx)
    }

    /// Only flushes: the underlying connection outlives the upload.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_and_terminates() {
        let mut out: Vec<u8> = Vec::new();
        let data: Vec<u8> = (0..(FRAME_SIZE * 2 + 10)).map(|i| i as u8).collect();
        let mut fw = FramedWriter::new(&mut out);
        fw.write_all(&data).await.unwrap();
        assert_eq!(fw.finish().await.unwrap(), data.len() as u64);
        // Parse it back.
        let mut got = Vec::new();
        let mut i = 0;
        loop {
            let len = u64::from_le_bytes(out[i..i + 8].try_into().unwrap()) as usize;
            i += 8;
            if len == 0 {
                break;
            }
            assert!(len <= FRAME_SIZE);
            got.extend_from_slice(&out[i..i + len]);
            i += len;
        }
        assert_eq!(i, out.len());
        assert_eq!(got, data);
    }
}
