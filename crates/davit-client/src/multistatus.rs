//! Per-resource results: Multi-Status bodies turned into [`Resource`]s (PROPFIND),
//! [`PropOutcome`]s (PROPPATCH) and [`Outcome`]s (DELETE, COPY, MOVE), with hrefs resolved
//! against the request URL.

use crate::{Error, Result};
use bytes::Bytes;
use davit_proto::xml::{LiveProps, MultistatusReader, QName, Response};
use futures_util::Stream;
use percent_encoding::percent_decode_str;
use reqwest::Url;
use std::io::{self, BufReader, Read};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// One resource of a PROPFIND answer.
#[derive(Clone, Debug)]
pub struct Resource {
    /// The href resolved against the request URL.
    pub url: Url,
    /// The decoded path of `url` (`/docs/a b.txt`), trailing slash as the server wrote it.
    pub path: String,
    /// The resource's status: its own `status`, else the worst `propstat` status.
    pub status: u16,
    /// Typed live properties from the 2xx `propstat` groups.
    pub live: LiveProps,
    /// Everything the server said about the resource.
    pub response: Response,
}

impl Resource {
    /// The last path segment, decoded (`""` for the root).
    pub fn name(&self) -> &str {
        self.path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
    }
}

/// A resource that an operation could not handle, as listed in a 207.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The resource, resolved against the request URL.
    pub url: Url,
    /// Its decoded path.
    pub path: String,
    /// What the server answered for it.
    pub status: u16,
    /// The `DAV:error` conditions, if any.
    pub error: Vec<QName>,
    /// The `responsedescription`, if any.
    pub description: Option<String>,
}

/// The outcome of an operation on a resource and everything under it (DELETE, COPY, MOVE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The status of the whole answer (204, 201, or 207 when some members failed).
    pub status: u16,
    /// The members that failed; empty when everything succeeded.
    pub failures: Vec<Failure>,
}

impl Outcome {
    /// True when every resource succeeded.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The outcome of one property in a PROPPATCH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropOutcome {
    /// The property.
    pub name: QName,
    /// Its status (200 on success; 424 when another property in the request failed).
    pub status: u16,
    /// The `DAV:error` conditions of its group.
    pub error: Vec<QName>,
}

/// Resolves an href of a response against the request URL and decodes its path.
pub(crate) fn resolve(base: &Url, href: &str) -> Result<(Url, String)> {
    let url = base
        .join(href)
        .map_err(|e| Error::Url(format!("href {href:?}: {e}")))?;
    let path = percent_decode_str(url.path())
        .decode_utf8_lossy()
        .into_owned();
    Ok((url, path))
}

pub(crate) fn resource(base: &Url, response: Response) -> Result<Resource> {
    let (url, path) = resolve(base, &response.href)?;
    Ok(Resource {
        url,
        path,
        status: response.effective_status(),
        live: response.live(),
        response,
    })
}

/// The failures listed in a 207 answering DELETE, COPY or MOVE. Such a body lists only the
/// members that failed (RFC 4918 §9.6.1), but servers that also list successes are read
/// correctly: only non-2xx entries count.
pub(crate) fn failures(base: &Url, body: &[u8]) -> Result<Vec<Failure>> {
    let mut out = Vec::new();
    for response in MultistatusReader::new(body) {
        let response = response?;
        // The propstat form is unusual here; its worst group then stands for the resource.
        let status = response.status.unwrap_or_else(|| {
            response
                .propstats
                .iter()
                .map(|p| p.status)
                .filter(|s| !(200..300).contains(s))
                .max()
                .unwrap_or(200)
        });
        if (200..300).contains(&status) {
            continue;
        }
        let hrefs = std::iter::once(&response.href).chain(&response.extra_hrefs);
        for href in hrefs {
            let (url, path) = resolve(base, href)?;
            out.push(Failure {
                url,
                path,
                status,
                error: response.error.clone(),
                description: response.description.clone(),
            });
        }
    }
    Ok(out)
}

/// The per-property outcomes of a PROPPATCH 207.
pub(crate) fn prop_outcomes(body: &[u8]) -> Result<Vec<PropOutcome>> {
    let mut out = Vec::new();
    for response in MultistatusReader::new(body) {
        let response = response?;
        if let Some(status) = response.status {
            // A whole-resource status (e.g. 423): every property shares it, but the names are
            // unknown here; report it under the resource itself.
            out.push(PropOutcome {
                name: QName::dav("response"),
                status,
                error: response.error.clone(),
            });
        }
        for ps in response.propstats {
            for p in ps.props {
                out.push(PropOutcome {
                    name: p.name,
                    status: ps.status,
                    error: ps.error.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The resources of a PROPFIND answer, delivered while the body is still arriving.
///
/// The body is parsed on a blocking thread (the reader is synchronous, over [`std::io::BufRead`])
/// that pulls chunks from the connection and hands each finished resource over a small bounded
/// channel: a slow consumer slows the download instead of growing a buffer, so memory stays
/// flat for any listing size. Dropping the stream stops the parse.
pub struct PropfindStream {
    rx: mpsc::Receiver<Result<Resource>>,
}

impl PropfindStream {
    pub(crate) fn spawn(base: Url, response: reqwest::Response) -> PropfindStream {
        PropfindStream {
            rx: spawn_reader(base, response, |base, _, r| resource(base, r)),
        }
    }

    /// The next resource; `None` at the end of the listing.
    pub async fn next(&mut self) -> Option<Result<Resource>> {
        self.rx.recv().await
    }

    /// Collects the whole listing (for small ones; large ones are better read with
    /// [`next`](Self::next)).
    pub async fn collect_all(mut self) -> Result<Vec<Resource>> {
        let mut out = Vec::new();
        while let Some(r) = self.next().await {
            out.push(r?);
        }
        Ok(out)
    }
}

impl Stream for PropfindStream {
    type Item = Result<Resource>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Parses a Multi-Status body on a blocking thread and sends each `response`, turned into a
/// `T` by `f` (given the base URL and the response's index), over a small bounded channel:
/// a slow consumer slows the download instead of growing a buffer, so memory stays flat for
/// any size. The parse stops at the first error, or when the receiver is dropped.
pub(crate) fn spawn_reader<T: Send + 'static>(
    base: Url,
    response: reqwest::Response,
    f: fn(&Url, usize, Response) -> Result<T>,
) -> mpsc::Receiver<Result<T>> {
    let (tx, rx) = mpsc::channel(64);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let body = BodyReader {
            response,
            handle,
            chunk: Bytes::new(),
            done: false,
        };
        let reader = MultistatusReader::new(BufReader::with_capacity(64 * 1024, body));
        for (i, item) in reader.enumerate() {
            let item = item.map_err(Error::from).and_then(|r| f(&base, i, r));
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() || stop {
                break;
            }
        }
    });
    rx
}

/// A blocking [`Read`] over an async response body, for the blocking parse thread.
pub(crate) struct BodyReader {
    response: reqwest::Response,
    handle: tokio::runtime::Handle,
    chunk: Bytes,
    done: bool,
}

impl BodyReader {
    /// A reader of `response`'s body for a blocking thread of the runtime `handle`.
    pub(crate) fn new(response: reqwest::Response, handle: tokio::runtime::Handle) -> Self {
        BodyReader {
            response,
            handle,
            chunk: Bytes::new(),
            done: false,
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.done {
                return Ok(0);
            }
            // Allowed here: this runs on a spawn_blocking thread, never on a runtime worker.
            match self.handle.block_on(self.response.chunk()) {
                Ok(Some(c)) => self.chunk = c,
                Ok(None) => self.done = true,
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}
