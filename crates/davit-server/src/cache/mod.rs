//! A bounded, coherent cache of what small requests keep asking storage for: the rendered
//! 207 of a PROPFIND (Depth 0 or 1, per property set and principal) and the bytes, metadata
//! and stored content type of small files (GET and HEAD).
//!
//! Everything is kept per resource path in a *node*. Coherence rests on three rules:
//!
//! - **davit's own changes** invalidate a node and its parent's when the write registers (its
//!   lock check, `WriteGate`) and again when it ends, so the next request after a response sees
//!   the change; a LOCK or UNLOCK invalidates what it covers.
//! - **Changes by other programs** reach the cache through the backend's [`ChangeFeed`]
//!   (inotify on the filesystem). Every lookup first takes whatever the feed has queued, under
//!   the cache's mutex: a change whose system call returned before the request arrived is never
//!   served stale (inotify queues its event inside that call). A node is filled only after the
//!   feed has promised to watch everything it depends on; when it cannot (a symlink on the way,
//!   no watches left), nothing of it is kept. When the kernel drops events (queue overflow),
//!   everything is dropped.
//! - **Fills race with changes safely**: a fill takes a ticket (the node's generation) before
//!   reading storage and is kept only if no invalidation reached the node meanwhile.
//!
//! What changes with time alone is never kept: a listing showing a lock (its timeout counts
//! down), quota figures, sync tokens, the current user's privileges.

mod inotify;

pub use inotify::InotifyFeed;

use crate::storage::Meta;
use bytes::Bytes;
use davit_proto::href::DavPath;
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What a [`ChangeFeed`] noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Noticed {
    /// The resource at this path changed (content, metadata or membership).
    Path(DavPath),
    /// Anything at or below this path may have changed (a tree renamed, removed or created).
    Tree(DavPath),
    /// Changes were lost: nothing kept can be trusted.
    Everything,
}

/// How a backend tells the cache about changes made around it (by other programs, or other
/// instances).
pub trait ChangeFeed: Send + Sync + std::fmt::Debug {
    /// Promises that from now on a change of the resource at `path` is reported (for a
    /// collection, also a change of its membership). False when that cannot be promised;
    /// nothing depending on `path` is then kept.
    fn watch(&self, path: &DavPath, collection: bool) -> bool;
    /// Hands what was noticed since the last call to `sink`, without waiting.
    fn drain(&self, sink: &mut dyn FnMut(Noticed));
    /// For tests: loses every change queued so far, as a full kernel queue would, and reports
    /// that changes were lost.
    fn simulate_overflow(&self) {}
    /// For a store others write to (other instances): which version of it is current, asked
    /// before every lookup; what was kept at another version is not used. `None` (the
    /// default): the store has no versions, the feed reports everything. The future yields
    /// `None` when the version is not known (writes in progress, the store unreachable):
    /// then the cache is neither read nor filled.
    fn version(&self) -> Option<BoxFuture<'_, Option<u64>>> {
        None
    }
}

/// The store's version for one request (see [`ChangeFeed::version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The store has no versions.
    Any,
    /// The store is at this version.
    At(u64),
    /// Not known: do not use the cache.
    Unknown,
}

impl Version {
    fn tag(self) -> Option<u64> {
        match self {
            Version::At(v) => Some(v),
            _ => None,
        }
    }
}

/// A small file as GET serves it.
#[derive(Debug)]
pub struct CachedFile {
    pub meta: Meta,
    /// The content type stored as a dead property, if any.
    pub stored_type: Option<String>,
    pub body: Bytes,
}

/// A rendered PROPFIND answer.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Bytes,
    /// `Prefer: depth-noroot` was applied.
    pub depth_noroot: bool,
}

/// What a node knows about a file.
#[derive(Debug, Clone)]
pub enum FileEntry {
    /// Its bytes and metadata.
    Small(Arc<CachedFile>),
    /// Too large to keep: GET goes to storage without trying to fill.
    Large,
}

/// The settings (`[dav] cache_bytes` and friends).
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Most bytes kept (bodies, rendered listings, keys and a per-node overhead).
    pub max_bytes: u64,
    /// Largest file whose bytes are kept.
    pub max_file_bytes: u64,
    /// Largest rendered listing kept.
    pub max_listing_bytes: u64,
}

/// Bytes a node costs besides what it holds (map entry, path, bookkeeping).
const NODE_OVERHEAD: u64 = 160;

#[derive(Debug, Default)]
struct Node {
    /// Changes with every invalidation (a fresh number from [`Cache::next_gen`]).
    gen: u64,
    /// The store's version when the node was filled (see [`ChangeFeed::version`]).
    version: Option<u64>,
    /// Last use, for eviction.
    used: u64,
    /// Rendered PROPFIND answers, by request key.
    listings: Vec<(Box<[u8]>, Rendered)>,
    file: Option<FileEntry>,
}

