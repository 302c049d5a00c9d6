//! A transport wrapper that makes hyper reject request lines carrying a raw `#`: it runs
//! [`FragmentScanner`] (davit-proto, where the reasons are written down) on every read, so
//! `DELETE /litmus/frag/#ment HTTP/1.1` reaches hyper as `DELETE /litmus/frag/ ment HTTP/1.1`,
//! which hyper rejects with 400, instead of as `DELETE /litmus/frag/`.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use davit_proto::fragment::FragmentScanner;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Wraps a client connection and neutralises a raw `#` in a request-target. Reads are
/// returned as soon as the inner reader produces them; nothing is held back. Writes, flushes
/// and shutdown are passed straight through.
#[derive(Debug)]
pub struct FragmentGuard<T> {
    io: T,
    scanner: FragmentScanner,
}

impl<T> FragmentGuard<T> {
    /// Wraps `io`, a fresh connection whose first byte read will be the start of a request.
    pub fn new(io: T) -> Self {
        Self {
            io,
            scanner: FragmentScanner::new(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FragmentGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if let Some(new) = buf.filled_mut().get_mut(before..) {
            this.scanner.scan(new);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FragmentGuard<T> {
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
    use davit_proto::fragment::MAX_HEAD;
    use std::collections::VecDeque;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A reader that yields the given chunks one per read (split further if the caller's
    /// buffer is smaller), then EOF.
    struct Chunks(VecDeque<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(chunk) = self.0.front_mut() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                chunk.drain(..n);
                if chunk.is_empty() {
                    self.0.pop_front();
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Feeds `chunks` through a guard, checking that every read hands back exactly the
    /// bytes of the corresponding chunk (nothing delayed), and returns all bytes read.
    async fn guard_chunks(chunks: &[&[u8]]) -> Vec<u8> {
        let mut guard = FragmentGuard::new(Chunks(
            chunks
                .iter()
                .filter(|c| !c.is_empty())
                .map(|c| c.to_vec())
                .collect(),
        ));
        let mut out = Vec::new();
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            let mut buf = vec![0u8; chunk.len() + 16];
            let n = guard.read(&mut buf).await.unwrap();
            assert_eq!(n, chunk.len(), "a read must return the chunk at once");
            out.extend_from_slice(&buf[..n]);
        }
        let mut rest = Vec::new();
        guard.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        out
    }

    async fn guard(input: &[u8]) -> Vec<u8> {
        guard_chunks(&[input]).await
    }

    /// Feeds `input` one byte per read.
    async fn guard_bytewise(input: &[u8]) -> Vec<u8> {
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        guard_chunks(&chunks).await
    }

    /// Asserts the guard leaves `input` untouched, in one read and byte by byte.
    async fn assert_untouched(input: &[u8]) {
        assert_eq!(guard(input).await, input);
        assert_eq!(guard_bytewise(input).await, input);
    }

    /// Asserts the guard turns `input` into `expected`, in one read and byte by byte.
    async fn assert_guarded(input: &[u8], expected: &[u8]) {
        assert_eq!(guard(input).await, expected);
        assert_eq!(guard_bytewise(input).await, expected);
    }

    #[tokio::test]
    async fn plain_request_untouched() {
        assert_untouched(b"GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n").await;
    }

    #[tokio::test]
    async fn hash_in_target_replaced() {
        assert_guarded(
            b"DELETE /litmus/frag/#ment HTTP/1.1\r\nHost: x\r\n\r\n",
            b"DELETE /litmus/frag/ ment HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await;
    }

    #[tokio::test]
    async fn every_hash_in_target_replaced() {
        assert_guarded(
            b"GET http://h/#a#b HTTP/1.1\r\n\r\n",
            b"GET http://h/ a b HTTP/1.1\r\n\r\n",
        )
        .await;
        assert_guarded(b"GET # HTTP/1.1\r\n\r\n", b"GET   HTTP/1.1\r\n\r\n").await;
    }

    #[tokio::test]
    async fn hash_in_header_value_untouched() {
        assert_untouched(
            b"GET /a HTTP/1.1\r\nHost: x\r\nDestination: http://x/b#c\r\nX-#: #\r\n\r\n",
        )
        .await;
    }

    #[tokio::test]
    async fn hash_in_method_untouched() {
        // '#' is a tchar, so legal in a method; only the target is guarded.
        assert_untouched(b"M#X /a HTTP/1.1\r\n\r\n").await;
    }

    #[tokio::test]
    async fn hash_in_version_untouched() {
        assert_untouched(b"GET /a HTTP/1.1#\r\n\r\nGET /b#c HTTP/1.1\r\n\r\n").await;
    }

    #[tokio::test]
    async fn body_untouched_then_next_request_guarded() {
        let body = "DELETE /litmus/frag/#ment HTTP/1.1\r\nHost: x\r\n\r\n";
        let head = format!("PUT /f HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
        let input = format!("{head}{body}DELETE /litmus/frag/#ment HTTP/1.1\r\n\r\n");
        let expected = format!("{head}{body}DELETE /litmus/frag/ ment HTTP/1.1\r\n\r\n");
        assert_guarded(input.as_bytes(), expected.as_bytes()).await;
    }

    #[tokio::test]
    async fn body_split_across_reads() {
        let out = guard_chunks(&[
            b"PUT /f HTTP/1.1\r\ncontent-length:  8 \r\n\r\nG",
            b"ET /",
            b"#\r\nGET /#",
            b" HTTP/1.1\r\n\r\n",
        ])
        .await;
        assert_eq!(
            out,
            b"PUT /f HTTP/1.1\r\ncontent-length:  8 \r\n\r\nGET /#\r\nGET /  HTTP/1.1\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn zero_content_length() {
        assert_guarded(
            b"PUT /f HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /#x HTTP/1.1\r\n\r\n",
            b"PUT /f HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET / x HTTP/1.1\r\n\r\n",
        )
        .await;
    }

    #[tokio::test]
    async fn pipelined_requests() {
        assert_guarded(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b#1 HTTP/1.1\r\nHost: x#\r\n\r\n\
              HEAD /c HTTP/1.0\r\n\r\nDELETE /d#2 HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b 1 HTTP/1.1\r\nHost: x#\r\n\r\n\
              HEAD /c HTTP/1.0\r\n\r\nDELETE /d 2 HTTP/1.1\r\n\r\n",
        )
        .await;
    }

    #[tokio::test]
    async fn request_line_split_at_every_point() {
        let input: &[u8] = b"DELETE /litmus/frag/#ment HTTP/1.1\r\nHost: x\r\n\r\n";
        let expected: &[u8] = b"DELETE /litmus/frag/ ment HTTP/1.1\r\nHost: x\r\n\r\n";
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let (a, rest) = input.split_at(i);
                let (b, c) = rest.split_at(j - i);
                assert_eq!(
                    guard_chunks(&[a, b, c]).await,
                    expected,
                    "split at {i}, {j}"
                );
            }
        }
        assert_eq!(guard_bytewise(input).await, expected);
    }

    #[tokio::test]
    async fn bare_lf_line_endings() {
        assert_guarded(
            b"PUT /f HTTP/1.1\nContent-Length: 3\n\n#a#GET /#b HTTP/1.1\n\n",
            b"PUT /f HTTP/1.1\nContent-Length: 3\n\n#a#GET / b HTTP/1.1\n\n",
        )
        .await;
    }

    #[tokio::test]
    async fn leading_empty_lines_skipped() {
        assert_guarded(
            b"\r\n\r\nGET /#x HTTP/1.1\r\n\r\n\r\n\nGET /#y HTTP/1.1\r\n\r\n",
            b"\r\n\r\nGET / x HTTP/1.1\r\n\r\n\r\n\nGET / y HTTP/1.1\r\n\r\n",
        )
        .await;
    }

    #[tokio::test]
    async fn chunked_passes_through() {
        assert_untouched(
            b"PUT /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
              20\r\nGET /#x HTTP/1.1\r\n\r\n\r\n0\r\n\r\nGET /#y HTTP/1.1\r\n\r\n",
        )
        .await;
        // Transfer-Encoding wins over Content-Length.
        assert_untouched(
            b"PUT /f HTTP/1.1\r\nContent-Length: 1\r\ntransfer-encoding: chunked\r\n\r\n\
              0\r\n\r\nGET /#y HTTP/1.1\r\n\r\n",
        )
        .await;
    }

    #[tokio::test]
    async fn expect_passes_through() {
        assert_untouched(
            b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n\
              GET /#y HTTP/1.1\r\n\r\n",
        )
        .await;
    }

    #[tokio::test]
    async fn upgrade_and_connect_pass_through() {
        assert_untouched(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /#y HTTP/1.1\r\n\r\n")
            .await;
        assert_untouched(b"CONNECT h:443 HTTP/1.1\r\n\r\nGET /#y HTTP/1.1\r\n\r\n").await;
        assert_untouched(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /#y HTTP/1.1\r\n\r\n").await;
    }

    #[tokio::test]
    async fn bad_content_length_passes_through() {
        for cl in [
            "Content-Length: 3\r\nContent-Length: 3",
            "Content-Length: 3, 3",
            "Content-Length: +3",
            "Content-Length: ",
            "Content-Length: 3x",
            "Content-Length: 99999999999999999999999",
        ] {
            let input = format!("PUT /f HTTP/1.1\r\n{cl}\r\n\r\nabcGET /#y HTTP/1.1\r\n\r\n");
            assert_untouched(input.as_bytes()).await;
        }
    }

    #[tokio::test]
    async fn huge_content_length_body_skipped() {
        let input = b"PUT /f HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\nGET /#y HTTP/1.1\r\n\r\n";
        assert_untouched(input).await;
    }

    #[tokio::test]
    async fn oversized_head_passes_through() {
        let mut input = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        input.resize(input.len() + MAX_HEAD, b'a');
        input.extend_from_slice(b"\r\n\r\nGET /#y HTTP/1.1\r\n\r\n");
        assert_eq!(guard(&input).await, input);
        // Just under the limit is still guarded.
        let mut input = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        input.resize(MAX_HEAD - 4, b'a');
        input.extend_from_slice(b"\r\n\r\nGET /#y HTTP/1.1\r\n\r\n");
        let mut expected = input.clone();
        let at = expected.len() - 15;
        assert_eq!(expected[at], b'#');
        expected[at] = b' ';
        assert_eq!(guard(&input).await, expected);
    }

    #[tokio::test]
    async fn endless_empty_lines_pass_through() {
        let mut input = b"\r\n".repeat(MAX_HEAD / 2 + 1);
        input.extend_from_slice(b"GET /#y HTTP/1.1\r\n\r\n");
        assert_eq!(guard(&input).await, input);
    }

    #[tokio::test]
    async fn malformed_lines_pass_through() {
        for input in [
            // No version: an HTTP/0.9-style line.
            &b"GET /#x\r\n\r\nGET /#y HTTP/1.1\r\n\r\n"[..],
            // Unknown version.
            b"GET /x HTTP/2\r\n\r\nGET /#y HTTP/1.1\r\n\r\n",
            // Obs-fold continuation line.
            b"GET /x HTTP/1.1\r\nA: b\r\n c\r\n\r\nGET /#y HTTP/1.1\r\n\r\n",
            // Field line without a colon, and a field name with a space.
            b"GET /x HTTP/1.1\r\nA b\r\n\r\nGET /#y HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/1.1\r\nContent-Length : 3\r\n\r\nabcGET /#y HTTP/1.1\r\n\r\n",
            // Binary garbage instead of a method.
            b"\x16\x03\x01#/#\r\n\r\nGET /#y HTTP/1.1\r\n\r\n",
        ] {
            let out = guard(input).await;
            // A '#' in the first target may be replaced, but the second request is never
            // reached since the guard gave up.
            assert!(out.ends_with(b"GET /#y HTTP/1.1\r\n\r\n"), "{input:?}");
        }
    }

    #[tokio::test]
    async fn reads_into_partly_filled_buffer() {
        let mut guard = FragmentGuard::new(Chunks(VecDeque::from([b"GET /#".to_vec()])));
        let mut storage = [b'#'; 10];
        let mut buf = ReadBuf::new(&mut storage);
        buf.put_slice(b"##");
        std::future::poll_fn(|cx| Pin::new(&mut guard).poll_read(cx, &mut buf))
            .await
            .unwrap();
        assert_eq!(buf.filled(), b"##GET / ");
    }

    #[tokio::test]
    async fn duplex_round_trip() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = FragmentGuard::new(server);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let request: &[u8] =
            b"PUT /a HTTP/1.1\r\nContent-Length: 4\r\n\r\n#b#cDELETE /d#e HTTP/1.1\r\n\r\n";
        let writer = tokio::spawn(async move {
            for piece in request.chunks(7) {
                client_write.write_all(piece).await.unwrap();
            }
            client_write.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(
            got,
            b"PUT /a HTTP/1.1\r\nContent-Length: 4\r\n\r\n#b#cDELETE /d e HTTP/1.1\r\n\r\n"
        );

        // Writes pass straight through, untouched.
        server
            .write_all(b"HTTP/1.1 400 Bad #\r\n\r\n")
            .await
            .unwrap();
        server.flush().await.unwrap();
        server.shutdown().await.unwrap();
        let mut reply = Vec::new();
        client_read.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"HTTP/1.1 400 Bad #\r\n\r\n");
    }

    #[tokio::test]
    async fn line_end_inside_target_gives_up() {
        // A CR or LF before the target's SP is not a request line the guard follows: it stops
        // inspecting (hyper rejects the line itself), in one read and byte by byte.
        assert_untouched(b"GET /a\rb#c HTTP/1.1\r\n\r\nGET /#x HTTP/1.1\r\n\r\n").await;
        assert_untouched(b"GET /a\n#c HTTP/1.1\r\n\r\n").await;
    }
}
