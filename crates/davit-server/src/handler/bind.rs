//! RFC 5842's methods. BIND adds a binding of an existing resource to a collection (on the
//! directory backend: a hard link for a file, a relative symlink for a collection); UNBIND
//! removes one binding, as DELETE of that URL does; REBIND moves one binding, as MOVE does.
//! UNBIND and REBIND hand over to the DELETE and MOVE handlers, so locks, journaling, quotas
//! and the change log work the same way for them.

use super::{header_str, host_of, status_only, Change, Dav, ReqBody, Target};
use crate::body::Body;
use crate::changes::{Noted, Observed};
use crate::error::{DavError, DavResult};
use crate::locks::LockStore;
use crate::props::{PropStore, TreeScope};
use crate::storage::{BindRefusal, Storage};
use davit_proto::headers::parse_overwrite;
use davit_proto::href::{parse_destination, DavPath, DestinationError};
use davit_proto::xml::{parse_bind, BindMethod, BindRequest};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn bind_method<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
        method: BindMethod,
    ) -> DavResult<Response<Body>> {
        let body = self.read_xml_body(parts, body).await?;
        let request = parse_bind(method, &body, &self.config.xml_limits())?;
        let collection = &target.path;
        match self.meta(target).await? {
            None => return Err(DavError::NotFound),
            Some(m) if !m.is_dir() => {
                return Err(DavError::condition(
                    StatusCode::FORBIDDEN,
                    match method {
                        BindMethod::Unbind => "unbind-from-collection",
                        BindMethod::Bind | BindMethod::Rebind => "bind-into-collection",
                    },
                ))
            }
            Some(_) => {}
        }
        let new = collection
            .join(&request.segment)
            .map_err(|_| DavError::condition(StatusCode::FORBIDDEN, "name-allowed"))?;
        match method {
            BindMethod::Bind => self.bind(parts, collection, &new, &request).await,
            BindMethod::Unbind => self.unbind(parts, &new).await,
            BindMethod::Rebind => self.rebind(parts, &new, &request).await,
        }
    }

    /// The resource an href of a BIND or REBIND names (403 `cross-server-binding` for one on
    /// another server).
    fn bind_source(&self, parts: &Parts, request: &BindRequest) -> DavResult<DavPath> {
        let href = request.href.as_deref().unwrap_or_default();
        parse_destination(href, host_of(parts).as_deref()).map_err(|e| match e {
            DestinationError::OtherServer => {
                DavError::condition(StatusCode::FORBIDDEN, "cross-server-binding")
            }
            DestinationError::Malformed => DavError::BadRequest("malformed href".into()),
            DestinationError::Path(p) => p.into(),
        })
    }

    async fn bind(
        &self,
        parts: &Parts,
        collection: &DavPath,
        new: &DavPath,
        request: &BindRequest,
    ) -> DavResult<Response<Body>> {
        let source = self.bind_source(parts, request)?;
        // Binding reads the whole source (it becomes reachable elsewhere).
        self.authorize(parts, &source, crate::auth::Access::Read, true)?;
        if self.meta_at(&source).await?.is_none() {
            return Err(DavError::condition(
                StatusCode::CONFLICT,
                "bind-source-exists",
            ));
        }
        let overwrite = match header_str(parts, "overwrite")? {
            None => true,
            Some(v) => parse_overwrite(v)?,
        };
        let existing = self.meta_at(new).await?;
        if existing.is_some() {
            if !overwrite {
                return Err(DavError::condition(
                    StatusCode::PRECONDITION_FAILED,
                    "can-overwrite",
                ));
            }
            // Replacing the binding would destroy the resource it is to bind.
            if source.starts_with(new) {
                return Err(DavError::condition(
                    StatusCode::FORBIDDEN,
                    "binding-allowed",
                ));
            }
        }
        let changes = [
            Change::Resource(collection),
            if existing.is_some() {
                Change::Tree(new)
            } else {
                Change::Resource(new)
            },
        ];
        let target = Target {
            path: collection.clone(),
            slash: true,
        };
        self.check_preconditions(parts, &target, None, &changes)
            .await?;
        if existing.is_some() {
            let failures = self.storage.delete_tree(new).await?;
            if !failures.is_empty() {
                return Err(DavError::condition(StatusCode::FORBIDDEN, "can-overwrite"));
            }
            for lock in self.locks.under(new).await? {
                self.locks.release(&lock.token).await?;
            }
        }
        self.props.delete(new, Vec::new()).await?;
        match self.storage.bind(&source, new).await? {
            Ok(()) => {}
            Err(BindRefusal::NotAllowed) => {
                return Err(DavError::condition(
                    StatusCode::FORBIDDEN,
                    "binding-allowed",
                ))
            }
            Err(BindRefusal::Cycle) => {
                return Err(DavError::condition(StatusCode::FORBIDDEN, "cycle-allowed"))
            }
        }
        // Dead properties are kept per URL: the new binding starts with the resource's
        // properties as they are now (see the README on bindings).
        self.props.copy(&source, new, TreeScope::Resource).await?;
        let mut notes = Vec::new();
        if existing.is_some() {
            notes.push(Noted::Gone(new.clone()));
        }
        if let Some(meta) = self.meta_at(new).await? {
            notes.push(Noted::Present(Observed::from_meta(new.clone(), &meta)));
        }
        self.note_changes(notes).await;
        self.quotas.changed(new);
        Ok(status_only(if existing.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        }))
    }

    /// UNBIND is DELETE of the binding's URL; RFC 5842 §5 answers 200.
    async fn unbind(&self, parts: &Parts, binding: &DavPath) -> DavResult<Response<Body>> {
        if self.meta_at(binding).await?.is_none() {
            return Err(DavError::condition(
                StatusCode::CONFLICT,
                "unbind-source-exists",
            ));
        }
        let target = Target {
            path: binding.clone(),
            slash: false,
        };
        let mut resp = self.delete(parts, &target).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            *resp.status_mut() = StatusCode::OK;
        }
        Ok(resp)
    }

    /// REBIND is MOVE of the href to the new binding; 201 for a new binding, 200 when it
    /// replaced one (RFC 5842 §6).
    async fn rebind(
        &self,
        parts: &Parts,
        new: &DavPath,
        request: &BindRequest,
    ) -> DavResult<Response<Body>> {
        let source = self.bind_source(parts, request)?;
        let Some(meta) = self.meta_at(&source).await? else {
            return Err(DavError::condition(
                StatusCode::CONFLICT,
                "rebind-source-exists",
            ));
        };
        if source.is_root() {
            return Err(DavError::condition(
                StatusCode::FORBIDDEN,
                "binding-allowed",
            ));
        }
        let mut moved = parts.clone();
        let destination = HeaderValue::from_str(&new.href(meta.is_dir()))
            .map_err(|_| DavError::BadRequest("unusable segment".into()))?;
        moved.headers.insert("destination", destination);
        moved.headers.remove("depth");
        let target = Target {
            path: source,
            slash: false,
        };
        let mut resp = self.copy_move(&moved, &target, true).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            *resp.status_mut() = StatusCode::OK;
        }
        Ok(resp)
    }
}
