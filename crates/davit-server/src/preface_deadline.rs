//! A deadline on a connection's first bytes, until they tell HTTP/1.1 from HTTP/2.
//!
//! hyper-util's automatic protocol detection reads until it has either the 24-byte HTTP/2
//! preface or a byte that differs from it, and it has no time limit of its own: hyper's
//! header-read timeout starts only once HTTP/1.1 was chosen. A client that connects and sends
//! nothing, or the first bytes of the preface and then nothing, therefore held its connection
//! slot for good, and `max_connections` such sockets stopped the server accepting anyone.
//! [`PrefaceDeadline`] fails the read with `TimedOut` when the deadline passes first; after
//! that it costs one branch per read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// What a client sends first on an HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Wraps a fresh connection; see the module documentation.
#[derive(Debug)]
pub struct PrefaceDeadline<T> {
    io: T,
    /// Armed until the protocol is known: the deadline and how many preface bytes matched.
    pending: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<T> PrefaceDeadline<T> {
    /// Wraps `io`; its first bytes must tell the protocol within `limit`.
    pub fn new(io: T, limit: Duration) -> Self {
        Self {
            io,
            pending: Some((Box::pin(tokio::time::sleep(limit)), 0)),
        }
    }
}

/// How many bytes of the preface match after `seen` more bytes, or `None` once the protocol is
/// known (a differing byte: HTTP/1.1; the whole preface: HTTP/2).
fn advance(matched: usize, seen: &[u8]) -> Option<usize> {
    let want = H2_PREFACE.get(matched..)?;
    let n = seen.len().min(want.len());
    (seen.get(..n)? == want.get(..n)? && matched + n < H2_PREFACE.len()).then_some(matched + n)
}

impl<T: AsyncRead + Unpin> AsyncRead for PrefaceDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Some((_, matched)) = &mut this.pending {
                    let seen = buf.filled().get(before..).unwrap_or_default();
                    match advance(*matched, seen) {
                        // End of stream needs no deadline either.
                        Some(m) if !seen.is_empty() => *matched = m,
                        _ => this.pending = None,
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this
                    .pending
                    .as_mut()
                    .is_some_and(|(deadline, _)| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the header time-out",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PrefaceDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_protocol_is_known_at_the_first_differing_byte_or_the_whole_preface() {
        assert_eq!(advance(0, b"PRI * "), Some(6));
        assert_eq!(advance(6, b"HTTP/2.0\r\n"), Some(16));
        assert_eq!(advance(0, b"PROPFIND / HTTP/1.1\r\n"), None);
        assert_eq!(advance(0, b"GET"), None);
        assert_eq!(advance(0, H2_PREFACE), None);
        assert_eq!(advance(20, b"\r\n\r\nmore frames"), None);
        assert_eq!(advance(0, b""), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_times_out() {
        let (client, server) = tokio::io::duplex(64);
        let mut guarded = PrefaceDeadline::new(server, Duration::from_secs(3));
        let mut buf = [0u8; 8];
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn half_a_preface_times_out() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded = PrefaceDeadline::new(server, Duration::from_secs(3));
        client.write_all(b"PRI * HTTP").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 10);
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn once_the_protocol_is_known_reads_may_wait() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded = PrefaceDeadline::new(server, Duration::from_secs(3));
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 16);
        // The rest of the head is hyper's header timeout's business, not this one's.
        let late = async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            client.write_all(b"\r\n").await.unwrap();
            client
        };
        let (read, _client) = tokio::join!(guarded.read(&mut buf), late);
        assert_eq!(read.unwrap(), 2);
    }
}
