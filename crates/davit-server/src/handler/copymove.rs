//! COPY and MOVE. MOVE is a rename wherever storage can do one; otherwise (and for COPY) the
//! tree is copied member by member, with failures reported per member in a 207. Dead
//! properties travel with the resources. With a journal directory (the default server), each
//! request is journaled like a one-operation atomic batch, so a crash never leaves it half done.

use super::{header_str, host_of, Change, Dav, Done, Target};
use crate::body::Body;
use crate::changes::{Noted, Observed};
use crate::error::{DavError, DavResult};
use crate::journal::{drop_stashes, roll_back, Journal, JournaledStorage, Undo};
use crate::locks::Lock;
use crate::locks::LockStore;
use crate::props::{PropStore, TreeScope};
use crate::storage::{CopyDepth, Failure, Storage, TxEnd};
use davit_proto::headers::{parse_overwrite, Depth};
use davit_proto::href::{parse_destination, DavPath};
use http::request::Parts;
use http::Response;
use std::io::ErrorKind;
use std::sync::Arc;

/// What a COPY or MOVE asks besides its source (from its headers, or a batch operation).
pub(crate) struct Transfer {
    /// Where to.
    pub dest: DavPath,
    /// Depth (a collection's COPY takes 0 or infinity, its MOVE only infinity).
    pub depth: Depth,
    /// Whether what is at `dest` may be replaced.
    pub overwrite: bool,
    /// MOVE (else COPY).
    pub is_move: bool,
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn copy_move(
        &self,
        parts: &Parts,
        target: &Target,
        is_move: bool,
    ) -> DavResult<Response<Body>> {
        let meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
        let dest = header_str(parts, "destination")?
            .ok_or_else(|| DavError::BadRequest("Destination header is missing".into()))?;
        let input = Transfer {
            dest: parse_destination(dest, host_of(parts).as_deref())?,
            depth: match header_str(parts, "depth")? {
                None => Depth::Infinity,
                Some(v) => Depth::parse(v)?,
            },
            overwrite: match header_str(parts, "overwrite")? {
                None => true,
                Some(v) => parse_overwrite(v)?,
            },
            is_move,
        };
        let done = self.transfer(parts, target, meta, input).await?;
        Ok(self.answer(done).await)
    }

    /// COPY or MOVE of `target` (whose metadata is `meta`), for an HTTP request or a batch
    /// operation (`parts` carries who asks and the If header).
    pub(crate) async fn transfer(
        &self,
        parts: &Parts,
        target: &Target,
        meta: crate::storage::Meta,
        input: Transfer,
    ) -> DavResult<Done> {
        let src = &target.path;
        let Transfer {
            dest,
            depth,
            overwrite,
            is_move,
        } = input;
        if meta.is_dir() {
            if is_move && depth != Depth::Infinity {
                return Err(DavError::BadRequest(
                    "MOVE of a collection needs Depth: infinity".into(),
                ));
            }
            if depth == Depth::One {
                return Err(DavError::BadRequest(
                    "COPY takes Depth 0 or infinity".into(),
                ));
            }
        }
        if src.is_root() && is_move {
            return Err(DavError::Forbidden("the root collection cannot be moved"));
        }
        if &dest == src {
            return Err(DavError::Forbidden("source and destination are the same"));
        }
        if meta.is_dir() && dest.starts_with(src) {
            return Err(DavError::Forbidden(
                "the destination lies inside the source",
            ));
        }
        if src.starts_with(&dest) {
            return Err(DavError::Forbidden(
                "the destination is an ancestor of the source",
            ));
        }
        let parent = dest
            .parent()
            .ok_or(DavError::Forbidden("cannot replace the root"))?;
        let existed = self.meta_at(&dest).await?.is_some();
        let src_parent = src.parent().unwrap_or_else(DavPath::root);
        let mut changes = vec![Change::Resource(&parent)];
        // The destination is written whether or not something is there yet.
        changes.push(if existed {
            Change::Tree(&dest)
        } else {
            Change::Resource(&dest)
        });
        if is_move {
            changes.push(Change::Tree(src));
            changes.push(Change::Resource(&src_parent));
        }
        // The whole source tree is read; a MOVE also changes it (declared in `changes`).
        self.authorize(parts, src, crate::auth::Access::Read, true)?;
        self.check_preconditions(parts, target, Some(&meta), &changes)
            .await?;
        if !self.meta_at(&parent).await?.is_some_and(|m| m.is_dir()) {
            return Err(DavError::Conflict(
                "the destination's parent collection does not exist",
            ));
        }
        // Locks are released only if they were there before this request acted: one granted
        // meanwhile belongs to a resource this request did not touch.
        let src_locks = if is_move {
            self.locks.under(src).await?
        } else {
            Vec::new()
        };
        let dest_member_locks: Vec<_> = self
            .locks
            .under(&dest)
            .await?
            .into_iter()
            .filter(|l| l.root != dest)
            .collect();
        if existed && !overwrite {
            return Err(DavError::PreconditionFailed);
        }
        let copy_depth = if depth == Depth::Zero {
            CopyDepth::Zero
        } else {
            CopyDepth::Infinity
        };
        // Under a quota, what the destination gains is reserved before anything is copied,
        // so a COPY or MOVE that would not fit changes nothing (RFC 4331 §6).
        let quota = self
            .reserve_for_copy_move(src, &dest, &meta, is_move, existed, copy_depth)
            .await?;
        let failures = match &self.journal_dir {
            Some(dir) => {
                let mut release = dest_member_locks;
                release.extend(src_locks);
                self.copy_move_journaled(dir, src, &dest, is_move, copy_depth, existed, release)
                    .await?
            }
            None if self.props.joins_storage() => {
                let mut release = dest_member_locks;
                release.extend(src_locks);
                self.copy_move_in_transaction(src, &dest, is_move, copy_depth, existed, release)
                    .await?
            }
            None => {
                self.copy_move_direct(
                    src,
                    &dest,
                    is_move,
                    copy_depth,
                    existed,
                    src_locks,
                    dest_member_locks,
                )
                .await?
            }
        };
        drop(quota);
        self.quotas.changed(&dest);
        if is_move {
            self.quotas.changed(src);
        }
        if !failures.is_empty() {
            return Ok(Done::Partial(failures));
        }
        if existed {
            self.storage.touch(&dest).await?;
        }
        let mut notes = Vec::new();
        if is_move {
            notes.push(Noted::Gone(src.clone()));
        }
        if existed {
            notes.push(Noted::Gone(dest.clone()));
        }
        if let Some(meta) = self.meta_at(&dest).await? {
            notes.push(Noted::Present(Observed::from_meta(dest.clone(), &meta)));
        }
        self.note_changes(notes).await;
        Ok(if existed {
            Done::NoContent
        } else {
            Done::Created
        })
    }

