//! Resumable uploads, after the IETF httpbis draft "Resumable Uploads for HTTP"
//! (draft-ietf-httpbis-resumable-upload, its 2025 and 2026 revisions; the protocol as davit
//! serves it is in docs/resumable-uploads.md).
//!
//! A PUT with `Upload-Complete: ?0` whose checks pass does not write its target: it creates an
//! *upload resource* at `/.davit/uploads/<id>` (`201`, `Location`) and keeps its bytes in the
//! state directory's `uploads/` (`<id>.part`, beside the record `<id>.json`). `HEAD` tells how
//! many bytes are kept, `PATCH` appends from there, and the append with `Upload-Complete: ?1`
//! turns the whole into the target through an ordinary PUT (every check of a PUT runs again
//! then: access, locks, conditions, quota, the parent collection), answered as that PUT is.
//! Until then nothing is at the target, no listing shows the upload, and it is its creator's
//! alone (anyone else gets 404). `DELETE` cancels.
//!
//! - An append keeps what arrived when its connection breaks; the bytes are synced to disk
//!   before an offset is reported, so after a crash or restart `HEAD` tells what is stored.
//! - One request at a time per upload. A new one stops the append in progress (which keeps
//!   its bytes) and takes its turn, as the draft recommends: a client whose connection died
//!   without the server noticing can resume at once instead of waiting for a time-out.
//! - A completed upload leaves its record (without bytes) for an hour, so that a client that
//!   lost the final response learns from `HEAD` that it is done.
//! - Unfinished uploads older than `upload_expire_secs` are removed at start-up, whenever a new
//!   one starts, and by a periodic sweep ([`Dav::upload_sweeper`]); `max_unfinished_uploads`,
//!   `max_unfinished_uploads_per_user` and `max_staged_upload_bytes` bound what they hold (507).
//! - Not done: the draft's `104 (Upload Resumption Supported)` interim response (hyper has no
//!   way to send one), so only `Upload-Complete: ?0` makes an upload resource and a PUT with
//!   `Upload-Complete: ?1` is an ordinary PUT.

use super::{principal, status_only, BodyClock, Dav, ReqBody, Target};
use crate::auth::{Access, Principal};
use crate::body::{self, Body};
use crate::error::{DavError, DavResult};
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::Storage;
use davit_proto::href::DavPath;
use futures_util::TryStreamExt;
use http::request::Parts;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// Where upload resources live: `/.davit/uploads/<id>`, never a path of the share.
pub(crate) const UPLOADS_PREFIX: &str = "/.davit/uploads/";

/// Methods an upload resource answers.
const ALLOW_UPLOAD: &str = "OPTIONS, HEAD, PATCH, DELETE";

/// The media type of an append's body.
const PARTIAL_UPLOAD: &str = "application/partial-upload";

/// How long a request waits for the one before it on the same upload to finish. An append
/// stops at once when asked; a commit (the whole upload becoming the target) is not stopped.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// How long the record of a completed upload stays (at most `upload_expire_secs`).
const COMPLETED_KEEP_SECS: u64 = 3600;

/// How long a `.part` without its record is left alone: creation writes the bytes' file
/// first and the record a moment later.
const ORPHAN_GRACE_SECS: u64 = 60;

/// The prefix of the draft's problem types (RFC 9457 `type` URIs).
const PROBLEM_TYPES: &str = "https://iana.org/assignments/http-problem-types#";

/// What is kept beside an upload's bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// The target's path, percent-encoded (as in a request line).
    target: String,
    /// The user who created it (`None`: anonymous); only they may see or change it.
    user: Option<String>,
    /// Seconds since the epoch.
    created: u64,
    /// The whole length, once the client said (`Upload-Length`).
    length: Option<u64>,
    /// The creating request's Content-Type, handed to the final PUT.
    content_type: Option<String>,
    /// The creating request's `If`, `If-Match` and `If-None-Match`, evaluated again by the
    /// final PUT (a completing request's own `If` replaces the first).
    #[serde(default)]
    conditions: Vec<(String, String)>,
    /// When it became its target (seconds since the epoch); its bytes are gone then.
    #[serde(default)]
    completed: Option<u64>,
}

