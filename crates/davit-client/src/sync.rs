//! RFC 6578 sync-collection: what changed in a collection since a token, per member, with the
//! new token and whether the server cut the answer short (then its token continues after what
//! was listed, and [`Client::sync_collection_all`] follows it).

use crate::multistatus::{self, BodyReader, Resource};
use crate::ops::{propfind_of, PropRequest};
use crate::{Client, Error, Result};
use davit_proto::xml::{MultistatusReader, QName, SyncCollection, SyncLevel};
use reqwest::header::CONTENT_TYPE;
use reqwest::{StatusCode, Url};
use std::io::BufReader;
use tokio::sync::mpsc;

/// One member of a sync-collection answer.
#[derive(Clone, Debug)]
pub enum SyncChange {
    /// New or changed since the token, with the requested properties.
    Changed(Box<Resource>),
    /// Unmapped since the token.
    Removed {
        /// The member, resolved against the request URL.
        url: Url,
        /// Its decoded path.
        path: String,
    },
    /// A member the server could not report (RFC 6578 §3.3: a child collection it cannot
    /// sync, with `DAV:supported-report` or `DAV:sync-traversal-supported`).
    Refused {
        /// The member.
        url: Url,
        /// Its decoded path.
        path: String,
        /// The status the server gave it.
        status: u16,
        /// The `DAV:error` conditions.
        error: Vec<QName>,
    },
}

impl SyncChange {
    /// The decoded path of the member.
    pub fn path(&self) -> &str {
        match self {
            SyncChange::Changed(r) => &r.path,
            SyncChange::Removed { path, .. } | SyncChange::Refused { path, .. } => path,
        }
    }
}

/// What a whole sync (all its continuations) found.
#[derive(Clone, Debug)]
pub struct SyncResult {
    /// The latest change of each member, in the order the server listed them.
    pub changes: Vec<SyncChange>,
    /// The token to send next time.
    pub token: String,
}

enum Item {
    Change(SyncChange),
    Truncated,
    End(Option<String>),
}

/// The members of one sync-collection answer as they arrive, then its token
/// ([`finish`](Self::finish)).
pub struct SyncStream {
    rx: mpsc::Receiver<Result<Item>>,
    truncated: bool,
    token: Option<String>,
    ended: bool,
}

impl SyncStream {
    /// The next member; `None` once the answer has been read whole.
    pub async fn next(&mut self) -> Option<Result<SyncChange>> {
        loop {
            if self.ended {
                return None;
            }
            match self.rx.recv().await {
                None => {
                    self.ended = true;
                    return Some(Err(Error::Protocol(
                        "the sync-collection answer broke off".into(),
                    )));
                }
                Some(Err(e)) => {
                    self.ended = true;
                    return Some(Err(e));
                }
                Some(Ok(Item::Change(c))) => return Some(Ok(c)),
                Some(Ok(Item::Truncated)) => self.truncated = true,
                Some(Ok(Item::End(token))) => {
                    self.ended = true;
                    self.token = token;
                }
            }
        }
    }

    /// Reads whatever members are left (dropping them) and returns the new token, and whether
    /// the server cut the answer short (a 507 for the collection: sync again with the token
    /// for the rest).
    pub async fn finish(mut self) -> Result<(String, bool)> {
        while let Some(item) = self.next().await {
            item?;
        }
        match self.token {
            Some(t) => Ok((t, self.truncated)),
            None => Err(Error::Protocol(
                "the sync-collection answer has no sync-token".into(),
            )),
        }
    }
}

