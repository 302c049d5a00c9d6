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
pub use ops::{
    Download, Lock, LockRequest, PatchValue, PropPatch, PropRequest, ServerInfo, Stored,
    UploadState,
};
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
    /// How many times a request that changes nothing is tried again (see
    /// [`ClientBuilder::retries`]).
    retries: u32,
}

/// What the If header of write requests says.
#[derive(Clone, Debug, Default)]
enum Conditions {
    /// No If header.
    #[default]
    None,
    /// Lock tokens to submit, without angle brackets, with the lock roots found for them.
    Tokens(Vec<String>, LockRoots),
    /// A header value given as it is.
    Raw(String),
}

/// The lock root of each submitted token, looked up once (`None`: not found).
type LockRoots = Arc<std::sync::Mutex<std::collections::HashMap<String, Option<Url>>>>;

/// Builds a [`Client`].
#[derive(Debug, Default)]
pub struct ClientBuilder {
    user: Option<String>,
    password: Option<String>,
    connect_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    retries: Option<u32>,
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

    /// How long a response (its head, or the next bytes of its body) may keep the client
    /// waiting before the request fails with a timeout (default 60 s), so a server that
    /// accepts and never answers cannot hang it.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = Some(t);
        self
    }

    /// How many times a request that changes nothing (GET, HEAD, OPTIONS, PROPFIND, REPORT)
    /// is tried again when the connection fails or the server answers 503 (default 3), after
    /// 0.5 s, 1 s, 2 s, … or as long as its `Retry-After` says (at most 60 s).
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = Some(n);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("davit/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .read_timeout(self.idle_timeout.unwrap_or(Duration::from_secs(60)))
            // Redirects of WebDAV methods cannot be followed blindly (a MOVE's Destination
            // would not follow); callers see the 3xx instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Client {
            http,
            user: self.user,
            password: self.password,
            conditions: Conditions::None,
            retries: self.retries.unwrap_or(3),
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
    /// Each token goes in a list tagged with its lock's root (`<http://host/L/> (<t1>)`),
    /// which every server evaluates as RFC 4918 intends, also for a new member of a locked
    /// collection (Apache mod_dav accepts nothing else there). The root is looked up once per
    /// token, from the `lockdiscovery` of the resource written (or its nearest existing
    /// ancestor): the `lockroot` the server reports, or else the topmost collection the lock
    /// still shows on. A token whose root cannot be found goes in lists tagged with the
    /// Request-URI (and a COPY's or MOVE's destination). For anything else (a token for a locked
    /// member of a collection being deleted, entity tags) use [`with_if`](Self::with_if).
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
            Conditions::Tokens(tokens, LockRoots::default())
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
    async fn if_header(&self, url: &Url, dest: Option<&Url>) -> Option<String> {
        match &self.conditions {
            Conditions::None => None,
            Conditions::Raw(v) => Some(v.clone()),
            Conditions::Tokens(tokens, roots) => {
                let mut lists: Vec<(Option<Url>, &str)> = Vec::with_capacity(tokens.len());
                for t in tokens {
                    let known = roots.lock().ok().and_then(|m| m.get(t).cloned());
                    let root = match known {
                        Some(r) => r,
                        None => {
                            let mut found = None;
                            for start in std::iter::once(url).chain(dest) {
                                found = self.lock_root(start, t).await;
                                if found.is_some() {
                                    break;
                                }
                            }
                            if let Ok(mut m) = roots.lock() {
                                m.insert(t.clone(), found.clone());
                            }
                            found
                        }
                    };
                    lists.push((root, t));
                }
                Some(if_value(&lists, url, dest))
            }
        }
    }

    /// Where the lock with `token` that covers `url` is rooted, from `lockdiscovery`.
    async fn lock_root(&self, url: &Url, token: &str) -> Option<Url> {
        // The resource may not exist yet: its nearest existing ancestor shows the lock.
        let mut at = url.clone();
        let mut shown: Option<Url> = None;
        loop {
            match self.lock_seen(&at, token).await {
                Seen::Root(root) => return Some(root),
                Seen::Here => shown = Some(at.clone()),
                Seen::NotHere if shown.is_some() => return shown,
                Seen::NotHere => {}
                Seen::Missing => {}
            }
            at = match parent_of(&at) {
                Some(p) => p,
                None => return shown,
            };
        }
    }

    /// What `lockdiscovery` of `url` says about the lock with `token`.
    async fn lock_seen(&self, url: &Url, token: &str) -> Seen {
        const BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>"#;
        let Ok(rb) = self.request("PROPFIND", url) else {
            return Seen::Missing;
        };
        let rb = rb
            .header("Depth", "0")
            .header(reqwest::header::CONTENT_TYPE, "application/xml")
            .body(BODY);
        let Ok(resp) = rb.send().await else {
            return Seen::Missing;
        };
        if resp.status().as_u16() != 207 {
            return Seen::Missing;
        }
        let Ok(body) = resp.bytes().await else {
            return Seen::Missing;
        };
        match ops::lock_in(token, &body) {
            None => Seen::NotHere,
            Some(None) => Seen::Here,
            Some(Some(root)) => match url.join(&root) {
                Ok(r) => Seen::Root(r),
                Err(_) => Seen::Here,
            },
        }
    }
}

