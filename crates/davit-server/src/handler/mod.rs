//! The WebDAV method handlers. [`Dav::handle`] dispatches on the method; each method lives in
//! its own file and reads as parse → apply → respond. Failures are returned as [`DavError`]
//! and turned into responses in one place.

mod archive;
mod batch;
mod bind;
mod copymove;
mod delete;
mod gate;
mod get;
mod lock;
mod mkcol;
mod options;
mod principal;
mod propfind;
mod proppatch;
mod put;
mod report;
mod resumable;
mod search;
mod ui;

use crate::auth::{Access, Auth, AuthFailure, Principal};
use crate::body::{self, Body};
use crate::config::DavConfig;
use crate::error::{DavError, DavResult};
use crate::locks::{Lock, LockStore};
use crate::props::PropStore;
use crate::storage::{Meta, Storage};
use bytes::{Bytes, BytesMut};
use davit_proto::conditional::{self, Outcome, Preconditions, Validators};
use davit_proto::headers::{ConditionKind, IfHeader};
use davit_proto::href::{self, DavPath};
use davit_proto::xml::BindMethod;
use davit_proto::xml::XML_CONTENT_TYPE;
use http::request::Parts;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::io;
use std::sync::Arc;

/// The methods davit answers, as sent in `Allow` for each kind of target.
pub(crate) const ALLOW_FILE: &str =
    "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, COPY, MOVE, LOCK, UNLOCK, REPORT";
pub(crate) const ALLOW_DIR: &str = "OPTIONS, GET, HEAD, POST, DELETE, PROPFIND, PROPPATCH, \
     COPY, MOVE, LOCK, UNLOCK, REPORT, SEARCH, BIND, UNBIND, REBIND";
pub(crate) const ALLOW_UNMAPPED: &str = "OPTIONS, PUT, MKCOL, LOCK";

/// A WebDAV server over a content store, a dead-property store and a lock store.
#[derive(Debug)]
pub struct Dav<S, P, L> {
    storage: S,
    props: P,
    locks: L,
    config: Arc<DavConfig>,
    /// Where atomic batches keep their journals; without one they are refused.
    journal_dir: Option<Arc<std::path::PathBuf>>,
    /// Atomic batches run one at a time.
    batch_lock: Arc<tokio::sync::Mutex<()>>,
    /// Users and rules; `None` means everyone may do everything (a local server).
    auth: Option<Arc<Auth>>,
    /// A permit per open connection, shared by every accept loop serving this instance.
    pub(crate) connection_slots: Arc<tokio::sync::Semaphore>,
    /// Writes in progress, against which new locks are granted.
    write_gate: Arc<gate::WriteGate>,
    /// A permit per batch whose document is in memory (see `BATCH_MEMORY`).
    batch_slots: Arc<tokio::sync::Semaphore>,
    /// Byte limits on subtrees and their measured usage.
    pub(crate) quotas: Arc<crate::quota::Quotas>,
    /// The history behind sync-collection REPORTs; without one the report is not offered.
    changes: Option<Arc<dyn crate::changes::ChangeLog>>,
    /// Where resumable uploads keep their bytes; without it they are not offered.
    uploads: Option<Arc<resumable::Uploads>>,
    /// Rendered listings and small files, kept coherent with every change (see `cache`);
    /// `None` when turned off or when the backend cannot report outside changes.
    cache: Option<Arc<crate::cache::Cache>>,
}

/// The quotas of the configuration (paths that do not parse were refused at start-up) and of
/// users' roots.
fn quotas_of(config: &DavConfig, users: Vec<(DavPath, u64)>) -> crate::quota::Quotas {
    let mut limits = config.quota_limits().unwrap_or_default();
    limits.extend(users);
    crate::quota::Quotas::new(
        limits,
        std::time::Duration::from_secs(config.quota_rescan_secs),
    )
}

/// The cache `config` asks for, over what `storage` reports of outside changes.
fn cache_for<S: Storage>(storage: &S, config: &DavConfig) -> Option<Arc<crate::cache::Cache>> {
    if config.cache_bytes == 0 {
        return None;
    }
    let feed = storage.change_feed(config.cache_watches)?;
    let limits = crate::cache::CacheLimits {
        max_bytes: config.cache_bytes,
        max_file_bytes: config.cache_file_bytes,
        // One listing may take a quarter of the cache.
        max_listing_bytes: config.cache_bytes / 4,
    };
    Some(Arc::new(crate::cache::Cache::new(limits, Some(feed))))
}

