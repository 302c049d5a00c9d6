//! PROPFIND: the 207 is written while the tree is read, in batches, so the first bytes leave
//! at once and memory stays flat however large the collection.

use super::{header_str, response, Dav, ReqBody, Target};
use crate::body::{self, Body};
use crate::error::{DavError, DavResult};
use crate::live::{self, LiveValue, LIVE};
use crate::locks::LockStore;
use crate::props::{DeadProp, PropStore};
use crate::storage::{Meta, Storage};
use bytes::Bytes;
use davit_proto::headers::Depth;
use davit_proto::href::DavPath;
use davit_proto::xml::{
    parse_propfind, Condition, MultistatusWriter, PropFind, QName, XML_CONTENT_TYPE,
};
use futures_util::StreamExt;
use http::request::Parts;
use http::{header, Response, StatusCode};
use tokio::sync::mpsc::Sender;

/// Written bytes are handed to the connection in chunks of about this size.
const CHUNK: usize = 32 * 1024;

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn propfind<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
    ) -> DavResult<Response<Body>> {
        let depth = match header_str(parts, "depth")? {
            None => Depth::Infinity,
            Some(v) => Depth::parse(v)?,
        };
        let body = self.read_xml_body(parts, body).await?;
        let prefer = super::prefer_of(parts);
        // Looked up by the request's own bytes, before they are parsed: only answers to
        // requests that parsed and may be kept were stored under such a key.
        let key = self.listing_key(parts, target, depth, &body);
        let mut version = crate::cache::Version::Any;
        if let (Some(cache), Some(key)) = (&self.cache, &key) {
            version = cache.version().await;
            if let Some(hit) = cache.listing(&target.path, key, version) {
                let resp = super::multistatus_bytes(hit.body);
                return Ok(super::preferences_applied(
                    resp,
                    prefer.minimal,
                    hit.depth_noroot,
                ));
            }
        }
        let request = parse_propfind(&body, &self.config.xml_limits())?;
        let key = key.filter(|_| may_keep(&request));
        let mut fill = None;
        if let (Some(cache), Some(_)) = (&self.cache, &key) {
            // Watched before anything is read, so that a change made meanwhile is noticed.
            fill = cache.begin(&target.path, false, version);
        }
        let mut meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
        if let (Some(cache), true) = (&self.cache, fill.is_some() && meta.is_dir()) {
            // A collection's own watch reports its membership; its metadata is read again
            // after the watch began.
            if cache.watch_more(&target.path, true) {
                meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
            } else {
                fill = None;
            }
        }
        self.check_preconditions(parts, target, Some(&meta), &[])
            .await?;
        let depth = if meta.is_dir() { depth } else { Depth::Zero };
        let minimal = prefer.minimal;
        let noroot = prefer.depth_noroot && depth != Depth::Zero;
        let keep = fill.zip(key).map(|(fill, key)| Keep {
            fill,
            key,
            buf: Vec::new(),
            collections: Vec::new(),
            depth_noroot: noroot,
        });
        if depth == Depth::Infinity {
            // Refused outright, or when the tree is larger than the configured bound. The
            // count is taken before answering because a 207 cannot turn into a 403 later.
            let limit = self.config.depth_infinity_limit;
            if !self.config.depth_infinity
                || self.storage.count_tree(&target.path, limit).await? > limit
            {
                return Err(DavError::condition(
                    StatusCode::FORBIDDEN,
                    "propfind-finite-depth",
                ));
            }
        }

        if depth == Depth::Zero {
            // One resource: write it here, without a task and a channel.
            let who = super::principal(parts);
            let (xml, volatile) = self
                .propfind_one(target, meta, &request, minimal, &who, Render::Document)
                .await?;
            let xml = Bytes::from(xml);
            if let (Some(cache), Some(keep), false) = (&self.cache, keep, volatile) {
                let rendered = crate::cache::Rendered {
                    body: xml.clone(),
                    depth_noroot: false,
                };
                cache.keep_listing(keep.fill, keep.key, rendered);
            }
            let resp = super::multistatus_bytes(xml);
            return Ok(super::preferences_applied(resp, minimal, false));
        }
        let resp = self
            .stream_listing(
                parts,
                target.path.clone(),
                meta,
                depth,
                Listing {
                    request,
                    minimal,
                    noroot,
                    condition: None,
                    max_matches: None,
                    keep,
                },
            )
            .await?;
        Ok(super::preferences_applied(resp, minimal, noroot))
    }

    /// What identifies a PROPFIND's answer in the cache, or `None` when the cache is not
    /// asked: no cache, Depth infinity, conditional headers.
    fn listing_key(
        &self,
        parts: &Parts,
        target: &Target,
        depth: Depth,
        body: &[u8],
    ) -> Option<Box<[u8]>> {
        self.cache.as_ref()?;
        if depth == Depth::Infinity {
            return None;
        }
        const CONDITIONAL: [&str; 6] = [
            "if",
            "if-match",
            "if-none-match",
            "if-modified-since",
            "if-unmodified-since",
            "if-range",
        ];
        if CONDITIONAL.iter().any(|h| parts.headers.contains_key(*h)) {
            return None;
        }
        let prefer = super::prefer_of(parts);
        let mut key = Vec::with_capacity(body.len() + 48);
        key.push(match depth {
            Depth::Zero => b'0',
            _ => b'1',
        });
        key.push(u8::from(prefer.minimal));
        key.push(u8::from(prefer.depth_noroot));
        key.push(u8::from(target.slash));
        // Who asks decides which members are visible; a reload of the rules changes that.
        if let Some(auth) = &self.auth {
            key.extend_from_slice(&auth.generation().to_le_bytes());
        }
        match super::principal(parts) {
            crate::auth::Principal::User(name) => key.extend_from_slice(name.as_bytes()),
            crate::auth::Principal::Anonymous => {}
        }
        key.push(0);
        key.extend_from_slice(body);
        Some(key.into_boxed_slice())
    }
}

