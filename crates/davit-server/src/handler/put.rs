//! PUT: the body is streamed into a temporary upload and committed into place only when it
//! arrived whole, so readers never see half a file and a broken upload changes nothing.

use super::{get::internal, response, Change, Dav, ReqBody, Target, ALLOW_DIR};
use crate::body::{self, Body};
use crate::changes::{Noted, Observed};
use crate::error::{DavError, DavResult};
use crate::live::{content_type_for, STORED_CONTENT_TYPE};
use crate::locks::LockStore;
use crate::props::{DeadProp, PropOp, PropStore};
use crate::storage::{Storage, Upload};
use http::request::Parts;
use http::{header, Response, StatusCode};
use tokio::io::{AsyncWriteExt, BufWriter};

/// Write buffer between the network and the file: gathers the body's small frames into
/// fewer `write` calls, without holding much per upload (hundreds may run at once).
const WRITE_BUFFER: usize = 16 * 1024;

/// What a PUT asks besides its target and body (from its headers, or a batch operation).
#[derive(Debug, Default)]
pub(crate) struct PutInput {
    /// The body's length when announced (quota is reserved for it before it is read).
    pub declared: Option<u64>,
    /// The length the body must have (`X-Expected-Entity-Length`, macOS Finder).
    pub expected: Option<u64>,
    /// The media type given for the body.
    pub content_type: Option<String>,
    /// The body starts a resumable upload instead (`Upload-Complete: ?0`).
    pub resumable: bool,
}

impl PutInput {
    fn from_headers(parts: &Parts) -> DavResult<PutInput> {
        if parts.headers.contains_key(header::CONTENT_RANGE) {
            return Err(DavError::BadRequest(
                "partial PUT (Content-Range) is not supported".into(),
            ));
        }
        // macOS Finder streams chunked bodies and announces the real size here; a shorter
        // body means the upload broke and must not become a truncated file.
        let expected = match parts.headers.get("x-expected-entity-length") {
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        DavError::BadRequest("invalid X-Expected-Entity-Length".into())
                    })?,
            ),
            None => None,
        };
        Ok(PutInput {
            declared: content_length(parts),
            expected,
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            resumable: super::resumable::starts_upload(parts),
        })
    }
}

