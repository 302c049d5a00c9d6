//! The write-ahead journal of atomic batches, and the storage wrapper that fills it.
//!
//! While an atomic batch runs, its operations go through [`JournaledStorage`], which records
//! how to undo each change *before* making it (and syncs the record to disk): files and
//! collections it creates, resources it replaces or deletes (moved aside into a stash rather
//! than destroyed), and renames. Dead properties change inside one SQLite transaction that
//! commits together with a "batch committed" record. So after a crash the journal says what to
//! undo, and the commit record says whether to undo it (no record) or just drop the stashes.
//! A single COPY or MOVE is journaled the same way, as a batch of one (`handler/copymove.rs`).

use crate::storage::{CopyDepth, Failure, Meta, Storage, Upload};
use davit_proto::href::DavPath;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// One undo record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undo {
    /// Something was created at this path: remove it.
    Created(DavPath),
    /// What was at this path was moved into stash `id`: put it back.
    Stashed { id: String, path: DavPath },
    /// `from` was renamed to `to`: rename it back.
    Renamed { from: DavPath, to: DavPath },
    /// Nothing to undo: once the operation commits, the lock with this token is released
    /// (a single MOVE or COPY releases the locks of what it moved or replaced only then).
    Unlock(String),
}

impl Undo {
    fn to_line(&self) -> String {
        // Hrefs are percent-encoded, so no path can break the line or field structure.
        match self {
            Undo::Created(p) => format!("created {}\n", p.href(false)),
            Undo::Stashed { id, path } => format!("stashed {id} {}\n", path.href(false)),
            Undo::Renamed { from, to } => {
                format!("renamed {} {}\n", from.href(false), to.href(false))
            }
            // Tokens are minted by the lock store (`urn:uuid:…`): no spaces, no line breaks.
            Undo::Unlock(token) => format!("unlock {token}\n"),
        }
    }

    fn from_line(line: &str) -> Option<Undo> {
        let mut f = line.split(' ');
        let kind = f.next()?;
        let a = f.next()?;
        let b = f.next();
        match (kind, b) {
            ("created", None) => Some(Undo::Created(DavPath::parse(a).ok()?)),
            ("stashed", Some(b)) => Some(Undo::Stashed {
                id: a.to_owned(),
                path: DavPath::parse(b).ok()?,
            }),
            ("renamed", Some(b)) => Some(Undo::Renamed {
                from: DavPath::parse(a).ok()?,
                to: DavPath::parse(b).ok()?,
            }),
            ("unlock", None) => Some(Undo::Unlock(a.to_owned())),
            _ => None,
        }
    }
}

/// The journal of one atomic batch: a file of undo records, synced after every append.
#[derive(Debug)]
pub(crate) struct Journal {
    id: String,
    path: PathBuf,
    file: Mutex<std::fs::File>,
    entries: Mutex<Vec<Undo>>,
}

impl Journal {
    /// Creates the journal file for batch `id` in `dir`.
    pub(crate) fn create(dir: &Path, id: &str) -> io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{id}.journal"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        Ok(Journal {
            id: id.to_owned(),
            path,
            file: Mutex::new(file),
            entries: Mutex::new(Vec::new()),
        })
    }

    /// The batch id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Appends `undo` and syncs it to disk before the change it undoes is made; on the
    /// blocking pool, so the fsync never stalls the event loop's other connections.
    pub(crate) async fn record(self: &Arc<Self>, undo: Undo) -> io::Result<()> {
        let journal = Arc::clone(self);
        tokio::task::spawn_blocking(move || journal.record_now(undo))
            .await
            .map_err(|e| io::Error::other(format!("journal write failed: {e}")))?
    }

    fn record_now(&self, undo: Undo) -> io::Result<()> {
        let mut file = self
            .file
            .lock()
            .map_err(|_| io::Error::other("journal poisoned"))?;
        file.write_all(undo.to_line().as_bytes())?;
        file.sync_data()?;
        self.entries
            .lock()
            .map_err(|_| io::Error::other("journal poisoned"))?
            .push(undo);
        Ok(())
    }

    /// The records so far, oldest first.
    pub(crate) fn entries(&self) -> Vec<Undo> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Removes the journal file (the batch is settled).
    pub(crate) fn remove(&self) -> io::Result<()> {
        std::fs::remove_file(&self.path)
    }
}