/// Whether an answer to `request` may be kept: not when it shows properties that change with
/// time or with the whole share (quota figures, sync tokens, the asker's privileges,
/// parent-set).
fn may_keep(request: &PropFind) -> bool {
    !(needs_quota(request)
        || needs_sync(request)
        || needs_viewer(request)
        || needs_bindings(request))
}

/// A listing being kept for the cache while it is written.
pub(super) struct Keep {
    fill: crate::cache::Fill,
    key: Box<[u8]>,
    /// What was written so far.
    buf: Vec<u8>,
    /// Member collections, whose own changes show in the listing: watched before it is kept,
    /// and kept only if they did not change meanwhile.
    collections: Vec<(DavPath, Meta)>,
    depth_noroot: bool,
}

/// What a streamed listing writes for each resource it keeps.
pub(super) struct Listing {
    /// The properties.
    pub request: PropFind,
    /// `Prefer: return=minimal`.
    pub minimal: bool,
    /// `Prefer: depth-noroot`.
    pub noroot: bool,
    /// SEARCH's condition on names and kinds.
    pub condition: Option<Condition>,
    /// SEARCH's limit on matches.
    pub max_matches: Option<u64>,
    /// Kept in the cache when written whole (PROPFIND Depth 1).
    pub keep: Option<Keep>,
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// A 207 of `root` and what lies below it to `depth`, written by a task while the tree is
    /// read (PROPFIND with Depth 1 or infinity, and SEARCH).
    pub(super) async fn stream_listing(
        &self,
        parts: &Parts,
        root: DavPath,
        meta: Meta,
        depth: Depth,
        listing: Listing,
    ) -> DavResult<Response<Body>> {
        let (tx, body) = body::channel(4);
        let knows_bind = super::dav_header_lists(parts, "bind");
        // Without `DAV: bind`, a loop fails the whole request with 508 (RFC 5842 §7.2): the
        // answer's status waits for the first chunk, so a loop found before it can still be.
        let (first, started) = if depth == Depth::Infinity && !knows_bind {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let lister = Lister {
            dav: self.clone(),
            request: listing.request,
            tx,
            w: MultistatusWriter::new(),
            listed: 0,
            limit: self.config.depth_infinity_limit,
            who: super::principal(parts),
            minimal: listing.minimal,
            noroot: listing.noroot,
            bindings: None,
            knows_bind,
            first,
            condition: listing.condition,
            max_matches: listing.max_matches,
            keep: listing.keep,
        };
        tokio::spawn(lister.run(root, meta, depth));
        if let Some(started) = started {
            if let Ok(Start::Loop(href)) = started.await {
                return Err(DavError::LoopDetected(href));
            }
        }
        response(StatusCode::MULTI_STATUS)
            .header(header::CONTENT_TYPE, XML_CONTENT_TYPE)
            .body(body)
            .map_err(super::get::internal)
    }
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    async fn propfind_one(
        &self,
        target: &Target,
        meta: Meta,
        request: &PropFind,
        minimal: bool,
        who: &crate::auth::Principal,
        render: Render,
    ) -> DavResult<(String, bool)> {
        let path = &target.path;
        let dead = if needs_dead(request) {
            self.props
                .get_many(vec![path.clone()])
                .await?
                .pop()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let locks = if needs_locks(request) {
            self.locks.covering(path).await?
        } else {
            Vec::new()
        };
        let quota = if needs_quota(request) {
            self.quota_info(path).await
        } else {
            None
        };
        let sync_token = if needs_sync(request) {
            self.current_sync_token().await
        } else {
            None
        };
        let bindings = self.binding_index_if(request).await;
        let viewer = needs_viewer(request).then(|| self.viewer(who));
        let mut w = MultistatusWriter::new();
        let now = std::time::SystemTime::now();
        // A lock's timeout counts down; a future date shows as now.
        let volatile = !locks.is_empty() || meta.modified > now;
        let t = live::Target {
            path,
            meta: &meta,
            locks: &locks,
            stored_type: live::stored_type(&dead),
            now,
            quota,
            sync_token: sync_token.as_deref(),
            resource_id: needs_ids(request).then(|| self.storage.resource_id(&meta.identity)),
            bindings: bindings.as_ref(),
            viewer: viewer.as_ref(),
        };
        Ok(match render {
            Render::Document => {
                write_response(&mut w, request, &resolve(request), &t, &dead, minimal);
                (w.finish(), volatile)
            }
            Render::Propstats => {
                w.take();
                write_propstats(&mut w, request, &resolve(request), &t, &dead, minimal);
                (w.take(), volatile)
            }
        })
    }

    /// The `propstat` elements PROPFIND Depth 0 answers for `target` (whose metadata is
    /// `meta`) with `request`, for a batch operation (`parts` carries who asks and the If
    /// header).
    pub(crate) async fn propfind_propstats(
        &self,
        parts: &Parts,
        target: &Target,
        meta: Meta,
        request: &PropFind,
    ) -> DavResult<String> {
        self.check_preconditions(parts, target, Some(&meta), &[])
            .await?;
        let who = super::principal(parts);
        let (xml, _) = self
            .propfind_one(target, meta, request, false, &who, Render::Propstats)
            .await?;
        Ok(xml)
    }

    /// Keeps a listing written whole, once its member collections are watched and found
    /// unchanged since they were listed.
    async fn keep_listing(&self, keep: Keep) {
        let Some(cache) = &self.cache else {
            return;
        };
        for (path, listed) in &keep.collections {
            if !cache.watch_more(path, true) {
                return;
            }
            match self.storage.metadata(path).await {
                Ok(now) if now.modified == listed.modified && now.etag == listed.etag => {}
                _ => return,
            }
        }
        let rendered = crate::cache::Rendered {
            body: Bytes::from(keep.buf),
            depth_noroot: keep.depth_noroot,
        };
        cache.keep_listing(keep.fill, keep.key, rendered);
    }
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// The quota figures of a resource, or none (the properties then answer 404) when its
    /// storage cannot be measured.
    async fn quota_info(&self, path: &DavPath) -> Option<crate::quota::QuotaInfo> {
        match self.quotas.info(&self.storage, path).await {
            Ok(q) => Some(q),
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "cannot compute quota figures");
                None
            }
        }
    }
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// Writes a `response` per resource for `request` (as PROPFIND would), looking up dead
    /// properties for the whole batch at once (a sync-collection REPORT's changed members).
    pub(crate) async fn write_resources(
        &self,
        w: &mut MultistatusWriter,
        request: &PropFind,
        resources: Vec<(DavPath, Meta)>,
        minimal: bool,
        who: &crate::auth::Principal,
    ) -> DavResult<()> {
        if resources.is_empty() {
            return Ok(());
        }
        let dead = if needs_dead(request) {
            let paths = resources.iter().map(|(p, _)| p.clone()).collect();
            self.props.get_many(paths).await?
        } else {
            Vec::new()
        };
        let sync_token = if needs_sync(request) {
            self.current_sync_token().await
        } else {
            None
        };
        let bindings = self.binding_index_if(request).await;
        let viewer = needs_viewer(request).then(|| self.viewer(who));
        let resolved = resolve(request);
        let now = std::time::SystemTime::now();
        let mut locks_of = if needs_locks(request) {
            let paths: Vec<&DavPath> = resources.iter().map(|(p, _)| p).collect();
            self.locks.covering_many(&paths).await?
        } else {
            Vec::new()
        };
        for (i, (path, meta)) in resources.iter().enumerate() {
            let none = Vec::new();
            let dead = dead.get(i).unwrap_or(&none);
            let locks = locks_of.get_mut(i).map(std::mem::take).unwrap_or_default();
            let quota = if needs_quota(request) {
                self.quota_info(path).await
            } else {
                None
            };
            let target = live::Target {
                path,
                meta,
                locks: &locks,
                stored_type: live::stored_type(dead),
                now,
                quota,
                sync_token: sync_token.as_deref(),
                resource_id: needs_ids(request).then(|| self.storage.resource_id(&meta.identity)),
                bindings: bindings.as_ref(),
                viewer: viewer.as_ref(),
            };
            write_response(w, request, &resolved, &target, dead, minimal);
        }
        Ok(())
    }
}