impl Client {
    /// One sync-collection REPORT of the collection at `url`: the members changed since
    /// `token` (`None`: every member, an initial sync), within `level`, with `props`, at most
    /// `limit` of them if given. A token the server no longer knows is an [`Error::Status`]
    /// (403) whose condition is `valid-sync-token` (see [`Error::is_invalid_sync_token`]):
    /// start over with `None`.
    pub async fn sync_collection(
        &self,
        url: &Url,
        token: Option<&str>,
        level: SyncLevel,
        props: &PropRequest,
        limit: Option<u64>,
    ) -> Result<SyncStream> {
        let body = SyncCollection {
            token: token.map(str::to_owned),
            level: Some(level),
            props: propfind_of(props),
            limit,
        }
        .to_xml();
        let rb = self
            .request("REPORT", url)?
            .header("Depth", "0")
            .header(CONTENT_TYPE, "application/xml; charset=\"utf-8\"")
            .body(body);
        let response = self.send("REPORT", url, rb).await?;
        if response.status() != StatusCode::MULTI_STATUS {
            return Err(Error::Protocol(format!(
                "REPORT {url} answered {} instead of 207",
                response.status().as_u16()
            )));
        }
        let base = response.url().clone();
        Ok(SyncStream {
            rx: spawn_sync_reader(base, response),
            truncated: false,
            token: None,
            ended: false,
        })
    }

    /// A whole sync: [`sync_collection`](Self::sync_collection) again with each continuation
    /// token until the server has listed everything (`limit` is the size of each page). A
    /// member listed on several pages is kept once, with its latest state.
    pub async fn sync_collection_all(
        &self,
        url: &Url,
        token: Option<&str>,
        level: SyncLevel,
        props: &PropRequest,
        limit: Option<u64>,
    ) -> Result<SyncResult> {
        let mut changes: Vec<SyncChange> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        let mut token = token.map(str::to_owned);
        loop {
            let mut page = self
                .sync_collection(url, token.as_deref(), level, props, limit)
                .await?;
            let mut listed = 0usize;
            while let Some(change) = page.next().await {
                let change = change?;
                listed += 1;
                match index.get(change.path()) {
                    Some(&i) => changes[i] = change,
                    None => {
                        index.insert(change.path().to_owned(), changes.len());
                        changes.push(change);
                    }
                }
            }
            let (next, truncated) = page.finish().await?;
            let stuck = truncated && listed == 0;
            token = Some(next);
            if !truncated {
                break;
            }
            if stuck {
                return Err(Error::Protocol(
                    "the server cut a sync short without listing anything".into(),
                ));
            }
        }
        Ok(SyncResult {
            changes,
            token: token.unwrap_or_default(),
        })
    }
}

impl Error {
    /// True for the server's refusal of a sync token (RFC 6578 `DAV:valid-sync-token`): the
    /// client must sync again from scratch.
    pub fn is_invalid_sync_token(&self) -> bool {
        matches!(self, Error::Status { condition: Some(c), .. } if c == "valid-sync-token")
    }
}

/// Parses the answer on a blocking thread, a member at a time, then its token.
fn spawn_sync_reader(base: Url, response: reqwest::Response) -> mpsc::Receiver<Result<Item>> {
    let (tx, rx) = mpsc::channel(64);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let body = BodyReader::new(response, handle);
        let mut reader = MultistatusReader::new(BufReader::with_capacity(64 * 1024, body));
        loop {
            let item = match reader.next_response() {
                Err(e) => Err(Error::from(e)),
                Ok(None) => {
                    let _ = tx.blocking_send(Ok(Item::End(reader.sync_token().map(str::to_owned))));
                    return;
                }
                Ok(Some(r)) => classify(&base, r),
            };
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() || stop {
                return;
            }
        }
    });
    rx
}

fn classify(base: &Url, r: davit_proto::xml::Response) -> Result<Item> {
    let (url, path) = multistatus::resolve(base, &r.href)?;
    Ok(match r.status {
        None => Item::Change(SyncChange::Changed(Box::new(multistatus::resource(
            base, r,
        )?))),
        Some(s) if (200..300).contains(&s) => Item::Change(SyncChange::Changed(Box::new(
            multistatus::resource(base, r)?,
        ))),
        Some(404) => Item::Change(SyncChange::Removed { url, path }),
        Some(507) if url.path() == base.path() => Item::Truncated,
        Some(status) => Item::Change(SyncChange::Refused {
            url,
            path,
            status,
            error: r.error,
        }),
    })
}
