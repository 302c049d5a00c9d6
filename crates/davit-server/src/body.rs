//! The response body type and its constructors.

use crate::storage::{read_into, FileRead};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use std::io;

/// Every response body: boxed (and not `Sync`, which hyper does not need) so handlers can stream files, listings or fixed bytes alike.
pub type Body = UnsyncBoxBody<Bytes, io::Error>;

/// A body of fixed bytes.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A bare response with just a status (the fallback when building a richer one fails).
pub fn plain(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r
}

/// A body fed chunk by chunk from a producer task through a small bounded channel, so the
/// producer runs at the pace the client reads. An `Err` chunk aborts the response.
pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<io::Result<Bytes>>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    let stream = futures_util::stream::unfold(
        rx,
        |mut rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>| async move {
            let item = rx.recv().await?;
            Some((item.map(http_body::Frame::data), rx))
        },
    );
    (tx, http_body_util::StreamBody::new(stream).boxed_unsync())
}

/// The largest read of a file body.
const MAX_READ: usize = 256 * 1024;

/// A body streaming `len` bytes of a file from its current position. A file shorter than
/// that ends the body with an error, so the client sees a broken response, not a short one.
pub fn reader<R: FileRead>(file: R, len: u64) -> Body {
    let stream = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        // Small files get a chunk their size rather than a fixed one; large ones read 256 KiB
        // at a time, a quarter of the system calls per byte of 64 KiB reads. (Recycling the
        // chunks' memory, to read into buffers still in the CPU cache, measured no faster.)
        let max = usize::try_from(left).map_or(MAX_READ, |l| l.min(MAX_READ));
        let mut chunk = Vec::with_capacity(max);
        let item = match read_into(&mut file, &mut chunk, max).await {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => Ok((Bytes::from(chunk), n)),
            Err(e) => Err(e),
        };
        let left = item.as_ref().map_or(0, |(_, n)| left - *n as u64);
        Some((
            item.map(|(chunk, _)| http_body::Frame::data(chunk)),
            (file, left),
        ))
    });
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn reader_streams_exactly_len_bytes() {
        let file = std::io::Cursor::new(b"0123456789".to_vec());
        let body = super::reader(file, 4).collect().await.unwrap();
        assert_eq!(&body.to_bytes()[..], b"0123");
    }

    #[tokio::test]
    async fn reader_fails_when_the_file_is_shorter_than_promised() {
        // The length went into Content-Length already; ending early must break the response.
        let file = std::io::Cursor::new(b"0123".to_vec());
        let err = super::reader(file, 10).collect().await.err();
        assert_eq!(
            err.map(|e| e.kind()),
            Some(std::io::ErrorKind::UnexpectedEof)
        );
    }
}
