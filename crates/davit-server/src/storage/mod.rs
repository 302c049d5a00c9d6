//! Where resource content lives. Method handlers see only the [`Storage`] trait, so another
//! backend (an object store, say) can slot in without touching them.

mod beneath;
mod fs;

pub use fs::{FsStorage, FsUpload, InlineFile};

use davit_proto::href::DavPath;
use futures_util::Stream;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite};

/// File or collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A non-collection resource.
    File,
    /// A collection.
    Dir,
}

/// What a handler needs to know about a resource without opening it.
#[derive(Debug, Clone)]
pub struct Meta {
    /// File or collection.
    pub kind: Kind,
    /// Content length in bytes (0 for collections).
    pub len: u64,
    /// Last modification of the content.
    pub modified: SystemTime,
    /// Creation time, where the backend keeps one.
    pub created: Option<SystemTime>,
    /// Strong entity tag, quotes included; changes whenever the content does.
    pub etag: String,
    /// Which resource this is, whichever binding reached it.
    pub identity: Identity,
}

/// Who a resource is, whichever binding reaches it (RFC 5842): the same through every binding
/// of one resource, different for any two resources, also for one deleted and one created
/// later in its place. Cheap to compare; [`Storage::resource_id`] turns it into the
/// `DAV:resource-id` URN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The backend's own number for the resource (device and inode on a filesystem).
    pub node: u128,
    /// When the resource came to be, in nanoseconds (0 where unknown): two resources that held
    /// the same node in turn differ here.
    pub born: u64,
}

/// One binding of a resource: the collection that holds it and the name it has there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding {
    /// The parent collection.
    pub parent: DavPath,
    /// The member name.
    pub segment: String,
}

/// Why a BIND was refused by the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindRefusal {
    /// The backend cannot bind this kind of resource here (RFC 5842 `DAV:binding-allowed`).
    NotAllowed,
    /// The new binding would make a collection a member of itself or of its descendants and
    /// the backend does not allow loops (`DAV:cycle-allowed`).
    Cycle,
}

impl Meta {
    /// True for collections.
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// One member of a collection.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The member's name (one decoded segment).
    pub name: String,
    /// Its metadata.
    pub meta: Meta,
    /// Reached through a symlink, or with other bindings (hard links): a change may be made
    /// through another name, so nothing about it is cached.
    pub shared: bool,
}

/// A member that a tree operation could not handle, with the reason.
pub type Failure = (DavPath, io::Error);

/// How deep a COPY goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyDepth {
    /// The resource itself (a collection without its members).
    Zero,
    /// The whole tree.
    Infinity,
}

/// A file opened for a response body.
pub trait FileRead: AsyncRead + AsyncSeek + Send + Unpin + 'static {
    /// Appends up to `max` bytes of the file to `buf` and returns how many (0 at the end).
    /// The default reads through [`AsyncRead`], which needs the memory zeroed first; backends
    /// that can read straight into `buf`'s spare capacity override it.
    fn poll_read_into(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        let start = buf.len();
        buf.resize(start + max, 0);
        let mut read = tokio::io::ReadBuf::new(&mut buf[start..]);
        let polled = self.as_mut().poll_read(cx, &mut read);
        let n = read.filled().len();
        buf.truncate(start + n);
        polled.map_ok(|()| n)
    }

    /// Makes ready to read from the current position, before a response's head promises the
    /// bytes: a backend that fetches content lazily (an object store) starts fetching here, so
    /// that a store that is away fails the request (503) rather than cutting a 200 short. The
    /// default has nothing to do.
    fn poll_prepare(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Makes `file` ready to read from its current position (see [`FileRead::poll_prepare`]).
pub async fn prepare<R: FileRead>(file: &mut R) -> io::Result<()> {
    std::future::poll_fn(|cx| Pin::new(&mut *file).poll_prepare(cx)).await
}

/// Appends up to `max` bytes of `file` to `buf` (see [`FileRead::poll_read_into`]).
pub async fn read_into<R: FileRead>(
    file: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| Pin::new(&mut *file).poll_read_into(cx, buf, max)).await
}

