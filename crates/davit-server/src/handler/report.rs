//! REPORT (RFC 3253 §3.6) with the one report davit offers, RFC 6578 `DAV:sync-collection`:
//! parse the body → check (collection, Depth, level, token, If) → reconcile the scope's change
//! log with what is there now → stream the 207 of the changes since the token, then the new
//! token.

use super::{header_str, response, Dav, ReqBody, Target};
use crate::body::{self, Body};
use crate::changes::{self, ChangeLog, MemberState, Observed, Scope, Walk};
use crate::error::{DavError, DavResult};
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::{Meta, Storage};
use bytes::Bytes;
use davit_proto::headers::Depth;
use davit_proto::href::DavPath;
use davit_proto::xml::{parse_report, MultistatusWriter, Report, SyncLevel, XML_CONTENT_TYPE};
use futures_util::StreamExt;
use http::request::Parts;
use http::{header, Response, StatusCode};
use std::sync::Arc;

/// Changes read from the log per page while the answer is written.
const PAGE: usize = 256;

/// Deepest level below the synced collection a walk descends to (a guard against symbolic
/// link loops the kernel would only stop at 40 levels, each wider than the last).
const MAX_WALK_DEPTH: usize = 64;

/// Written bytes are handed to the connection in chunks of about this size.
const CHUNK: usize = 32 * 1024;

