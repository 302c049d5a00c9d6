//! Write locks (RFC 4918 §6, §7). Handlers see only the [`LockStore`] trait; the embedded
//! [`EmbeddedLockStore`] keeps locks in memory for fast checks and writes them through to
//! SQLite so they survive a restart.

mod store;

pub use store::EmbeddedLockStore;

use crate::props::StoreError;
use davit_proto::href::DavPath;
use davit_proto::xml::LockScope;
use std::future::Future;
use std::time::{Duration, SystemTime};

/// How far a lock reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockDepth {
    /// The root resource only (for a collection: also its membership).
    Zero,
    /// The root and everything below it, members added later included.
    Infinity,
}

/// An active lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The token URI (`urn:uuid:…`).
    pub token: String,
    /// The resource the lock was created on.
    pub root: DavPath,
    /// Exclusive or shared.
    pub scope: LockScope,
    /// Depth.
    pub depth: LockDepth,
    /// The owner element as given by the client.
    pub owner: Option<String>,
    /// The granted timeout; `None` means infinite.
    pub timeout: Option<Duration>,
    /// When the lock lapses; `None` means never.
    pub expires: Option<SystemTime>,
    /// The authenticated user who created the lock; `None` when it was created anonymously or
    /// without authentication. With authentication on, only this user may refresh, release or
    /// submit the lock (RFC 4918 §6.4: the token is the creator's credential).
    pub principal: Option<String>,
}

impl Lock {
    /// True when this lock applies to `path` (its root, or below a depth-infinity root).
    pub fn covers(&self, path: &DavPath) -> bool {
        &self.root == path || (self.depth == LockDepth::Infinity && path.starts_with(&self.root))
    }

    /// True once the lock has lapsed.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// Whole seconds left (rounded up), `None` for infinite locks.
    pub fn seconds_left(&self, now: SystemTime) -> Option<u64> {
        self.expires.map(|e| {
            let left = e.duration_since(now).unwrap_or(Duration::ZERO);
            left.as_secs() + u64::from(left.subsec_nanos() > 0)
        })
    }
}

/// Why a lock could not be granted.
#[derive(Debug)]
pub enum Acquire {
    /// Granted.
    Granted(Lock),
    /// These existing locks are in the way.
    Conflict(Vec<Lock>),
    /// A write announced by another instance ([`LockStore::announce`]) is in progress where
    /// the lock would reach; ask again once it has ended.
    Busy,
}

/// Whether a write gives way to LOCKs waiting on other instances (see
/// [`LockStore::announce`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precedence {
    /// The usual case: a waiting LOCK goes first.
    YieldToWaitingLocks,
    /// The request already holds writes (an atomic batch): a waiting LOCK may be waiting
    /// for those, so its later writes go on.
    Ignore,
}

/// What [`LockStore::announce`] did.
#[derive(Debug)]
pub enum Announced {
    /// The writes are announced until this is dropped.
    Yes(Announcement),
    /// The store is not shared with other instances: nothing to announce.
    Nothing,
    /// A LOCK waiting on some instance would protect one of the writes: not announced; ask
    /// again later.
    HeldBack,
}

/// A write in progress, announced to the other instances sharing a lock store (see
/// [`LockStore::announce`]); dropping it withdraws the announcement.
pub struct Announcement {
    /// Distinguishes this request's own announcements from others' at grant time.
    pub id: uuid::Uuid,
    withdraw: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Announcement {
    /// An announcement that runs `withdraw` when it ends.
    pub fn new(id: uuid::Uuid, withdraw: impl FnOnce() + Send + Sync + 'static) -> Self {
        Announcement {
            id,
            withdraw: Some(Box::new(withdraw)),
        }
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        if let Some(withdraw) = self.withdraw.take() {
            withdraw();
        }
    }
}

impl std::fmt::Debug for Announcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcement")
            .field("id", &self.id)
            .finish()
    }
}

