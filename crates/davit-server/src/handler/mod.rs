//! The WebDAV method handlers. [`Dav::handle`] dispatches on the method; each method lives in
//! its own file and reads as parse → apply → respond. Failures are returned as [`DavError`]
//! and turned into responses in one place.

mod copymove;
mod delete;
mod get;
mod mkcol;
mod options;
mod propfind;
mod proppatch;
mod put;

use crate::body::{self, Body};
use crate::config::DavConfig;
use crate::error::{DavError, DavResult};
use crate::props::PropStore;
use crate::storage::{Meta, Storage};
use bytes::{Bytes, BytesMut};
use davit_proto::conditional::{self, Outcome, Preconditions, Validators};
use davit_proto::headers::{ConditionKind, IfHeader};
use davit_proto::href::{self, DavPath};
use davit_proto::xml::XML_CONTENT_TYPE;
use http::request::Parts;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::io;
use std::sync::Arc;

/// The methods davit answers, as sent in `Allow` for each kind of target.
pub(crate) const ALLOW_FILE: &str =
    "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, COPY, MOVE";
pub(crate) const ALLOW_DIR: &str = "OPTIONS, GET, HEAD, DELETE, PROPFIND, PROPPATCH, COPY, MOVE";
pub(crate) const ALLOW_UNMAPPED: &str = "OPTIONS, PUT, MKCOL";

/// A WebDAV server over a content store and a dead-property store.
#[derive(Debug)]
pub struct Dav<S, P> {
    storage: S,
    props: P,
    config: Arc<DavConfig>,
}

impl<S: Clone, P: Clone> Clone for Dav<S, P> {
    fn clone(&self) -> Self {
        Dav {
            storage: self.storage.clone(),
            props: self.props.clone(),
            config: self.config.clone(),
        }
    }
}

/// A parsed request target.
pub(crate) struct Target {
    /// The decoded path.
    pub path: DavPath,
    /// Whether the request URI ended with `/`.
    pub slash: bool,
}

impl<S, P> Dav<S, P>
where
    S: Storage + Clone,
    P: PropStore + Clone,
{
    /// A server over `storage` and `props`.
    pub fn new(storage: S, props: P, config: DavConfig) -> Self {
        Dav {
            storage,
            props,
            config: Arc::new(config),
        }
    }

    /// Answers one request. Never fails: every error becomes its response here.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = req.into_parts();
        match self.dispatch(parts, body).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        }
    }

    async fn dispatch<B>(&self, parts: Parts, body: B) -> DavResult<Response<Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let raw = parts.uri.path();
        if parts.method == Method::OPTIONS && raw == "*" {
            return Ok(options::server_wide());
        }
        let target = Target {
            path: DavPath::parse(raw)?,
            slash: href::has_trailing_slash(raw),
        };
        match parts.method.as_str() {
            "OPTIONS" => self.options(&target).await,
            "GET" => self.get(&parts, &target, true).await,
            "HEAD" => self.get(&parts, &target, false).await,
            "PUT" => self.put(&parts, &target, body).await,
            "DELETE" => self.delete(&parts, &target).await,
            "MKCOL" => self.mkcol(&parts, &target, body).await,
            "COPY" => self.copy_move(&parts, &target, false).await,
            "MOVE" => self.copy_move(&parts, &target, true).await,
            "PROPFIND" => self.propfind(&parts, &target, body).await,
            "PROPPATCH" => self.proppatch(&parts, &target, body).await,
            _ => Err(DavError::NotImplemented),
        }
    }

    /// Metadata, or `None` when nothing is mapped at `path`. A file addressed with a trailing
    /// slash is not mapped either.
    pub(crate) async fn meta(&self, target: &Target) -> DavResult<Option<Meta>> {
        let meta = self.meta_at(&target.path).await?;
        Ok(meta.filter(|m| m.is_dir() || !target.slash))
    }

    pub(crate) async fn meta_at(&self, path: &DavPath) -> DavResult<Option<Meta>> {
        match self.storage.metadata(path).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads an XML request body whole, refusing more than the configured limit.
    pub(crate) async fn read_xml_body<B>(&self, parts: &Parts, body: B) -> DavResult<Bytes>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        read_limited(parts, body, self.config.max_xml_body).await
    }

    /// RFC 9110 conditional headers and the RFC 4918 If header, for the resource the request
    /// acts on. `Ok(true)` means "answer 304" (GET and HEAD only).
    pub(crate) async fn check_preconditions(
        &self,
        parts: &Parts,
        target: &Target,
        meta: Option<&Meta>,
    ) -> DavResult<bool> {
        let get_or_head = parts.method == Method::GET || parts.method == Method::HEAD;
        let pre = preconditions(&parts.headers);
        let v = Validators {
            exists: meta.is_some(),
            etag: meta.filter(|m| !m.is_dir()).map(|m| m.etag.as_str()),
            last_modified: meta.map(|m| m.modified),
        };
        let not_modified = match conditional::evaluate(&pre, &v, get_or_head) {
            Outcome::Proceed => false,
            Outcome::NotModified => true,
            Outcome::PreconditionFailed => return Err(DavError::PreconditionFailed),
        };
        self.check_if_header(parts, target, meta).await?;
        Ok(not_modified)
    }

    /// Evaluates the If header (RFC 4918 §10.4). Until locking lands no state token matches,
    /// so `Not <token>` conditions hold and plain token conditions fail.
    async fn check_if_header(
        &self,
        parts: &Parts,
        _target: &Target,
        meta: Option<&Meta>,
    ) -> DavResult<()> {
        let Some(value) = parts.headers.get("if") else {
            return Ok(());
        };
        let value = value
            .to_str()
            .map_err(|_| DavError::BadRequest("If header is not ASCII".into()))?;
        let parsed = IfHeader::parse(value)?;
        let host = host_of(parts);
        // Resolve each tagged resource's ETag before evaluating (evaluation is synchronous).
        let mut tagged: Vec<(String, Option<String>)> = Vec::new();
        for list in &parsed.lists {
            if let Some(tag) = &list.resource {
                if tagged.iter().any(|(t, _)| t == tag) {
                    continue;
                }
                let etag = match href::parse_destination(tag, host.as_deref()) {
                    Ok(path) => self
                        .meta_at(&path)
                        .await?
                        .filter(|m| !m.is_dir())
                        .map(|m| m.etag),
                    Err(_) => None,
                };
                tagged.push((tag.clone(), etag));
            }
        }
        let own_etag = meta.filter(|m| !m.is_dir()).map(|m| m.etag.clone());
        let ok = parsed.evaluate(|resource, cond| {
            let etag = match resource {
                None => own_etag.as_deref(),
                Some(tag) => tagged
                    .iter()
                    .find(|(t, _)| t == tag)
                    .and_then(|(_, e)| e.as_deref()),
            };
            match cond {
                ConditionKind::StateToken(_) => false,
                ConditionKind::ETag(tag) => etag.is_some_and(|e| conditional::strong_eq(tag, e)),
            }
        });
        if ok {
            Ok(())
        } else {
            Err(DavError::PreconditionFailed)
        }
    }
}

