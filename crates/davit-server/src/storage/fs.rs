//! The local-filesystem backend.
//!
//! Confinement: every path is joined to the canonical root from validated segments. A path
//! without symlinks is opened beneath the root in one system call (see `beneath`); one with
//! symlinks is resolved with `canonicalize`, so that a symlink pointing outside the root (or
//! into the server's own state directory) reads as absent. A new file's upload is written to an
//! unnamed file in its directory (`O_TMPFILE`) and linked in when whole; one that replaces a file
//! is written to a temporary file in the state directory and renamed over it. Readers never see
//! half a file, and an aborted upload leaves nothing behind.

use super::beneath::{Beneath, Purpose};
use super::{
    BindRefusal, Binding, BindingIndex, CopyDepth, Entry, Failure, Identity, Kind, Meta, Storage,
    Upload,
};
use davit_proto::href::DavPath;
use futures_util::Stream;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};
use tokio::io::AsyncWrite;

/// How many members a listing batch holds: large enough to amortise the hand-off between
/// threads, small enough that memory stays flat.
const LIST_BATCH: usize = 256;

/// Files and directories under one root directory.
#[derive(Clone, Debug)]
pub struct FsStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// The server's own state directory, never visible to clients.
    state: PathBuf,
    /// `state` relative to the root (`/`-separated) when it lies inside it.
    state_relative: Option<String>,
    tmp: PathBuf,
    /// Names the named temporary files of uploads: a random prefix for this process and a
    /// counter (cheaper than a random name per upload).
    temp_names: (u64, std::sync::atomic::AtomicU64),
    /// Whether uploads can be staged as unnamed files in the target's directory
    /// (`O_TMPFILE`, then `linkat`): probed at start-up.
    unnamed_uploads: bool,
    stash: PathBuf,
    beneath: Beneath,
    /// The state directory's name, device and inode: it is left out of listings of its parent
    /// however that parent is reached (through a symlink too).
    state_entry: Option<(std::ffi::OsString, u64, u64)>,
    /// Mixed into every resource id, so that two stores never share ids (kept in the state
    /// directory: ids survive restarts).
    id_key: [u8; 16],
}

impl FsStorage {
    /// Serves `root`; `state_dir` holds davit's own files (temporary uploads). If it lies
    /// inside `root` it is hidden from clients. Leftover temporary files from a crash are
    /// removed here.
    pub fn new(root: &Path, state_dir: &Path) -> io::Result<FsStorage> {
        let root = std::fs::canonicalize(root)?;
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "root is not a directory",
            ));
        }
        std::fs::create_dir_all(state_dir)?;
        let state = std::fs::canonicalize(state_dir)?;
        let tmp = state.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        // Stashes are kept: an interrupted atomic batch may still need them at recovery.
        let stash = state.join("stash");
        std::fs::create_dir_all(&stash)?;
        let state_relative = state
            .strip_prefix(&root)
            .ok()
            .and_then(|r| r.to_str())
            .map(str::to_owned);
        let beneath = Beneath::new(&root)?;
        let state_entry = match (state_relative.as_ref(), state.file_name()) {
            (Some(_), Some(name)) => {
                let md = std::fs::metadata(&state)?;
                Some((name.to_owned(), md.dev(), md.ino()))
            }
            _ => None,
        };
        let id_key = id_key(&state)?;
        let unnamed_uploads = unnamed::works_in(&tmp);
        let nonce = uuid::Uuid::new_v4().as_u64_pair().0;
        Ok(FsStorage {
            inner: Arc::new(Inner {
                root,
                state,
                state_relative,
                tmp,
                temp_names: (nonce, std::sync::atomic::AtomicU64::new(0)),
                unnamed_uploads,
                stash,
                beneath,
                state_entry,
                id_key,
            }),
        })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }
}

impl Inner {
    fn join(&self, path: &DavPath) -> PathBuf {
        let mut full = self.root.clone();
        full.extend(path.segments());
        full
    }

    fn allowed(&self, canonical: &Path) -> bool {
        canonical.starts_with(&self.root) && !canonical.starts_with(&self.state)
    }

    /// The filesystem path of an existing resource, following symlinks only within the root.
    fn existing(&self, path: &DavPath) -> io::Result<PathBuf> {
        match self.open_direct(path, Purpose::Locate) {
            Some(opened) => opened.map(|_| self.join(path)),
            None => self.existing_via_canonical(path),
        }
    }

    fn existing_via_canonical(&self, path: &DavPath) -> io::Result<PathBuf> {
        let full = self.join(path);
        let canonical = std::fs::canonicalize(&full)?;
        if self.allowed(&canonical) {
            Ok(full)
        } else {
            Err(io::ErrorKind::NotFound.into())
        }
    }

    /// Opens `path` in one system call when no symlink is on the way; `None` otherwise.
    fn open_direct(&self, path: &DavPath, purpose: Purpose) -> Option<io::Result<std::fs::File>> {
        let relative = relative(path);
        if self.is_state(&relative) {
            return Some(Err(io::ErrorKind::NotFound.into()));
        }
        self.beneath.open(&relative, purpose)
    }