fn unsupported() -> DavError {
    DavError::condition(StatusCode::FORBIDDEN, "supported-report")
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn report<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
    ) -> DavResult<Response<Body>> {
        let depth = header_str(parts, "depth")?.map(Depth::parse).transpose()?;
        let body = self.read_xml_body(parts, body).await?;
        let report = parse_report(&body, &self.config.xml_limits())?;
        let meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
        self.check_preconditions(parts, target, Some(&meta), &[])
            .await?;
        let Report::SyncCollection(request) = report else {
            return Err(unsupported());
        };
        let Some(log) = self.changes.clone() else {
            return Err(unsupported());
        };
        if !meta.is_dir() {
            return Err(unsupported());
        }
        // RFC 6578 §3.2: the report is defined for Depth: 0 only; without a sync-level,
        // older drafts' Depth stands in.
        let level = match (request.level, depth) {
            (Some(l), None | Some(Depth::Zero)) => l,
            (Some(_), Some(_)) => {
                return Err(DavError::BadRequest(
                    "sync-collection is defined for Depth: 0 only".into(),
                ))
            }
            (None, Some(Depth::One)) => SyncLevel::One,
            (None, Some(Depth::Infinity)) => SyncLevel::Infinite,
            (None, _) => {
                return Err(DavError::BadRequest(
                    "sync-collection needs a sync-level".into(),
                ))
            }
        };
        let since = match &request.token {
            None => None,
            Some(t) => {
                let current = log.current().await?;
                let oldest = log.oldest().await?;
                match changes::parse_token(log.store_id(), t, oldest, current) {
                    Ok(seq) => Some(seq),
                    Err(_) => {
                        return Err(DavError::condition(
                            StatusCode::FORBIDDEN,
                            "valid-sync-token",
                        ))
                    }
                }
            }
        };
        let scope = Scope {
            root: target.path.clone(),
            level,
        };
        self.reconcile(log.as_ref(), &scope).await?;
        // The walk may have pruned history the token points into.
        let oldest = log.oldest().await?;
        if since.is_some_and(|s| s < oldest) {
            return Err(DavError::condition(
                StatusCode::FORBIDDEN,
                "valid-sync-token",
            ));
        }
        let end = log.current().await?;
        let prefer = super::prefer_of(parts);
        let (tx, body) = body::channel(4);
        let writer = SyncWriter {
            dav: self.clone(),
            log,
            request: request.props,
            scope,
            since,
            limit: request.limit,
            end,
            who: super::principal(parts),
            minimal: prefer.minimal,
            tx,
            w: MultistatusWriter::new(),
        };
        tokio::spawn(writer.run());
        let resp = response(StatusCode::MULTI_STATUS)
            .header(header::CONTENT_TYPE, XML_CONTENT_TYPE)
            .body(body)
            .map_err(super::get::internal)?;
        Ok(super::preferences_applied(resp, prefer.minimal, false))
    }

    /// Brings the change log up to date with the scope as it is now: walks it in batches
    /// (the log's own work runs on the blocking pool) and, when every collection could be
    /// listed, lets the log turn what it no longer found into removals.
    async fn reconcile(&self, log: &dyn ChangeLog, scope: &Scope) -> DavResult<()> {
        let walk = log.begin_walk(scope.clone()).await?;
        let complete = self.walk_into(log, &walk).await?;
        if complete {
            log.end_walk(walk).await?;
        } else {
            tracing::warn!(path = %scope.root, "sync walk incomplete; no removals recorded");
        }
        Ok(())
    }

    /// Feeds every member of the walk's scope to the log; false when some collection could
    /// not be listed (or was cut off), so that its members are not taken for removed.
    async fn walk_into(&self, log: &dyn ChangeLog, walk: &Walk) -> DavResult<bool> {
        let root = &walk.scope.root;
        let deep = walk.scope.level == SyncLevel::Infinite;
        let base = root.segments().count();
        let mut complete = true;
        // Collections reached twice (a symbolic link to one already walked) are walked once.
        let mut walked: std::collections::HashSet<String> = std::collections::HashSet::new();
        if let Some(m) = self.meta_at(root).await? {
            walked.insert(m.etag);
        }
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let mut list = match self.storage.list(&dir).await {
                Ok(l) => l,
                Err(e) if super::is_absent(&e) && &dir != root => continue,
                Err(e) => {
                    tracing::warn!(path = %dir, error = %e, "sync walk cannot list");
                    complete = false;
                    continue;
                }
            };
            while let Some(batch) = list.next().await {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(path = %dir, error = %e, "sync walk listing failed");
                        complete = false;
                        break;
                    }
                };
                let mut found = Vec::with_capacity(batch.len());
                for entry in batch {
                    let Ok(child) = dir.join(&entry.name) else {
                        continue;
                    };
                    if deep && entry.meta.is_dir() {
                        if child.segments().count() - base >= MAX_WALK_DEPTH {
                            complete = false;
                        } else if walked.insert(entry.meta.etag.clone()) {
                            pending.push(child.clone());
                        }
                    }
                    found.push(Observed::from_meta(child, &entry.meta));
                }
                log.observe(walk, found).await?;
            }
        }
        Ok(complete)
    }

    /// Tells the change log about writes made through davit (a failure is logged, not
    /// answered: the next sync's walk finds the change anyway).
    pub(crate) async fn note_changes(&self, notes: Vec<changes::Noted>) {
        if let Some(log) = &self.changes {
            if let Err(e) = log.record(notes).await {
                tracing::warn!(error = %e, "cannot record a change for sync");
            }
        }
    }

    /// True while the collection at `path` is in the state `token` names (RFC 6578 §5): the
    /// token is one of this store's, and no change below the collection has been logged
    /// since. (Changes by other programs count once a sync has walked them.)
    pub(crate) async fn sync_state_holds(&self, path: &DavPath, token: &str) -> DavResult<bool> {
        let Some(log) = &self.changes else {
            return Ok(false);
        };
        if !self.meta_at(path).await?.is_some_and(|m| m.is_dir()) {
            return Ok(false);
        }
        let (oldest, current) = (log.oldest().await?, log.current().await?);
        let Ok(seq) = changes::parse_token(log.store_id(), token, oldest, current) else {
            return Ok(false);
        };
        let scope = Scope {
            root: path.clone(),
            level: SyncLevel::Infinite,
        };
        Ok(log.changes(&scope, Some(seq), 0, 1).await?.is_empty())
    }

    /// The `DAV:sync-token` a sync-collection would return now, if the report is offered.
    pub(crate) async fn current_sync_token(&self) -> Option<String> {
        let log = self.changes.as_ref()?;
        match log.current().await {
            Ok(seq) => Some(changes::format_token(log.store_id(), seq)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the sync token");
                None
            }
        }
    }
}

