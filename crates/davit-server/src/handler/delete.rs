//! DELETE: a file, or a collection with everything in it. Members that cannot be removed are
//! reported in a 207 (each with its own status), their ancestors stay and are not reported.

use super::{Change, Dav, Done, Target};
use crate::body::Body;
use crate::changes::Noted;
use crate::error::{io_status, DavError, DavResult};
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::{Failure, Storage};
use davit_proto::headers::Depth;
use davit_proto::href::DavPath;
use davit_proto::xml::MultistatusWriter;
use http::request::Parts;
use http::Response;

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn delete(&self, parts: &Parts, target: &Target) -> DavResult<Response<Body>> {
        let depth = match super::header_str(parts, "depth")? {
            Some(d) => Some(Depth::parse(d)?),
            None => None,
        };
        let done = self.remove(parts, target, depth).await?;
        Ok(self.answer(done).await)
    }

    /// DELETE of `target` with the Depth given (if any), for an HTTP request or a batch
    /// operation (`parts` carries who asks and the If header).
    pub(crate) async fn remove(
        &self,
        parts: &Parts,
        target: &Target,
        depth: Option<Depth>,
    ) -> DavResult<Done> {
        let meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
        if target.path.is_root() {
            return Err(DavError::Forbidden("the root collection cannot be deleted"));
        }
        if meta.is_dir() && depth.is_some_and(|d| d != Depth::Infinity) {
            return Err(DavError::BadRequest(
                "DELETE of a collection needs Depth: infinity".into(),
            ));
        }
        let parent = target.path.parent().unwrap_or_else(DavPath::root);
        self.check_preconditions(
            parts,
            target,
            Some(&meta),
            &[Change::Tree(&target.path), Change::Resource(&parent)],
        )
        .await?;
        // Only locks that exist now go with the tree; one granted meanwhile (on a resource
        // created again after the delete) stays.
        let doomed = self.locks.under(&target.path).await?;
        let failures = self.storage.delete_tree(&target.path).await;
        self.quotas.changed(&target.path);
        let failures = failures?;
        let keep: Vec<_> = failures
            .iter()
            .flat_map(|(p, _)| {
                std::iter::successors(Some(p.clone()), |x| x.parent())
                    .take_while(|x| x.starts_with(&target.path))
            })
            .collect();
        self.props.delete(&target.path, keep).await?;
        if failures.is_empty() {
            self.note_changes(vec![Noted::Gone(target.path.clone())])
                .await;
            for lock in doomed {
                self.locks.release(&lock.token).await?;
            }
            return Ok(Done::NoContent);
        }
        Ok(Done::Partial(failures))
    }

    /// A 207 body listing only the members that failed.
    pub(crate) async fn failure_report(&self, failures: Vec<Failure>) -> String {
        let mut w = MultistatusWriter::new();
        for (href, status) in self.failure_statuses(failures).await {
            w.status_response(&href, status, None, None);
        }
        w.finish()
    }

    /// Each failed member's href (a collection's with its slash) and status.
    pub(crate) async fn failure_statuses(&self, failures: Vec<Failure>) -> Vec<(String, u16)> {
        let mut out = Vec::with_capacity(failures.len());
        for (path, err) in failures {
            let is_dir = matches!(self.meta_at(&path).await, Ok(Some(m)) if m.is_dir());
            out.push((path.href(is_dir), io_status(&err).as_u16()));
        }
        out
    }
}