    /// Whether `relative` (`a/b`) names the state directory or something in it.
    fn is_state(&self, relative: &str) -> bool {
        self.state_relative.as_deref().is_some_and(|state| {
            relative
                .strip_prefix(state)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// The name to leave out when listing directory `full`: the state directory's, when
    /// `full` is its parent (compared once per directory, not once per member).
    fn hidden_member(&self, full: &Path) -> Option<&std::ffi::OsStr> {
        if self.state.parent() == Some(full) {
            self.state.file_name()
        } else {
            None
        }
    }

    /// Whether a directory entry is the state directory (compared by name first: one
    /// comparison per member, the metadata only on a match).
    fn is_state_entry(&self, name: &str, md: &std::fs::Metadata) -> bool {
        self.state_entry.as_ref().is_some_and(|(state, dev, ino)| {
            *state == *name && md.dev() == *dev && md.ino() == *ino
        })
    }

    /// Whether `path`, taken literally (no symlinks followed), is the state directory or in it.
    fn hidden(&self, path: &DavPath) -> bool {
        self.is_state(&relative(path))
    }

    /// The filesystem path for a resource about to be created: its parent must be an allowed
    /// directory.
    fn creatable(&self, path: &DavPath) -> io::Result<PathBuf> {
        if self.hidden(path) {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        let parent = path.parent().ok_or(io::ErrorKind::PermissionDenied)?;
        let parent_full = self.existing(&parent)?;
        if !std::fs::metadata(&parent_full)?.is_dir() {
            return Err(io::ErrorKind::NotADirectory.into());
        }
        Ok(self.join(path))
    }
}

/// `path` relative to the root: `a/b`, or `.` for the root itself.
fn relative(path: &DavPath) -> String {
    let mut relative = String::with_capacity(path.as_str().len());
    for segment in path.segments() {
        if !relative.is_empty() {
            relative.push('/');
        }
        relative.push_str(segment);
    }
    if relative.is_empty() {
        relative.push('.');
    }
    relative
}

/// Opens `full` for reading without waiting for a FIFO's writer (see `beneath.rs`).
fn open_for_reading(full: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    options.open(full)
}

/// The store's resource-id key, made once and kept in `state/store-key`.
fn id_key(state: &Path) -> io::Result<[u8; 16]> {
    let file = state.join("store-key");
    let parse = |text: &str| {
        uuid::Uuid::parse_str(text.trim())
            .ok()
            .map(|u| *u.as_bytes())
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => parse(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a UUID", file.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = uuid::Uuid::new_v4();
            let tmp = state.join("store-key.tmp");
            std::fs::write(&tmp, format!("{key}\n"))?;
            std::fs::rename(&tmp, &file)?;
            Ok(*key.as_bytes())
        }
        Err(e) => Err(e),
    }
}

/// A resource's identity on a filesystem: device and inode (the same through hard links and
/// symlinks), and the birth time, so that an inode reused after a delete is a new resource.
fn identity_of(md: &std::fs::Metadata) -> Identity {
    let born = md
        .created()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    Identity {
        node: (u128::from(md.dev()) << 64) | u128::from(md.ino()),
        born,
    }
}

fn meta_from(md: &std::fs::Metadata) -> Meta {
    let modified = md.modified().unwrap_or(UNIX_EPOCH);
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    Meta {
        kind: if md.is_dir() { Kind::Dir } else { Kind::File },
        len: if md.is_dir() { 0 } else { md.len() },
        modified,
        created: md.created().ok(),
        // Inode, size and nanosecond mtime: a new body at the same URL always gets a new tag.
        etag: etag(md.ino(), md.len(), nanos),
        identity: identity_of(md),
    }
}

/// `"ino-len-nanos"` in hex, written by hand: listings make one per entry, and `format!`
/// cost more than the `stat` behind it.
fn etag(ino: u64, len: u64, nanos: u128) -> String {
    fn hex(out: &mut String, n: u128) {
        // Digits from the highest non-zero nibble down (one digit for zero).
        let nibbles = (128 - n.leading_zeros()).div_ceil(4).max(1);
        for i in (0..nibbles).rev() {
            out.push(char::from(
                b"0123456789abcdef"[((n >> (4 * i)) & 0xf) as usize],
            ));
        }
    }
    // Quotes, two dashes and at most 16 + 16 + 32 digits.
    let mut out = String::with_capacity(68);
    out.push('"');
    hex(&mut out, u128::from(ino));
    out.push('-');
    hex(&mut out, u128::from(len));
    out.push('-');
    hex(&mut out, nanos);
    out.push('"');
    out
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("storage task failed: {e}")))?
}

impl Storage for FsStorage {
    type Read = InlineFile;
    type Upload = FsUpload;
    type StagingDir = StagingDir;
    type List = FsList;
    type Joined = FsStorage;

    // metadata and open run on the calling worker thread rather than the blocking pool: on a
    // local filesystem with warm caches they take microseconds, while a hand-off to the pool
    // and back costs more than the call itself (measured: it dominated GET and Depth 0
    // PROPFIND). Anything that can take long (listing, copying, deleting trees, writes) still
    // goes to the pool.
    async fn metadata(&self, path: &DavPath) -> io::Result<Meta> {
        let md = match self.inner.open_direct(path, Purpose::Locate) {
            Some(located) => located?.metadata()?,
            None => std::fs::metadata(self.inner.existing_via_canonical(path)?)?,
        };
        Ok(meta_from(&md))
    }

    async fn open(&self, path: &DavPath) -> io::Result<(InlineFile, Meta)> {
        let file = match self.inner.open_direct(path, Purpose::Read) {
            Some(opened) => opened?,
            None => open_for_reading(&self.inner.existing_via_canonical(path)?)?,
        };
        let md = file.metadata()?;
        // A FIFO, socket or device in the tree is not content: reading one could wait forever
        // (a FIFO without a writer) or never end (a character device).
        if !md.is_file() && !md.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "not a regular file",
            ));
        }
        Ok((InlineFile { file, pos: 0 }, meta_from(&md)))
    }

    // Read on the calling worker thread too, a batch per poll with a yield in between, the
    // way metadata and open are: handing batches from a pool thread to the worker cost more
    // CPU than reading them (measured: docs/benchmarks.md), and the yields keep other
    // connections on this thread served during a long listing.
    async fn list(&self, path: &DavPath) -> io::Result<FsList> {
        let full = self.inner.existing(path)?;
        let dir = std::fs::read_dir(&full)?;
        Ok(FsList {
            inner: self.inner.clone(),
            dir: Some(dir),
            yield_next: false,
        })
    }

    async fn count_tree(&self, path: &DavPath, max: u64) -> io::Result<u64> {
        let inner = self.inner.clone();
        let path = path.clone();
        blocking(move || {
            let mut pending = vec![inner.existing(&path)?];
            let mut count = 0u64;
            while let Some(dir) = pending.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let hidden = inner.hidden_member(&dir);
                for entry in entries.flatten() {
                    if hidden.is_some_and(|h| entry.file_name() == h) {
                        continue;
                    }
                    count += 1;
                    if count > max {
                        return Ok(count);
                    }
                    // Symlinked directories are not followed here: the listing follows only
                    // those that stay inside the root, so this may undercount, never loop.
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        pending.push(entry.path());
                    }
                }
            }
            Ok(count)
        })
        .await
    }

    async fn tree_size(&self, path: &DavPath) -> io::Result<u64> {
        let inner = self.inner.clone();
        let path = path.clone();
        blocking(move || {
            let top = inner.existing(&path)?;
            let meta = std::fs::metadata(&top)?;
            if !meta.is_dir() {
                return Ok(meta.len());
            }
            let mut pending = vec![top];
            let mut bytes = 0u64;
            while let Some(dir) = pending.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let hidden = inner.hidden_member(&dir);
                for entry in entries.flatten() {
                    if hidden.is_some_and(|h| entry.file_name() == h) {
                        continue;
                    }
                    // `DirEntry::metadata` does not follow symlinks: a link takes no space of
                    // its own worth counting, and following it could count a tree twice.
                    let Ok(m) = entry.metadata() else {
                        continue;
                    };
                    if m.is_dir() {
                        pending.push(entry.path());
                    } else if m.is_file() {
                        bytes = bytes.saturating_add(m.len());
                    }
                }
            }
            Ok(bytes)
        })
        .await
    }

    async fn space_available(&self) -> io::Result<Option<u64>> {
        let inner = self.inner.clone();
        blocking(move || {
            let s = rustix::fs::statvfs(&inner.root).map_err(io::Error::from)?;
            Ok(Some(s.f_bavail.saturating_mul(s.f_frsize)))
        })
        .await
    }

    // On the calling worker thread too: creating the temporary file and writing the body
    // into the page cache take microseconds, while `tokio::fs::File` sends every write to the
    // blocking pool (a thread per concurrent upload, and a hand-off per chunk; measured:
    // docs/benchmarks.md).
    async fn upload(&self, path: &DavPath) -> io::Result<FsUpload> {
        let inner = &self.inner;
        if inner.hidden(path) {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        let parent = path.parent().ok_or(io::ErrorKind::PermissionDenied)?;
        let name = path.name().ok_or(io::ErrorKind::PermissionDenied)?;
        let dest = inner.join(path);
        // The target's directory, opened beneath the root: the commit links or renames
        // relative to it, so a directory replaced by a symlink meanwhile cannot send the file
        // elsewhere, and no full path is walked again.
        let dir = match inner.open_direct(&parent, Purpose::Directory) {
            Some(opened) => Some(opened?),
            None => {
                if !std::fs::metadata(inner.existing_via_canonical(&parent)?)?.is_dir() {
                    return Err(io::ErrorKind::NotADirectory.into());
                }
                None
            }
        };
        let present = match &dir {
            Some(d) => match rustix::fs::statat(d, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink() => {
                    Present::MaybeShared
                }
                Ok(st) if st.st_nlink > 1 => Present::MaybeShared,
                Ok(_) => Present::Alone,
                Err(rustix::io::Errno::NOENT) => Present::Nothing,
                Err(e) => return Err(e.into()),
            },
            // Reached through a symlink: `shared_file` decides.
            None => Present::MaybeShared,
        };
        // A new file is staged unnamed in its own directory; one that replaces another is
        // staged under a name in the state directory and renamed over it.
        let unnamed = match (&dir, present) {
            (Some(d), Present::Nothing) if inner.unnamed_uploads => unnamed::create(d)?,
            _ => None,
        };
        let (file, staged) = match unnamed {
            Some(file) => (file, Staged::Unnamed),
            None => {
                let (nonce, counter) = &inner.temp_names;
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let temp = inner.tmp.join(format!("put-{nonce:016x}-{n}"));
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&temp)?;
                (file, Staged::Named(temp))
            }
        };
        let shared = match present {
            Present::MaybeShared => shared_file(inner, &dest),
            Present::Nothing | Present::Alone => None,
        };
        Ok(FsUpload {
            file: Some(file),
            staged,
            written: None,
            dir: dir.map(|d| Arc::new(d.into())),
            dir_identity: None,
            name: name.to_owned(),
            dest,
            shared,
            committed: false,
        })
    }

    fn staging_dir(&self, parent: &DavPath) -> Option<StagingDir> {
        if !self.inner.unnamed_uploads {
            return None;
        }
        let dir = self.inner.open_direct(parent, Purpose::Directory)?.ok()?;
        let identity = identity_of(&dir.metadata().ok()?);
        Some(StagingDir {
            fd: Arc::new(dir.into()),
            identity,
        })
    }

    fn stage(&self, dir: &StagingDir, path: &DavPath, content: &[u8]) -> Option<FsUpload> {
        use std::io::Write;
        let inner = &self.inner;
        if inner.hidden(path) {
            return None;
        }
        let name = path.name()?;
        // The target's name is not looked up here: that would hold the directory's lock
        // against the operations' links (measured: slower than not staging). The operation
        // uses the staged body only if it finds no file there.
        let mut file = unnamed::create(&*dir.fd).ok()??;
        file.write_all(content).ok()?;
        // Described now, on this thread: nothing else writes to an unnamed file.
        let written = file.metadata().ok()?;
        Some(FsUpload {
            file: Some(file),
            written: Some(written),
            staged: Staged::Unnamed,
            dir: Some(Arc::clone(&dir.fd)),
            dir_identity: Some(dir.identity),
            name: name.to_owned(),
            dest: inner.join(path),
            shared: None,
            committed: false,
        })
    }

    fn adopt(&self, staged: FsUpload, parent: &Meta) -> Option<FsUpload> {
        (staged.dir_identity.as_ref() == Some(&parent.identity)).then_some(staged)
    }

    async fn create_dir(&self, path: &DavPath) -> io::Result<()> {
        let inner = self.inner.clone();
        let path = path.clone();
        blocking(move || std::fs::create_dir(inner.creatable(&path)?)).await
    }

    async fn delete_tree(&self, path: &DavPath) -> io::Result<Vec<Failure>> {
        let inner = self.inner.clone();
        let path = path.clone();
        blocking(move || {
            if path.is_root() {
                return Err(io::ErrorKind::PermissionDenied.into());
            }
            let full = inner.existing(&path)?;
            let mut failures = Vec::new();
            if std::fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir()) {
                // A collection bound elsewhere by symlinks (in whole or in part) lives on there:
                // RFC 5842 §2.4, DELETE removes one binding.
                keep_bound_parts(&inner, &full);
            }
            remove_tree(&full, &path, &mut failures);
            Ok(failures)
        })
        .await
    }

    async fn copy_tree(
        &self,
        from: &DavPath,
        to: &DavPath,
        depth: CopyDepth,
    ) -> io::Result<Vec<Failure>> {
        let inner = self.inner.clone();
        let (from, to) = (from.clone(), to.clone());
        blocking(move || {
            let src = inner.existing(&from)?;
            let dst = inner.creatable(&to)?;
            let mut copy = TreeCopy {
                inner: &inner,
                depth,
                failures: Vec::new(),
                copied: HashMap::new(),
                made: std::collections::HashSet::new(),
            };
            copy.copy(&src, &dst, &to)?;
            Ok(copy.failures)
        })
        .await
    }

    async fn rename(&self, from: &DavPath, to: &DavPath) -> io::Result<()> {
        let inner = self.inner.clone();
        let (from, to) = (from.clone(), to.clone());
        blocking(move || {
            if from.is_root() {
                return Err(io::ErrorKind::PermissionDenied.into());
            }
            if inner.hidden(&from) {
                return Err(io::ErrorKind::NotFound.into());
            }
            // The source itself is renamed, not what a symlink points to.
            let src = inner.join(&from);
            inner.existing(&from.parent().unwrap_or_else(DavPath::root))?;
            let md = std::fs::symlink_metadata(&src)?;
            let dst = inner.creatable(&to)?;
            if md.is_symlink() {
                return rename_link(&inner, &src, &dst);
            }
            if !md.is_dir() {
                return std::fs::rename(src, dst);
            }
            // Symlinks are paths: the ones that cross the moved tree's edge (a link inside it
            // to something outside, or a link elsewhere into it) would point elsewhere after
            // the rename. They are found first and re-pointed after, so every binding lasts.
            let before = std::fs::canonicalize(&src)?;
            let crossing = crossing_links(&inner, &before);
            std::fs::rename(&src, &dst)?;
            if !crossing.is_empty() {
                let after = std::fs::canonicalize(&dst)?;
                repoint(&before, &after, crossing);
            }
            Ok(())
        })
        .await
    }

    async fn stash(&self, path: &DavPath, id: &str) -> io::Result<()> {
        let inner = self.inner.clone();
        let path = path.clone();
        let id = stash_name(id)?;
        blocking(move || {
            if path.is_root() {
                return Err(io::ErrorKind::PermissionDenied.into());
            }
            if inner.hidden(&path) {
                return Err(io::ErrorKind::NotFound.into());
            }
            inner.existing(&path.parent().unwrap_or_else(DavPath::root))?;
            let src = inner.join(&path);
            std::fs::symlink_metadata(&src)?;
            move_across(&src, &inner.stash.join(id))
        })
        .await
    }

    async fn unstash(&self, id: &str, path: &DavPath) -> io::Result<()> {
        let inner = self.inner.clone();
        let path = path.clone();
        let id = stash_name(id)?;
        blocking(move || {
            let dst = inner.creatable(&path)?;
            move_across(&inner.stash.join(id), &dst)
        })
        .await
    }

    async fn has_stash(&self, id: &str) -> io::Result<bool> {
        let inner = self.inner.clone();
        let id = stash_name(id)?;
        blocking(move || Ok(std::fs::symlink_metadata(inner.stash.join(id)).is_ok())).await
    }

    async fn drop_stash(&self, id: &str) -> io::Result<()> {
        let inner = self.inner.clone();
        let id = stash_name(id)?;
        blocking(move || {
            let p = inner.stash.join(id);
            match std::fs::symlink_metadata(&p) {
                Ok(md) if md.is_dir() => std::fs::remove_dir_all(&p),
                Ok(_) => std::fs::remove_file(&p),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
    }

    fn resource_id(&self, identity: &Identity) -> uuid::Uuid {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.inner.id_key);
        h.update(identity.node.to_be_bytes());
        h.update(identity.born.to_be_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    fn change_feed(&self, max_watches: usize) -> Option<Arc<dyn crate::cache::ChangeFeed>> {
        match crate::cache::InotifyFeed::new(&self.inner.root, max_watches) {
            Ok(feed) => Some(Arc::new(feed)),
            Err(e) => {
                tracing::warn!(error = %e, "no inotify: nothing is cached");
                None
            }
        }
    }

    async fn binding_index(&self) -> io::Result<BindingIndex> {
        let inner = self.inner.clone();
        blocking(move || Ok(scan_bindings(&inner, BINDING_SCAN_LIMIT))).await
    }

    async fn bind(&self, from: &DavPath, to: &DavPath) -> io::Result<Result<(), BindRefusal>> {
        let inner = self.inner.clone();
        let (from, to) = (from.clone(), to.clone());
        blocking(move || {
            let target = std::fs::canonicalize(inner.existing(&from)?)?;
            if !inner.allowed(&target) {
                return Err(io::ErrorKind::NotFound.into());
            }
            let dst = inner.creatable(&to)?;
            let md = std::fs::metadata(&target)?;
            if md.is_file() {
                // A second name of the same inode: the same content, ETag and resource id.
                return match std::fs::hard_link(&target, &dst) {
                    Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                        Ok(Err(BindRefusal::NotAllowed))
                    }
                    other => other.map(Ok),
                };
            }
            if !md.is_dir() {
                return Ok(Err(BindRefusal::NotAllowed));
            }
            // Directories cannot be hard-linked: a relative symlink binds the collection and
            // keeps working when the whole root moves.
            let parent = std::fs::canonicalize(dst.parent().ok_or(io::ErrorKind::InvalidInput)?)?;
            std::os::unix::fs::symlink(relative_link(&parent, &target), &dst)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn touch(&self, path: &DavPath) -> io::Result<()> {
        let inner = self.inner.clone();
        let path = path.clone();
        blocking(move || touch_now(&inner.existing(&path)?)).await
    }
}

/// A stash id is used as a file name: only plain names are accepted.
fn stash_name(id: &str) -> io::Result<String> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(id.to_owned())
    } else {
        Err(io::ErrorKind::InvalidInput.into())
    }
}

/// Renames, or copies and removes when the two places are on different filesystems.
fn move_across(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            copy_plain(from, to)?;
            if std::fs::symlink_metadata(from)?.is_dir() {
                std::fs::remove_dir_all(from)
            } else {
                std::fs::remove_file(from)
            }
        }
        other => other,
    }
}

/// Copies a file to a path that must not exist yet. The bytes go to a temporary file first
/// (in the state directory, or beside the destination when that is another filesystem),
/// which is then renamed into place without replacing anything: a reader sees no file or the
/// whole copy, never a part, and a symlink left at the destination is never written through.
fn copy_file_new(
    staging: Option<&Path>,
    src: &Path,
    dst: &Path,
    md: &std::fs::Metadata,
) -> io::Result<()> {
    let beside = dst.parent().ok_or(io::ErrorKind::InvalidInput)?;
    // Asked before copying: a rename across filesystems would fail only after the copy.
    let same_fs = |dir: &Path| {
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev());
        matches!((dev(dir), dev(beside)), (Ok(a), Ok(b)) if a == b)
    };
    let dir = staging.filter(|d| same_fs(d)).unwrap_or(beside);
    stage_copy(dir, src, dst, md)
}