impl Node {
    fn cost(&self, path: &str) -> u64 {
        let listings: usize = self
            .listings
            .iter()
            .map(|(k, v)| k.len() + v.body.len())
            .sum();
        let file = match &self.file {
            Some(FileEntry::Small(f)) => f.body.len() + f.meta.etag.len() + 64,
            _ => 0,
        };
        NODE_OVERHEAD + (path.len() + listings + file) as u64
    }
}

#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<DavPath, Node>,
    bytes: u64,
    tick: u64,
}

/// A promise to keep what is read from storage from now on, if nothing changes meanwhile.
#[derive(Debug)]
pub struct Fill {
    path: DavPath,
    gen: u64,
}

impl Fill {
    pub fn path(&self) -> &DavPath {
        &self.path
    }
}

/// Counters for the metrics and the tests.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub invalidations: AtomicU64,
    pub overflows: AtomicU64,
}

/// Shared by every worker and every clone of a `Dav`.
#[derive(Debug)]
pub struct Cache {
    limits: CacheLimits,
    feed: Option<Arc<dyn ChangeFeed>>,
    state: Mutex<State>,
    next_gen: AtomicU64,
    pub stats: CacheStats,
}

impl Cache {
    /// A cache in front of a backend whose outside changes `feed` reports. Without a feed,
    /// only a backend nobody else changes may be cached: the caller decides.
    pub fn new(limits: CacheLimits, feed: Option<Arc<dyn ChangeFeed>>) -> Cache {
        Cache {
            limits,
            feed,
            state: Mutex::new(State::default()),
            next_gen: AtomicU64::new(1),
            stats: CacheStats::default(),
        }
    }

    pub fn limits(&self) -> &CacheLimits {
        &self.limits
    }

    /// The state, with everything the feed noticed applied first.
    fn current(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = &self.feed {
            let mut noticed = Vec::new();
            feed.drain(&mut |n| noticed.push(n));
            for n in noticed {
                if n == Noticed::Everything {
                    self.stats.overflows.fetch_add(1, Ordering::Relaxed);
                }
                self.apply(&mut state, &n);
            }
        }
        state
    }

    fn gen(&self) -> u64 {
        self.next_gen.fetch_add(1, Ordering::Relaxed)
    }

    /// The store's version for a request about to use the cache.
    pub async fn version(&self) -> Version {
        match self.feed.as_ref().and_then(|f| f.version()) {
            None => Version::Any,
            Some(asked) => match asked.await {
                Some(v) => Version::At(v),
                None => Version::Unknown,
            },
        }
    }