    /// Reserves, in every quota root the destination lies in (for a MOVE: that does not hold
    /// the source already), the bytes the destination gains: the source's content less what
    /// it replaces.
    async fn reserve_for_copy_move(
        &self,
        src: &DavPath,
        dest: &DavPath,
        meta: &crate::storage::Meta,
        is_move: bool,
        existed: bool,
        depth: CopyDepth,
    ) -> DavResult<crate::quota::Reservation> {
        let mut quota = if is_move {
            self.quotas.begin_move(src, dest)
        } else {
            self.quotas.begin(dest)
        };
        if quota.is_unlimited() {
            return Ok(quota);
        }
        let added = match (meta.is_dir(), depth) {
            (false, _) => meta.len,
            (true, CopyDepth::Zero) => 0,
            (true, CopyDepth::Infinity) => self.storage.tree_size(src).await?,
        };
        let replaced = if existed {
            match self.storage.tree_size(dest).await {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::NotFound => 0,
                Err(e) => return Err(e.into()),
            }
        } else {
            0
        };
        quota
            .grow(&self.quotas, &self.storage, added.saturating_sub(replaced))
            .await?;
        Ok(quota)
    }

    /// COPY or MOVE as one all-or-nothing step, journaled like an atomic batch: what the
    /// destination held is stashed, the content is renamed (or copied), and the properties
    /// change in one SQLite transaction that also records the commit. A crash before that
    /// commit is rolled back at start-up (the destination comes back, a partial copy goes), a
    /// crash after it is completed (stashes dropped, recorded locks released).
    #[allow(clippy::too_many_arguments)]
    async fn copy_move_journaled(
        &self,
        dir: &std::path::Path,
        src: &DavPath,
        dest: &DavPath,
        is_move: bool,
        depth: CopyDepth,
        existed: bool,
        release: Vec<Lock>,
    ) -> DavResult<Vec<Failure>> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let journal = Arc::new(Journal::create(dir, &id)?);
        let storage = JournaledStorage::new(self.storage.clone(), journal.clone());
        let result = async {
            // Locks go only if the operation commits: recorded now, released after.
            for lock in &release {
                journal.record(Undo::Unlock(lock.token.clone())).await?;
            }
            if existed {
                // Stashed, not deleted: one rename, undone if the rest fails.
                storage.delete_tree(dest).await?;
            }
            let failures = if is_move {
                match storage.rename(src, dest).await {
                    Ok(()) => Vec::new(),
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::CrossesDevices | ErrorKind::Unsupported
                        ) =>
                    {
                        let failures = storage.copy_tree(src, dest, CopyDepth::Infinity).await?;
                        if let Some((_, e)) = failures.into_iter().next() {
                            // Deleting the source now would lose the members not copied.
                            return Err(DavError::from(e));
                        }
                        storage.delete_tree(src).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                storage.copy_tree(src, dest, depth).await?
            };
            let tx = self.props.begin().await?;
            let changed = async {
                tx.delete(dest, Vec::new()).await?;
                if is_move {
                    tx.rename(src, dest).await
                } else {
                    let scope = match depth {
                        CopyDepth::Zero => TreeScope::Resource,
                        CopyDepth::Infinity => TreeScope::Tree,
                    };
                    tx.copy(src, dest, scope).await
                }
            }
            .await;
            match changed {
                Ok(()) => self.props.commit(tx, &id).await?,
                Err(e) => {
                    self.props.rollback(tx).await?;
                    return Err(e.into());
                }
            }
            Ok::<_, DavError>(failures)
        }
        .await;
        let entries = journal.entries();
        match result {
            Ok(failures) => {
                drop_stashes(&self.storage, &entries).await;
                self.release_recorded_locks(&entries).await;
                journal.remove()?;
                self.props.forget_batch(&id).await?;
                Ok(failures)
            }
            Err(e) => {
                roll_back(&self.storage, &entries).await;
                journal.remove()?;
                Err(e)
            }
        }
    }