/// Content storage. Paths are validated [`DavPath`]s; backends still confine every access to
/// their root.
pub trait Storage: Send + Sync + 'static {
    /// A readable, seekable file.
    type Read: FileRead;
    /// An upload in progress: written, then committed into place atomically, or dropped and
    /// gone without a trace.
    type Upload: Upload;
    /// Batches of collection members, produced while the caller consumes them.
    type List: Stream<Item = io::Result<Vec<Entry>>> + Send + Unpin + 'static;
    /// This storage inside a transaction of the property store (see [`join`](Self::join)).
    type Joined: Storage + Clone;

    /// Metadata of a resource (`NotFound` when unmapped).
    fn metadata(&self, path: &DavPath) -> impl Future<Output = io::Result<Meta>> + Send;
    /// Opens a file for reading, with the metadata of what was opened (not of the path a moment
    /// later: a concurrent PUT must never pair one version's length and ETag with another's
    /// bytes). A collection may either open (its metadata says so) or fail with `IsADirectory`.
    fn open(&self, path: &DavPath) -> impl Future<Output = io::Result<(Self::Read, Meta)>> + Send;
    /// Lists the members of a collection.
    fn list(&self, path: &DavPath) -> impl Future<Output = io::Result<Self::List>> + Send;
    /// Counts the members of the tree below `path`, stopping once the count passes `max`
    /// (so the answer is `min(count, max + 1)`). Cheaper than listing: no metadata per member.
    fn count_tree(&self, path: &DavPath, max: u64) -> impl Future<Output = io::Result<u64>> + Send;
    /// The bytes of content in the tree below `path` (the sum of its files' lengths; a file's
    /// own length for a file). Symbolic links and other second bindings are not followed, so
    /// nothing is counted twice through them and a loop cannot make it endless. Quotas (RFC 4331)
    /// call it, rarely: its result is cached by the caller.
    fn tree_size(&self, path: &DavPath) -> impl Future<Output = io::Result<u64>> + Send;
    /// Bytes the backend can still store, if it knows (on a filesystem, what `statvfs` says an
    /// unprivileged user may still write).
    fn space_available(&self) -> impl Future<Output = io::Result<Option<u64>>> + Send;
    /// Starts an upload that will replace or create `path` on commit.
    fn upload(&self, path: &DavPath) -> impl Future<Output = io::Result<Self::Upload>> + Send;
    /// A collection opened to stage new files' bodies in (see [`stage`](Self::stage)).
    type StagingDir: Send + 'static;

    /// Opens the collection at `parent` to stage bodies in; a batch opens each collection
    /// once for the PUTs it stages there. Blocking (called on the blocking pool). `None` when
    /// the backend does not stage, or cannot there now.
    fn staging_dir(&self, _parent: &DavPath) -> Option<Self::StagingDir> {
        None
    }
    /// Writes the small body of a new file at `path`, a member of `dir`, ahead of its
    /// operation, where nothing can see it yet: a batch stages its next PUTs on another thread
    /// while earlier operations run. Blocking (called on the blocking pool). Whether a file
    /// is at `path` is not asked here: the operation uses the staged body only if it finds
    /// none, and only if `dir` is still the collection at `path`'s parent
    /// ([`adopt`](Self::adopt)).
    fn stage(
        &self,
        _dir: &Self::StagingDir,
        _path: &DavPath,
        _content: &[u8],
    ) -> Option<Self::Upload> {
        None
    }
    /// Takes a staged upload over for its operation, whose look-up found `parent` to be the
    /// target's collection: `None` (the staged bytes dropped) when the upload was staged in
    /// another one (the collection was moved or replaced since).
    fn adopt(&self, _staged: Self::Upload, _parent: &Meta) -> Option<Self::Upload> {
        None
    }
    /// Creates one collection; its parent must exist.
    fn create_dir(&self, path: &DavPath) -> impl Future<Output = io::Result<()>> + Send;
    /// Removes a file, or a collection with everything in it. Members that cannot be removed
    /// are returned; their ancestors stay and are not listed.
    fn delete_tree(&self, path: &DavPath) -> impl Future<Output = io::Result<Vec<Failure>>> + Send;
    /// Copies `from` to the unmapped `to`. Members that could not be copied are returned.
    fn copy_tree(
        &self,
        from: &DavPath,
        to: &DavPath,
        depth: CopyDepth,
    ) -> impl Future<Output = io::Result<Vec<Failure>>> + Send;
    /// Renames `from` to the unmapped `to` in one step; fails with `CrossesDevices` (or
    /// `Unsupported`) when the backend cannot, and the caller then copies and deletes.
    fn rename(&self, from: &DavPath, to: &DavPath) -> impl Future<Output = io::Result<()>> + Send;
    /// Marks the content of `path` as changed now, so that a resource moved over an existing
    /// URL never shows that URL an older Last-Modified (RFC 4918 §8.8).
    fn touch(&self, path: &DavPath) -> impl Future<Output = io::Result<()>> + Send;
    /// Moves the resource at `path` (a whole tree) out of the namespace into backend-private
    /// space under `id`, so that an atomic batch can put it back on rollback.
    fn stash(&self, path: &DavPath, id: &str) -> impl Future<Output = io::Result<()>> + Send;
    /// Puts a stashed resource back at `path` (which must be unmapped).
    fn unstash(&self, id: &str, path: &DavPath) -> impl Future<Output = io::Result<()>> + Send;
    /// True when stash `id` exists (a crash may have come between journaling a stash and
    /// making it).
    fn has_stash(&self, id: &str) -> impl Future<Output = io::Result<bool>> + Send;
    /// Forgets a stash for good (the batch committed).
    fn drop_stash(&self, id: &str) -> impl Future<Output = io::Result<()>> + Send;
    /// The `DAV:resource-id` of a resource: a UUID derived from its identity, unique to this
    /// store.
    fn resource_id(&self, identity: &Identity) -> uuid::Uuid;
    /// Every resource reachable through more than one binding, with all its bindings; a
    /// resource not listed has exactly the binding it was reached through. Costly (the
    /// directory backend scans the whole tree): called at most once per request, and only
    /// when `DAV:parent-set` is asked for.
    fn binding_index(&self) -> impl Future<Output = io::Result<BindingIndex>> + Send;
    /// How changes made around davit (by other programs, or other instances) reach its cache;
    /// `None` (the default) when they cannot, and then nothing is cached.
    fn change_feed(&self, max_watches: usize) -> Option<Arc<dyn crate::cache::ChangeFeed>> {
        let _ = max_watches;
        None
    }
    /// A view of this storage whose changes are part of the property store's transaction
    /// `tx` (see `PropStore::shared`), so that an atomic batch commits or rolls back content,
    /// namespace and properties as one; `None` when the backend cannot join it (the batch
    /// then runs under the journal, with stashes).
    fn join(&self, tx: &SharedTx) -> Option<Self::Joined> {
        let _ = tx;
        None
    }
    /// Called on a joined view once its transaction has ended, to dispose of what is garbage
    /// now: what the batch replaced when it committed, what it wrote when it did not.
    fn settle(&self, end: TxEnd) -> impl Future<Output = ()> + Send {
        let _ = end;
        std::future::ready(())
    }
    /// Makes `to` (unmapped, in an existing collection) a second binding of the resource at
    /// `from`: afterwards both serve the same resource.
    fn bind(
        &self,
        from: &DavPath,
        to: &DavPath,
    ) -> impl Future<Output = io::Result<Result<(), BindRefusal>>> + Send;
}