/// The state-directory half of resumable uploads, shared by every worker.
#[derive(Debug)]
pub(crate) struct Uploads {
    dir: PathBuf,
    /// The uploads a request is working on, and how to ask it to stop.
    slots: std::sync::Mutex<HashMap<String, Slot>>,
    /// Bytes in unfinished uploads: counted as appends store them, measured again by every
    /// sweep (which also corrects what interrupted requests left uncounted).
    staged: AtomicU64,
    /// Set at shutdown: running appends were asked to stop because the server is going.
    closing: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Slot {
    /// Held by the request whose turn it is.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Cancelled to ask that request to stop.
    stop: CancellationToken,
}

impl Uploads {
    pub(crate) fn new(dir: PathBuf) -> Uploads {
        Uploads {
            dir,
            slots: Default::default(),
            staged: AtomicU64::new(0),
            closing: Default::default(),
        }
    }

    fn part(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `n` more staged bytes; false (counting nothing) when that passes `cap`.
    fn stage(&self, n: u64, cap: Option<u64>) -> bool {
        let before = self.staged.fetch_add(n, Ordering::Relaxed);
        if cap.is_some_and(|c| before.saturating_add(n) > c) {
            self.unstage(n);
            return false;
        }
        true
    }

    fn unstage(&self, n: u64) {
        let _ = self
            .staged
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some(s.saturating_sub(n))
            });
    }

    /// At start-up: removes expired uploads and what interrupted writes left.
    pub(crate) fn sweep_at_start(&self, max_age: Duration) -> io::Result<()> {
        self.sweep(max_age, true).map(|_| ())
    }

