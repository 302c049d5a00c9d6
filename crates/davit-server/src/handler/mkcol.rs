//! MKCOL: one new, empty collection.

use super::{has_body, status_only, Change, Dav, ReqBody, Target, ALLOW_DIR, ALLOW_FILE};
use crate::body::Body;
use crate::changes::{Noted, Observed};
use crate::error::{DavError, DavResult};
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::Storage;
use http::request::Parts;
use http::{Response, StatusCode};

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn mkcol<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
    ) -> DavResult<Response<Body>> {
        if has_body(parts) {
            let body = self.read_xml_body(parts, body).await?;
            if !body.is_empty() {
                // Extended MKCOL (RFC 5689) is not implemented, and nothing else is defined.
                return Err(DavError::UnsupportedMediaType(
                    "MKCOL does not accept a request body",
                ));
            }
        }
        let path = &target.path;
        if let Some(m) = self.meta_at(path).await? {
            return Err(DavError::MethodNotAllowed(if m.is_dir() {
                ALLOW_DIR
            } else {
                ALLOW_FILE
            }));
        }
        let parent = path.parent().ok_or(DavError::Forbidden("no parent"))?;
        if !self.meta_at(&parent).await?.is_some_and(|m| m.is_dir()) {
            return Err(DavError::Conflict("the parent collection does not exist"));
        }
        self.check_preconditions(
            parts,
            target,
            None,
            &[Change::Resource(&parent), Change::Resource(path)],
        )
        .await?;
        // Properties left behind at this URL are cleared before the collection appears, so a
        // crash in between can never hand them to it.
        self.props.delete(path, Vec::new()).await?;
        self.storage.create_dir(path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                DavError::MethodNotAllowed(ALLOW_DIR)
            } else {
                e.into()
            }
        })?;
        if let Some(meta) = self.meta_at(path).await? {
            self.note_changes(vec![Noted::Present(Observed::from_meta(
                path.clone(),
                &meta,
            ))])
            .await;
        }
        Ok(status_only(StatusCode::CREATED))
    }
}
