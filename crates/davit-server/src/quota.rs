//! RFC 4331 quotas: byte limits on subtrees (`[[dav.quota]]`, or a user's `quota_bytes` on
//! their root), enforced on every write that adds content, and the `quota-used-bytes` /
//! `quota-available-bytes` values PROPFIND reports.
//!
//! What counts is the content of files (their lengths); collections and dead properties count
//! nothing. A quota root's usage is measured by walking it (`Storage::tree_size`) when first
//! needed, then kept up to date by davit's own PUTs and measured again after COPY, MOVE and
//! DELETE, and at the latest `quota_rescan_secs` after the last measurement (so changes made by
//! other programs are seen within that time). Concurrent uploads reserve what they are about to
//! add, so two of them cannot together pass a limit that each alone would respect.

use crate::error::{DavError, DavResult};
use crate::storage::Storage;
use davit_proto::href::DavPath;
use http::StatusCode;
use serde::Deserialize;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One `[[dav.quota]]` table.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// The subtree the limit applies to (everything at and below it counts).
    pub path: String,
    /// The most bytes of file content the subtree may hold.
    pub bytes: u64,
}

/// How long a measured free-space figure is trusted: `statvfs` is cheap, but a listing asks
/// once per member.
const FREE_SPACE_FRESH: Duration = Duration::from_secs(1);

/// The quota roots of a server, and the share root (which reports usage but has no limit
/// beyond the free space of its storage).
#[derive(Debug)]
pub struct Quotas {
    /// Limited roots, innermost first.
    roots: Vec<Arc<QuotaRoot>>,
    /// The whole share: what resources outside every limited root report.
    share: Arc<QuotaRoot>,
    /// How long a measured usage is trusted.
    fresh_for: Duration,
    free: Mutex<Option<(u64, Instant)>>,
}

#[derive(Debug)]
struct QuotaRoot {
    path: DavPath,
    limit: Option<u64>,
    usage: Mutex<Usage>,
    /// One measurement at a time; the others wait for its result.
    measuring: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Usage {
    /// The last measurement (adjusted by davit's own uploads since), and when it was taken.
    used: Option<(u64, Instant)>,
    /// Bytes that uploads in progress may still add.
    reserved: u64,
    /// While a measurement walks the tree: what uploads that finished meanwhile added (the
    /// walk may or may not have seen them, so they are counted on top: usage is overestimated
    /// until the next measurement, never underestimated).
    added_during: Option<u64>,
    /// A COPY, MOVE or DELETE changed the tree while it was being measured: the result is not
    /// kept.
    changed_during: bool,
}

impl QuotaRoot {
    fn new(path: DavPath, limit: Option<u64>) -> Arc<QuotaRoot> {
        Arc::new(QuotaRoot {
            path,
            limit,
            usage: Mutex::default(),
            measuring: tokio::sync::Mutex::new(()),
        })
    }

    fn fresh(&self, fresh_for: Duration) -> Option<u64> {
        match self.usage().used {
            Some((n, at)) if at.elapsed() < fresh_for => Some(n),
            _ => None,
        }
    }

    fn usage(&self) -> MutexGuard<'_, Usage> {
        // A panic while holding it cannot leave the counters inconsistent beyond what a
        // re-measurement fixes.
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What PROPFIND reports for one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaInfo {
    /// `DAV:quota-used-bytes`: the content counted against the quota that applies.
    pub used: u64,
    /// `DAV:quota-available-bytes`: how much more may be stored there.
    pub available: u64,
}

impl Quotas {
    /// Quotas on the given subtrees (a subtree named twice gets the smaller limit).
    pub fn new(limits: Vec<(DavPath, u64)>, fresh_for: Duration) -> Quotas {
        let mut limits = limits;
        limits.sort_by(|a, b| {
            b.0.as_str()
                .len()
                .cmp(&a.0.as_str().len())
                .then(a.1.cmp(&b.1))
        });
        limits.dedup_by(|later, earlier| later.0 == earlier.0);
        Quotas {
            roots: limits
                .into_iter()
                .map(|(p, n)| QuotaRoot::new(p, Some(n)))
                .collect(),
            share: QuotaRoot::new(DavPath::root(), None),
            fresh_for,
            free: Mutex::new(None),
        }
    }

    /// True when no subtree has a limit (writes then never look at usage).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    fn covering<'a>(&'a self, path: &'a DavPath) -> impl Iterator<Item = &'a Arc<QuotaRoot>> {
        self.roots.iter().filter(move |r| path.starts_with(&r.path))
    }

    /// The usage of `root`, measured again when the last measurement is too old.
    async fn used<S: Storage>(&self, root: &QuotaRoot, storage: &S) -> io::Result<u64> {
        if let Some(n) = root.fresh(self.fresh_for) {
            return Ok(n);
        }
        let _one_at_a_time = root.measuring.lock().await;
        if let Some(n) = root.fresh(self.fresh_for) {
            return Ok(n);
        }
        {
            let mut u = root.usage();
            u.added_during = Some(0);
            u.changed_during = false;
        }
        let measured = match storage.tree_size(&root.path).await {
            Ok(n) => Ok(n),
            // A quota root that does not exist yet holds nothing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        };
        let mut u = root.usage();
        let added = u.added_during.take().unwrap_or(0);
        let n = measured?.saturating_add(added);
        if !std::mem::take(&mut u.changed_during) {
            u.used = Some((n, Instant::now()));
        }
        Ok(n)
    }

    async fn free_space<S: Storage>(&self, storage: &S) -> io::Result<u64> {
        if let Some((n, at)) = *self.free.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < FREE_SPACE_FRESH {
                return Ok(n);
            }
        }
        let n = storage.space_available().await?.unwrap_or(u64::MAX);
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) = Some((n, Instant::now()));
        Ok(n)
    }