/// Whether any of the names is asked for (or all of them are, for propname).
fn names_any(request: &PropFind, wanted: &[&str]) -> bool {
    let any = |names: &[QName]| names.iter().any(|n| wanted.iter().any(|w| n.is_dav(w)));
    match request {
        PropFind::Prop(names) => any(names),
        PropFind::AllProp { include } => any(include),
        PropFind::PropName => true,
    }
}

/// Resource ids are derived only for a PROPFIND that names them.
fn needs_ids(request: &PropFind) -> bool {
    names_any(request, &["resource-id"])
}

/// Who asks matters only for the current-user properties.
fn needs_viewer(request: &PropFind) -> bool {
    names_any(
        request,
        &["current-user-principal", "current-user-privilege-set"],
    )
}

/// The binding index (a scan of the whole tree) is built only for `DAV:parent-set`.
fn needs_bindings(request: &PropFind) -> bool {
    names_any(request, &["parent-set"])
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// The binding index when the request needs it; when it cannot be built, `parent-set`
    /// answers 404.
    async fn binding_index_if(&self, request: &PropFind) -> Option<crate::storage::BindingIndex> {
        if !needs_bindings(request) {
            return None;
        }
        match self.storage.binding_index().await {
            Ok(index) => Some(index),
            Err(e) => {
                tracing::warn!(error = %e, "cannot scan the bindings for parent-set");
                None
            }
        }
    }
}

