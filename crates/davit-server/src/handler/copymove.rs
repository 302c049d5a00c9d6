//! COPY and MOVE. MOVE is a rename wherever storage can do one; otherwise (and for COPY) the
//! tree is copied member by member, with failures reported per member in a 207. Dead
//! properties travel with the resources.

use super::{header_str, host_of, multistatus, status_only, Change, Dav, Target};
use crate::body::Body;
use crate::error::{DavError, DavResult};
use crate::locks::LockStore;
use crate::props::{PropStore, TreeScope};
use crate::storage::{CopyDepth, Storage};
use davit_proto::headers::{parse_overwrite, Depth};
use davit_proto::href::{parse_destination, DavPath};
use http::request::Parts;
use http::{Response, StatusCode};
use std::io::ErrorKind;

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn copy_move(
        &self,
        parts: &Parts,
        target: &Target,
        is_move: bool,
    ) -> DavResult<Response<Body>> {
        let src = &target.path;
        let meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
        let dest = header_str(parts, "destination")?
            .ok_or_else(|| DavError::BadRequest("Destination header is missing".into()))?;
        let dest = parse_destination(dest, host_of(parts).as_deref())?;
        let depth = match header_str(parts, "depth")? {
            None => Depth::Infinity,
            Some(v) => Depth::parse(v)?,
        };
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
        let overwrite = match header_str(parts, "overwrite")? {
            None => true,
            Some(v) => parse_overwrite(v)?,
        };
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
        if existed {
            if !overwrite {
                return Err(DavError::PreconditionFailed);
            }
            let failures = self.storage.delete_tree(&dest).await?;
            if !failures.is_empty() {
                return Ok(multistatus(self.failure_report(failures).await));
            }
        }
        // Dead properties belong to what was there. A lock on the destination URL itself stays
        // and covers what arrives (RFC 4918 §7.6); locks on members that were replaced go.
        for lock in dest_member_locks {
            self.locks.release(&lock.token).await?;
        }
        self.props.delete(&dest, Vec::new()).await?;

        let failures = if is_move {
            match self.storage.rename(src, &dest).await {
                Ok(()) => {
                    self.props.rename(src, &dest).await?;
                    // Locks stay where they were made: a moved lock root loses its lock.
                    for lock in &src_locks {
                        self.locks.release(&lock.token).await?;
                    }
                    Vec::new()
                }
                Err(e)
                    if matches!(e.kind(), ErrorKind::CrossesDevices | ErrorKind::Unsupported) =>
                {
                    self.copy_tree(src, &dest, CopyDepth::Infinity).await?;
                    let failures = self.storage.delete_tree(src).await?;
                    self.props.delete(src, Vec::new()).await?;
                    for lock in &src_locks {
                        self.locks.release(&lock.token).await?;
                    }
                    failures
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            let depth = if depth == Depth::Zero {
                CopyDepth::Zero
            } else {
                CopyDepth::Infinity
            };
            self.copy_tree(src, &dest, depth).await?
        };
        if !failures.is_empty() {
            return Ok(multistatus(self.failure_report(failures).await));
        }
        if existed {
            self.storage.touch(&dest).await?;
        }
        Ok(status_only(if existed {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::CREATED
        }))
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