/// What the documents of the batches in progress may take together, in the largest size
/// `batch_max_body` allows: 8 batches at the 64 MiB default. Without a bound, concurrent
/// batch POSTs of that size could exhaust memory; over it, a batch waits its turn.
const BATCH_MEMORY: usize = 512 << 20;

fn batch_slot_count(config: &DavConfig) -> usize {
    (BATCH_MEMORY / config.batch_max_body.max(1)).clamp(1, 4096)
}

impl<S: Clone, P: Clone, L: Clone> Clone for Dav<S, P, L> {
    fn clone(&self) -> Self {
        Dav {
            storage: self.storage.clone(),
            props: self.props.clone(),
            locks: self.locks.clone(),
            config: self.config.clone(),
            journal_dir: self.journal_dir.clone(),
            batch_lock: self.batch_lock.clone(),
            auth: self.auth.clone(),
            connection_slots: self.connection_slots.clone(),
            write_gate: self.write_gate.clone(),
            batch_slots: self.batch_slots.clone(),
            quotas: self.quotas.clone(),
            changes: self.changes.clone(),
            uploads: self.uploads.clone(),
            cache: self.cache.clone(),
        }
    }
}

/// The user a response was made for (for the access log), in the response's extensions.
#[derive(Debug, Clone)]
pub struct AuthUser(pub String);

/// A parsed request target.
pub(crate) struct Target {
    /// The decoded path.
    pub path: DavPath,
    /// Whether the request URI ended with `/`.
    pub slash: bool,
}