/// True for errors that mean "nothing is mapped there".
pub(crate) fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename
    )
}

fn preconditions(h: &HeaderMap) -> Preconditions<'_> {
    let get = |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    Preconditions {
        if_match: get(header::IF_MATCH),
        if_none_match: get(header::IF_NONE_MATCH),
        if_modified_since: get(header::IF_MODIFIED_SINCE),
        if_unmodified_since: get(header::IF_UNMODIFIED_SINCE),
    }
}

/// The request's authority, from Host (HTTP/1.1) or the URI (HTTP/2).
pub(crate) fn host_of(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
}

/// A header's value as text; `None` when absent, 400 when not ASCII.
pub(crate) fn header_str<'a>(parts: &'a Parts, name: &str) -> DavResult<Option<&'a str>> {
    match parts.headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| DavError::BadRequest(format!("{name} header is not ASCII"))),
    }
}

/// True when the request announces a body (a length above zero, or chunked).
pub(crate) fn has_body(parts: &Parts) -> bool {
    let len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match len {
        Some(n) => n > 0,
        None => parts.headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// Reads a whole body of at most `limit` bytes (413 beyond).
pub(crate) async fn read_limited<B>(parts: &Parts, mut body: B, limit: usize) -> DavResult<Bytes>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(DavError::TooLarge);
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| DavError::BadRequest(format!("reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(DavError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// A 207 response with a complete body.
pub(crate) fn multistatus(xml: String) -> Response<Body> {
    response(StatusCode::MULTI_STATUS)
        .header(header::CONTENT_TYPE, XML_CONTENT_TYPE)
        .body(body::full(xml))
        .unwrap_or_else(|_| body::plain(StatusCode::INTERNAL_SERVER_ERROR))
}

/// A response builder with the status set.
pub(crate) fn response(status: StatusCode) -> http::response::Builder {
    Response::builder().status(status)
}

/// An empty response with just a status.
pub(crate) fn status_only(status: StatusCode) -> Response<Body> {
    body::plain(status)
}
