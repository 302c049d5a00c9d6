//! `Storage` for the distributed backend: the namespace in PostgreSQL ([`Namespace`]) and the
//! content in the object store ([`Blobs`]). A file's content is the object
//! `blobs/<resource id>/<upload id>`, written whole before the namespace row points at it; the
//! object it replaces becomes garbage and is deleted after the commit (or, if that fails, by
//! the sweep).

use crate::blobs::{BlobError, BlobWriter, Blobs};
use crate::namespace::Namespace;
use crate::pg::Pg;
use bytes::Bytes;
use davit_proto::href::DavPath;
use davit_server::storage::{
    BindRefusal, BindingIndex, CopyDepth, Entry, Failure, FileRead, Identity, Meta, SharedTx,
    Storage, TxEnd, Upload,
};
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// Members read per query of a listing.
const LIST_PAGE: i64 = 256;
/// Server-side object copies a COPY of a tree keeps in flight.
const PARALLEL_COPIES: usize = 16;

/// The distributed backend's content and namespace.
#[derive(Debug, Clone)]
pub struct PgStorage {
    ns: Namespace,
    blobs: Blobs,
    /// Inside an atomic batch's transaction: the objects it wrote and those it replaced,
    /// disposed of once the transaction ends ([`Storage::settle`]).
    batch: Option<Arc<Mutex<BatchObjects>>>,
}

#[derive(Debug, Default)]
struct BatchObjects {
    written: Vec<String>,
    replaced: Vec<String>,
}

impl PgStorage {
    /// Storage over a namespace and an object store.
    pub fn new(ns: Namespace, blobs: Blobs) -> Self {
        PgStorage {
            ns,
            blobs,
            batch: None,
        }
    }

    fn new_object(&self, id: &uuid::Uuid) -> String {
        let key = format!("blobs/{}/{}", id.simple(), uuid::Uuid::new_v4().simple());
        if let Some(batch) = &self.batch {
            if let Ok(mut b) = batch.lock() {
                b.written.push(key.clone());
            }
        }
        key
    }

    /// Deletes objects no row points at any more; failures are left to the sweep. Inside a
    /// batch, rows may still point at them after a rollback: they wait for the batch's end.
    async fn drop_replaced(&self, keys: Vec<String>) {
        if let Some(batch) = &self.batch {
            if let Ok(mut b) = batch.lock() {
                b.replaced.extend(keys);
                return;
            }
        }
        self.drop_objects(keys).await;
    }

    /// Deletes objects nothing points at; failures are left to the sweep.
    async fn drop_objects(&self, keys: Vec<String>) {
        match keys.len() {
            0 => {}
            1 => {
                if let Err(e) = self.blobs.delete(&keys[0]).await {
                    tracing::warn!(key = %keys[0], error = %e, "an unused object stays until the sweep");
                }
            }
            _ => {
                for (key, e) in self.blobs.delete_many(keys).await {
                    tracing::warn!(%key, error = %e, "an unused object stays until the sweep");
                }
            }
        }
    }
}

/// What the cache learns from the database: nothing is reported, every lookup asks which
/// version of the database is current (one short query), so that a change committed by any
/// instance is never served stale by another.
#[derive(Debug)]
struct VersionFeed {
    ns: Namespace,
}

impl davit_server::cache::ChangeFeed for VersionFeed {
    fn watch(&self, _path: &DavPath, _collection: bool) -> bool {
        true
    }

    fn drain(&self, _sink: &mut dyn FnMut(davit_server::cache::Noticed)) {}

    fn version(&self) -> Option<futures_util::future::BoxFuture<'_, Option<u64>>> {
        Some(Box::pin(self.ns.version()))
    }
}

impl Storage for PgStorage {
    type Read = BlobRead;
    type Upload = BlobUpload;
    type StagingDir = ();
    type List = BoxStream<'static, io::Result<Vec<Entry>>>;
    type Joined = PgStorage;

    fn join(&self, tx: &SharedTx) -> Option<PgStorage> {
        let pg = tx.downcast_ref::<Pg>()?;
        Some(PgStorage {
            ns: Namespace::new(pg.clone()),
            blobs: self.blobs.clone(),
            batch: Some(Arc::default()),
        })
    }

    async fn settle(&self, end: TxEnd) {
        let Some(batch) = &self.batch else {
            return;
        };
        let garbage = match batch.lock() {
            Ok(mut b) => match end {
                TxEnd::Committed => std::mem::take(&mut b.replaced),
                TxEnd::RolledBack => std::mem::take(&mut b.written),
            },
            Err(_) => return,
        };
        self.drop_objects(garbage).await;
    }

