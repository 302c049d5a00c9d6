//! GET and HEAD: files streamed from storage with validators, conditionals and ranges;
//! collections as a plain HTML index streamed while the directory is read, or, for a browser
//! (`Accept: text/html`), the web interface's page (`ui.rs`).

use super::{response, Dav, Target};
use crate::body::{self, Body};
use crate::cache::{CachedFile, FileEntry};
use crate::error::{DavError, DavResult};
use crate::live::{clamp_to_now, content_type_for, stored_type};
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::{prepare, read_into, FileRead, Meta, Storage};
use bytes::Bytes;
use davit_proto::conditional::{self, Validators};
use davit_proto::date::http_date;
use davit_proto::href::DavPath;
use davit_proto::range::{self, ByteRange, Multipart, RangeOutcome};
use davit_proto::xml::escape_text;
use futures_util::StreamExt;
use http::request::Parts;
use http::{header, HeaderValue, Method, Response, StatusCode};
use std::io::SeekFrom;
use std::sync::Arc;
use tokio::io::AsyncSeekExt;

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn get(
        &self,
        parts: &Parts,
        target: &Target,
        with_body: bool,
    ) -> DavResult<Response<Body>> {
        // Small files come from the cache when it has them (range requests go to storage).
        let mut fill = None;
        if let Some(cache) = &self.cache {
            if !target.slash && !parts.headers.contains_key(header::RANGE) {
                let version = cache.version().await;
                match cache.file(&target.path, version) {
                    Some(FileEntry::Small(f)) => {
                        return self.serve_cached(parts, target, &f, with_body).await;
                    }
                    Some(FileEntry::Large) => {}
                    // Watched before the file is opened: a change made meanwhile is noticed.
                    None => fill = cache.begin(&target.path, false, version),
                }
            }
        }
        // Open first and describe what was opened: one path resolution on the hot path, and a
        // concurrent PUT can never pair one version's length and ETag with another's bytes.
        // A collection either opens as one (and says so) or refuses to open as a file.
        let opened = match self.storage.open(&target.path).await {
            Ok(o) => Some(o),
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => None,
            Err(e) if super::is_absent(&e) => return Err(DavError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let (mut file, mut meta) = match opened {
            Some((file, meta)) if !meta.is_dir() => {
                if target.slash {
                    // A file addressed as a collection is not mapped.
                    return Err(DavError::NotFound);
                }
                (file, meta)
            }
            _ => {
                let meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
                self.check_preconditions(parts, target, Some(&meta), &[])
                    .await?;
                if super::archive::wants_zip(parts) {
                    return self.zip(parts, target, meta.identity, with_body).await;
                }
                if super::ui::wants_html(&parts.headers) {
                    return Ok(self.ui_page(with_body));
                }
                return self.index(parts, target, with_body).await;
            }
        };
        if let (Some(cache), Some(fill)) = (&self.cache, fill) {
            if meta.len > cache.limits().max_file_bytes {
                cache.keep_file(fill, FileEntry::Large);
            } else if let Some(f) = self.read_small(&mut file, &target.path, meta).await? {
                cache.keep_file(fill, FileEntry::Small(f.clone()));
                return self.serve_cached(parts, target, &f, with_body).await;
            } else {
                // It changed while it was read: answer from storage as it is now, keep nothing.
                let (again, now) = self.storage.open(&target.path).await?;
                if now.is_dir() {
                    return Err(DavError::Conflict("replaced by a collection meanwhile"));
                }
                (file, meta) = (again, now);
            }
        }
        let not_modified = self
            .check_preconditions(parts, target, Some(&meta), &[])
            .await?;
        // The response is put together directly rather than through `http`'s builder, which
        // re-checks and moves the whole head with every header (7 % of a small GET's
        // instructions).
        let last_modified = HeaderValue::try_from(http_date(clamp_to_now(meta.modified)))
            .map_err(|e| internal(e.into()))?;
        let etag = header_value(&meta.etag)?;
        let dead = self
            .props
            .get_many(vec![target.path.clone()])
            .await?
            .pop()
            .unwrap_or_default();
        let stored = stored_type(&dead);
        let by_name = content_type_for(target.path.name().unwrap_or(""));
        let ctype = stored.unwrap_or(by_name);
        let head = |status: StatusCode, body: Body| {
            let mut r = Response::new(body);
            *r.status_mut() = status;
            // Room for these, the body's two, and the server's Server and X-Request-Id: no
            // growing the map on the way out.
            *r.headers_mut() = http::HeaderMap::with_capacity(8);
            let h = r.headers_mut();
            h.insert(header::ETAG, etag.clone());
            h.insert(header::LAST_MODIFIED, last_modified.clone());
            h.insert(header::ACCEPT_RANGES, ACCEPT_BYTES);
            r
        };
        if not_modified {
            return Ok(head(StatusCode::NOT_MODIFIED, body::empty()));
        }
        let ranges = match requested_ranges(parts, &meta) {
            RangeOutcome::Full => None,
            RangeOutcome::Partial(r) => Some(r),
            RangeOutcome::Unsatisfiable => {
                let mut r = head(StatusCode::RANGE_NOT_SATISFIABLE, body::empty());
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_RANGE,
                    header_value(&range::unsatisfied_content_range(meta.len))?,
                );
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
                return Ok(r);
            }
        };
        let (mut r, length, content_type) = match ranges.as_deref() {
            None => {
                let body = if with_body {
                    prepare(&mut file).await?;
                    body::reader(file, meta.len)
                } else {
                    body::empty()
                };
                let r = head(StatusCode::OK, body);
                (r, meta.len, ctype_value(stored, by_name)?)
            }
            Some([one]) => {
                let body = if with_body {
                    file.seek(SeekFrom::Start(one.start)).await?;
                    prepare(&mut file).await?;
                    body::reader(file, one.len())
                } else {
                    body::empty()
                };
                let mut r = head(StatusCode::PARTIAL_CONTENT, body);
                r.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(&one.content_range(meta.len))?,
                );
                (r, one.len(), ctype_value(stored, by_name)?)
            }
            Some(many) => {
                let mp = Multipart::new(uuid::Uuid::new_v4().simple().to_string());
                let len = mp.body_len(ctype, many, meta.len);
                let body = if with_body {
                    if let Some(first) = many.first() {
                        file.seek(SeekFrom::Start(first.start)).await?;
                        prepare(&mut file).await?;
                    }
                    multipart_body(file, multipart_pieces(&mp, ctype, many, meta.len))
                } else {
                    body::empty()
                };
                let r = head(StatusCode::PARTIAL_CONTENT, body);
                (r, len, header_value(&mp.content_type())?)
            }
        };
        body_headers(&mut r, parts, ctype, content_type, length);
        Ok(r)
    }

    /// A small file read whole with its stored content type, or `None` when its length is
    /// not the one it was opened with (written meanwhile).
    async fn read_small(
        &self,
        file: &mut S::Read,
        path: &DavPath,
        meta: Meta,
    ) -> DavResult<Option<Arc<CachedFile>>> {
        let Ok(len) = usize::try_from(meta.len) else {
            return Ok(None);
        };
        let mut buf = Vec::with_capacity(len + 1);
        prepare(file).await?;
        // One byte more than expected tells a file that grew.
        while buf.len() <= len {
            let room = len + 1 - buf.len();
            if read_into(file, &mut buf, room).await? == 0 {
                break;
            }
        }
        if buf.len() != len {
            return Ok(None);
        }
        let dead = self
            .props
            .get_many(vec![path.clone()])
            .await?
            .pop()
            .unwrap_or_default();
        Ok(Some(Arc::new(CachedFile {
            meta,
            stored_type: stored_type(&dead).map(str::to_owned),
            body: Bytes::from(buf),
        })))
    }

    /// GET or HEAD of a file the cache holds: the same answer storage would give.
    async fn serve_cached(
        &self,
        parts: &Parts,
        target: &Target,
        f: &CachedFile,
        with_body: bool,
    ) -> DavResult<Response<Body>> {
        let not_modified = self
            .check_preconditions(parts, target, Some(&f.meta), &[])
            .await?;
        let status = if not_modified {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::OK
        };
        let body = if with_body && !not_modified {
            body::full(f.body.clone())
        } else {
            body::empty()
        };
        let mut r = Response::new(body);
        *r.status_mut() = status;
        *r.headers_mut() = http::HeaderMap::with_capacity(8);
        let h = r.headers_mut();
        h.insert(header::ETAG, header_value(&f.meta.etag)?);
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::try_from(http_date(clamp_to_now(f.meta.modified)))
                .map_err(|e| internal(e.into()))?,
        );
        h.insert(header::ACCEPT_RANGES, ACCEPT_BYTES);
        if not_modified {
            return Ok(r);
        }
        let stored = f.stored_type.as_deref();
        let by_name = content_type_for(target.path.name().unwrap_or(""));
        let ctype = stored.unwrap_or(by_name);
        let value = ctype_value(stored, by_name)?;
        body_headers(&mut r, parts, ctype, value, f.meta.len);
        Ok(r)
    }

    /// A plain HTML index of a collection, written while the directory is read.
    async fn index(
        &self,
        parts: &Parts,
        target: &Target,
        with_body: bool,
    ) -> DavResult<Response<Body>> {
        let builder =
            response(StatusCode::OK).header(header::CONTENT_TYPE, "text/html; charset=utf-8");
        if !with_body {
            return builder.body(body::empty()).map_err(internal);
        }
        let mut list = self.storage.list(&target.path).await?;
        let (tx, body) = body::channel(4);
        let title = target.path.href(true);
        let parent = target.path.parent();
        let path = target.path.clone();
        let dav = self.clone();
        let who = super::principal(parts);
        tokio::spawn(async move {
            let mut page = String::from(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ",
            );
            escape_text(&title, &mut page);
            page.push_str("</title></head><body><h1>Index of ");
            escape_text(&title, &mut page);
            page.push_str("</h1><ul>\n");
            if let Some(p) = parent {
                page.push_str("<li><a href=\"");
                escape_text(&p.href(true), &mut page);
                page.push_str("\">../</a></li>\n");
            }
            while let Some(batch) = list.next().await {
                let Ok(batch) = batch else { break };
                for e in batch {
                    let Ok(child) = path.join(&e.name) else {
                        continue;
                    };
                    if !dav.visible(&who, &child) {
                        continue;
                    }
                    page.push_str("<li><a href=\"");
                    escape_text(&child.href(e.meta.is_dir()), &mut page);
                    page.push_str("\">");
                    escape_text(&e.name, &mut page);
                    if e.meta.is_dir() {
                        page.push('/');
                    }
                    page.push_str("</a></li>\n");
                }
                if tx
                    .send(Ok(Bytes::from(std::mem::take(&mut page))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            page.push_str("</ul></body></html>\n");
            let _ = tx.send(Ok(Bytes::from(page))).await;
        });
        builder.body(body).map_err(internal)
    }
}

/// The Range a GET should honour: only for GET, only when If-Range (if any) still matches.
fn requested_ranges(parts: &Parts, meta: &Meta) -> RangeOutcome {
    if parts.method != Method::GET {
        return RangeOutcome::Full;
    }
    let Some(value) = parts
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return RangeOutcome::Full;
    };
    if let Some(if_range) = parts
        .headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        let v = Validators {
            exists: true,
            etag: Some(&meta.etag),
            last_modified: Some(meta.modified),
        };
        if !conditional::if_range_matches(if_range, &v) {
            return RangeOutcome::Full;
        }
    }
    range::parse_range(value, meta.len)
}