/// The sync token is read only for a PROPFIND that names it or the report set.
fn needs_sync(request: &PropFind) -> bool {
    match request {
        PropFind::Prop(names) => names
            .iter()
            .any(|n| n.is_dav("sync-token") || n.is_dav("supported-report-set")),
        PropFind::AllProp { include } => include
            .iter()
            .any(|n| n.is_dav("sync-token") || n.is_dav("supported-report-set")),
        PropFind::PropName => true,
    }
}

/// Quota figures are computed only for a PROPFIND that names them (RFC 4331 §2).
fn needs_quota(request: &PropFind) -> bool {
    match request {
        PropFind::Prop(names) | PropFind::AllProp { include: names } => names
            .iter()
            .any(|n| n.is_dav("quota-available-bytes") || n.is_dav("quota-used-bytes")),
        PropFind::PropName => false,
    }
}

fn needs_dead(request: &PropFind) -> bool {
    match request {
        PropFind::AllProp { .. } | PropFind::PropName => true,
        // getcontenttype may come from a stored type.
        PropFind::Prop(names) => names
            .iter()
            .any(|n| live::find(n).is_none() || n.is_dav("getcontenttype")),
    }
}

/// The dead properties a client may see (davit's own are left out).
fn visible(dead: &[DeadProp]) -> impl Iterator<Item = &DeadProp> {
    dead.iter().filter(|d| d.name.ns != live::INTERNAL_NS)
}