fn stage_copy(dir: &Path, src: &Path, dst: &Path, md: &std::fs::Metadata) -> io::Result<()> {
    let temp = dir.join(format!(".davit-copy-{}", uuid::Uuid::new_v4().simple()));
    let mut from = std::fs::File::open(src)?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    let placed = std::io::copy(&mut from, &mut to)
        .and_then(|_| to.set_permissions(md.permissions()))
        .and_then(|()| rename_new(&temp, dst));
    if placed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    placed
}

/// Renames `from` to `to` only if `to` does not exist, atomically.
fn rename_new(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        // A filesystem without RENAME_NOREPLACE: a hard link refuses an existing name too.
        Err(rustix::io::Errno::INVAL) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        other => other.map_err(io::Error::from),
    }
}

fn copy_plain(from: &Path, to: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(from)?.is_dir() {
        std::fs::create_dir(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_plain(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        copy_file_new(None, from, to, &std::fs::metadata(from)?)
    }
}

fn touch_now(full: &Path) -> io::Result<()> {
    let now = std::time::SystemTime::now();
    let file = std::fs::File::options().read(true).open(full)?;
    file.set_times(
        std::fs::FileTimes::new()
            .set_modified(now)
            .set_accessed(now),
    )
}

/// Up to `max` members of `dir`, with their metadata; `None` once the directory is exhausted.
fn read_members(
    inner: &Inner,
    dir: &mut std::fs::ReadDir,
    max: usize,
) -> Option<io::Result<Vec<Entry>>> {
    let mut batch = Vec::with_capacity(max);
    for item in dir.by_ref() {
        let entry = match item {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let Ok(name) = entry.file_name().into_string() else {
            // A name that is not UTF-8 has no href that round-trips; leave it out.
            tracing::debug!(name = ?entry.file_name(), "skipping non-UTF-8 name");
            continue;
        };
        let mut shared = false;
        let md = match entry.file_type() {
            Ok(t) if t.is_symlink() => {
                shared = true;
                let target = entry.path();
                match std::fs::canonicalize(&target) {
                    Ok(c) if inner.allowed(&c) => std::fs::metadata(&target),
                    _ => continue,
                }
            }
            Ok(_) => match entry.metadata() {
                // The state directory, reached by its own parent or through a symlink to it.
                Ok(md) if inner.is_state_entry(&name, &md) => continue,
                other => other,
            },
            Err(e) => Err(e),
        };
        let Ok(md) = md else { continue };
        shared |= !md.is_dir() && md.nlink() > 1;
        batch.push(Entry {
            name,
            meta: meta_from(&md),
            shared,
        });
        if batch.len() == max {
            break;
        }
    }
    (!batch.is_empty()).then_some(Ok(batch))
}

/// Removes `full` (not following symlinks); returns whether it is gone. Failures name the
/// deepest member that could not be removed, never its ancestors.
fn remove_tree(full: &Path, path: &DavPath, failures: &mut Vec<Failure>) -> bool {
    let md = match std::fs::symlink_metadata(full) {
        Ok(md) => md,
        // Removed by someone else meanwhile: gone is what was wanted.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
        Err(e) => {
            failures.push((path.clone(), e));
            return false;
        }
    };
    if !md.is_dir() {
        return match std::fs::remove_file(full) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => {
                failures.push((path.clone(), e));
                false
            }
        };
    }
    let entries = match std::fs::read_dir(full) {
        Ok(d) => d,
        Err(e) => {
            failures.push((path.clone(), e));
            return false;
        }
    };
    let mut all_gone = true;
    for entry in entries {
        let gone = match entry {
            Ok(entry) => match entry.file_name().into_string() {
                Ok(name) => match path.join(&name) {
                    Ok(child) => remove_tree(&entry.path(), &child, failures),
                    Err(_) => false,
                },
                // Not representable as an href: it cannot be named in the 207, but it still
                // keeps its parent alive.
                Err(_) => false,
            },
            Err(e) => {
                failures.push((path.clone(), e));
                false
            }
        };
        all_gone &= gone;
    }
    if !all_gone {
        return false;
    }
    match std::fs::remove_dir(full) {
        Ok(()) => true,
        Err(e) => {
            failures.push((path.clone(), e));
            false
        }
    }
}

/// A COPY of a tree in progress. A resource reached through several bindings (hard links,
/// symlinks inside the root) is copied once and bound again at its other places in the copy
/// (RFC 5842 §2.3), so a symlink loop makes a loop in the copy instead of an endless one; and
/// what the copy itself made is never copied again (a source tree holding a binding of one of
/// its ancestors reaches the destination).
struct TreeCopy<'a> {
    inner: &'a Inner,
    depth: CopyDepth,
    failures: Vec<Failure>,
    /// Source resource (device, inode) → where its copy is.
    copied: HashMap<(u64, u64), PathBuf>,
    /// The directories this copy created (device, inode).
    made: std::collections::HashSet<(u64, u64)>,
}

impl TreeCopy<'_> {
    fn copy(&mut self, src: &Path, dst: &Path, to: &DavPath) -> io::Result<()> {
        // Symlinks are copied as what they point to, and only when that stays inside the root.
        let canonical = std::fs::canonicalize(src)?;
        if !self.inner.allowed(&canonical) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let md = std::fs::metadata(src)?;
        let key = (md.dev(), md.ino());
        if md.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = self.copied.get(&key) {
                    return std::fs::hard_link(first, dst);
                }
                copy_file_new(Some(&self.inner.tmp), src, dst, &md)?;
                self.copied.insert(key, dst.to_owned());
                return Ok(());
            }
            return copy_file_new(Some(&self.inner.tmp), src, dst, &md);
        }
        if !md.is_dir() {
            // A FIFO, socket or device: reading it could wait forever (see `open`).
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "not a regular file",
            ));
        }
        if let Some(first) = self.copied.get(&key) {
            let parent = std::fs::canonicalize(dst.parent().ok_or(io::ErrorKind::InvalidInput)?)?;
            let first = std::fs::canonicalize(first)?;
            return std::os::unix::fs::symlink(relative_link(&parent, &first), dst);
        }
        std::fs::create_dir(dst)?;
        if let Ok(made) = std::fs::metadata(dst) {
            self.made.insert((made.dev(), made.ino()));
        }
        self.copied.insert(key, dst.to_owned());
        if self.depth == CopyDepth::Zero {
            return Ok(());
        }
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Ok(child) = to.join(&name) else { continue };
            if entry.path() == self.inner.state {
                continue;
            }
            if let Ok(m) = std::fs::metadata(entry.path()) {
                if m.is_dir() && self.made.contains(&(m.dev(), m.ino())) {
                    continue;
                }
            }
            if let Err(e) = self.copy(&entry.path(), &dst.join(&name), &child) {
                self.failures.push((child, e));
            }
        }
        Ok(())
    }
}

