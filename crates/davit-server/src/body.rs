//! The response body type and its constructors.

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

/// A body streaming `len` bytes from a reader.
pub fn reader<R>(reader: R, len: u64) -> Body
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    use futures_util::StreamExt;
    use tokio::io::AsyncReadExt;
    // Small files get a buffer their size rather than a fixed one; large ones read 256 KiB at
    // a time, a quarter of the system calls per byte of 64 KiB reads.
    let capacity = usize::try_from(len).map_or(MAX_READ, |l| l.clamp(1, MAX_READ));
    let stream = tokio_util::io::ReaderStream::with_capacity(reader.take(len), capacity)
        .map(|chunk| chunk.map(http_body::Frame::data));
    http_body_util::StreamBody::new(stream).boxed_unsync()
}