fn needs_locks(request: &PropFind) -> bool {
    match request {
        PropFind::AllProp { .. } => true,
        PropFind::PropName => false,
        PropFind::Prop(names) => names.iter().any(|n| n.is_dav("lockdiscovery")),
    }
}

/// The task that walks the tree and writes the 207.
struct Lister<S, P, L> {
    dav: Dav<S, P, L>,
    request: PropFind,
    tx: Sender<std::io::Result<Bytes>>,
    w: MultistatusWriter,
    listed: u64,
    limit: u64,
    /// Members this principal may not see are left out, and not descended into.
    who: crate::auth::Principal,
    /// `Prefer: return=minimal`: no 404 propstats.
    minimal: bool,
    /// `Prefer: depth-noroot`: the Request-URI itself is not listed.
    noroot: bool,
    /// The binding index, once built (only for `DAV:parent-set`).
    bindings: Option<crate::storage::BindingIndex>,
    /// The request's `DAV` header lists `bind`: collections reached again answer 208.
    knows_bind: bool,
    /// Told whether the answer starts (or fails with 508) before the first bytes go out.
    first: Option<tokio::sync::oneshot::Sender<Start>>,
    /// SEARCH: only resources whose name and kind satisfy this are listed (every collection
    /// is still walked).
    condition: Option<Condition>,
    /// SEARCH's `DAV:limit`: after this many matches the answer ends with a 507.
    max_matches: Option<u64>,
    /// The cache's copy of what is written, while it may still be kept.
    keep: Option<Keep>,
}

/// How a PROPFIND that may still fail as a whole begins.
enum Start {
    /// The 207 is on its way.
    Streaming,
    /// A loop was found before anything was sent (its href).
    Loop(String),
}

/// Why the walk stopped early.
enum Stop {
    /// The client went away.
    Gone,
    /// A loop, reported as the whole answer's 508.
    Loop,
}

/// The client went away; stop walking.
struct Gone;

impl From<Gone> for Stop {
    fn from(_: Gone) -> Stop {
        Stop::Gone
    }
}