/// Lock storage. Every method sees only unexpired locks.
pub trait LockStore: Send + Sync + 'static {
    /// Locks that apply to `path`: rooted there, or depth-infinity locks on an ancestor.
    fn covering(
        &self,
        path: &DavPath,
    ) -> impl Future<Output = Result<Vec<Lock>, StoreError>> + Send;
    /// [`covering`](Self::covering) for each of `paths` (a batch of a listing); a store with
    /// a round trip per call answers them all with one.
    fn covering_many(
        &self,
        paths: &[&DavPath],
    ) -> impl Future<Output = Result<Vec<Vec<Lock>>, StoreError>> + Send {
        async move {
            let mut out = Vec::with_capacity(paths.len());
            for p in paths {
                out.push(self.covering(p).await?);
            }
            Ok(out)
        }
    }
    /// Locks rooted at `path` or anywhere below it.
    fn under(&self, path: &DavPath) -> impl Future<Output = Result<Vec<Lock>, StoreError>> + Send;
    /// Grants `lock` unless it conflicts with an existing one; check and grant are one atomic
    /// step, so of many racing requests exactly one exclusive lock wins.
    fn acquire(&self, lock: Lock) -> impl Future<Output = Result<Acquire, StoreError>> + Send;
    /// Like [`acquire`](Self::acquire), but also [`Acquire::Busy`] while a write announced
    /// elsewhere overlaps the lock, the request's own announcements (`own`) aside. A store
    /// shared by one process only has nothing to check: the handlers' own write gate covers it.
    fn acquire_beside(
        &self,
        lock: Lock,
        own: &[uuid::Uuid],
    ) -> impl Future<Output = Result<Acquire, StoreError>> + Send {
        let _ = own;
        self.acquire(lock)
    }
    /// Announces writes about to be checked against the locks (`(path, whole tree below)`),
    /// so that no other instance grants a lock reaching them until the announcement is
    /// dropped. Called before the write's lock check: a lock granted before the announcement
    /// is seen by that check, one asked for after it meets [`Acquire::Busy`]. A store shared by
    /// one process only announces nothing.
    ///
    /// With [`Precedence::YieldToWaitingLocks`], writes that a LOCK waiting on any instance
    /// would protect are not announced: the answer is [`Announced::HeldBack`], and the write
    /// asks again a little later (see [`LockStore::hold_writes`]).
    fn announce(
        &self,
        writes: &[(&DavPath, bool)],
        precedence: Precedence,
    ) -> impl Future<Output = Result<Announced, StoreError>> + Send {
        let _ = (writes, precedence);
        std::future::ready(Ok(Announced::Nothing))
    }
    /// Holds back, on every instance sharing the store, new writes that a lock on `root`
    /// (`infinite`: of depth infinity) would protect, while a LOCK waits for writes in
    /// progress on other instances, so that a stream of such writes cannot starve it; for at
    /// most `for_at_most`, and until the returned guard is dropped. A store shared by one
    /// process holds nothing back here (its write gate does that).
    fn hold_writes(
        &self,
        root: &DavPath,
        infinite: bool,
        for_at_most: Duration,
    ) -> impl Future<Output = Result<Option<Announcement>, StoreError>> + Send {
        let _ = (root, infinite, for_at_most);
        std::future::ready(Ok(None))
    }
    /// The lock with this token.
    fn get(&self, token: &str) -> impl Future<Output = Result<Option<Lock>, StoreError>> + Send;
    /// Restarts a lock's timer with a new timeout; returns the refreshed lock.
    fn refresh(
        &self,
        token: &str,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Option<Lock>, StoreError>> + Send;
    /// Removes one lock; false if there was none.
    fn release(&self, token: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Removes every lock rooted at `path` or below (the resources are gone or moved).
    fn release_tree(&self, path: &DavPath) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// True when the two locks cannot both hold on overlapping resources.
pub fn conflicts(a: LockScope, b: LockScope) -> bool {
    a == LockScope::Exclusive || b == LockScope::Exclusive
}
