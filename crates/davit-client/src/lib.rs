//! davit's WebDAV client library: every RFC 4918 operation over reqwest (rustls), with
//! `207 Multi-Status` answers read exactly, one resource at a time.
//!
//! The rule throughout: an operation that can partly fail (PROPFIND, PROPPATCH, DELETE, COPY,
//! MOVE of a collection) reports its outcome *per resource* — the server's 207 is never
//! collapsed into "it worked" or "it failed". A request the server refuses as a whole is an
//! [`Error::Status`] carrying the status, the `DAV:error` condition and the start of the body.
//!
//! [`Client::batch`] posts a davit batch document and yields one [`OpResult`] per operation as
//! the answer streams in. [`Client::with_lock_tokens`] gives a client that submits lock tokens
//! with its writes, so the holder of a lock can change what it locked.
//!
//! ```no_run
//! # async fn demo() -> davit_client::Result<()> {
//! use davit_client::{Client, Depth, PropRequest};
//! let client = Client::builder().build()?;
//! let url = davit_client::Url::parse("http://127.0.0.1:4918/docs/").unwrap();
//! let mut listing = client.propfind(&url, Depth::One, &PropRequest::Common).await?;
//! while let Some(resource) = listing.next().await {
//!     let r = resource?;
//!     println!("{} {:?}", r.path, r.live.size);
//! }
//! # Ok(()) }
//! ```

mod batch;
mod error;
mod multistatus;
mod ops;
pub mod partial;
mod sync;

pub use batch::{BatchStream, OpResult};
pub use davit_proto::headers::Depth;
pub use davit_proto::xml::SyncLevel;
pub use davit_proto::xml::{Element, LiveProps, PropStat, QName, Response};
pub use error::{Error, Result};
pub use multistatus::{Failure, Outcome, PropOutcome, PropfindStream, Resource};
pub use ops::{Download, Lock, LockRequest, PatchValue, PropPatch, PropRequest, ServerInfo};
pub use reqwest::Url;
pub use sync::{SyncChange, SyncResult, SyncStream};

use std::sync::Arc;
use std::time::Duration;

/// Called with the number of bytes moved since the last call (upload or download progress).
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// A WebDAV client. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    user: Option<String>,
    password: Option<String>,
    /// The If header of write requests.
    conditions: Conditions,
}

/// What the If header of write requests says.
#[derive(Clone, Debug, Default)]
enum Conditions {
    /// No If header.
    #[default]
    None,
    /// Lock tokens to submit, without angle brackets.
    Tokens(Vec<String>),
    /// A header value given as it is.
    Raw(String),
}

/// Builds a [`Client`].
#[derive(Debug, Default)]
pub struct ClientBuilder {
    user: Option<String>,
    password: Option<String>,
    connect_timeout: Option<Duration>,
}

impl ClientBuilder {
    /// HTTP Basic credentials sent with every request.
    pub fn credentials(mut self, user: impl Into<String>, password: Option<String>) -> Self {
        self.user = Some(user.into());
        self.password = password;
        self
    }

    /// How long connecting may take (default 30 s). There is no overall timeout, since
    /// transfers may legitimately take hours.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = Some(t);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("davit/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(30)))
            // Redirects of WebDAV methods cannot be followed blindly (a MOVE's Destination
            // would not follow); callers see the 3xx instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Client {
            http,
            user: self.user,
            password: self.password,
            conditions: Conditions::None,
        })
    }
}

impl Client {
    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client (sharing this one's connections) that submits these lock tokens with every
    /// request that changes something — PUT, DELETE, MKCOL, COPY, MOVE, PROPPATCH and batch
    /// POSTs — so that the holder of a lock can change the locked resources. Tokens are given
    /// without angle brackets (`urn:uuid:…`); none means no If header.
    ///
    /// The If header has one list per token, `(<t1>) (<t2>)`, which holds when any of them
    /// names a lock covering the Request-URI; COPY and MOVE tag the lists with both the source
    /// and the destination (`<src> (<t1>) <dest> (<t1>)`), so a token for a locked
    /// destination alone is enough. For anything else (a token for a locked member of a
    /// collection being deleted, entity tags) use [`with_if`](Self::with_if).
    ///
    /// ```no_run
    /// # async fn demo(client: davit_client::Client, url: davit_client::Url) -> davit_client::Result<()> {
    /// let lock = client.lock(&url, &Default::default()).await?;
    /// let holder = client.with_lock_tokens([lock.token.as_str()]);
    /// holder.put(&url, &b"new content"[..], Some(11), None).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_lock_tokens<I, S>(&self, tokens: I) -> Client
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tokens: Vec<String> = tokens.into_iter().map(Into::into).collect();
        let mut c = self.clone();
        c.conditions = if tokens.is_empty() {
            Conditions::None
        } else {
            Conditions::Tokens(tokens)
        };
        c
    }

    /// A client (sharing this one's connections) that sends `value` as the If header
    /// (RFC 4918 §10.4) of every request that changes something, as it is: tagged lists,
    /// entity tags, `Not`. An empty value means no If header.
    pub fn with_if(&self, value: impl Into<String>) -> Client {
        let value = value.into();
        let mut c = self.clone();
        c.conditions = if value.trim().is_empty() {
            Conditions::None
        } else {
            Conditions::Raw(value)
        };
        c
    }

    /// The If header for a write to `url` (and `dest`, for COPY and MOVE).
    fn if_header(&self, url: &Url, dest: Option<&Url>) -> Option<String> {
        match &self.conditions {
            Conditions::None => None,
            Conditions::Raw(v) => Some(v.clone()),
            Conditions::Tokens(tokens) => {
                let lists = tokens
                    .iter()
                    .map(|t| format!("(<{t}>)"))
                    .collect::<Vec<_>>()
                    .join(" ");
                Some(match dest {
                    None => lists,
                    Some(d) => format!("<{url}> {lists} <{d}> {lists}"),
                })
            }
        }
    }
}