impl<S, P, L> Dav<S, P, L>
where
    S: Storage + Clone,
    P: PropStore + Clone,
    L: LockStore + Clone,
{
    /// A server over content, dead-property and lock stores.
    pub fn new(storage: S, props: P, locks: L, config: DavConfig) -> Self {
        let connection_slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
        let batch_slots = Arc::new(tokio::sync::Semaphore::new(batch_slot_count(&config)));
        let quotas = Arc::new(quotas_of(&config, Vec::new()));
        let cache = cache_for(&storage, &config);
        Dav {
            quotas,
            batch_slots,
            connection_slots,
            storage,
            props,
            locks,
            config: Arc::new(config),
            journal_dir: None,
            batch_lock: Arc::new(tokio::sync::Mutex::new(())),
            auth: None,
            write_gate: Arc::new(gate::WriteGate::with_cache(cache.clone())),
            changes: None,
            uploads: None,
            cache,
        }
    }

    /// The cache, when there is one (its counters for the metrics and tests).
    pub fn cache(&self) -> Option<&crate::cache::Cache> {
        self.cache.as_deref()
    }

    /// Forgets what the cache keeps about `noticed` (a lock granted or released changes how
    /// what it covers is described).
    pub(crate) fn forget(&self, noticed: crate::cache::Noticed) {
        if let Some(cache) = &self.cache {
            cache.invalidate(&noticed);
        }
    }

    /// Offers RFC 6578 sync-collection REPORTs, with `log` as the history of changes.
    pub fn with_change_log(mut self, log: Arc<dyn crate::changes::ChangeLog>) -> Self {
        self.changes = Some(log);
        self
    }

    /// Requires authentication and applies the access rules of `auth`.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.quotas = Arc::new(quotas_of(&self.config, auth.quota_limits()));
        self.auth = Some(Arc::new(auth));
        self
    }

    /// True when requests must authenticate (see [`Dav::with_auth`]).
    pub fn requires_auth(&self) -> bool {
        self.auth.is_some()
    }

    /// The configuration.
    pub fn config(&self) -> &DavConfig {
        &self.config
    }

    /// The authentication state, when requests must authenticate (reloaded on SIGHUP).
    pub fn auth(&self) -> Option<&Auth> {
        self.auth.as_deref()
    }

    /// A handle on the authentication state, for whoever reloads it.
    pub fn auth_handle(&self) -> Option<Arc<Auth>> {
        self.auth.clone()
    }

    /// Answers when storage, the property store and the lock store all answer (for
    /// `/readyz`); the error says which did not.
    pub async fn readiness(&self) -> Result<(), String> {
        let root = DavPath::root();
        self.storage
            .metadata(&root)
            .await
            .map_err(|e| format!("storage: {e}"))?;
        self.props
            .check()
            .await
            .map_err(|e| format!("property store: {e}"))?;
        self.locks
            .under(&root)
            .await
            .map_err(|e| format!("lock store: {e}"))?;
        Ok(())
    }

    /// What the metrics report about this server right now.
    pub async fn gauges(&self) -> crate::metrics::Gauges {
        let max = self.config.max_connections.max(1) as u64;
        let slots = batch_slot_count(&self.config) as u64;
        let now = std::time::SystemTime::now();
        let stat = |f: fn(&crate::cache::CacheStats) -> &std::sync::atomic::AtomicU64| {
            self.cache.as_ref().map_or(0, |c| {
                f(&c.stats).load(std::sync::atomic::Ordering::Relaxed)
            })
        };
        let locks = match self.locks.under(&DavPath::root()).await {
            Ok(locks) => locks.iter().filter(|l| !l.expired(now)).count() as u64,
            Err(_) => 0,
        };
        crate::metrics::Gauges {
            connections_open: crate::metrics::METRICS.connections_open(),
            connections_max: max,
            locks_active: locks,
            batch_slots_in_use: slots.saturating_sub(self.batch_slots.available_permits() as u64),
            batch_slots_waiting: crate::metrics::METRICS.batch_waiting(),
            batch_slots: slots,
            rate_limited_addresses: self
                .auth
                .as_ref()
                .map_or(0, |a| a.rate_limited_addresses() as u64),
            cache_bytes: self.cache.as_ref().map_or(0, |c| c.bytes()),
            cache_hits: stat(|s| &s.hits),
            cache_misses: stat(|s| &s.misses),
            cache_overflows: stat(|s| &s.overflows),
        }
    }

    /// Waits for the next frame of a request body, giving up (408) when the client sends
    /// nothing for `body_idle_timeout_secs`, or when the body as a whole falls behind
    /// `body_min_rate` (see [`BodyClock`]).
    pub(crate) async fn next_frame<B: ReqBody>(
        &self,
        body: &mut B,
        clock: &mut BodyClock,
    ) -> DavResult<Option<http_body::Frame<Bytes>>> {
        const TOO_SLOW: &str = "the request body came too slowly";
        let idle = std::time::Duration::from_secs(self.config.body_idle_timeout_secs);
        let mut wait = idle;
        if let Some(rate) = std::num::NonZeroU64::new(self.config.body_min_rate) {
            let allowed = idle + std::time::Duration::from_secs(clock.received / rate);
            let left = allowed.saturating_sub(clock.started.elapsed());
            if left.is_zero() {
                return Err(DavError::RequestTimeout(TOO_SLOW));
            }
            wait = wait.min(left);
        }
        match tokio::time::timeout(wait, body.frame()).await {
            Err(_) if wait < idle => Err(DavError::RequestTimeout(TOO_SLOW)),
            Err(_) => Err(DavError::RequestTimeout("the request body stalled")),
            Ok(None) => Ok(None),
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    clock.received += data.len() as u64;
                    crate::metrics::METRICS.received(data.len());
                }
                Ok(Some(frame))
            }
            Ok(Some(Err(e))) => Err(DavError::BadRequest(format!(
                "the request body broke off: {e}"
            ))),
        }
    }

    /// Offers resumable uploads (`PUT` with `Upload-Complete: ?0`), keeping their bytes in
    /// `dir` until they are complete.
    pub fn with_uploads(mut self, dir: std::path::PathBuf) -> Self {
        self.uploads = Some(Arc::new(resumable::Uploads::new(dir)));
        self
    }

    /// Enables atomic batches, journaled in `dir`.
    pub fn with_journal(mut self, dir: std::path::PathBuf) -> Self {
        self.journal_dir = Some(Arc::new(dir));
        self
    }

    /// Waits until no atomic batch is running (they outlive their connection), so that a
    /// graceful shutdown never leaves one half-done.
    pub async fn quiesce(&self) {
        let _idle = self.batch_lock.lock().await;
    }

    /// Settles atomic batches (and single COPY/MOVE requests, journaled the same way) that a
    /// crash interrupted: those whose property transaction committed are completed (their
    /// stashes dropped, their recorded locks released), the others rolled back. Run once at
    /// start-up, before serving.
    pub async fn recover(&self) -> std::io::Result<()> {
        if let Some(uploads) = &self.uploads {
            let uploads = uploads.clone();
            let max_age = std::time::Duration::from_secs(self.config.upload_expire_secs);
            tokio::task::spawn_blocking(move || uploads.sweep_at_start(max_age))
                .await
                .map_err(std::io::Error::other)??;
        }
        let Some(dir) = &self.journal_dir else {
            return Ok(());
        };
        // Made here rather than by the first journaled request, so the state directory does
        // not change shape while serving.
        std::fs::create_dir_all(dir.as_path())?;
        for (id, entries, file) in crate::journal::leftover_journals(dir)? {
            let committed = self
                .props
                .was_committed(&id)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            if committed {
                crate::journal::drop_stashes(&self.storage, &entries).await;
                self.release_recorded_locks(&entries).await;
            } else {
                crate::journal::roll_back(&self.storage, &entries).await;
            }
            std::fs::remove_file(file)?;
            self.props
                .forget_batch(&id)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            tracing::warn!(batch = %id, committed, "settled an interrupted atomic batch");
        }
        Ok(())
    }

    /// Releases the locks that a committed operation recorded for release.
    pub(crate) async fn release_recorded_locks(&self, entries: &[crate::journal::Undo]) {
        for undo in entries {
            if let crate::journal::Undo::Unlock(token) = undo {
                if let Err(e) = self.locks.release(token).await {
                    tracing::warn!(%token, error = %e, "could not release a lock");
                }
            }
        }
    }

    /// Answers one request. Never fails: every error becomes its response here.
    pub async fn handle<B: ReqBody>(&self, req: Request<B>) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        // Before anything else, credentials included: a write another site's page sends
        // through the browser is refused whoever the browser is logged in as.
        if !changes_nothing(&parts.method) && ui::foreign_origin(&parts) {
            return DavError::Forbidden("cross-origin request refused").into_response();
        }
        if let Some(auth) = &self.auth {
            let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
            let value = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let who = auth.authenticate(value, peer).await;
            if parts.method == Method::OPTIONS {
                // Windows probes the root before it logs in and gives up on a 401: answer
                // with the server's capabilities only, whoever asks.
                let mut resp = options::server_wide();
                self.advertise_uploads(&mut resp);
                return resp;
            }
            match who {
                Ok(who) => {
                    parts.extensions.insert(who);
                }
                Err(AuthFailure::Unauthorized) => {
                    crate::metrics::METRICS.auth_failure();
                    return DavError::Unauthorized(auth.challenge()).into_response();
                }
                Err(AuthFailure::TooManyAttempts) => {
                    crate::metrics::METRICS.rate_limited();
                    return DavError::TooManyRequests.into_response();
                }
            }
        }
        let user = match parts.extensions.get::<Principal>() {
            Some(Principal::User(name)) => Some(AuthUser(name.clone())),
            _ => None,
        };
        let mut resp = match self.dispatch(parts, body).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        };
        if let Some(user) = user {
            resp.extensions_mut().insert(user);
        }
        resp
    }

    /// 401 or 403 unless the request's principal has at least `need` on `path` (on the whole
    /// tree below it with `tree`).
    pub(crate) fn authorize(
        &self,
        parts: &Parts,
        path: &DavPath,
        need: Access,
        tree: bool,
    ) -> DavResult<()> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let who = principal(parts);
        let has = if tree {
            auth.tree_access(&who, path)
        } else {
            auth.access(&who, path)
        };
        if has >= need {
            return Ok(());
        }
        Err(match who {
            Principal::Anonymous => DavError::Unauthorized(auth.challenge()),
            Principal::User(_) => DavError::Forbidden("access denied"),
        })
    }

    /// True when the request's principal may use `lock`: refresh it, release it, or submit its
    /// token for a write. Without authentication, whoever holds the token may. With it, a lock
    /// taken by a user is that user's alone (RFC 4918 §6.4: the token is the creator's
    /// credential, not a bearer ticket); one taken anonymously stays usable by whoever holds
    /// the token, as in Apache mod_dav.
    pub(crate) fn may_use_lock(&self, parts: &Parts, lock: &Lock) -> bool {
        if self.auth.is_none() {
            return true;
        }
        match &lock.principal {
            None => true,
            Some(owner) => matches!(
                parts.extensions.get::<Principal>(),
                Some(Principal::User(u)) if u == owner
            ),
        }
    }

    /// True when the request's principal may see `path` (listings leave the rest out).
    pub(crate) fn visible(&self, who: &Principal, path: &DavPath) -> bool {
        self.auth
            .as_ref()
            .is_none_or(|a| a.access(who, path) >= Access::Read)
    }

    async fn dispatch<B: ReqBody>(&self, parts: Parts, body: B) -> DavResult<Response<Body>> {
        // The web interface's script and style: the same for everyone, before any lookup.
        if let Some(asset) = self.ui_asset(&parts) {
            return Ok(asset);
        }
        if self.uploads.is_some() {
            if let Some(id) = parts.uri.path().strip_prefix(resumable::UPLOADS_PREFIX) {
                let id = id.to_owned();
                return self.upload_resource(&parts, &id, body).await;
            }
        }
        if parts.method == Method::POST {
            let target = parse_target(&parts)?;
            self.authorize(&parts, &target.path, Access::Read, false)?;
            return self.post(&parts, &target, body).await;
        }
        self.dispatch_op(parts, body).await
    }

    /// Every method but POST. Batch operations come through here too; keeping POST out means
    /// a batch can never start another one (and the types of the two cannot recurse).
    pub(crate) async fn dispatch_op<B: ReqBody>(
        &self,
        parts: Parts,
        body: B,
    ) -> DavResult<Response<Body>> {
        if parts.method == Method::OPTIONS && parts.uri.path() == "*" {
            let mut resp = options::server_wide();
            self.advertise_uploads(&mut resp);
            return Ok(resp);
        }
        let target = parse_target(&parts)?;
        if let Some(resource) = self.principal_resource(&target) {
            return self.serve_principal(&parts, resource, body).await;
        }
        // Nothing about a resource is looked at before the principal may read it, so a denied
        // request learns nothing of what exists.
        self.authorize(&parts, &target.path, Access::Read, false)?;
        // The writes this request registers (in `check_preconditions`) end with it, or with
        // the atomic batch it is an operation of.
        gate::WriteGate::scope(self.dispatch_method(&parts, &target, body)).await
    }

    async fn dispatch_method<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
    ) -> DavResult<Response<Body>> {
        match parts.method.as_str() {
            "OPTIONS" => self.options(target).await,
            "GET" => self.get(parts, target, true).await,
            "HEAD" => self.get(parts, target, false).await,
            "PUT" => self.put(parts, target, body).await,
            "DELETE" => self.delete(parts, target).await,
            "MKCOL" => self.mkcol(parts, target, body).await,
            "COPY" => self.copy_move(parts, target, false).await,
            "MOVE" => self.copy_move(parts, target, true).await,
            "PROPFIND" => self.propfind(parts, target, body).await,
            "PROPPATCH" => self.proppatch(parts, target, body).await,
            "LOCK" => self.lock(parts, target, body).await,
            "UNLOCK" => self.unlock(parts, target).await,
            "REPORT" => self.report(parts, target, body).await,
            "SEARCH" => self.search(parts, target, body).await,
            "BIND" => {
                self.bind_method(parts, target, body, BindMethod::Bind)
                    .await
            }
            "UNBIND" => {
                self.bind_method(parts, target, body, BindMethod::Unbind)
                    .await
            }
            "REBIND" => {
                self.bind_method(parts, target, body, BindMethod::Rebind)
                    .await
            }
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
    pub(crate) async fn read_xml_body<B: ReqBody>(
        &self,
        parts: &Parts,
        body: B,
    ) -> DavResult<Bytes> {
        self.read_limited(parts, body, self.config.max_xml_body)
            .await
    }

    /// Reads a whole body of at most `limit` bytes (413 beyond, 408 when it stalls).
    pub(crate) async fn read_limited<B: ReqBody>(
        &self,
        parts: &Parts,
        mut body: B,
        limit: usize,
    ) -> DavResult<Bytes> {
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(DavError::TooLarge);
        }
        // Room for what the request declares (at most the limit), so that a large body is not
        // copied again each time the buffer would have grown.
        let mut buf = BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
        let mut clock = BodyClock::start();
        while let Some(frame) = self.next_frame(&mut body, &mut clock).await? {
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(DavError::TooLarge);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    }

    /// Every check a request passes before it acts: the If header must parse (400) and hold
    /// (412), then the RFC 9110 conditional headers (412, or 304), then each lock protecting
    /// what the request `changes` must have a token submitted (423). A false If header wins
    /// over a missing token, as litmus and Apache expect. `Ok(true)` means "answer 304" (GET
    /// and HEAD only). One function for every method, so no handler carries its own copy of
    /// the lock rules.
    pub(crate) async fn check_preconditions(
        &self,
        parts: &Parts,
        target: &Target,
        meta: Option<&Meta>,
        changes: &[Change<'_>],
    ) -> DavResult<bool> {
        for change in changes {
            match change {
                Change::Resource(p) => self.authorize(parts, p, Access::ReadWrite, false)?,
                Change::Tree(p) => self.authorize(parts, p, Access::ReadWrite, true)?,
            }
        }
        let if_header = parse_if(parts)?;
        let submitted: Vec<&str> = if_header.iter().flat_map(|h| h.state_tokens()).collect();
        if let Some(h) = &if_header {
            if !self.if_header_holds(parts, target, meta, h).await? {
                return Err(DavError::PreconditionFailed);
            }
        }
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
        // Checked and registered as one step, so that no lock is granted between this check
        // and the change (see `gate`).
        // Built only when awaited: a request that changes nothing announces nothing.
        let announce = |precedence| async move {
            let writes: Vec<(&DavPath, bool)> =
                changes.iter().map(|c| (c.path(), c.is_tree())).collect();
            Ok(self.locks.announce(&writes, precedence).await?)
        };
        self.write_gate
            .check_and_register(
                changes,
                announce,
                self.check_locks(parts, changes, &submitted),
            )
            .await?;
        Ok(not_modified)
    }

    /// 423 unless, for every lock root protecting a change, one of its locks' tokens was
    /// submitted by a principal who may use it (any holder of a shared lock may write).
    async fn check_locks(
        &self,
        parts: &Parts,
        changes: &[Change<'_>],
        submitted: &[&str],
    ) -> DavResult<()> {
        let mut blocked: Vec<DavPath> = Vec::new();
        for change in changes {
            let locks = match change {
                Change::Resource(p) => self.locks.covering(p).await?,
                Change::Tree(p) => {
                    let mut all = self.locks.covering(p).await?;
                    all.extend(
                        self.locks
                            .under(p)
                            .await?
                            .into_iter()
                            .filter(|l| &l.root != *p),
                    );
                    all
                }
            };
            for lock in &locks {
                let satisfied = locks.iter().any(|l| {
                    l.root == lock.root
                        && submitted.contains(&l.token.as_str())
                        && self.may_use_lock(parts, l)
                });
                if !satisfied && !blocked.contains(&lock.root) {
                    blocked.push(lock.root.clone());
                }
            }
        }
        if blocked.is_empty() {
            return Ok(());
        }
        let mut hrefs = Vec::with_capacity(blocked.len());
        for root in blocked {
            let is_dir = self.meta_at(&root).await?.is_some_and(|m| m.is_dir());
            hrefs.push(root.href(is_dir));
        }
        Err(DavError::Condition {
            status: StatusCode::LOCKED,
            condition: "lock-token-submitted",
            hrefs,
        })
    }

    /// Evaluates the If header (RFC 4918 §10.4): a state token matches a resource when it
    /// names an active lock covering it; an entity tag when it equals the current ETag.
    async fn if_header_holds(
        &self,
        parts: &Parts,
        target: &Target,
        meta: Option<&Meta>,
        header: &IfHeader,
    ) -> DavResult<bool> {
        let host = host_of(parts);
        // Look everything up first: evaluation itself is synchronous.
        let mut tagged: Vec<(&str, Option<DavPath>, Option<String>)> = Vec::new();
        for list in &header.lists {
            if let Some(tag) = list.resource.as_deref() {
                if tagged.iter().any(|(t, _, _)| *t == tag) {
                    continue;
                }
                let path = href::parse_destination(tag, host.as_deref()).ok();
                let etag = match &path {
                    Some(p) => self
                        .meta_at(p)
                        .await?
                        .filter(|m| !m.is_dir())
                        .map(|m| m.etag),
                    None => None,
                };
                tagged.push((tag, path, etag));
            }
        }
        let mut locks: Vec<Lock> = Vec::new();
        for token in header.state_tokens() {
            if let Some(l) = self.locks.get(token).await? {
                locks.push(l);
            }
        }
        // Sync tokens (RFC 6578 §5) are state tokens of a collection: each is looked up for
        // the resource its list names.
        let mut sync_states: Vec<(Option<&str>, &str, bool)> = Vec::new();
        for list in &header.lists {
            let resource = list.resource.as_deref();
            for c in &list.conditions {
                let ConditionKind::StateToken(token) = &c.kind else {
                    continue;
                };
                if !crate::changes::is_sync_token(token)
                    || sync_states
                        .iter()
                        .any(|(r, t, _)| *r == resource && *t == token)
                {
                    continue;
                }
                let path = match resource {
                    None => Some(&target.path),
                    Some(tag) => tagged
                        .iter()
                        .find(|(t, _, _)| *t == tag)
                        .and_then(|(_, p, _)| p.as_ref()),
                };
                let holds = match path {
                    Some(p) => self.sync_state_holds(p, token).await?,
                    None => false,
                };
                sync_states.push((resource, token, holds));
            }
        }
        let own_etag = meta.filter(|m| !m.is_dir()).map(|m| m.etag.clone());
        // Clients that hold a lock send its token with every request (webdavclient3 checks
        // the parent collection that way before an upload). A request that changes nothing
        // needs no lock, so there a token counts as held wherever it names a live lock;
        // entity tags are checked as for any request.
        let reads_only = changes_nothing(&parts.method);
        Ok(header.evaluate(|resource, cond| {
            let (path, etag) = match resource {
                None => (Some(&target.path), own_etag.as_deref()),
                Some(tag) => match tagged.iter().find(|(t, _, _)| *t == tag) {
                    Some((_, p, e)) => (p.as_ref(), e.as_deref()),
                    None => (None, None),
                },
            };
            match cond {
                ConditionKind::StateToken(token) if crate::changes::is_sync_token(token) => {
                    sync_states
                        .iter()
                        .any(|(r, t, holds)| *r == resource && *t == token && *holds)
                }
                ConditionKind::StateToken(token) if reads_only => {
                    locks.iter().any(|l| &l.token == token)
                }
                ConditionKind::StateToken(token) => {
                    path.is_some_and(|p| locks.iter().any(|l| &l.token == token && l.covers(p)))
                }
                ConditionKind::ETag(tag) => etag.is_some_and(|e| conditional::strong_eq(tag, e)),
            }
        }))
    }
}

/// The request's `Prefer` (and `Brief`) preferences.
pub(crate) fn prefer_of(parts: &Parts) -> davit_proto::headers::Prefer {
    davit_proto::headers::Prefer::parse(
        parts
            .headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok()),
        parts.headers.get("brief").and_then(|v| v.to_str().ok()),
    )
}

/// Says which preferences shaped a response (RFC 7240 §3), and that its content depends on
/// them.
pub(crate) fn preferences_applied(
    mut resp: Response<Body>,
    minimal: bool,
    depth_noroot: bool,
) -> Response<Body> {
    let applied = match (minimal, depth_noroot) {
        (true, true) => Some("return=minimal, depth-noroot"),
        (true, false) => Some("return=minimal"),
        (false, true) => Some("depth-noroot"),
        (false, false) => None,
    };
    let h = resp.headers_mut();
    if let Some(a) = applied {
        h.insert("preference-applied", http::HeaderValue::from_static(a));
    }
    h.insert(
        header::VARY,
        http::HeaderValue::from_static("Prefer, Brief"),
    );
    resp
}

/// Methods that never change a resource (their If header still has to hold, but lock tokens
/// in it need not cover the resource).
fn changes_nothing(method: &Method) -> bool {
    matches!(
        method.as_str(),
        "GET" | "HEAD" | "OPTIONS" | "PROPFIND" | "REPORT" | "SEARCH"
    )
}

/// A request body the handlers accept: hyper's `Incoming`, or the bytes of a batch operation.
pub trait ReqBody:
    http_body::Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static>
    + Send
    + Unpin
    + 'static
{
}

impl<T> ReqBody for T where
    T: http_body::Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static>
        + Send
        + Unpin
        + 'static
{
}

/// How far one request body has come: it may take `body_idle_timeout_secs`, plus a second
/// for every `body_min_rate` bytes received (as Apache's mod_reqtimeout `MinRate`). Without
/// it a client that sends a byte just within the idle time-out keeps its request, and
/// whatever the request holds (a batch's memory slot, a connection), for ever.
pub(crate) struct BodyClock {
    started: std::time::Instant,
    received: u64,
}

impl BodyClock {
    /// Starts when the body is first read, after the request's other checks.
    pub(crate) fn start() -> Self {
        BodyClock {
            started: std::time::Instant::now(),
            received: 0,
        }
    }
}

/// What a request is about to change, for the lock check.
pub(crate) enum Change<'a> {
    /// A resource's content or properties, or a collection's membership.
    Resource(&'a DavPath),
    /// A resource and everything below it (DELETE, the source of MOVE, an overwritten
    /// destination).
    Tree(&'a DavPath),
}

impl Change<'_> {
    pub(crate) fn path(&self) -> &DavPath {
        match self {
            Change::Resource(p) | Change::Tree(p) => p,
        }
    }

    pub(crate) fn is_tree(&self) -> bool {
        matches!(self, Change::Tree(_))
    }
}

/// The parsed If header, if any (400 when malformed).
pub(crate) fn parse_if(parts: &Parts) -> DavResult<Option<IfHeader>> {
    match header_str(parts, "if")? {
        None => Ok(None),
        Some(v) => Ok(Some(IfHeader::parse(v)?)),
    }
}

fn parse_target(parts: &Parts) -> DavResult<Target> {
    let raw = parts.uri.path();
    Ok(Target {
        path: DavPath::parse(raw)?,
        slash: href::has_trailing_slash(raw),
    })
}

/// The peer address of the connection a request came on (set by the connection loop).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// The principal of a request (anonymous when authentication is off or none was given).
pub(crate) fn principal(parts: &Parts) -> Principal {
    parts
        .extensions
        .get::<Principal>()
        .cloned()
        .unwrap_or(Principal::Anonymous)
}

/// True for errors that mean "nothing is mapped there".
pub(crate) fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename
    ) || is_symlink_loop(e)
}