/// A collection waiting to be listed, with the identities of the collections above it (and
/// its own), to tell a loop from a second binding elsewhere.
struct Pending {
    path: DavPath,
    ancestors: Vec<crate::storage::Identity>,
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Lister<S, P, L> {
    async fn run(mut self, root: DavPath, meta: Meta, depth: Depth) {
        let done = self.walk(root, meta, depth).await;
        if done.is_ok() {
            self.started();
            let rest = Bytes::from(std::mem::take(&mut self.w).finish());
            self.tee(&rest);
            let sent = self.tx.send(Ok(rest)).await;
            if let (Ok(()), Some(keep)) = (sent, self.keep.take()) {
                self.dav.keep_listing(keep).await;
            }
        }
    }

    /// Copies what is sent into the cache's buffer, until it is larger than a listing may be.
    fn tee(&mut self, chunk: &[u8]) {
        let Some(cache) = &self.dav.cache else {
            self.keep = None;
            return;
        };
        if let Some(keep) = &mut self.keep {
            if (keep.buf.len() + chunk.len()) as u64 > cache.limits().max_listing_bytes {
                self.keep = None;
            } else {
                keep.buf.extend_from_slice(chunk);
            }
        }
    }

    /// The answer is a 207 from here on.
    fn started(&mut self) {
        if let Some(first) = self.first.take() {
            let _ = first.send(Start::Streaming);
        }
    }

    async fn walk(&mut self, root: DavPath, meta: Meta, depth: Depth) -> Result<(), Stop> {
        let is_dir = meta.is_dir();
        let root_id = meta.identity;
        if !self.noroot && self.keeps(root.name().unwrap_or(""), &meta) {
            if self.max_matches.is_some() {
                self.listed += 1;
            }
            self.write_batch(vec![(root.clone(), meta)]).await?;
        }
        if depth == Depth::Zero || !is_dir {
            return Ok(());
        }
        // Collections already listed (Depth: infinity): a second binding of one is a 208 for
        // a client that knows bindings, a loop when it is one of its own ancestors.
        let mut reported = std::collections::HashSet::from([root_id]);
        let mut pending = vec![Pending {
            path: root.clone(),
            ancestors: vec![root_id],
        }];
        while let Some(dir) = pending.pop() {
            let mut list = match self.dav.storage.list(&dir.path).await {
                Ok(l) => l,
                Err(e) => {
                    // Its own response is already out; its members just cannot be listed.
                    tracing::warn!(path = %dir.path, error = %e, "cannot list collection");
                    continue;
                }
            };
            while let Some(batch) = list.next().await {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(path = %dir.path, error = %e, "listing failed midway");
                        break;
                    }
                };
                let mut resources = Vec::with_capacity(batch.len());
                for entry in batch {
                    let Ok(child) = dir.path.join(&entry.name) else {
                        continue;
                    };
                    if !self.dav.visible(&self.who, &child) {
                        continue;
                    }
                    if entry.shared {
                        // Changed through another name, it would not be noticed here.
                        self.keep = None;
                    } else if let (Some(keep), true) = (&mut self.keep, entry.meta.is_dir()) {
                        keep.collections.push((child.clone(), entry.meta.clone()));
                    }
                    if depth == Depth::Infinity && entry.meta.is_dir() {
                        let id = entry.meta.identity;
                        let is_loop = dir.ancestors.contains(&id);
                        if self.knows_bind && !reported.insert(id) {
                            self.write_batch(std::mem::take(&mut resources)).await?;
                            self.w.status_response(&child.href(true), 208, None, None);
                            continue;
                        }
                        if is_loop {
                            self.write_batch(std::mem::take(&mut resources)).await?;
                            if let Some(first) = self.first.take() {
                                let _ = first.send(Start::Loop(child.href(true)));
                                return Err(Stop::Loop);
                            }
                            // The 207 is already under way: the loop gets its own 508.
                            self.w.status_response(
                                &child.href(true),
                                508,
                                None,
                                Some("a binding of one of its own ancestors; not listed"),
                            );
                            continue;
                        }
                        let mut ancestors = dir.ancestors.clone();
                        ancestors.push(id);
                        pending.push(Pending {
                            path: child.clone(),
                            ancestors,
                        });
                    }
                    if self.keeps(&entry.name, &entry.meta) {
                        resources.push((child, entry.meta));
                    }
                }
                if let Some(max) = self.max_matches {
                    let room = max.saturating_sub(self.listed);
                    if resources.len() as u64 > room {
                        resources.truncate(room as usize);
                        self.write_batch(resources).await?;
                        self.w.status_response(
                            &root.href(true),
                            507,
                            Some("number-of-matches-within-limits"),
                            Some("more resources match than the search's limit"),
                        );
                        return Ok(());
                    }
                }
                self.listed += resources.len() as u64;
                if depth == Depth::Infinity && self.listed > self.limit {
                    // The tree grew past the bound while it was being listed.
                    self.w.status_response(
                        &root.href(true),
                        507,
                        Some("number-of-matches-within-limits"),
                        Some("the listing was cut at the server's Depth: infinity limit"),
                    );
                    return Ok(());
                }
                self.write_batch(resources).await?;
            }
        }
        Ok(())
    }

    /// Whether a resource goes into the answer (always, but for a SEARCH's condition).
    fn keeps(&self, name: &str, meta: &Meta) -> bool {
        self.condition
            .as_ref()
            .is_none_or(|c| c.matches(name, meta.is_dir()))
    }

    /// Ends the streamed 207 with an error after a store failed: the client sees the body cut.
    async fn fail(&self, store: &str, e: impl std::fmt::Display) -> Gone {
        tracing::error!(error = %e, "{store} store failed during PROPFIND");
        let _ = self
            .tx
            .send(Err(std::io::Error::other(e.to_string())))
            .await;
        Gone
    }

    async fn write_batch(&mut self, resources: Vec<(DavPath, Meta)>) -> Result<(), Gone> {
        if resources.is_empty() {
            return Ok(());
        }
        let dead = if needs_dead(&self.request) {
            let paths = resources.iter().map(|(p, _)| p.clone()).collect();
            match self.dav.props.get_many(paths).await {
                Ok(d) => d,
                Err(e) => return Err(self.fail("property", e).await),
            }
        } else {
            Vec::new()
        };
        let needs_locks = needs_locks(&self.request);
        let needs_quota = needs_quota(&self.request);
        let sync_token = if needs_sync(&self.request) {
            self.dav.current_sync_token().await
        } else {
            None
        };
        if self.bindings.is_none() && needs_bindings(&self.request) {
            self.bindings = self.dav.binding_index_if(&self.request).await;
        }
        let ids = needs_ids(&self.request);
        let resolved = resolve(&self.request);
        // Owned copies (only when wanted): the viewer borrows them while the writer below
        // needs `self`.
        let asker = needs_viewer(&self.request).then(|| (self.dav.clone(), self.who.clone()));
        let viewer = asker.as_ref().map(|(dav, who)| dav.viewer(who));
        let now = std::time::SystemTime::now();
        let mut locks_of = if needs_locks {
            let paths: Vec<&DavPath> = resources.iter().map(|(p, _)| p).collect();
            match self.dav.locks.covering_many(&paths).await {
                Ok(l) => l,
                Err(e) => return Err(self.fail("lock", e).await),
            }
        } else {
            Vec::new()
        };
        for (i, (path, meta)) in resources.iter().enumerate() {
            let none = Vec::new();
            let dead = dead.get(i).unwrap_or(&none);
            let locks = locks_of.get_mut(i).map(std::mem::take).unwrap_or_default();
            if !locks.is_empty() || meta.modified > now {
                // A lock's timeout counts down; a future date shows as now: neither is kept.
                self.keep = None;
            }
            let quota = if needs_quota {
                self.dav.quota_info(path).await
            } else {
                None
            };
            let target = live::Target {
                path,
                meta,
                locks: &locks,
                stored_type: live::stored_type(dead),
                now,
                quota,
                sync_token: sync_token.as_deref(),
                resource_id: ids.then(|| self.dav.storage.resource_id(&meta.identity)),
                bindings: self.bindings.as_ref(),
                viewer: viewer.as_ref(),
            };
            write_response(
                &mut self.w,
                &self.request,
                &resolved,
                &target,
                dead,
                self.minimal,
            );
            if self.w.pending() >= CHUNK {
                self.started();
                let chunk = Bytes::from(self.w.take());
                self.tee(&chunk);
                self.tx.send(Ok(chunk)).await.map_err(|_| Gone)?;
            }
        }
        Ok(())
    }
}

