//! SEARCH (RFC 5323, `DAV:basicsearch`): the resources of a scope whose names match, with the
//! properties asked for, as a 207 written while the tree is read (the PROPFIND listing with a
//! condition on each resource). What davit evaluates is in `davit_proto::xml::search`; any
//! other part of the grammar is refused with 422 and says which.

use super::propfind::Listing;
use super::{host_of, Dav, ReqBody, Target};
use crate::auth::Access;
use crate::body::Body;
use crate::error::{DavError, DavResult};
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::Storage;
use davit_proto::headers::Depth;
use davit_proto::href::{parse_destination, DestinationError};
use davit_proto::xml::{parse_search, SearchError};
use http::request::Parts;
use http::{Response, StatusCode};

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn search<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
    ) -> DavResult<Response<Body>> {
        let body = self.read_xml_body(parts, body).await?;
        let search = parse_search(&body, &self.config.xml_limits()).map_err(|e| match e {
            SearchError::Xml(e) => e.into(),
            SearchError::Grammar => {
                DavError::condition(StatusCode::UNPROCESSABLE_ENTITY, "search-grammar-supported")
            }
            SearchError::Unsupported(what) => DavError::Unprocessable(what),
        })?;
        let meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
        self.check_preconditions(parts, target, Some(&meta), &[])
            .await?;
        // The scope: an absolute href, or one relative to the Request-URI; it must lie within
        // the Request-URI (the resource SEARCH was sent to answers for its own tree).
        let href = if search.scope.starts_with('/') || search.scope.contains("://") {
            search.scope.clone()
        } else {
            format!("{}{}", target.path.href(true), search.scope)
        };
        let scope = parse_destination(&href, host_of(parts).as_deref()).map_err(|e| match e {
            DestinationError::OtherServer => {
                DavError::condition(StatusCode::BAD_REQUEST, "search-scope-valid")
            }
            DestinationError::Malformed => DavError::BadRequest("malformed scope href".into()),
            DestinationError::Path(p) => p.into(),
        })?;
        if !scope.starts_with(&target.path) {
            return Err(DavError::condition(
                StatusCode::BAD_REQUEST,
                "search-scope-valid",
            ));
        }
        self.authorize(parts, &scope, Access::Read, false)?;
        let scope_meta = self
            .meta_at(&scope)
            .await?
            .ok_or_else(|| DavError::condition(StatusCode::BAD_REQUEST, "search-scope-valid"))?;
        if search.depth == Depth::Infinity && !self.config.depth_infinity {
            return Err(DavError::Forbidden(
                "searching with depth infinity is turned off on this server",
            ));
        }
        let depth = if scope_meta.is_dir() {
            search.depth
        } else {
            Depth::Zero
        };
        self.stream_listing(
            parts,
            scope,
            scope_meta,
            depth,
            Listing {
                keep: None,
                request: search.select,
                minimal: super::prefer_of(parts).minimal,
                noroot: false,
                condition: Some(
                    search
                        .condition
                        .unwrap_or(davit_proto::xml::Condition::And(Vec::new())),
                ),
                max_matches: search.limit,
            },
        )
        .await
    }
}
