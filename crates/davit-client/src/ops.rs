//! The operations: one method of [`Client`] per WebDAV/HTTP method, each turning the answer
//! into a typed result.

use crate::error::SNIPPET_LEN;
use crate::multistatus::{self, Outcome, PropOutcome, PropfindStream};
use crate::{Client, Depth, Error, Progress, Result};
use bytes::Bytes;
use davit_proto::status::reason;
use davit_proto::xml::{escape_attr, escape_text, parse_document, Element, Limits, QName, DAV};
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt};

/// What a server says about itself in answer to OPTIONS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// The compliance classes of the `DAV` header (`1`, `2`, `3`, or URIs).
    pub classes: Vec<String>,
    /// The methods of the `Allow` header.
    pub allow: Vec<String>,
}

/// Which properties a PROPFIND asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropRequest {
    /// `allprop`: the live properties the server deems cheap plus every dead property.
    AllProp,
    /// `propname`: the names only.
    PropName,
    /// The live properties of a listing [`LiveProps`](crate::LiveProps) reads.
    Common,
    /// Those of [`Common`](Self::Common), and every other one [`LiveProps`](crate::LiveProps)
    /// reads: resource id, parent set (costly on some servers), quota and privileges.
    Detailed,
    /// Exactly these.
    Named(Vec<QName>),
}

impl PropRequest {
    /// The `DAV:` names [`PropRequest::Common`] asks for.
    pub const COMMON: &'static [&'static str] = COMMON;
}

/// The live properties of [`PropRequest::Common`].
const COMMON: &[&str] = &[
    "resourcetype",
    "getcontentlength",
    "getlastmodified",
    "getetag",
    "getcontenttype",
    "displayname",
    "creationdate",
];

/// What [`PropRequest::Detailed`] adds.
const DETAILED: &[&str] = &[
    "resource-id",
    "parent-set",
    "quota-used-bytes",
    "quota-available-bytes",
    "current-user-privilege-set",
];

/// A value for a property set by PROPPATCH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchValue {
    /// Plain text, escaped as needed.
    Text(String),
    /// Well-formed XML content placed inside the property element as it is.
    Xml(String),
}

/// One instruction of a PROPPATCH, applied in order, all or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropPatch {
    /// Set a property.
    Set(QName, PatchValue),
    /// Remove a property.
    Remove(QName),
}

/// What to ask for in a LOCK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockRequest {
    /// Exclusive (the default) or shared.
    pub exclusive: bool,
    /// `Depth: infinity` (the default; for collections) or 0.
    pub deep: bool,
    /// Text for the `owner` element.
    pub owner: Option<String>,
    /// Seconds; `None` lets the server choose.
    pub timeout: Option<u64>,
}

impl Default for LockRequest {
    fn default() -> Self {
        LockRequest {
            exclusive: true,
            deep: true,
            owner: None,
            timeout: None,
        }
    }
}

/// A lock the server granted or refreshed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// The lock token (`urn:uuid:…`, `opaquelocktoken:…`), without angle brackets.
    pub token: String,
    /// Seconds left as the server reported them; `None` for Infinite or when not reported.
    pub timeout: Option<u64>,
    /// The lock root the server reported, when it did.
    pub root: Option<String>,
}

/// What a PUT stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// 201 for a new resource, 200 or 204 for a replaced one.
    pub status: u16,
    /// The strong ETag of the stored content, when the server sent one.
    pub etag: Option<String>,
}

/// Where a resumable upload stands on the server (its `HEAD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadState {
    /// The bytes the server holds; the next append starts here.
    pub offset: u64,
    /// True once the upload has become its target (nothing more to send).
    pub complete: bool,
    /// The whole length, when the client announced it.
    pub length: Option<u64>,
}

/// A GET in progress: headers read, body still to come.
pub struct Download {
    /// 200, or 206 when the server honoured the range.
    pub status: u16,
    /// Where the body starts in the resource: the requested offset for a 206, 0 otherwise.
    pub offset: u64,
    /// The full size of the resource, when the server said it.
    pub total: Option<u64>,
    /// The entity tag, when the server sent one.
    pub etag: Option<String>,
    /// What identifies this version of the resource for a later `If-Range`: its strong entity
    /// tag, else its Last-Modified date.
    pub validator: Option<String>,
    response: Option<reqwest::Response>,
}

impl Download {
    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        match &mut self.response {
            Some(r) => Ok(r.chunk().await?),
            None => Ok(None),
        }
    }

    /// The body as a stream of chunks.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes>> {
        futures_util::stream::iter(self.response)
            .flat_map(|r| r.bytes_stream())
            .map(|c| c.map_err(Error::from))
    }
}

