//! A time limit on a client that stops reading.
//!
//! A client that requests a large file and then reads nothing keeps the server's writes
//! pending for good: TCP probes the zero window forever, and the connection holds its slot
//! and its buffers (`max_connections` such clients stop the server, a slow-read attack).
//! [`SendTimeout`] fails a write with `TimedOut` once the socket has accepted nothing for the
//! limit, and hyper then closes the connection. Writes that complete cost one store; the timer
//! is armed only when a write has to wait.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Wraps a connection; see the module documentation.
#[derive(Debug)]
pub struct SendTimeout<T> {
    io: T,
    limit: Duration,
    /// Made the first time a write waits, then reset for each new wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// A write is waiting and the timer runs for it.
    waiting: bool,
}

impl<T> SendTimeout<T> {
    /// Wraps `io`: a write that makes no progress for `limit` fails.
    pub fn new(io: T, limit: Duration) -> Self {
        Self {
            io,
            limit,
            timer: None,
            waiting: false,
        }
    }

    /// After the inner write returned `polled`: clears the wait on progress, otherwise starts
    /// or checks the timer.
    fn check<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.waiting = false;
            return polled;
        }
        let deadline = tokio::time::Instant::now() + self.limit;
        let timer = match &mut self.timer {
            Some(t) => {
                if !self.waiting {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.waiting = true;
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing within the send time-out",
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.check(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_shutdown(cx);
        self.check(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_reader_that_stops_times_the_writer_out() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut guarded = SendTimeout::new(server, Duration::from_millis(500));
        // Progress keeps it alive well past the limit.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                client.read_exact(&mut buf).await.unwrap();
            }
            client // then reads nothing more, but stays connected
        });
        let chunk = [7u8; 512];
        for _ in 0..8 {
            guarded.write_all(&chunk).await.unwrap();
        }
        let started = std::time::Instant::now();
        let err = guarded.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(400));
        drop(reader.await.unwrap());
    }
}