    async fn metadata(&self, path: &DavPath) -> io::Result<Meta> {
        Ok(self.ns.meta(path).await?.meta)
    }

    async fn open(&self, path: &DavPath) -> io::Result<(BlobRead, Meta)> {
        let r = self.ns.meta(path).await?;
        if r.meta.is_dir() {
            return Err(io::ErrorKind::IsADirectory.into());
        }
        let read = BlobRead::new(self.blobs.clone(), r.blob, r.meta.len);
        Ok((read, r.meta))
    }

    async fn list(&self, path: &DavPath) -> io::Result<Self::List> {
        let parent = self.ns.collection_id(path).await?;
        // Page after page, each read when the previous one has been consumed.
        let pages = futures_util::stream::try_unfold(
            (self.ns.clone(), None::<String>, false),
            move |(ns, after, done)| async move {
                if done {
                    return Ok(None);
                }
                let page = ns.list_page(parent, after.as_deref(), LIST_PAGE).await?;
                let last = page.last().map(|e| e.name.clone());
                let done = page.len() < usize::try_from(LIST_PAGE).unwrap_or(usize::MAX);
                if page.is_empty() {
                    return Ok(None);
                }
                Ok(Some((page, (ns, last, done))))
            },
        );
        Ok(pages.boxed())
    }

    async fn count_tree(&self, path: &DavPath, max: u64) -> io::Result<u64> {
        self.ns.count_tree(path, max).await
    }

    async fn tree_size(&self, path: &DavPath) -> io::Result<u64> {
        self.ns.tree_size(path).await
    }

    async fn space_available(&self) -> io::Result<Option<u64>> {
        Ok(None)
    }

    async fn upload(&self, path: &DavPath) -> io::Result<BlobUpload> {
        // The object is named after the resource when it exists already, else a new id; the
        // row decides which object is current, so the name only groups versions.
        let id = match self.ns.get(path).await? {
            Some(r) if r.meta.is_dir() => return Err(io::ErrorKind::IsADirectory.into()),
            Some(r) => r.id,
            None => uuid::Uuid::new_v4(),
        };
        let key = self.new_object(&id);
        Ok(BlobUpload::start(self.clone(), path.clone(), key))
    }

    async fn create_dir(&self, path: &DavPath) -> io::Result<()> {
        self.ns.create_dir(path).await.map(drop)
    }

    async fn delete_tree(&self, path: &DavPath) -> io::Result<Vec<Failure>> {
        let garbage = self.ns.delete_tree(path).await?;
        self.drop_replaced(garbage).await;
        Ok(Vec::new())
    }