    /// Removes expired uploads (never one a request is working on), completed ones past
    /// their time and bytes without a record; measures what the rest hold. The creators of
    /// the unfinished uploads left, one entry each.
    fn sweep(&self, max_age: Duration, at_start: bool) -> io::Result<Vec<Option<String>>> {
        let now = now_secs();
        let busy: Vec<String> = if at_start {
            Vec::new()
        } else {
            self.slots().keys().cloned().collect()
        };
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut users = Vec::new();
        let mut staged = 0;
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json") {
                let record = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
                let expired = match &record {
                    // Records are written whole (renamed into place): this one is not ours.
                    None => true,
                    Some(r) => match r.completed {
                        Some(at) => {
                            now.saturating_sub(at) > COMPLETED_KEEP_SECS.min(max_age.as_secs())
                        }
                        None => now.saturating_sub(r.created) > max_age.as_secs(),
                    },
                };
                if expired && !busy.iter().any(|b| b == id) {
                    let _ = std::fs::remove_file(self.part(id));
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                if let Some(r) = record.filter(|r| r.completed.is_none()) {
                    users.push(r.user);
                    staged += std::fs::metadata(self.part(id)).map_or(0, |m| m.len());
                }
            } else if let Some(id) = name.strip_suffix(".part") {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > ORPHAN_GRACE_SECS);
                if (at_start || old) && !self.record_path(id).exists() {
                    let _ = std::fs::remove_file(&path);
                }
            } else if at_start && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
            }
        }
        self.staged.store(staged, Ordering::Relaxed);
        Ok(users)
    }

    /// Writes a record whole: a temporary file, synced, renamed over the old one, and the
    /// directory synced, so that a crash leaves the old record or the new one.
    fn write_record(&self, id: &str, record: &Record) -> io::Result<()> {
        let json = serde_json::to_vec(record).map_err(io::Error::other)?;
        let tmp = self.dir.join(format!("{id}.json.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.record_path(id))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    async fn save(self: &Arc<Self>, id: &str, record: &Record) -> io::Result<()> {
        let (me, id, record) = (self.clone(), id.to_owned(), record.clone());
        tokio::task::spawn_blocking(move || me.write_record(&id, &record))
            .await
            .map_err(io::Error::other)?
    }

    /// The record of an upload, `None` when there is none.
    async fn read_record(&self, id: &str) -> DavResult<Option<Record>> {
        match tokio::fs::read(self.record_path(id)).await {
            Ok(b) => Ok(serde_json::from_slice(&b).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes an upload's bytes (and uncounts them).
    async fn drop_part(&self, id: &str) {
        let part = self.part(id);
        if let Ok(m) = tokio::fs::metadata(&part).await {
            self.unstage(m.len());
        }
        let _ = tokio::fs::remove_file(&part).await;
    }

    /// Removes an upload: bytes and record.
    async fn discard(&self, id: &str) -> io::Result<()> {
        self.drop_part(id).await;
        match tokio::fs::remove_file(self.record_path(id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Takes the upload's turn, first asking the request that has it to stop (an append
    /// stops and keeps its bytes; a commit runs to its end). `None` when the turn did not
    /// come within [`SETTLE_WAIT`].
    async fn turn(&self, id: &str) -> Option<Turn<'_>> {
        let (lock, holder) = {
            let mut slots = self.slots();
            let slot = slots.entry(id.to_owned()).or_insert_with(|| Slot {
                turn: Arc::default(),
                stop: CancellationToken::new(),
            });
            (slot.turn.clone(), slot.stop.clone())
        };
        holder.cancel();
        let guard = tokio::time::timeout(SETTLE_WAIT, lock.clone().lock_owned()).await;
        let mut slots = self.slots();
        let Ok(guard) = guard else {
            forget_idle(&mut slots, id, &lock, 2);
            return None;
        };
        let stop = CancellationToken::new();
        if let Some(slot) = slots.get_mut(id).filter(|s| Arc::ptr_eq(&s.turn, &lock)) {
            slot.stop = stop.clone();
        }
        Some(Turn {
            uploads: self,
            id: id.to_owned(),
            lock,
            _guard: guard,
            stop,
        })
    }
}

/// One request's turn at an upload: while it is held, no other request reads or changes it.
struct Turn<'a> {
    uploads: &'a Uploads,
    id: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
    /// Cancelled when a newer request for the same upload wants the turn.
    stop: CancellationToken,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut slots = self.uploads.slots();
        // The map's handle, this turn's and its guard's: nobody is waiting.
        forget_idle(&mut slots, &self.id, &self.lock, 3);
    }
}

/// Forgets an upload's slot when only `own` handles of its lock are left (nobody waits).
fn forget_idle(
    slots: &mut HashMap<String, Slot>,
    id: &str,
    lock: &Arc<tokio::sync::Mutex<()>>,
    own: usize,
) {
    let ours = slots.get(id).is_some_and(|s| Arc::ptr_eq(&s.turn, lock));
    if ours && Arc::strong_count(lock) <= own {
        slots.remove(id);
    }
}

/// Why an append stopped before the end of its body.
enum Stop {
    /// The body went past the upload's announced length (cut back to where it started).
    OverLength,
    /// The server is shutting down (what arrived is kept).
    ShuttingDown,
    Dav(DavError),
}

impl From<DavError> for Stop {
    fn from(e: DavError) -> Stop {
        Stop::Dav(e)
    }
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Dav(e.into())
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The bare item of a structured-field header, without parameters.
fn sf_item<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let v = headers.get(name)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or("").trim())
}

/// A structured-field Boolean header (`?1` / `?0`). Anything else counts as absent, as the
/// draft says of every `Upload-*` field.
fn sf_bool(headers: &HeaderMap, name: &str) -> Option<bool> {
    match sf_item(headers, name)? {
        "?1" => Some(true),
        "?0" => Some(false),
        _ => None,
    }
}

/// A structured-field non-negative Integer header (at most 15 digits); else absent.
fn sf_integer(headers: &HeaderMap, name: &str) -> Option<u64> {
    let v = sf_item(headers, name)?;
    if v.is_empty() || v.len() > 15 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// True for a PUT that starts a resumable upload rather than writing its target.
pub(crate) fn starts_upload(parts: &Parts) -> bool {
    sf_bool(&parts.headers, "upload-complete") == Some(false)
}

fn user_of(who: &Principal) -> Option<String> {
    match who {
        Principal::User(u) => Some(u.clone()),
        Principal::Anonymous => None,
    }
}

/// An id is 32 lowercase hex digits (what [`new_id`] makes); anything else is no upload.
fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// 128 random bits from the operating system, in hex: the upload URL is its only secret
/// when there is no `[auth]`.
fn new_id() -> io::Result<String> {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 16];
    OsRng.try_fill_bytes(&mut bytes).map_err(io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Syncs an upload's bytes to disk; their length.
async fn sync_len(path: &Path) -> io::Result<u64> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new().append(true).open(&path)?;
        f.sync_data()?;
        Ok(f.metadata()?.len())
    })
    .await
    .map_err(io::Error::other)?
}

async fn truncate(path: &Path, len: u64) -> io::Result<()> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .await?
        .set_len(len)
        .await
}

/// An RFC 9457 problem document of one of the draft's types.
fn problem(status: StatusCode, kind: &str, title: &str, extra: &[(&str, u64)]) -> Response<Body> {
    let mut doc = serde_json::Map::new();
    doc.insert("type".into(), format!("{PROBLEM_TYPES}{kind}").into());
    doc.insert("title".into(), title.into());
    for (k, v) in extra {
        doc.insert((*k).into(), (*v).into());
    }
    let text = serde_json::Value::Object(doc).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/problem+json")
        .body(body::full(text))
        .unwrap_or_else(|_| body::plain(status))
}

fn inconsistent_length() -> Response<Body> {
    problem(
        StatusCode::BAD_REQUEST,
        "inconsistent-upload-length",
        "the upload's length values do not agree",
        &[],
    )
}

/// 503 for a request that could not have its turn: the one before it is still running.
fn busy() -> Response<Body> {
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header(header::RETRY_AFTER, "1")
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body::full(
            "another request is still working on this upload\n",
        ))
        .unwrap_or_else(|_| body::plain(StatusCode::SERVICE_UNAVAILABLE))
}

