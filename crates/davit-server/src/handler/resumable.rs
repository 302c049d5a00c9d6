//! Resumable uploads, after the IETF httpbis draft "Resumable Uploads for HTTP": a PUT with
//! `Upload-Complete: ?0` does not write its target but creates an *upload resource* under
//! [`UPLOADS_PREFIX`], whose bytes are kept in the state directory. The client asks it how
//! much arrived (`HEAD`: `Upload-Offset`), sends the rest from there (`PATCH` with
//! `Upload-Offset`, any number of times, each keeping what arrived even when the connection
//! breaks), and with `Upload-Complete: ?1` on the last append the whole body becomes the
//! target through an ordinary PUT (every check of a PUT runs again then: access, locks, quota,
//! the parent collection), answered as that PUT is. Until then nothing is at the target, and
//! the upload is visible to no listing and to no other user. `DELETE` cancels; unfinished
//! uploads expire after `upload_expire_secs`. The draft's 104 interim response is not sent.

use super::{principal, Dav, ReqBody, Target};
use crate::auth::Principal;
use crate::body::{self, Body};
use crate::error::{DavError, DavResult};
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::Storage;
use futures_util::TryStreamExt;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;

/// Where upload resources live: `/.davit/uploads/<id>`, never a path of the share.
pub(crate) const UPLOADS_PREFIX: &str = "/.davit/uploads/";

/// Methods an upload resource answers.
const ALLOW_UPLOAD: &str = "HEAD, PATCH, DELETE";

/// What is kept beside an upload's bytes.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The target's path, percent-encoded (as in a request line).
    target: String,
    /// The user who created it (`None`: anonymous); only they may see or change it.
    user: Option<String>,
    /// Seconds since the epoch.
    created: u64,
    /// The whole length, when the client said (`Upload-Length`).
    length: Option<u64>,
    /// The creating request's Content-Type, handed to the final PUT.
    content_type: Option<String>,
}

/// The state-directory half of resumable uploads.
#[derive(Debug)]
pub(crate) struct Uploads {
    dir: PathBuf,
    /// Ids with an append or a commit in progress: a second one at once gets 409.
    busy: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Uploads {
    pub(crate) fn new(dir: PathBuf) -> Uploads {
        Uploads {
            dir,
            busy: Default::default(),
        }
    }

    fn part(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Removes uploads older than `max_age` (at start-up).
    pub(crate) fn sweep_expired(&self, max_age: Duration) -> io::Result<()> {
        self.sweep(max_age).map(|_| ())
    }

    /// Removes uploads older than `max_age`; returns how many are left.
    fn sweep(&self, max_age: Duration) -> io::Result<usize> {
        let now = now_secs();
        let mut left = 0;
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let created = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
                .map_or(0, |r| r.created);
            if now.saturating_sub(created) > max_age.as_secs() {
                let _ = std::fs::remove_file(path.with_extension("part"));
                let _ = std::fs::remove_file(&path);
            } else {
                left += 1;
            }
        }
        Ok(left)
    }
}

/// Releases an id's busy mark when the request ends, however it ends.
struct Busy<'a> {
    uploads: &'a Uploads,
    id: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Ok(mut b) = self.uploads.busy.lock() {
            b.remove(&self.id);
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The value of a structured-field boolean header (`?1` / `?0`), if present and valid.
fn sf_bool(headers: &HeaderMap, name: &str) -> DavResult<Option<bool>> {
    match headers.get(name).map(|v| v.as_bytes()) {
        None => Ok(None),
        Some(b"?1") => Ok(Some(true)),
        Some(b"?0") => Ok(Some(false)),
        Some(_) => Err(DavError::BadRequest(format!("{name} must be ?0 or ?1"))),
    }
}

fn sf_integer(headers: &HeaderMap, name: &str) -> DavResult<Option<u64>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| DavError::BadRequest(format!("{name} must be a non-negative integer"))),
    }
}

/// True for a PUT that starts a resumable upload rather than writing its target.
pub(crate) fn starts_upload(parts: &Parts) -> DavResult<bool> {
    Ok(sf_bool(&parts.headers, "upload-complete")? == Some(false))
}

fn user_of(who: &Principal) -> Option<String> {
    match who {
        Principal::User(u) => Some(u.clone()),
        Principal::Anonymous => None,
    }
}

/// An id is 32 lowercase hex digits (what `create_upload` makes); anything else is no upload.
fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