    async fn copy_tree(
        &self,
        from: &DavPath,
        to: &DavPath,
        depth: CopyDepth,
    ) -> io::Result<Vec<Failure>> {
        let mut items = self
            .ns
            .copy_plan(from, depth == CopyDepth::Infinity)
            .await?;
        // The objects first (server-side copies), then the rows in one transaction: a crash
        // in between leaves only garbage.
        let copies: Vec<(usize, String, String)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let src = item.blob.clone()?;
                Some((i, src, self.new_object(&uuid::Uuid::new_v4())))
            })
            .collect();
        let results: Vec<(usize, String, Result<(), BlobError>)> =
            futures_util::stream::iter(copies)
                .map(|(i, src, dst)| async move {
                    let r = self.blobs.copy(&src, &dst).await;
                    (i, dst, r)
                })
                .buffer_unordered(PARALLEL_COPIES)
                .collect()
                .await;
        let mut made = Vec::with_capacity(results.len());
        let mut failed = None;
        for (i, dst, r) in results {
            match r {
                Ok(()) => {
                    made.push(dst.clone());
                    if let Some(item) = items.get_mut(i) {
                        item.blob = Some(dst);
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            self.drop_objects(made).await;
            return Err(e.into());
        }
        if let Err(e) = self.ns.insert_copies(to, &items).await {
            self.drop_objects(made).await;
            return Err(e);
        }
        Ok(Vec::new())
    }

    async fn rename(&self, from: &DavPath, to: &DavPath) -> io::Result<()> {
        self.ns.rename(from, to).await
    }

    async fn touch(&self, path: &DavPath) -> io::Result<()> {
        self.ns.touch(path).await
    }

    // Stashes serve the journal of atomic batches; this backend runs them in one PostgreSQL
    // transaction instead (`join`), and its `Dav` is built without a journal.
    async fn stash(&self, _: &DavPath, _: &str) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    async fn unstash(&self, _: &str, _: &DavPath) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    async fn has_stash(&self, _: &str) -> io::Result<bool> {
        Ok(false)
    }

    async fn drop_stash(&self, _: &str) -> io::Result<()> {
        Ok(())
    }

    fn resource_id(&self, identity: &Identity) -> uuid::Uuid {
        uuid::Uuid::from_u128(identity.node)
    }

    async fn binding_index(&self) -> io::Result<BindingIndex> {
        Ok(BindingIndex::default())
    }

    fn change_feed(&self, _max_watches: usize) -> Option<Arc<dyn davit_server::cache::ChangeFeed>> {
        Some(Arc::new(VersionFeed {
            ns: self.ns.clone(),
        }))
    }

    async fn bind(&self, _: &DavPath, _: &DavPath) -> io::Result<Result<(), BindRefusal>> {
        Ok(Err(BindRefusal::NotAllowed))
    }
}

type Chunks = BoxStream<'static, Result<Bytes, BlobError>>;

enum ReadState {
    /// Nothing requested yet, or a seek dropped the request.
    Idle,
    Opening(BoxFuture<'static, Result<Chunks, BlobError>>),
    Streaming(Chunks),
    /// The read failed (or the object ended early); every later read fails the same way.
    Broken(io::ErrorKind),
}

/// A file's content as it streams from the object store; a seek starts a ranged read from
/// there on the next read.
pub struct BlobRead {
    blobs: Blobs,
    key: Option<String>,
    len: u64,
    pos: u64,
    chunk: Bytes,
    state: ReadState,
}

impl BlobRead {
    fn new(blobs: Blobs, key: Option<String>, len: u64) -> Self {
        BlobRead {
            blobs,
            key,
            len,
            pos: 0,
            chunk: Bytes::new(),
            state: ReadState::Idle,
        }
    }

    /// Starts the ranged read from `pos` (when none is under way) and waits for the object
    /// store's answer: true once it streams, false when there is no object to read.
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        loop {
            match &mut self.state {
                ReadState::Idle => {
                    let Some(key) = self.key.clone() else {
                        return Poll::Ready(Ok(false));
                    };
                    let blobs = self.blobs.clone();
                    let range = self.pos..self.len;
                    self.state =
                        ReadState::Opening(Box::pin(
                            async move { blobs.read(&key, Some(range)).await },
                        ));
                }
                ReadState::Opening(f) => {
                    let stream = ready!(f.as_mut().poll(cx)).map_err(io::Error::from)?;
                    self.state = ReadState::Streaming(stream);
                }
                ReadState::Streaming(_) => return Poll::Ready(Ok(true)),
                ReadState::Broken(kind) => return Poll::Ready(Err((*kind).into())),
            }
        }
    }
}

impl AsyncRead for BlobRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.chunk.is_empty() {
                let n = this.chunk.len().min(buf.remaining());
                buf.put_slice(&this.chunk.split_to(n));
                this.pos += n as u64;
                return Poll::Ready(Ok(()));
            }
            if this.pos >= this.len {
                return Poll::Ready(Ok(()));
            }
            match &mut this.state {
                ReadState::Idle | ReadState::Opening(_) | ReadState::Broken(_) => {
                    if !ready!(this.poll_open(cx))? {
                        return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
                ReadState::Streaming(s) => match ready!(s.poll_next_unpin(cx)) {
                    Some(Ok(bytes)) => this.chunk = bytes,
                    Some(Err(e)) => return Poll::Ready(Err(e.into())),
                    // Shorter than the row says: never pass that off as the whole file.
                    None => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                },
            }
        }
    }
}