    /// Forgets what `noticed` may have changed: a resource's node and its parent's (whose
    /// listing shows it), or a whole tree and its parent's.
    pub fn invalidate(&self, noticed: &Noticed) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.apply(&mut state, noticed);
    }

    fn apply(&self, state: &mut State, noticed: &Noticed) {
        self.stats.invalidations.fetch_add(1, Ordering::Relaxed);
        match noticed {
            Noticed::Everything => {
                state.nodes.clear();
                state.bytes = 0;
            }
            Noticed::Path(p) => {
                remove(state, p);
                if let Some(parent) = p.parent() {
                    remove(state, &parent);
                }
            }
            Noticed::Tree(p) => {
                let below: Vec<DavPath> = state
                    .nodes
                    .range((Bound::Included(p), Bound::Unbounded))
                    .take_while(|(k, _)| k.as_str().starts_with(p.as_str()))
                    .filter(|(k, _)| k.starts_with(p))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in below {
                    remove(state, &k);
                }
                if let Some(parent) = p.parent() {
                    remove(state, &parent);
                }
            }
        }
    }

    /// Starts a fill of the node at `path` (a collection when `collection`): the feed watches
    /// it first, so a change made while storage is read is noticed. `None` when it cannot be
    /// watched.
    pub fn begin(&self, path: &DavPath, collection: bool, version: Version) -> Option<Fill> {
        if version == Version::Unknown {
            return None;
        }
        let mut state = self.current();
        if let Some(feed) = &self.feed {
            if !feed.watch(path, collection) {
                return None;
            }
        }
        let gen = match state.nodes.get(path) {
            Some(n) if n.version == version.tag() => n.gen,
            _ => {
                // New, or kept at another version of the store: started afresh.
                remove(&mut state, path);
                let gen = self.gen();
                let node = Node {
                    gen,
                    version: version.tag(),
                    ..Node::default()
                };
                state.bytes += node.cost(path.as_str());
                state.nodes.insert(path.clone(), node);
                gen
            }
        };
        Some(Fill {
            path: path.clone(),
            gen,
        })
    }

    /// Watches one more resource a fill depends on (a member collection of a listing, whose
    /// own changes show in it). False when it cannot be watched.
    pub fn watch_more(&self, path: &DavPath, collection: bool) -> bool {
        match &self.feed {
            Some(feed) => feed.watch(path, collection),
            None => true,
        }
    }

    /// What `read` finds in the node at `path`, if it was kept at `version` (the node counts
    /// as used).
    fn look_up<T>(
        &self,
        path: &DavPath,
        version: Version,
        read: impl FnOnce(&Node) -> Option<T>,
    ) -> Option<T> {
        let mut state = self.current();
        state.tick += 1;
        let tick = state.tick;
        let node = state
            .nodes
            .get_mut(path)
            .filter(|n| version != Version::Unknown && n.version == version.tag())?;
        node.used = tick;
        read(node)
    }

    /// The rendered answer kept for `key` at `path`.
    pub fn listing(&self, path: &DavPath, key: &[u8], version: Version) -> Option<Rendered> {
        let found = self.look_up(path, version, |n| {
            n.listings
                .iter()
                .find(|(k, _)| &**k == key)
                .map(|(_, v)| v.clone())
        });
        self.count(found.is_some());
        found
    }

    /// Keeps a rendered answer, unless something changed since `fill` began.
    pub fn keep_listing(&self, fill: Fill, key: Box<[u8]>, body: Rendered) {
        if body.body.len() as u64 > self.limits.max_listing_bytes {
            return;
        }
        self.keep(fill, |node| {
            node.listings.retain(|(k, _)| **k != *key);
            node.listings.push((key, body));
        });
    }

    /// What is kept about the file at `path`.
    pub fn file(&self, path: &DavPath, version: Version) -> Option<FileEntry> {
        let found = self.look_up(path, version, |n| n.file.clone());
        self.count(matches!(found, Some(FileEntry::Small(_))));
        found
    }

    /// Keeps what was read of a file, unless something changed since `fill` began.
    pub fn keep_file(&self, fill: Fill, entry: FileEntry) {
        if let FileEntry::Small(f) = &entry {
            if f.body.len() as u64 > self.limits.max_file_bytes {
                return;
            }
        }
        self.keep(fill, |node| node.file = Some(entry));
    }

    fn keep(&self, fill: Fill, change: impl FnOnce(&mut Node)) {
        let mut state = self.current();
        state.tick += 1;
        let tick = state.tick;
        let State { nodes, bytes, .. } = &mut *state;
        let Some(node) = nodes.get_mut(&fill.path) else {
            return;
        };
        if node.gen != fill.gen {
            return;
        }
        let before = node.cost(fill.path.as_str());
        change(node);
        node.used = tick;
        let after = node.cost(fill.path.as_str());
        *bytes = bytes.saturating_sub(before) + after;
        if state.bytes > self.limits.max_bytes {
            self.evict(&mut state);
        }
    }

    /// Drops the least recently used nodes until three quarters of the limit are used.
    fn evict(&self, state: &mut State) {
        let mut by_use: Vec<(u64, DavPath)> = state
            .nodes
            .iter()
            .map(|(k, n)| (n.used, k.clone()))
            .collect();
        by_use.sort_unstable_by_key(|(used, _)| *used);
        let goal = self.limits.max_bytes / 4 * 3;
        for (_, path) in by_use {
            if state.bytes <= goal {
                break;
            }
            remove(state, &path);
        }
    }

    fn count(&self, hit: bool) {
        let c = if hit {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.bytes)
    }

    /// For tests: the feed loses what it queued and reports an overflow.
    pub fn simulate_overflow(&self) {
        if let Some(feed) = &self.feed {
            feed.simulate_overflow();
        }
    }
}