/// A property store's transaction that a storage may join ([`Storage::join`]); each backend
/// knows the concrete type behind it.
pub type SharedTx = std::sync::Arc<dyn std::any::Any + Send + Sync>;

/// How a joined transaction ended ([`Storage::settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEnd {
    /// Its changes are in.
    Committed,
    /// Its changes are gone.
    RolledBack,
}

/// What [`Storage::binding_index`] found: the bindings of each resource that has several.
#[derive(Debug, Default)]
pub struct BindingIndex {
    /// Per multiply bound resource, its bindings (sorted).
    pub bound: std::collections::HashMap<Identity, Vec<Binding>>,
    /// The scan stopped early (the tree is larger than the backend scans for one request):
    /// resources not listed may still have other bindings.
    pub partial: bool,
}

/// An upload in progress.
pub trait Upload: AsyncWrite + Send + Unpin + 'static {
    /// Makes the written content visible at the target path in one step, and describes what is
    /// there now (so the caller need not look the path up again for its ETag).
    fn commit(self) -> impl Future<Output = io::Result<Meta>> + Send;
}

#[cfg(test)]
mod tests {
    use super::{read_into, FileRead};
    use std::io::Cursor;

    // The default `poll_read_into`, as a backend without its own would use it.
    impl FileRead for Cursor<Vec<u8>> {}

    #[tokio::test]
    async fn default_read_into_appends_at_most_max_and_ends_with_zero() {
        let mut file = Cursor::new(b"abcdefg".to_vec());
        let mut buf = b"x".to_vec();
        assert_eq!(read_into(&mut file, &mut buf, 4).await.ok(), Some(4));
        assert_eq!(buf, b"xabcd");
        assert_eq!(read_into(&mut file, &mut buf, 4).await.ok(), Some(3));
        assert_eq!(buf, b"xabcdefg");
        assert_eq!(read_into(&mut file, &mut buf, 4).await.ok(), Some(0));
        assert_eq!(buf, b"xabcdefg");
    }
}