const ACCEPT_BYTES: HeaderValue = HeaderValue::from_static("bytes");

/// The headers describing a response's body: its type and length, and the sandbox a browser
/// shows it in.
fn body_headers(
    r: &mut Response<Body>,
    parts: &Parts,
    ctype: &str,
    content_type: HeaderValue,
    length: u64,
) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    // A stored file opened in a browser is shown, never run: an uploaded page or SVG must
    // not run script as the server's origin, with the user's login. PDFs are left out:
    // browsers refuse to show them in a sandbox, and their viewer runs none of their code
    // as the page's.
    if ctype != "application/pdf" && super::ui::wants_html(&parts.headers) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        );
    }
}

/// A header value from text the server made; 500 if it cannot be one.
fn header_value(text: &str) -> DavResult<HeaderValue> {
    HeaderValue::from_str(text).map_err(|e| internal(e.into()))
}

/// The Content-Type value: the stored one, or the one for the name (static text, not copied).
fn ctype_value(stored: Option<&str>, by_name: &'static str) -> DavResult<HeaderValue> {
    match stored {
        Some(t) => header_value(t),
        None => HeaderValue::from_maybe_shared(Bytes::from_static(by_name.as_bytes()))
            .map_err(|e| internal(e.into())),
    }
}

pub(crate) fn internal(e: http::Error) -> DavError {
    DavError::Io(std::io::Error::other(e))
}