fn remove(state: &mut State, path: &DavPath) {
    if let Some(node) = state.nodes.remove(path) {
        state.bytes = state.bytes.saturating_sub(node.cost(path.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DavPath {
        DavPath::parse(s).unwrap()
    }

    fn r(b: &'static [u8]) -> Rendered {
        Rendered {
            body: Bytes::from_static(b),
            depth_noroot: false,
        }
    }

    fn body(r: Option<Rendered>) -> Option<Vec<u8>> {
        r.map(|r| r.body.to_vec())
    }

    fn cache(max_bytes: u64) -> Cache {
        Cache::new(
            CacheLimits {
                max_bytes,
                max_file_bytes: 1024,
                max_listing_bytes: 4096,
            },
            None,
        )
    }

    #[test]
    fn a_fill_is_kept_and_found() {
        let c = cache(1 << 20);
        let fill = c.begin(&p("/d"), true, Version::Any).unwrap();
        c.keep_listing(fill, b"k".to_vec().into(), r(b"body"));
        assert_eq!(
            body(c.listing(&p("/d"), b"k", Version::Any)),
            Some(b"body".to_vec())
        );
        assert!(c.listing(&p("/d"), b"other", Version::Any).is_none());
    }

    #[test]
    fn a_change_during_a_fill_drops_it() {
        let c = cache(1 << 20);
        let fill = c.begin(&p("/d"), true, Version::Any).unwrap();
        c.invalidate(&Noticed::Path(p("/d/f")));
        c.keep_listing(fill, b"k".to_vec().into(), r(b"old"));
        assert!(c.listing(&p("/d"), b"k", Version::Any).is_none());
        // A fill begun after the change is kept.
        let fill = c.begin(&p("/d"), true, Version::Any).unwrap();
        c.keep_listing(fill, b"k".to_vec().into(), r(b"new"));
        assert_eq!(
            body(c.listing(&p("/d"), b"k", Version::Any)),
            Some(b"new".to_vec())
        );
    }

    #[test]
    fn a_member_change_drops_the_parent_listing_only() {
        let c = cache(1 << 20);
        for path in ["/d", "/d/f", "/e"] {
            let fill = c.begin(&p(path), true, Version::Any).unwrap();
            c.keep_listing(fill, b"k".to_vec().into(), r(b"x"));
        }
        c.invalidate(&Noticed::Path(p("/d/f")));
        assert!(c.listing(&p("/d"), b"k", Version::Any).is_none());
        assert!(c.listing(&p("/d/f"), b"k", Version::Any).is_none());
        assert!(c.listing(&p("/e"), b"k", Version::Any).is_some());
    }

    #[test]
    fn a_tree_change_drops_everything_below_and_the_parent() {
        let c = cache(1 << 20);
        for path in ["/", "/a", "/a/b", "/a/b/c", "/ab", "/z"] {
            let fill = c.begin(&p(path), true, Version::Any).unwrap();
            c.keep_listing(fill, b"k".to_vec().into(), r(b"x"));
        }
        c.invalidate(&Noticed::Tree(p("/a")));
        for gone in ["/", "/a", "/a/b", "/a/b/c"] {
            assert!(c.listing(&p(gone), b"k", Version::Any).is_none(), "{gone}");
        }
        // A sibling sharing the prefix as text, and an unrelated one, stay.
        assert!(c.listing(&p("/ab"), b"k", Version::Any).is_some());
        assert!(c.listing(&p("/z"), b"k", Version::Any).is_some());
    }

    #[test]
    fn memory_stays_under_the_limit() {
        let c = cache(20_000);
        for i in 0..100 {
            let path = p(&format!("/f{i}"));
            let fill = c.begin(&path, true, Version::Any).unwrap();
            c.keep_listing(
                fill,
                b"k".to_vec().into(),
                Rendered {
                    body: Bytes::from(vec![b'x'; 1000]),
                    depth_noroot: false,
                },
            );
            assert!(c.bytes() <= 20_000, "{} after {i}", c.bytes());
        }
        // The most recent ones are there.
        assert!(c.listing(&p("/f99"), b"k", Version::Any).is_some());
        assert!(c.listing(&p("/f0"), b"k", Version::Any).is_none());
    }

    #[test]
    fn oversized_entries_are_not_kept() {
        let c = cache(1 << 20);
        let fill = c.begin(&p("/d"), true, Version::Any).unwrap();
        c.keep_listing(
            fill,
            b"k".to_vec().into(),
            Rendered {
                body: Bytes::from(vec![0; 5000]),
                depth_noroot: false,
            },
        );
        assert!(c.listing(&p("/d"), b"k", Version::Any).is_none());
    }
}

#[cfg(test)]
mod versioned {
    use super::*;

    fn p(s: &str) -> DavPath {
        DavPath::parse(s).unwrap()
    }

    #[test]
    fn what_was_kept_at_another_version_is_not_used() {
        let c = Cache::new(
            CacheLimits {
                max_bytes: 1 << 20,
                max_file_bytes: 1024,
                max_listing_bytes: 4096,
            },
            None,
        );
        let body = || Rendered {
            body: Bytes::from_static(b"x"),
            depth_noroot: false,
        };
        let fill = c.begin(&p("/d"), true, Version::At(7)).unwrap();
        c.keep_listing(fill, b"k".to_vec().into(), body());
        assert!(c.listing(&p("/d"), b"k", Version::At(7)).is_some());
        assert!(c.listing(&p("/d"), b"k", Version::At(8)).is_none());
        // Unknown: neither read nor filled.
        assert!(c.begin(&p("/d"), true, Version::Unknown).is_none());
        // A fill at the new version replaces the old node.
        let fill = c.begin(&p("/d"), true, Version::At(8)).unwrap();
        assert!(c.listing(&p("/d"), b"k", Version::At(7)).is_none());
        c.keep_listing(fill, b"k".to_vec().into(), body());
        assert!(c.listing(&p("/d"), b"k", Version::At(8)).is_some());
    }
}