/// The file a PUT to `dest` must write in place, if it is bound elsewhere too: a regular file
/// with several hard links, or the target (inside the root) of a symlink at `dest`.
fn shared_file(inner: &Inner, dest: &Path) -> Option<PathBuf> {
    let md = std::fs::symlink_metadata(dest).ok()?;
    if md.is_symlink() {
        let target = std::fs::canonicalize(dest).ok()?;
        let tmd = std::fs::metadata(&target).ok()?;
        return (inner.allowed(&target) && tmd.is_file()).then_some(target);
    }
    (md.is_file() && md.nlink() > 1).then(|| dest.to_owned())
}

/// How many directory entries [`Storage::binding_index`] looks at before it gives up (the
/// index is then partial).
const BINDING_SCAN_LIMIT: u64 = 1_000_000;

/// Walks the tree without following symlinks, collecting the bindings of every resource
/// reached twice: files with several hard links, and the targets of symlinks that stay inside
/// the root (with the symlink and the target's own place as bindings).
fn scan_bindings(inner: &Inner, limit: u64) -> BindingIndex {
    let mut bound: HashMap<Identity, Vec<Binding>> = HashMap::new();
    let mut seen = 0u64;
    let mut partial = false;
    let mut pending = vec![(inner.root.clone(), DavPath::root())];
    'walk: while let Some((dir, path)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > limit {
                partial = true;
                break 'walk;
            }
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Ok(md) = entry.metadata() else { continue };
            if inner.is_state_entry(&name, &md) {
                continue;
            }
            let here = Binding {
                parent: path.clone(),
                segment: name.clone(),
            };
            if md.is_dir() {
                if let Ok(child) = path.join(&name) {
                    pending.push((entry.path(), child));
                }
            } else if md.is_symlink() {
                let Ok(target) = std::fs::canonicalize(entry.path()) else {
                    continue;
                };
                if !inner.allowed(&target) {
                    continue;
                }
                let Ok(tmd) = std::fs::metadata(&target) else {
                    continue;
                };
                let list = bound.entry(identity_of(&tmd)).or_default();
                list.push(here);
                if let Some(own) = binding_of(inner, &target) {
                    list.push(own);
                }
            } else if md.is_file() && md.nlink() > 1 {
                bound.entry(identity_of(&md)).or_default().push(here);
            }
        }
    }
    bound.retain(|_, list| {
        list.sort();
        list.dedup();
        list.len() > 1
    });
    BindingIndex { bound, partial }
}