impl Client {
    pub(crate) fn request(&self, method: &str, url: &Url) -> Result<RequestBuilder> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::Protocol(format!("invalid method {method}")))?;
        let mut rb = self.http.request(method, url.clone());
        if let Some(user) = &self.user {
            rb = rb.basic_auth(user, self.password.as_deref());
        }
        Ok(rb)
    }

    /// A request that changes something: it carries the client's If header, if any.
    pub(crate) async fn write_request(
        &self,
        method: &str,
        url: &Url,
        dest: Option<&Url>,
    ) -> Result<RequestBuilder> {
        let rb = self.request(method, url)?;
        Ok(match self.if_header(url, dest).await {
            Some(v) => rb.header("If", v),
            None => rb,
        })
    }

    /// Sends a request; a status outside 2xx becomes [`Error::Status`]. A request that
    /// changes nothing is tried again on a failed connection or a 503 (see
    /// [`ClientBuilder::retries`](crate::ClientBuilder::retries)).
    pub(crate) async fn send(
        &self,
        method: &str,
        url: &Url,
        rb: RequestBuilder,
    ) -> Result<reqwest::Response> {
        let response = self.send_retrying(method, rb).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(status_error(method, url, response).await)
        }
    }

    /// Sends `rb`, again after a pause when a safe request met a connection failure or 503.
    pub(crate) async fn send_retrying(
        &self,
        method: &str,
        rb: RequestBuilder,
    ) -> Result<reqwest::Response> {
        let safe = matches!(method, "GET" | "HEAD" | "OPTIONS" | "PROPFIND" | "REPORT");
        let mut attempt = 0u32;
        loop {
            // A streamed body cannot be sent twice: such a request is tried once.
            let again = if safe && attempt < self.retries {
                rb.try_clone()
            } else {
                None
            };
            let Some(next) = again else {
                return Ok(rb.send().await?);
            };
            let backoff = Duration::from_millis(500u64 << attempt.min(6));
            attempt += 1;
            match next.send().await {
                Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    let wait = retry_after(r.headers()).unwrap_or(backoff);
                    if wait > MAX_RETRY_WAIT {
                        return Ok(r);
                    }
                    tokio::time::sleep(wait).await;
                }
                Ok(r) => return Ok(r),
                Err(e) if e.is_connect() || (e.is_request() && !e.is_timeout()) => {
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// OPTIONS: the compliance classes and allowed methods.
    pub async fn options(&self, url: &Url) -> Result<ServerInfo> {
        let rb = self.request("OPTIONS", url)?;
        let response = self.send("OPTIONS", url, rb).await?;
        let list = |name: &str| -> Vec<String> {
            response
                .headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Ok(ServerInfo {
            classes: list("dav"),
            allow: list("allow"),
        })
    }

    /// PROPFIND: the resources at `url` down to `depth`, streamed as they arrive.
    pub async fn propfind(
        &self,
        url: &Url,
        depth: Depth,
        props: &PropRequest,
    ) -> Result<PropfindStream> {
        let rb = self
            .request("PROPFIND", url)?
            .header("Depth", depth.as_str())
            .header(CONTENT_TYPE, "application/xml; charset=\"utf-8\"")
            .body(propfind_body(props));
        let response = self.send("PROPFIND", url, rb).await?;
        if response.status() != StatusCode::MULTI_STATUS {
            return Err(Error::Protocol(format!(
                "PROPFIND {url} answered {} instead of 207",
                response.status().as_u16()
            )));
        }
        // Relative hrefs resolve against the URL that answered (after any redirect).
        let base = response.url().clone();
        Ok(PropfindStream::spawn(base, response))
    }

    /// PROPFIND with Depth 0: the resource itself.
    pub async fn stat(&self, url: &Url, props: &PropRequest) -> Result<crate::Resource> {
        let mut s = self.propfind(url, Depth::Zero, props).await?;
        match s.next().await {
            Some(r) => r,
            None => Err(Error::Protocol(format!(
                "PROPFIND {url}: empty Multi-Status"
            ))),
        }
    }

    /// PROPPATCH: sets and removes properties (atomically on a conforming server); the
    /// outcome of each property.
    pub async fn proppatch(&self, url: &Url, ops: &[PropPatch]) -> Result<Vec<PropOutcome>> {
        let rb = self
            .write_request("PROPPATCH", url, None)
            .await?
            .header(CONTENT_TYPE, "application/xml; charset=\"utf-8\"")
            .body(proppatch_body(ops));
        let response = self.send("PROPPATCH", url, rb).await?;
        if response.status() == StatusCode::MULTI_STATUS {
            let body = response.bytes().await?;
            return multistatus::prop_outcomes(&body);
        }
        // A 2xx without a body: every instruction succeeded.
        Ok(ops
            .iter()
            .map(|op| PropOutcome {
                name: match op {
                    PropPatch::Set(n, _) | PropPatch::Remove(n) => n.clone(),
                },
                status: 200,
                error: Vec::new(),
            })
            .collect())
    }

    /// MKCOL: creates a collection.
    pub async fn mkcol(&self, url: &Url) -> Result<()> {
        let rb = self.write_request("MKCOL", url, None).await?;
        self.send("MKCOL", url, rb).await?;
        Ok(())
    }

    /// GET, from byte `offset` on when it is not 0 (a resumed download). `if_range` (an
    /// entity tag) makes the server send the whole resource instead if it changed since.
    pub async fn get(&self, url: &Url, offset: u64, if_range: Option<&str>) -> Result<Download> {
        let mut rb = self.request("GET", url)?;
        if offset > 0 {
            rb = rb.header("Range", format!("bytes={offset}-"));
            if let Some(tag) = if_range {
                rb = rb.header("If-Range", tag);
            }
        }
        let response = self.send_retrying("GET", rb).await?;
        let status = response.status().as_u16();
        if status == 416 && offset > 0 {
            // Nothing left past `offset`: the local copy is already whole.
            // Some servers (Apache) leave out `Content-Range: bytes */SIZE`: ask for the size.
            let total = match content_range_total(response.headers()) {
                Some(n) => Some(n),
                None => self.head_length(url).await?,
            };
            if total == Some(offset) {
                return Ok(Download {
                    status,
                    offset,
                    total,
                    etag: None,
                    validator: if_range.map(str::to_owned),
                    response: None,
                });
            }
        }
        if !response.status().is_success() {
            return Err(status_error("GET", url, response).await);
        }
        let headers = response.headers();
        let etag = header_str(headers, "etag");
        let validator = etag
            .clone()
            .filter(|t| !t.starts_with("W/"))
            .or_else(|| header_str(headers, "last-modified"));
        let (offset, total) = if status == 206 {
            let start = headers
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_start);
            match start {
                Some(s) => (s, content_range_total(headers)),
                None => return Err(Error::Protocol("206 without a usable Content-Range".into())),
            }
        } else {
            (0, response.content_length())
        };
        Ok(Download {
            status,
            offset,
            total,
            etag,
            validator,
            response: Some(response),
        })
    }

    /// The Content-Length a HEAD reports, if any.
    async fn head_length(&self, url: &Url) -> Result<Option<u64>> {
        let response = self
            .send_retrying("HEAD", self.request("HEAD", url)?)
            .await?;
        if !response.status().is_success() {
            return Ok(None);
        }
        Ok(header_str(response.headers(), "content-length").and_then(|v| v.trim().parse().ok()))
    }

    /// Downloads `url` into the file `dest`. With `resume`, an existing partial file is
    /// continued with a Range request, but only when it is known to hold the start of the
    /// same version: the version's validator (ETag or Last-Modified) is recorded on the file
    /// (see [`crate::partial`]) and sent as `If-Range`, so a resource that changed meanwhile
    /// comes whole (200) and the file is rewritten from the start, and a whole file of the
    /// current version is left as it is (416). A partial file without a record is downloaded
    /// whole. `progress` gets the bytes
    /// written. Returns the file's final size and the resource's size when the server said it.
    pub async fn get_to_file(
        &self,
        url: &Url,
        dest: &Path,
        resume: bool,
        progress: Option<Progress>,
    ) -> Result<(u64, Option<u64>)> {
        let (have, recorded) = if resume {
            match tokio::fs::metadata(dest).await {
                Ok(m) if m.is_file() && m.len() > 0 => match crate::partial::validator(dest) {
                    Some(v) => (m.len(), Some(v)),
                    None => (0, None),
                },
                _ => (0, None),
            }
        } else {
            (0, None)
        };
        let mut dl = self.get(url, have, recorded.as_deref()).await?;
        let mut file = if dl.offset > 0 {
            if dl.offset != have {
                return Err(Error::Protocol(format!(
                    "asked for the bytes from {have} on, the server sent them from {}",
                    dl.offset
                )));
            }
            tokio::fs::OpenOptions::new()
                .append(true)
                .open(dest)
                .await?
        } else {
            tokio::fs::File::create(dest).await?
        };
        // Recorded before the body is written, so an interruption leaves a file that a later
        // resume can trust.
        if dl.response.is_some() {
            match &dl.validator {
                Some(v) => crate::partial::record(&file, v),
                None => crate::partial::forget(&file),
            }
        }
        let mut size = dl.offset;
        if let Some(p) = &progress {
            p(size);
        }
        while let Some(chunk) = dl.chunk().await? {
            file.write_all(&chunk).await?;
            size += chunk.len() as u64;
            if let Some(p) = &progress {
                p(chunk.len() as u64);
            }
        }
        file.flush().await?;
        if dl.total.is_some_and(|t| t != size) {
            return Err(Error::Protocol(format!(
                "the download ended after {size} of {} bytes",
                dl.total.unwrap_or_default()
            )));
        }
        Ok((size, dl.total))
    }

    /// PUT: uploads `body` (of `len` bytes when known, else chunked); `progress` gets the bytes
    /// sent. Returns the status (201 created, 204 replaced).
    pub async fn put<R>(
        &self,
        url: &Url,
        body: R,
        len: Option<u64>,
        progress: Option<Progress>,
    ) -> Result<u16>
    where
        R: AsyncRead + Send + 'static,
    {
        let stream = tokio_util::io::ReaderStream::with_capacity(body, 64 * 1024).map(
            move |chunk: std::io::Result<Bytes>| {
                if let (Ok(c), Some(p)) = (&chunk, &progress) {
                    p(c.len() as u64);
                }
                chunk
            },
        );
        let mut rb = self
            .write_request("PUT", url, None)
            .await?
            .body(reqwest::Body::wrap_stream(stream));
        if let Some(n) = len {
            rb = rb.header(CONTENT_LENGTH, n);
        }
        let response = self.send("PUT", url, rb).await?;
        Ok(response.status().as_u16())
    }

    /// PUT of a local file, with what the server says it stored: the status and, when the
    /// answer carries one, the new ETag.
    pub async fn upload_file(
        &self,
        url: &Url,
        src: &Path,
        progress: Option<Progress>,
    ) -> Result<Stored> {
        let file = tokio::fs::File::open(src).await?;
        let len = file.metadata().await?.len();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024).map(
            move |chunk: std::io::Result<Bytes>| {
                if let (Ok(c), Some(p)) = (&chunk, &progress) {
                    p(c.len() as u64);
                }
                chunk
            },
        );
        let rb = self
            .write_request("PUT", url, None)
            .await?
            .header(CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(stream));
        let response = self.send("PUT", url, rb).await?;
        Ok(Stored {
            status: response.status().as_u16(),
            etag: header_str(response.headers(), "etag").filter(|e| !e.starts_with("W/")),
        })
    }

    /// Starts a resumable upload to `url` of `len` bytes (the IETF resumable-upload draft as
    /// davit serves it: PUT with `Upload-Complete: ?0` and no body). The upload resource, or
    /// `None` when the server does not offer resumable uploads (it answered without a
    /// `Location`, or with 400, 405 or 501).
    pub async fn upload_start(&self, url: &Url, len: u64) -> Result<Option<Url>> {
        let rb = self
            .write_request("PUT", url, None)
            .await?
            .header("Upload-Complete", "?0")
            .header("Upload-Length", len)
            .header(CONTENT_LENGTH, 0);
        let response = self.send_retrying("PUT", rb).await?;
        let status = response.status().as_u16();
        if matches!(status, 400 | 405 | 501) {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(status_error("PUT", url, response).await);
        }
        let location = header_str(response.headers(), "location");
        match location {
            Some(l) if status == 201 => {
                Ok(Some(url.join(&l).map_err(|e| {
                    Error::Protocol(format!("a bad upload Location {l:?}: {e}"))
                })?))
            }
            // A server that ignored the header stored an empty file: not resumable.
            _ => Ok(None),
        }
    }

    /// Where an upload stands: how many bytes the server holds and whether it is complete;
    /// `None` when it is gone (expired, cancelled, completed long ago, or another user's).
    /// While the server finishes an earlier request to it, the 503 is waited out.
    pub async fn upload_state(&self, upload: &Url) -> Result<Option<UploadState>> {
        let rb = self.request("HEAD", upload)?;
        let response = self.send_retrying("HEAD", rb).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(status_error("HEAD", upload, response).await);
        }
        let h = response.headers();
        let offset = header_str(h, "upload-offset")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Error::Protocol(format!("{upload}: no Upload-Offset")))?;
        Ok(Some(UploadState {
            offset,
            complete: header_str(h, "upload-complete").is_some_and(|v| v.trim() == "?1"),
            length: header_str(h, "upload-length").and_then(|v| v.trim().parse().ok()),
        }))
    }

    /// Sends `src` from byte `offset` to its end to the upload `upload` and completes it into
    /// `target` (whose lock tokens go in the If header). The final PUT's status and ETag.
    pub async fn upload_finish(
        &self,
        upload: &Url,
        target: &Url,
        src: &Path,
        offset: u64,
        progress: Option<Progress>,
    ) -> Result<Stored> {
        use tokio::io::AsyncSeekExt;
        let mut file = tokio::fs::File::open(src).await?;
        let len = file.metadata().await?.len();
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map(
            move |chunk: std::io::Result<Bytes>| {
                if let (Ok(c), Some(p)) = (&chunk, &progress) {
                    p(c.len() as u64);
                }
                chunk
            },
        );
        let mut rb = self
            .request("PATCH", upload)?
            .header("Upload-Offset", offset)
            .header("Upload-Complete", "?1")
            .header(CONTENT_TYPE, "application/partial-upload")
            .header(CONTENT_LENGTH, len.saturating_sub(offset))
            .body(reqwest::Body::wrap_stream(stream));
        if let Some(v) = self.if_header(target, None).await {
            rb = rb.header("If", v);
        }
        let response = self.send("PATCH", upload, rb).await?;
        Ok(Stored {
            status: response.status().as_u16(),
            etag: header_str(response.headers(), "etag").filter(|e| !e.starts_with("W/")),
        })
    }

    /// PUT of a local file.
    pub async fn put_file(&self, url: &Url, src: &Path, progress: Option<Progress>) -> Result<u16> {
        let file = tokio::fs::File::open(src).await?;
        let len = file.metadata().await?.len();
        self.put(url, file, Some(len), progress).await
    }

    /// DELETE of a resource and, for a collection, everything in it.
    pub async fn delete(&self, url: &Url) -> Result<Outcome> {
        let rb = self.write_request("DELETE", url, None).await?;
        self.multi("DELETE", url, rb).await
    }

    /// COPY to `dest` (`deep`: Depth infinity, else 0). `overwrite: false` sends
    /// `Overwrite: F`, so an existing destination is an error (412).
    pub async fn copy(
        &self,
        src: &Url,
        dest: &Url,
        overwrite: bool,
        deep: bool,
    ) -> Result<Outcome> {
        let rb = self
            .write_request("COPY", src, Some(dest))
            .await?
            .header("Destination", dest.as_str())
            .header("Overwrite", if overwrite { "T" } else { "F" })
            .header("Depth", if deep { "infinity" } else { "0" });
        self.multi("COPY", src, rb).await
    }

    /// MOVE to `dest`.
    pub async fn move_to(&self, src: &Url, dest: &Url, overwrite: bool) -> Result<Outcome> {
        let rb = self
            .write_request("MOVE", src, Some(dest))
            .await?
            .header("Destination", dest.as_str())
            .header("Overwrite", if overwrite { "T" } else { "F" });
        self.multi("MOVE", src, rb).await
    }

    async fn multi(&self, method: &str, url: &Url, rb: RequestBuilder) -> Result<Outcome> {
        let response = self.send(method, url, rb).await?;
        let status = response.status().as_u16();
        let base = response.url().clone();
        let failures = if status == 207 {
            let body = response.bytes().await?;
            multistatus::failures(&base, &body)?
        } else {
            Vec::new()
        };
        Ok(Outcome { status, failures })
    }

    /// LOCK: a new write lock.
    pub async fn lock(&self, url: &Url, req: &LockRequest) -> Result<Lock> {
        let mut body = String::from(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:lockinfo xmlns:D=\"DAV:\"><D:lockscope>",
        );
        body.push_str(if req.exclusive {
            "<D:exclusive/>"
        } else {
            "<D:shared/>"
        });
        body.push_str("</D:lockscope><D:locktype><D:write/></D:locktype>");
        if let Some(owner) = &req.owner {
            body.push_str("<D:owner>");
            escape_text(owner, &mut body);
            body.push_str("</D:owner>");
        }
        body.push_str("</D:lockinfo>");
        let mut rb = self
            .request("LOCK", url)?
            .header(CONTENT_TYPE, "application/xml; charset=\"utf-8\"")
            .header("Depth", if req.deep { "infinity" } else { "0" })
            .body(body);
        if let Some(t) = req.timeout {
            rb = rb.header("Timeout", format!("Second-{t}"));
        }
        let response = self.send("LOCK", url, rb).await?;
        let token = header_str(response.headers(), "lock-token")
            .map(|t| {
                t.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
            .ok_or_else(|| Error::Protocol("LOCK answered without a Lock-Token".into()))?;
        let body = response.bytes().await?;
        Ok(lock_from_body(token, &body))
    }

    /// LOCK with `If: (<token>)` and no body: refreshes the lock's timeout.
    pub async fn refresh(&self, url: &Url, token: &str, timeout: Option<u64>) -> Result<Lock> {
        let mut rb = self
            .request("LOCK", url)?
            .header("If", format!("(<{token}>)"));
        if let Some(t) = timeout {
            rb = rb.header("Timeout", format!("Second-{t}"));
        }
        let response = self.send("LOCK", url, rb).await?;
        let body = response.bytes().await?;
        Ok(lock_from_body(token.to_owned(), &body))
    }

    /// UNLOCK.
    pub async fn unlock(&self, url: &Url, token: &str) -> Result<()> {
        let rb = self
            .request("UNLOCK", url)?
            .header("Lock-Token", format!("<{token}>"));
        self.send("UNLOCK", url, rb).await?;
        Ok(())
    }
}

/// The longest `Retry-After` a retry waits for; a server asking for more gets its 503 shown.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// A `Retry-After` in seconds (an HTTP-date counts from now).
fn retry_after(headers: &HeaderMap<HeaderValue>) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Whether a `lockdiscovery` answer shows the lock with `token`: `None` if not, else its
/// `lockroot` href when the server gave one.
pub(crate) fn lock_in(token: &str, body: &[u8]) -> Option<Option<String>> {
    let root = parse_document(body, &Limits::default()).ok()?;
    let mut stack: Vec<&Element> = vec![&root];
    while let Some(e) = stack.pop() {
        if e.name.is_dav("activelock") {
            let href = |local: &str| {
                e.elements()
                    .find(|c| c.name.is_dav(local))
                    .and_then(|c| c.elements().find(|h| h.name.is_dav("href")))
                    .map(|h| h.text().trim().to_owned())
            };
            if href("locktoken").is_some_and(|t| strip_brackets(&t) == token) {
                return Some(href("lockroot"));
            }
        }
        stack.extend(e.elements());
    }
    None
}

fn strip_brackets(t: &str) -> &str {
    t.strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(t)
}

/// Reads timeout and root of the `activelock` holding `token` from a `prop`/`lockdiscovery`
/// body; a body that cannot be read still leaves a usable lock (the token is what matters).
fn lock_from_body(token: String, body: &[u8]) -> Lock {
    let mut lock = Lock {
        token,
        timeout: None,
        root: None,
    };
    let Ok(root) = parse_document(body, &Limits::default()) else {
        return lock;
    };
    let mut stack: Vec<&Element> = vec![&root];
    while let Some(e) = stack.pop() {
        if e.name.is_dav("activelock") {
            let child = |local: &str| e.elements().find(|c| c.name.is_dav(local));
            let href = |c: Option<&Element>| {
                c.and_then(|c| c.elements().find(|h| h.name.is_dav("href")))
                    .map(|h| h.text().trim().to_owned())
            };
            if href(child("locktoken")).as_deref() == Some(lock.token.as_str()) {
                lock.timeout = child("timeout").and_then(|t| {
                    t.text()
                        .trim()
                        .strip_prefix("Second-")
                        .and_then(|s| s.parse().ok())
                });
                lock.root = href(child("lockroot"));
                return lock;
            }
        }
        stack.extend(e.elements());
    }
    lock
}

fn header_str(headers: &HeaderMap<HeaderValue>, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `bytes 100-199/1000` → 100.
fn content_range_start(v: &str) -> Option<u64> {
    let range = v.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// `bytes 100-199/1000` or `bytes */1000` → 1000.
fn content_range_total(headers: &HeaderMap<HeaderValue>) -> Option<u64> {
    let v = headers.get("content-range")?.to_str().ok()?;
    v.rsplit('/').next()?.trim().parse().ok()
}

/// Turns a refusal into [`Error::Status`], reading the `DAV:error` condition or the start of
/// the body.
pub(crate) async fn status_error(
    method: &str,
    url: &Url,
    mut response: reqwest::Response,
) -> Error {
    let status = response.status().as_u16();
    // Read at most a few KiB: an error page is for a message, not for memory.
    let mut body = Vec::new();
    while body.len() < 16 * 1024 {
        match response.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    let mut condition = None;
    let mut hrefs = Vec::new();
    let mut snippet = String::new();
    if let Ok(root) = parse_document(&body, &Limits::default()) {
        if root.name.is_dav("error") {
            if let Some(c) = root.elements().next() {
                condition = Some(if c.name.ns == DAV {
                    c.name.local.clone()
                } else {
                    format!("{{{}}}{}", c.name.ns, c.name.local)
                });
                hrefs = c
                    .elements()
                    .filter(|h| h.name.is_dav("href"))
                    .map(|h| h.text().trim().to_owned())
                    .collect::<Vec<_>>();
            }
        }
    }
    if condition.is_none() {
        let text = String::from_utf8_lossy(&body);
        let text = if looks_like_html(&text) {
            html_excerpt(&text, status)
        } else {
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        snippet = text.chars().take(SNIPPET_LEN).collect();
    }
    Error::Status {
        method: method.into(),
        url: url.as_str().into(),
        status,
        reason: reason(status),
        condition,
        hrefs: hrefs.into_boxed_slice(),
        body: snippet,
    }
}

fn looks_like_html(text: &str) -> bool {
    let start = text
        .trim_start()
        .get(..15)
        .unwrap_or("")
        .to_ascii_lowercase();
    start.starts_with("<!doctype html") || start.starts_with("<html") || start.starts_with("<head")
}

/// One line of an HTML error page's text: tags, the title and the heading that repeat the
/// status left out (`The precondition on the request for this URL evaluated to false.`).
fn html_excerpt(html: &str, status: u16) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(open) = rest.find('<') {
        if skip_until.is_none() {
            text.push_str(&rest[..open]);
            text.push(' ');
        }
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close].trim().to_ascii_lowercase();
        let name = tag.split_whitespace().next().unwrap_or("");
        match (skip_until, name) {
            (None, "title" | "h1" | "style" | "script" | "head") => {
                skip_until = Some(match name {
                    "title" => "/title",
                    "h1" => "/h1",
                    "style" => "/style",
                    "script" => "/script",
                    _ => "/head",
                })
            }
            (Some(end), n) if n == end => skip_until = None,
            _ => {}
        }
        rest = &rest[open + close + 1..];
    }
    if skip_until.is_none() {
        text.push_str(rest);
    }
    let line = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let status_text = format!("{status} {}", reason(status));
    line.trim_start_matches(status_text.as_str())
        .trim()
        .chars()
        .take(200)
        .collect()
}

/// Writes `<name/>` (or with content) with its namespace declared on the element itself, by
/// a prefix of its own: a default namespace would also claim the unprefixed elements of an XML
/// value (`props set --xml N '<b>x</b>'` must store a `b` in no namespace).
fn push_prop(out: &mut String, name: &QName, content: Option<&PatchValue>) {
    let tag = if name.ns == DAV {
        format!("D:{}", name.local)
    } else if name.ns.is_empty() {
        name.local.clone()
    } else {
        format!("davitp:{}", name.local)
    };
    out.push('<');
    out.push_str(&tag);
    if name.ns != DAV {
        if name.ns.is_empty() {
            out.push_str(" xmlns=\"\"");
        } else {
            out.push_str(" xmlns:davitp=\"");
            escape_attr(&name.ns, out);
            out.push('"');
        }
    }
    match content {
        None => out.push_str("/>"),
        Some(v) => {
            out.push('>');
            match v {
                PatchValue::Text(t) => escape_text(t, out),
                PatchValue::Xml(x) => out.push_str(x),
            }
            out.push_str("</");
            out.push_str(&tag);
            out.push('>');
        }
    }
}

/// The request of `props`, as davit-proto's typed `PropFind` (for REPORT bodies).
pub(crate) fn propfind_of(props: &PropRequest) -> davit_proto::xml::PropFind {
    use davit_proto::xml::PropFind;
    match props {
        PropRequest::AllProp => PropFind::AllProp {
            include: Vec::new(),
        },
        PropRequest::PropName => PropFind::PropName,
        PropRequest::Common => PropFind::Prop(COMMON.iter().map(|l| QName::dav(l)).collect()),
        PropRequest::Detailed => PropFind::Prop(
            COMMON
                .iter()
                .chain(DETAILED)
                .map(|l| QName::dav(l))
                .collect(),
        ),
        PropRequest::Named(names) => PropFind::Prop(names.clone()),
    }
}

fn propfind_body(props: &PropRequest) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:propfind xmlns:D=\"DAV:\">");
    match props {
        PropRequest::AllProp => out.push_str("<D:allprop/>"),
        PropRequest::PropName => out.push_str("<D:propname/>"),
        PropRequest::Common | PropRequest::Detailed => {
            let extra: &[&str] = if *props == PropRequest::Detailed {
                DETAILED
            } else {
                &[]
            };
            out.push_str("<D:prop>");
            for local in COMMON.iter().chain(extra) {
                push_prop(&mut out, &QName::dav(local), None);
            }
            out.push_str("</D:prop>");
        }
        PropRequest::Named(names) => {
            out.push_str("<D:prop>");
            for n in names {
                push_prop(&mut out, n, None);
            }
            out.push_str("</D:prop>");
        }
    }
    out.push_str("</D:propfind>");
    out
}

fn proppatch_body(ops: &[PropPatch]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:propertyupdate xmlns:D=\"DAV:\">",
    );
    for op in ops {
        let (verb, name, value) = match op {
            PropPatch::Set(n, v) => ("set", n, Some(v)),
            PropPatch::Remove(n) => ("remove", n, None),
        };
        out.push_str("<D:");
        out.push_str(verb);
        out.push_str("><D:prop>");
        push_prop(&mut out, name, value);
        out.push_str("</D:prop></D:");
        out.push_str(verb);
        out.push('>');
    }
    out.push_str("</D:propertyupdate>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_error_pages_become_one_line() {
        let apache = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html><head>
<title>412 Precondition Failed</title>
</head><body>
<h1>Precondition Failed</h1>
<p>The precondition on the request for this URL evaluated to false.</p>
</body></html>"#;
        assert!(looks_like_html(apache));
        assert_eq!(
            html_excerpt(apache, 412),
            "The precondition on the request for this URL evaluated to false."
        );
        let nginx = "<html>\r\n<head><title>409 Conflict</title></head>\r\n<body>\r\n<center><h1>409 Conflict</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>";
        assert_eq!(html_excerpt(nginx, 409), "nginx/1.22.1");
        assert!(!looks_like_html("plain reason"));
    }

    #[test]
    fn xml_values_keep_their_own_namespaces() {
        let mut out = String::new();
        push_prop(
            &mut out,
            &QName::new("urn:z", "p"),
            Some(&PatchValue::Xml("<b>x</b>".into())),
        );
        assert_eq!(out, r#"<davitp:p xmlns:davitp="urn:z"><b>x</b></davitp:p>"#);
    }
    use davit_proto::xml::{parse_propertyupdate, parse_propfind, PatchOp, PropFind};

    #[test]
    fn request_bodies_parse_as_davit_reads_them() {
        let z = QName::new("urn:z", "color");
        let bare = QName::new("", "bare");
        let body = propfind_body(&PropRequest::Named(vec![
            QName::dav("getetag"),
            z.clone(),
            bare.clone(),
        ]));
        let pf = parse_propfind(body.as_bytes(), &Limits::default()).unwrap();
        assert!(
            matches!(pf, PropFind::Prop(ref names) if names == &vec![QName::dav("getetag"), z.clone(), bare.clone()]),
            "{pf:?}"
        );
        let body = proppatch_body(&[
            PropPatch::Set(z.clone(), PatchValue::Text("<red> & 'blue'".into())),
            PropPatch::Remove(bare.clone()),
        ]);
        let ops = parse_propertyupdate(body.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(ops.len(), 2);
        match &ops[0] {
            PatchOp::Set(e) => assert_eq!(e.text(), "<red> & 'blue'"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lock_bodies_and_ranges() {
        let body = br#"<D:prop xmlns:D="DAV:"><D:lockdiscovery><D:activelock><D:timeout>Second-600</D:timeout><D:locktoken><D:href>urn:uuid:1</D:href></D:locktoken><D:lockroot><D:href>/a</D:href></D:lockroot></D:activelock></D:lockdiscovery></D:prop>"#;
        let l = lock_from_body("urn:uuid:1".into(), body);
        assert_eq!((l.timeout, l.root.as_deref()), (Some(600), Some("/a")));
        assert_eq!(lock_from_body("t".into(), b"junk").timeout, None);
        assert_eq!(content_range_start("bytes 100-199/1000"), Some(100));
    }
}