/// ELOOP: a symlink cycle names nothing a client can reach. (`ErrorKind::FilesystemLoop` is
/// not stable yet, hence the errno.)
fn is_symlink_loop(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    const ELOOP: i32 = 40;
    #[cfg(not(target_os = "linux"))]
    const ELOOP: i32 = 62;
    e.raw_os_error() == Some(ELOOP)
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
/// Whether the request's `DAV` header lists `token` (RFC 4918 §10.1: comma-separated
/// compliance classes, in any number of header lines; `bind` says the client understands
/// 208 Already Reported, RFC 5842 §8.2).
pub(crate) fn dav_header_lists(parts: &Parts, token: &str) -> bool {
    parts
        .headers
        .get_all("dav")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

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

/// A 207 response with a complete body.
/// What a change to a resource or tree came to: one typed outcome that an HTTP answer and a
/// batch operation's outcome are both made from.
pub(crate) enum Done {
    /// 201: something new is there.
    Created,
    /// 204: done, replacing or removing what was there.
    NoContent,
    /// Some members failed, each with its storage error (a 207 naming them over HTTP); the
    /// rest was done.
    Partial(Vec<crate::storage::Failure>),
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// The HTTP answer for `done`.
    pub(crate) async fn answer(&self, done: Done) -> Response<Body> {
        match done {
            Done::Created => status_only(StatusCode::CREATED),
            Done::NoContent => status_only(StatusCode::NO_CONTENT),
            Done::Partial(failures) => multistatus(self.failure_report(failures).await),
        }
    }
}

pub(crate) fn multistatus(xml: String) -> Response<Body> {
    response(StatusCode::MULTI_STATUS)
        .header(header::CONTENT_TYPE, XML_CONTENT_TYPE)
        .body(body::full(xml))
        .unwrap_or_else(|_| body::plain(StatusCode::INTERNAL_SERVER_ERROR))
}

/// A 207 whose body is already rendered (a cached one).
pub(crate) fn multistatus_bytes(xml: bytes::Bytes) -> Response<Body> {
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
