//! davit's WebDAV client library: every RFC 4918 operation over reqwest (rustls), with
//! `207 Multi-Status` answers read exactly, one resource at a time.
//!
//! The rule throughout: an operation that can partly fail (PROPFIND, PROPPATCH, DELETE, COPY,
//! MOVE of a collection) reports its outcome *per resource* — the server's 207 is never
//! collapsed into "it worked" or "it failed". A request the server refuses as a whole is an
//! [`Error::Status`] carrying the status, the `DAV:error` condition and the start of the body.
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

mod error;
mod multistatus;
mod ops;

pub use davit_proto::headers::Depth;
pub use davit_proto::xml::{Element, LiveProps, PropStat, QName, Response};
pub use error::{Error, Result};
pub use multistatus::{Failure, Outcome, PropOutcome, PropfindStream, Resource};
pub use ops::{Download, Lock, LockRequest, PatchValue, PropPatch, PropRequest, ServerInfo};
pub use reqwest::Url;

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
        })
    }
}

impl Client {
    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
}