/// The symlinks inside the root that cross the edge of the tree at `moved` (canonical): inside
/// it and reaching outside, or outside and reaching into it, with where they reach now. A
/// walk of the whole root without following symlinks, looking at entry types only (no `stat`
/// but for the symlinks themselves), bounded like [`scan_bindings`].
fn crossing_links(inner: &Inner, moved: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let mut seen = 0u64;
    let mut pending = vec![inner.root.clone()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > BINDING_SCAN_LIMIT {
                tracing::warn!("tree too large to look for symlinks crossing a MOVE");
                return out;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if path != inner.state {
                    pending.push(path);
                }
            } else if kind.is_symlink() {
                let Ok(target) = std::fs::canonicalize(&path) else {
                    continue;
                };
                if !inner.allowed(&target) {
                    continue;
                }
                if path.starts_with(moved) != target.starts_with(moved) {
                    out.push((path, target));
                }
            }
        }
    }
    out
}

/// Before the directory `full` is deleted: every part of it that a symlink elsewhere binds
/// (the directory itself, or something in it) moves to that symlink's place, shallowest first,
/// and the other symlinks crossing its edge are re-pointed, so the rest can go without taking
/// those bindings with it.
fn keep_bound_parts(inner: &Inner, full: &Path) {
    let Ok(dir) = std::fs::canonicalize(full) else {
        return;
    };
    let mut crossing = crossing_links(inner, &dir);
    if !crossing.iter().any(|(link, _)| !link.starts_with(&dir)) {
        return;
    }
    loop {
        // The shallowest target inside the doomed tree that a link from outside reaches.
        let Some(i) = crossing
            .iter()
            .enumerate()
            .filter(|(_, (link, target))| !link.starts_with(&dir) && target.starts_with(&dir))
            .min_by_key(|(_, (_, target))| target.components().count())
            .map(|(i, _)| i)
        else {
            return;
        };
        let (link, target) = crossing.swap_remove(i);
        if std::fs::remove_file(&link).is_err() {
            continue;
        }
        if let Err(e) = std::fs::rename(&target, &link) {
            tracing::warn!(target = %target.display(), error = %e, "could not keep a bound part of a deleted collection");
            let _ = std::os::unix::fs::symlink(
                relative_link(link.parent().unwrap_or(&link), &target),
                &link,
            );
            continue;
        }
        // What now lives at `link` was at `target`: the remaining links follow it.
        let moved = |p: &Path| match p.strip_prefix(&target) {
            Ok(rest) => link.join(rest),
            Err(_) => p.to_owned(),
        };
        let mut still = Vec::with_capacity(crossing.len());
        let mut redo = Vec::new();
        for (l, t) in crossing {
            let (nl, nt) = (moved(&l), moved(&t));
            if nl != l || nt != t {
                redo.push((nl.clone(), nt.clone()));
            }
            still.push((nl, nt));
        }
        for (l, t) in redo {
            relink(&l, &t);
        }
        crossing = still;
    }
}