/// What a PUT came to.
pub(crate) enum Put {
    /// The body is the resource's content now.
    Stored {
        /// There was no resource before (201, else 204).
        created: bool,
        /// The new content's ETag.
        etag: String,
    },
    /// A resumable upload began (its own answer).
    Upload(Response<Body>),
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn put<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
    ) -> DavResult<Response<Body>> {
        let input = PutInput::from_headers(parts)?;
        match self.store(parts, target, &input, body, None).await? {
            Put::Upload(r) => Ok(r),
            Put::Stored { created, etag } => response(if created {
                StatusCode::CREATED
            } else {
                StatusCode::NO_CONTENT
            })
            .header(header::ETAG, etag)
            .body(body::empty())
            .map_err(internal),
        }
    }

    /// PUT of `body` at `target`, for an HTTP request or a batch operation (`parts` carries
    /// who asks and the If header). A batch may hand over the body already `staged`
    /// ([`Storage::stage`]); it is used when it still fits, and `body` is then not read.
    pub(crate) async fn store<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        input: &PutInput,
        body: B,
        staged: Option<S::Upload>,
    ) -> DavResult<Put> {
        let path = &target.path;
        if path.is_root() {
            return Err(DavError::MethodNotAllowed(ALLOW_DIR));
        }
        let existing = self.meta_at(path).await?;
        if existing.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(DavError::MethodNotAllowed(ALLOW_DIR));
        }
        if target.slash {
            return Err(DavError::Conflict("a file URL cannot end with a slash"));
        }
        let parent = path
            .parent()
            .unwrap_or_else(davit_proto::href::DavPath::root);
        let Some(parent_meta) = self.meta_at(&parent).await?.filter(|m| m.is_dir()) else {
            return Err(DavError::Conflict("the parent collection does not exist"));
        };
        let changes = if existing.is_some() {
            vec![Change::Resource(path)]
        } else {
            vec![Change::Resource(&parent), Change::Resource(path)]
        };
        self.check_preconditions(parts, target, existing.as_ref(), &changes)
            .await?;
        if input.resumable {
            let old_len = existing.as_ref().map_or(0, |m| m.len);
            return Ok(Put::Upload(
                self.create_upload(parts, target, old_len, body).await?,
            ));
        }

        let limit = self.config.max_upload;
        let declared = input.declared;
        if let (Some(limit), Some(n)) = (limit, declared) {
            if n > limit {
                return Err(DavError::TooLarge);
            }
        }

        // Under a quota, what the body adds is reserved before it is stored: all of it up
        // front when its length is declared (so the 507 comes before the body), else as it
        // arrives.
        let old_len = existing.as_ref().map_or(0, |m| m.len);
        let mut quota = self.quotas.begin(path);
        if let (false, Some(n)) = (quota.is_unlimited(), declared) {
            quota
                .grow(&self.quotas, &self.storage, n.saturating_sub(old_len))
                .await?;
        }

        let staged = staged
            .filter(|_| existing.is_none())
            .and_then(|s| self.storage.adopt(s, &parent_meta));
        let upload = match (staged, declared) {
            (Some(upload), Some(_)) => upload,
            _ => self.receive(path, input, body, old_len, &mut quota).await?,
        };
        // A new resource starts without dead properties, whatever was left behind (by a DELETE
        // a crash interrupted, say). Cleared before the file appears, so that a crash in
        // between can never hand old properties to the new file; not looked at at all while no
        // resource has any.
        if self.props.may_hold_any() && self.meta_at(path).await?.is_none() {
            self.props.delete(path, Vec::new()).await?;
        }
        let meta = upload.commit().await?;
        self.note_changes(vec![Noted::Present(Observed::from_meta(
            path.clone(),
            &meta,
        ))])
        .await;
        let delta = i64::try_from(i128::from(meta.len) - i128::from(old_len)).unwrap_or(0);
        self.quotas.settle(quota, delta);
        self.remember_content_type(input.content_type.as_deref(), path, existing.is_some())
            .await?;
        Ok(Put::Stored {
            created: existing.is_none(),
            etag: meta.etag,
        })
    }
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// Streams the body into a new upload of `path`, within the upload limit and the quota.
    async fn receive<B: ReqBody>(
        &self,
        path: &davit_proto::href::DavPath,
        input: &PutInput,
        mut body: B,
        old_len: u64,
        quota: &mut crate::quota::Reservation,
    ) -> DavResult<S::Upload> {
        let limit = self.config.max_upload;
        // Only now is the body read: with `Expect: 100-continue`, hyper sends the 100 when
        // the body is first polled, so every refusal before goes out without it.
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, self.storage.upload(path).await?);
        let mut written: u64 = 0;
        let mut clock = super::BodyClock::start();
        while let Some(frame) = self.next_frame(&mut body, &mut clock).await? {
            if let Ok(data) = frame.into_data() {
                written += data.len() as u64;
                if limit.is_some_and(|l| written > l) {
                    return Err(DavError::TooLarge);
                }
                if !quota.is_unlimited() && written > old_len.saturating_add(quota.amount()) {
                    quota
                        .grow(&self.quotas, &self.storage, written - old_len)
                        .await?;
                }
                out.write_all(&data).await?;
            }
        }
        if let Some(n) = input.expected.filter(|n| *n != written) {
            return Err(DavError::BadRequest(format!(
                "received {written} bytes but X-Expected-Entity-Length announced {n}"
            )));
        }
        out.flush().await?;
        Ok(out.into_inner())
    }

    /// Keeps the PUT's Content-Type when it says more than the file name does (GET and
    /// `getcontenttype` then answer with it). `application/octet-stream`, which many clients
    /// send for every file, says nothing and is not kept.
    async fn remember_content_type(
        &self,
        given: Option<&str>,
        path: &davit_proto::href::DavPath,
        existed: bool,
    ) -> DavResult<()> {
        let by_name = content_type_for(path.name().unwrap_or(""));
        let given = given.map(str::trim).filter(|t| {
            t.contains('/')
                && t.len() <= 255
                && !t.eq_ignore_ascii_case(by_name)
                && !t.eq_ignore_ascii_case("application/octet-stream")
        });
        let op = match given {
            Some(t) => PropOp::Set(DeadProp {
                name: STORED_CONTENT_TYPE.clone(),
                xml: t.to_owned(),
            }),
            None if existed => PropOp::Remove(STORED_CONTENT_TYPE.clone()),
            None => return Ok(()),
        };
        self.props.patch(path, vec![op]).await?;
        Ok(())
    }
}

fn content_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