/// Reads the journals left in `dir` by batches that never settled: (id, records, file).
pub(crate) fn leftover_journals(dir: &Path) -> io::Result<Vec<(String, Vec<Undo>, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".journal"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path)?;
        // A torn last line (crash mid-append) is ignored: its change was never made.
        let undos = text.lines().filter_map(Undo::from_line).collect();
        out.push((id.to_owned(), undos, path));
    }
    Ok(out)
}

/// Undoes `entries` (newest first) on `storage`. Best effort: every step is tried, and
/// absent resources are fine (the change it undoes may never have happened).
pub(crate) async fn roll_back<S: Storage>(storage: &S, entries: &[Undo]) {
    for undo in entries.iter().rev() {
        let result = match undo {
            Undo::Created(p) => storage.delete_tree(p).await.map(|_| ()),
            Undo::Stashed { id, path } => match storage.has_stash(id).await {
                // Whatever replaced the original goes, and the original comes back.
                Ok(true) => {
                    let _ = storage.delete_tree(path).await;
                    storage.unstash(id, path).await
                }
                // Journaled but never stashed (a crash in between): the original never
                // left, so there is nothing to undo.
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            },
            // Journaled before it was tried: if the source is still there the rename never
            // happened, and renaming back would move something else (a directory renames
            // onto an empty one) into its place.
            Undo::Renamed { from, to } => match storage.metadata(from).await {
                Err(e) if e.kind() == io::ErrorKind::NotFound => storage.rename(to, from).await,
                _ => Ok(()),
            },
            Undo::Unlock(_) => Ok(()),
        };
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(?undo, error = %e, "batch rollback step failed");
            }
        }
    }
}

/// Forgets the stashes of a committed batch.
pub(crate) async fn drop_stashes<S: Storage>(storage: &S, entries: &[Undo]) {
    for undo in entries {
        if let Undo::Stashed { id, .. } = undo {
            if let Err(e) = storage.drop_stash(id).await {
                tracing::warn!(%id, error = %e, "could not drop a batch stash");
            }
        }
    }
}

/// Storage that journals every change so it can be undone.
#[derive(Clone, Debug)]
pub(crate) struct JournaledStorage<S> {
    inner: S,
    journal: Arc<Journal>,
}

impl<S: Storage + Clone> JournaledStorage<S> {
    pub(crate) fn new(inner: S, journal: Arc<Journal>) -> Self {
        JournaledStorage { inner, journal }
    }

    /// Moves whatever is at `path` aside (journaled), so the path is free.
    async fn set_aside(&self, path: &DavPath) -> io::Result<()> {
        match self.inner.metadata(path).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.journal
            .record(Undo::Stashed {
                id: id.clone(),
                path: path.clone(),
            })
            .await?;
        self.inner.stash(path, &id).await
    }
}

impl<S: Storage + Clone> Storage for JournaledStorage<S> {
    type Read = S::Read;
    type Upload = JournaledUpload<S>;
    type StagingDir = ();
    type List = S::List;
    type Joined = Self;

    async fn metadata(&self, path: &DavPath) -> io::Result<Meta> {
        self.inner.metadata(path).await
    }

    async fn open(&self, path: &DavPath) -> io::Result<(S::Read, Meta)> {
        self.inner.open(path).await
    }

    async fn list(&self, path: &DavPath) -> io::Result<S::List> {
        self.inner.list(path).await
    }

    async fn count_tree(&self, path: &DavPath, max: u64) -> io::Result<u64> {
        self.inner.count_tree(path, max).await
    }

    async fn tree_size(&self, path: &DavPath) -> io::Result<u64> {
        self.inner.tree_size(path).await
    }

    async fn space_available(&self) -> io::Result<Option<u64>> {
        self.inner.space_available().await
    }

    async fn upload(&self, path: &DavPath) -> io::Result<JournaledUpload<S>> {
        Ok(JournaledUpload {
            inner: self.inner.upload(path).await?,
            storage: self.clone(),
            path: path.clone(),
        })
    }