/// Re-points the links [`crossing_links`] found once the tree at `before` is at `after`.
fn repoint(before: &Path, after: &Path, links: Vec<(PathBuf, PathBuf)>) {
    let moved = |p: &Path| match p.strip_prefix(before) {
        Ok(rest) => after.join(rest),
        Err(_) => p.to_owned(),
    };
    for (link, target) in links {
        relink(&moved(&link), &moved(&target));
    }
}

/// Replaces the symlink at `link` with a relative one to `target`.
fn relink(link: &Path, target: &Path) {
    let Some(parent) = link.parent() else {
        return;
    };
    let text = relative_link(parent, target);
    let redone = std::fs::remove_file(link).and_then(|()| std::os::unix::fs::symlink(&text, link));
    if let Err(e) = redone {
        tracing::warn!(link = %link.display(), error = %e, "could not re-point a symlink");
    }
}

/// The binding of a canonical path inside the root (`None` for the root itself).
fn binding_of(inner: &Inner, canonical: &Path) -> Option<Binding> {
    let relative = canonical.strip_prefix(&inner.root).ok()?;
    let mut parent = DavPath::root();
    let mut names = relative
        .iter()
        .map(|n| n.to_str())
        .collect::<Option<Vec<_>>>()?;
    let segment = names.pop()?.to_owned();
    for n in names {
        parent = parent.join(n).ok()?;
    }
    Some(Binding { parent, segment })
}

/// The relative symlink text that leads from directory `from` to `to` (both canonical).
fn relative_link(from: &Path, to: &Path) -> PathBuf {
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut link = PathBuf::new();
    for _ in from.components().skip(common) {
        link.push("..");
    }
    for c in to.components().skip(common) {
        link.push(c);
    }
    if link.as_os_str().is_empty() {
        link.push(".");
    }
    link
}

/// Moves a symlink, re-pointing it so that it still reaches what it reached before (a relative
/// link would otherwise point elsewhere from its new directory).
fn rename_link(inner: &Inner, src: &Path, dst: &Path) -> io::Result<()> {
    let target = std::fs::canonicalize(src).ok().filter(|t| inner.allowed(t));
    let (Some(target), Some(parent)) = (target, dst.parent()) else {
        // Dangling, or leading outside the root: moved as it is.
        return std::fs::rename(src, dst);
    };
    let parent = std::fs::canonicalize(parent)?;
    std::os::unix::fs::symlink(relative_link(&parent, &target), dst)?;
    if let Err(e) = std::fs::remove_file(src) {
        let _ = std::fs::remove_file(dst);
        return Err(e);
    }
    Ok(())
}

/// A file read on the calling worker thread. Reads of a local file mostly come from the page
/// cache and take microseconds; handing each one to the blocking pool and back (what
/// `tokio::fs::File` does) cost more than the read and halved GET throughput.
#[derive(Debug)]
pub struct InlineFile {
    file: std::fs::File,
    pos: u64,
}

impl tokio::io::AsyncRead for InlineFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        use std::io::Read;
        let n = self.file.read(buf.initialize_unfilled())?;
        buf.advance(n);
        self.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

impl super::FileRead for InlineFile {
    fn poll_read_into(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        use std::io::Read;
        // `read_to_end` on a `Take` reads into the vector's spare capacity without zeroing it
        // first; zeroing each 256 KiB chunk was 7 % of a large GET's CPU.
        let n = (&self.file).take(max as u64).read_to_end(buf)?;
        self.pos += n as u64;
        Poll::Ready(Ok(n))
    }
}

