//! The one error type of the client: each variant says where things went wrong, and a server
//! refusal carries what the server said (status, `DAV:error` condition, start of the body).

use davit_proto::xml::XmlError;

/// How much of an error body is kept: enough for a message, never a whole HTML page.
pub(crate) const SNIPPET_LEN: usize = 512;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request as a whole.
    #[error("{method} {url}: {status} {reason}{}{}", condition_suffix(condition.as_deref(), hrefs), body_suffix(body))]
    Status {
        /// The request method.
        method: Box<str>,
        /// The request URL.
        url: Box<str>,
        /// The status code.
        status: u16,
        /// The reason phrase davit-proto knows for the code (empty when unknown).
        reason: &'static str,
        /// The `DAV:error` condition of the body (e.g. `lock-token-submitted`), without namespace
        /// when it is `DAV:`, in `{ns}name` form otherwise.
        condition: Option<String>,
        /// The hrefs inside the condition (the locked resource of a 423, say).
        hrefs: Box<[String]>,
        /// The start of the body, when it was text and not a `DAV:error` document.
        body: String,
    },
    /// The connection failed, timed out, or the body broke off. Said once, with the host and
    /// port and the underlying cause (reqwest's own chain repeats itself).
    #[error("{}", http_message(.0))]
    Http(reqwest::Error),
    /// A Multi-Status (or other XML) answer that cannot be read. (Not a `source`: the message
    /// holds it already, and a chain printer would repeat it.)
    #[error("unreadable answer from the server: {0}")]
    Xml(XmlError),
    /// Local files.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A URL that cannot be used.
    #[error("invalid URL: {0}")]
    Url(String),
    /// An answer that breaks the protocol (e.g. LOCK without a Lock-Token).
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl Error {
    /// The HTTP status when the server refused the request.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<XmlError> for Error {
    fn from(e: XmlError) -> Self {
        Error::Xml(e)
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Error::Http(e)
    }
}

/// `cannot connect to host:port: Connection refused (os error 111)` and the like.
fn http_message(e: &reqwest::Error) -> String {
    let place = e
        .url()
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or("?"),
                u.port_or_known_default().unwrap_or(0)
            )
        })
        .unwrap_or_else(|| "the server".to_owned());
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let cause = cause.to_string();
    if e.is_timeout() {
        format!("{place}: no answer in time ({cause})")
    } else if e.is_connect() {
        format!("cannot connect to {place}: {cause}")
    } else if e.is_body() || e.is_decode() {
        format!("{place}: the answer broke off: {cause}")
    } else {
        format!("{place}: {cause}")
    }
}

fn condition_suffix(c: Option<&str>, hrefs: &[String]) -> String {
    match c {
        None => String::new(),
        Some(c) if hrefs.is_empty() => format!(" ({c})"),
        Some(c) => format!(" ({c}: {})", hrefs.join(", ")),
    }
}

fn body_suffix(b: &str) -> String {
    if b.is_empty() {
        String::new()
    } else {
        format!(": {b}")
    }
}

/// The result type of the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;
