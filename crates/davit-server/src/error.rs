//! Every way a request can fail, and the one place where a failure becomes an HTTP response.

use crate::body::{self, Body};
use davit_proto::href::{DestinationError, PathError};
use davit_proto::xml::{error_body, XmlError, XML_CONTENT_TYPE};
use http::{header, Response, StatusCode};
use std::io;

/// A request failure. Each variant knows its status, and preconditions their `DAV:error`
/// element; [`DavError::into_response`] is the only place they are turned into responses.
#[derive(Debug, thiserror::Error)]
pub enum DavError {
    /// 400 with a short reason.
    #[error("{0}")]
    BadRequest(String),
    /// 403 with a short reason.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 401, with the `WWW-Authenticate` challenge to send.
    #[error("authentication required")]
    Unauthorized(String),
    /// 404.
    #[error("not found")]
    NotFound,
    /// 429 (too many failed logins from this address).
    #[error("too many failed login attempts; try again later")]
    TooManyRequests,
    /// 405, with the methods the resource does allow.
    #[error("method not allowed here")]
    MethodNotAllowed(&'static str),
    /// 409 with a short reason.
    #[error("{0}")]
    Conflict(&'static str),
    /// 412 (a conditional header or Overwrite: F).
    #[error("precondition failed")]
    PreconditionFailed,
    /// 408 with a short reason (the request body stalled, or came too slowly).
    #[error("{0}")]
    RequestTimeout(&'static str),
    /// 413.
    #[error("request body too large")]
    TooLarge,
    /// 422 with a short reason: well-formed, but asks for something not done here.
    #[error("{0}")]
    Unprocessable(&'static str),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// 501.
    #[error("method not implemented")]
    NotImplemented,
    /// 502.
    #[error("{0}")]
    BadGateway(&'static str),
    /// 507.
    #[error("insufficient storage")]
    InsufficientStorage,
    /// 508 (RFC 5842 §7.2): a Depth: infinity request met a binding loop and the client did
    /// not say it understands 208; the href is where the loop closes.
    #[error("binding loop at {0}: send `DAV: bind` to have it reported as 208 Already Reported")]
    LoopDetected(String),
    /// A failed RFC 4918 precondition or postcondition: status plus the `DAV:error` element.
    #[error("{condition}")]
    Condition {
        /// HTTP status.
        status: StatusCode,
        /// Local name of the condition element in `DAV:`.
        condition: &'static str,
        /// Hrefs inside the condition element (lock roots, for instance).
        hrefs: Vec<String>,
    },
    /// A storage failure; its kind decides the status.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A metadata store (properties, locks, change log) failed.
    #[error("property store: {0}")]
    Store(String),
    /// A store the request needs could not be reached (503, `Retry-After`).
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

impl DavError {
    /// A precondition failure with no hrefs.
    pub fn condition(status: StatusCode, condition: &'static str) -> DavError {
        DavError::Condition {
            status,
            condition,
            hrefs: Vec::new(),
        }
    }

    /// The status this failure answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            DavError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DavError::Forbidden(_) => StatusCode::FORBIDDEN,
            DavError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            DavError::NotFound => StatusCode::NOT_FOUND,
            DavError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            DavError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            DavError::Conflict(_) => StatusCode::CONFLICT,
            DavError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            DavError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            DavError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            DavError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DavError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            DavError::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            DavError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            DavError::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            DavError::LoopDetected(_) => StatusCode::LOOP_DETECTED,
            DavError::Condition { status, .. } => *status,
            DavError::Io(e) => io_status(e),
            DavError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            DavError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The response for this failure: a `DAV:error` body for conditions, a one-line reason
    /// otherwise.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut builder = Response::builder().status(status);
        match &self {
            DavError::MethodNotAllowed(allow) => builder = builder.header(header::ALLOW, *allow),
            DavError::Unauthorized(challenge) => {
                builder = builder.header(header::WWW_AUTHENTICATE, challenge.as_str())
            }
            DavError::TooManyRequests => builder = builder.header(header::RETRY_AFTER, "60"),
            DavError::Unavailable(_) => builder = builder.header(header::RETRY_AFTER, "5"),
            DavError::Io(e) if e.kind() == io::ErrorKind::TimedOut => {
                builder = builder.header(header::RETRY_AFTER, "5")
            }
            _ => {}
        }
        self.record();
        let (ctype, text) = match self.explain() {
            Explained::Condition(condition) => {
                let hrefs = match &self {
                    DavError::Condition { hrefs, .. } => hrefs.as_slice(),
                    _ => &[],
                };
                (XML_CONTENT_TYPE, error_body(condition, hrefs))
            }
            Explained::Reason(reason) => ("text/plain; charset=utf-8", format!("{reason}\n")),
        };
        builder
            .header(header::CONTENT_TYPE, ctype)
            .body(body::full(text))
            .unwrap_or_else(|_| body::plain(StatusCode::INTERNAL_SERVER_ERROR))
    }
}

/// What a failure tells its client besides the status: a `DAV:error` condition, or a
/// one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Explained {
    /// The local name of the condition element in `DAV:`.
    Condition(&'static str),
    /// A short reason, in words.
    Reason(String),
}

impl DavError {
    /// The condition or reason this failure is answered with (over HTTP, in its body; in a
    /// batch, in the operation's outcome).
    pub fn explain(&self) -> Explained {
        match self {
            DavError::Condition { condition, .. } => Explained::Condition(condition),
            // RFC 4331 §6 names the condition of a full disk.
            DavError::Io(e) if e.kind() == io::ErrorKind::StorageFull => {
                Explained::Condition("sufficient-disk-space")
            }
            DavError::Io(e) => Explained::Reason(io_reason(e).to_owned()),
            other => Explained::Reason(other.to_string()),
        }
    }

    /// Logs a server-side failure and counts it in the metrics, once per answer.
    pub fn record(&self) {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        match self {
            DavError::Io(e) => crate::metrics::METRICS.storage_error(e),
            DavError::Store(_) => crate::metrics::METRICS.metadata_error(false),
            DavError::Unavailable(_) => crate::metrics::METRICS.metadata_error(true),
            _ => {}
        }
    }
}

/// The status for a storage error kind (also used for per-member statuses in a 207).
pub fn io_status(e: &io::Error) -> StatusCode {
    use io::ErrorKind::*;
    match e.kind() {
        NotFound => StatusCode::NOT_FOUND,
        PermissionDenied | ReadOnlyFilesystem => StatusCode::FORBIDDEN,
        AlreadyExists | DirectoryNotEmpty => StatusCode::CONFLICT,
        NotADirectory | IsADirectory => StatusCode::CONFLICT,
        StorageFull | QuotaExceeded | FileTooLarge => StatusCode::INSUFFICIENT_STORAGE,
        InvalidFilename => StatusCode::BAD_REQUEST,
        // A backend service that did not answer in time (the distributed backend's database
        // or object store): try again later.
        TimedOut => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn io_reason(e: &io::Error) -> &'static str {
    match io_status(e) {
        StatusCode::NOT_FOUND => "not found",
        StatusCode::FORBIDDEN => "permission denied",
        StatusCode::CONFLICT => "conflicts with the current state of the resource",
        StatusCode::INSUFFICIENT_STORAGE => "insufficient storage",
        StatusCode::BAD_REQUEST => "invalid file name",
        StatusCode::SERVICE_UNAVAILABLE => "storage temporarily unavailable",
        _ => "internal storage error",
    }
}

impl From<XmlError> for DavError {
    fn from(e: XmlError) -> Self {
        match e {
            XmlError::TooLarge => DavError::TooLarge,
            other => DavError::BadRequest(other.to_string()),
        }
    }
}

impl From<PathError> for DavError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::Malformed => DavError::BadRequest("malformed path".into()),
            PathError::Forbidden => DavError::Forbidden("path leaves the served root"),
        }
    }
}

impl From<DestinationError> for DavError {
    fn from(e: DestinationError) -> Self {
        match e {
            DestinationError::Malformed => DavError::BadRequest("malformed Destination".into()),
            DestinationError::Path(p) => p.into(),
            DestinationError::OtherServer => {
                DavError::BadGateway("Destination is on another server")
            }
        }
    }
}

impl From<davit_proto::headers::HeaderError> for DavError {
    fn from(e: davit_proto::headers::HeaderError) -> Self {
        DavError::BadRequest(e.to_string())
    }
}

/// Shorthand for handler results.
pub type DavResult<T> = Result<T, DavError>;

impl From<crate::props::StoreError> for DavError {
    fn from(e: crate::props::StoreError) -> Self {
        match e {
            crate::props::StoreError::Failed(m) => DavError::Store(m),
            crate::props::StoreError::Unavailable(m) => DavError::Unavailable(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DavError;
    use http_body_util::BodyExt;

    #[test]
    fn an_unreachable_backend_is_503_with_retry_after() {
        for e in [
            DavError::Io(std::io::ErrorKind::TimedOut.into()),
            DavError::Unavailable("PostgreSQL is unavailable".into()),
        ] {
            let r = e.into_response();
            assert_eq!(r.status(), http::StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                r.headers()
                    .get(http::header::RETRY_AFTER)
                    .map(|v| v.as_bytes()),
                Some(&b"5"[..])
            );
        }
    }

    #[tokio::test]
    async fn a_full_disk_is_507_with_sufficient_disk_space() {
        let r = DavError::Io(std::io::ErrorKind::StorageFull.into()).into_response();
        assert_eq!(r.status(), http::StatusCode::INSUFFICIENT_STORAGE);
        let body = r
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let root = davit_proto::xml::parse_document(&body, &Default::default())
            .unwrap_or_else(|e| panic!("not XML ({e})"));
        assert!(root.name.is_dav("error"));
        let names: Vec<_> = root.elements().map(|e| e.name.local.clone()).collect();
        assert_eq!(names, vec!["sufficient-disk-space".to_owned()]);
    }
}