async fn sync_len(path: &Path) -> io::Result<u64> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new().append(true).open(&path)?;
        f.sync_data()?;
        Ok(f.metadata()?.len())
    })
    .await
    .map_err(io::Error::other)?
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// A PUT with `Upload-Complete: ?0` whose checks passed: makes the upload resource and
    /// keeps whatever body came with the request.
    pub(crate) async fn create_upload<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
    ) -> DavResult<Response<Body>> {
        let Some(uploads) = &self.uploads else {
            return Err(DavError::NotImplemented);
        };
        let length = sf_integer(&parts.headers, "upload-length")?;
        if let (Some(limit), Some(n)) = (self.config.max_upload, length) {
            if n > limit {
                return Err(DavError::TooLarge);
            }
        }
        tokio::fs::create_dir_all(&uploads.dir).await?;
        let dir = uploads.dir.clone();
        let expire = Duration::from_secs(self.config.upload_expire_secs);
        let left = tokio::task::spawn_blocking(move || Uploads::new(dir).sweep(expire))
            .await
            .map_err(io::Error::other)??;
        if left >= self.config.max_unfinished_uploads {
            return Err(DavError::InsufficientStorage);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let record = Record {
            target: target.path.href(false),
            user: user_of(&principal(parts)),
            created: now_secs(),
            length,
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        let json = serde_json::to_vec(&record).map_err(io::Error::other)?;
        tokio::fs::File::create_new(uploads.part(&id)).await?;
        tokio::fs::write(uploads.record_path(&id), json).await?;
        let offset = self.append(uploads, &id, 0, length, body).await?;
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::CREATED;
        let h = r.headers_mut();
        h.insert(
            header::LOCATION,
            HeaderValue::try_from(format!("{UPLOADS_PREFIX}{id}"))
                .map_err(|e| super::get::internal(e.into()))?,
        );
        h.insert("upload-offset", HeaderValue::from(offset));
        h.insert("upload-complete", HeaderValue::from_static("?0"));
        if let Some(n) = length {
            h.insert("upload-length", HeaderValue::from(n));
        }
        Ok(r)
    }

    /// Appends the body to the upload's bytes, from `offset` on; the new length. What arrives
    /// before the connection breaks is kept and synced to disk.
    async fn append<B: ReqBody>(
        &self,
        uploads: &Uploads,
        id: &str,
        offset: u64,
        length: Option<u64>,
        mut body: B,
    ) -> DavResult<u64> {
        let part = uploads.part(id);
        let file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&part)
            .await?;
        let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut written = offset;
        let mut clock = super::BodyClock::start();
        let limit = self.config.max_upload;
        let result: DavResult<()> = async {
            while let Some(frame) = self.next_frame(&mut body, &mut clock).await? {
                if let Ok(data) = frame.into_data() {
                    written += data.len() as u64;
                    if limit.is_some_and(|l| written > l) {
                        return Err(DavError::TooLarge);
                    }
                    if length.is_some_and(|n| written > n) {
                        return Err(DavError::Conflict(
                            "more bytes than the announced Upload-Length",
                        ));
                    }
                    out.write_all(&data).await?;
                }
            }
            Ok(())
        }
        .await;
        // Whatever happened, what was written stays and is on disk before anyone is told
        // its length (a too-long append is cut back to where it started).
        let flushed = out.flush().await;
        drop(out);
        if matches!(result, Err(DavError::TooLarge | DavError::Conflict(_))) {
            let f = std::fs::OpenOptions::new().write(true).open(&part)?;
            f.set_len(offset)?;
        }
        flushed?;
        let len = sync_len(&part).await?;
        result.map(|()| len)
    }

    /// A request to `/.davit/uploads/<id>`.
    pub(crate) async fn upload_resource<B: ReqBody>(
        &self,
        parts: &Parts,
        id: &str,
        body: B,
    ) -> DavResult<Response<Body>> {
        let Some(uploads) = &self.uploads else {
            return Err(DavError::NotFound);
        };
        if !valid_id(id) {
            return Err(DavError::NotFound);
        }
        // Someone else's upload, or none: the same 404.
        let record: Record = match tokio::fs::read(uploads.record_path(id)).await {
            Ok(b) => serde_json::from_slice(&b).map_err(|_| DavError::NotFound)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DavError::NotFound),
            Err(e) => return Err(e.into()),
        };
        // Credentials first (401 without them), then the upload is its creator's alone.
        let target = davit_proto::href::DavPath::parse(&record.target)?;
        self.authorize(parts, &target, crate::auth::Access::ReadWrite, false)?;
        if record.user != user_of(&principal(parts)) {
            return Err(DavError::NotFound);
        }
        let offset = tokio::fs::metadata(uploads.part(id)).await?.len();
        match parts.method {
            Method::HEAD => {
                let mut r = Response::new(body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                let h = r.headers_mut();
                h.insert("upload-offset", HeaderValue::from(offset));
                h.insert("upload-complete", HeaderValue::from_static("?0"));
                if let Some(n) = record.length {
                    h.insert("upload-length", HeaderValue::from(n));
                }
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Ok(r)
            }
            Method::DELETE => {
                let _busy = self.claim(uploads, id)?;
                let _ = tokio::fs::remove_file(uploads.part(id)).await;
                tokio::fs::remove_file(uploads.record_path(id)).await?;
                let mut r = Response::new(body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                Ok(r)
            }
            ref m if m.as_str() == "PATCH" => {
                let _busy = self.claim(uploads, id)?;
                if let Some(t) = parts.headers.get(header::CONTENT_TYPE) {
                    if t.as_bytes() != b"application/partial-upload" {
                        return Err(DavError::UnsupportedMediaType(
                            "an append's Content-Type is application/partial-upload",
                        ));
                    }
                }
                let Some(claimed) = sf_integer(&parts.headers, "upload-offset")? else {
                    return Err(DavError::BadRequest("an append needs Upload-Offset".into()));
                };
                if claimed != offset {
                    let mut r = DavError::Conflict("Upload-Offset is not where the upload is")
                        .into_response();
                    r.headers_mut()
                        .insert("upload-offset", HeaderValue::from(offset));
                    return Ok(r);
                }
                let complete = sf_bool(&parts.headers, "upload-complete")?.unwrap_or(true);
                let length = sf_integer(&parts.headers, "upload-length")?.or(record.length);
                let offset = self.append(uploads, id, offset, length, body).await?;
                if !complete {
                    let mut r = Response::new(body::empty());
                    *r.status_mut() = StatusCode::NO_CONTENT;
                    r.headers_mut()
                        .insert("upload-offset", HeaderValue::from(offset));
                    r.headers_mut()
                        .insert("upload-complete", HeaderValue::from_static("?0"));
                    return Ok(r);
                }
                if length.is_some_and(|n| n != offset) {
                    return Err(DavError::Conflict(
                        "the upload is shorter than its announced Upload-Length",
                    ));
                }
                self.commit_upload(parts, uploads, id, &record).await
            }
            _ => Err(DavError::MethodNotAllowed(ALLOW_UPLOAD)),
        }
    }

    fn claim<'u>(&self, uploads: &'u Uploads, id: &str) -> DavResult<Busy<'u>> {
        let mut busy = uploads
            .busy
            .lock()
            .map_err(|_| io::Error::other("upload registry poisoned"))?;
        if !busy.insert(id.to_owned()) {
            return Err(DavError::Conflict(
                "another request is appending to this upload",
            ));
        }
        Ok(Busy {
            uploads,
            id: id.to_owned(),
        })
    }

    /// The whole upload becomes its target through an ordinary PUT (made by the same user,
    /// with the completing request's If header for locks); the upload goes only if that PUT
    /// succeeded, so a 423 or a 507 can be fixed and the commit sent again.
    async fn commit_upload(
        &self,
        parts: &Parts,
        uploads: &Uploads,
        id: &str,
        record: &Record,
    ) -> DavResult<Response<Body>> {
        let path = davit_proto::href::DavPath::parse(&record.target)?;
        let part = uploads.part(id);
        let file = tokio::fs::File::open(&part).await?;
        let len = file.metadata().await?.len();
        let mut req = Request::builder()
            .method(Method::PUT)
            .uri(path.href(false))
            .header(header::CONTENT_LENGTH, len);
        for name in [header::HOST, header::HeaderName::from_static("if")] {
            if let Some(v) = parts.headers.get(&name) {
                req = req.header(name, v);
            }
        }
        if let Some(t) = &record.content_type {
            req = req.header(header::CONTENT_TYPE, t.as_str());
        }
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
            .map_ok(http_body::Frame::data);
        let req = req
            .body(http_body_util::StreamBody::new(stream))
            .map_err(super::get::internal)?;
        let (mut put_parts, put_body) = req.into_parts();
        put_parts.extensions = parts.extensions.clone();
        let resp = self.dispatch_op(put_parts, put_body).await?;
        if resp.status().is_success() {
            let _ = tokio::fs::remove_file(&part).await;
            let _ = tokio::fs::remove_file(uploads.record_path(id)).await;
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_as_structured_fields() {
        let mut h = HeaderMap::new();
        assert_eq!(sf_bool(&h, "upload-complete").ok(), Some(None));
        h.insert("upload-complete", HeaderValue::from_static("?0"));
        assert_eq!(sf_bool(&h, "upload-complete").ok(), Some(Some(false)));
        h.insert("upload-complete", HeaderValue::from_static("true"));
        assert!(sf_bool(&h, "upload-complete").is_err());
        h.insert("upload-offset", HeaderValue::from_static("1234"));
        assert_eq!(sf_integer(&h, "upload-offset").ok(), Some(Some(1234)));
        h.insert("upload-offset", HeaderValue::from_static("-1"));
        assert!(sf_integer(&h, "upload-offset").is_err());
        assert!(valid_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_id("../../etc/passwd"));
        assert!(!valid_id("0123456789ABCDEF0123456789ABCDEF"));
    }

    #[test]
    fn expired_uploads_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let u = Uploads::new(dir.path().to_owned());
        let write = |id: &str, created: u64| {
            std::fs::write(u.part(id), b"x").unwrap();
            let r = Record {
                target: "/f".into(),
                user: None,
                created,
                length: None,
                content_type: None,
            };
            std::fs::write(u.record_path(id), serde_json::to_vec(&r).unwrap()).unwrap();
        };
        write("a", now_secs() - 100);
        write("b", now_secs() - 10);
        assert_eq!(u.sweep(Duration::from_secs(50)).unwrap(), 1);
        assert!(!u.part("a").exists() && !u.record_path("a").exists());
        assert!(u.part("b").exists() && u.record_path("b").exists());
    }
}