    /// The quota figures of a resource: those of the innermost limited root above it (the
    /// available bytes bounded by every enclosing limit and by the storage's free space), or,
    /// outside every limited root, those of the whole share.
    pub async fn info<S: Storage>(&self, storage: &S, path: &DavPath) -> io::Result<QuotaInfo> {
        let mut available = self.free_space(storage).await?;
        let mut used = None;
        for root in self.covering(path) {
            let n = self.used(root, storage).await?;
            let reserved = root.usage().reserved;
            let limit = root.limit.unwrap_or(u64::MAX);
            available = available.min(limit.saturating_sub(n.saturating_add(reserved)));
            used.get_or_insert(n);
        }
        let used = match used {
            Some(n) => n,
            None => self.used(&self.share, storage).await?,
        };
        Ok(QuotaInfo { used, available })
    }

    /// Starts a reservation for content that is about to be added at `path` (nothing is
    /// reserved until [`Reservation::grow`]).
    pub fn begin(&self, path: &DavPath) -> Reservation {
        Reservation {
            roots: self.covering(path).map(|r| (r.clone(), 0)).collect(),
        }
    }

    /// Like [`Quotas::begin`] for content arriving from `from` by MOVE: the roots that hold
    /// `from` already count it.
    pub fn begin_move(&self, from: &DavPath, path: &DavPath) -> Reservation {
        Reservation {
            roots: self
                .covering(path)
                .filter(|r| !from.starts_with(&r.path))
                .map(|r| (r.clone(), 0))
                .collect(),
        }
    }

    /// Forgets the measured usage of every limited root that overlaps `path` (content there
    /// changed by an amount not worth computing: a DELETE, COPY or MOVE), so the next write
    /// measures it again. The share's usage is forgotten too.
    pub fn changed(&self, path: &DavPath) {
        for root in &self.roots {
            if path.starts_with(&root.path) || root.path.starts_with(path) {
                forget(root);
            }
        }
        forget(&self.share);
    }

    /// A write is done and changed the content by `delta` bytes: the usage of its roots (and
    /// of the share) counts it, and its reservation ends.
    pub fn settle(&self, mut reservation: Reservation, delta: i64) {
        let share = (self.share.clone(), 0);
        for (root, mine) in reservation.roots.drain(..).chain(std::iter::once(share)) {
            let mut u = root.usage();
            u.reserved = u.reserved.saturating_sub(mine);
            if let Some((n, _)) = &mut u.used {
                *n = n.saturating_add_signed(delta);
            }
            if let Some(added) = &mut u.added_during {
                *added = added.saturating_add(delta.max(0).unsigned_abs());
            }
        }
    }

    /// Forgets every measurement (an atomic batch was rolled back).
    pub fn changed_everywhere(&self) {
        self.changed(&DavPath::root());
    }
}

fn forget(root: &QuotaRoot) {
    let mut u = root.usage();
    u.used = None;
    if u.added_during.is_some() {
        u.changed_during = true;
    }
}

/// Bytes reserved in each limited root above a path, for one write in progress; released
/// when dropped.
pub struct Reservation {
    roots: Vec<(Arc<QuotaRoot>, u64)>,
}

/// The one way a quota refuses a write (RFC 4331 §6).
fn exceeded() -> DavError {
    DavError::condition(StatusCode::INSUFFICIENT_STORAGE, "quota-not-exceeded")
}

impl Reservation {
    /// True when no quota applies (so the caller need not count anything).
    pub fn is_unlimited(&self) -> bool {
        self.roots.is_empty()
    }

    /// What is reserved now.
    pub fn amount(&self) -> u64 {
        self.roots.first().map_or(0, |r| r.1)
    }

    /// Reserves until `total` bytes are held in every root, or fails with 507
    /// `quota-not-exceeded` (holding what it held before).
    pub async fn grow<S: Storage>(
        &mut self,
        quotas: &Quotas,
        storage: &S,
        total: u64,
    ) -> DavResult<()> {
        for i in 0..self.roots.len() {
            let (root, mine) = &self.roots[i];
            if *mine >= total {
                continue;
            }
            let used = quotas.used(root, storage).await?;
            let ok = {
                let mut u = root.usage();
                // The figure now, which an upload that just finished may have raised.
                let used = u.used.map_or(used, |(n, _)| n);
                let others = u.reserved.saturating_sub(*mine);
                let limit = root.limit.unwrap_or(u64::MAX);
                let fits = used.saturating_add(others).saturating_add(total) <= limit;
                if fits {
                    u.reserved = others + total;
                }
                fits
            };
            if !ok {
                return Err(exceeded());
            }
            self.roots[i].1 = total;
        }
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        for (root, mine) in self.roots.drain(..) {
            let mut u = root.usage();
            u.reserved = u.reserved.saturating_sub(mine);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DavPath {
        DavPath::parse(s).unwrap_or_else(|_| DavPath::root())
    }

    #[test]
    fn innermost_root_first_and_the_smaller_of_two_limits_on_one_path() {
        let q = Quotas::new(
            vec![(p("/a"), 10), (p("/a/b"), 5), (p("/a"), 7)],
            Duration::from_secs(60),
        );
        let limits: Vec<_> = q.covering(&p("/a/b/c")).map(|r| r.limit).collect();
        assert_eq!(limits, vec![Some(5), Some(7)]);
        assert_eq!(q.covering(&p("/ab")).count(), 0);
        assert!(q.begin(&p("/x")).is_unlimited());
    }
}