/// The task that writes a sync-collection's 207 from the log, page by page.
struct SyncWriter<S, P, L> {
    dav: Dav<S, P, L>,
    log: Arc<dyn ChangeLog>,
    request: davit_proto::xml::PropFind,
    scope: Scope,
    since: Option<u64>,
    limit: Option<u64>,
    /// The log's sequence number after the walk: the token when nothing is cut off.
    end: u64,
    who: crate::auth::Principal,
    minimal: bool,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    w: MultistatusWriter,
}

/// The client went away, or the answer broke off with an error already sent.
struct Stop;

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> SyncWriter<S, P, L> {
    async fn run(mut self) {
        if let Ok(token) = self.write_all().await {
            let w = std::mem::take(&mut self.w);
            let rest = w.finish_with_sync_token(&changes::format_token(self.log.store_id(), token));
            let _ = self.tx.send(Ok(Bytes::from(rest))).await;
        }
    }

    async fn fail(&self, e: impl std::fmt::Display) -> Stop {
        tracing::error!(error = %e, "sync-collection answer broke off");
        let _ = self
            .tx
            .send(Err(std::io::Error::other(e.to_string())))
            .await;
        Stop
    }

    /// Writes the changes and returns the token that continues after them.
    async fn write_all(&mut self) -> Result<u64, Stop> {
        let mut after = 0u64;
        let mut listed = 0u64;
        let mut last_listed = self.since.unwrap_or(0);
        loop {
            let page = match self.log.changes(&self.scope, self.since, after, PAGE).await {
                Ok(p) => p,
                Err(e) => return Err(self.fail(e).await),
            };
            let Some(last) = page.last() else {
                return Ok(self.end.max(last_listed));
            };
            after = last.seq;
            let mut batch = Vec::with_capacity(page.len());
            let mut cut = false;
            for change in page {
                if !self.dav.visible(&self.who, &change.path) {
                    continue;
                }
                if self.limit.is_some_and(|n| listed >= n) {
                    cut = true;
                    break;
                }
                listed += 1;
                last_listed = change.seq;
                batch.push(change);
            }
            self.write_batch(batch).await?;
            if cut {
                // RFC 6578 §3.6: the Request-URI with 507, and a token that continues
                // exactly after what was listed.
                self.w.status_response(
                    &self.scope.root.href(true),
                    507,
                    Some("number-of-matches-within-limits"),
                    None,
                );
                return Ok(last_listed);
            }
        }
    }

    async fn write_batch(&mut self, batch: Vec<changes::LoggedChange>) -> Result<(), Stop> {
        let mut mapped: Vec<(DavPath, Meta)> = Vec::new();
        let mut vanished = Vec::new();
        for change in batch {
            let kind = match change.state {
                MemberState::Removed(k) => k,
                MemberState::Mapped(k) => match self.dav.meta_at(&change.path).await {
                    Ok(Some(meta)) => {
                        mapped.push((change.path, meta));
                        continue;
                    }
                    // Gone since the walk, or not there yet (recorded by an atomic batch
                    // on PostgreSQL that has not committed): the log learns what the client
                    // is told, so a later appearance counts as a change.
                    Ok(None) => {
                        vanished.push(changes::Noted::Gone(change.path.clone()));
                        k
                    }
                    Err(e) => return Err(self.fail(e).await),
                },
            };
            let href = change.path.href(kind == crate::storage::Kind::Dir);
            self.w.status_response(&href, 404, None, None);
        }
        if !vanished.is_empty() {
            self.dav.note_changes(vanished).await;
        }
        if let Err(e) = self
            .dav
            .write_resources(&mut self.w, &self.request, mapped, self.minimal, &self.who)
            .await
        {
            return Err(self.fail(e).await);
        }
        if self.w.pending() >= CHUNK {
            let chunk = self.w.take();
            self.tx
                .send(Ok(Bytes::from(chunk)))
                .await
                .map_err(|_| Stop)?;
        }
        Ok(())
    }
}