/// What a resource's `lockdiscovery` says about one lock.
enum Seen {
    /// The lock is there, rooted here (an absolute URL).
    Root(Url),
    /// The lock is there; the server does not say where it is rooted.
    Here,
    /// The resource is there without that lock.
    NotHere,
    /// No answer (unmapped, or no PROPFIND).
    Missing,
}

/// The If header value: each token in a list tagged with its lock root; one whose root is
/// unknown in lists tagged with the Request-URI and the destination (RFC 4918 §10.4: tagged
/// and untagged lists do not mix in one header).
fn if_value(lists: &[(Option<Url>, &str)], url: &Url, dest: Option<&Url>) -> String {
    let mut out: Vec<String> = Vec::new();
    for (root, t) in lists {
        match root {
            Some(r) => out.push(format!("<{r}> (<{t}>)")),
            None => {
                for u in std::iter::once(url).chain(dest) {
                    out.push(format!("<{u}> (<{t}>)"));
                }
            }
        }
    }
    out.join(" ")
}

/// The collection holding `url` (`None` for a server's root).
fn parent_of(url: &Url) -> Option<Url> {
    let path = url.path().trim_end_matches('/');
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind('/')?;
    let mut parent = url.clone();
    parent.set_path(&path[..=cut]);
    parent.set_query(None);
    parent.set_fragment(None);
    Some(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn tokens_are_tagged_with_their_lock_roots_or_the_request_uri() {
        let url = u("http://h/L/x");
        assert_eq!(
            if_value(&[(Some(u("http://h/L/")), "urn:uuid:t")], &url, None),
            "<http://h/L/> (<urn:uuid:t>)"
        );
        assert_eq!(
            if_value(
                &[
                    (Some(u("http://h/L/")), "urn:uuid:t"),
                    (Some(u("http://h/M/x")), "urn:uuid:u")
                ],
                &url,
                None
            ),
            "<http://h/L/> (<urn:uuid:t>) <http://h/M/x> (<urn:uuid:u>)"
        );
        assert_eq!(
            if_value(
                &[(Some(u("http://h/L/")), "t"), (None, "u")],
                &url,
                Some(&u("http://h/d"))
            ),
            "<http://h/L/> (<t>) <http://h/L/x> (<u>) <http://h/d> (<u>)"
        );
    }

    #[test]
    fn parents() {
        assert_eq!(
            parent_of(&u("http://h/L/x%20y.txt")),
            Some(u("http://h/L/"))
        );
        assert_eq!(parent_of(&u("http://h/a/b/")), Some(u("http://h/a/")));
        assert_eq!(parent_of(&u("http://h/a")), Some(u("http://h/")));
        assert_eq!(parent_of(&u("http://h/")), None);
    }
}