/// Each part's header with its range, and the closing boundary.
fn multipart_pieces(
    mp: &Multipart,
    ctype: &str,
    ranges: &[ByteRange],
    total: u64,
) -> (Vec<(String, ByteRange)>, String) {
    let pieces = ranges
        .iter()
        .map(|r| (mp.part_header(ctype, r, total), *r))
        .collect();
    (pieces, mp.trailer())
}

/// Streams the parts of a multipart/byteranges body, one range after the other.
fn multipart_body<R: FileRead>(file: R, parts: (Vec<(String, ByteRange)>, String)) -> Body {
    let (tx, body) = body::channel(4);
    let (pieces, trailer) = parts;
    tokio::spawn(async move {
        let mut file = file;
        for (head, r) in pieces {
            if tx.send(Ok(Bytes::from(head))).await.is_err() {
                return;
            }
            if let Err(e) = file.seek(SeekFrom::Start(r.start)).await {
                let _ = tx.send(Err(e)).await;
                return;
            }
            let mut left = r.len();
            while left > 0 {
                let max = usize::try_from(left).map_or(64 * 1024, |l| l.min(64 * 1024));
                let mut chunk = Vec::with_capacity(max);
                match read_into(&mut file, &mut chunk, max).await {
                    Ok(0) => {
                        let _ = tx.send(Err(std::io::ErrorKind::UnexpectedEof.into())).await;
                        return;
                    }
                    Ok(n) => {
                        left -= n as u64;
                        if tx.send(Ok(chunk.into())).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Ok(Bytes::from(trailer))).await;
    });
    body
}