fn set(r: &mut Response<Body>, name: &'static str, value: impl Into<HeaderValue>) {
    r.headers_mut()
        .insert(HeaderName::from_static(name), value.into());
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// The `Upload-Limit` of uploads: `max-size` when `max_upload` is set, and `max-age`, the
    /// seconds an upload has left (`None`: a new one's).
    fn upload_limit(&self, age: Option<u64>) -> HeaderValue {
        let mut limits = Vec::with_capacity(2);
        if let Some(m) = self.config.max_upload {
            limits.push(format!("max-size={m}"));
        }
        limits.push(format!(
            "max-age={}",
            age.unwrap_or(self.config.upload_expire_secs)
        ));
        HeaderValue::try_from(limits.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static("max-age=0"))
    }

    /// What an OPTIONS answer says about resumable uploads, when they are offered: PATCH
    /// accepts `application/partial-upload` (the draft's sign of support) and the limits.
    pub(crate) fn advertise_uploads(&self, resp: &mut Response<Body>) {
        if self.uploads.is_some() {
            set(
                resp,
                "accept-patch",
                HeaderValue::from_static(PARTIAL_UPLOAD),
            );
            let limit = self.upload_limit(None);
            set(resp, "upload-limit", limit);
        }
    }

    /// At shutdown: stops the running appends (they keep their bytes and answer 503), which
    /// the client resumes later, rather than letting the drain wait for whole large bodies.
    pub(crate) fn stop_appends(&self) {
        if let Some(uploads) = &self.uploads {
            uploads.closing.store(true, Ordering::Relaxed);
            for slot in uploads.slots().values() {
                slot.stop.cancel();
            }
        }
    }

    /// A task that removes expired uploads every quarter of `upload_expire_secs` (between a
    /// second and an hour), for as long as it runs; `None` without resumable uploads.
    pub fn upload_sweeper(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let uploads = self.uploads.clone()?;
        let max_age = Duration::from_secs(self.config.upload_expire_secs);
        let every = (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        Some(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is now, and start-up has just swept.
            tick.tick().await;
            loop {
                tick.tick().await;
                let u = uploads.clone();
                match tokio::task::spawn_blocking(move || u.sweep(max_age, false)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "sweeping expired uploads"),
                    Err(e) => tracing::warn!(error = %e, "sweeping expired uploads"),
                }
            }
        })
    }

    /// A PUT with `Upload-Complete: ?0` whose checks passed: makes the upload resource and
    /// keeps whatever body came with the request. `old_len` is the target's current length.
    pub(crate) async fn create_upload<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        old_len: u64,
        body: B,
    ) -> DavResult<Response<Body>> {
        let Some(uploads) = self.uploads.clone() else {
            return Err(DavError::NotImplemented);
        };
        let length = sf_integer(&parts.headers, "upload-length");
        if let (Some(limit), Some(n)) = (self.config.max_upload, length) {
            if n > limit {
                return self.refused(Stop::Dav(DavError::TooLarge));
            }
        }
        // An announced length must fit the quota now (the final PUT reserves it again).
        if let Some(n) = length {
            let mut quota = self.quotas.begin(&target.path);
            if !quota.is_unlimited() {
                quota
                    .grow(&self.quotas, &self.storage, n.saturating_sub(old_len))
                    .await?;
            }
        }
        tokio::fs::create_dir_all(&uploads.dir).await?;
        let max_age = Duration::from_secs(self.config.upload_expire_secs);
        let u = uploads.clone();
        let left = tokio::task::spawn_blocking(move || u.sweep(max_age, false))
            .await
            .map_err(io::Error::other)??;
        let user = user_of(&principal(parts));
        let mine = left.iter().filter(|u| **u == user).count();
        if left.len() >= self.config.max_unfinished_uploads
            || mine >= self.config.max_unfinished_uploads_per_user
        {
            return Err(DavError::InsufficientStorage);
        }
        let id = new_id()?;
        let conditions = ["if", "if-match", "if-none-match"]
            .into_iter()
            .filter_map(|name| {
                let v = parts.headers.get(name)?.to_str().ok()?;
                Some((name.to_owned(), v.to_owned()))
            })
            .collect();
        let record = Record {
            target: target.path.href(false),
            user,
            created: now_secs(),
            length,
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            conditions,
            completed: None,
        };
        tokio::fs::File::create_new(uploads.part(&id)).await?;
        uploads.save(&id, &record).await?;
        // Nobody knows the id before the 201, so no other request can want this turn.
        let never = CancellationToken::new();
        let offset = match self.append(&uploads, &id, 0, length, &never, body).await {
            Ok(n) => n,
            Err(stop) => {
                // The client never learned where the upload is: nothing can resume it.
                let _ = uploads.discard(&id).await;
                return self.refused(stop);
            }
        };
        let location = HeaderValue::try_from(format!("{UPLOADS_PREFIX}{id}"))
            .map_err(|e| super::get::internal(e.into()))?;
        let mut r = status_only(StatusCode::CREATED);
        r.headers_mut().insert(header::LOCATION, location);
        set(&mut r, "upload-offset", offset);
        set(&mut r, "upload-complete", HeaderValue::from_static("?0"));
        if let Some(n) = length {
            set(&mut r, "upload-length", n);
        }
        let limit = self.upload_limit(None);
        set(&mut r, "upload-limit", limit);
        Ok(r)
    }

    /// The answer to an append that stopped early: 413 says the limits, a length past the
    /// announced one is the draft's problem, everything else an ordinary failure.
    fn refused(&self, stop: Stop) -> DavResult<Response<Body>> {
        match stop {
            Stop::OverLength => Ok(inconsistent_length()),
            Stop::ShuttingDown => Ok(Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .header(header::RETRY_AFTER, "5")
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(body::full("the server is restarting; resume the upload\n"))
                .unwrap_or_else(|_| body::plain(StatusCode::SERVICE_UNAVAILABLE))),
            Stop::Dav(DavError::TooLarge) => {
                let mut r = DavError::TooLarge.into_response();
                let limit = self.upload_limit(None);
                set(&mut r, "upload-limit", limit);
                Ok(r)
            }
            Stop::Dav(e) => Err(e),
        }
    }

    /// Appends the body to the upload's bytes, which are `offset` long; the new length. What
    /// arrives before the connection breaks, or before `stop`, is kept and synced to disk; a
    /// body too long for `max_upload` or the announced `length` is cut back whole.
    async fn append<B: ReqBody>(
        &self,
        uploads: &Uploads,
        id: &str,
        offset: u64,
        length: Option<u64>,
        stop: &CancellationToken,
        mut body: B,
    ) -> Result<u64, Stop> {
        let part = uploads.part(id);
        let file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&part)
            .await?;
        let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut written = offset;
        let mut counted = 0;
        let mut clock = BodyClock::start();
        let limit = self.config.max_upload;
        let cap = self.config.max_staged_upload_bytes;
        let result: Result<(), Stop> = async {
            loop {
                let frame = tokio::select! {
                    frame = self.next_frame(&mut body, &mut clock) => frame?,
                    () = stop.cancelled() => {
                        if uploads.closing.load(Ordering::Relaxed) {
                            return Err(Stop::ShuttingDown);
                        }
                        return Err(DavError::Conflict("a newer request for this upload took over").into());
                    }
                };
                let Some(frame) = frame else {
                    return Ok(());
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let n = data.len() as u64;
                written += n;
                if limit.is_some_and(|l| written > l) {
                    return Err(DavError::TooLarge.into());
                }
                if length.is_some_and(|l| written > l) {
                    return Err(Stop::OverLength);
                }
                if !uploads.stage(n, cap) {
                    return Err(DavError::InsufficientStorage.into());
                }
                counted += n;
                out.write_all(&data).await?;
            }
        }
        .await;
        // However it ended, what was written stays and is on disk before anyone is told its
        // length; only a body refused whole is cut back to where it started.
        let flushed = out.flush().await;
        drop(out);
        if matches!(
            result,
            Err(Stop::OverLength | Stop::Dav(DavError::TooLarge))
        ) {
            truncate(&part, offset).await?;
            uploads.unstage(counted);
        }
        flushed?;
        let len = sync_len(&part).await?;
        result.map(|()| len)
    }

    /// A request to `/.davit/uploads/<id>`.
    pub(crate) async fn upload_resource<B: ReqBody>(
        &self,
        parts: &Parts,
        id: &str,
        body: B,
    ) -> DavResult<Response<Body>> {
        let Some(uploads) = self.uploads.clone() else {
            return Err(DavError::NotFound);
        };
        if !valid_id(id) {
            return Err(DavError::NotFound);
        }
        if parts.method == Method::OPTIONS {
            let mut r = status_only(StatusCode::OK);
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW_UPLOAD));
            set(
                &mut r,
                "accept-patch",
                HeaderValue::from_static(PARTIAL_UPLOAD),
            );
            return Ok(r);
        }
        let Some(record) = uploads.read_record(id).await? else {
            return Err(DavError::NotFound);
        };
        self.check_owner(parts, &record)?;
        if !matches!(parts.method.as_str(), "HEAD" | "PATCH" | "DELETE") {
            return Err(DavError::MethodNotAllowed(ALLOW_UPLOAD));
        }
        let Some(turn) = uploads.turn(id).await else {
            return Ok(busy());
        };
        // Read again: the request before may have completed or cancelled it.
        let Some(record) = uploads.read_record(id).await? else {
            return Err(DavError::NotFound);
        };
        match parts.method.as_str() {
            "HEAD" => self.upload_state(&uploads, id, &record).await,
            "DELETE" => {
                uploads.discard(id).await?;
                Ok(status_only(StatusCode::NO_CONTENT))
            }
            _ => {
                self.patch_upload(parts, &uploads, &turn, record, body)
                    .await
            }
        }
    }

    /// Another user's upload does not exist for them (404; 401 first when they sent no
    /// credentials); the creator still needs write access to the target.
    fn check_owner(&self, parts: &Parts, record: &Record) -> DavResult<()> {
        let who = principal(parts);
        if record.user != user_of(&who) {
            if let (Some(auth), Principal::Anonymous) = (&self.auth, &who) {
                return Err(DavError::Unauthorized(auth.challenge()));
            }
            return Err(DavError::NotFound);
        }
        let target = DavPath::parse(&record.target)?;
        self.authorize(parts, &target, Access::ReadWrite, false)
    }

    /// HEAD: the offset, whether the upload is complete, its length if known, its limits.
    async fn upload_state(
        &self,
        uploads: &Uploads,
        id: &str,
        record: &Record,
    ) -> DavResult<Response<Body>> {
        let mut r = status_only(StatusCode::NO_CONTENT);
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if record.completed.is_some() {
            set(&mut r, "upload-offset", record.length.unwrap_or(0));
            set(&mut r, "upload-complete", HeaderValue::from_static("?1"));
        } else {
            let offset = tokio::fs::metadata(uploads.part(id)).await?.len();
            set(&mut r, "upload-offset", offset);
            set(&mut r, "upload-complete", HeaderValue::from_static("?0"));
            let age = (record.created + self.config.upload_expire_secs).saturating_sub(now_secs());
            let limit = self.upload_limit(Some(age));
            set(&mut r, "upload-limit", limit);
        }
        if let Some(n) = record.length {
            set(&mut r, "upload-length", n);
        }
        Ok(r)
    }

    /// PATCH: an append at the upload's offset, completing it with `Upload-Complete: ?1`.
    async fn patch_upload<B: ReqBody>(
        &self,
        parts: &Parts,
        uploads: &Arc<Uploads>,
        turn: &Turn<'_>,
        mut record: Record,
        body: B,
    ) -> DavResult<Response<Body>> {
        let id = turn.id.as_str();
        if let Some(t) = parts.headers.get(header::CONTENT_TYPE) {
            let essence = t.to_str().unwrap_or("").split(';').next().unwrap_or("");
            if !essence.trim().eq_ignore_ascii_case(PARTIAL_UPLOAD) {
                return Err(DavError::UnsupportedMediaType(
                    "an append's Content-Type is application/partial-upload",
                ));
            }
        }
        let Some(claimed) = sf_integer(&parts.headers, "upload-offset") else {
            return Err(DavError::BadRequest("an append needs Upload-Offset".into()));
        };
        let Some(complete) = sf_bool(&parts.headers, "upload-complete") else {
            return Err(DavError::BadRequest(
                "an append needs Upload-Complete (?0, or ?1 for the last)".into(),
            ));
        };
        if record.completed.is_some() {
            return self.append_to_completed(&record, body).await;
        }
        let offset = tokio::fs::metadata(uploads.part(id)).await?.len();
        if claimed != offset {
            let mut r = problem(
                StatusCode::CONFLICT,
                "mismatching-upload-offset",
                "Upload-Offset is not where the upload is",
                &[("expected-offset", offset), ("provided-offset", claimed)],
            );
            set(&mut r, "upload-offset", offset);
            set(&mut r, "upload-complete", HeaderValue::from_static("?0"));
            return Ok(r);
        }
        let length = match (record.length, sf_integer(&parts.headers, "upload-length")) {
            (Some(a), Some(b)) if a != b => return Ok(inconsistent_length()),
            (Some(n), _) | (None, Some(n)) if n < offset => return Ok(inconsistent_length()),
            (known, announced) => known.or(announced),
        };
        if record.length.is_none() && length.is_some() {
            record.length = length;
            uploads.save(id, &record).await?;
        }
        let offset = match self
            .append(uploads, id, offset, length, &turn.stop, body)
            .await
        {
            Ok(n) => n,
            Err(stop) => return self.refused(stop),
        };
        if !complete {
            let mut r = status_only(StatusCode::NO_CONTENT);
            set(&mut r, "upload-offset", offset);
            set(&mut r, "upload-complete", HeaderValue::from_static("?0"));
            return Ok(r);
        }
        if length.is_some_and(|n| n != offset) {
            return Ok(inconsistent_length());
        }
        self.commit_upload(parts, uploads, id, record, offset).await
    }

    /// An append to an upload that is already its target: refused, as the draft says (a
    /// non-empty one disagrees with the length; an empty one learns it is done, and where).
    async fn append_to_completed<B: ReqBody>(
        &self,
        record: &Record,
        mut body: B,
    ) -> DavResult<Response<Body>> {
        let mut clock = BodyClock::start();
        while let Some(frame) = self.next_frame(&mut body, &mut clock).await? {
            if frame.data_ref().is_some_and(|d| !d.is_empty()) {
                return Ok(inconsistent_length());
            }
        }
        let mut r = problem(
            StatusCode::GONE,
            "completed-upload",
            "the upload is complete",
            &[],
        );
        if let Ok(v) = HeaderValue::try_from(record.target.as_str()) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        set(&mut r, "upload-complete", HeaderValue::from_static("?1"));
        Ok(r)
    }

    /// The whole upload becomes its target through an ordinary PUT, made by the same user with
    /// the creating request's conditions (and the completing request's `If`, if it has one,
    /// for lock tokens). Its answer is the PUT's; if the PUT failed the upload stays as it was
    /// (`Upload-Complete: ?0`), so a 423 or a 507 can be fixed and the completion sent again.
    async fn commit_upload(
        &self,
        parts: &Parts,
        uploads: &Arc<Uploads>,
        id: &str,
        mut record: Record,
        len: u64,
    ) -> DavResult<Response<Body>> {
        let path = DavPath::parse(&record.target)?;
        let file = tokio::fs::File::open(uploads.part(id)).await?;
        let mut req = Request::builder()
            .method(Method::PUT)
            .uri(path.href(false))
            .header(header::CONTENT_LENGTH, len);
        if let Some(v) = parts.headers.get(header::HOST) {
            req = req.header(header::HOST, v);
        }
        let own_if = parts.headers.get("if");
        if let Some(v) = own_if {
            req = req.header("if", v);
        }
        for (name, value) in &record.conditions {
            if !(name == "if" && own_if.is_some()) {
                req = req.header(name.as_str(), value.as_str());
            }
        }
        if let Some(t) = &record.content_type {
            req = req.header(header::CONTENT_TYPE, t.as_str());
        }
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
            .map_ok(http_body::Frame::data);
        let req = req
            .body(http_body_util::StreamBody::new(stream))
            .map_err(super::get::internal)?;
        let (mut put_parts, put_body) = req.into_parts();
        put_parts.extensions = parts.extensions.clone();
        let mut resp = match self.dispatch_op(put_parts, put_body).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        if !resp.status().is_success() {
            set(&mut resp, "upload-offset", len);
            set(&mut resp, "upload-complete", HeaderValue::from_static("?0"));
            return Ok(resp);
        }
        uploads.drop_part(id).await;
        record.completed = Some(now_secs());
        record.length = Some(len);
        if let Err(e) = uploads.save(id, &record).await {
            // The target is written; without its record the upload is simply gone (404).
            tracing::warn!(error = %e, "recording a completed upload");
            let _ = uploads.discard(id).await;
        }
        set(&mut resp, "upload-complete", HeaderValue::from_static("?1"));
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_as_structured_fields() {
        let mut h = HeaderMap::new();
        assert_eq!(sf_bool(&h, "upload-complete"), None);
        h.insert("upload-complete", HeaderValue::from_static("?0"));
        assert_eq!(sf_bool(&h, "upload-complete"), Some(false));
        h.insert("upload-complete", HeaderValue::from_static("?1;x=1"));
        assert_eq!(sf_bool(&h, "upload-complete"), Some(true));
        h.insert("upload-complete", HeaderValue::from_static("true"));
        assert_eq!(sf_bool(&h, "upload-complete"), None);
        h.insert("upload-offset", HeaderValue::from_static("1234"));
        assert_eq!(sf_integer(&h, "upload-offset"), Some(1234));
        for bad in ["-1", "+1", "", "1234567890123456", "1e3"] {
            h.insert("upload-offset", HeaderValue::from_static(bad));
            assert_eq!(sf_integer(&h, "upload-offset"), None, "{bad}");
        }
        let id = new_id().unwrap();
        assert!(valid_id(&id), "{id}");
        assert_ne!(id, new_id().unwrap());
        assert!(!valid_id("../../etc/passwd"));
        assert!(!valid_id("0123456789ABCDEF0123456789ABCDEF"));
    }

    fn record(created: u64, completed: Option<u64>) -> Record {
        Record {
            target: "/f".into(),
            user: None,
            created,
            length: None,
            content_type: None,
            conditions: Vec::new(),
            completed,
        }
    }

    #[test]
    fn a_sweep_removes_expired_uploads_and_measures_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let u = Uploads::new(dir.path().to_owned());
        let write = |id: &str, r: Record, bytes: &[u8]| {
            std::fs::write(u.part(id), bytes).unwrap();
            u.write_record(id, &r).unwrap();
        };
        let now = now_secs();
        write("old", record(now - 100, None), b"xx");
        write("young", record(now - 10, None), b"xyz");
        write("done", record(now - 10, Some(now - 5)), b"");
        write("done-long-ago", record(now - 10, Some(now - 40)), b"");
        std::fs::write(u.part("orphan"), b"abc").unwrap();
        std::fs::write(dir.path().join("x.json.tmp"), b"{").unwrap();
        // Someone is working on "old": it stays until they are done.
        u.slots().insert(
            "old".into(),
            Slot {
                turn: Arc::default(),
                stop: CancellationToken::new(),
            },
        );
        let left = u.sweep(Duration::from_secs(30), false).unwrap();
        assert_eq!(left.len(), 2);
        assert!(u.record_path("old").exists());
        assert!(u.record_path("done").exists());
        assert!(!u.record_path("done-long-ago").exists());
        assert!(u.part("orphan").exists(), "too young to be an orphan");
        assert_eq!(u.staged.load(Ordering::Relaxed), 5);
        u.slots().clear();
        u.sweep_at_start(Duration::from_secs(30)).unwrap();
        assert!(!u.part("old").exists() && !u.record_path("old").exists());
        assert!(u.part("young").exists() && u.record_path("young").exists());
        assert!(!u.part("orphan").exists());
        assert!(!dir.path().join("x.json.tmp").exists());
        assert_eq!(u.staged.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn staged_bytes_stop_at_the_cap() {
        let u = Uploads::new(PathBuf::from("/nonexistent"));
        assert!(u.stage(600, Some(1000)));
        assert!(!u.stage(500, Some(1000)));
        assert!(u.stage(400, Some(1000)));
        u.unstage(2000);
        assert_eq!(u.staged.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_new_request_stops_the_one_holding_the_turn() {
        let u = Uploads::new(PathBuf::from("/nonexistent"));
        let first = u.turn("a").await.unwrap();
        assert!(!first.stop.is_cancelled());
        let stop = first.stop.clone();
        let second = async { u.turn("a").await.map(|t| t.stop.is_cancelled()) };
        let release = async {
            stop.cancelled().await;
            drop(first);
        };
        let (second, ()) = tokio::join!(second, release);
        assert_eq!(second, Some(false));
        assert!(u.slots().is_empty(), "an idle upload keeps no slot");
    }
}