impl tokio::io::AsyncSeek for InlineFile {
    fn start_seek(mut self: Pin<&mut Self>, position: std::io::SeekFrom) -> io::Result<()> {
        use std::io::Seek;
        self.pos = self.file.seek(position)?;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

/// Members of a directory, in batches read as they are polled.
#[derive(Debug)]
pub struct FsList {
    inner: Arc<Inner>,
    /// `None` once exhausted (or after an error).
    dir: Option<std::fs::ReadDir>,
    /// The member name to leave out (the state directory's).
    /// Every other poll yields, so a long listing shares its thread.
    yield_next: bool,
}

impl Stream for FsList {
    type Item = io::Result<Vec<Entry>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.yield_next {
            self.yield_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let this = &mut *self;
        let Some(dir) = this.dir.as_mut() else {
            return Poll::Ready(None);
        };
        let batch = read_members(&this.inner, dir, LIST_BATCH);
        match &batch {
            Some(Ok(_)) => this.yield_next = true,
            Some(Err(_)) | None => this.dir = None,
        }
        Poll::Ready(batch)
    }
}

/// What an upload finds at its target when it starts.
#[derive(Debug, Clone, Copy)]
enum Present {
    Nothing,
    /// A file bound nowhere else.
    Alone,
    /// A symlink, a file with other hard links (or a directory), or a path reached through a
    /// symlink: it may have to be written in place (`shared_file`).
    MaybeShared,
}

/// Where an upload's bytes wait for the commit.
#[derive(Debug)]
enum Staged {
    /// An unnamed file in the target's directory (`O_TMPFILE`): linked in by the commit, and
    /// gone without a trace if the upload breaks or the process dies.
    Unnamed,
    /// A file in the state directory's `tmp/`, renamed over the target by the commit (and
    /// removed on drop otherwise; `tmp/` is cleared at start-up).
    Named(PathBuf),
}

/// A directory opened beneath the root for a batch to stage bodies in
/// ([`Storage::staging_dir`]), with its identity then.
pub struct StagingDir {
    fd: Arc<std::os::fd::OwnedFd>,
    identity: Identity,
}

/// An upload into a temporary file; removed on drop unless committed.
#[derive(Debug)]
pub struct FsUpload {
    file: Option<std::fs::File>,
    /// The file as staged ahead ([`Storage::stage`]), described when its body was whole.
    written: Option<std::fs::Metadata>,
    staged: Staged,
    /// The target's directory, opened beneath the root (`None` when a symlink on the way sent
    /// the lookup down the slow path: then `dest` is used). Shared by the bodies a batch
    /// stages in it.
    dir: Option<Arc<std::os::fd::OwnedFd>>,
    /// For a staged upload, `dir`'s identity then (see [`Storage::adopt`]); its birth time
    /// tells a directory from a new one that reuses its inode number.
    dir_identity: Option<Identity>,
    /// The target's name in `dir`.
    name: String,
    dest: PathBuf,
    /// The file to overwrite in place instead of renaming over `dest`: one with other
    /// bindings (hard links, or a symlink at `dest`), which a rename would split from them.
    shared: Option<PathBuf>,
    committed: bool,
}

impl AsyncWrite for FsUpload {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        use std::io::Write;
        match self.file.as_mut() {
            Some(f) => Poll::Ready(f.write(buf)),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here: every write went to the file.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl FsUpload {
    /// Copies the staged bytes into the shared file in place (in the blocking pool: it may
    /// be large).
    async fn commit_in_place(&mut self, shared: PathBuf) -> io::Result<Meta> {
        // Only a replaced file can be shared, and those are staged under a name.
        let Staged::Named(temp) = &self.staged else {
            return Err(io::ErrorKind::Unsupported.into());
        };
        drop(self.file.take());
        let temp = temp.clone();
        let md = blocking(move || {
            let mut from = std::fs::File::open(&temp)?;
            let mut to = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&shared)?;
            std::io::copy(&mut from, &mut to)?;
            to.sync_data()?;
            to.metadata()
        })
        .await;
        if let Staged::Named(temp) = &self.staged {
            let _ = std::fs::remove_file(temp);
        }
        self.committed = true;
        Ok(meta_from(&md?))
    }

    /// Renames the named temporary file over the target; `true` when it had to be copied.
    async fn commit_named(&self, temp: &Path) -> io::Result<bool> {
        let renamed = match &self.dir {
            Some(dir) => rustix::fs::renameat(rustix::fs::CWD, temp, dir, self.name.as_str())
                .map_err(io::Error::from),
            None => std::fs::rename(temp, &self.dest),
        };
        match renamed {
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                // The state directory is on another filesystem: copy beside the target (in
                // the blocking pool: it may take long), then rename, so the switch is still
                // atomic.
                let (temp, dest) = (temp.to_owned(), self.dest.clone());
                blocking(move || {
                    let parent = dest.parent().ok_or(io::ErrorKind::NotFound)?;
                    let near = parent.join(format!(".davit-put-{}", uuid::Uuid::new_v4().simple()));
                    let result =
                        std::fs::copy(&temp, &near).and_then(|_| std::fs::rename(&near, &dest));
                    if result.is_err() {
                        let _ = std::fs::remove_file(&near);
                    }
                    let _ = std::fs::remove_file(&temp);
                    result
                })
                .await?;
                Ok(true)
            }
            other => other.map(|()| false),
        }
    }
}

impl Upload for FsUpload {
    async fn commit(mut self) -> io::Result<Meta> {
        // Still there (an atomic batch stashes what it replaces first, and then the rename is
        // what can be rolled back).
        if let Some(shared) = self
            .shared
            .take()
            .filter(|_| std::fs::symlink_metadata(&self.dest).is_ok())
        {
            return self.commit_in_place(shared).await;
        }
        // Described before the link or rename, from the open file: both keep the inode, size
        // and modification time the ETag is made of, and this saves looking the path up again.
        let written = match self.written.take() {
            Some(md) => md,
            None => self
                .file
                .as_ref()
                .map(|f| f.metadata())
                .transpose()?
                .ok_or(io::ErrorKind::BrokenPipe)?,
        };
        match &self.staged {
            Staged::Unnamed => {
                let (Some(file), Some(dir)) = (&self.file, &self.dir) else {
                    return Err(io::ErrorKind::BrokenPipe.into());
                };
                unnamed::link(file, dir, &self.name)?;
                self.file = None;
                self.committed = true;
                Ok(meta_from(&written))
            }
            Staged::Named(temp) => {
                self.file = None;
                let copied = self.commit_named(temp).await?;
                self.committed = true;
                if copied {
                    // A copy: another inode, so describe the file now in place.
                    Ok(meta_from(&std::fs::metadata(&self.dest)?))
                } else {
                    Ok(meta_from(&written))
                }
            }
        }
    }
}

impl Drop for FsUpload {
    fn drop(&mut self) {
        // An unnamed file goes with its descriptor.
        drop(self.file.take());
        if let (false, Staged::Named(temp)) = (self.committed, &self.staged) {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Uploads staged as unnamed files (`O_TMPFILE`) in the target's directory, linked in by the
/// commit. Measured on ext4: creating the file and linking it cost about two thirds of a
/// named create and rename (docs/benchmarks.md, session 16).
#[cfg(target_os = "linux")]
mod unnamed {
    use rustix::fs::{AtFlags, Mode, OFlags};
    use rustix::io::Errno;
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An unnamed file in `dir`; `None` where the filesystem cannot make one.
    pub(super) fn create(dir: impl AsFd) -> io::Result<Option<std::fs::File>> {
        match rustix::fs::openat(
            dir,
            ".",
            OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        ) {
            Ok(fd) => Ok(Some(std::fs::File::from(fd))),
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives `file` the name `name` in `dir`. One that appeared there meanwhile is replaced
    /// the way a rename replaces it: linked under a temporary name first, then renamed over.
    pub(super) fn link(file: &std::fs::File, dir: impl AsFd, name: &str) -> io::Result<()> {
        let dir = dir.as_fd();
        match link_as(file, dir, name) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                let near = format!(".davit-put-{}", uuid::Uuid::new_v4().simple());
                link_as(file, dir, &near)?;
                rustix::fs::renameat(dir, near.as_str(), dir, name).map_err(|e| {
                    let _ = rustix::fs::unlinkat(dir, near.as_str(), AtFlags::empty());
                    io::Error::from(e)
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `linkat` takes the file itself (`AT_EMPTY_PATH`): Linux 6.10 and later allow
    /// it for a file the process opened (earlier, only with `CAP_DAC_READ_SEARCH`). Cleared on
    /// the first refusal; then the file is named through `/proc/self/fd`, a path walk more.
    static EMPTY_PATH: AtomicBool = AtomicBool::new(true);

    fn link_as(file: &std::fs::File, dir: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
        if EMPTY_PATH.load(Ordering::Relaxed) {
            match rustix::fs::linkat(file, "", dir, name, AtFlags::EMPTY_PATH) {
                Err(Errno::PERM | Errno::NOENT | Errno::INVAL | Errno::ACCESS) => {
                    EMPTY_PATH.store(false, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        rustix::fs::linkat(
            rustix::fs::CWD,
            proc_path.as_str(),
            dir,
            name,
            AtFlags::SYMLINK_FOLLOW,
        )
    }

    /// Whether an unnamed file can be made and linked in `dir` (the state directory's
    /// `tmp/`): needs `O_TMPFILE` support there and a mounted `/proc`.
    pub(super) fn works_in(dir: &Path) -> bool {
        let Ok(d) = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return false;
        };
        let Ok(Some(file)) = create(&d) else {
            return false;
        };
        let probe = "probe-unnamed";
        let _ = rustix::fs::unlinkat(&d, probe, AtFlags::empty());
        let ok = link(&file, &d, probe).is_ok();
        let _ = rustix::fs::unlinkat(&d, probe, AtFlags::empty());
        ok
    }
}

#[cfg(not(target_os = "linux"))]
mod unnamed {
    use std::io;
    use std::path::Path;

    pub(super) fn create(_dir: impl std::os::fd::AsFd) -> io::Result<Option<std::fs::File>> {
        Ok(None)
    }

    pub(super) fn link(
        _file: &std::fs::File,
        _dir: impl std::os::fd::AsFd,
        _name: &str,
    ) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn works_in(_dir: &Path) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn inline_file_reads_into_spare_capacity_up_to_max() {
        use super::super::{read_into, FileRead};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut file = super::InlineFile { file, pos: 0 };
        fn is_file_read<R: FileRead>(_: &R) {}
        is_file_read(&file);
        let mut buf = Vec::with_capacity(4);
        assert_eq!(read_into(&mut file, &mut buf, 4).await.ok(), Some(4));
        assert_eq!(buf, b"0123");
        // More than is left: the rest, without growing past it.
        let mut buf = Vec::new();
        assert_eq!(read_into(&mut file, &mut buf, 100).await.ok(), Some(6));
        assert_eq!(buf, b"456789");
        assert_eq!(file.pos, 10);
        assert_eq!(read_into(&mut file, &mut buf, 100).await.ok(), Some(0));
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A new file's body waits unnamed in its own directory: nothing to see (or to clean up)
    /// until the commit links it in; an abandoned upload leaves nothing.
    #[tokio::test]
    async fn a_new_file_is_staged_unnamed_and_linked_in_whole() {
        use super::super::{Storage, Upload};
        use tokio::io::AsyncWriteExt;
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let fs = super::FsStorage::new(root.path(), state.path()).unwrap();
        assert!(
            fs.inner.unnamed_uploads,
            "O_TMPFILE works on this filesystem"
        );
        let path = davit_proto::href::DavPath::parse("/new.txt").unwrap();

        let mut up = fs.upload(&path).await.unwrap();
        assert!(matches!(up.staged, super::Staged::Unnamed));
        up.write_all(b"whole body").await.unwrap();
        assert!(names(root.path()).is_empty());
        assert!(names(&state.path().join("tmp")).is_empty());
        let meta = up.commit().await.unwrap();
        assert_eq!(
            std::fs::read(root.path().join("new.txt")).unwrap(),
            b"whole body"
        );
        assert_eq!(meta.len, 10);
        assert_eq!(meta.etag, fs.metadata(&path).await.unwrap().etag);

        let gone = davit_proto::href::DavPath::parse("/gone.txt").unwrap();
        let mut up = fs.upload(&gone).await.unwrap();
        up.write_all(b"half").await.unwrap();
        drop(up);
        assert_eq!(names(root.path()), ["new.txt"]);
    }

    /// A file that appears at the target while a new one is staged is replaced whole, as a
    /// rename would replace it, and no temporary name stays behind.
    #[tokio::test]
    async fn a_file_appearing_meanwhile_is_replaced_whole() {
        use super::super::{Storage, Upload};
        use tokio::io::AsyncWriteExt;
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let fs = super::FsStorage::new(root.path(), state.path()).unwrap();
        let path = davit_proto::href::DavPath::parse("/race.txt").unwrap();
        let mut up = fs.upload(&path).await.unwrap();
        up.write_all(b"from the upload").await.unwrap();
        std::fs::write(root.path().join("race.txt"), b"from another program").unwrap();
        up.commit().await.unwrap();
        assert_eq!(
            std::fs::read(root.path().join("race.txt")).unwrap(),
            b"from the upload"
        );
        assert_eq!(names(root.path()), ["race.txt"]);
    }

    /// Replacing a file stages the body under a name in the state directory and renames it
    /// over the old one.
    #[tokio::test]
    async fn a_replaced_file_is_staged_named_and_renamed_over() {
        use super::super::{Storage, Upload};
        use tokio::io::AsyncWriteExt;
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("old.txt"), b"old").unwrap();
        let fs = super::FsStorage::new(root.path(), state.path()).unwrap();
        let path = davit_proto::href::DavPath::parse("/old.txt").unwrap();
        let mut up = fs.upload(&path).await.unwrap();
        assert!(matches!(up.staged, super::Staged::Named(_)));
        up.write_all(b"new").await.unwrap();
        assert_eq!(names(&state.path().join("tmp")).len(), 1);
        up.commit().await.unwrap();
        assert_eq!(std::fs::read(root.path().join("old.txt")).unwrap(), b"new");
        assert!(names(&state.path().join("tmp")).is_empty());
    }

    /// A body staged ahead is taken over only by an operation that finds the same directory
    /// it was staged in: not after that directory was replaced by a new one of that name.
    #[tokio::test]
    async fn a_staged_body_is_adopted_only_in_its_own_directory() {
        use super::super::{Storage, Upload};
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        let fs = super::FsStorage::new(root.path(), state.path()).unwrap();
        let path = davit_proto::href::DavPath::parse("/d/x.txt").unwrap();
        let dir = davit_proto::href::DavPath::parse("/d").unwrap();

        let in_d = fs.staging_dir(&dir).unwrap();
        let staged = fs.stage(&in_d, &path, b"staged").unwrap();
        assert!(
            names(&root.path().join("d")).is_empty(),
            "invisible until committed"
        );
        let parent = fs.metadata(&dir).await.unwrap();
        let up = fs.adopt(staged, &parent).expect("same directory");
        up.commit().await.unwrap();
        assert_eq!(
            std::fs::read(root.path().join("d/x.txt")).unwrap(),
            b"staged"
        );

        // One opened directory serves several bodies.
        let other = davit_proto::href::DavPath::parse("/d/y.txt").unwrap();
        let staged = fs.stage(&in_d, &other, b"late").unwrap();
        std::fs::remove_dir_all(root.path().join("d")).unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        let parent = fs.metadata(&dir).await.unwrap();
        assert!(fs.adopt(staged, &parent).is_none());
        assert!(names(&root.path().join("d")).is_empty());

        // Nothing is staged where the directory is missing. (Where a file is already, the
        // operation does not take the staged body over: `store` decides that.)
        let nowhere = davit_proto::href::DavPath::parse("/missing").unwrap();
        assert!(fs.staging_dir(&nowhere).is_none());
    }

    #[test]
    fn etag_is_hex() {
        assert_eq!(super::etag(0x9f041f, 4096, 0), "\"9f041f-1000-0\"");
        assert_eq!(
            super::etag(u64::MAX, 1, u128::MAX),
            format!("\"{:x}-1-{:x}\"", u64::MAX, u128::MAX)
        );
    }
}