    async fn create_dir(&self, path: &DavPath) -> io::Result<()> {
        self.journal.record(Undo::Created(path.clone())).await?;
        self.inner.create_dir(path).await
    }

    async fn delete_tree(&self, path: &DavPath) -> io::Result<Vec<Failure>> {
        // Deleting is stashing: the tree is only destroyed once the batch commits.
        self.inner.metadata(path).await?;
        self.set_aside(path).await?;
        Ok(Vec::new())
    }

    async fn copy_tree(
        &self,
        from: &DavPath,
        to: &DavPath,
        depth: CopyDepth,
    ) -> io::Result<Vec<Failure>> {
        self.journal.record(Undo::Created(to.clone())).await?;
        self.inner.copy_tree(from, to, depth).await
    }

    async fn rename(&self, from: &DavPath, to: &DavPath) -> io::Result<()> {
        self.journal
            .record(Undo::Renamed {
                from: from.clone(),
                to: to.clone(),
            })
            .await?;
        self.inner.rename(from, to).await
    }

    async fn touch(&self, path: &DavPath) -> io::Result<()> {
        self.inner.touch(path).await
    }

    async fn stash(&self, path: &DavPath, id: &str) -> io::Result<()> {
        self.inner.stash(path, id).await
    }

    async fn unstash(&self, id: &str, path: &DavPath) -> io::Result<()> {
        self.inner.unstash(id, path).await
    }

    async fn has_stash(&self, id: &str) -> io::Result<bool> {
        self.inner.has_stash(id).await
    }

    async fn drop_stash(&self, id: &str) -> io::Result<()> {
        self.inner.drop_stash(id).await
    }

    fn resource_id(&self, identity: &crate::storage::Identity) -> uuid::Uuid {
        self.inner.resource_id(identity)
    }

    async fn binding_index(&self) -> io::Result<crate::storage::BindingIndex> {
        self.inner.binding_index().await
    }

    fn change_feed(
        &self,
        max_watches: usize,
    ) -> Option<std::sync::Arc<dyn crate::cache::ChangeFeed>> {
        self.inner.change_feed(max_watches)
    }

    async fn bind(
        &self,
        from: &DavPath,
        to: &DavPath,
    ) -> io::Result<Result<(), crate::storage::BindRefusal>> {
        self.journal.record(Undo::Created(to.clone())).await?;
        self.inner.bind(from, to).await
    }
}

/// An upload inside an atomic batch: on commit, the file it replaces is stashed first.
pub(crate) struct JournaledUpload<S: Storage> {
    inner: S::Upload,
    storage: JournaledStorage<S>,
    path: DavPath,
}

// Nothing here is ever pinned structurally: the inner upload is `Unpin` by the `Upload` bound,
// and the storage handle is only used after the writes are done.
impl<S: Storage> Unpin for JournaledUpload<S> {}

impl<S: Storage> AsyncWrite for JournaledUpload<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Storage + Clone> Upload for JournaledUpload<S> {
    async fn commit(self) -> io::Result<Meta> {
        let existed = self.storage.inner.metadata(&self.path).await.is_ok();
        if existed {
            self.storage.set_aside(&self.path).await?;
        } else {
            self.storage
                .journal
                .record(Undo::Created(self.path.clone()))
                .await?;
        }
        self.inner.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_hostile_paths() {
        let a = DavPath::root().join("a b\n%#").unwrap();
        let b = DavPath::root().join("ü").unwrap().join("x y").unwrap();
        for u in [
            Undo::Created(a.clone()),
            Undo::Stashed {
                id: "abc".into(),
                path: b.clone(),
            },
            Undo::Renamed { from: a, to: b },
            Undo::Unlock("urn:uuid:0a1b2c3d-0000-4000-8000-000000000000".into()),
        ] {
            let line = u.to_line();
            assert_eq!(line.matches('\n').count(), 1);
            assert_eq!(Undo::from_line(line.trim_end()), Some(u));
        }
        assert_eq!(Undo::from_line("created"), None);
        assert_eq!(Undo::from_line("bogus /x"), None);
    }
}