    /// COPY or MOVE as one transaction of a backend whose content and properties share a
    /// database (`PropStore::joins_storage`): the namespace and the properties change
    /// together or not at all, and the locks that go are released once it has committed.
    async fn copy_move_in_transaction(
        &self,
        src: &DavPath,
        dest: &DavPath,
        is_move: bool,
        depth: CopyDepth,
        existed: bool,
        release: Vec<Lock>,
    ) -> DavResult<Vec<Failure>> {
        let tx = self.props.begin().await?;
        let Some(joined) = tx.shared().and_then(|shared| self.storage.join(&shared)) else {
            self.props.rollback(tx).await?;
            return Err(DavError::Io(std::io::Error::other(
                "the property store's transaction cannot be joined",
            )));
        };
        let result = self
            .view(joined.clone(), tx.clone())
            .copy_move_direct(src, dest, is_move, depth, existed, Vec::new(), Vec::new())
            .await;
        match result {
            Ok(failures) => {
                if let Err(e) = self.props.commit(tx, "").await {
                    joined.settle(TxEnd::RolledBack).await;
                    return Err(e.into());
                }
                joined.settle(TxEnd::Committed).await;
                for lock in &release {
                    self.locks.release(&lock.token).await?;
                }
                Ok(failures)
            }
            Err(e) => {
                self.props.rollback(tx).await?;
                joined.settle(TxEnd::RolledBack).await;
                Err(e)
            }
        }
    }

    /// COPY or MOVE step by step, for a server without a journal directory and inside an
    /// atomic batch (whose own journal and transaction already make it all or nothing).
    #[allow(clippy::too_many_arguments)]
    async fn copy_move_direct(
        &self,
        src: &DavPath,
        dest: &DavPath,
        is_move: bool,
        depth: CopyDepth,
        existed: bool,
        src_locks: Vec<Lock>,
        dest_member_locks: Vec<Lock>,
    ) -> DavResult<Vec<Failure>> {
        if existed {
            let failures = self.storage.delete_tree(dest).await?;
            if !failures.is_empty() {
                return Ok(failures);
            }
        }
        // Dead properties belong to what was there. A lock on the destination URL itself stays
        // and covers what arrives (RFC 4918 §7.6); locks on members that were replaced go.
        for lock in dest_member_locks {
            self.locks.release(&lock.token).await?;
        }
        self.props.delete(dest, Vec::new()).await?;
        if !is_move {
            return self.copy_tree(src, dest, depth).await;
        }
        let failures = match self.storage.rename(src, dest).await {
            Ok(()) => {
                self.props.rename(src, dest).await?;
                Vec::new()
            }
            Err(e) if matches!(e.kind(), ErrorKind::CrossesDevices | ErrorKind::Unsupported) => {
                self.copy_tree(src, dest, CopyDepth::Infinity).await?;
                let failures = self.storage.delete_tree(src).await?;
                self.props.delete(src, Vec::new()).await?;
                failures
            }
            Err(e) => return Err(e.into()),
        };
        // Locks stay where they were made: a moved lock root loses its lock.
        for lock in &src_locks {
            self.locks.release(&lock.token).await?;
        }
        Ok(failures)
    }

    async fn copy_tree(
        &self,
        src: &davit_proto::href::DavPath,
        dest: &davit_proto::href::DavPath,
        depth: CopyDepth,
    ) -> DavResult<Vec<crate::storage::Failure>> {
        let failures = self.storage.copy_tree(src, dest, depth).await?;
        let scope = match depth {
            CopyDepth::Zero => TreeScope::Resource,
            CopyDepth::Infinity => TreeScope::Tree,
        };
        self.props.copy(src, dest, scope).await?;
        Ok(failures)
    }
}
