//! LOCK (create and refresh) and UNLOCK.

use super::{get::internal, parse_if, response, status_only, Change, Dav, ReqBody, Target};
use crate::auth::Principal;
use crate::body::{self, Body};
use crate::error::{DavError, DavResult};
use crate::locks::{Acquire, Lock, LockDepth, LockStore};
use crate::props::PropStore;
use crate::storage::{Storage, Upload};
use davit_proto::headers::{parse_lock_token, parse_timeout, Depth, Timeout};
use davit_proto::href::DavPath;
use davit_proto::xml::{
    parse_lockinfo, write_activelock, ActiveLock, MultistatusWriter, XML_CONTENT_TYPE,
};
use http::request::Parts;
use http::{header, Response, StatusCode};
use std::time::{Duration, SystemTime};

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn lock<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
    ) -> DavResult<Response<Body>> {
        let body = self.read_xml_body(parts, body).await?;
        let timeout = self.granted_timeout(parts)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return self.refresh(parts, target, timeout).await;
        }
        let info = parse_lockinfo(&body, &self.config.xml_limits())?;
        let depth = match super::header_str(parts, "depth")? {
            None => LockDepth::Infinity,
            Some(v) => match Depth::parse(v)? {
                Depth::Zero => LockDepth::Zero,
                Depth::Infinity => LockDepth::Infinity,
                Depth::One => {
                    return Err(DavError::BadRequest(
                        "LOCK takes Depth 0 or infinity".into(),
                    ))
                }
            },
        };
        let path = &target.path;
        self.authorize(
            parts,
            path,
            crate::auth::Access::ReadWrite,
            depth == LockDepth::Infinity,
        )?;
        let meta = self.meta(target).await?;
        let parent = path.parent().unwrap_or_else(DavPath::root);
        if meta.is_none() {
            if target.slash || path.is_root() {
                return Err(DavError::Conflict("cannot lock a missing collection"));
            }
            if !self.meta_at(&parent).await?.is_some_and(|m| m.is_dir()) {
                return Err(DavError::Conflict("the parent collection does not exist"));
            }
        }
        // Locking an existing resource changes nothing; creating one adds a member.
        let changes: &[Change<'_>] = if meta.is_none() {
            &[Change::Resource(&parent)]
        } else {
            &[]
        };
        self.check_preconditions(parts, target, meta.as_ref(), changes)
            .await?;

        let now = SystemTime::now();
        let lock = Lock {
            token: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            root: path.clone(),
            scope: info.scope,
            depth,
            owner: info.owner,
            timeout,
            expires: timeout.map(|t| now + t),
            principal: match super::principal(parts) {
                Principal::User(name) => Some(name),
                Principal::Anonymous => None,
            },
        };
        let (root, infinite) = (lock.root.clone(), lock.depth == LockDepth::Infinity);
        // Another instance's write in progress where the lock would reach holds the grant back
        // until it ends, as the write gate does for this instance's own writes.
        let own = super::gate::own_announcements();
        let mut pause = std::time::Duration::from_millis(2);
        // Once held up by another instance's writes, new writes this lock would protect wait
        // for it everywhere (as the write gate makes this instance's own wait).
        let mut holding = None;
        let lock = loop {
            let acquired = self
                .write_gate
                .grant(
                    &root,
                    infinite,
                    self.locks.acquire_beside(lock.clone(), &own),
                )
                .await;
            match acquired? {
                Acquire::Granted(lock) => {
                    // What the lock covers is described differently from now on.
                    self.forget(forgotten(&lock));
                    break lock;
                }
                Acquire::Conflict(in_way) => return self.conflict(path, in_way).await,
                Acquire::Busy => {
                    if holding.is_none() {
                        holding = Some(
                            self.locks
                                .hold_writes(&root, infinite, super::gate::LOCK_PRECEDENCE)
                                .await?,
                        );
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(100));
                }
            }
        };
        // The grant may have waited for a write that created the resource meanwhile: look
        // again, so as not to empty it. No write can start on it from here, the lock granted.
        let meta = match meta {
            Some(m) => Some(m),
            None => match self.meta(target).await {
                Ok(m) => m,
                Err(e) => {
                    self.locks.release(&lock.token).await?;
                    return Err(e);
                }
            },
        };
        if meta.is_none() {
            // A LOCK on an unmapped URL creates an empty resource (RFC 4918 §7.3).
            let created = async {
                let mut up = self.storage.upload(path).await?;
                tokio::io::AsyncWriteExt::flush(&mut up).await?;
                // Cleared before the file appears (see PUT).
                self.props.delete(path, Vec::new()).await?;
                up.commit().await?;
                Ok::<_, DavError>(())
            }
            .await;
            if let Err(e) = created {
                self.locks.release(&lock.token).await?;
                return Err(e);
            }
        }
        // Again, for the resource just created.
        self.forget(forgotten(&lock));
        drop(holding);
        let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
        let status = if meta.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        response(status)
            .header("Lock-Token", format!("<{}>", lock.token))
            .header(header::CONTENT_TYPE, XML_CONTENT_TYPE)
            .body(body::full(lockdiscovery_body(&lock, is_dir)))
            .map_err(internal)
    }

    /// A bodyless LOCK: restart the timer of a lock named in the If header that covers the
    /// request URI.
    async fn refresh(
        &self,
        parts: &Parts,
        target: &Target,
        timeout: Option<Duration>,
    ) -> DavResult<Response<Body>> {
        self.authorize(parts, &target.path, crate::auth::Access::ReadWrite, false)?;
        let meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
        let header = parse_if(parts)?.ok_or_else(|| {
            DavError::BadRequest("a LOCK without a body must name the lock in an If header".into())
        })?;
        let no_match = || {
            DavError::condition(
                StatusCode::PRECONDITION_FAILED,
                "lock-token-matches-request-uri",
            )
        };
        // A false If header here means the named lock does not cover this URL: say so.
        match self
            .check_preconditions(parts, target, Some(&meta), &[])
            .await
        {
            Err(DavError::PreconditionFailed) => return Err(no_match()),
            other => {
                other?;
            }
        }
        let mut someone_elses = false;
        for token in header.state_tokens() {
            let Some(lock) = self.locks.get(token).await? else {
                continue;
            };
            if !lock.covers(&target.path) {
                continue;
            }
            if !self.may_use_lock(parts, &lock) {
                someone_elses = true;
                continue;
            }
            let Some(lock) = self.locks.refresh(token, timeout).await? else {
                continue;
            };
            let root_is_dir = lock.root != target.path || meta.is_dir();
            return response(StatusCode::OK)
                .header(header::CONTENT_TYPE, XML_CONTENT_TYPE)
                .body(body::full(lockdiscovery_body(&lock, root_is_dir)))
                .map_err(internal);
        }
        if someone_elses {
            return Err(DavError::Forbidden("the lock belongs to another user"));
        }
        Err(no_match())
    }

    /// The answer to a LOCK that other locks are in the way of: 423 naming their roots, or,
    /// when only members of the requested tree are locked, a 207 naming those members.
    async fn conflict(&self, path: &DavPath, in_way: Vec<Lock>) -> DavResult<Response<Body>> {
        let mut roots: Vec<DavPath> = Vec::new();
        for l in in_way {
            if !roots.contains(&l.root) {
                roots.push(l.root);
            }
        }
        let mut hrefs = Vec::with_capacity(roots.len());
        for r in &roots {
            let is_dir = self.meta_at(r).await?.is_some_and(|m| m.is_dir());
            hrefs.push(r.href(is_dir));
        }
        if roots.iter().all(|r| r != path && r.starts_with(path)) {
            let mut w = MultistatusWriter::new();
            for h in &hrefs {
                w.status_response(h, 423, Some("no-conflicting-lock"), None);
            }
            w.status_response(&path.href(true), 424, None, None);
            return Ok(super::multistatus(w.finish()));
        }
        Err(DavError::Condition {
            status: StatusCode::LOCKED,
            condition: "no-conflicting-lock",
            hrefs,
        })
    }

    pub(crate) async fn unlock(&self, parts: &Parts, target: &Target) -> DavResult<Response<Body>> {
        let token = super::header_str(parts, "lock-token")?
            .ok_or_else(|| DavError::BadRequest("UNLOCK needs a Lock-Token header".into()))?;
        let token = parse_lock_token(token)?;
        self.authorize(parts, &target.path, crate::auth::Access::ReadWrite, false)?;
        self.meta(target).await?.ok_or(DavError::NotFound)?;
        match self.locks.get(&token).await? {
            Some(lock) if lock.covers(&target.path) => {
                if !self.may_use_lock(parts, &lock) {
                    // RFC 4918 §9.11: only the lock's creator may remove it.
                    return Err(DavError::Forbidden("the lock belongs to another user"));
                }
                self.locks.release(&token).await?;
                self.forget(crate::cache::Noticed::Tree(lock.root.clone()));
                Ok(status_only(StatusCode::NO_CONTENT))
            }
            _ => Err(DavError::condition(
                StatusCode::CONFLICT,
                "lock-token-matches-request-uri",
            )),
        }
    }

    /// The timeout to grant: the first one asked for that davit understands, capped by the
    /// configured maximum; the default when none was asked for.
    fn granted_timeout(&self, parts: &Parts) -> DavResult<Option<Duration>> {
        let max = self.config.lock_timeout_max.map(Duration::from_secs);
        let asked = match super::header_str(parts, "timeout")? {
            None => None,
            Some(v) => parse_timeout(v)?.into_iter().next(),
        };
        let wanted = match asked {
            None => Some(Duration::from_secs(self.config.lock_timeout_default)),
            Some(Timeout::Infinite) => None,
            Some(Timeout::Seconds(n)) => Some(Duration::from_secs(u64::from(n))),
        };
        Ok(match (wanted, max) {
            (Some(w), Some(m)) => Some(w.min(m)),
            (None, Some(m)) => Some(m),
            (w, None) => w,
        })
    }
}

/// `<D:prop><D:lockdiscovery>` holding one lock, the body of LOCK responses.
fn lockdiscovery_body(lock: &Lock, root_is_dir: bool) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>",
    );
    let root_href = lock.root.href(root_is_dir);
    write_activelock(
        &ActiveLock {
            scope: lock.scope,
            infinite_depth: lock.depth == LockDepth::Infinity,
            owner: lock.owner.as_deref(),
            seconds_left: lock.seconds_left(SystemTime::now()),
            token: &lock.token,
            root_href: &root_href,
        },
        &mut out,
    );
    out.push_str("</D:lockdiscovery></D:prop>\n");
    out
}

/// What the cache forgets when `lock` is granted: its root, and with depth infinity
/// everything below.
fn forgotten(lock: &Lock) -> crate::cache::Noticed {
    if lock.depth == LockDepth::Infinity {
        crate::cache::Noticed::Tree(lock.root.clone())
    } else {
        crate::cache::Noticed::Path(lock.root.clone())
    }
}