impl AsyncSeek for BlobRead {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        let target = match position {
            io::SeekFrom::Start(p) => Some(p),
            io::SeekFrom::End(d) => self.len.checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        if target != self.pos {
            self.pos = target;
            self.chunk = Bytes::new();
            self.state = ReadState::Idle;
        }
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

impl FileRead for BlobRead {
    /// Appends what the object store has sent (several of its chunks when they are there
    /// already) straight to `buf`: the default would zero `max` bytes of `buf` for each
    /// chunk of a few KiB, which was a quarter of a large GET's CPU.
    fn poll_read_into(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut n = 0;
        loop {
            if !this.chunk.is_empty() {
                let take = this.chunk.len().min(max - n);
                buf.extend_from_slice(&this.chunk.split_to(take));
                this.pos += take as u64;
                n += take;
            }
            if n == max || this.pos >= this.len {
                return Poll::Ready(Ok(n));
            }
            let next: Poll<Option<io::Result<Bytes>>> = match &mut this.state {
                ReadState::Streaming(s) => s
                    .poll_next_unpin(cx)
                    .map(|o| o.map(|r| r.map_err(io::Error::from))),
                _ => match this.poll_open(cx) {
                    Poll::Ready(Ok(true)) => continue,
                    Poll::Ready(Ok(false)) => Poll::Ready(None),
                    Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                    Poll::Pending => Poll::Pending,
                },
            };
            match next {
                Poll::Ready(Some(Ok(bytes))) => this.chunk = bytes,
                Poll::Pending if n > 0 => return Poll::Ready(Ok(n)),
                Poll::Pending => return Poll::Pending,
                // Shorter than the row says: never pass that off as the whole file.
                Poll::Ready(end) => {
                    let kind = match end {
                        Some(Err(e)) => e.kind(),
                        _ => io::ErrorKind::UnexpectedEof,
                    };
                    if n == 0 {
                        this.state = ReadState::Broken(kind);
                        return Poll::Ready(Err(kind.into()));
                    }
                    // What arrived goes out first; the failure comes with the next read.
                    this.state = ReadState::Broken(kind);
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }

    /// Asks the object store before the response's head goes out: a store that is away is
    /// a 503, not a 200 whose body breaks off.
    fn poll_prepare(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.chunk.is_empty() || this.pos >= this.len {
            return Poll::Ready(Ok(()));
        }
        // Without an object the first read reports it.
        this.poll_open(cx).map_ok(|_| ())
    }
}

/// An upload: the body goes to a new object through a task that writes it (at most a few
/// parts in memory); `commit` finishes the object and then points the row at it. Dropped
/// without a commit, the object is aborted and nothing changes.
pub struct BlobUpload {
    sender: tokio_util::sync::PollSender<Bytes>,
    finish: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<io::Result<u64>>>,
    storage: PgStorage,
    path: DavPath,
    key: String,
}

impl BlobUpload {
    fn start(storage: PgStorage, path: DavPath, key: String) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let mut writer: BlobWriter = storage.blobs.writer(&key);
        let task = tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if let Err(e) = writer.write(chunk).await {
                    let _ = writer.abort().await;
                    return Err(io::Error::from(e));
                }
            }
            if finished.await.is_ok() {
                writer.finish().await.map_err(io::Error::from)
            } else {
                let _ = writer.abort().await;
                Err(io::ErrorKind::Interrupted.into())
            }
        });
        BlobUpload {
            sender: tokio_util::sync::PollSender::new(tx),
            finish: Some(finish),
            task: Some(task),
            storage,
            path,
            key,
        }
    }
}

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the object store upload stopped")
}

impl BlobUpload {
    /// Why the writing task stopped taking chunks: its own error (an object store that is
    /// away is a time-out, so 503), rather than a broken pipe (500).
    fn poll_failure(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(broken());
        };
        let ended = ready!(std::future::Future::poll(Pin::new(task), cx));
        self.task = None;
        Poll::Ready(match ended {
            Ok(Err(e)) => e,
            _ => broken(),
        })
    }
}

impl AsyncWrite for BlobUpload {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let sent = match ready!(this.sender.poll_reserve(cx)) {
            Ok(()) => this.sender.send_item(Bytes::copy_from_slice(buf)).is_ok(),
            Err(_) => false,
        };
        if !sent {
            return this.poll_failure(cx).map(Err);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Upload for BlobUpload {
    async fn commit(mut self) -> io::Result<Meta> {
        self.sender.close();
        if let Some(finish) = self.finish.take() {
            let _ = finish.send(());
        }
        let size = match self.task.take() {
            Some(task) => task.await.map_err(|_| broken())??,
            None => return Err(broken()),
        };
        let storage = self.storage.clone();
        match storage
            .ns
            .commit_file(&self.path, Some(&self.key), size)
            .await
        {
            Ok((resource, old)) => {
                storage.drop_replaced(old.into_iter().collect()).await;
                Ok(resource.meta)
            }
            Err(e) => {
                storage.drop_objects(vec![self.key.clone()]).await;
                Err(e)
            }
        }
    }
}