fn write_live(w: &mut MultistatusWriter, name: &QName, value: LiveValue<'_>) {
    match value {
        LiveValue::Text(t) => w.prop_text(name, &t),
        LiveValue::Number(n) => w.prop_number(name, n),
        LiveValue::HttpDate(t) => w.prop_http_date(name, t),
        LiveValue::Rfc3339(t) => w.prop_rfc3339(name, t),
        LiveValue::Xml(x) if x.is_empty() => w.prop_empty(name),
        LiveValue::Xml(x) => w.prop_xml(name, &x),
    }
}

/// The live property of each name a `prop` request asks for (`None`: a dead one), looked up
/// once per request or listing batch rather than once per resource.
fn resolve(request: &PropFind) -> Vec<Option<&'static live::LiveProp>> {
    match request {
        PropFind::Prop(names) => names.iter().map(live::find).collect(),
        PropFind::AllProp { .. } | PropFind::PropName => Vec::new(),
    }
}

/// How much of a multistatus to write for one resource.
#[derive(Clone, Copy)]
enum Render {
    /// A whole document.
    Document,
    /// Only the `propstat` elements (a batch writes the rest).
    Propstats,
}

/// One resource's `response` for the request (`resolved`: [`resolve`]'s answer for it).
fn write_response(
    w: &mut MultistatusWriter,
    request: &PropFind,
    resolved: &[Option<&'static live::LiveProp>],
    target: &live::Target<'_>,
    dead: &[DeadProp],
    minimal: bool,
) {
    w.start_response_at(target.path, target.meta.is_dir());
    write_propstats(w, request, resolved, target, dead, minimal);
    w.end_response(None);
}

/// The `propstat` elements of one resource's `response`.
fn write_propstats(
    w: &mut MultistatusWriter,
    request: &PropFind,
    resolved: &[Option<&'static live::LiveProp>],
    target: &live::Target<'_>,
    dead: &[DeadProp],
    minimal: bool,
) {
    match request {
        PropFind::AllProp { include } => {
            w.start_propstat();
            for (lp, name) in LIVE.iter().zip(live::live_names()) {
                if !lp.in_allprop {
                    continue;
                }
                if let Some(v) = (lp.value)(target) {
                    write_live(w, name, v);
                }
            }
            // Included live properties that allprop leaves out (RFC 4918 §9.1), such as
            // resource-id or the quota figures; the rest are returned already or unknown.
            let mut missing: Vec<&QName> = Vec::new();
            for (i, n) in include.iter().enumerate() {
                if include[..i].contains(n) {
                    continue;
                }
                match live::find(n) {
                    Some(lp) if lp.in_allprop => {}
                    Some(lp) => match (lp.value)(target) {
                        Some(v) => write_live(w, n, v),
                        None => missing.push(n),
                    },
                    None if visible(dead).any(|d| &d.name == n) => {}
                    None => missing.push(n),
                }
            }
            for d in visible(dead) {
                w.prop_fragment(&d.xml);
            }
            w.end_propstat(200, None);
            if !missing.is_empty() && !minimal {
                w.start_propstat();
                for n in missing {
                    w.prop_empty(n);
                }
                w.end_propstat(404, None);
            }
        }
        PropFind::PropName => {
            w.start_propstat();
            for (lp, name) in LIVE.iter().zip(live::live_names()) {
                if (lp.value)(target).is_some() {
                    w.prop_empty(name);
                }
            }
            for d in visible(dead) {
                w.prop_empty(&d.name);
            }
            w.end_propstat(200, None);
        }
        PropFind::Prop(names) => {
            let mut missing: Vec<&QName> = Vec::new();
            let mut seen: Vec<&QName> = Vec::with_capacity(names.len());
            w.start_propstat();
            for (i, name) in names.iter().enumerate() {
                if seen.contains(&name) {
                    continue;
                }
                seen.push(name);
                if let Some(lp) = resolved.get(i).copied().flatten() {
                    match (lp.value)(target) {
                        Some(v) => write_live(w, name, v),
                        None => missing.push(name),
                    }
                } else if let Some(d) = visible(dead).find(|d| &d.name == name) {
                    w.prop_fragment(&d.xml);
                } else {
                    missing.push(name);
                }
            }
            let all_missing = missing.len() == seen.len() && !seen.is_empty();
            if all_missing && !minimal {
                // Nothing found: skip the empty 200 group and report only the 404s.
                w.cancel_propstat();
            } else {
                // With return=minimal, a resource that has none of the properties keeps an
                // empty 200 propstat (RFC 8144 §2.1).
                w.end_propstat(200, None);
            }
            if !missing.is_empty() && !minimal {
                w.start_propstat();
                for n in missing {
                    w.prop_empty(n);
                }
                w.end_propstat(404, None);
            }
        }
    }
}
