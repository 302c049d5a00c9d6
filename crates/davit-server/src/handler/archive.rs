//! `GET /collection/?zip`: the collection and everything below it that the user may read, as
//! one ZIP archive streamed while the files are read (`zip.rs` has the format). Nothing is
//! built in memory or on disk first; what is held is the list of members' names and sizes
//! (about a hundred bytes each, up to [`MAX_MEMBERS`]), which is what gives the response an
//! exact `Content-Length`. A file that changes length between the listing and its turn cuts
//! the download off (the client sees an incomplete transfer, never a wrong archive).

use super::{Dav, Target};
use crate::body::{self, Body};
use crate::error::{DavError, DavResult};
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::{read_into, Identity, Storage};
use crate::zip::{self, Layout, Member};
use bytes::Bytes;
use davit_proto::href::DavPath;
use futures_util::StreamExt;
use http::request::Parts;
use http::{header, HeaderValue, Response, StatusCode};
use std::collections::HashSet;
use std::io;

/// Members an archive may have: their list is kept while the archive streams.
pub(crate) const MAX_MEMBERS: usize = 200_000;

/// Bytes gathered before they go to the connection.
const CHUNK: usize = 256 * 1024;

/// A member with where its content comes from.
struct Source {
    member: Member,
    path: DavPath,
}

/// True when the request asks for the archive (`?zip`, the form dufs uses too).
pub(crate) fn wants_zip(parts: &Parts) -> bool {
    parts.uri.query() == Some("zip")
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// The archive of the collection `target` (its read access already checked).
    pub(crate) async fn zip(
        &self,
        parts: &Parts,
        target: &Target,
        identity: Identity,
        with_body: bool,
    ) -> DavResult<Response<Body>> {
        let top = match target.path.name() {
            Some(n) => n.to_owned(),
            None => super::host_of(parts)
                .map(|h| h.split(':').next().unwrap_or("").to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "davit".to_owned()),
        };
        let sources = self.members(parts, &target.path, &top, identity).await?;
        let members: Vec<Member> = sources.iter().map(|s| s.member.clone()).collect();
        let layout = Layout::of(&members);
        let mut r = Response::new(body::empty());
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/zip"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(layout.total));
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::try_from(disposition(&format!("{top}.zip")))
                .map_err(|e| super::get::internal(e.into()))?,
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if with_body {
            let (tx, body) = body::channel(4);
            let dav = self.clone();
            tokio::spawn(async move {
                if let Err(e) = dav.stream_zip(sources, members, layout, &tx).await {
                    tracing::warn!(error = %e, "zip download cut off");
                    let _ = tx.send(Err(e)).await;
                }
            });
            *r.body_mut() = body;
        }
        *r.status_mut() = StatusCode::OK;
        Ok(r)
    }

    /// The collection and its readable descendants, collections before their members; a
    /// collection reached again through another binding is left out (no loops, no twins).
    async fn members(
        &self,
        parts: &Parts,
        root: &DavPath,
        top: &str,
        identity: Identity,
    ) -> DavResult<Vec<Source>> {
        let who = super::principal(parts);
        let root_meta = self.storage.metadata(root).await?;
        let mut out = vec![Source {
            member: Member {
                name: format!("{top}/"),
                size: 0,
                modified: root_meta.modified,
            },
            path: root.clone(),
        }];
        let mut seen = HashSet::from([identity]);
        let mut pending = vec![(root.clone(), format!("{top}/"))];
        while let Some((dir, prefix)) = pending.pop() {
            let mut list = self.storage.list(&dir).await?;
            while let Some(batch) = list.next().await {
                for entry in batch? {
                    let Ok(child) = dir.join(&entry.name) else {
                        continue;
                    };
                    if !self.visible(&who, &child) {
                        continue;
                    }
                    let is_dir = entry.meta.is_dir();
                    if is_dir && !seen.insert(entry.meta.identity) {
                        continue;
                    }
                    let name = format!("{prefix}{}{}", entry.name, if is_dir { "/" } else { "" });
                    if !zip::name_fits(&name) {
                        return Err(DavError::Forbidden(
                            "a member's path is too long for a zip archive",
                        ));
                    }
                    if out.len() >= MAX_MEMBERS {
                        return Err(DavError::Forbidden(
                            "more than 200,000 members: too many for one zip download",
                        ));
                    }
                    if is_dir {
                        pending.push((child.clone(), name.clone()));
                    }
                    out.push(Source {
                        member: Member {
                            name,
                            size: if is_dir { 0 } else { entry.meta.len },
                            modified: entry.meta.modified,
                        },
                        path: child,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn stream_zip(
        &self,
        sources: Vec<Source>,
        members: Vec<Member>,
        layout: Layout,
        tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    ) -> io::Result<()> {
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 64 * 1024);
        let mut crcs = Vec::with_capacity(sources.len());
        let mut written = 0u64;
        for (i, s) in sources.iter().enumerate() {
            debug_assert_eq!(written + buf.len() as u64, layout.offsets[i]);
            zip::local_header(&s.member, &mut buf);
            let mut crc = crc32fast::Hasher::new();
            if !s.member.name.ends_with('/') {
                let (mut file, meta) = self.storage.open(&s.path).await?;
                if meta.len != s.member.size {
                    return Err(io::Error::other(format!(
                        "{} changed length while the archive was being sent",
                        s.path
                    )));
                }
                let mut left = s.member.size;
                crate::storage::prepare(&mut file).await?;
                while left > 0 {
                    let start = buf.len();
                    let want = usize::try_from(left).unwrap_or(usize::MAX).min(CHUNK);
                    let n = read_into(&mut file, &mut buf, want).await?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{} became shorter while it was being sent", s.path),
                        ));
                    }
                    crc.update(&buf[start..]);
                    left -= n as u64;
                    if buf.len() >= CHUNK {
                        written += flush(&mut buf, tx).await?;
                    }
                }
            }
            let crc = crc.finalize();
            zip::descriptor(&s.member, crc, &mut buf);
            crcs.push(crc);
            if buf.len() >= CHUNK {
                written += flush(&mut buf, tx).await?;
            }
        }
        for (i, m) in members.iter().enumerate() {
            zip::central_record(m, crcs[i], layout.offsets[i], &mut buf);
            if buf.len() >= CHUNK {
                written += flush(&mut buf, tx).await?;
            }
        }
        zip::end(
            members.len() as u64,
            layout.central_offset,
            layout.central_len,
            &mut buf,
        );
        written += flush(&mut buf, tx).await?;
        debug_assert_eq!(written, layout.total);
        Ok(())
    }
}

/// Sends what `buf` holds; the length sent.
async fn flush(
    buf: &mut Vec<u8>,
    tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<u64> {
    let n = buf.len() as u64;
    let chunk = Bytes::from(std::mem::replace(
        buf,
        Vec::with_capacity(CHUNK + 64 * 1024),
    ));
    tx.send(Ok(chunk))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))?;
    Ok(n)
}

/// `attachment` with an ASCII fallback name and the exact one in RFC 8187 form.
fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut exact = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            exact.push(b as char);
        } else {
            exact.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::disposition;

    #[test]
    fn disposition_names_are_quoted_and_encoded() {
        assert_eq!(
            disposition("Folder ü\".zip"),
            "attachment; filename=\"Folder __.zip\"; filename*=UTF-8''Folder%20%C3%BC%22.zip"
        );
    }
}
